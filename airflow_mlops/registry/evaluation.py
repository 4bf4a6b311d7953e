"""Holdout metrics and the evaluation gates that decide whether a candidate may be promoted.

Pure functions, no Airflow and no MLflow; numpy is imported inside the functions (the DAG
processor never loads it). Gates fail closed: a metric that cannot be measured (missing or NaN),
or a champion comparison that cannot be made, blocks the candidate. The one exception is a
champion comparison when there is no champion yet: the first model has nothing to regress from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.exceptions import ArtifactError, DataError, GateFailedError
from airflow_mlops.training.ranking import roc_auc

if TYPE_CHECKING:
    import numpy as np

GateKind = Literal["threshold", "champion", "fairness", "robustness"]

# Metrics where a lower value is better; for every other metric higher is better.
LOWER_IS_BETTER = frozenset({"log_loss"})
NO_CHAMPION_REASON = "no champion yet: first model"
# Absolute slack when comparing a regression with its allowance, so that float rounding in
# ``champion - candidate`` (e.g. 0.3 - 0.1) never flips a decision at the exact boundary.
_TOLERANCE = 1e-12


def compute_metrics(y_true: Any, y_score: Any, *, threshold: float = 0.5) -> dict[str, float]:
    """Binary classification metrics of positive-class probabilities ``y_score``.

    Returns ``roc_auc``, ``pr_auc`` (average precision), ``f1``, ``precision``, ``recall``,
    ``accuracy`` (predicting positive where ``score >= threshold``) and ``log_loss`` (with
    probabilities clipped to ``[eps, 1 - eps]``). The values agree with scikit-learn's
    ``roc_auc_score``, ``average_precision_score``, ``f1_score``, ``precision_score``,
    ``recall_score`` (``zero_division=0``), ``accuracy_score`` and ``log_loss``.

    When ``y_true`` has a single class, ``roc_auc`` and ``pr_auc`` are NaN (undefined), so a gate
    on them blocks rather than passes.

    :param y_true: labels, 1/True for the positive class and 0/False for the negative class.
    :param y_score: probabilities of the positive class, in [0, 1].
    :raises DataError: empty or mismatched inputs, labels other than 0/1, scores that are not
        finite probabilities.
    """
    import numpy as np

    y = np.asarray(y_true)
    score = np.asarray(y_score, dtype=np.float64)
    if y.ndim != 1 or score.ndim != 1:
        raise DataError(f"labels and scores must be 1-D, got shapes {y.shape} and {score.shape}")
    if len(y) != len(score):
        raise DataError(f"{len(y)} labels but {len(score)} scores; they must be the same length")
    if len(y) == 0:
        raise DataError("cannot compute metrics on an empty evaluation set")
    if y.dtype == bool:
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number) or not np.isin(y, (0, 1)).all():
        found = sorted({str(v) for v in np.unique(y)})[:10]
        raise DataError(f"labels must be 0/1 (or booleans), found values {', '.join(found)}")
    y = y.astype(np.int64)
    if not np.isfinite(score).all():
        raise DataError(f"{int((~np.isfinite(score)).sum())} score(s) are NaN or infinite")
    if score.min() < 0.0 or score.max() > 1.0:
        raise DataError(
            f"scores must be probabilities in [0, 1], found range [{score.min():g}, {score.max():g}]"
        )
    if not 0.0 <= threshold <= 1.0:
        raise DataError(f"threshold must be in [0, 1], got {threshold!r}")

    predicted = score >= threshold
    positive = y == 1
    tp = int(np.sum(predicted & positive))
    fp = int(np.sum(predicted & ~positive))
    fn = int(np.sum(~predicted & positive))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    eps = float(np.finfo(np.float64).eps)
    clipped = np.clip(score, eps, 1 - eps)
    log_loss = float(-np.mean(np.where(positive, np.log(clipped), np.log1p(-clipped))))
    return {
        "roc_auc": roc_auc(y, score),
        "pr_auc": _average_precision(y, score),
        "f1": float(f1),
        "precision": float(precision),
        "recall": float(recall),
        "accuracy": float(np.mean(predicted == positive)),
        "log_loss": log_loss,
    }


def _average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """Sum over distinct score thresholds (high to low) of ``(R_k - R_{k-1}) * P_k``."""
    import numpy as np

    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        return math.nan
    order = np.argsort(-score, kind="mergesort")
    sorted_score, sorted_y = score[order], y[order]
    # The last index of each run of equal scores: ties enter the curve together.
    last_of_run = np.r_[np.flatnonzero(np.diff(sorted_score)), len(y) - 1]
    tps = np.cumsum(sorted_y)[last_of_run]
    precision = tps / (last_of_run + 1)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


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
) -> GateReport:
    """Hold the candidate's ``metrics`` against fixed bounds and against the champion.

    :param metrics: the candidate's holdout metrics (see :func:`compute_metrics`).
    :param bounds: ``{metric: {"min": x, "max": y}}``; either bound may be None or absent, and
        each given bound is its own gate (``roc_auc.min``, ``log_loss.max``).
    :param champion_metrics: the current champion's metrics on the same holdout, or None when
        there is no champion yet.
    :param comparisons: ``{metric: {"max_regression": x}}``: how far the candidate may fall
        behind the champion (absolute; for ``log_loss`` "behind" means higher). One gate each
        (``roc_auc.vs_champion``).
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
            gates.append(_bound_gate(metrics, metric, "min", float(low)))
        if high is not None:
            gates.append(_bound_gate(metrics, metric, "max", float(high)))
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
        gates.append(_champion_gate(metrics, champion_metrics, metric, allowance))
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


