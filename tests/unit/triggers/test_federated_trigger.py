"""FlowerRunTrigger: serialization, polling a run to its end, the deadline, and on_kill."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.triggers.federated import FlowerRunTrigger
from tests.unit.triggers.fake_flwr import calls, make_fake_flwr


def connect(monkeypatch: pytest.MonkeyPatch, cli: str, conn_id: str = "fl") -> None:
    conn = {"conn_type": "flower", "host": "127.0.0.1", "port": 9093, "extra": {"insecure": True, "cli": cli}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def events(trigger: FlowerRunTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def test_serialize_returns_the_classpath_and_every_argument() -> None:
    trigger = FlowerRunTrigger(run_id=7, flower_conn_id="fl", poll_interval=2, deadline=123.5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_mlops.triggers.federated.FlowerRunTrigger"
    assert kwargs == {"run_id": 7, "flower_conn_id": "fl", "poll_interval": 2.0, "deadline": 123.5}
    assert FlowerRunTrigger(**kwargs).serialize() == (classpath, kwargs)
    with pytest.raises(ValueError, match="poll_interval"):
        FlowerRunTrigger(run_id=1, flower_conn_id="fl", poll_interval=0, deadline=1)


def test_it_polls_until_the_run_finishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli, state = make_fake_flwr(tmp_path, ["pending", "running", "running", "finished:completed"])
    connect(monkeypatch, cli)
    got = events(
        FlowerRunTrigger(run_id=4242, flower_conn_id="fl", poll_interval=0.01, deadline=time.time() + 60)
    )
    assert got == [
        {"run_id": 4242, "status": "finished:completed", "details": "details of finished:completed"}
    ]
    made = calls(state)
    assert len(made) == 4 and all(c[:2] == ["ls", "mlops"] and c[-1] is True for c in made)


def test_a_failed_run_and_the_deadline_end_the_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli, _ = make_fake_flwr(tmp_path / "a", ["running", "finished:failed"])
    connect(monkeypatch, cli)
    assert events(FlowerRunTrigger(run_id=4242, flower_conn_id="fl", poll_interval=0.01,
                                   deadline=time.time() + 60))[0]["status"] == "finished:failed"  # fmt: skip
    cli, _ = make_fake_flwr(tmp_path / "b", ["running"])
    connect(monkeypatch, cli)
    got = events(
        FlowerRunTrigger(run_id=4242, flower_conn_id="fl", poll_interval=0.01, deadline=time.time() - 1)
    )
    assert got == [{"run_id": 4242, "status": "timeout", "details": "still running"}]


def test_an_unknown_run_or_connection_is_an_error_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, _ = make_fake_flwr(tmp_path, ["running"])
    connect(monkeypatch, cli)
    got = events(
        FlowerRunTrigger(run_id=1, flower_conn_id="fl", poll_interval=0.01, deadline=time.time() + 60)
    )
    assert got[0]["status"] == "error" and "does not know run 1" in got[0]["details"]
    got = events(
        FlowerRunTrigger(run_id=1, flower_conn_id="absent", poll_interval=0.01, deadline=time.time() + 60)
    )
    assert got[0]["status"] == "error"


def test_on_kill_stops_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli, state = make_fake_flwr(tmp_path, ["running"])
    connect(monkeypatch, cli)
    asyncio.run(FlowerRunTrigger(run_id=4242, flower_conn_id="fl", poll_interval=1, deadline=0).on_kill())
    assert calls(state) == [["stop", "4242", "mlops", "--format", "json", True]]
