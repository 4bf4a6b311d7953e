"""The ``docker`` backend: the trainer job in a hardened container.

Importing this module imports the Docker provider: the factory imports it only for a spec with
``training.backend: docker``.

The container: user 1000:1000, read-only root filesystem with a ``/tmp`` tmpfs scratch, every
capability dropped, ``no-new-privileges``, a pid limit, GPUs as ``device_requests``, removed when
it ends. The S3 credentials come from the Airflow AWS connection (or the worker's AWS variables)
and go into the container's *private* environment: not a template field, never rendered or
logged. A local artifact root is bind-mounted at the same path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow.providers.docker.operators.docker import DockerOperator

from airflow_mlops.artifacts import ArtifactRef
from airflow_mlops.operators.training import (
    TRAINER_MODULE,
    parse_fit_result,
    s3_environment,
    trainer_arguments,
)

SCRATCH_DIR = "/tmp"
TRAINER_USER = "1000:1000"
PIDS_LIMIT = 4096
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def cpu_count(value: str) -> float:
    """A Kubernetes-style cpu quantity (``"4"``, ``"500m"``) as a number of cores."""
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


def memory_bytes(value: str) -> int:
    """``"16Gi"``, ``"512Mi"``, ``"2G"`` or ``"8g"`` as bytes (binary units)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgGtT]?)i?", value.strip())
    if not match:
        raise ValueError(f"not a memory size: {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


class _HardenedClient:
    """The Docker API client, with the hardening added to every host config it creates."""

    def __init__(self, client: Any, hardening: Mapping[str, Any]) -> None:
        self._client = client
        self._hardening = dict(hardening)

    def create_host_config(self, **kwargs: Any) -> Any:
        return self._client.create_host_config(**{**kwargs, **self._hardening})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class ModelFitDockerOperator(DockerOperator):
    """Run the trainer job (``python -m airflow_mlops.training``) in a hardened Docker container.

    :param job: ref of ``job.json`` from ``TrainingPrepareOperator`` (templated).
    :param image: the trainer image (``images/trainer``).
    :param gpus: GPUs requested from the NVIDIA container runtime (``device_requests``).
    :param cpu: cores (``"4"``, ``"500m"``) as a hard limit; ``memory`` (``"16Gi"``) likewise.
    :param aws_conn_id: Airflow AWS connection whose credentials the container gets (privately).
        With a local artifact store, the run's training directory (the job's folder: inputs and
        output) is bind-mounted at the same path instead, and nothing else of the host.
    :param scratch_size: size of the ``/tmp`` tmpfs (``"20g"``).

    Other keyword arguments go to ``DockerOperator``. Returns the trainer result.
    """

    template_fields = (*DockerOperator.template_fields, "job")

    def __init__(
        self,
        *,
        job: Any,
        image: str,
        gpus: int = 0,
        cpu: str | None = None,
        memory: str | None = None,
        aws_conn_id: str | None = None,
        scratch_size: str = "20g",
        environment: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        from docker.types import DeviceRequest

        super().__init__(
            image=image,
            entrypoint=["python", "-m", TRAINER_MODULE],
            command=None,  # set from the rendered job at execute
            user=TRAINER_USER,
            environment={
                **dict(environment or {}),
                "TMPDIR": SCRATCH_DIR,
                "HOME": SCRATCH_DIR,
                "PYTHONUNBUFFERED": "1",
            },
            mount_tmp_dir=False,
            auto_remove="force",  # the container (and its environment) never outlives the task
            privileged=False,
            device_requests=[DeviceRequest(count=gpus, capabilities=[["gpu"]])] if gpus else None,
            mem_limit=memory_bytes(memory) if memory else None,
            do_xcom_push=True,
            xcom_all=False,
            labels={"app.kubernetes.io/name": "airflow-mlops-trainer"},
            **kwargs,
        )
        self.job = job
        self.gpus = gpus
        self.cpu = cpu
        self.aws_conn_id = aws_conn_id
        self.scratch_size = scratch_size

    @property
    def hardening(self) -> dict[str, Any]:
        """Host-config settings DockerOperator does not expose, added to the container it creates."""
        settings: dict[str, Any] = {
            "read_only": True,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "tmpfs": {SCRATCH_DIR: f"rw,noexec,nosuid,nodev,size={self.scratch_size}"},
            "pids_limit": PIDS_LIMIT,
        }
        if self.cpu:
            settings["nano_cpus"] = int(cpu_count(self.cpu) * 1e9)
        return settings

    @property
    def cli(self) -> Any:
        return _HardenedClient(self.hook.api_client, self.hardening)

    def execute(self, context: Any) -> Any:
        from docker.types import Mount

        job = ArtifactRef.from_dict(self.job)
        self.command = trainer_arguments(job, print_result=True)
        if not job.uri.startswith("s3://"):
            stage_dir = str(
                Path(job.uri[len("file://") :] if job.uri.startswith("file://") else job.uri).parent
            )
            self.mounts = [*self.mounts, Mount(target=stage_dir, source=stage_dir, type="bind")]
        # Private: not a template field, not rendered, not logged; gone with the container.
        self._private_environment = {
            **self._private_environment,
            **(s3_environment(self.aws_conn_id) if job.uri.startswith("s3://") else {}),
        }
        return parse_fit_result(super().execute(context), where=f"the container of task {self.task_id}")
