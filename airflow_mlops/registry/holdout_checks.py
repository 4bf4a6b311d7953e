"""The candidate-only holdout gates beyond its overall metrics: fairness and robustness.

:func:`check_candidate` runs what the spec's ``evaluation.fairness`` and ``evaluation.robustness``
ask for with one loaded predictor: its holdout scores are computed once and sliced for the
fairness gates; the robustness gates score perturbed copies and compare them with the clean
metrics the candidate was already evaluated with. No champion is involved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_mlops.registry.evaluation import GateResult


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
    threshold: float,
    clean_metrics: Mapping[str, float],
    fairness: Mapping[str, Any] | None = None,
    robustness: Mapping[str, Any] | None = None,
    scores: Any = None,
) -> HoldoutChecks:
    """Fairness and robustness gates of one candidate.

    :param predictor: the loaded candidate (``predict_proba(df)``; its ``preprocessor`` says which
        features are numeric and which categorical).
    :param y_true: the positive-class mask of the holdout rows.
    :param threshold: the operating threshold the candidate is scored at.
    :param clean_metrics: the candidate's holdout metrics at ``threshold`` (the robustness baseline).
    :param fairness: ``evaluation.fairness`` as a plain dict (``slices``, ``metrics``,
        ``min_slice_rows``, ``min_slice_positives``), or None.
    :param robustness: ``evaluation.robustness`` as a plain dict (``perturbations``, ``metrics``,
        ``seed``), or None.
    :param scores: the candidate's holdout scores when already computed; else computed here.
    """
    from airflow_mlops.registry.fairness import evaluate_fairness
    from airflow_mlops.registry.robustness import evaluate_robustness

    gates: list[GateResult] = []
    fairness_details = robustness_details = None
    if fairness:
        if scores is None:
            scores = predictor.predict_proba(holdout)
        result = evaluate_fairness(
            holdout,
            y_true,
            scores,
            slices=fairness["slices"],
            metrics=fairness["metrics"],
            threshold=threshold,
            min_slice_rows=int(fairness.get("min_slice_rows", 100)),
            min_slice_positives=int(fairness.get("min_slice_positives", 10)),
        )
        gates += result.gates
        fairness_details = result.details
    if robustness:
        preprocessor = predictor.preprocessor
        checked = evaluate_robustness(
            predictor.predict_proba,
            holdout,
            y_true,
            perturbations=robustness["perturbations"],
            metrics=robustness["metrics"],
            threshold=threshold,
            clean_metrics=clean_metrics,
            numeric_features=list(preprocessor.numeric),
            categorical_features=list(preprocessor.categorical),
            seed=int(robustness.get("seed", 0)),
        )
        gates += checked.gates
        robustness_details = checked.details
    return HoldoutChecks(gates=tuple(gates), fairness=fairness_details, robustness=robustness_details)
