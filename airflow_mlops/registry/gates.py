"""The evaluation gates: each decides one thing about a candidate and says why.

Threshold gates (a metric against an absolute bound) and champion gates (a metric against the
champion's, within an allowed regression) over the metrics of :mod:`airflow_mlops.metrics`; the
fairness and robustness checks (:mod:`~airflow_mlops.registry.fairness`,
:mod:`~airflow_mlops.registry.robustness`) build their gates from the same parts. Gates fail
closed: a metric that cannot be measured, or that does not apply to the model's task, blocks.
Pure functions; no Airflow, no MLflow, no numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from airflow_mlops.exceptions import GateFailedError
from airflow_mlops.metrics import LOWER_IS_BETTER, METRICS, TASK_METRICS

GateKind = Literal["threshold", "champion", "fairness", "robustness", "watermark"]

NO_CHAMPION_REASON = "no champion yet: first model"
# Absolute slack when comparing a regression with its allowance, so that float rounding in
# ``champion - candidate`` (e.g. 0.3 - 0.1) never flips a decision at the exact boundary.
TOLERANCE = 1e-12


def metric_mismatch(task: str | None, metric: str) -> str | None:
    """Why ``metric`` cannot judge a ``task`` model, or None when it can (``task`` None: any task).

    The spec refuses such a metric at validate time when its ``task`` is declared; this is the
    run-time check for a task only the data could tell.
    """
    if metric not in METRICS:
        return f"unknown metric {metric!r}; known: {', '.join(METRICS)}"
    if task is not None and task in TASK_METRICS and task not in METRICS[metric].tasks:
        applies = " or ".join(sorted(METRICS[metric].tasks))
        return (
            f"{metric} is a {applies} metric and does not apply to a {task} model ({task} metrics: "
            f"{', '.join(TASK_METRICS[task])}); fix the spec's evaluation section"
        )
    return None


def _lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


@dataclass(frozen=True)
class GateResult:
    """The decision of one gate.

    ``value`` is the candidate's metric (None when it could not be measured); ``threshold`` is
    the bound the value was held against (for a champion gate: the champion's value moved by the
    allowed regression; None when there is nothing to compare with).
    """

    name: str
    kind: GateKind
    metric: str
    value: float | None
    threshold: float | None
    passed: bool
    reason: str

    def format(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.name}: {self.reason}"


@dataclass(frozen=True)
class GateReport:
    """All gate decisions for one candidate. Passes when every gate passes (and when there are none)."""

    gates: tuple[GateResult, ...]

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failed(self) -> tuple[GateResult, ...]:
        return tuple(g for g in self.gates if not g.passed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (for XCom, MLflow tags and reports)."""
        return {"passed": self.passed, "gates": [asdict(g) for g in self.gates]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateReport:
        return cls(gates=tuple(GateResult(**g) for g in data["gates"]))

    def summary(self) -> str:
        """A human-readable report: a headline, then one line per gate."""
        if not self.gates:
            return "no evaluation gates configured: passed"
        head = (
            f"all {len(self.gates)} evaluation gate(s) passed"
            if self.passed
            else f"{len(self.failed)} of {len(self.gates)} evaluation gate(s) failed"
        )
        return "\n".join([head, *("  " + g.format() for g in self.gates)])

    def raise_if_failed(self) -> None:
        """:raises GateFailedError: naming each failing gate, its measured value and threshold."""
        if self.passed:
            return
        failed = self.failed
        details = "; ".join(f"{g.name}: {g.reason}" for g in failed)
        raise GateFailedError(
            f"{len(failed)} of {len(self.gates)} evaluation gate(s) failed, the model is blocked: {details}"
        )


def evaluate_gates(
    metrics: Mapping[str, float],
    *,
    bounds: Mapping[str, Mapping[str, float | None]] | None = None,
    champion_metrics: Mapping[str, float] | None = None,
    comparisons: Mapping[str, Mapping[str, float]] | None = None,
    task: str | None = None,
    champion_unusable: str | None = None,
) -> GateReport:
    """Hold the candidate's ``metrics`` against fixed bounds and against the champion.

    :param metrics: the candidate's holdout metrics (see :func:`airflow_mlops.metrics.compute_metrics`).
    :param bounds: ``{metric: {"min": x, "max": y}}``; either bound may be None or absent, and
        each given bound is its own gate (``roc_auc.min``, ``log_loss.max``).
    :param champion_metrics: the current champion's metrics on the same holdout, or None when
        there is no champion yet.
    :param comparisons: ``{metric: {"max_regression": x}}``: how far the candidate may fall
        behind the champion (absolute; for a lower-is-better metric such as ``log_loss`` or
        ``rmse`` "behind" means higher). One gate each (``roc_auc.vs_champion``).
    :param task: the candidate's task: a gate on a metric that does not apply to it (or on an
        unknown metric) fails with the reason. None: any metric of the vocabulary is accepted.
    :param champion_unusable: why the champion, though there is one, cannot be compared with the
        candidate (another task, other classes): every champion gate fails with it.
    :raises ValueError: a bound or comparison is malformed (unknown key, no bound, negative
        allowance); a malformed gate must not silently vanish.
    """
    gates: list[GateResult] = []
    for metric, bound in (bounds or {}).items():
        unknown = sorted(set(bound) - {"min", "max"})
        if unknown:
            raise ValueError(f"gate on {metric!r}: unknown key(s) {unknown}; use min and/or max")
        low, high = bound.get("min"), bound.get("max")
        if low is None and high is None:
            raise ValueError(f"gate on {metric!r} gives neither min nor max")
        if low is not None:
            gates.append(_bound_gate(metrics, metric, "min", float(low), task))
        if high is not None:
            gates.append(_bound_gate(metrics, metric, "max", float(high), task))
    for metric, comparison in (comparisons or {}).items():
        unknown = sorted(set(comparison) - {"max_regression"})
        if unknown:
            raise ValueError(
                f"champion comparison on {metric!r}: unknown key(s) {unknown}; use max_regression"
            )
        allowance = float(comparison.get("max_regression", 0.0) or 0.0)
        if not allowance >= 0:
            raise ValueError(
                f"champion comparison on {metric!r}: max_regression must be >= 0, got {allowance}"
            )
        gates.append(_champion_gate(metrics, champion_metrics, metric, allowance, task, champion_unusable))
    return GateReport(gates=tuple(gates))


def allowances(metrics: Mapping[str, Mapping[str, float]], *, key: str, gate: str) -> dict[str, float]:
    """``{metric: {key: x}}`` -> ``{metric: x}``, each ``x >= 0``; anything else is refused (a
    malformed gate must not silently vanish)."""
    out: dict[str, float] = {}
    for metric, bound in metrics.items():
        unknown = sorted(set(bound) - {key})
        if unknown or key not in bound:
            raise ValueError(f"{gate} gate on {metric!r}: give {key} (and nothing else), got {dict(bound)}")
        value = float(bound[key])
        if not value >= 0:
            raise ValueError(f"{gate} gate on {metric!r}: {key} must be >= 0, got {value}")
        out[metric] = value
    return out


def measured(metrics: Mapping[str, float] | None, metric: str) -> tuple[float | None, str]:
    """(value, "") when usable, else (None, why it could not be measured)."""
    if metrics is None or metric not in metrics or metrics[metric] is None:
        return None, "missing from the metrics"
    try:
        value = float(metrics[metric])
    except (TypeError, ValueError):
        return None, f"not a number ({metrics[metric]!r})"
    if math.isnan(value):
        return None, "NaN (e.g. the holdout set has a single class)"
    return value, ""


def _bound_gate(
    metrics: Mapping[str, float], metric: str, side: str, bound: float, task: str | None = None
) -> GateResult:
    name = f"{metric}.{side}"
    mismatch = metric_mismatch(task, metric)
    if mismatch is not None:
        return GateResult(name, "threshold", metric, None, bound, False, mismatch)
    value, why = measured(metrics, metric)
    if value is None:
        reason = (
            f"{metric} could not be measured: {why}; required {'>=' if side == 'min' else '<='} {fmt(bound)}"
        )
        return GateResult(name, "threshold", metric, None, bound, False, reason)
    value_s, bound_s = fmt_pair(value, bound)
    if side == "min":
        passed = value >= bound
        reason = f"{metric} = {value_s} {'>=' if passed else 'is below the minimum'} {bound_s}"
    else:
        passed = value <= bound
        reason = f"{metric} = {value_s} {'<=' if passed else 'is above the maximum'} {bound_s}"
    return GateResult(name, "threshold", metric, value, bound, passed, reason)


def _champion_gate(
    metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float] | None,
    metric: str,
    allowance: float,
    task: str | None = None,
    champion_unusable: str | None = None,
) -> GateResult:
    name = f"{metric}.vs_champion"
    mismatch = metric_mismatch(task, metric)
    if mismatch is not None:
        return GateResult(name, "champion", metric, None, None, False, mismatch)
    value, why = measured(metrics, metric)
    if champion_unusable is not None:
        reason = f"cannot compare {metric} with the champion: {champion_unusable}"
        return GateResult(name, "champion", metric, value, None, False, reason)
    if champion_metrics is None:
        return GateResult(name, "champion", metric, value, None, True, NO_CHAMPION_REASON)
    champion, champion_why = measured(champion_metrics, metric)
    if value is None:
        reason = f"candidate's {metric} could not be measured: {why}; cannot compare with the champion"
        return GateResult(name, "champion", metric, None, None, False, reason)
    if champion is None:
        reason = f"champion's {metric} could not be measured: {champion_why}; cannot compare"
        return GateResult(name, "champion", metric, value, None, False, reason)
    lower_better = _lower_is_better(metric)
    regression = METRICS[metric].drop(champion, value)  # positive: the candidate is worse
    threshold = champion + allowance if lower_better else champion - allowance
    passed = regression <= allowance + TOLERANCE
    value_s, champion_s = fmt_pair(value, champion)
    word = "above" if lower_better else "below"
    if passed:
        reason = (
            f"{metric} = {value_s} vs champion {champion_s}: within the allowed regression "
            f"{fmt(allowance)} ({'<=' if lower_better else '>='} {fmt(threshold)})"
        )
    else:
        reason = (
            f"{metric} = {value_s} is {fmt(regression)} {word} the champion's {champion_s}, more than "
            f"the allowed regression {fmt(allowance)} (needs {'<=' if lower_better else '>='} {fmt(threshold)})"
        )
    return GateResult(name, "champion", metric, value, threshold, passed, reason)


