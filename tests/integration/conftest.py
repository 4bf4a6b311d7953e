"""Real local servers for integration tests: an MLflow server on 127.0.0.1 (stopped by its PID)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MLflowServer:
    url: str
    root: Path


@contextmanager
def running_mlflow(root: Path) -> Iterator[MLflowServer]:
    """An ``mlflow server`` on 127.0.0.1 with its state under ``root``; stopped by its process group."""
    port = free_port()
    log = open(root / "server.log", "w")  # noqa: SIM115 - open for the server's lifetime
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(
                        "mlflow server did not start:\n" + (root / "server.log").read_text()[-3000:]
                    ) from None
                time.sleep(0.5)
        yield MLflowServer(url=url, root=root)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the process group this fixture started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLflowServer]:
    """One server for the tests that only need some registry."""
    with running_mlflow(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture
def fresh_mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLflowServer]:
    """A server of the test's own, as a new deployment has: the example pipeline's first model is
    really the first (a registry that knows the pipeline under another model name refuses a new
    name as a likely misspelling, see registry/mlflow_registry.py champion_version)."""
    with running_mlflow(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture(scope="session")
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    from airflow_mlops.security.signing import generate_key_pair

    return generate_key_pair()


@pytest.fixture(scope="session")
def example_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import datetime as dt

    from airflow_mlops.data.generate import write_example_data

    out = tmp_path_factory.mktemp("data") / "fraud"
    write_example_data(out, start=dt.date(2026, 1, 1), days=4)
    return out
