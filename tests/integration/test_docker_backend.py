"""The trainer image and the ``docker`` backend on a real Docker engine (scripts/docker_engine.sh):
the image built on a CPU torch base runs every model flavor as a non-root user on a read-only
root; the example spec with ``backend: docker`` trains through ``airflow dags test`` with a local
artifact root and with the S3 server, and the gates promote the model; the live container is
hardened as documented, no credential shows in ``docker inspect``, the task log or XCom; on a real
scheduler, a retry removes the container a dead try left and a killed task removes its own."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from scripts.demo_loop import _q, wait_for
from tests.integration.airflow_stack import COMPONENTS, airflow_stack, unpaused_api
from tests.integration.conftest import MLflowServer
from tests.integration.docker_engine import Engine, watch
from tests.integration.test_lifecycle_dag import airflow_env, make_dags_folder, run

pytestmark = [pytest.mark.integration, pytest.mark.docker]

AIRFLOW = str(Path(sys.executable).parent / "airflow")
TRAIN = "fraud_detector__train"
FIT_LABELS = (f"io.airflow-mlops.dag_id={TRAIN}", "io.airflow-mlops.task_id=training.fit")


# --- the image ---------------------------------------------------------------------------------


def _jobs(root: Path) -> list[tuple[str, Any]]:
    """One training job per flavor and task, in a local store under ``root``."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

    from airflow_mlops.artifacts import ArtifactStore
    from airflow_mlops.training.job import TrainingJob, write_job

    store = ArtifactStore(str(root))
    frames = {
        "binary": load_breast_cancer(as_frame=True).frame.rename(columns={"target": "y"}),
        "multiclass": load_iris(as_frame=True).frame.rename(columns={"target": "y"}),
        "regression": load_diabetes(as_frame=True).frame.rename(columns={"target": "y"}),
    }
    cases = [
        ("mlp", "binary", {"epochs": 3, "batch_size": 64, "hidden_units": [16]}),
        ("xgboost", "multiclass", {"n_estimators": 20, "max_depth": 3}),
        ("lightgbm", "regression", {"n_estimators": 20, "num_leaves": 8}),
        ("sklearn.ensemble.RandomForestClassifier", "binary", {"n_estimators": 10}),
    ]
    jobs = []
    for i, (model, task, params) in enumerate(cases):
        df = frames[task]
        path = root / f"in{i}.parquet"
        df.to_parquet(path)
        train = store.put_file(path, f"job{i}/train.parquet", producer="test")
        config = {
            "target": "y",
            "features": [c for c in df.columns if c != "y"],
            "positive_label": 1,
            "task": task,
            "params": params,
            "seed": 1,
            "device": "cpu",
            "threshold": {"rule": "best_f1"},
        }
        job = TrainingJob(str(root), train, model, config, f"job{i}/weights")
        jobs.append((f"{model} ({task})", write_job(store, f"job{i}/job.json", job, producer="test")))
    return jobs


HARDENED = ["--read-only", "--tmpfs", "/tmp:rw,noexec,nosuid,nodev", "--cap-drop", "ALL"]
HARDENED += ["--security-opt", "no-new-privileges:true", "--network", "host"]


