"""A retrain storm against ``schedule.policy`` on a real Airflow (api-server, scheduler, triggerer,
dag-processor; LocalExecutor on SQLite).

1,000 drift asset events are registered within a minute, as the REST API registers them (a third
carry no performance estimate, a third an estimate that is no drop, the first ten repeat one
window). Halfway through, the scheduler and the triggerer are stopped (their running tasks die
with them: the test waits for a running gate first, so that one is retried) and started again.
Then every event must have been decided exactly once, by the run that it triggered, with a reason
when suppressed; exactly ``max_per_day`` runs pass the gate; and replaying the pure policy over
the runs' events, in the order the gates decided them, gives the same decisions (nothing
repeated, lost or decided against a stale ledger after the restart).

The runs that pass the gate go on to ``data.validate``, which fails at once here (the events name
no data and the spec gives no ``event_source``): this test is about the gate, and keeps the
admitted runs cheap.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from scripts.demo_loop import AirflowAPI, wait_for
from tests.integration.airflow_stack import COMPONENTS, airflow_stack, unpaused_api
from tests.integration.test_lifecycle_dag import airflow_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "flood"
TRAIN = f"{PIPELINE}__train"
DRIFT = f"x-mlops://{PIPELINE}/drift"
EVENTS = 1000
MAX_PER_DAY = 3
POLICY = {"max_per_day": MAX_PER_DAY, "require_estimated_drop": True}

#: SQLite connection arguments for the Airflow components (``[database] sql_alchemy_connect_args``):
#: under the flood a writer waits up to a minute for the lock instead of pysqlite's 5 s, after
#: which the scheduler's heartbeat fails and the scheduler exits.
SQLITE_CONNECT_ARGS = {"timeout": 60}

SPEC = f"""\
apiVersion: mlops/v1
pipeline: {PIPELINE}
schedule:
  events: [drift]
  policy: {json.dumps(POLICY)}
start_date: 2026-01-01
max_active_runs: 4
defaults: {{retries: 2, retry_delay: 1s}}
data:
  source: {{data}}/batch.csv
  target: label
training:
  model: mlp
registry:
  model_name: flood-model
security:
  signing: {{method: key, connection: mlops_signing}}
"""


def extra_of(i: int) -> dict[str, Any]:
    """Event ``i``: the first ten repeat one window; a third carry no estimate, a third no drop."""
    extra: dict[str, Any] = {
        "window": f"/live/window-{0 if i < 10 else i}.parquet",
        "reasons": [f"flood {i}"],
    }
    if i % 3 == 1:
        return extra
    drop = 0.04 if i % 3 == 0 else -0.01
    extra["estimated_performance"] = {
        "metric": "roc_auc", "reference": 0.9, "estimate": 0.9 - drop, "lower": 0.8, "upper": 0.95, "drop": drop,
    }  # fmt: skip
    return extra


# Registers asset events as the REST API's POST /assets/events does (Airflow's asset manager,
# ``source_is_api``), one transaction per event, from a process of its own. Not through HTTP: on
# SQLite one api-server process deadlocks on concurrent writes (a request waits out the lock
# timeout), and one request at a time takes ~140 ms on a loaded 2-core machine.
FLOODER = r"""
import json, sys, time
from sqlalchemy import select
from airflow.assets.manager import asset_manager
from airflow.models.asset import AssetModel
from airflow.utils import timezone
from airflow.utils.session import create_session

uri, pace = sys.argv[1], float(sys.argv[2])
for extra in json.load(sys.stdin):
    with create_session() as session:
        asset = session.scalar(select(AssetModel).where(AssetModel.uri == uri))
        asset_manager.register_asset_change(
            asset=asset, extra=extra, timestamp=timezone.utcnow(), source_is_api=True, session=session
        )
    time.sleep(pace)
"""


def flood(env: dict[str, str], indices: range) -> None:
    """Register the events ``indices`` on the drift asset, one after the other, as fast as the
    metadata database takes them."""
    done = subprocess.run(
        [sys.executable, "-c", FLOODER, DRIFT, "0"],
        input=json.dumps([extra_of(i) for i in indices]),
        env=env, capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def all_runs(api: AirflowAPI) -> list[dict[str, Any]]:
    return list(api.get(f"dags/{TRAIN}/dagRuns?limit=1000&order_by=run_after")["dag_runs"])


def upstream_events(api: AirflowAPI, run_id: str) -> list[dict[str, Any]]:
    quoted = urllib.parse.quote(run_id, safe="")
    return list(api.get(f"dags/{TRAIN}/dagRuns/{quoted}/upstreamAssetEvents")["asset_events"])


def gate_running(api: AirflowAPI, seconds: float = 60) -> bool:
    """Whether a ``retrain.gate`` was seen running within ``seconds`` (polled as fast as the API
    answers; the caller stops the scheduler then, so that gate dies and is retried)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for run in all_runs(api)[-4:]:
            if api.task_states(TRAIN, run["dag_run_id"]).get("retrain.gate") == "running":
                return True
    return False


