"""The retrain ledger (``airflow_mlops/retrain/ledger.py``): compare-and-swap writes (a local file
under a lock, an S3 object with a conditional put), a ledger it cannot read fails closed, pruning."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.exceptions import RetrainLedgerCorruptError, RetrainLedgerError, is_retryable
from airflow_mlops.retrain.ledger import Ledger, LedgerConflict, LedgerStore, iso, ledger_uri
from airflow_mlops.retrain.policy import RetrainPolicy, gate_run

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def test_the_ledger_lives_in_the_pipelines_state_folder() -> None:
    assert ledger_uri("s3://b/root/fraud/_state/") == "s3://b/root/fraud/_state/retrain-ledger.json"


def test_save_is_a_compare_and_swap(tmp_path: Path) -> None:
    store = LedgerStore(str(tmp_path / "deep" / "retrain-ledger.json"))
    assert store.load() == (None, None)
    version = store.save(Ledger(pipeline="p"), expected_version=None)
    with pytest.raises(LedgerConflict):
        store.save(Ledger(pipeline="p", pending_rows=1), expected_version=None)  # someone wrote it first
    ledger = Ledger(pipeline="p", pending_rows=2)
    new_version = store.save(ledger, expected_version=version)
    loaded, loaded_version = store.load()
    assert loaded == ledger and loaded_version == new_version
    with pytest.raises(LedgerConflict):
        store.save(ledger, expected_version=version)  # a stale read
    assert not list(tmp_path.joinpath("deep").glob(".*.tmp"))  # no temporary file left behind


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "is not JSON"),
        (b'{"format": "something else"}', "is not a retrain ledger"),
        (json.dumps({"format": "airflow-mlops/retrain-ledger", "version": 99}).encode(), "version 99"),
        (
            json.dumps({"format": "airflow-mlops/retrain-ledger", "version": 1, "pipeline": "p"}).encode(),
            "damaged",
        ),
    ],
)
def test_a_ledger_it_cannot_read_fails_closed(tmp_path: Path, body: bytes, says: str) -> None:
    path = tmp_path / "retrain-ledger.json"
    path.write_bytes(body)
    with pytest.raises(RetrainLedgerCorruptError, match=says) as info:
        LedgerStore(str(path)).load()
    assert not is_retryable(info.value) and ("delete" in str(info.value) or "upgrade" in str(info.value))


def test_another_pipelines_ledger_is_refused(tmp_path: Path) -> None:
    store = LedgerStore(str(tmp_path / "retrain-ledger.json"))
    store.save(Ledger(pipeline="other"), expected_version=None)
    with pytest.raises(RetrainLedgerCorruptError, match="pipeline 'other', not 'fraud'"):
        gate_run(
            store, RetrainPolicy(), pipeline="fraud", model="m", run_id="r", run_type="manual", triggers=[]
        )


def test_a_store_that_fails_is_a_retryable_error(tmp_path: Path) -> None:
    (tmp_path / "retrain-ledger.json").mkdir()  # a folder where the file should be
    with pytest.raises(RetrainLedgerError) as info:
        LedgerStore(str(tmp_path / "retrain-ledger.json")).load()
    assert is_retryable(info.value)


def test_a_gate_that_keeps_losing_the_race_gives_up_retryably(tmp_path: Path) -> None:
    class Racing(LedgerStore):
        def save(self, ledger: Ledger, *, expected_version: str | None) -> str:
            raise LedgerConflict("changed")

    with pytest.raises(RetrainLedgerError, match="changed 3 times") as info:
        gate_run(
            Racing(str(tmp_path / "l.json")), RetrainPolicy(), pipeline="p", model="m", run_id="r",
            run_type="manual", triggers=[], attempts=3,
        )  # fmt: skip
    assert is_retryable(info.value)


def test_pruning_keeps_what_the_policy_still_needs() -> None:
    old, recent = iso(T0 - dt.timedelta(days=40)), iso(T0 - dt.timedelta(hours=2))
    ledger = Ledger(
        pipeline="p",
        runs={"old": {"decided_at": old, "events": []}, "new": {"decided_at": recent, "events": []}},
        events={"e1": "old", "e2": "new"},
        retrains=[{"run_id": "old", "at": old, "trigger": "drift"}],
        keys={
            "k-old": {"run_id": "x", "at": iso(T0 - dt.timedelta(days=400))},
            "k": {"run_id": "old", "at": old},
        },
    )
    pruned = ledger.pruned(T0)
    assert set(pruned.runs) == {"new"} and pruned.events == {"e2": "new"}
    assert set(pruned.keys) == {"k"}  # trained evidence is remembered for a year
    assert pruned.retrains == ledger.retrains  # the last retrain stays: cooldown measures from it
    assert ledger.runs.keys() == {"old", "new"}  # pruning made a copy


class FakeS3:
    """An S3 bucket with conditional puts (If-Match / If-None-Match), as S3 and MinIO answer."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    @staticmethod
    def _error(code: str) -> Exception:
        exc = Exception(code)
        exc.response = {"Error": {"Code": code}}  # type: ignore[attr-defined]
        return exc

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        if (Bucket, Key) not in self.objects:
            raise self._error("NoSuchKey")
        body = self.objects[(Bucket, Key)]

        class Body:
            def read(self) -> bytes:
                return body

        return {"Body": Body(), "ETag": f'"{hashlib.md5(body).hexdigest()}"'}

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str, **cond: str) -> dict[str, Any]:
        current = self.objects.get((Bucket, Key))
        etag = None if current is None else hashlib.md5(current).hexdigest()
        if ("IfNoneMatch" in cond and current is not None) or ("IfMatch" in cond and cond["IfMatch"] != etag):
            raise self._error("PreconditionFailed")
        self.objects[(Bucket, Key)] = Body
        return {"ETag": f'"{hashlib.md5(Body).hexdigest()}"'}


def test_an_s3_ledger_is_written_with_conditional_puts() -> None:
    s3 = FakeS3()
    store = LedgerStore("s3://bucket/root/p/_state/retrain-ledger.json", s3_client=s3)
    assert store.load() == (None, None)
    version = store.save(Ledger(pipeline="p"), expected_version=None)
    assert ("bucket", "root/p/_state/retrain-ledger.json") in s3.objects
    with pytest.raises(LedgerConflict):
        store.save(Ledger(pipeline="p"), expected_version=None)
    store.save(Ledger(pipeline="p", pending_rows=3), expected_version=version)
    loaded, _ = store.load()
    assert loaded is not None and loaded.pending_rows == 3
    decision, _ = gate_run(
        store, RetrainPolicy(), pipeline="p", model="m", run_id="r", run_type="manual", triggers=[]
    )
    assert decision.admitted and store.load()[0].runs["r"]["trigger"] == "manual"  # type: ignore[union-attr]


def test_a_sustained_storm_cannot_grow_the_ledger_without_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_mlops.retrain import ledger as module

    monkeypatch.setattr(module, "MAX_EVENT_DECISIONS", 5)
    runs = {
        f"r{i}": {
            "decided_at": iso(T0 - dt.timedelta(minutes=10 - i)),
            "events": [{"event_id": f"e{i}-{j}"} for j in range(2)],
        }
        for i in range(5)
    }
    pruned = Ledger(
        pipeline="p", runs=runs, events={f"e{i}-{j}": f"r{i}" for i in range(5) for j in range(2)}
    ).pruned(T0)
    assert sorted(pruned.runs) == ["r3", "r4"] and sorted(pruned.events) == ["e3-0", "e3-1", "e4-0", "e4-1"]
