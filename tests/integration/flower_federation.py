"""A real Flower federation on 127.0.0.1 for the integration tests: one SuperLink and N SuperNodes,
each a process of the Flower environment (``.venv-flower``, ``make flower-venv``), no Ray.

Each process is started in its own session (process group): a SuperNode starts a
``flower-superexec`` and ``flwr-clientapp`` processes that outlive it, so a node is stopped by
signalling the group this fixture created (by its id), never by name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.conftest import ROOT, free_port

FLOWER_VENV = Path(os.environ.get("AIRFLOW_MLOPS_FLOWER_VENV") or ROOT / ".venv-flower")


def flower_bin(name: str) -> Path:
    return FLOWER_VENV / "bin" / name


@dataclass
class Federation:
    """The running federation: the SuperLink's port, the nodes' processes and logs."""

    port: int
    home: Path
    logs: Path
    superlink: subprocess.Popen[bytes]
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def connection(self) -> str:
        """``AIRFLOW_CONN_FLOWER_DEFAULT``: the SuperLink through an Airflow connection."""
        extra = {"insecure": True, "cli": str(flower_bin("flwr"))}
        return json.dumps({"conn_type": "flower", "host": "127.0.0.1", "port": self.port, "extra": extra})

    def node_log(self, index: int) -> Path:
        return self.logs / f"supernode-{index}.log"

    def kill_node(self, index: int) -> None:
        """SIGKILL SuperNode ``index`` and its children (the process group this fixture made)."""
        _signal_group(self.nodes[index], signal.SIGKILL)

    def diagnostics(self) -> str:
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            text = "\n".join(
                line for line in log.read_text(errors="replace").splitlines() if "uvicorn.access" not in line
            )
            parts.append(f"--- {log.name}\n{text[-3000:]}")
        return "\n".join(parts)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the session this fixture started: its pgid is its pid
    except ProcessLookupError:
        pass


def _environment(home: Path) -> dict[str, str]:
    return {
        "PATH": f"{FLOWER_VENV / 'bin'}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", str(home)),
        "FLWR_HOME": str(home),
        "PYTHONPATH": str(ROOT),  # the SuperLink and SuperNodes run this checkout's app
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }


def _wait_for(what: str, seconds: float, probe: object, federation: Federation | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probe():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} within {seconds:.0f}s\n" + (federation.diagnostics() if federation else ""))


@contextmanager
def running_federation(tmp: Path, nodes: int, *, partitions: int | None = None) -> Iterator[Federation]:
    """A SuperLink and ``nodes`` SuperNodes; node ``i`` reads partition ``i`` of ``partitions``."""
    home, logs = tmp / "flwr-home", tmp / "flwr-logs"
    home.mkdir(parents=True)
    logs.mkdir(parents=True)
    env = _environment(home)
    port = free_port()
    superlink = subprocess.Popen(
        [str(flower_bin("flower-superlink")), "--insecure", "--host", "127.0.0.1", "--port", str(port),
         "--disable-runtime-dependency-installation"],
        stdout=(logs / "superlink.log").open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    federation = Federation(port=port, home=home, logs=logs, superlink=superlink)
    try:
        _wait_for(
            "the SuperLink listens",
            120,
            lambda: "Uvicorn running" in _read(logs / "superlink.log"),
            federation,
        )
        count = partitions or nodes
        for index in range(nodes):
            node = subprocess.Popen(
                [str(flower_bin("flower-supernode")), "--insecure", "--superlink", federation.address,
                 "--host", "127.0.0.1", "--port", str(free_port()),
                 "--node-config", f"partition-id={index} num-partitions={count}"],
                stdout=federation.node_log(index).open("wb"), stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip
            federation.nodes.append(node)
        _wait_for(
            f"{nodes} SuperNodes registered",
            120,
            lambda: _read(logs / "superlink.log").count("Activated node_id=") >= nodes,
            federation,
        )
        yield federation
    finally:
        for proc in [*federation.nodes, superlink]:
            _signal_group(proc, signal.SIGTERM)
        for proc in [*federation.nodes, superlink]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=20)
        time.sleep(1)
        for proc in [*federation.nodes, superlink]:
            _signal_group(proc, signal.SIGKILL)  # children (superexec, app processes) left behind


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
