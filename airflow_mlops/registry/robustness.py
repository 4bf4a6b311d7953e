"""Robustness under perturbations of the holdout: the metric's drop from the clean score, as a gate.

Two perturbations, each applied to a copy of the holdout that the candidate then scores:

- ``{"missing": [feature, ...]}``: the features are blanked on every row (NaN for a numeric
  feature, None for a categorical one), so the model's own imputation answers: the
  :class:`~airflow_mlops.training.networks.Preprocessor` puts a numeric feature at its training
  mean and encodes a missing category as no category at all.
- ``{"noise": {"std": s, "features": [...] | None}}``: Gaussian noise with standard deviation
  ``s`` times each feature's holdout standard deviation is added to the numeric features (default:
  every numeric feature of the model); missing values stay missing. The noise is drawn from
  ``numpy.random.default_rng([seed, index of the perturbation])``: the same seed gives the same
  rows, and adding a perturbation does not change the others.

Any task: the copies are scored with the metrics of the model's task (:mod:`airflow_mlops.metrics`).
Each (perturbation, metric) pair is one gate: the drop -- how much worse the perturbed copy scores
than the clean holdout, by the metric's direction (``roc_auc`` or ``r2`` falling, ``log_loss`` or
``rmse`` rising) -- is held against ``max_drop``. Fail closed: a perturbation that names a column
the holdout lacks, a column that is not a feature of the model, noise on a categorical feature, a
copy the model cannot score, a metric that cannot be measured or that does not apply to the
model's task fails the gate with the reason.

Pure functions, no Airflow; numpy and pandas are imported inside them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import DataError
from airflow_mlops.metrics import METRICS, TASK_METRICS
from airflow_mlops.registry.gates import (
    TOLERANCE,
    GateResult,
    allowances,
    fmt,
    fmt_pair,
    measured,
    metric_mismatch,
)

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class RobustnessResult:
    """The robustness gates and their JSON-safe details (per perturbation: what it changed, every
    metric on the perturbed copy and its change from the clean holdout)."""

    gates: tuple[GateResult, ...]
    details: dict[str, Any]


def perturbation_label(perturbation: Mapping[str, Any]) -> str:
    """``missing(a, b)``, ``noise(0.1 std)`` or ``noise(0.1 std: a, b)``."""
    if perturbation.get("missing") is not None:
        return f"missing({', '.join(map(str, perturbation['missing']))})"
    noise = perturbation["noise"]
    features = noise.get("features")
    return f"noise({fmt(float(noise['std']))} std" + (
        f": {', '.join(map(str, features))})" if features else ")"
    )


def perturb(
    holdout: pd.DataFrame,
    perturbation: Mapping[str, Any],
    *,
    numeric_features: Sequence[str],
    categorical_features: Sequence[str],
    seed: int = 0,
    index: int = 0,
) -> tuple[pd.DataFrame, list[str]]:
    """A perturbed copy of ``holdout`` and the columns that were changed (``holdout`` is untouched).

    :param numeric_features: the model's numeric features (see ``Preprocessor.numeric``).
    :param categorical_features: the model's categorical features.
    :param seed: the noise seed; ``index`` (the perturbation's position) is mixed in.
    :raises DataError: a named column the holdout lacks, one that is not a feature of the model,
        noise on a categorical feature or on values that are not numbers, a model without numeric
        features to add noise to.
    :raises ValueError: a malformed perturbation (neither or both of ``missing`` and ``noise``).
    """
    import numpy as np
    import pandas as pd

    kinds = [k for k in ("missing", "noise") if perturbation.get(k) is not None]
    if len(kinds) != 1 or set(perturbation) - {"missing", "noise"}:
        raise ValueError(
            f"a perturbation is {{missing: [...]}} or {{noise: {{std: ...}}}}, got {dict(perturbation)}"
        )
    numeric, categorical = [str(c) for c in numeric_features], [str(c) for c in categorical_features]
    out = holdout.copy()
    if kinds[0] == "missing":
        columns = [str(c) for c in perturbation["missing"]]
        _check_columns(holdout, columns, numeric, categorical)
        for column in columns:
            if column in numeric:
                out[column] = pd.Series(np.nan, index=out.index, dtype=np.float64)
            else:
                out[column] = pd.Series([None] * len(out), index=out.index, dtype=object)
        return out, columns
    noise = perturbation["noise"]
    std = float(noise["std"])
    if not (math.isfinite(std) and std > 0):
        raise ValueError(f"noise std must be a positive number, got {noise['std']!r}")
    columns = [str(c) for c in noise.get("features") or numeric]
    if not columns:
        raise DataError("the model has no numeric features to add noise to")
    _check_columns(holdout, columns, numeric, categorical)
    categorical_named = [c for c in columns if c not in numeric]
    if categorical_named:
        raise DataError(
            f"noise applies to numeric features; {', '.join(map(repr, categorical_named))} "
            "is categorical for the model (blank it with `missing` instead)"
        )
    rng = np.random.default_rng([int(seed), int(index)])
    for column in columns:
        try:
            values = pd.to_numeric(holdout[column], errors="raise").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        except (TypeError, ValueError) as exc:
            raise DataError(f"column {column!r} holds values that are not numbers: {exc}") from exc
        spread = float(np.nanstd(values)) if np.isfinite(values).any() else 0.0
        out[column] = values + rng.normal(0.0, std * spread, len(values))  # NaN stays NaN
    return out, columns


def _check_columns(
    holdout: pd.DataFrame, columns: Sequence[str], numeric: Sequence[str], categorical: Sequence[str]
) -> None:
    present = {str(c) for c in holdout.columns}
    lacking = [c for c in columns if c not in present]
    if lacking:
        raise DataError(f"the holdout has no column(s) {', '.join(map(repr, lacking))}")
    unused = [c for c in columns if c not in numeric and c not in categorical]
    if unused:
        raise DataError(
            f"{', '.join(map(repr, unused))} is not a feature of the model, so perturbing it tests nothing"
        )


def evaluate_robustness(
    predict: Callable[[pd.DataFrame], Any],
    holdout: pd.DataFrame,
    y_true: Any,
    *,
    perturbations: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Mapping[str, float]],
    threshold: float | None = None,
    clean_metrics: Mapping[str, float],
    numeric_features: Sequence[str],
    categorical_features: Sequence[str],
    seed: int = 0,
    task: str = "binary",
) -> RobustnessResult:
    """Score perturbed copies of the holdout and gate each metric's drop from the clean holdout.

    :param predict: the candidate: DataFrame in, the task's output out
        (:meth:`~airflow_mlops.training.flavors.Predictor.predict_scores`: positive-class
        probabilities, class probabilities, or predicted values).
    :param y_true: the holdout's target, in order, as :func:`airflow_mlops.tasks.encode_target`
        gives it (binary: positive-class mask or 0/1 labels; multiclass: class indices;
        regression: values).
    :param perturbations: ``{"missing": [...]}`` / ``{"noise": {"std": s, "features": [...]|None}}``.
    :param metrics: ``{metric: {"max_drop": x}}``, metrics of the task.
    :param threshold: binary only: the operating threshold the candidate is scored at (default 0.5).
    :param clean_metrics: the candidate's metrics on the unperturbed holdout (binary: at ``threshold``).
    :param task: ``binary``, ``multiclass`` or ``regression``.
    :raises ValueError: a malformed metric entry (it must not silently vanish).
    """
    import numpy as np

    from airflow_mlops.metrics import compute_metrics

    if task not in TASK_METRICS:
        raise ValueError(f"unknown task {task!r}; one of {', '.join(TASK_METRICS)}")
    drops = allowances(metrics, key="max_drop", gate="robustness")
    inapplicable = {m: why for m in drops if (why := metric_mismatch(task, m)) is not None}
    cut = 0.5 if threshold is None else float(threshold)
    y = np.asarray(y_true)
    gates: list[GateResult] = []
    entries: list[dict[str, Any]] = []
    labels: list[str] = []
    for index, perturbation in enumerate(perturbations):
        label = perturbation_label(perturbation)
        if label in labels:
            label = f"{label}#{index}"
        labels.append(label)
        entry: dict[str, Any] = {
            "perturbation": label,
            "spec": _json_safe({k: v for k, v in perturbation.items() if v is not None}),
            "columns": [],
            "metrics": {},
            "change": {},
            "error": None,
        }
        entries.append(entry)
        try:
            copy, columns = perturb(
                holdout,
                perturbation,
                numeric_features=numeric_features,
                categorical_features=categorical_features,
                seed=seed,
                index=index,
            )
            entry["columns"] = columns
            perturbed = compute_metrics(task, y, predict(copy), threshold=cut)
        except DataError as exc:
            entry["error"] = str(exc)
            for metric, allowance in drops.items():
                reason = inapplicable.get(metric) or f"cannot score the holdout under {label}: {exc}"
                bound = None if metric in inapplicable else _bound(metric, allowance, clean_metrics)
                gates.append(
                    GateResult(_name(metric, label), "robustness", metric, None, bound, False, reason)
                )
            continue
        entry["metrics"] = {m: _json_number(v) for m, v in perturbed.items()}
        for metric, value in perturbed.items():
            clean = clean_metrics.get(metric)
            entry["change"][metric] = (
                None if clean is None or math.isnan(value) or math.isnan(clean) else float(value - clean)
            )
        for metric, allowance in drops.items():
            if metric in inapplicable:
                name = _name(metric, label)
                gates.append(GateResult(name, "robustness", metric, None, None, False, inapplicable[metric]))
                continue
            gates.append(_drop_gate(metric, label, allowance, perturbed, clean_metrics))
    details = {
        "task": task,
        "seed": int(seed),
        "threshold": cut if task == "binary" else None,
        "clean": {m: _json_number(float(v)) for m, v in clean_metrics.items()},
        "perturbations": entries,
    }
    return RobustnessResult(gates=tuple(gates), details=details)


def _name(metric: str, label: str) -> str:
    return f"{metric}.under_{label}"


def _drop_gate(
    metric: str,
    label: str,
    allowance: float,
    perturbed: Mapping[str, float],
    clean_metrics: Mapping[str, float],
) -> GateResult:
    name = _name(metric, label)
    clean, clean_why = measured(clean_metrics, metric)
    if clean is None:
        reason = f"{metric} on the clean holdout could not be measured: {clean_why}; cannot compare"
        return GateResult(name, "robustness", metric, None, None, False, reason)
    info = METRICS[metric]
    lower_better = not info.higher_is_better
    bound = clean + allowance if lower_better else clean - allowance
    value, why = measured(perturbed, metric)
    if value is None:
        reason = f"{metric} under {label} could not be measured: {why}"
        return GateResult(name, "robustness", metric, None, bound, False, reason)
    drop = info.drop(clean, value)  # positive: worse under the perturbation
    passed = drop <= allowance + TOLERANCE
    value_s, clean_s = fmt_pair(value, clean)
    worse = "rose" if lower_better else "fell"
    moved = f"{worse} {fmt(drop)}" if drop > 0 else f"did not get worse ({fmt(value - clean):s} change)"
    if passed:
        reason = (
            f"{metric} = {value_s} under {label} vs {clean_s} clean: {moved}, within the allowed "
            f"{fmt(allowance)}"
        )
    else:
        reason = (
            f"{metric} = {value_s} under {label} vs {clean_s} clean: {moved}, more than the allowed "
            f"{fmt(allowance)} (needs {'<=' if lower_better else '>='} {fmt(bound)})"
        )
    return GateResult(name, "robustness", metric, value, bound, passed, reason)


def _bound(metric: str, allowance: float, clean_metrics: Mapping[str, float]) -> float | None:
    """The value the perturbed metric is held against, or None when the clean one is unknown."""
    clean, _ = measured(clean_metrics, metric)
    if clean is None:
        return None
    return clean - allowance if METRICS[metric].higher_is_better else clean + allowance


def _json_number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
