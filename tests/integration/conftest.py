"""Real local servers for integration tests: an MLflow server on 127.0.0.1 (stopped by its PID)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.training.federated.local_federation import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class MLflowServer:
    url: str
    root: Path


@contextmanager
def running_mlflow(root: Path, port: int | None = None, *, crash: bool = False) -> Iterator[MLflowServer]:
    """An ``mlflow server`` on 127.0.0.1 with its state under ``root``; stopped by its process group
    (``crash``: killed at once, as a server that dies, instead of a graceful stop).

    Started again on the same ``root`` and ``port`` it is the same registry (a restart)."""
    port = port or free_port()
    log = open(root / "server.log", "a")  # noqa: SIM115 - open for the server's lifetime
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
        os.killpg(proc.pid, signal.SIGKILL if crash else signal.SIGTERM)  # the group this fixture started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def register_signed(
    client: Any,
    tmp: Path,
    keys: tuple[bytes, bytes],
    *,
    model: str,
    tag: str,
    pipeline: str = "it-pipeline",
    gates: str = "passed",
    blessed: bool = True,
    compared: bool = False,
    champion: str | None = None,
    attest_key: bytes | None = None,
) -> str:
    """Register a small signed model version the way the pipeline does (tags, blessing for its
    exact digest, signed as an evaluation attestation with ``attest_key``, default the signing
    key); returns the version. ``tag`` names the Airflow run and the model's content."""
    import json

    from airflow_mlops.artifacts import sha256_directory
    from airflow_mlops.registry.blessing import TAG_BLESSING, Blessing
    from airflow_mlops.registry.mlflow_registry import (
        EVALUATION_ATTESTATION,
        TAG_GATES,
        TAG_PIPELINE,
        register_version,
        start_or_resume_run,
    )
    from airflow_mlops.security.attestation import EVALUATION_PREDICATE, sign_statement, statement
    from airflow_mlops.security.signing import sign_model

    model_dir = tmp / tag.replace("/", "_")
    (model_dir / "weights").mkdir(parents=True)
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    (model_dir / "weights" / "model_config.json").write_text(json.dumps({"tag": tag}))
    sig = tmp / f"{tag.replace('/', '_')}.sig"
    sign_model(model_dir, sig, keys[0])
    run_id = start_or_resume_run(
        client, experiment=pipeline, pipeline=pipeline, airflow_run=tag, run_name=tag
    )
    tags = {TAG_PIPELINE: pipeline, TAG_GATES: gates}
    attachments = {}
    if blessed:
        digest = sha256_directory(model_dir)[0]
        blessing = Blessing(
            model_sha256=digest,
            passed=gates == "passed",
            compared=compared,
            champion_version=champion,
            by=f"{tag}/gates.evaluate",
        )
        tags[TAG_BLESSING] = blessing.to_tag()
        envelope = sign_statement(
            statement(digest, EVALUATION_PREDICATE, {"blessing": blessing.to_dict(), "gates": []}),
            attest_key or keys[0],
        )
        attachments[EVALUATION_ATTESTATION] = tmp / f"{tag.replace('/', '_')}.intoto.json"
        attachments[EVALUATION_ATTESTATION].write_text(json.dumps(envelope))
    registered = register_version(
        client,
        model_name=model,
        run_id=run_id,
        model_dir=model_dir,
        signature_path=sig,
        airflow_run=tag,
        tags=tags,
        attachments=attachments,
    )
    return str(registered.version)


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


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    """The private Docker engine (scripts/docker_engine.sh) with its base images; stopped at the end
    of the session by its pid file if the session started it."""
    from tests.integration.docker_engine import start_engine, stop_engine

    engine = start_engine()
    try:
        yield engine
    finally:
        stop_engine(engine)


@pytest.fixture(scope="session")
def trainer_image(docker_engine: Any) -> str:
    from tests.integration.docker_engine import trainer_image

    return trainer_image(docker_engine)
