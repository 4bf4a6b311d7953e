"""``airflow-mlops plan SPEC``: what starts runs, the gates, where a version goes; text and JSON."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from airflow_mlops.cli import main
from airflow_mlops.cli.plan import PLAN_VERSION, build_plan, next_runs, render_text, retrain_policy
from airflow_mlops.factory.folder import find_spec_files
from airflow_mlops.spec.loader import load_spec
from airflow_mlops.spec.models import Duration, ScheduleConfig, StrictModel

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "dags" / "specs" / "fraud_detector.yaml"
# every spec a user can copy: the dags folder's and the docs' examples (other YAML left out)
EXAMPLES = [*find_spec_files(ROOT / "dags"), *find_spec_files(ROOT / "docs" / "examples")]


def plan_of(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["plan", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_examples_are_found() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"fraud_detector.yaml", "fraud_detector_kubernetes.yaml", "wine_pipeline.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_example_spec_plans_in_both_formats(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text, err = plan_of(capsys, str(path), "--runs", "1")
    assert code == 0, err
    for heading in ("1. What starts a run of", "2. Gates a new version faces, in order", "3. Where it goes"):
        assert heading in text
    code, out, err = plan_of(capsys, "--json", str(path), "--runs", "1")
    assert code == 0, err
    plan = json.loads(out)  # stdout is the JSON document alone (notes go to stderr)
    assert plan["plan_version"] == PLAN_VERSION
    assert plan["dags"]["train"] == f"{plan['pipeline']}__train"
    assert [g["stage"] for g in plan["gates"]][:3] == ["validate", "screen", "train"]
    assert all(c["text"] for g in plan["gates"] for c in g["checks"])


def test_the_example_plan_names_its_triggers_gates_and_release(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan_of(capsys, "--json", str(EXAMPLE))
    assert code == 0
    plan = json.loads(out)
    starts = plan["starts"]
    assert starts["time"]["schedule"] == "@daily" and starts["time"]["cron"] == "0 0 * * *"
    assert len(starts["time"]["next_runs"]) == 3
    events = {e["event"]: e for e in starts["events"]}
    assert events["drift"]["asset"] == "x-mlops://fraud_detector/drift"
    assert "fraud_detector__monitor" in events["drift"]["source"]
    watch = events["new_data"]["watch"]
    assert watch["pattern"] == "**/*.parquet" and watch["poll_interval_seconds"] == 10
    assert Path(watch["resolved"]) == (ROOT / "dags" / "data" / "fraud" / "incoming").resolve()
    assert starts["manual"] is True
    monitor = starts["monitor"]
    assert monitor["on_drift"] == "retrain" and "starts fraud_detector__train" in monitor["on_drift_text"]
    performance = [c for c in monitor["checks"] if c["check"] == "performance"]
    assert performance == [
        {
            "check": "performance",
            "text": "labelled windows: roc_auc at most 0.1 worse than its recorded evaluation",
            "metric": "roc_auc",
            "max_drop": 0.1,
        }
    ]
    evaluate = next(g for g in plan["gates"] if g["stage"] == "evaluate")
    metrics = {c["metric"]: (c["min"], c["max"]) for c in evaluate["checks"] if c["check"] == "metric"}
    assert metrics == {"roc_auc": (0.8, None), "pr_auc": (0.3, None), "precision": (0.5, None)}
    champion = [c for c in evaluate["checks"] if c["check"] == "champion"]
    assert [(c["metric"], c["max_regression"]) for c in champion] == [("roc_auc", 0.03)]
    robustness = [
        (c["perturbation"], c["max_drop"]) for c in evaluate["checks"] if c["check"] == "robustness"
    ]
    assert robustness == [("missing(country)", 0.05), ("noise(0.1 std)", 0.05)]
    screen = next(g for g in plan["gates"] if g["stage"] == "screen")
    suspects = next(c for c in screen["checks"] if c["check"] == "max_suspect_fraction")
    assert suspects["threshold"] == 0.02
    train = next(g for g in plan["gates"] if g["stage"] == "train")
    time = next(c for c in train["checks"] if c["check"] == "time")
    assert time["execution_timeout_seconds"] == 1800 and time["retries"] == 1  # the spec's defaults
    release = plan["release"]
    assert release["model_name"] == "fraud-detector" and release["alias"] == "champion"
    assert release["rollout"] == {"strategy": "direct", "alias": None, "traffic_share": None, "gate": None}
    assert release["approval"] is None
    assert release["rollback"]["command"] == "airflow-mlops model rollback fraud-detector"


def rich_spec(tmp_path: Path) -> Path:
    """The example with a canary rollout, an approval, a fairness gate, privacy, stage settings and a step."""
    text = EXAMPLE.read_text()
    edits = [
        (
            "  connection: mlflow_default\n",
            "  connection: mlflow_default\n  rollout:\n    strategy: canary\n    traffic: 0.2\n"
            "    gate: {min_rows: 300, compare_to_champion: {roc_auc: {max_regression: 0.02}}}\n"
            "  approval: {timeout: 2h, assigned_users: [risk-lead]}\n",
        ),
        (
            "    metrics: {roc_auc: {max_drop: 0.05}}\n",
            "    metrics: {roc_auc: {max_drop: 0.05}}\n  fairness:\n"
            "    slices: [country, {column: amount, bins: [0, 50, 500]}]\n    metrics: {recall: {max_gap: 0.3}}\n",
        ),
        ("  validation_fraction: 0.2\n", "  validation_fraction: 0.2\n  privacy: {epsilon: 8}\n"),
        (
            "defaults: {retries: 1, retry_delay: 1m, execution_timeout: 30m}",
            "defaults: {retries: 1, retry_delay: 1m, execution_timeout: 30m}\n"
            "stages: {train: {execution_timeout: 3h}}\ndagrun_timeout: 6h\n"
            "steps: [{id: notify_done, operator: airflow.providers.standard.operators.empty.EmptyOperator, "
            "after: [promote]}]",
        ),
    ]
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "rich.yaml"
    path.write_text(text)
    return path


def test_a_rich_spec_shows_rollout_approval_fairness_and_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = rich_spec(tmp_path)
    code, out, err = plan_of(capsys, "--json", str(path), "--runs", "0")
    assert code == 0, err
    plan = json.loads(out)
    stages = [g["stage"] for g in plan["gates"]]
    assert stages[-3:] == ["register", "approve", "promote"]
    rollout = plan["release"]["rollout"]
    assert rollout["strategy"] == "canary" and rollout["alias"] == "canary"
    assert rollout["traffic_share"] == 0.2
    assert rollout["gate"]["min_rows"] == 300 and rollout["gate"]["min_agreement"] == 0.9
    assert rollout["gate"]["compare_to_champion"] == {"roc_auc": {"max_regression": 0.02}}
    assert plan["release"]["approval"]["timeout_seconds"] == 7200
    assert plan["release"]["approval"]["assigned_users"] == ["risk-lead"]
    evaluate = plan["gates"][stages.index("evaluate")]
    fairness = [c for c in evaluate["checks"] if c["check"] == "fairness"]
    assert [(c["metric"], c["max_gap"]) for c in fairness] == [("recall", 0.3)]
    assert fairness[0]["slices"] == ["country", {"column": "amount", "bins": [0.0, 50.0, 500.0]}]
    train = plan["gates"][stages.index("train")]
    kinds = {c["check"]: c for c in train["checks"]}
    assert kinds["privacy"]["epsilon"] == 8
    assert kinds["time"]["execution_timeout_seconds"] == 3 * 3600  # the stage wins over defaults
    assert kinds["time"]["dagrun_timeout_seconds"] == 6 * 3600
    promote = plan["gates"][-1]
    assert promote["checks"][0]["alias"] == "canary"  # the rollout alias moves, not the champion
    assert plan["steps"] == [
        {
            "id": "notify_done",
            "operator": "airflow.providers.standard.operators.empty.EmptyOperator",
            "after": ["promote"],
        }
    ]
    code, text, _ = plan_of(capsys, str(path), "--runs", "0")
    assert code == 0
    assert "8. human approval (release.approve)" in text and "9. promotion (release.promote)" in text
    assert "rollout: canary: @canary first, 20% of traffic; @champion stays put" in text
    assert "approval: required before the alias moves (risk-lead; timeout 2h)" in text
    assert "each training task fails after 3h (retries: 1); the whole run after 6h" in text
    assert "step of your own `notify_done`" in text


def test_events_only_and_manual_only_schedules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = EXAMPLE.read_text().replace('  time: "@daily"\n', "")
    text = text.replace("events: [drift, new_data]", "events: [drift, new_data, x-team://features/ready]")
    path = tmp_path / "events.yaml"
    path.write_text(text)
    code, out, err = plan_of(capsys, "--json", str(path))
    assert code == 0, err
    starts = json.loads(out)["starts"]
    assert starts["time"] is None
    assert [(e["event"], e["asset"]) for e in starts["events"]] == [
        ("drift", "x-mlops://fraud_detector/drift"),
        ("new_data", "x-mlops://fraud_detector/new_data"),
        ("x-team://features/ready", "x-team://features/ready"),
    ]
    assert starts["events"][2]["source"] == "an asset another DAG or tool updates"
    assert [e["watch"] is None for e in starts["events"]] == [True, False, True]
    manual = EXAMPLE.read_text()
    start, end = manual.index("schedule:\n"), manual.index("start_date:")
    manual = manual[:start] + manual[end:]
    manual = manual.replace("  new_data:\n    location: ../data/fraud/incoming\n", "  _gone:\n")
    manual = manual.replace('    pattern: "**/*.parquet"\n    poll_interval: 10s\n', "")
    manual = manual.replace("  _gone:\n", "")
    path.write_text(manual)
    code, text_out, err = plan_of(capsys, str(path))
    assert code == 0, err
    assert "  time: none\n" in text_out and "asset event" not in text_out
    assert "it does not start" in text_out  # the monitor's drift event starts nothing now


def test_the_monitor_shows_its_label_free_estimate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "estimate.yaml"
    path.write_text(
        EXAMPLE.read_text().replace(
            "  on_drift: retrain\n",
            "  on_drift: retrain\n  estimation: {max_drop: 0.05, retrain_on: drift_and_estimated_drop}\n",
        )
    )
    code, out, err = plan_of(capsys, "--json", str(path), "--runs", "0")
    assert code == 0, err
    starts = json.loads(out)["starts"]
    estimation = next(c for c in starts["monitor"]["checks"] if c["check"] == "estimation")
    assert estimation["max_drop"] == 0.05 and estimation["retrain_on"] == "drift_and_estimated_drop"
    assert "only on drift and an estimated drop" in starts["monitor"]["on_drift_text"]
    assert "estimated performance dropped" in starts["events"][0]["source"]


def test_a_regression_spec_has_no_operating_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan_of(capsys, "--json", str(ROOT / "docs/examples/tasks/diabetes_lightgbm.yaml"))
    assert code == 0
    plan = json.loads(out)
    assert plan["task"] == "regression"
    evaluate = next(g for g in plan["gates"] if g["stage"] == "evaluate")
    assert "threshold" not in {c["check"] for c in evaluate["checks"]}


def test_json_round_trips(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan_of(capsys, "--json", str(EXAMPLE), "--runs", "0")
    assert code == 0
    spec = load_spec(EXAMPLE)
    plan = build_plan(spec, spec_path=str(EXAMPLE), runs=0)
    assert json.loads(out) == plan  # the document is the plan, every value a JSON type
    assert json.loads(json.dumps(plan)) == plan
    assert render_text(json.loads(out)) == render_text(plan)  # text reads the same facts


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_mlops.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


@pytest.mark.parametrize("fmt", [[], ["--json"]], ids=["text", "json"])
def test_a_malformed_spec_is_a_located_error_and_no_plan(tmp_path: Path, fmt: list[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("epochs: 15", "epochs: many"))
    out = cli("plan", *fmt, str(bad))
    assert out.returncode == 1
    assert out.stdout == ""
    assert f"{bad}:42:12: training.params.epochs" in out.stderr, out.stderr


def test_a_missing_file_and_bad_runs_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = plan_of(capsys, str(tmp_path / "nope.yaml"))
    assert code == 1 and out == "" and "nope.yaml" in err
    code, out, err = plan_of(capsys, str(EXAMPLE), "--runs", "51")
    assert code == 2 and out == "" and "--runs" in err


# --- upcoming runs: Airflow's data-interval timetables ----------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Airflow's clock, fixed: Wednesday 2026-03-11 10:30 UTC."""
    import pendulum

    now = pendulum.datetime(2026, 3, 11, 10, 30, tz="UTC")
    monkeypatch.setattr("airflow.timetables.interval.utcnow", lambda: now)
    return now