def test_the_trainer_image_runs_every_flavor_as_uid_1000_on_a_read_only_root(
    docker_engine: Engine, trainer_image: str, tmp_path: Path
) -> None:
    from airflow_mlops.operators.training import parse_fit_result
    from airflow_mlops.training.flavors import load_predictor

    probe = docker_engine.docker(
        "run", "--rm", *HARDENED, "--entrypoint", "python", trainer_image, "-c",
        "import os, torch\nprint(os.getuid(), os.getgid(), torch.__version__)\n"
        "try:\n    open('/opt/trainer/x', 'w')\nexcept OSError as e:\n    print('write refused:', e.errno)",
    )  # fmt: skip
    uid, gid, torch_version, *rest = probe.stdout.split()
    assert (uid, gid) == ("1000", "1000"), probe.stdout  # the image's own user, not root
    assert torch_version.endswith("+cpu")
    assert rest[:2] == ["write", "refused:"], probe.stdout  # the root filesystem is read-only

    store = tmp_path / "store"
    store.mkdir()
    jobs = _jobs(store)
    subprocess.run(["chown", "-R", "1000:1000", str(store)], check=True)
    # Each flavor trains, saves and loads back inside the image: the import closure is complete
    # (a module the Dockerfile forgot fails here, whatever a file list says).
    for name, job in jobs:
        proc = docker_engine.docker(
            "run", "--rm", *HARDENED, "-v", f"{store}:{store}", trainer_image,
            "--job", json.dumps(job.to_dict()), "--print-result", check=False, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, (name, (proc.stdout + proc.stderr)[-3000:])
        result = parse_fit_result(proc.stdout, where=name)
        weights = Path(result["weights"]["uri"].removeprefix("file://"))
        predictor = load_predictor(weights)  # the host reads what the container wrote
        assert predictor.describe()["task"] in ("binary", "multiclass", "regression"), name


# --- the docker backend through Airflow ----------------------------------------------------------


def _docker_spec(spec: Path, image: str, *, epochs: int = 3, artifacts: str = "") -> None:
    text = spec.read_text()
    old = "training:\n  backend: local\n  model: mlp\n  params: {epochs: 15,"
    assert old in text, "the example spec changed"
    text = text.replace(
        old,
        "training:\n  backend: docker\n"
        f"  image: {image}\n"
        '  resources: {cpu: "1", memory: 2Gi}\n'
        "  docker: {network_mode: host, scratch_size: 512m}\n"
        f"  model: mlp\n  params: {{epochs: {epochs},",
    )
    for old, new in {
        "retries: 1,": "retries: 0,",
        # A few epochs: this test is about the container, not the example's operating point.
        "threshold: {rule: min_precision, value: 0.8}": "threshold: {rule: best_f1}",
        ", precision: {min: 0.5}}": "}",
    }.items():
        assert old in text, old
        text = text.replace(old, new)
    if artifacts:
        text = text.replace("\ndata:\n", f"\n{artifacts}\ndata:\n", 1)
    spec.write_text(text)


class Watcher:
    """Records every live trainer container of the DAG (``docker inspect``) while a run goes on."""

    def __init__(self, engine: Engine, labels: Sequence[str] = FIT_LABELS) -> None:
        self.engine = engine
        self.seen: dict[str, dict[str, Any]] = {}
        self.counts: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=watch, args=(engine, labels, self.stop, self.seen, self.counts), daemon=True
        )

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(30)