def quiet(api: AirflowAPI) -> bool:
    """No run unfinished and no event queued for the train DAG."""
    runs = all_runs(api)
    queued = api.get(f"dags/{TRAIN}/assets/queuedEvents")["total_entries"]
    return bool(runs) and queued == 0 and all(r["state"] in ("success", "failed") for r in runs)


def settled(api: AirflowAPI, events: int) -> list[dict[str, Any]] | None:
    """Every run, once all are finished and together they hold ``events`` events (else None).
    One listing of the runs answers both: with two, a run made between them (the closing
    event's) was counted for its events while it still ran, before its gate had decided."""
    runs = all_runs(api)
    if not runs or any(r["state"] not in ("success", "failed") for r in runs):
        return None
    if api.get(f"dags/{TRAIN}/assets/queuedEvents")["total_entries"]:
        return None
    total = sum(len(upstream_events(api, r["dag_run_id"])) for r in runs)
    return runs if total == events else None


def pipeline_env(tmp_path: Path, signing_keys: tuple[bytes, bytes], spec: str) -> dict[str, str]:
    """A dags folder holding the factory and ``spec`` (its ``{data}`` an allowed folder under
    ``tmp_path``); the Airflow environment that loads it."""
    data = tmp_path / "data"
    data.mkdir()
    dags = tmp_path / "dags"
    (dags / "specs").mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "mlops_specs.py", dags / "mlops_specs.py")
    (dags / "specs" / "flood.yaml").write_text(spec.replace("{data}", str(data)))
    (dags / "specs" / "mlops-defaults.yaml").write_text(
        f"apiVersion: mlops/v1\nkind: Defaults\nallowed_roots: [{data}]\n"
    )
    return airflow_env(tmp_path, "http://127.0.0.1:9", signing_keys, dags)