def core(value: str) -> Any:
    from airflow.serialization.encoders import coerce_to_core_timetable

    from airflow_mlops.factory.builder import time_timetable

    return coerce_to_core_timetable(time_timetable(value))


def intervals(value: str, catchup: bool, runs: int = 3) -> list[tuple[str, str, str]]:
    return [
        (r["data_interval_start"], r["data_interval_end"], r["run_after"])
        for r in next_runs(core(value), dt.date(2026, 1, 1), catchup, runs)
    ]


def test_daily_without_catchup_starts_with_the_last_complete_day(clock: Any) -> None:
    assert intervals("@daily", catchup=False) == [
        ("2026-03-10T00:00:00Z", "2026-03-11T00:00:00Z", "2026-03-11T00:00:00Z"),
        ("2026-03-11T00:00:00Z", "2026-03-12T00:00:00Z", "2026-03-12T00:00:00Z"),
        ("2026-03-12T00:00:00Z", "2026-03-13T00:00:00Z", "2026-03-13T00:00:00Z"),
    ]


def test_catchup_starts_at_the_start_date(clock: Any) -> None:
    assert intervals("@daily", catchup=True, runs=2) == [
        ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-02T00:00:00Z"),
        ("2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-03T00:00:00Z"),
    ]


def test_a_weekday_cron_interval_spans_the_weekend(clock: Any) -> None:
    runs = intervals("0 3 * * 1-5", catchup=False, runs=4)
    assert runs[0] == ("2026-03-10T03:00:00Z", "2026-03-11T03:00:00Z", "2026-03-11T03:00:00Z")
    # Friday 03:00 -> Monday 03:00 is one interval, run on Monday
    assert runs[2] == ("2026-03-12T03:00:00Z", "2026-03-13T03:00:00Z", "2026-03-13T03:00:00Z")
    assert runs[3] == ("2026-03-13T03:00:00Z", "2026-03-16T03:00:00Z", "2026-03-16T03:00:00Z")


