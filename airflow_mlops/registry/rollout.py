"""The later gate of a shadow or canary rollout: the candidate beside the champion on live rows.

Pure functions, no Airflow and no MLflow; numpy is imported inside. One live window gives one
verdict: ``passed`` (promote the candidate to champion), ``failed`` (end the rollout) or
``undecided`` (too few rows, or comparisons that need labels on an unlabelled window: the next
window decides; after ``max_windows`` undecided windows the rollout ends -- a rollout that cannot
decide never becomes champion by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from airflow_mlops.exceptions import DataError
from airflow_mlops.registry.evaluation import GateReport, compute_metrics, evaluate_gates

Verdict = Literal["passed", "failed", "undecided"]


@dataclass(frozen=True)
class RolloutReport:
    """The verdict on one live window, with what it rests on."""

    verdict: Verdict
    rows: int
    labelled: bool
    agreement: float
    candidate_positive_rate: float
    champion_positive_rate: float
    candidate_metrics: Mapping[str, float] | None
    champion_metrics: Mapping[str, float] | None
    gates: GateReport
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "rows": self.rows,
            "labelled": self.labelled,
            "agreement": self.agreement,
            "candidate_positive_rate": self.candidate_positive_rate,
            "champion_positive_rate": self.champion_positive_rate,
            "candidate_metrics": dict(self.candidate_metrics) if self.candidate_metrics else None,
            "champion_metrics": dict(self.champion_metrics) if self.champion_metrics else None,
            "gates": self.gates.to_dict(),
            "reasons": list(self.reasons),
        }

    def summary(self) -> str:
        head = (
            f"rollout gate {self.verdict.upper()} on {self.rows} live rows (agreement {self.agreement:.4f})"
        )
        return "\n".join([head, *("  " + r for r in self.reasons)])


def judge_window(
    candidate_scores: Any,
    champion_scores: Any,
    *,
    candidate_threshold: float,
    champion_threshold: float,
    y_true: Any = None,
    min_rows: int,
    min_agreement: float | None,
    comparisons: Mapping[str, Mapping[str, float]] | None = None,
) -> RolloutReport:
    """Judge one live window scored by both models (each at its own operating threshold).

    :param y_true: the window's labels as 0/1 (None: an unlabelled window).
    :param comparisons: ``{metric: {"max_regression": x}}`` on labelled windows (see
        :func:`~airflow_mlops.registry.evaluation.evaluate_gates`).
    :raises DataError: the two score arrays differ in length, or are not probabilities.
    """
    import numpy as np

    cand = np.asarray(candidate_scores, dtype=np.float64)
    champ = np.asarray(champion_scores, dtype=np.float64)
    if cand.shape != champ.shape or cand.ndim != 1:
        raise DataError(f"candidate and champion scores differ in shape: {cand.shape} vs {champ.shape}")
    rows = len(cand)
    if rows == 0:
        raise DataError("the live window has no rows")
    for name, s in (("candidate", cand), ("champion", champ)):
        if not np.isfinite(s).all() or s.min() < 0 or s.max() > 1:
            raise DataError(f"the {name}'s scores are not finite probabilities")
    cand_pos = cand >= candidate_threshold
    champ_pos = champ >= champion_threshold
    agreement = float(np.mean(cand_pos == champ_pos))
    labelled = y_true is not None
    cand_metrics = champ_metrics = None
    if labelled:
        cand_metrics = compute_metrics(y_true, cand, threshold=candidate_threshold)
        champ_metrics = compute_metrics(y_true, champ, threshold=champion_threshold)

    reasons: list[str] = []
    undecided: list[str] = []
    failed: list[str] = []
    if rows < min_rows:
        undecided.append(f"{rows} rows, fewer than the {min_rows} a verdict needs")
    if min_agreement is not None:
        line = f"agreement {agreement:.4f} {'>=' if agreement >= min_agreement else '<'} {min_agreement:g}"
        (reasons if agreement >= min_agreement else failed).append(line)
    gates = GateReport(gates=())
    if comparisons:
        if not labelled:
            undecided.append(
                f"the window has no labels: the comparison(s) on {', '.join(sorted(comparisons))} cannot be made"
            )
        else:
            gates = evaluate_gates(
                cand_metrics or {}, champion_metrics=champ_metrics, comparisons=comparisons
            )
            for g in gates.gates:
                (reasons if g.passed else failed).append(g.format())
    verdict: Verdict
    if rows < min_rows:
        verdict = "undecided"  # too few rows decide nothing, not even a failed agreement
        reasons = [*undecided, *failed, *reasons]
    elif failed:  # a large window that fails any check ends the rollout, labelled or not
        verdict = "failed"
        reasons = [*failed, *undecided, *reasons]
    elif undecided:
        verdict = "undecided"
        reasons = [*undecided, *reasons]
    else:
        verdict = "passed"
    return RolloutReport(
        verdict=verdict,
        rows=rows,
        labelled=labelled,
        agreement=agreement,
        candidate_positive_rate=float(cand_pos.mean()),
        champion_positive_rate=float(champ_pos.mean()),
        candidate_metrics=cand_metrics,
        champion_metrics=champ_metrics,
        gates=gates,
        reasons=tuple(reasons),
    )