def _one(seen: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    described = [
        (cid[:12], i["Name"], i["Config"]["Image"], i["Created"], i["Config"]["Labels"])
        for cid, i in seen.items()
    ]
    assert len(seen) == 1, described
    return list(seen.values())


def _dags_test(env: dict[str, str], date: str, log: Path) -> subprocess.CompletedProcess[str]:
    return run([AIRFLOW, "dags", "test", TRAIN, date], env, log)


def _assert_hardened(info: dict[str, Any], *, user: str) -> None:
    host, config = info["HostConfig"], info["Config"]
    assert config["User"] == user and user.split(":")[0] != "0"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["Privileged"] is False
    assert host["PidsLimit"] == 4096
    assert host["Memory"] == 2 * 1024**3
    assert host["NanoCpus"] == 1_000_000_000
    assert host["Tmpfs"] == {"/tmp": "rw,noexec,nosuid,nodev,size=512m"}
    assert host["NetworkMode"] == "host"
    assert config["Labels"]["io.airflow-mlops.run_id"].startswith("manual__")


def _xcom_values(airflow_home: Path) -> str:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        return "\n".join(str(row[0]) for row in db.execute("select value from xcom"))


@pytest.fixture
def docker_env(
    tmp_path: Path,
    fresh_mlflow_server: MLflowServer,
    signing_keys: tuple[bytes, bytes],
    example_data: Path,
    docker_engine: Engine,
) -> Iterator[tuple[dict[str, str], Path]]:
    dags = make_dags_folder(tmp_path, example_data, "fraud-detector-docker-it")
    env = {
        **airflow_env(tmp_path, fresh_mlflow_server.url, signing_keys, dags),
        "DOCKER_HOST": docker_engine.host,
    }
    migrate = run([AIRFLOW, "db", "migrate"], env, tmp_path / "migrate.log")
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    yield env, dags / "specs" / "fraud_detector.yaml"
    for cid in docker_engine.containers(*FIT_LABELS):
        docker_engine.docker("rm", "-f", cid, check=False)


def test_docker_backend_with_a_local_store_trains_in_a_hardened_container_and_promotes(
    docker_env: tuple[dict[str, str], Path],
    docker_engine: Engine,
    trainer_image: str,
    tmp_path: Path,
    fresh_mlflow_server: MLflowServer,
) -> None:
    from mlflow import MlflowClient

    from airflow_mlops.registry.mlflow_registry import champion_version

    env, spec = docker_env
    _docker_spec(spec, trainer_image)
    with Watcher(docker_engine) as watcher:
        first = _dags_test(env, "2026-01-02", tmp_path / "run1.log")
    assert first.returncode == 0, (first.stdout + first.stderr)[-5000:]
    (info,) = _one(watcher.seen)  # the fit ran in one container
    _assert_hardened(info, user="1000:1000" if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}")
    assert info["Config"]["OpenStdin"] is False  # a local store: no credentials at all
    assert docker_engine.containers(*FIT_LABELS) == []  # removed when it ended
    champion = champion_version(
        MlflowClient(tracking_uri=fresh_mlflow_server.url), "fraud-detector-docker-it", "champion"
    )
    assert champion is not None and champion.version == "1"


def test_docker_backend_with_s3_keeps_the_credentials_out_of_inspect_logs_and_xcom(
    docker_env: tuple[dict[str, str], Path],
    docker_engine: Engine,
    trainer_image: str,
    tmp_path: Path,
    fresh_mlflow_server: MLflowServer,
) -> None:
    import boto3
    from mlflow import MlflowClient
    from moto.server import ThreadedMotoServer

    from airflow_mlops.registry.mlflow_registry import champion_version

    env, spec = docker_env
    secret = f"docker-it-secret-{os.getpid()}-{time.time_ns()}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id="docker-it",
            aws_secret_access_key=secret, region_name="us-east-1",
        )  # fmt: skip
        s3.create_bucket(Bucket="mlops-docker-it")
        env = {
            **env,
            "AIRFLOW_MLOPS_ARTIFACT_ROOT": "s3://mlops-docker-it/artifacts",
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                {
                    "conn_type": "aws",
                    "login": "docker-it",
                    "password": secret,
                    "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
                }
            ),
        }
        _docker_spec(spec, trainer_image, artifacts="artifacts:\n  connection: aws_default\n")
        with Watcher(docker_engine) as watcher:
            first = _dags_test(env, "2026-01-02", tmp_path / "run1.log")
        assert first.returncode == 0, (first.stdout + first.stderr)[-5000:]
        (info,) = _one(watcher.seen)
        _assert_hardened(info, user="1000:1000")
        assert info["Config"]["OpenStdin"] is True and info["Config"]["StdinOnce"] is True
        assert info["Config"]["Cmd"][-1] == "--credentials-stdin"
        assert f"AWS_ENDPOINT_URL={endpoint}" in info["Config"]["Env"]
        # The secret is nowhere a person with the Docker socket, the logs or the database can read.
        assert secret not in json.dumps(info)
        assert secret not in first.stdout + first.stderr
        for path in (tmp_path / "airflow").rglob("*.log"):
            assert secret not in path.read_text(errors="replace"), path
        assert secret not in _xcom_values(tmp_path / "airflow")
        # The model went through the S3 store and was promoted.
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mlops-docker-it")["Contents"]]
        assert any(k.endswith("/weights/model.safetensors") for k in keys), keys
        client = MlflowClient(tracking_uri=fresh_mlflow_server.url)
        champion = champion_version(client, "fraud-detector-docker-it", "champion")
        assert champion is not None and champion.version == "1"
    finally:
        server.stop()


