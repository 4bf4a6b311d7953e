"""The ``docker`` backend: the trainer job in a hardened container.

Importing this module imports the Docker provider: the factory imports it only for a spec with
``training.backend: docker``.

The container: user 1000:1000, read-only root filesystem with a ``/tmp`` tmpfs scratch, every
capability dropped, ``no-new-privileges``, a pid limit, GPUs as ``device_requests``, removed when
it ends (and when the task is killed); a new try first removes what an earlier try of the same
task left (a worker that died mid-run), so two never run at once.

The S3 credentials come from the Airflow AWS connection (or the worker's AWS variables) and reach
the trainer on its standard input, once, as JSON (``--credentials-stdin``): never the container's
environment (which ``docker inspect`` shows to anyone with the Docker socket), a template field,
the task log or XCom. The endpoint and region are plain settings. A local artifact root is
bind-mounted at the same path.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow.providers.docker.operators.docker import DockerOperator

from airflow_mlops.artifacts import ArtifactRef
from airflow_mlops.operators.trainer_env import s3_environment
from airflow_mlops.training.container import (
    TRAINER_USER,
    cpu_count,
    local_store_user,
    memory_bytes,
    split_secrets,
)
from airflow_mlops.training.fit_result import TRAINER_MODULE, parse_fit_result, trainer_arguments

__all__ = ["ModelFitDockerOperator", "cpu_count", "local_store_user", "memory_bytes", "split_secrets"]

# Labels naming the task a container belongs to (a new try removes its predecessors' leftovers).
LABEL_PREFIX = "io.airflow-mlops."
SCRATCH_DIR = "/tmp"
PIDS_LIMIT = 4096


class _HardenedClient:
    """The Docker API client, with the hardening added to every host config it creates and, when
    there are secrets, the container's stdin opened once to hand them over at start."""

    def __init__(self, client: Any, hardening: Mapping[str, Any], stdin: bytes | None = None) -> None:
        self._client = client
        self._hardening = dict(hardening)
        self._stdin = stdin

    def create_host_config(self, **kwargs: Any) -> Any:
        return self._client.create_host_config(**{**kwargs, **self._hardening})

    def create_container(self, **kwargs: Any) -> Any:
        if self._stdin is not None:
            kwargs.update(stdin_open=True, tty=False)  # docker-py sets StdinOnce with it
        return self._client.create_container(**kwargs)

    def start(self, container: Any, *args: Any, **kwargs: Any) -> Any:
        if self._stdin is None:
            return self._client.start(container, *args, **kwargs)
        # Attached before the start so nothing is lost; closing the socket closes the container's
        # stdin (stdin_once): the trainer reads one JSON document and sees the end of input.
        sock = self._client.attach_socket(container, params={"stdin": 1, "stream": 1})
        try:
            started = self._client.start(container, *args, **kwargs)
            raw = getattr(sock, "_sock", sock)
            raw.sendall(self._stdin)
            raw.shutdown(socket.SHUT_WR)  # end of input, as `docker run -i` does
        finally:
            sock.close()
        return started

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
        self._secrets: dict[str, str] = {}

    @property
    def hardening(self) -> dict[str, Any]:
        """Host-config settings DockerOperator does not expose, added to the container it creates."""
        settings: dict[str, Any] = {
            "read_only": True,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "tmpfs": {SCRATCH_DIR: f"rw,noexec,nosuid,nodev,size={self.scratch_size}"},
            "pids_limit": PIDS_LIMIT,
            # An init as PID 1 (docker's tini): the trainer gets SIGTERM's default action and its
            # zombies are reaped; a bare Python PID 1 ignores SIGTERM until docker kills it.
            "init": True,
        }
        if self.cpu:
            settings["nano_cpus"] = int(cpu_count(self.cpu) * 1e9)
        return settings

    @property
    def cli(self) -> Any:
        payload = json.dumps(self._secrets).encode() + b"\n" if self._secrets else None
        return _HardenedClient(self.hook.api_client, self.hardening, stdin=payload)

    def task_labels(self, context: Any) -> dict[str, str]:
        """The labels that name this task instance's container (dag, task, run, map index, try)."""
        ti = context["ti"]
        return {
            f"{LABEL_PREFIX}dag_id": str(ti.dag_id),
            f"{LABEL_PREFIX}task_id": str(ti.task_id),
            f"{LABEL_PREFIX}run_id": str(ti.run_id),
            f"{LABEL_PREFIX}map_index": str(getattr(ti, "map_index", -1)),
            f"{LABEL_PREFIX}try_number": str(getattr(ti, "try_number", 0)),
        }

    def remove_earlier_tries(self, labels: Mapping[str, str]) -> list[str]:
        """Remove the containers an earlier try of this task instance left (same dag, task, run and
        map index): a worker that died mid-run leaves its container running; a new try must not
        train beside it. Returns the removed ids."""
        same_task = [f"{k}={v}" for k, v in labels.items() if not k.endswith("try_number")]
        removed = []
        for container in self.hook.api_client.containers(all=True, filters={"label": same_task}):
            self.log.warning(
                "Removing container %s of an earlier try (%s)",
                container["Id"][:12],
                container.get("Labels", {}).get(f"{LABEL_PREFIX}try_number", "?"),
            )
            self.hook.api_client.remove_container(container["Id"], force=True)
            removed.append(container["Id"])
        return removed

    def on_kill(self) -> None:
        """Remove the container at once (``force``: killed and removed in one call). Airflow gives
        a killed task seconds before SIGKILL; ``docker stop``'s grace period could outlast them
        and leave the container behind. A killed training's output is of no use."""
        if self.container is None or not self.hook.client_created:
            return
        from docker.errors import APIError, NotFound

        self.log.info("Removing container %s of the killed task", self.container["Id"][:12])
        try:
            self.hook.api_client.remove_container(self.container["Id"], force=True)
        except NotFound:
            pass
        except APIError as exc:
            self.log.warning("Could not remove container %s: %s", self.container["Id"][:12], exc)

    def execute(self, context: Any) -> Any:
        from docker.types import Mount

        job = ArtifactRef.from_dict(self.job)
        self.command = trainer_arguments(job, print_result=True)
        if not job.uri.startswith("s3://"):
            job_path = Path(job.uri.removeprefix("file://"))
            stage_dir = str(job_path.parent)
            self.mounts = [*self.mounts, Mount(target=stage_dir, source=stage_dir, type="bind")]
            self.user = local_store_user(job_path)
        labels = self.task_labels(context)
        own = self.labels or {}
        # DockerOperator takes a list of names too (empty values).
        self.labels = {**(dict.fromkeys(own, "") if isinstance(own, list) else dict(own)), **labels}
        self.remove_earlier_tries(labels)
        settings, self._secrets = split_secrets(
            s3_environment(self.aws_conn_id) if job.uri.startswith("s3://") else {}
        )
        if self._secrets:
            self.command = [*self.command, "--credentials-stdin"]
        # Private: not a template field, not rendered, not logged; gone with the container.
        self._private_environment = {**self._private_environment, **settings}
        return parse_fit_result(super().execute(context), where=f"the container of task {self.task_id}")