def test_an_interval_schedule(clock: Any) -> None:
    runs = intervals("6h", catchup=False, runs=2)
    assert runs[0][1] <= "2026-03-11T10:30:00Z" < runs[1][1]
    start, end = (dt.datetime.fromisoformat(x.replace("Z", "+00:00")) for x in runs[1][:2])
    assert end - start == dt.timedelta(hours=6)


def test_the_plan_lists_the_runs_airflow_makes(clock: Any) -> None:
    plan = build_plan(load_spec(EXAMPLE), runs=2)
    assert plan["starts"]["time"]["next_runs"][0] == {
        "data_interval_start": "2026-03-10T00:00:00Z",
        "data_interval_end": "2026-03-11T00:00:00Z",
        "logical_date": "2026-03-10T00:00:00Z",
        "run_after": "2026-03-11T00:00:00Z",
    }
    assert "2026-03-10T00:00:00Z -> 2026-03-11T00:00:00Z, starts after 2026-03-11T00:00:00Z" in render_text(
        plan
    )


# --- the retrain policy, rendered from whatever model the spec has --------------------------


class StandInLimits(StrictModel):
    per_day: int = Field(3, description="Admitted retrains per UTC day.")


class StandInPolicy(StrictModel):
    """A policy model the renderer has never heard of: it must show every field with its description."""

    cooldown: Duration = Field(dt.timedelta(hours=6), description="No retrain this soon after one.")
    require_estimated_drop: bool = Field(False, description="Drift must also cost accuracy.")
    min_new_rows: int = Field(0, description="")
    dedupe_key: list[str] = Field(default_factory=lambda: ["model", "trigger"], description="")
    limits: StandInLimits = Field(default_factory=StandInLimits)


