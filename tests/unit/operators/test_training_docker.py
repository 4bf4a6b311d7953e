"""The docker backend: the container the example spec creates, against a recording Docker API."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.factory import build_dags
from airflow_mlops.spec.loader import load_spec

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "docs" / "examples" / "fraud_detector_docker.yaml"
AWS_SECRET = "wJalrXUtnFEMI-private-env-only"
JOB = {
    "uri": "s3://mlops-artifacts/fraud/fraud_detector_docker/manual__1/train/job.json",
    "sha256": "cd" * 32,
    "size": 640,
    "media_type": "application/json",
    "producer": "training.prepare",
    "metadata": {},
}
RESULT = {
    "format_version": 1,
    "weights": {**JOB, "uri": JOB["uri"].replace("job.json", "weights"), "media_type": "inode/directory"},
    "metrics": {"val_roc_auc": 0.91},
}


class RecordingDockerClient:
    """The few Docker API calls DockerOperator makes; host configs are the real docker-py ones."""

    def __init__(self, logs: list[bytes], status: int = 0, leftovers: list[dict[str, Any]] = ()) -> None:
        self.logs, self.status = logs, status
        self.created: dict[str, Any] = {}
        self.removed: list[Any] = []
        self.stdin = b""
        self.events: list[str] = []
        self.leftovers = list(leftovers)
        self.filters: list[Any] = []

    def containers(self, all: bool = False, filters: Any = None) -> list[dict[str, Any]]:
        self.filters.append(filters)
        return self.leftovers

    def attach_socket(self, container_id: str, params: Any = None) -> Any:
        assert params == {"stdin": 1, "stream": 1}
        client = self

        class Sock:
            def sendall(self, data: bytes) -> None:
                client.events.append("stdin")
                client.stdin += data

            def shutdown(self, how: int) -> None:
                client.events.append("stdin eof")

            def close(self) -> None:
                client.events.append("stdin closed")

        self.events.append("attach stdin")
        return Sock()

    def images(self, name: str) -> list[str]:
        return [name]  # present: no pull

    def create_host_config(self, **kwargs: Any) -> Any:
        from docker.types import HostConfig

        return HostConfig(version="1.45", **kwargs)

    def create_container(self, **kwargs: Any) -> dict[str, str]:
        from docker.api.container import ContainerApiMixin

        signature = inspect.signature(ContainerApiMixin.create_container).parameters
        assert set(kwargs) <= set(signature), set(kwargs) - set(signature)  # the real API's arguments
        self.created = kwargs
        return {"Id": "c0ffee"}

    def attach(self, **kwargs: Any) -> Any:
        return iter(self.logs)

    def start(self, container_id: str) -> None:
        self.events.append("start")

    def wait(self, container_id: str) -> dict[str, int]:
        return {"StatusCode": self.status}

    def remove_container(self, container_id: str, **kwargs: Any) -> None:
        self.events.append(f"remove {container_id}")
        self.removed.append((container_id, kwargs))


TI = SimpleNamespace(
    dag_id="fraud_detector_docker__train",
    task_id="training.fit",
    run_id="manual__1",
    map_index=-1,
    try_number=2,
)


@pytest.fixture
def fit(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "AKIAEXAMPLE",
                "password": AWS_SECRET,
                "extra": {"endpoint_url": "http://minio:9000", "region_name": "eu-west-1"},
            }
        ),
    )
    dag = build_dags(load_spec(EXAMPLE), spec_path=EXAMPLE)["fraud_detector_docker__train"]
    task = dag.get_task("training.fit")
    task.job = dict(JOB)
    return task


def run(fit: Any, client: RecordingDockerClient) -> Any:
    fit.__dict__["hook"] = SimpleNamespace(api_client=client)  # the cached_property's slot
    return fit.execute({"ti": TI})


def marker_logs() -> list[bytes]:
    return [
        b"2026 INFO epoch 1/15 train_loss=0.3\n",
        b"airflow-mlops-result: " + json.dumps(RESULT).encode() + b"\n",
    ]


def test_the_container_is_hardened_and_gets_the_gpu(fit: Any) -> None:
    client = RecordingDockerClient(marker_logs())
    result = run(fit, client)

    assert result == RESULT  # the marker line, parsed
    created = client.created
    assert created["user"] == "1000:1000"
    assert created["image"] == "ghcr.io/example/airflow-mlops-trainer:0.1.0"
    assert created["entrypoint"] == ["python", "-m", "airflow_mlops.training"]
    assert created["command"][0] == "--job" and json.loads(created["command"][1]) == JOB
    assert created["command"][2:] == ["--print-result", "--credentials-stdin"]
    host = created["host_config"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert not host.get("Privileged", False)
    assert host["Tmpfs"] == {"/tmp": "rw,noexec,nosuid,nodev,size=8g"}
    assert host["PidsLimit"] == 4096
    assert host["Init"] is True  # signals reach the trainer; it is not a bare PID 1
    assert host["NanoCpus"] == 8_000_000_000
    assert host["Memory"] == 32 * 1024**3
    assert host["NetworkMode"] == "airflow-mlops_default"
    (gpu,) = host["DeviceRequests"]
    assert gpu["Count"] == 1 and gpu["Capabilities"] == [["gpu"]]
    assert client.removed == [("c0ffee", {"force": True})]  # removed whatever happened


def test_s3_credentials_reach_the_trainer_on_stdin_only(fit: Any) -> None:
    client = RecordingDockerClient(marker_logs())
    run(fit, client)
    created = client.created
    env = created["environment"]
    # Not in the container's configuration (docker inspect shows it to anyone with the socket).
    assert AWS_SECRET not in json.dumps(created, default=str) and "AKIAEXAMPLE" not in json.dumps(env)
    assert env["AWS_ENDPOINT_URL"] == "http://minio:9000" and env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert created["stdin_open"] is True and created["tty"] is False  # docker-py adds StdinOnce
    assert created["command"][-1] == "--credentials-stdin"
    # Written once, after attaching and starting, then the stream is closed (the trainer sees EOF).
    assert client.events[:5] == ["attach stdin", "start", "stdin", "stdin eof", "stdin closed"]
    assert json.loads(client.stdin) == {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
    }
    assert "AWS_SECRET_ACCESS_KEY" not in fit.environment  # the templated (rendered) environment
    fit.render_template_fields({"ti": None})
    rendered = json.dumps({f: getattr(fit, f) for f in fit.template_fields}, default=str)
    assert AWS_SECRET not in rendered


def test_a_new_try_removes_what_an_earlier_try_left_and_labels_its_own(fit: Any) -> None:
    leftover = {"Id": "deadbeef" * 8, "Labels": {"io.airflow-mlops.try_number": "1"}}
    client = RecordingDockerClient(marker_logs(), leftovers=[leftover])
    run(fit, client)
    (filters,) = client.filters
    # Same dag, task, run and map index; any try.
    assert sorted(filters["label"]) == sorted(
        [
            "io.airflow-mlops.dag_id=fraud_detector_docker__train",
            "io.airflow-mlops.task_id=training.fit",
            "io.airflow-mlops.run_id=manual__1",
            "io.airflow-mlops.map_index=-1",
        ]
    )
    assert client.removed[0] == (leftover["Id"], {"force": True})
    assert client.events.index(f"remove {leftover['Id']}") < client.events.index("start")
    labels = client.created["labels"]
    assert labels["io.airflow-mlops.try_number"] == "2" and labels["io.airflow-mlops.run_id"] == "manual__1"
    assert labels["app.kubernetes.io/name"] == "airflow-mlops-trainer"


def test_a_local_store_mounts_only_the_runs_training_folder(fit: Any, tmp_path: Path) -> None:
    stage = tmp_path / "fraud_detector_docker" / "manual__1" / "train"
    stage.mkdir(parents=True)
    fit.job = {**JOB, "uri": str(stage / "job.json")}
    client = RecordingDockerClient(marker_logs())
    run(fit, client)
    # Never root; the trainer can write the run's folder without it being open to others.
    if os.getuid() == 0:
        assert client.created["user"] == "1000:1000" and stage.stat().st_uid == 1000
    else:
        assert client.created["user"] == f"{os.getuid()}:{os.getgid()}"
    assert stage.stat().st_mode & 0o002 == 0
    mounts = client.created["host_config"]["Mounts"]
    assert [(m["Source"], m["Target"], m["Type"]) for m in mounts] == [(str(stage), str(stage), "bind")]
    assert "AWS_SECRET_ACCESS_KEY" not in client.created["environment"]  # no S3: no credentials
    assert "stdin_open" not in client.created and "--credentials-stdin" not in client.created["command"]


def test_a_failed_or_silent_container_fails_the_task(fit: Any) -> None:
    from airflow.providers.docker.exceptions import DockerContainerFailedException

    with pytest.raises(DockerContainerFailedException):
        run(fit, RecordingDockerClient([b"trainer: error: DataError: empty\n"], status=2))
    with pytest.raises(Exception, match="no trainer result"):
        run(fit, RecordingDockerClient([b"just a log line\n"]))


def test_quantities() -> None:
    from airflow_mlops.operators.training_docker import cpu_count, memory_bytes

    assert cpu_count("500m") == 0.5 and cpu_count("4") == 4.0
    assert memory_bytes("16Gi") == 16 * 1024**3 and memory_bytes("512Mi") == 512 * 1024**2
    assert memory_bytes("8g") == 8 * 1024**3
    with pytest.raises(ValueError, match="not a memory size"):
        memory_bytes("lots")


def test_a_killed_task_removes_its_container_at_once(fit: Any) -> None:
    client = RecordingDockerClient(marker_logs())
    fit.__dict__["hook"] = SimpleNamespace(api_client=client, client_created=True)
    fit.on_kill()  # nothing started: nothing to do
    assert client.removed == []
    fit.container = {"Id": "c0ffee"}
    fit.on_kill()
    assert client.removed == [("c0ffee", {"force": True})]  # no `stop` and its grace period first
