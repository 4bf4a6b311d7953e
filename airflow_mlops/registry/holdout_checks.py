"""The candidate-only holdout gates beyond its overall metrics: fairness and robustness.

:func:`check_candidate` runs what the spec's ``evaluation.fairness`` and ``evaluation.robustness``
ask for with one loaded predictor, with the metrics of its task: its holdout output is computed
once and sliced for the fairness gates; the robustness gates score perturbed copies and compare
them with the clean metrics the candidate was already evaluated with. No champion is involved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_mlops.registry.gates import GateResult


@dataclass(frozen=True)
class HoldoutChecks:
    """The gates (fairness first, then robustness) and the JSON-safe details of each (None when
    that check is not configured)."""

    gates: tuple[GateResult, ...]
    fairness: dict[str, Any] | None
    robustness: dict[str, Any] | None


def check_candidate(
    predictor: Any,
    holdout: Any,
    y_true: Any,
    *,
    threshold: float | None,
    clean_metrics: Mapping[str, float],
    fairness: Mapping[str, Any] | None = None,
    robustness: Mapping[str, Any] | None = None,
    scores: Any = None,
    task: str | None = None,
) -> HoldoutChecks:
    """Fairness and robustness gates of one candidate.

    :param predictor: the loaded candidate (:class:`~airflow_mlops.training.flavors.Predictor`:
        ``predict_scores(df)``, ``task``; its ``preprocessor``, when it has one, says which
        features are numeric and which categorical).
    :param y_true: the holdout's target as :func:`airflow_mlops.tasks.encode_target` gives it.
    :param threshold: binary models: the operating threshold the candidate is scored at.
    :param clean_metrics: the candidate's holdout metrics (the robustness baseline).
    :param fairness: ``evaluation.fairness`` as a plain dict (``slices``, ``metrics``,
        ``min_slice_rows``, ``min_slice_positives``), or None.
    :param robustness: ``evaluation.robustness`` as a plain dict (``perturbations``, ``metrics``,
        ``seed``), or None.
    :param scores: the candidate's holdout output when already computed; else computed here.
    :param task: the candidate's task (default: the predictor's).
    """
    from airflow_mlops.registry.fairness import evaluate_fairness
    from airflow_mlops.registry.robustness import evaluate_robustness

    task = task or predictor.task
    gates: list[GateResult] = []
    fairness_details = robustness_details = None
    if fairness:
        if scores is None:
            scores = predictor.predict_scores(holdout)
        result = evaluate_fairness(
            holdout,
            y_true,
            scores,
            slices=fairness["slices"],
            metrics=fairness["metrics"],
            threshold=threshold,
            min_slice_rows=int(fairness.get("min_slice_rows", 100)),
            min_slice_positives=int(fairness.get("min_slice_positives", 10)),
            task=task,
        )
        gates += result.gates
        fairness_details = result.details
    if robustness:
        numeric, categorical = feature_kinds(predictor, holdout)
        checked = evaluate_robustness(
            predictor.predict_scores,
            holdout,
            y_true,
            perturbations=robustness["perturbations"],
            metrics=robustness["metrics"],
            threshold=threshold,
            clean_metrics=clean_metrics,
            numeric_features=numeric,
            categorical_features=categorical,
            seed=int(robustness.get("seed", 0)),
            task=task,
        )
        gates += checked.gates
        robustness_details = checked.details
    return HoldoutChecks(gates=tuple(gates), fairness=fairness_details, robustness=robustness_details)


def feature_kinds(predictor: Any, holdout: Any) -> tuple[list[str], list[str]]:
    """The model's numeric and categorical features: as its preprocessor encodes them, or (a
    pipeline that takes the DataFrame as it is) by the holdout's column types."""
    import pandas as pd

    preprocessor = getattr(predictor, "preprocessor", None)
    if preprocessor is not None:
        return list(preprocessor.numeric), list(preprocessor.categorical)
    numeric: list[str] = []
    categorical: list[str] = []
    columns = {str(c): c for c in holdout.columns}
    for feature in predictor.features:
        dtype = holdout[columns[feature]].dtype if feature in columns else None
        is_number = (
            dtype is not None
            and pd.api.types.is_numeric_dtype(dtype)
            and not pd.api.types.is_bool_dtype(dtype)
        )
        (numeric if is_number else categorical).append(feature)
    return numeric, categorical
