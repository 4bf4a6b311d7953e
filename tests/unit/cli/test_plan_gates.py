"""The plan's gates are the DAG's: for the same spec, the factory builds every stage the plan lists,
in the plan's order, and nothing the plan leaves out."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.cli.plan import RETRAIN_GATE_TASK_ID, build_plan
from airflow_mlops.cli.plan_gates import APPROVE_TASK_ID, duration_text, gates, stage_order, value_text
from airflow_mlops.factory.folder import build_spec_dags, find_spec_files
from airflow_mlops.spec.loader import load_spec
from airflow_mlops.spec.sections.base import STAGE_TASK_IDS

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "dags" / "specs" / "fraud_detector.yaml"
# every spec a user can copy: the dags folder's and the docs' examples (other YAML left out)
EXAMPLES = [*find_spec_files(ROOT / "dags"), *find_spec_files(ROOT / "docs" / "examples")]
APPROVAL = "  connection: mlflow_default\n  approval: {timeout: 1d}\n"
CANARY = "  connection: mlflow_default\n  rollout: {strategy: canary}\n  approval: {assigned_users: [lead]}\n"


def lifecycle_ids(dag: Any) -> set[str]:
    """The DAG's tasks that are lifecycle stages (the ones the plan can name)."""
    known = {*STAGE_TASK_IDS.values(), APPROVE_TASK_ID}
    return {t.task_id for t in dag.tasks if t.task_id in known}


def assert_plan_matches_dag(spec: Any, path: Path) -> None:
    dag = build_spec_dags(spec, path)[spec.train_dag_id]
    planned = [g["task_id"] for g in gates(spec)]
    assert set(planned) == lifecycle_ids(dag)  # every stage the DAG has, nothing it lacks
    for earlier, later in itertools.pairwise(planned):
        downstream = dag.get_task(earlier).get_flat_relative_ids(upstream=False)
        assert later in downstream, f"{later} does not run after {earlier} in {spec.train_dag_id}"
    policy = build_plan(spec, runs=0)["starts"]["policy"]
    gate_ids = {t.task_id for t in dag.tasks if t.task_id == RETRAIN_GATE_TASK_ID}
    assert gate_ids == ({RETRAIN_GATE_TASK_ID} if policy is not None else set())
    if policy is not None:  # the retrain gate runs before anything of the lifecycle
        assert set(planned) <= dag.get_task(RETRAIN_GATE_TASK_ID).get_flat_relative_ids(upstream=False)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_gates_are_the_stages_the_factory_builds_in_its_order(path: Path) -> None:
    assert_plan_matches_dag(load_spec(path), path)


@pytest.mark.parametrize("registry", [APPROVAL, CANARY], ids=["approval", "canary_and_approval"])
def test_the_approval_comes_right_before_the_promotion(tmp_path: Path, registry: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(EXAMPLE.read_text().replace("  connection: mlflow_default\n", registry))
    spec = load_spec(path)
    assert_plan_matches_dag(spec, path)
    order = [task_id for _, task_id in stage_order(spec)]
    assert order[-3:] == ["release.register", APPROVE_TASK_ID, "release.promote"]


def test_without_approval_the_stages_are_the_spec_table() -> None:
    spec = load_spec(EXAMPLE)
    assert stage_order(spec) == list(STAGE_TASK_IDS.items())


def test_a_spec_with_a_retrain_policy_plans_its_gate(tmp_path: Path) -> None:
    """``schedule.policy``: every field of the policy's model shows, and the DAG has the gate task."""
    path = tmp_path / "spec.yaml"
    path.write_text(
        EXAMPLE.read_text().replace(
            "  events: [drift, new_data]\n",
            "  events: [drift, new_data]\n  policy: {cooldown: 6h, max_per_day: 2}\n",
        )
    )
    spec = load_spec(path)
    assert_plan_matches_dag(spec, path)
    policy = build_plan(spec, runs=0)["starts"]["policy"]
    model = type(spec.schedule.policy)  # type: ignore[union-attr]
    assert [f["key"] for f in policy["fields"]] == list(model.model_fields)
    fields = {f["key"]: f for f in policy["fields"]}
    assert fields["cooldown"]["value"] == 6 * 3600 and fields["cooldown"]["set"] is True
    assert fields["max_per_day"]["text"] == "2"
    assert all(f["description"] for f in policy["fields"])  # the model documents every field


def test_a_spec_without_gates_says_every_candidate_passes(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    start, end = text.index("evaluation:\n"), text.index("security:\n")
    path = tmp_path / "spec.yaml"
    path.write_text(text[:start] + text[end:])
    evaluate = next(g for g in gates(load_spec(path)) if g["stage"] == "evaluate")
    assert [c["check"] for c in evaluate["checks"]] == ["threshold", "none"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (90, "1m30s"), (3600, "1h"), (86400 + 1800, "1d30m"), (1.5, "1.5s")],
)
def test_duration_text(seconds: float, text: str) -> None:
    assert duration_text(dt.timedelta(seconds=seconds)) == text


def test_value_text() -> None:
    assert value_text(None) == "null"
    assert value_text(True) == "true"
    assert value_text(0.10) == "0.1"
    assert value_text([1, "a"]) == "[1, a]"
    assert value_text({"a": dt.timedelta(hours=2)}) == "{a: 2h}"