def _measured(metrics: Mapping[str, float] | None, metric: str) -> tuple[float | None, str]:
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


def _bound_gate(metrics: Mapping[str, float], metric: str, side: str, bound: float) -> GateResult:
    name = f"{metric}.{side}"
    value, why = _measured(metrics, metric)
    if value is None:
        reason = (
            f"{metric} could not be measured: {why}; required {'>=' if side == 'min' else '<='} {_fmt(bound)}"
        )
        return GateResult(name, "threshold", metric, None, bound, False, reason)
    value_s, bound_s = _fmt_pair(value, bound)
    if side == "min":
        passed = value >= bound
        reason = f"{metric} = {value_s} {'>=' if passed else 'is below the minimum'} {bound_s}"
    else:
        passed = value <= bound
        reason = f"{metric} = {value_s} {'<=' if passed else 'is above the maximum'} {bound_s}"
    return GateResult(name, "threshold", metric, value, bound, passed, reason)


def _champion_gate(
    metrics: Mapping[str, float], champion_metrics: Mapping[str, float] | None, metric: str, allowance: float
) -> GateResult:
    name = f"{metric}.vs_champion"
    value, why = _measured(metrics, metric)
    if champion_metrics is None:
        return GateResult(name, "champion", metric, value, None, True, NO_CHAMPION_REASON)
    champion, champion_why = _measured(champion_metrics, metric)
    if value is None:
        reason = f"candidate's {metric} could not be measured: {why}; cannot compare with the champion"
        return GateResult(name, "champion", metric, None, None, False, reason)
    if champion is None:
        reason = f"champion's {metric} could not be measured: {champion_why}; cannot compare"
        return GateResult(name, "champion", metric, value, None, False, reason)
    lower_better = metric in LOWER_IS_BETTER
    regression = value - champion if lower_better else champion - value
    threshold = champion + allowance if lower_better else champion - allowance
    passed = regression <= allowance + _TOLERANCE
    value_s, champion_s = _fmt_pair(value, champion)
    word = "above" if lower_better else "below"
    if passed:
        reason = (
            f"{metric} = {value_s} vs champion {champion_s}: within the allowed regression "
            f"{_fmt(allowance)} ({'<=' if lower_better else '>='} {_fmt(threshold)})"
        )
    else:
        reason = (
            f"{metric} = {value_s} is {_fmt(regression)} {word} the champion's {champion_s}, more than "
            f"the allowed regression {_fmt(allowance)} (needs {'<=' if lower_better else '>='} {_fmt(threshold)})"
        )
    return GateResult(name, "champion", metric, value, threshold, passed, reason)


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _fmt_pair(a: float, b: float) -> tuple[str, str]:
    """Format two numbers so that different values never print the same."""
    sa, sb = _fmt(a), _fmt(b)
    if sa == sb and a != b:
        return repr(a), repr(b)
    return sa, sb


# --- one evaluation -----------------------------------------------------------------------------

NO_CHAMPION_NOTE = "no champion yet: absolute thresholds only"
NO_COMPARISON_NOTE = "no champion comparison configured: absolute thresholds only"


ThresholdSource = Literal["model", "fallback"]


