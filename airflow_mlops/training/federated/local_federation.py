"""A Flower federation on this machine, for one run (``training.federated.local_nodes``).

A SuperLink and N SuperNodes, each a process of the Flower environment (the ``flower-superlink``
and ``flower-supernode`` executables beside the ``flwr`` CLI), listening on 127.0.0.1 only, on
ports chosen free at start, with no Ray. SuperNode ``i`` trains on partition ``i`` of ``N`` of
the run's training table. It is a trial of the federation on one machine -- the same app, the
same rounds, strategy and DP on client updates as a real deployment -- not a privacy boundary:
every partition is on this machine.

Each process is started in a session of its own (its process group), because a SuperNode starts
``flower-superexec`` and ``flwr-clientapp`` processes that outlive it; :meth:`LocalFederation.stop`
signals those groups (by the ids this module recorded), never processes by name.

Standard library only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from airflow_mlops.exceptions import TrainingError, TrainingRejectedError
from airflow_mlops.training.federated.flower_cli import SuperLink

#: How long the SuperLink and the SuperNodes get to come up.
READY_TIMEOUT = 120.0


@dataclass
class LocalFederation:
    """The running federation: its SuperLink, the processes and their logs."""

    superlink: SuperLink
    logs: Path
    link_process: subprocess.Popen[bytes]
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.superlink.address.rsplit(":", 1)[1])

    def node_log(self, index: int) -> Path:
        return self.logs / f"supernode-{index}.log"

    def kill_node(self, index: int) -> None:
        """SIGKILL SuperNode ``index`` and its children (as a lost machine would vanish)."""
        _signal_group(self.nodes[index], signal.SIGKILL)

    def diagnostics(self, tail: int = 3000) -> str:
        """The end of every process's log (HTTP access lines left out)."""
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            text = "\n".join(line for line in _read(log).splitlines() if "uvicorn.access" not in line)
            parts.append(f"--- {log.name}\n{text[-tail:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop every process and what it started: SIGTERM, up to 20 s, then SIGKILL."""
        processes = [*self.nodes, self.link_process]
        for proc in processes:
            _signal_group(proc, signal.SIGTERM)
        for proc in processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=20)
        time.sleep(1)
        for proc in processes:
            _signal_group(proc, signal.SIGKILL)  # children left behind (superexec, app processes)


def executables(cli: str) -> tuple[str, str]:
    """``flower-superlink`` and ``flower-supernode`` beside the ``flwr`` CLI (or on ``PATH``)."""
    import shutil

    found = []
    for name in ("flower-superlink", "flower-supernode"):
        beside = Path(cli).parent / name if os.sep in cli else None
        path = str(beside) if beside is not None and beside.exists() else shutil.which(name)
        if path is None:
            raise TrainingRejectedError(
                f"`training.federated.local_nodes` starts a federation on this worker, but {name} is not "
                f"installed beside the Flower CLI {cli!r} or on PATH: install flwr on the worker (see "
                "docs/training.md) or set the Flower connection's extra.cli to the flwr of that environment"
            )
        found.append(path)
    return found[0], found[1]


def start(
    cli: str,
    nodes: int,
    workdir: Path,
    *,
    package_root: str | None = None,
    ready_timeout: float = READY_TIMEOUT,
    alive: Callable[[], None] | None = None,
) -> LocalFederation:
    """Start a SuperLink and ``nodes`` SuperNodes on 127.0.0.1; return once every node is
    registered. The caller stops it (:meth:`LocalFederation.stop`), also when this raises not.

    :param package_root: put on the processes' ``PYTHONPATH`` (they run this package's app);
        default: the folder this package is imported from.
    :raises TrainingError: a process exited or the federation was not up within ``ready_timeout``
        (the message has the logs' ends); everything started is stopped first.
    """
    if nodes < 1:
        raise TrainingRejectedError(f"a local federation needs at least 1 SuperNode, got {nodes}")
    superlink_bin, supernode_bin = executables(cli)
    home, logs = workdir / "flwr-home", workdir / "flwr-logs"
    home.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": f"{Path(superlink_bin).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", str(home)),
        "FLWR_HOME": str(home),
        "PYTHONPATH": package_root or str(Path(__file__).resolve().parents[3]),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    port = free_port()
    link = subprocess.Popen(
        [superlink_bin, "--insecure", "--host", "127.0.0.1", "--port", str(port),
         "--disable-runtime-dependency-installation"],
        stdout=(logs / "superlink.log").open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    superlink = SuperLink(address=f"127.0.0.1:{port}", insecure=True, cli=cli)
    federation = LocalFederation(superlink=superlink, logs=logs, link_process=link)
    try:
        _wait(federation, "the SuperLink to listen", ready_timeout,
              lambda: "Uvicorn running" in _read(logs / "superlink.log"), alive)  # fmt: skip
        for index in range(nodes):
            node = subprocess.Popen(
                [supernode_bin, "--insecure", "--superlink", superlink.address,
                 "--host", "127.0.0.1", "--port", str(free_port()),
                 "--node-config", f"partition-id={index} num-partitions={nodes}"],
                stdout=federation.node_log(index).open("wb"), stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip
            federation.nodes.append(node)
        _wait(federation, f"{nodes} SuperNode(s) to register", ready_timeout,
              lambda: _read(logs / "superlink.log").count("Activated node_id=") >= nodes, alive)  # fmt: skip
    except BaseException:
        federation.stop()
        raise
    return federation


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(
    federation: LocalFederation,
    what: str,
    seconds: float,
    probe: Callable[[], bool],
    alive: Callable[[], None] | None,
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probe():
            return
        for proc in [federation.link_process, *federation.nodes]:
            if proc.poll() is not None:
                raise TrainingError(
                    f"the local Flower federation did not start: a process exited with status "
                    f"{proc.returncode} while waiting for {what}\n{federation.diagnostics(1500)}"
                )
        if alive is not None:
            alive()
        time.sleep(0.5)
    raise TrainingError(
        f"the local Flower federation did not start: no {what} within {seconds:.0f}s\n"
        f"{federation.diagnostics(1500)}"
    )


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the session started for it: its pgid is its pid
    except ProcessLookupError:
        pass


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
