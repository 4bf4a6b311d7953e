"""The monitor's batch scoring: the champion's output on a live window and on the reference, as
stored columns, and read back for the detector.

The champion's output stored beside each window and reference row (:func:`champion_columns`):

==========  ===========================  ==============================  ==========================
task        ``mlops_score``              ``mlops_prediction``            more
==========  ===========================  ==============================  ==========================
binary      positive class probability   1 at or above the threshold
multiclass  the predicted class's prob.  the predicted class (its label) ``mlops_proba_<class>``
                                                                         per class
regression  the predicted value          the predicted value
==========  ===========================  ==============================  ==========================

No Airflow: the functions take DataFrames, a loaded ``Predictor``
(:func:`airflow_mlops.training.flavors.load_predictor`) and, to read a version's recorded
metrics, an MLflow client. numpy and pandas are imported inside.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import DriftInputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.artifacts import ArtifactRef
    from airflow_mlops.drift.report import DriftReport

SCORE_COLUMN = "mlops_score"
PREDICTION_COLUMN = "mlops_prediction"
PROBA_PREFIX = "mlops_proba_"


def proba_column(label: str) -> str:
    """The column of a multiclass model's probability of class ``label``."""
    return f"{PROBA_PREFIX}{label}"


def binary_threshold(predictor: Any, fallback: float) -> float | None:
    """The cut of a binary champion's ``mlops_prediction``: its own operating threshold, else
    ``fallback`` (a model trained before thresholds were stored); None for other tasks."""
    if predictor.task != "binary":
        return None
    return predictor.threshold if predictor.threshold is not None else float(fallback)


def champion_columns(predictor: Any, frame: pd.DataFrame, threshold: float | None) -> dict[str, Any]:
    """The champion's output on ``frame`` as the columns the monitor stores (see the module
    docstring); ``threshold``: binary only, the cut of ``mlops_prediction``."""
    import numpy as np

    out = predictor.predict_scores(frame)
    if predictor.task == "binary":
        cut = 0.5 if threshold is None else threshold
        return {SCORE_COLUMN: out, PREDICTION_COLUMN: (out >= cut).astype("int8")}
    if predictor.task == "regression":
        return {SCORE_COLUMN: out, PREDICTION_COLUMN: out}
    best = np.argmax(out, axis=1)
    columns: dict[str, Any] = {proba_column(c): out[:, j] for j, c in enumerate(predictor.classes)}
    columns[SCORE_COLUMN] = out[np.arange(len(out)), best]
    columns[PREDICTION_COLUMN] = np.asarray(predictor.classes, dtype=object)[best]
    return columns


def scored(predictor: Any, frame: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """A copy of ``frame`` with the champion's output columns (:func:`champion_columns`)."""
    out = frame.copy()
    for column, values in champion_columns(predictor, frame, threshold).items():
        out[column] = values
    return out


def check_window(window: pd.DataFrame, source: str) -> None:
    """:raises DriftInputError: the live window has no rows (an empty window is not 'no drift')."""
    if window.empty:
        raise DriftInputError(f"the live window {source} has no rows: an empty window is not 'no drift'")


def sample_reference(
    reference: pd.DataFrame, predictor: Any, threshold: float | None, *, max_rows: int, seed: int
) -> pd.DataFrame:
    """At most ``max_rows`` reference rows (a sample drawn with ``seed``), renumbered, with the
    champion's output columns."""
    if len(reference) > max_rows:
        reference = reference.sample(max_rows, random_state=seed)
    return scored(predictor, reference.reset_index(drop=True), threshold)


def champion_output(frame: pd.DataFrame, task: str, classes: Sequence[str] | None) -> np.ndarray:
    """The champion's output read back from stored columns: 1-D (binary scores, regression
    values) or ``(rows, classes)`` probabilities (multiclass), what ``detect_drift`` takes.

    :raises DriftInputError: the columns are missing (the window was scored by another version).
    """
    names = [proba_column(c) for c in classes or ()] if task == "multiclass" else [SCORE_COLUMN]
    missing = [n for n in names if n not in frame.columns]
    if missing or not names:
        raise DriftInputError(
            f"the stored predictions lack the champion's output column(s) {', '.join(missing) or '(no classes)'} "
            f"for a {task} model; rerun monitor.score"
        )
    if task == "multiclass":
        return frame[names].to_numpy(dtype="float64")
    return frame[SCORE_COLUMN].to_numpy(dtype="float64")


def training_data_ref(model_version: Any, model_name: str) -> ArtifactRef:
    """The ref of the rows a model version was trained on (its ``mlops.training_data`` tag).

    :raises DriftInputError: the version records none (registered before monitoring existed).
    """
    from airflow_mlops.artifacts import ArtifactRef
    from airflow_mlops.registry.mlflow_registry import TAG_TRAINING_DATA

    raw = (model_version.tags or {}).get(TAG_TRAINING_DATA)
    if not raw:
        raise DriftInputError(
            f"version {model_version.version} of {model_name} records no training data "
            f"(tag {TAG_TRAINING_DATA}; versions registered before monitoring existed lack it); "
            "set monitoring.reference to `data` or a path, or promote a newly trained version"
        )
    return ArtifactRef.from_dict(json.loads(raw))


def recorded_metrics(client: Any, model_version: Any) -> dict[str, float]:
    """A version's evaluation metrics as its training run recorded them (``eval_<metric>``),
    without the prefix; ``{}`` for a version without a run."""
    if not model_version.run_id:
        return {}
    metrics = client.get_run(model_version.run_id).data.metrics
    return {k[len("eval_") :]: float(v) for k, v in metrics.items() if k.startswith("eval_")}


def detect_window(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    features: Sequence[str],
    target: str,
    task: str,
    classes: Sequence[str] | None,
    threshold: float | None,
    champion_metrics: Mapping[str, float] | None,
    performance: Mapping[str, float],
    prediction_drift: bool,
    positive_label: Any,
    out_of_range: str,
    settings: Mapping[str, Any],
) -> DriftReport:
    """:func:`~airflow_mlops.drift.detect_drift` on a scored window against the scored reference.

    The performance checks (``performance``: ``{metric: max drop}``) run only when the window has
    the ``target`` column (labels), against ``champion_metrics`` (a champion without recorded
    metrics fails there, naming the metric); prediction drift compares the stored output columns
    when ``prediction_drift``.
    """
    from airflow_mlops.drift import detect_drift

    features = list(features)
    labelled = target in current.columns
    checked = bool(labelled and performance)
    operating: dict[str, Any] = {} if threshold is None else {"threshold": float(threshold)}
    return detect_drift(
        reference[features],
        current[[*features, target]] if labelled else current[features],
        features=features,
        target=target if labelled else None,
        reference_scores=champion_output(reference, task, classes) if prediction_drift else None,
        current_scores=champion_output(current, task, classes),
        expected_metrics=dict(champion_metrics or {}) if checked else None,
        max_metric_drop=dict(performance) if checked else None,
        positive_label=positive_label,
        task=task,
        classes=classes,
        out_of_range=out_of_range,
        **operating,
        **settings,
    )