def _await_container(engine: Engine, labels: tuple[str, ...], check: Any, *, not_: str = "") -> str:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        ids = [c for c in engine.containers(*labels, all=False) if c != not_]
        if ids:
            return ids[0]
        check()
        time.sleep(0.3)
    raise AssertionError("no trainer container started")


def _ti(api: Any, run_id: str) -> dict[str, Any]:
    return dict(api.get(f"dags/{TRAIN}/dagRuns/{_q(run_id)}/taskInstances/training.fit"))


def test_a_dead_worker_s_container_is_removed_by_the_retry_and_a_killed_task_removes_its_own(
    tmp_path: Path,
    fresh_mlflow_server: MLflowServer,
    signing_keys: tuple[bytes, bytes],
    example_data: Path,
    docker_engine: Engine,
    trainer_image: str,
) -> None:
    """On a real scheduler: the task process dies (SIGKILL, as when a worker is lost) and leaves
    its container training; Airflow retries the task instance (same run, next try), and the retry
    removes the orphan before it starts its own -- never two at once. Then the task is marked
    failed in the API: Airflow stops the task (SIGTERM -> on_kill), which removes the container."""
    dags = make_dags_folder(tmp_path, example_data, "fraud-detector-docker-kill")
    spec = dags / "specs" / "fraud_detector.yaml"
    _docker_spec(spec, trainer_image, epochs=500)  # long enough to be killed mid-training
    text = spec.read_text()
    spec.write_text(text.replace("retries: 0, retry_delay: 1m", "retries: 1, retry_delay: 2s", 1))
    assert "retries: 1, retry_delay: 2s" in spec.read_text()
    text = spec.read_text()
    for old, new in {'time: "@daily"\n  events: [drift, new_data]': "events: [drift, new_data]"}.items():
        assert old in text, old
        spec.write_text(text.replace(old, new))
    env = {
        **airflow_env(tmp_path, fresh_mlflow_server.url, signing_keys, dags),
        "DOCKER_HOST": docker_engine.host,
    }

    with airflow_stack(tmp_path, env, components=COMPONENTS) as stack:
        api = unpaused_api(stack, TRAIN)
        run_id = api.trigger(TRAIN, logical_date=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
        labels = (*FIT_LABELS, f"io.airflow-mlops.run_id={run_id}")
        try:
            first = _await_container(docker_engine, labels, stack.check_alive)
            wait_for("the task's pid", 60, lambda: _ti(api, run_id).get("pid"), check=stack.check_alive)
            ti = _ti(api, run_id)
            assert ti["try_number"] == 1
            with Watcher(docker_engine, labels) as watcher:
                os.kill(ti["pid"], signal.SIGKILL)  # the task process dies: no on_kill
                time.sleep(1)
                assert (docker_engine.inspect(first) or {}).get("State", {}).get("Running"), (
                    "expected an orphan"
                )
                second = _await_container(docker_engine, labels, stack.check_alive, not_=first)
            assert docker_engine.inspect(first) is None, "the dead try's container is still there"
            info = docker_engine.inspect(second)
            assert info is not None and info["Config"]["Labels"]["io.airflow-mlops.try_number"] == "2"
            assert watcher.counts and max(watcher.counts) == 1, (
                watcher.counts
            )  # the orphan, none, the retry's: never two

            api.call(
                "PATCH",
                f"dags/{TRAIN}/dagRuns/{_q(run_id)}/taskInstances/training.fit",
                {"new_state": "failed"},
            )
            wait_for(
                "the killed task's container to go",
                120,
                lambda: docker_engine.inspect(second) is None,
                check=stack.check_alive,
            )
        finally:
            for cid in docker_engine.containers(*labels):
                docker_engine.docker("rm", "-f", cid, check=False)