@dataclass(frozen=True)
class EvaluationReport:
    """The evaluation of one candidate on the held-out rows (and of the champion on the same rows).

    ``note`` says what the candidate was held against: the champion (its version), or absolute
    thresholds only (no champion yet, or no comparison configured). ``threshold`` is the
    candidate's operating threshold, ``champion_threshold`` the champion's: each model is scored at
    its own; ``*_threshold_source`` is ``model`` (stored with it) or ``fallback`` (a model trained
    before thresholds were stored, scored at the evaluation's fallback threshold).
    """

    metrics: Mapping[str, float]
    gates: GateReport
    champion_version: str | None
    champion_metrics: Mapping[str, float] | None
    holdout_rows: int
    positive_rows: int
    threshold: float
    note: str
    threshold_source: ThresholdSource = "model"
    champion_threshold: float | None = None
    champion_threshold_source: ThresholdSource | None = None
    # Details of the candidate-only gates (per slice / per perturbation), None when not configured.
    fairness: Mapping[str, Any] | None = None
    robustness: Mapping[str, Any] | None = None
    # The plotted curves of each scored model ({"candidate": ..., "champion": ...}, see
    # :func:`~airflow_mlops.registry.evaluation_report.score_curves`), for the HTML report only:
    # downsampled, so bounded in size, and kept out of ``to_dict()`` (evaluation.json is attested).
    curves: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return self.gates.passed

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (stored as ``evaluation.json`` and logged to the MLflow run)."""
        return {
            "metrics": dict(self.metrics),
            "champion_version": self.champion_version,
            "champion_metrics": dict(self.champion_metrics) if self.champion_metrics is not None else None,
            "holdout_rows": self.holdout_rows,
            "positive_rows": self.positive_rows,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "champion_threshold": self.champion_threshold,
            "champion_threshold_source": self.champion_threshold_source,
            "fairness": self.fairness,
            "robustness": self.robustness,
            "note": self.note,
            "gates": self.gates.to_dict(),
            "passed": self.passed,
        }


def operating_threshold(config: Mapping[str, Any], fallback: float) -> tuple[float, ThresholdSource]:
    """The threshold a model is scored at: the one stored in its ``model_config.json``
    (``"model"``), or ``fallback`` for a model trained before thresholds were stored.

    :raises ArtifactError: the stored threshold is not a number in [0, 1] (blocks, never guessed).
    """
    stored = config.get("threshold")
    if stored is None:
        return float(fallback), "fallback"
    if isinstance(stored, bool) or not isinstance(stored, (int, float)) or not 0.0 <= stored <= 1.0:
        raise ArtifactError(
            f"the model's model_config.json holds threshold {stored!r}, not a number in [0, 1]; "
            "retrain the model"
        )
    return float(stored), "model"


@dataclass(frozen=True)
class ModelScore:
    """One model's holdout metrics and the threshold they were measured at (and where it came from)."""

    metrics: dict[str, float]
    threshold: float
    threshold_source: ThresholdSource
    # The loaded model and its holdout scores, reused by the candidate-only gates (fairness, robustness).
    predictor: Any = field(default=None, repr=False, compare=False)
    scores: Any = field(default=None, repr=False, compare=False)


def score_model_detailed(
    model_dir: Any, holdout: Any, *, target: str, positive_label: Any, threshold: float
) -> ModelScore:
    """Holdout metrics of a packaged model (already verified and scanned: it is loaded here), at
    its own stored threshold; ``threshold`` is the fallback for a model that stores none."""
    from airflow_mlops.data.labels import positive_mask
    from airflow_mlops.registry.mlflow_registry import weights_dir
    from airflow_mlops.training.model import load_predictor

    if target not in holdout.columns:
        raise DataError(
            f"the holdout data has no target column {target!r}; it has {list(map(str, holdout.columns))}"
        )
    y_true = positive_mask(holdout[target], positive_label, column=target)
    predictor = load_predictor(weights_dir(model_dir))
    used, source = operating_threshold(getattr(predictor, "config", {}) or {}, threshold)
    scores = predictor.predict_proba(holdout)
    metrics = compute_metrics(y_true, scores, threshold=used)
    return ModelScore(metrics, used, source, predictor, scores)


def score_model(
    model_dir: Any, holdout: Any, *, target: str, positive_label: Any, threshold: float
) -> dict[str, float]:
    """The metrics of :func:`score_model_detailed` (at the model's own threshold, else ``threshold``)."""
    return score_model_detailed(
        model_dir, holdout, target=target, positive_label=positive_label, threshold=threshold
    ).metrics


