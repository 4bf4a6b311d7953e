"""Holdout metrics and the evaluation gates that decide whether a candidate may be promoted.

Any model of any task: the task (``binary``, ``multiclass`` or ``regression``) is the candidate's,
read from its ``model_config.json``; the metrics are those of :mod:`airflow_mlops.metrics` (the
one vocabulary: which tasks a metric applies to, and whether higher or lower is better). The
champion is scored on the same holdout rows, and only when it serves the same task with the same
classes can it be compared; otherwise the comparison cannot decide, and blocks.

Pure functions, no Airflow and no MLflow; numpy is imported inside the functions (the DAG
processor never loads it). Gates fail closed: a metric that cannot be measured (missing or NaN),
a metric that does not apply to the model's task, or a champion comparison that cannot be made
blocks the candidate. The one exception is a champion comparison when there is no champion yet:
the first model has nothing to regress from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.exceptions import ArtifactError, DataError
from airflow_mlops.metrics import LOWER_IS_BETTER
from airflow_mlops.registry.gates import (
    NO_CHAMPION_REASON,
    GateReport,
    GateResult,
    allowances,
    evaluate_gates,
    metric_mismatch,
)
from airflow_mlops.registry.holdout_checks import check_candidate

if TYPE_CHECKING:
    import numpy as np

    from airflow_mlops.training.flavors import Predictor

__all__ = [
    "LOWER_IS_BETTER",  # re-exported: drift.report reads it from here (airflow_mlops.metrics owns it)
    "NO_CHAMPION_NOTE",
    "NO_CHAMPION_REASON",
    "NO_COMPARISON_NOTE",
    "EvaluationReport",
    "GateReport",
    "GateResult",
    "ModelScore",
    "allowances",
    "champion_mismatch",
    "compute_metrics",
    "describe_model",
    "evaluate_candidate",
    "evaluate_gates",
    "holdout_target",
    "load_model",
    "metric_mismatch",
    "operating_threshold",
    "score_model",
    "score_model_detailed",
    "score_predictor",
]


def compute_metrics(y_true: Any, y_score: Any, *, threshold: float = 0.5) -> dict[str, float]:
    """Binary metrics of positive-class probabilities: the rollout gate's and the drift
    monitor's older entry point. New code calls :func:`airflow_mlops.metrics.compute_metrics`
    with the task; this checks what a binary caller hands over and delegates to it.

    :param y_true: 1/True for the positive class, 0/False for the negative class.
    :param y_score: probabilities of the positive class, in [0, 1].
    :returns: every binary metric of the vocabulary (NaN where undefined, e.g. ROC AUC of one class).
    :raises DataError: empty or mismatched inputs, labels other than 0/1, scores that are not
        finite probabilities, a threshold outside [0, 1].
    """
    import numpy as np

    from airflow_mlops.metrics import compute_metrics as task_metrics

    y = np.asarray(y_true)
    score = np.asarray(y_score, dtype=np.float64)
    if y.ndim != 1 or score.ndim != 1:
        raise DataError(f"labels and scores must be 1-D, got shapes {y.shape} and {score.shape}")
    if len(y) != len(score):
        raise DataError(f"{len(y)} labels but {len(score)} scores; they must be the same length")
    if len(y) == 0:
        raise DataError("cannot compute metrics on an empty evaluation set")
    if y.dtype != bool and (not np.issubdtype(y.dtype, np.number) or not np.isin(y, (0, 1)).all()):
        found = sorted({str(v) for v in np.unique(y)})[:10]
        raise DataError(f"labels must be 0/1 (or booleans), found values {', '.join(found)}")
    if not np.isfinite(score).all():
        raise DataError(f"{int((~np.isfinite(score)).sum())} score(s) are NaN or infinite")
    if score.min() < 0.0 or score.max() > 1.0:
        raise DataError(
            f"scores must be probabilities in [0, 1], found range [{score.min():g}, {score.max():g}]"
        )
    if not 0.0 <= threshold <= 1.0:
        raise DataError(f"threshold must be in [0, 1], got {threshold!r}")
    return task_metrics("binary", y.astype(bool), score, threshold=threshold)


# --- one evaluation -----------------------------------------------------------------------------

NO_CHAMPION_NOTE = "no champion yet: absolute thresholds only"
NO_COMPARISON_NOTE = "no champion comparison configured: absolute thresholds only"


ThresholdSource = Literal["model", "fallback"]


@dataclass(frozen=True)
class EvaluationReport:
    """The evaluation of one candidate on the held-out rows (and of the champion on the same rows).

    ``task`` is the candidate's (``binary``, ``multiclass`` or ``regression``), ``classes`` its
    class labels (classification), ``model`` what it is (flavor, format, framework: see
    :meth:`~airflow_mlops.training.flavors.Predictor.describe`).

    ``note`` says what the candidate was held against: the champion (its version), a champion
    that cannot be compared (``champion_mismatch`` says why: another task, other classes), or
    absolute thresholds only (no champion yet, or no comparison configured).

    Binary only: ``threshold`` is the candidate's operating threshold, ``champion_threshold`` the
    champion's: each model is scored at its own; ``*_threshold_source`` is ``model`` (stored with
    it) or ``fallback`` (a model trained before thresholds were stored, scored at the evaluation's
    fallback threshold). Multiclass and regression models have no threshold (None).
    """

    metrics: Mapping[str, float]
    gates: GateReport
    champion_version: str | None
    champion_metrics: Mapping[str, float] | None
    holdout_rows: int
    positive_rows: int | None
    threshold: float | None
    note: str
    threshold_source: ThresholdSource | None = "model"
    champion_threshold: float | None = None
    champion_threshold_source: ThresholdSource | None = None
    # Details of the candidate-only gates (per slice / per perturbation), None when not configured.
    fairness: Mapping[str, Any] | None = None
    robustness: Mapping[str, Any] | None = None
    # The plotted curves of each scored model ({"candidate": ..., "champion": ...}, see
    # :func:`~airflow_mlops.metrics.model_curves`), for the HTML report only:
    # downsampled, so bounded in size, and kept out of ``to_dict()`` (evaluation.json is attested).
    curves: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    task: str = "binary"
    classes: tuple[str, ...] | None = None
    model: Mapping[str, Any] | None = None
    champion_model: Mapping[str, Any] | None = None
    champion_mismatch: str | None = None

    @property
    def passed(self) -> bool:
        return self.gates.passed

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (stored as ``evaluation.json`` and logged to the MLflow run)."""
        return {
            "task": self.task,
            "classes": list(self.classes) if self.classes is not None else None,
            "model": dict(self.model) if self.model is not None else None,
            "metrics": dict(self.metrics),
            "champion_version": self.champion_version,
            "champion_metrics": dict(self.champion_metrics) if self.champion_metrics is not None else None,
            "champion_model": dict(self.champion_model) if self.champion_model is not None else None,
            "champion_mismatch": self.champion_mismatch,
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
    """The threshold a binary model is scored at: the one stored in its ``model_config.json``
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
    """One model's holdout metrics, its task, and (binary) the threshold they were measured at."""

    metrics: dict[str, float]
    threshold: float | None
    threshold_source: ThresholdSource | None
    # The loaded model, its holdout output and the encoded target, reused by the report and the
    # candidate-only gates (fairness, robustness).
    predictor: Any = field(default=None, repr=False, compare=False)
    scores: Any = field(default=None, repr=False, compare=False)
    task: str = "binary"
    y_true: Any = field(default=None, repr=False, compare=False)


def load_model(model_dir: Any) -> Predictor:
    """The packaged model of ``model_dir`` (already verified and scanned), any flavor."""
    from airflow_mlops.registry.mlflow_registry import weights_dir
    from airflow_mlops.training import flavors

    return flavors.load_predictor(weights_dir(model_dir))


def holdout_target(predictor: Any, holdout: Any, *, target: str, positive_label: Any = None) -> np.ndarray:
    """The holdout's target encoded for ``predictor``'s task (:func:`airflow_mlops.tasks.encode_target`).

    Binary: the positive-class mask of ``positive_label`` (None: the model's own positive label),
    which must be the class the model scores; multiclass: indices into the model's classes (a
    label it was not trained on is an error); regression: the values.

    :raises DataError: no target column, labels that do not fit the task, or a ``positive_label``
        other than the model's.
    """
    from airflow_mlops.labels import label_key
    from airflow_mlops.tasks import encode_target

    if target not in holdout.columns:
        raise DataError(
            f"the holdout data has no target column {target!r}; it has {list(map(str, holdout.columns))}"
        )
    task = predictor.task
    if task != "binary":
        return encode_target(
            task, holdout[target], classes=predictor.classes, column=target, where="the holdout"
        )
    model_label = predictor.positive_label
    label = model_label if positive_label is None else positive_label
    y = encode_target("binary", holdout[target], positive_label=label, column=target, where="the holdout")
    if model_label is not None and label_key(label) != label_key(model_label):
        raise DataError(
            f"the evaluation's positive_label {label!r} is not the class the model scores (its positive "
            f"label is {model_label!r}): the model was trained for another positive class; retrain it "
            "or set data.positive_label to the model's"
        )
    return y


def score_predictor(predictor: Any, holdout: Any, y_true: Any, *, threshold: float) -> ModelScore:
    """The holdout metrics of a loaded model (its task's metrics; binary at its own stored
    threshold, ``threshold`` being the fallback for a model that stores none)."""
    from airflow_mlops.metrics import compute_metrics as task_metrics

    task = predictor.task
    used: float | None = None
    source: ThresholdSource | None = None
    if task == "binary":
        used, source = operating_threshold(getattr(predictor, "config", {}) or {}, threshold)
    output = predictor.predict_scores(holdout)
    metrics = task_metrics(task, y_true, output, threshold=used if used is not None else 0.5)
    return ModelScore(metrics, used, source, predictor, output, task, y_true)


def score_model_detailed(
    model_dir: Any, holdout: Any, *, target: str, positive_label: Any, threshold: float
) -> ModelScore:
    """Holdout metrics of a packaged model (already verified and scanned: it is loaded here) with
    its task's metrics; a binary model at its own stored threshold, ``threshold`` being the
    fallback for a model that stores none."""
    predictor = load_model(model_dir)
    y_true = holdout_target(predictor, holdout, target=target, positive_label=positive_label)
    return score_predictor(predictor, holdout, y_true, threshold=threshold)


def score_model(
    model_dir: Any, holdout: Any, *, target: str, positive_label: Any, threshold: float
) -> dict[str, float]:
    """The metrics of :func:`score_model_detailed`."""
    return score_model_detailed(
        model_dir, holdout, target=target, positive_label=positive_label, threshold=threshold
    ).metrics


def describe_model(predictor: Any) -> dict[str, Any]:
    """What the report says of a scored model: :meth:`~airflow_mlops.training.flavors.Predictor.
    describe` (flavor, task, format, framework, model type, classes) and a binary model's positive
    label."""
    described = dict(predictor.describe())
    if predictor.task == "binary":
        described["positive_label"] = predictor.positive_label
    return described


def champion_mismatch(candidate: Any, champion: Any) -> str | None:
    """Why the champion's metrics cannot be held against the candidate's, or None when they can:
    another task, other classes (multiclass), another positive class (binary)."""
    from airflow_mlops.training.flavors import comparison_problem

    return comparison_problem(candidate, champion, same_classes=True)


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
    watermark_key: bytes | None = None,
    watermark_required: bool = False,
) -> EvaluationReport:
    """Score the candidate, and the champion on the *same* rows, and apply every gate.

    The task and the metrics are the candidate's (its ``model_config.json``); a gate on a metric
    of another task blocks with the reason.

    :param model_dir: the candidate's packaged model directory (scanned before it gets here).
    :param holdout: the held-out rows (a pandas DataFrame with the ``target`` column).
    :param positive_label: binary models: the positive class (the spec's ``data.positive_label``),
        which must be the model's own; None: the model's. Ignored for other tasks.
    :param bounds: absolute thresholds, ``{metric: {"min": x, "max": y}}``.
    :param comparisons: allowed change versus the champion, ``{metric: {"max_regression": x}}``.
    :param threshold: binary models: the fallback operating threshold for the thresholded metrics
        (f1, precision, ...): each model is scored at the threshold stored with it, this one only
        for a model that stores none (trained before thresholds were stored).
    :param champion: ``(version, model_dir)`` of the champion, already downloaded, verified and
        scanned (see :func:`~airflow_mlops.registry.mlflow_registry.fetch_trusted_champion`), or
        None when there is none: then only the absolute thresholds decide, and the note says so.
        A champion of another task, or with other classes, cannot be compared: the champion gates
        block, and the report says why.
    :param fairness: ``evaluation.fairness`` of the spec as a plain dict, or None: metric gaps
        between slices of the holdout (:mod:`~airflow_mlops.registry.fairness`), candidate only.
    :param robustness: ``evaluation.robustness`` of the spec as a plain dict, or None: metric
        drops under perturbations (:mod:`~airflow_mlops.registry.robustness`), candidate only.
    :param watermark_required: ``training.watermark.enabled``: the candidate must carry the
        watermark (:func:`~airflow_mlops.registry.gates.watermark_gate`, verified with
        ``watermark_key`` against the candidate's ``watermark.json``); fails closed without them.
    :raises DataError: the holdout cannot be scored (no target, missing labels or labels that do
        not fit the task, a positive label that does not occur or is not the model's, a single
        class, a class the model was not trained on).
    """
    predictor = load_model(model_dir)
    task = predictor.task
    y_true = holdout_target(predictor, holdout, target=target, positive_label=positive_label)
    candidate = score_predictor(predictor, holdout, y_true, threshold=threshold)
    metrics = candidate.metrics
    champion_version: str | None = None
    champion_metrics: dict[str, float] | None = None
    champion_score: ModelScore | None = None
    champion_model: dict[str, Any] | None = None
    mismatch: str | None = None
    if champion is not None:
        champion_version = str(champion[0])
        champion_predictor = load_model(champion[1])
        champion_model = describe_model(champion_predictor)
        mismatch = champion_mismatch(predictor, champion_predictor)
        if mismatch is None:
            champion_score = score_predictor(champion_predictor, holdout, y_true, threshold=threshold)
            champion_metrics = champion_score.metrics
            note = f"compared with champion version {champion_version} on the same {len(holdout)} rows"
        else:
            note = f"champion version {champion_version} cannot be compared: {mismatch}"
    else:
        note = NO_CHAMPION_NOTE if comparisons else NO_COMPARISON_NOTE
    gates = evaluate_gates(
        metrics,
        bounds=bounds,
        champion_metrics=champion_metrics,
        comparisons=comparisons,
        task=task,
        champion_unusable=(
            f"{mismatch} (champion version {champion_version})" if mismatch is not None else None
        ),
    )
    checks = None
    if fairness or robustness:
        checks = check_candidate(
            predictor,
            holdout,
            y_true,
            threshold=candidate.threshold,
            clean_metrics=metrics,
            fairness=fairness,
            robustness=robustness,
            scores=candidate.scores,
            task=task,
        )
        gates = GateReport(gates=(*gates.gates, *checks.gates))
    if watermark_required:
        gates = GateReport(gates=(*gates.gates, _watermark_gate(predictor, model_dir, watermark_key)))
    return EvaluationReport(
        metrics=metrics,
        gates=gates,
        champion_version=champion_version,
        champion_metrics=champion_metrics,
        holdout_rows=len(holdout),
        positive_rows=int(y_true.sum()) if task == "binary" else None,
        threshold=candidate.threshold,
        note=note,
        threshold_source=candidate.threshold_source,
        champion_threshold=champion_score.threshold if champion_score else None,
        champion_threshold_source=champion_score.threshold_source if champion_score else None,
        fairness=checks.fairness if checks else None,
        robustness=checks.robustness if checks else None,
        curves=_curves(candidate, champion_score),
        task=task,
        classes=tuple(predictor.classes) if task != "regression" else None,
        model=describe_model(predictor),
        champion_model=champion_model,
        champion_mismatch=mismatch,
    )


def _watermark_gate(predictor: Any, model_dir: Any, key: bytes | None) -> Any:
    """The watermark gate on the candidate's own record (none: the gate blocks)."""
    import json

    from airflow_mlops.registry.gates import watermark_gate
    from airflow_mlops.registry.mlflow_registry import weights_dir
    from airflow_mlops.security.watermark import RECORD_FILE

    path = weights_dir(model_dir) / RECORD_FILE
    try:
        record = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        record = {"unreadable": str(path)}  # the gate reports it malformed and blocks
    return watermark_gate(predictor, record, key)


def _curves(candidate: ModelScore, champion: ModelScore | None) -> dict[str, Any]:
    """The report's plots of the candidate (and the champion) from the outputs at hand."""
    from airflow_mlops.metrics import model_curves

    def curves(score: ModelScore) -> dict[str, Any]:
        return model_curves(
            score.task,
            score.y_true,
            score.scores,
            threshold=score.threshold,
            classes=getattr(score.predictor, "classes", None),
        )

    out = {"candidate": curves(candidate)}
    if champion is not None:
        out["champion"] = curves(champion)
    return out
