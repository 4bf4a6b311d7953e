"""The retrain policy (``airflow_mlops/retrain/policy.py``): cooldown, debounce, the daily maximum,
minimum new rows, dedupe, the estimated drop, and durable, once-only decisions (a restart reloads
the ledger; two gates at once cannot both pass a cooldown)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.retrain.ledger import Ledger, LedgerStore
from airflow_mlops.retrain.policy import (
    SUPPRESS_CODES,
    RetrainPolicy,
    RunDecision,
    Trigger,
    decide,
    estimated_drop,
    evidence_key,
    gate_run,
    record,
    trigger_kind,
)

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
DRIFT = "x-mlops://fraud/drift"
NEW = "x-mlops://fraud/new_data"


def drift(seconds: float, window: str | None = None, **extra: Any) -> Trigger:
    body = {"window": window or f"/art/fraud/mon-{seconds}/window.parquet", "reasons": ["x drifted"], **extra}
    return Trigger(DRIFT, "drift", T0 + dt.timedelta(seconds=seconds), body)


def new_data(seconds: float, batch: str, rows: int | None) -> Trigger:
    payload = {"batch_id": batch, "data": [f"/in/{batch}.parquet"], "count": 1}
    return Trigger(
        NEW, "new_data", T0 + dt.timedelta(seconds=seconds), {"from_trigger": True, "payload": payload}, rows
    )


class Gate:
    """A gate over one ledger in memory, deciding runs in turn (as the gate task does)."""

    def __init__(self, policy: RetrainPolicy) -> None:
        self.policy = policy
        self.ledger = Ledger(pipeline="fraud")
        self.runs = 0

    def run(self, triggers: list[Trigger], *, at: float, run_type: str = "asset_triggered") -> RunDecision:
        self.runs += 1
        decision = decide(
            self.policy,
            self.ledger,
            model="fraud-model",
            run_id=f"run-{self.runs}",
            run_type=run_type,
            triggers=triggers,
            now=T0 + dt.timedelta(seconds=at),
        )
        self.ledger = record(self.ledger, decision)
        return decision


def codes(decision: RunDecision) -> list[str]:
    return [e.code for e in decision.events]


def test_without_limits_every_new_event_is_admitted() -> None:
    gate = Gate(RetrainPolicy())
    decision = gate.run([drift(0), drift(1)], at=2)
    assert decision.admitted and codes(decision) == ["admitted", "admitted"]
    assert gate.run([drift(3)], at=4).admitted


def test_cooldown_counts_from_the_last_admitted_retrain() -> None:
    gate = Gate(RetrainPolicy(cooldown=3600))
    assert gate.run([drift(0)], at=1).admitted
    blocked = gate.run([drift(10)], at=60)
    assert not blocked.admitted and codes(blocked) == ["cooldown"]
    assert "run-1" in blocked.events[0].reason and "13:00:01" in blocked.events[0].reason
    assert gate.run([drift(3700)], at=3602).admitted  # past the cooldown


def test_a_scheduled_or_manual_run_is_admitted_and_starts_the_cooldown() -> None:
    gate = Gate(RetrainPolicy(cooldown=3600, max_per_day=1))
    scheduled = gate.run([], at=0, run_type="scheduled")
    assert scheduled.admitted and scheduled.trigger == "schedule" and scheduled.events == ()
    assert codes(gate.run([drift(5)], at=10)) == ["cooldown"]
    manual = gate.run([], at=20, run_type="manual")
    assert manual.admitted and manual.trigger == "manual"  # a person decided: admitted, counted
    assert len(gate.ledger.retrains) == 2


def test_max_per_day_is_a_rolling_24_hours() -> None:
    gate = Gate(RetrainPolicy(max_per_day=2))
    assert gate.run([drift(0)], at=0).admitted
    assert gate.run([drift(100)], at=100).admitted
    third = gate.run([drift(200)], at=200)
    assert codes(third) == ["max_per_day"] and "2 retrain(s)" in third.events[0].reason
    assert gate.run([drift(86_401)], at=86_401).admitted  # the first one left the window


def test_debounce_folds_a_burst_of_one_kind_into_its_first_event() -> None:
    gate = Gate(RetrainPolicy(debounce=300))
    first = gate.run([drift(0), drift(30), drift(299)], at=300)
    assert codes(first) == ["admitted", "debounced", "debounced"]
    assert first.admitted  # the run trains once, on the burst
    later = gate.run([drift(200.5)], at=400)  # across runs too
    assert codes(later) == ["debounced"]
    assert gate.run([drift(301)], at=500).admitted
    # another kind is not part of the drift burst
    assert gate.run([new_data(302, "b1", 10)], at=501).admitted


def test_the_same_evidence_never_trains_twice() -> None:
    gate = Gate(RetrainPolicy())
    window = "/art/fraud/mon-1/window.parquet"
    decision = gate.run([drift(0, window), drift(1, window)], at=2)
    assert codes(decision) == ["admitted", "duplicate"]  # twice in one run
    again = gate.run([drift(10, window, reasons=["reported again"])], at=20)  # a re-emitted window
    assert codes(again) == ["duplicate"] and "run-1" in again.events[0].reason
    batch = gate.run([new_data(30, "b1", 5)], at=31)
    assert batch.admitted
    assert codes(gate.run([new_data(40, "b1", 5)], at=41)) == ["duplicate"]  # a repeated watcher batch


def test_dedupe_off_lets_the_same_evidence_train_again() -> None:
    gate = Gate(RetrainPolicy(dedupe=False))
    gate.run([drift(0, "/w")], at=1)
    assert gate.run([drift(5, "/w")], at=6).admitted


def test_a_suppressed_events_evidence_may_still_train_later() -> None:
    gate = Gate(RetrainPolicy(cooldown=100))
    gate.run([drift(0, "/a")], at=0)
    assert codes(gate.run([drift(10, "/b")], at=10)) == ["cooldown"]
    assert codes(gate.run([drift(200, "/b")], at=200)) == ["admitted"]  # never trained: not a duplicate


def test_the_evidence_key_prefers_the_windows_digest_then_the_batch_id() -> None:
    ref = {"uri": "/w.parquet", "sha256": "ab" * 32}
    with_ref = Trigger(DRIFT, "drift", T0, {"window": "/w.parquet", "data_refs": [ref]})
    assert evidence_key("m", with_ref) == f"m/drift/window-sha256:{'ab' * 32}"
    assert evidence_key("m", drift(0, "/w.parquet")) == "m/drift/window:/w.parquet"
    assert evidence_key("m", new_data(0, "b9", 1)) == "m/new_data/batch:b9"
    bare = Trigger(NEW, "new_data", T0, {"data": ["/b", "/a"]})
    assert evidence_key("m", bare) == evidence_key("m", Trigger(NEW, "new_data", T0, {"data": ["/a", "/b"]}))
    other = Trigger("s3://bucket/ready", "asset", T0, {"n": 1})
    assert evidence_key("m", other).startswith("m/asset:s3://bucket/ready/extra-sha256:")
    assert (
        trigger_kind("fraud", DRIFT) == "drift" and trigger_kind("fraud", "x-mlops://other/drift") == "asset"
    )


def test_min_new_rows_adds_up_suppressed_batches() -> None:
    gate = Gate(RetrainPolicy(min_new_rows=1000))
    first = gate.run([new_data(0, "b1", 400)], at=1)
    assert codes(first) == ["min_new_rows"] and "400 of 1000" in first.events[0].reason
    second = gate.run([new_data(10, "b2", 500)], at=11)
    assert codes(second) == ["min_new_rows"] and "900 of 1000" in second.events[0].reason
    third = gate.run([new_data(20, "b3", 100), new_data(21, "b4", 5)], at=22)
    assert codes(third) == ["admitted", "admitted"]  # b4 joins the admitted run: no new budget
    assert gate.ledger.pending_rows == 0
    assert codes(gate.run([new_data(30, "b5", 10)], at=31)) == ["min_new_rows"]


def test_rows_suppressed_by_cooldown_still_count() -> None:
    gate = Gate(RetrainPolicy(min_new_rows=100, cooldown=1000))
    gate.run([], at=0, run_type="scheduled")
    assert codes(gate.run([new_data(5, "b1", 150)], at=5)) == ["cooldown"]
    assert gate.ledger.pending_rows == 150
    assert codes(gate.run([new_data(2000, "b2", 1)], at=2000)) == ["admitted"]


def test_a_new_data_event_without_a_row_count_fails_closed() -> None:
    gate = Gate(RetrainPolicy(min_new_rows=10))
    decision = gate.run([new_data(0, "b1", None)], at=1)
    assert codes(decision) == ["no_row_count"] and not decision.admitted
    assert Gate(RetrainPolicy()).run([new_data(0, "b1", None)], at=1).admitted  # no minimum: no count needed


@pytest.mark.parametrize(
    ("estimate", "code"),
    [
        (None, "no_estimated_drop"),
        ("high", "no_estimated_drop"),
        ({"metric": "roc_auc", "reference": 0.9, "estimate": 0.91, "drop": -0.01}, "no_estimated_drop"),
        ({"metric": "roc_auc", "drop": 0.0}, "no_estimated_drop"),
        ({"metric": "roc_auc", "drop": float("nan")}, "no_estimated_drop"),
        ({"metric": "roc_auc", "drop": True}, "no_estimated_drop"),
        ({"metric": "roc_auc", "drop": "0.2"}, "no_estimated_drop"),
        ({"metric": "roc_auc", "drop": 0.01, "max_drop": 0.02, "dropped": False}, "no_estimated_drop"),
        ({"metric": "roc_auc", "drop": 0.03, "max_drop": 0.02, "dropped": True}, "admitted"),
        ({"available": False, "reason": "the champion stores no calibration"}, "no_estimated_drop"),
        (
            {
                "metric": "roc_auc",
                "reference": 0.9,
                "estimate": 0.8,
                "lower": 0.75,
                "upper": 0.85,
                "drop": 0.1,
            },
            "admitted",
        ),
    ],
)
def test_require_estimated_drop_reads_the_estimate_defensively(estimate: Any, code: str) -> None:
    extra = {} if estimate is None else {"estimated_performance": estimate}
    decision = Gate(RetrainPolicy(require_estimated_drop=True)).run([drift(0, **extra)], at=1)
    assert codes(decision) == [code], decision.events[0].reason
    if code == "admitted":
        recorded = decision.events[0].estimate
        assert recorded is not None and {k: recorded.get(k) for k in estimate} == estimate
    # without the requirement any drift event is evidence enough
    assert Gate(RetrainPolicy()).run([drift(0, **extra)], at=1).admitted


def test_estimated_drop_names_why_not() -> None:
    shown, why = estimated_drop(
        {"estimated_performance": {"metric": "f1", "reference": 0.8, "estimate": 0.82, "drop": -0.02}}
    )
    assert shown is not None and shown["metric"] == "f1" and why is not None and "f1 drop -0.02" in why


def test_every_suppressed_event_has_a_known_code_and_a_reason() -> None:
    gate = Gate(
        RetrainPolicy(cooldown=60, debounce=30, max_per_day=1, min_new_rows=5, require_estimated_drop=True)
    )
    decisions = [
        gate.run([drift(0, estimated_performance={"drop": 0.2}), drift(1)], at=2),
        gate.run([drift(5, estimated_performance={"drop": 0.2})], at=6),
        gate.run([new_data(100, "b", 1), new_data(101, "c", None)], at=200),
    ]
    seen = [e for d in decisions for e in d.events if not e.admitted]
    assert {e.code for e in seen} == {"no_estimated_drop", "debounced", "min_new_rows", "no_row_count"}
    assert all(e.code in SUPPRESS_CODES and e.reason.startswith(e.code) for e in seen)


def test_an_event_is_never_decided_twice() -> None:
    gate = Gate(RetrainPolicy(cooldown=10))
    event = drift(0)
    assert gate.run([event], at=0).admitted
    again = gate.run([event], at=100)  # the same asset event offered to another run
    assert codes(again) == ["already_decided"] and "run-1" in again.events[0].reason


def test_the_decision_round_trips_through_the_ledger() -> None:
    gate = Gate(RetrainPolicy(debounce=5))
    decision = gate.run([drift(0), drift(1), new_data(2, "b", 3)], at=3)
    assert RunDecision.from_dict(decision.to_dict()) == decision
    assert decision.counts() == {"admitted": 2, "debounced": 1}
    assert [e["code"] for e in gate.ledger.suppressed()] == ["debounced"]


# --- durable, once-only decisions --------------------------------------------------------------


def test_a_retried_gate_gets_its_recorded_decision_back(tmp_path: Path) -> None:
    store = LedgerStore(str(tmp_path / "state" / "retrain-ledger.json"))
    policy = RetrainPolicy(cooldown=3600)
    clock = iter([T0, T0 + dt.timedelta(seconds=5), T0 + dt.timedelta(hours=5)])
    args: dict[str, Any] = {
        "pipeline": "fraud",
        "model": "m",
        "run_type": "asset_triggered",
        "clock": lambda: next(clock),
    }
    first, replayed = gate_run(store, policy, run_id="a", triggers=[drift(0)], **args)
    assert first.admitted and not replayed
    second, _ = gate_run(store, policy, run_id="b", triggers=[drift(1)], **args)
    assert codes(second) == ["cooldown"]
    # a retry of run b hours later (cooldown over) finds its decision, it does not decide again
    again, replayed = gate_run(LedgerStore(store.uri), policy, run_id="b", triggers=[drift(1)], **args)
    assert replayed and again == second


def test_a_restart_reloads_the_ledger_and_loses_nothing(tmp_path: Path) -> None:
    uri = str(tmp_path / "retrain-ledger.json")
    policy = RetrainPolicy(max_per_day=1, debounce=60)
    args: dict[str, Any] = {
        "pipeline": "fraud",
        "model": "m",
        "run_type": "asset_triggered",
        "clock": lambda: T0,
    }
    gate_run(LedgerStore(uri), policy, run_id="a", triggers=[drift(0, "/w1")], **args)
    # a new process: a fresh store object over the same file
    decision, _ = gate_run(
        LedgerStore(uri), policy, run_id="b", triggers=[drift(100, "/w1"), drift(120, "/w2")], **args
    )
    assert codes(decision) == ["duplicate", "max_per_day"]
    ledger, _ = LedgerStore(uri).load()
    assert ledger is not None and set(ledger.runs) == {"a", "b"} and len(ledger.events) == 3


def test_two_gates_at_once_cannot_both_pass_the_cooldown(tmp_path: Path) -> None:
    uri = str(tmp_path / "retrain-ledger.json")
    policy = RetrainPolicy(cooldown=3600)
    start = threading.Barrier(8)
    results: dict[str, RunDecision] = {}
    errors: list[BaseException] = []

    def gate(name: str) -> None:
        try:
            start.wait()
            results[name], _ = gate_run(
                LedgerStore(uri),
                policy,
                pipeline="fraud",
                model="m",
                run_id=name,
                run_type="asset_triggered",
                triggers=[drift(float(name[-1]), f"/w{name}")],
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=gate, args=(f"run-{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(d.admitted for d in results.values()) == 1, {k: codes(v) for k, v in results.items()}
    ledger, _ = LedgerStore(uri).load()
    assert ledger is not None and len(ledger.runs) == 8 and len(ledger.retrains) == 1


def test_the_policy_reads_the_spec_models_dump() -> None:
    policy = RetrainPolicy.from_mapping(
        {
            "cooldown": dt.timedelta(hours=6),
            "debounce": 300,
            "max_per_day": 3,
            "min_new_rows": 10,
            "dedupe": False,
        }
    )
    assert policy == RetrainPolicy(cooldown=21600, debounce=300, max_per_day=3, min_new_rows=10, dedupe=False)


# --- forcing a held-back run through a human approval -----------------------------------------


def test_a_person_may_force_a_run_held_back_by_a_limit_and_it_counts_as_a_retrain() -> None:
    from airflow_mlops.retrain.policy import forceable, record_forced

    gate = Gate(RetrainPolicy(cooldown=3600))
    gate.run([drift(0, "/a")], at=0)
    held = gate.run([drift(10, "/b"), drift(11, "/a")], at=10)
    assert codes(held) == ["cooldown", "duplicate"] and forceable(held)
    ledger, forced = record_forced(gate.ledger, "run-2", "alice", T0 + dt.timedelta(seconds=20))
    assert forced.admitted and forced.forced_by == "alice" and forced.reason.endswith("approved by alice")
    assert ledger.retrains[-1] == {
        "run_id": "run-2",
        "at": "2026-03-01T12:00:20+00:00",
        "trigger": "forced drift",
    }
    assert "fraud-model/drift/window:/b" in ledger.keys  # the forced evidence is now trained on
    gate.ledger = ledger
    assert codes(gate.run([drift(30, "/c")], at=30)) == ["cooldown"]  # cooldown counts from the forced run
    again, _ = record_forced(ledger, "run-2", "bob", T0)  # approving twice changes nothing
    assert again is ledger


def test_evidence_already_trained_on_cannot_be_forced() -> None:
    from airflow_mlops.exceptions import RetrainLedgerCorruptError
    from airflow_mlops.retrain.policy import forceable, record_forced

    gate = Gate(RetrainPolicy())
    gate.run([drift(0, "/a")], at=0)
    held = gate.run([drift(5, "/a")], at=5)
    assert codes(held) == ["duplicate"] and not forceable(held)
    with pytest.raises(RetrainLedgerCorruptError, match="cannot be forced"):
        record_forced(gate.ledger, "run-2", "alice", T0)
    with pytest.raises(RetrainLedgerCorruptError, match="no decision"):
        record_forced(gate.ledger, "run-9", "alice", T0)


def test_force_run_is_durable(tmp_path: Path) -> None:
    from airflow_mlops.retrain.policy import force_run

    store = LedgerStore(str(tmp_path / "retrain-ledger.json"))
    args: dict[str, Any] = {"pipeline": "fraud", "model": "m", "run_type": "asset_triggered"}
    gate_run(store, RetrainPolicy(max_per_day=1), run_id="a", triggers=[drift(0)], **args)
    gate_run(store, RetrainPolicy(max_per_day=1), run_id="b", triggers=[drift(1)], **args)
    forced = force_run(LedgerStore(store.uri), run_id="b", approver="alice")
    assert forced.forced_by == "alice"
    ledger, _ = store.load()
    assert ledger is not None and ledger.runs["b"]["forced_by"] == "alice" and len(ledger.retrains) == 2


def test_the_policy_describes_itself_in_one_line() -> None:
    policy = RetrainPolicy.from_mapping(
        {"cooldown": 21600, "debounce": 600, "max_per_day": 3, "min_new_rows": 500, "force": "approval"}
    )
    assert policy.describe() == (
        "cooldown 6h after a retrain; events of one kind within 10m are one burst; at most 3 retrain(s) "
        "in 24 hours; new data retrains after 500 new rows; the same evidence never trains twice; "
        "a held-back run asks a person whether to retrain anyway"
    )
    assert (
        RetrainPolicy(dedupe=False, cooldown=90).describe()
        == "cooldown 90s after a retrain; no dedupe of evidence"
    )