def evaluate_candidate(
    model_dir: Any,
    holdout: Any,
    *,
    target: str,
    positive_label: Any,
    bounds: Mapping[str, Mapping[str, float | None]] | None,
    comparisons: Mapping[str, Mapping[str, float]] | None,
    threshold: float,
    champion: tuple[str, Any] | None = None,
    fairness: Mapping[str, Any] | None = None,
    robustness: Mapping[str, Any] | None = None,
) -> EvaluationReport:
    """Score the candidate, and the champion on the *same* rows, and apply every gate.

    :param model_dir: the candidate's packaged model directory (scanned before it gets here).
    :param holdout: the held-out rows (a pandas DataFrame with the ``target`` column).
    :param bounds: absolute thresholds, ``{metric: {"min": x, "max": y}}``.
    :param comparisons: allowed change versus the champion, ``{metric: {"max_regression": x}}``.
    :param threshold: the fallback operating threshold for the thresholded metrics (f1,
        precision, ...): each model is scored at the threshold stored with it, this one only for
        a model that stores none (trained before thresholds were stored).
    :param champion: ``(version, model_dir)`` of the champion, already downloaded, verified and
        scanned (see :func:`~airflow_mlops.registry.mlflow_registry.fetch_trusted_champion`), or
        None when there is none: then only the absolute thresholds decide, and the note says so.
    :param fairness: ``evaluation.fairness`` of the spec as a plain dict, or None: metric gaps
        between slices of the holdout (:mod:`~airflow_mlops.registry.fairness`), candidate only.
    :param robustness: ``evaluation.robustness`` of the spec as a plain dict, or None: metric
        drops under perturbations (:mod:`~airflow_mlops.registry.robustness`), candidate only.
    :raises DataError: the holdout cannot be scored (no target, missing or non-binary labels, a
        positive label that does not occur, a single class).
    """
    from airflow_mlops.data.labels import positive_mask

    candidate = score_model_detailed(
        model_dir, holdout, target=target, positive_label=positive_label, threshold=threshold
    )
    metrics = candidate.metrics
    champion_version: str | None = None
    champion_metrics: dict[str, float] | None = None
    champion_score: ModelScore | None = None
    if champion is not None:
        champion_version = str(champion[0])
        champion_score = score_model_detailed(
            champion[1], holdout, target=target, positive_label=positive_label, threshold=threshold
        )
        champion_metrics = champion_score.metrics
        note = f"compared with champion version {champion_version} on the same {len(holdout)} rows"
    else:
        note = NO_CHAMPION_NOTE if comparisons else NO_COMPARISON_NOTE
    gates = evaluate_gates(metrics, bounds=bounds, champion_metrics=champion_metrics, comparisons=comparisons)
    checks = None
    if fairness or robustness:
        from airflow_mlops.registry.holdout_checks import check_candidate

        checks = check_candidate(
            candidate.predictor,
            holdout,
            positive_mask(holdout[target], positive_label, column=target),
            threshold=candidate.threshold,
            clean_metrics=metrics,
            fairness=fairness,
            robustness=robustness,
            scores=candidate.scores,
        )
        gates = GateReport(gates=(*gates.gates, *checks.gates))
    return EvaluationReport(
        metrics=metrics,
        gates=gates,
        champion_version=champion_version,
        champion_metrics=champion_metrics,
        holdout_rows=len(holdout),
        positive_rows=int(positive_mask(holdout[target], positive_label, column=target).sum()),
        threshold=candidate.threshold,
        note=note,
        threshold_source=candidate.threshold_source,
        champion_threshold=champion_score.threshold if champion_score else None,
        champion_threshold_source=champion_score.threshold_source if champion_score else None,
        fairness=checks.fairness if checks else None,
        robustness=checks.robustness if checks else None,
        curves=_curves(holdout, target, positive_label, candidate, champion_score),
    )


def _curves(
    holdout: Any, target: str, positive_label: Any, candidate: ModelScore, champion: ModelScore | None
) -> dict[str, Any]:
    """The report's plotted curves of the candidate (and the champion) from the scores at hand."""
    from airflow_mlops.data.labels import positive_mask
    from airflow_mlops.registry.evaluation_report import score_curves

    y_true = positive_mask(holdout[target], positive_label, column=target)
    out = {"candidate": score_curves(y_true, candidate.scores, threshold=candidate.threshold)}
    if champion is not None:
        out["champion"] = score_curves(y_true, champion.scores, threshold=champion.threshold)
    return out
