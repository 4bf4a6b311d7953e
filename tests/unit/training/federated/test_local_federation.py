"""A local Flower federation (``training.federated.local_nodes``): started on 127.0.0.1, every
process and what it started stopped by its process group, a failed start stopped and reported,
and the fit task that owns it (with stand-ins for the Flower executables)."""

from __future__ import annotations

import json
import os
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.exceptions import TrainingError, TrainingRejectedError
from airflow_mlops.training.federated import local_federation
from tests.unit.operators.test_training_federated import context, operator, write_result
from tests.unit.triggers.fake_flwr import calls, make_fake_federation


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][0] != "Z"


def children(state: Path) -> list[int]:
    return [int(p.read_text()) for p in state.glob("child-*")]


def test_a_local_federation_starts_on_loopback_and_stops_everything(tmp_path: Path) -> None:
    cli, state = make_fake_federation(tmp_path / "bin", ["running"])
    federation = local_federation.start(cli, 3, tmp_path / "run", ready_timeout=60)
    try:
        host, port = federation.superlink.address.split(":")
        assert host == "127.0.0.1" and federation.superlink.insecure and federation.superlink.cli == cli
        assert (
            f"Uvicorn running on http://127.0.0.1:{port}"
            in (tmp_path / "run/flwr-logs/superlink.log").read_text()
        )
        configs = sorted(p.read_text() for p in state.glob("node-*"))
        assert configs == [f"partition-id={i} num-partitions=3 superlink=127.0.0.1:{port}" for i in range(3)]
        pids = [p.pid for p in [federation.link_process, *federation.nodes]] + children(state)
        assert len(pids) == 7 and all(alive(pid) for pid in pids)
    finally:
        federation.stop()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)]  # the nodes' children too: their groups were signalled


def test_a_federation_that_cannot_start_is_stopped_and_reported(tmp_path: Path) -> None:
    cli, state = make_fake_federation(tmp_path / "bin", ["running"])
    (state / "superlink-fails").write_text("")
    with pytest.raises(TrainingError, match="a process exited with status 3") as info:
        local_federation.start(cli, 2, tmp_path / "run", ready_timeout=60)
    assert "cannot bind" in str(info.value)  # the log's end is in the message
    assert not list(state.glob("node-*"))


def test_missing_flower_executables_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        TrainingRejectedError, match="flower-superlink is not installed beside the Flower CLI"
    ):
        local_federation.start(str(tmp_path / "flwr"), 2, tmp_path / "run")
    with pytest.raises(TrainingRejectedError, match="at least 1 SuperNode"):
        local_federation.start("flwr", 0, tmp_path / "run")


def test_the_fit_task_runs_its_own_federation_and_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    op, _ = operator(tmp_path, monkeypatch, ["running"], local_nodes=2, min_clients=2, partitions=None)
    cli, state = make_fake_federation(tmp_path / "fed", ["running", "finished:completed"])
    conn = {"conn_type": "flower", "extra": {"cli": cli}}  # no host or port: only the CLI is read
    monkeypatch.setenv("AIRFLOW_CONN_FL", json.dumps(conn))
    started: list[Any] = []
    real_start = local_federation.start

    def start(*args: Any, **kwargs: Any) -> Any:
        started.append(real_start(*args, **kwargs))
        write_result(tmp_path)  # what the ServerApp writes
        return started[-1]

    monkeypatch.setattr(local_federation, "start", start)
    result = op.execute(context())  # not deferred: the worker owns the federation
    assert result["metrics"]["federated_run_id"] == "4242"
    [federation] = started
    link = federation.superlink.address
    submitted = [c for c in calls(state) if c[0] == "run"]
    assert len(submitted) == 1
    config = tomllib.loads((state / "run.toml").read_text())
    assert config["partitions"] == 2 and config["min-clients"] == 2
    assert all(proc.poll() is not None for proc in [federation.link_process, *federation.nodes])
    assert link.startswith("127.0.0.1:")


def test_a_failed_run_still_stops_the_local_federation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    op, _ = operator(tmp_path, monkeypatch, ["running"], local_nodes=2, min_clients=2, partitions=None)
    cli, _ = make_fake_federation(tmp_path / "fed", ["finished:failed"])
    monkeypatch.setenv("AIRFLOW_CONN_FL", json.dumps({"conn_type": "flower", "extra": {"cli": cli}}))
    started: list[Any] = []
    real_start = local_federation.start
    monkeypatch.setattr(
        local_federation, "start", lambda *a, **k: started.append(real_start(*a, **k)) or started[-1]
    )
    with pytest.raises(TrainingError, match="ended finished:failed"):
        op.execute(context())
    [federation] = started
    assert all(proc.poll() is not None for proc in [federation.link_process, *federation.nodes])


def test_a_job_it_cannot_train_starts_no_federation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    op, _ = operator(tmp_path, monkeypatch, ["running"], local_nodes=2, min_clients=2, partitions=None,
                     job={"task": "regression"})  # fmt: skip
    monkeypatch.setattr(local_federation, "start", lambda *a, **k: pytest.fail("started a federation"))
    with pytest.raises(TrainingRejectedError, match="binary task"):
        op.execute(context())