class ScheduleWithPolicy(ScheduleConfig):
    policy: StandInPolicy = Field(default_factory=lambda: StandInPolicy(cooldown="30m"))


def stand_in_policy() -> StandInPolicy:
    return StandInPolicy(cooldown="30m")


def test_the_policy_renders_every_field_of_its_model() -> None:
    from types import SimpleNamespace

    policy = retrain_policy(SimpleNamespace(policy=stand_in_policy()))
    assert policy is not None and policy["model"] == "StandInPolicy"
    assert policy["task_id"] == "retrain.gate"
    assert policy["fields"] == [
        {
            "key": "cooldown",
            "value": 1800.0,
            "text": "30m",
            "description": "No retrain this soon after one.",
            "set": True,
        },
        {
            "key": "require_estimated_drop",
            "value": False,
            "text": "false",
            "description": "Drift must also cost accuracy.",
            "set": False,
        },
        {"key": "min_new_rows", "value": 0, "text": "0", "description": "", "set": False},
        {
            "key": "dedupe_key",
            "value": ["model", "trigger"],
            "text": "[model, trigger]",
            "description": "",
            "set": False,
        },
        {
            "key": "limits.per_day",
            "value": 3,
            "text": "3",
            "description": "Admitted retrains per UTC day.",
            "set": False,
        },
    ]
    assert retrain_policy(SimpleNamespace(policy=None)) is None
    assert retrain_policy("@daily") is None  # a bare time schedule has no policy


def test_the_plan_shows_a_policy_when_the_schedule_has_one() -> None:
    spec = load_spec(EXAMPLE)
    spec = spec.model_copy(update={"schedule": ScheduleWithPolicy(time="@daily", events=["drift"])})
    plan = build_plan(spec, runs=0)
    assert next(f["key"] for f in plan["starts"]["policy"]["fields"]) == "cooldown"
    text = render_text(plan)
    assert "retrain policy: retrain.gate, the first task of each run" in text
    assert "    cooldown: 30m -- No retrain this soon after one." in text
    assert "    limits.per_day: 3 (default) -- Admitted retrains per UTC day." in text
    json.dumps(plan)  # still a JSON document
