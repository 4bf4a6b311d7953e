"""evaluate_candidate with the spec's fairness and robustness sections: their gates join the report,
their details go into evaluation.json, and the candidate is loaded once.

A real small model trained by the project's trainer; the sections are built with the spec models
and passed as their ``model_dump()``, the way the DAG factory passes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from airflow_mlops.registry.evaluation import evaluate_candidate
from airflow_mlops.spec.models import FairnessConfig, RobustnessConfig
from tests.unit.registry.test_evaluate_candidate import _frame, _packaged


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _packaged(tmp_path_factory.mktemp("checks") / "good", _frame(1500, 1))


@pytest.fixture(scope="module")
def holdout() -> pd.DataFrame:
    return _frame(1500, 2)


FAIRNESS = FairnessConfig.model_validate(
    {"slices": ["merchant"], "metrics": {"roc_auc": {"max_gap": 0.99}}, "min_slice_positives": 5}
).model_dump()
ROBUSTNESS = RobustnessConfig.model_validate(
    {
        "perturbations": [{"missing": ["amount"]}, {"noise": {"std": 0.1}}],
        "metrics": {"roc_auc": {"max_drop": 0.9}},
        "seed": 1,
    }
).model_dump()


def _evaluate(model_dir: Path, holdout: pd.DataFrame, **kwargs):
    return evaluate_candidate(
        model_dir,
        holdout,
        target="label",
        positive_label=1,
        bounds={"roc_auc": {"min": 0.6}},
        comparisons=None,
        threshold=0.5,
        **kwargs,
    )


def test_fairness_and_robustness_gates_join_the_report(model_dir, holdout) -> None:
    from airflow_mlops.training.flavors import load_predictor

    report = _evaluate(model_dir, holdout, fairness=FAIRNESS, robustness=ROBUSTNESS)
    assert [g.kind for g in report.gates.gates] == ["threshold", "fairness", "robustness", "robustness"]
    assert report.passed

    # The fairness gap, recomputed independently with pandas + scikit-learn.
    scores = load_predictor(model_dir / "artifacts" / "weights").predict_proba(holdout)
    frame = holdout.assign(score=scores)
    per_merchant = {m: roc_auc_score(g["label"], g["score"]) for m, g in frame.groupby("merchant")}
    fairness_gate = report.gates.gates[1]
    assert fairness_gate.name == "roc_auc.gap_by_merchant"
    assert fairness_gate.value == pytest.approx(max(per_merchant.values()) - min(per_merchant.values()))

    # The robustness drop is measured from the candidate's own clean metric.
    blanked = report.gates.gates[2]
    assert blanked.name == "roc_auc.under_missing(amount)"
    assert blanked.threshold == pytest.approx(report.metrics["roc_auc"] - 0.9)
    assert report.robustness is not None
    assert report.robustness["clean"]["roc_auc"] == pytest.approx(report.metrics["roc_auc"])
    assert report.robustness["perturbations"][0]["change"]["roc_auc"] == pytest.approx(
        blanked.value - report.metrics["roc_auc"]
    )


def test_the_details_are_in_evaluation_json(model_dir, holdout) -> None:
    report = _evaluate(model_dir, holdout, fairness=FAIRNESS, robustness=ROBUSTNESS)
    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    slices = payload["fairness"]["columns"][0]["slices"]
    assert sorted(s["slice"] for s in slices) == sorted(holdout["merchant"].unique())
    assert sum(s["rows"] for s in slices) == len(holdout)
    assert [p["perturbation"] for p in payload["robustness"]["perturbations"]] == [
        "missing(amount)",
        "noise(0.1 std)",
    ]
    assert payload["robustness"]["seed"] == 1
    names = [g["name"] for g in payload["gates"]["gates"]]
    assert "roc_auc.gap_by_merchant" in names and "roc_auc.under_noise(0.1 std)" in names


def test_without_the_sections_the_report_is_unchanged(model_dir, holdout) -> None:
    report = _evaluate(model_dir, holdout)
    assert [g.kind for g in report.gates.gates] == ["threshold"]
    assert report.fairness is None and report.robustness is None
    assert report.to_dict()["fairness"] is None


def test_a_failing_fairness_or_robustness_gate_blocks_the_candidate(model_dir, holdout) -> None:
    strict = {**ROBUSTNESS, "metrics": {"roc_auc": {"max_drop": 0.0}}}
    unusable = {**FAIRNESS, "min_slice_rows": 10_000}
    report = _evaluate(model_dir, holdout, fairness=unusable, robustness=strict)
    failed = {g.name for g in report.gates.failed}
    assert "roc_auc.gap_by_merchant" in failed  # no slice is big enough: cannot decide, blocks
    assert "roc_auc.under_missing(amount)" in failed  # blanking amount costs more than 0
    assert not report.passed


def test_the_candidate_is_loaded_once(model_dir, holdout, monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow_mlops.training.flavors as model_module

    calls: list[Path] = []
    real = model_module.load_predictor

    def counting(path, **kwargs):
        calls.append(Path(path))
        return real(path, **kwargs)

    monkeypatch.setattr(model_module, "load_predictor", counting)
    _evaluate(model_dir, holdout, fairness=FAIRNESS, robustness=ROBUSTNESS)
    assert len(calls) == 1


def test_a_spec_dump_with_a_perturbed_column_the_holdout_lacks_fails_closed(model_dir, holdout) -> None:
    robustness = RobustnessConfig.model_validate(
        {"perturbations": [{"missing": ["income"]}], "metrics": {"roc_auc": {"max_drop": 0.5}}}
    ).model_dump()
    report = _evaluate(model_dir, holdout, robustness=robustness)
    (gate,) = report.gates.failed
    assert "the holdout has no column(s) 'income'" in gate.reason
    assert np.isfinite(report.metrics["roc_auc"])  # the candidate itself was still scored
