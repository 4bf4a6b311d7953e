"""ModelEvaluateOperator is fetch -> evaluate_candidate -> store; a champion it cannot trust blocks.

A real local artifact store and a real small model (trained by the project's trainer); the MLflow
lookup is replaced by a fake ``fetch_trusted_champion`` (the real one is tested against a real
server in ``tests/integration/test_registry_fail_closed.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.exceptions import GateFailedError, RegistryError, RegistryLookupError
from airflow_mlops.operators.model import ModelEvaluateOperator
from tests.unit.registry.fraud_models import _frame, _packaged

CONTEXT = {"run_id": "manual__2026-01-02", "dag": SimpleNamespace(dag_id="p__train")}


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("eval")
    store = ArtifactStore(str(root / "store"))
    model_dir = _packaged(root / "model", _frame(1500, 1))
    _frame(500, 2).to_parquet(root / "holdout.parquet")
    return {
        "root": root,
        "model": store.put_directory(model_dir, "p/r/train/model", producer="train").to_dict(),
        "holdout": store.put_file(root / "holdout.parquet", "p/r/train/holdout.parquet").to_dict(),
        "model_dir": model_dir,
    }


def _operator(refs: dict[str, Any], **overrides: Any) -> ModelEvaluateOperator:
    kwargs: dict[str, Any] = {
        "task_id": "evaluate",
        "pipeline": "p",
        "artifact_root": str(refs["root"] / "store"),
        "model": refs["model"],
        "holdout": refs["holdout"],
        "target": "label",
        "positive_label": "1",  # quoted, as YAML may have it: matches the integer labels
        "bounds": {"roc_auc": {"min": 0.7}},
        "compare_to_champion": {"roc_auc": {"max_regression": 0.02}},
        "model_name": "m",
        **overrides,
    }
    return ModelEvaluateOperator(**kwargs)


@pytest.fixture
def champion_lookup(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the registry: ``answer`` is what fetch_trusted_champion returns or raises."""
    import airflow_mlops.registry.mlflow_registry as registry

    state: dict[str, Any] = {"answer": None, "calls": []}

    def fake(client: Any, model_name: str, alias: str, key: bytes, dest: Path, **kwargs: Any) -> Any:
        state["calls"].append((model_name, alias, kwargs))
        if isinstance(state["answer"], BaseException):
            raise state["answer"]
        return state["answer"]

    monkeypatch.setattr(registry, "fetch_trusted_champion", fake)
    monkeypatch.setattr(ModelEvaluateOperator, "mlflow_hook", SimpleNamespace(get_conn=lambda: object()))
    key = SimpleNamespace(trust=b"pub")
    monkeypatch.setattr(
        "airflow_mlops.operators.base.ModelSigningHook",
        lambda signing_conn_id, method=None: SimpleNamespace(get_key=lambda need_private: key),
    )
    return state


def test_first_model_is_judged_on_absolute_thresholds_and_stored(refs, champion_lookup) -> None:
    out = _operator(refs).execute(CONTEXT)
    assert out["passed"] is True and out["champion_version"] is None
    assert out["note"] == "no champion yet: absolute thresholds only"
    stored = json.loads(Path(out["report"]["uri"]).read_text())
    assert stored["note"] == out["note"] and stored["metrics"] == out["metrics"]
    assert stored["metrics"]["roc_auc"] > 0.7
    page = Path(out["html_report"]["uri"]).read_text()
    assert out["html_report"]["uri"].endswith("evaluation_report.html")
    assert "ROC curve" in page and "roc_auc.min" in page and "confusion matrix" in page
    assert f"candidate (AUC {stored['metrics']['roc_auc']:.4f})" in page  # the plotted curve's AUC
    assert "champion (AUC" not in page
    ((name, alias, kwargs),) = champion_lookup["calls"]
    assert (name, alias, kwargs["pipeline"]) == ("m", "champion", "p")


def test_the_champion_is_scored_on_the_same_rows(refs, champion_lookup) -> None:
    champion_lookup["answer"] = ("7", refs["model_dir"])  # the same model: no regression
    out = _operator(refs).execute(CONTEXT)
    stored = json.loads(Path(out["report"]["uri"]).read_text())
    assert out["champion_version"] == "7"
    assert stored["champion_metrics"] == stored["metrics"]
    assert "champion version 7 on the same 500 rows" in stored["note"]
    page = Path(out["html_report"]["uri"]).read_text()
    assert "champion (AUC" in page and "champion (version 7)" in page


@pytest.mark.parametrize(
    ("error", "final"),
    [
        (RegistryLookupError("champion lookup 'm'@champion: ... failed with ENDPOINT_NOT_FOUND"), True),
        (RegistryError("champion lookup 'm'@champion: ... failed with INTERNAL_ERROR"), False),
    ],
)
def test_a_champion_lookup_that_fails_blocks(refs, champion_lookup, error, final) -> None:
    champion_lookup["answer"] = error
    with pytest.raises(RegistryError, match="champion lookup 'm'@champion") as caught:
        _operator(refs).execute(CONTEXT)
    assert isinstance(caught.value, AirflowFailException) is final


def test_a_failed_gate_is_stored_then_fails_without_retry(refs, champion_lookup) -> None:
    op = _operator(refs, bounds={"roc_auc": {"min": 0.9999}}, task_id="evaluate_strict")
    with pytest.raises(GateFailedError, match=r"roc_auc\.min") as caught:
        op.execute(CONTEXT)
    assert isinstance(caught.value, AirflowFailException)
    stored = ArtifactStore(str(refs["root"] / "store")).uri_for(op.artifact_key(CONTEXT, "evaluation.json"))
    assert json.loads(Path(stored).read_text())["passed"] is False
    page = ArtifactStore(str(refs["root"] / "store")).uri_for(
        op.artifact_key(CONTEXT, "evaluation_report.html")
    )
    assert "blocked" in Path(page).read_text()  # the HTML report is stored before the gate fails


def test_comparisons_without_a_model_name_block_instead_of_passing(refs, champion_lookup) -> None:
    with pytest.raises(GateFailedError, match="no model_name"):
        _operator(refs, model_name=None).execute(CONTEXT)
    assert champion_lookup["calls"] == []


def test_fairness_and_robustness_reach_the_report_and_their_failure_blocks(refs, champion_lookup) -> None:
    fairness = {
        "slices": ["merchant"],
        "metrics": {"accuracy": {"max_gap": 0.99}},
        "min_slice_rows": 50,
        "min_slice_positives": 5,
    }
    robustness = {"perturbations": [{"missing": ["amount"]}], "metrics": {"roc_auc": {"max_drop": 0.9}}}
    op = _operator(refs, fairness=fairness, robustness=robustness, task_id="evaluate_checks")
    out = op.execute(CONTEXT)
    stored = json.loads(Path(out["report"]["uri"]).read_text())
    kinds = [g["kind"] for g in stored["gates"]["gates"]]
    assert kinds.count("fairness") == 1 and kinds.count("robustness") == 1
    assert {s["slice"] for s in stored["fairness"]["columns"][0]["slices"]} == {"grocery", "travel", "online"}
    assert stored["robustness"]["perturbations"][0]["perturbation"] == "missing(amount)"

    strict = {**robustness, "metrics": {"roc_auc": {"max_drop": 0.0}}}
    op = _operator(refs, robustness=strict, task_id="evaluate_checks_strict")
    with pytest.raises(GateFailedError, match=r"roc_auc\.under_missing\(amount\)") as caught:
        op.execute(CONTEXT)
    assert isinstance(caught.value, AirflowFailException)