def test_a_flood_of_drift_events_retrains_exactly_as_the_policy_allows(
    tmp_path: Path, signing_keys: tuple[bytes, bytes]
) -> None:
    from airflow_mlops.retrain.ledger import Ledger, parse_time
    from airflow_mlops.retrain.policy import SUPPRESS_CODES, RetrainPolicy, Trigger, decide, record

    env = pipeline_env(tmp_path, signing_keys, SPEC)
    env["PYTHONPATH"] = str(ROOT)  # for SQLITE_CONNECT_ARGS
    ledger_path = tmp_path / "artifacts" / PIPELINE / "_state" / "retrain-ledger.json"
    with airflow_stack(
        tmp_path,
        env,
        components=(*COMPONENTS, "triggerer"),
        # a task killed with the scheduler is found and retried within a minute, not five
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="60",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS="tests.integration.test_retrain_policy_flood.SQLITE_CONNECT_ARGS",
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="5",
    ) as stack:
        api = unpaused_api(stack, TRAIN)
        wait_for(
            "the drift asset",
            120,
            lambda: [a for a in api.get("assets?limit=100")["assets"] if a["uri"] == DRIFT],
            check=stack.check_alive,
        )
        began = time.monotonic()
        flood(stack.env, range(EVENTS // 2))
        halfway = time.monotonic()
        caught = gate_running(api)  # stop the scheduler under a running gate, if one is caught
        stack.stop_component("scheduler")
        stack.stop_component("triggerer")
        stack.start("scheduler", "triggerer")
        restarted = time.monotonic()
        stack.check_alive()
        flood(stack.env, range(EVENTS // 2, EVENTS))
        flood_seconds = (halfway - began) + (time.monotonic() - restarted)
        restart_seconds = restarted - halfway
        # An event registered while the scheduler turns the queue into a run is not queued again
        # (Airflow keeps one queue row per asset and DAG, and deletes it after making the run); it
        # waits for the next event, whose run takes it (runs take events by time). One closing
        # event, once the flood has settled, makes that run.
        wait_for("the flood's runs to finish", 900, lambda: quiet(api), check=stack.check_alive)
        flood(stack.env, range(EVENTS, EVENTS + 1))
        runs = wait_for(
            "every run to finish with all the events",
            600,
            lambda: settled(api, EVENTS + 1),
            check=stack.check_alive,
        )
        total_seconds = time.monotonic() - began

        ledger = json.loads(ledger_path.read_text())
        decided = ledger["runs"]
        by_run = {r["dag_run_id"]: upstream_events(api, r["dag_run_id"]) for r in runs}
        states = {r: api.task_states(TRAIN, r) for r in by_run}
        gate_tries = {
            r: api.get(f"dags/{TRAIN}/dagRuns/{urllib.parse.quote(r, safe='')}/taskInstances/retrain.gate")[
                "try_number"
            ]
            for r in by_run
        }

    # Every run was decided once, by its own gate, and the gate's state says what it decided.
    assert set(decided) == set(by_run), (sorted(decided), sorted(by_run))
    for run_id, decision in decided.items():
        admitted = decision["admitted"]
        assert states[run_id]["retrain.gate"] == ("success" if admitted else "skipped"), (
            run_id,
            states[run_id],
        )
        assert (states[run_id]["data.validate"] == "skipped") is not admitted, (run_id, states[run_id])

    # Every event was decided exactly once, in the run it triggered; every suppressed one says why.
    def event_id(event: dict[str, Any]) -> str:
        return Trigger(event["uri"], "drift", parse_time(event["timestamp"]), event["extra"]).event_id

    posted = {event_id(e) for events in by_run.values() for e in events}
    assert len(posted) == EVENTS + 1
    assert set(ledger["events"]) == posted
    for run_id, events in by_run.items():
        assert {e["event_id"] for e in decided[run_id]["events"]} == {event_id(e) for e in events}
        assert all(ledger["events"][event_id(e)] == run_id for e in events)
    recorded = [e for d in decided.values() for e in d["events"]]
    suppressed = [e for e in recorded if not e["admitted"]]
    assert all(e["code"] in SUPPRESS_CODES and e["reason"].startswith(e["code"]) for e in suppressed)

    # Exactly the runs the policy allows: max_per_day of them (the flood makes many more runs).
    admitted_runs = [r for r, d in decided.items() if d["admitted"]]
    valid_runs = [r for r, d in decided.items() if any(e["code"] != "no_estimated_drop" for e in d["events"])]
    assert len(valid_runs) > MAX_PER_DAY, (
        "the flood should make more runs with evidence than the policy allows"
    )
    assert len(admitted_runs) == MAX_PER_DAY, {r: decided[r]["reason"] for r in decided}
    # ... and the same decisions, event by event, when the pure policy replays the runs in the order
    # their gates decided them: the restart neither repeated a decision nor decided on a stale ledger.
    replay = Ledger(pipeline=PIPELINE)
    for run_id in sorted(decided, key=lambda r: decided[r]["decided_at"]):
        triggers = [
            Trigger(e["uri"], "drift", parse_time(e["timestamp"]), e["extra"]) for e in by_run[run_id]
        ]
        again = decide(
            RetrainPolicy.from_mapping(POLICY), replay, model="flood-model", run_id=run_id,
            run_type="asset_triggered", triggers=triggers, now=parse_time(decided[run_id]["decided_at"]),
        )  # fmt: skip
        assert [(e.event_id, e.code) for e in again.events] == [
            (e["event_id"], e["code"]) for e in decided[run_id]["events"]
        ], run_id
        replay = record(replay, again)

    # The flood's own span, from its events' times: the first half, then the second half after
    # the restart (which the stack's start-up time, not the flood, decides).
    times = sorted(parse_time(e["timestamp"]) for events in by_run.values() for e in events)[:EVENTS]
    halves = (times[: EVENTS // 2], times[EVENTS // 2 :])
    span = sum((h[-1] - h[0]).total_seconds() for h in halves)
    codes: dict[str, int] = {}
    for event in recorded:
        codes[event["code"]] = codes.get(event["code"], 0) + 1
    assert codes.get("duplicate", 0) >= 1 and codes["no_estimated_drop"] >= EVENTS // 3
    print(
        f"flood: {EVENTS} events registered over {span:.1f}s of event time ({flood_seconds:.1f}s with the "
        f"flooding processes' start-up; scheduler and triggerer restarted halfway in {restart_seconds:.1f}s, "
        f"a running gate {'killed' if caught else 'not caught'}) + 1 closing event; "
        f"{len(by_run)} runs, {len(admitted_runs)} passed the gate, {len(by_run) - len(admitted_runs)} skipped; "
        f"events: {codes}; gate tries > 1: {sum(t > 1 for t in gate_tries.values())}; "
        f"all settled after {total_seconds:.1f}s",
        file=sys.stderr,
    )
    assert span < 60, f"the flood's events span {span:.0f}s, not a minute"
    assert Ledger.from_dict(ledger, source=str(ledger_path)).suppressed(5)  # the Models view's reading


FORCE_POLICY = {"cooldown": "1h", "force": "approval"}


def _await_force(api: AirflowAPI, stack: Any, run_id: str) -> None:
    """``retrain.force`` parked for an answer, and its parked try's end seen by the scheduler (see
    ``tests/integration/test_approval.py``: an answer before that is taken for a killed task)."""
    quoted = urllib.parse.quote(run_id, safe="")
    wait_for(
        "retrain.force to wait for an answer",
        300,
        lambda: api.task_states(TRAIN, run_id).get("retrain.force") == "awaiting_input",
        check=stack.check_alive,
    )
    parked_exit = f"TaskInstance Finished: dag_id={TRAIN}, task_id=retrain.force, run_id={run_id},"
    wait_for(
        "the scheduler to see the parked try end",
        120,
        lambda: parked_exit in (stack.logs / "scheduler.log").read_text(errors="replace"),
        check=stack.check_alive,
    )
    detail = api.get(f"dags/{TRAIN}/dagRuns/{quoted}/taskInstances/retrain.force/-1/hitlDetails")
    assert detail["options"] == ["Approve", "Reject"] and detail["defaults"] == ["Reject"]
    assert "cooldown: the last retrain" in detail["body"], detail["body"]


def test_a_held_back_retrain_is_forced_only_by_a_recorded_approval(
    tmp_path: Path, signing_keys: tuple[bytes, bytes]
) -> None:
    spec = SPEC.replace(json.dumps(POLICY), json.dumps(FORCE_POLICY))
    env = pipeline_env(tmp_path, signing_keys, spec.replace("max_active_runs: 4", "max_active_runs: 1"))
    ledger_path = tmp_path / "artifacts" / PIPELINE / "_state" / "retrain-ledger.json"

    with airflow_stack(tmp_path, env) as stack:
        api = unpaused_api(stack, TRAIN)
        asset_id = wait_for(
            "the drift asset",
            120,
            lambda: [a["id"] for a in api.get("assets?limit=100")["assets"] if a["uri"] == DRIFT],
            check=stack.check_alive,
        )[0]

        def event(window: str, *, force: bool = False) -> dict[str, Any]:
            """Post one drift event; the run it starts, once finished, with its task states."""
            known = {r["dag_run_id"] for r in all_runs(api)}
            extra: dict[str, Any] = {"window": window, **({"force": True} if force else {})}
            api.call("POST", "assets/events", {"asset_id": asset_id, "extra": extra})
            (run,) = wait_for(
                "the run it starts",
                300,
                lambda: [r for r in all_runs(api) if r["dag_run_id"] not in known],
                check=stack.check_alive,
            )
            return run

        def finished(run_id: str) -> dict[str, str | None]:
            wait_for(
                "the run to finish",
                300,
                lambda: api.run(TRAIN, run_id)["state"] in ("success", "failed"),
                check=stack.check_alive,
            )
            return api.task_states(TRAIN, run_id)

        first = event("/live/w1.parquet")["dag_run_id"]
        states = finished(first)
        assert states["retrain.gate"] == "success" and states["retrain.force"] == "success", states
        assert states["data.validate"] == "failed", states  # past the gate; the event names no data

        # Held back by the cooldown, even with "force" in the event: a person decides.
        second = event("/live/w2.parquet", force=True)["dag_run_id"]
        _await_force(api, stack, second)
        assert api.xcom(TRAIN, second, "retrain.gate", "return_value")["decision"]["counts"] == {
            "cooldown": 1
        }
        answered = api.call(
            "PATCH",
            f"dags/{TRAIN}/dagRuns/{urllib.parse.quote(second, safe='')}/taskInstances/retrain.force/-1/hitlDetails",
            {"chosen_options": ["Approve"], "params_input": {}},
        )
        states = finished(second)
        assert states["retrain.force"] == "success" and states["data.validate"] == "failed", states
        forced = json.loads(ledger_path.read_text())["runs"][second]
        assert forced["admitted"] is True and forced["forced_by"] == answered["responded_by"]["name"]

        # A rejection skips the rest of the run and records nothing.
        third = event("/live/w3.parquet")["dag_run_id"]
        _await_force(api, stack, third)
        api.call(
            "PATCH",
            f"dags/{TRAIN}/dagRuns/{urllib.parse.quote(third, safe='')}/taskInstances/retrain.force/-1/hitlDetails",
            {"chosen_options": ["Reject"], "params_input": {}},
        )
        states = finished(third)
        assert states["data.validate"] == "skipped", states
        assert json.loads(ledger_path.read_text())["runs"][third]["forced_by"] is None

        # Evidence already trained on is never asked about: the gate skips the run.
        fourth = event("/live/w1.parquet")["dag_run_id"]
        states = finished(fourth)
        assert states["retrain.gate"] == "skipped" and states["retrain.force"] == "skipped", states
        decision = api.xcom(TRAIN, fourth, "retrain.gate", "decision")
        assert decision["counts"] == {"duplicate": 1} and decision["suppressed"][0]["reason"].startswith(
            "duplicate"
        )
