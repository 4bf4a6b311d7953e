"""The spec's ``evaluation`` section: metric gates, the champion comparison, fairness,
robustness and the operating threshold."""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from airflow_mlops.metrics import METRIC_NAMES
from airflow_mlops.metrics import METRICS as METRIC_TABLE
from airflow_mlops.spec.sections.base import StrictModel


class MetricBound(StrictModel):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> MetricBound:
        if self.min is None and self.max is None:
            raise ValueError("give `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class ChampionComparison(StrictModel):
    max_regression: float = Field(
        0.0, ge=0, description="How far below the champion the candidate may score (absolute)."
    )


MetricName = Literal[METRIC_NAMES]  # type: ignore[valid-type]
# The values each metric can take (from the one vocabulary in airflow_mlops/metrics.py).
METRIC_RANGES: dict[str, tuple[float, float]] = {
    m.name: (float(m.low), float(m.high)) for m in METRIC_TABLE.values()
}
TaskName = Literal["binary", "multiclass", "regression"]
ColumnName = Annotated[str, Field(min_length=1)]


class BinnedSlice(StrictModel):
    """A numeric column cut into slices at fixed edges."""

    column: ColumnName = Field(description="The numeric column to slice.")
    bins: list[float] = Field(
        min_length=1,
        description="Edges, strictly increasing, e.g. `[0, 50, 500]` gives the slices `< 0`, `[0, 50)`, "
        "`[50, 500)` and `>= 500`; missing values are a slice of their own.",
    )

    @field_validator("bins")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if not all(math.isfinite(v) for v in value):
            raise ValueError("bin edges must be finite numbers")
        for low, high in itertools.pairwise(value):
            if not low < high:
                raise ValueError(f"bin edges must be strictly increasing: {low:g} is followed by {high:g}")
        return value


class GapBound(StrictModel):
    max_gap: float = Field(
        gt=0, description="Largest allowed difference between the best and the worst usable slice."
    )


class FairnessConfig(StrictModel):
    """The candidate's metrics on each slice of the holdout; the gap between slices is a gate."""

    slices: list[ColumnName | BinnedSlice] = Field(
        min_length=1,
        description="What to slice by: a column name (one slice per value) or `{column: ..., bins: [...]}` "
        "(numeric ranges). Each entry is gated on its own.",
    )
    metrics: dict[MetricName, GapBound] = Field(
        min_length=1,
        description="Largest allowed gap (best minus worst usable slice) per metric, e.g. "
        "`{roc_auc: {max_gap: 0.1}}`.",
    )
    min_slice_rows: int = Field(
        100, ge=1, description="Smaller slices are reported but not gated (their metrics are noise)."
    )
    min_slice_positives: int = Field(
        10,
        ge=1,
        description="For the metrics that need positives (`recall`, `precision`, `f1`, `roc_auc`, "
        "`pr_auc`): slices with fewer positive rows are reported but not gated for them.",
    )

    @field_validator("slices")
    @classmethod
    def _distinct_columns(cls, value: list[str | BinnedSlice]) -> list[str | BinnedSlice]:
        names = [s if isinstance(s, str) else s.column for s in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"column(s) {', '.join(map(repr, repeated))} are sliced more than once")
        return value


class NoiseSettings(StrictModel):
    std: float = Field(
        gt=0, description="Standard deviation of the Gaussian noise, in units of each feature's holdout std."
    )
    features: list[ColumnName] | None = Field(
        None, min_length=1, description="Numeric features to perturb; default: every numeric feature."
    )


class Perturbation(StrictModel):
    """One perturbed copy of the holdout: give `missing` or `noise`."""

    missing: list[ColumnName] | None = Field(
        None,
        min_length=1,
        description="Features blanked out on every row: the model imputes them (numbers: the training mean; "
        "categories: no category).",
    )
    noise: NoiseSettings | None = Field(
        None, description="Gaussian noise added to numeric features, e.g. `{std: 0.1, features: [amount]}`."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Perturbation:
        if (self.missing is None) == (self.noise is None):
            raise ValueError("a perturbation is `{missing: [feature, ...]}` or `{noise: {std: ...}}`")
        return self


class DropBound(StrictModel):
    max_drop: float = Field(
        ge=0,
        description="How far the metric may fall below its clean holdout value (for `log_loss`: rise above).",
    )


class RobustnessConfig(StrictModel):
    """The candidate scored on perturbed copies of the holdout; the drop from the clean score is a gate."""

    perturbations: list[Perturbation] = Field(
        min_length=1,
        description="Each entry is one perturbed copy: `{missing: [feature, ...]}` or "
        "`{noise: {std: 0.1, features: [...]}}`.",
    )
    metrics: dict[MetricName, DropBound] = Field(
        min_length=1, description="Allowed drop per metric, e.g. `{roc_auc: {max_drop: 0.05}}`."
    )
    seed: int = Field(0, description="Seed of the noise: the same seed gives the same perturbed rows.")


ThresholdRuleName = Literal["fixed", "best_f1", "min_precision", "min_recall"]


class ThresholdRule(StrictModel):
    """How the operating threshold is chosen (on the trainer's validation rows, never the holdout)."""

    rule: ThresholdRuleName = Field(
        description="`best_f1`: the highest F1; `min_precision`: the highest recall with precision >= "
        "`value`; `min_recall`: the highest precision with recall >= `value`; `fixed`: `value` itself."
    )
    value: float | None = Field(
        None,
        description="The rule's target: in (0, 1] for `min_precision` and `min_recall`, in (0, 1) for "
        "`fixed`; not given for `best_f1`.",
    )

    @model_validator(mode="after")
    def _value_fits_rule(self) -> ThresholdRule:
        from pydantic import ValidationError
        from pydantic_core import InitErrorDetails, PydanticCustomError

        why = ""
        if self.rule == "best_f1":
            if self.value is not None:
                why = "`rule: best_f1` takes no `value` (it picks the threshold with the highest F1)"
        elif self.value is None:
            example = {"fixed": "0.5", "min_precision": "0.8", "min_recall": "0.9"}[self.rule]
            why = f"`rule: {self.rule}` needs `value`, e.g. `{{rule: {self.rule}, value: {example}}}`"
        elif self.rule == "fixed" and not 0 < self.value < 1:
            why = f"a fixed threshold lies in (0, 1): at {self.value:g} " + (
                "no row is positive" if self.value >= 1 else "every row is positive"
            )
        elif not 0 < self.value <= 1:
            measure = self.rule.removeprefix("min_")
            why = f"{measure} lies in [0, 1]: `value` must be in (0, 1]" + (
                f" (a percentage? write {self.value / 100:g})" if 1 < self.value <= 100 else ""
            )
        if why:
            error = PydanticCustomError("threshold_rule", "{why}", {"why": why})
            details = InitErrorDetails(type=error, loc=("value",), input=self.value)
            raise ValidationError.from_exception_data(type(self).__name__, [details])
        return self

    def as_config(self) -> dict[str, Any]:
        """The rule as the trainer takes it (``{"rule": ..., "value": ...}``, no value for best_f1)."""
        return self.model_dump(exclude_none=True)

    @property
    def fallback(self) -> float:
        """The threshold for a model that records none (trained before thresholds were stored):
        the fixed value, else 0.5."""
        return self.value if self.rule == "fixed" and self.value is not None else 0.5


def _threshold_rule(value: Any) -> Any:
    """A bare number is the fixed rule: ``threshold: 0.7`` is ``{rule: fixed, value: 0.7}``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"rule": "fixed", "value": value}
    if not isinstance(value, (dict, ThresholdRule)):
        raise ValueError(
            "a number (a fixed threshold) or a rule: `{rule: best_f1}`, `{rule: min_precision, value: "
            "0.8}`, `{rule: min_recall, value: 0.9}`"
        )
    return value


Threshold = Annotated[
    ThresholdRule, BeforeValidator(_threshold_rule, json_schema_input_type=float | ThresholdRule)
]


class EvaluationConfig(StrictModel):
    """Gates the candidate must pass on the holdout set. A gate that cannot decide blocks."""

    metrics: dict[MetricName, MetricBound] = Field(
        default_factory=dict,
        description="Absolute thresholds, e.g. `{roc_auc: {min: 0.85}}`, `{rmse: {max: 40}}`: any metric of "
        "the task (see the metric table). A bound outside the metric's range (shares lie in [0, 1]; "
        "log_loss, rmse, mae, mape are >= 0; r2 is <= 1) is refused.",
    )
    compare_to_champion: dict[MetricName, ChampionComparison] = Field(
        default_factory=dict,
        description="Allowed regression versus the champion on the same holdout rows, e.g. "
        "`{roc_auc: {max_regression: 0.03}}`. No champion yet: absolute thresholds only.",
    )
    threshold: Threshold = Field(
        default_factory=lambda: ThresholdRule(rule="best_f1"),
        description="The operating threshold (a row is positive where score >= threshold): a number "
        "(fixed) or a rule, `{rule: best_f1}`, `{rule: min_precision, value: 0.8}`, `{rule: "
        "min_recall, value: 0.9}`. The trainer chooses it on its validation rows and stores it with "
        "the model; every model (candidate, champion, the monitor's) is scored at its own.",
    )
    fairness: FairnessConfig | None = Field(
        None,
        description="Fairness across slices of the holdout: the largest metric gap between slices is a gate.",
    )
    robustness: RobustnessConfig | None = Field(
        None,
        description="Robustness under perturbations (missing features, Gaussian noise): the metric's drop "
        "from the clean holdout is a gate.",
    )

    @model_validator(mode="after")
    def _bounds_within_range(self) -> EvaluationConfig:
        """A bound outside the metric's range can never pass (or never fail): refuse it here,
        at its key, rather than block (or wave through) every run."""
        from pydantic import ValidationError
        from pydantic_core import InitErrorDetails, PydanticCustomError

        errors: list[InitErrorDetails] = []

        def refuse(loc: tuple[str, ...], value: float, why: str) -> None:
            error = PydanticCustomError("metric_range", "{why}", {"why": why})
            errors.append(InitErrorDetails(type=error, loc=loc, input=value))

        for metric, bound in self.metrics.items():
            low, high = METRIC_RANGES[metric]
            span = f"[{low:g}, {high:g}]" if high != float("inf") else f">= {low:g}"
            for side, value in (("min", bound.min), ("max", bound.max)):
                if value is None:
                    continue
                if (side == "min" and value > high) or (side == "max" and value < low):
                    refuse(
                        ("metrics", metric, side),
                        value,
                        f"{metric} lies in {span}: {side} {value:g} can never pass, so every run "
                        f"would be blocked (a percentage? write {value / 100:g})"
                        if value > 1 and high == 1.0
                        else f"{metric} lies in {span}: {side} {value:g} can never pass",
                    )
                elif (side == "min" and value < low) or (side == "max" and value > high):
                    refuse(
                        ("metrics", metric, side),
                        value,
                        f"{metric} lies in {span}: {side} {value:g} can never fail, so the gate "
                        "checks nothing",
                    )
        for metric, comparison in self.compare_to_champion.items():
            low, high = METRIC_RANGES[metric]
            if comparison.max_regression >= high - low:
                refuse(
                    ("compare_to_champion", metric, "max_regression"),
                    comparison.max_regression,
                    f"{metric} lies in [{low:g}, {high:g}]: max_regression "
                    f"{comparison.max_regression:g} lets any candidate pass the champion comparison",
                )
        # A gap or a drop as wide as the metric's whole range can never fail.
        allowances: list[tuple[tuple[str, ...], str, str, float, str]] = []
        if self.fairness is not None:
            allowances += [
                (("fairness", "metrics", m), m, "max_gap", g.max_gap, "any gap between slices")
                for m, g in self.fairness.metrics.items()
            ]
        if self.robustness is not None:
            allowances += [
                (("robustness", "metrics", m), m, "max_drop", d.max_drop, "any drop under perturbation")
                for m, d in self.robustness.metrics.items()
            ]
        for loc, measured, key, value, what in allowances:
            low, high = METRIC_RANGES[measured]
            if value >= high - low:
                refuse(
                    (*loc, key),
                    value,
                    f"{measured} lies in [{low:g}, {high:g}]: {key} {value:g} allows {what}, so the gate "
                    "checks nothing",
                )
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self