def fmt(x: float) -> str:
    return f"{x:.6g}"


def fmt_pair(a: float, b: float) -> tuple[str, str]:
    """Format two numbers so that different values never print the same."""
    sa, sb = fmt(a), fmt(b)
    if sa == sb and a != b:
        return repr(a), repr(b)
    return sa, sb


WATERMARK_GATE = "watermark"


def watermark_gate(predictor: Any, record: Mapping[str, Any] | None, key: bytes | None) -> GateResult:
    """The candidate must carry the pipeline's watermark (``training.watermark``): its predictions
    on the keyed trigger rows reach the count ``t`` whose false-claim bound is within alpha.

    Fails closed: no record, no key, a key of another commitment, a model that cannot be scored
    on the trigger rows, or too few matches all block, the reason naming matches, t and the bound.

    :param predictor: the loaded candidate (anything with ``predict(frame)``).
    :param record: the watermark's record (``watermark.json``: identity, commitment, basis; no key).
    :param key: the key from the watermark connection.
    """
    from airflow_mlops.exceptions import MLOpsError
    from airflow_mlops.security.watermark import WatermarkRecord, verify_predictor

    def blocked(reason: str, value: float | None = None, threshold: float | None = None) -> GateResult:
        return GateResult(WATERMARK_GATE, "watermark", "watermark_matches", value, threshold, False, reason)

    if record is None:
        return blocked(
            "the candidate carries no watermark record (watermark.json): matches n/a, t n/a, bound n/a; "
            "it was trained without training.watermark, so it cannot be shown to be ours"
        )
    if key is None:
        return blocked(
            "no watermark key: set the watermark connection named by training.watermark.key_connection"
        )
    try:
        verdict = verify_predictor(predictor, WatermarkRecord.from_dict(record), key)
    except MLOpsError as exc:
        return blocked(f"the watermark cannot be verified: {exc}")
    reason = (
        f"{verdict.matches}/{verdict.n} trigger rows match, t={verdict.t} "
        f"(bound P[Binomial({verdict.n}, p0={verdict.p0:g}) >= t] = {verdict.bound:.3g} <= alpha {verdict.alpha:g}; "
        f"key {verdict.commitment})"
    )
    return GateResult(
        WATERMARK_GATE,
        "watermark",
        "watermark_matches",
        float(verdict.matches),
        float(verdict.t),
        verdict.claimed,
        reason if verdict.claimed else reason + ": the candidate does not carry the watermark",
    )
