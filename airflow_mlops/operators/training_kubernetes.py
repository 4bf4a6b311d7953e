"""The ``kubernetes`` backend: the trainer job in a hardened (GPU) pod.

Importing this module imports the cncf-kubernetes provider (over a second): the factory imports
it only for a spec with ``training.backend: kubernetes``.

The pod: non-root (uid/gid 1000), read-only root filesystem with an ``emptyDir`` scratch at
``/tmp``, every capability dropped, no privilege escalation, seccomp ``RuntimeDefault``, no
service-account token, ``nvidia.com/gpu`` limits and GPU tolerations, requests equal to limits.
Credentials are references to Kubernetes secrets (``secretKeyRef``): no value ever appears in
the pod spec, the rendered templates or the task log. Pods carry the dag/task/run labels, so a
retried or restarted task reattaches to its pod instead of starting a second one; the pod is
deleted when it finishes and when the task is killed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from airflow_mlops.artifacts import ArtifactRef
from airflow_mlops.exceptions import TrainingRejectedError
from airflow_mlops.redaction import plain_env_problem
from airflow_mlops.training.fit_result import TRAINER_MODULE, trainer_arguments

XCOM_RESULT = "/airflow/xcom/return.json"
SCRATCH_DIR = "/tmp"
TRAINER_UID = 1000
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TOLERATION: dict[str, Any] = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def check_plain_env(env: Mapping[str, Any]) -> None:
    """Refuse credentials among plain pod variables (by name or by value): they would be written
    into the pod spec (the same rule the spec applies to ``training.kubernetes.env``).

    :raises TrainingRejectedError: naming the variables (never their values) and the fix.
    """
    problem = plain_env_problem(env)
    if problem:
        raise TrainingRejectedError(
            f"{problem}; pass them as Kubernetes secret references (training.kubernetes.secrets) "
            "or read them in the pod from an Airflow connection"
        )


def _k8s() -> Any:
    from kubernetes.client import models

    return models


def hardened_container_security_context() -> Any:
    k8s = _k8s()
    return k8s.V1SecurityContext(
        run_as_non_root=True,
        run_as_user=TRAINER_UID,
        run_as_group=TRAINER_UID,
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        privileged=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def hardened_pod_security_context() -> Any:
    k8s = _k8s()
    return k8s.V1PodSecurityContext(
        run_as_non_root=True,
        run_as_user=TRAINER_UID,
        run_as_group=TRAINER_UID,
        fs_group=TRAINER_UID,
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def container_resources(gpus: int, cpu: str | None, memory: str | None) -> Any:
    """Requests equal to limits (cpu, memory), and the GPU limit (GPUs cannot be overcommitted)."""
    amounts: dict[str, str] = {}
    if cpu:
        amounts["cpu"] = cpu
    if memory:
        amounts["memory"] = memory
    if gpus:
        amounts[GPU_RESOURCE] = str(gpus)
    if not amounts:
        return None
    return _k8s().V1ResourceRequirements(requests=dict(amounts), limits=dict(amounts))


class ModelFitPodOperator(KubernetesPodOperator):
    """Run the trainer job (``python -m airflow_mlops.training``) in a hardened Kubernetes pod.

    :param job: ref of ``job.json`` from ``TrainingPrepareOperator`` (templated). Its artifact
        store must be ``s3://``: the pod cannot read a directory of the worker.
    :param image: the trainer image (``images/trainer``).
    :param gpus: ``nvidia.com/gpu`` limit; with GPUs and no ``tolerations`` the NVIDIA GPU taint
        is tolerated.
    :param cpu: cpu request and limit (``"4"``); ``memory`` likewise (``"16Gi"``).
    :param secrets: ``{"env", "secret", "key"}`` mappings: environment variables filled from
        Kubernetes secrets by reference (e.g. ``AWS_ACCESS_KEY_ID``).
    :param env: plain (non-secret) variables, e.g. ``AWS_ENDPOINT_URL``; a name that looks like
        a credential is refused (pass it under ``secrets``).
    :param scratch_size: size limit of the ``/tmp`` emptyDir.
    :param pipeline: the pipeline name, for the pod name and a label.

    Other keyword arguments go to ``KubernetesPodOperator``. Returns the trainer result.
    """

    template_fields = (*KubernetesPodOperator.template_fields, "job")

    def __init__(
        self,
        *,
        job: Any,
        image: str,
        pipeline: str = "model",
        gpus: int = 0,
        cpu: str | None = None,
        memory: str | None = None,
        node_selector: Mapping[str, str] | None = None,
        tolerations: Sequence[Mapping[str, Any]] | None = None,
        secrets: Sequence[Mapping[str, str]] = (),
        env: Mapping[str, str] | None = None,
        namespace: str = "default",
        service_account: str | None = None,
        image_pull_secrets: Sequence[str] = (),
        scratch_size: str = "20Gi",
        labels: Mapping[str, str] | None = None,
        startup_timeout_seconds: int = 600,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        from airflow.providers.cncf.kubernetes.secret import Secret

        k8s = _k8s()
        plain_env = dict(env or {})
        check_plain_env(plain_env)
        plain_env.update({"TMPDIR": SCRATCH_DIR, "HOME": SCRATCH_DIR, "PYTHONUNBUFFERED": "1"})
        if tolerations is None:
            tolerations = [GPU_TOLERATION] if gpus else []
        safe_pipeline = re.sub(r"[^a-z0-9-]+", "-", pipeline.lower()).strip("-") or "model"
        super().__init__(
            image=image,
            name=f"mlops-{safe_pipeline}-fit",
            namespace=namespace,
            cmds=["python", "-m", TRAINER_MODULE],
            arguments=None,  # set from the rendered job when the pod is built
            env_vars=[k8s.V1EnvVar(name=k, value=v) for k, v in plain_env.items()],
            secrets=[Secret("env", s["env"], s["secret"], s["key"]) for s in secrets],
            container_resources=container_resources(gpus, cpu, memory),
            node_selector=dict(node_selector or {}),
            tolerations=[k8s.V1Toleration(**dict(t)) for t in tolerations],
            security_context=hardened_pod_security_context(),
            container_security_context=hardened_container_security_context(),
            xcom_sidecar_container_security_context=hardened_container_security_context(),
            automount_service_account_token=False,
            service_account_name=service_account,
            image_pull_secrets=[k8s.V1LocalObjectReference(name=n) for n in image_pull_secrets],
            volumes=[
                k8s.V1Volume(name="scratch", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=scratch_size))
            ],
            volume_mounts=[k8s.V1VolumeMount(name="scratch", mount_path=SCRATCH_DIR)],
            labels={
                "app.kubernetes.io/name": "airflow-mlops-trainer",
                "app.kubernetes.io/part-of": "airflow-mlops",
                "mlops/pipeline": safe_pipeline,
                **dict(labels or {}),
            },
            do_xcom_push=True,
            durable=True,  # reattach to the pod of an earlier try (the reattach_on_restart of Airflow < 3.3)
            on_finish_action="delete_pod",
            on_kill_action="delete_pod",
            get_logs=True,
            log_events_on_failure=True,
            startup_timeout_seconds=startup_timeout_seconds,
            deferrable=deferrable,
            **kwargs,
        )
        self.job = job
        self.gpus = gpus

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> Any:
        job = ArtifactRef.from_dict(self.job)
        if not job.uri.startswith("s3://"):
            raise TrainingRejectedError(
                f"the training job {job.uri} is in a local artifact store, which a Kubernetes pod cannot "
                "read; set artifacts.root to an s3:// location for backend: kubernetes"
            )
        self.arguments = trainer_arguments(job, result=XCOM_RESULT)
        # env values are templated: check what was rendered too, before it enters the pod spec
        rendered: list[Any] = list(self.env_vars or [])
        check_plain_env({str(v.name): v.value for v in rendered if getattr(v, "value", None) is not None})
        return super().build_pod_request_obj(context, dry_run=dry_run)

    def extract_xcom(self, pod: Any, **kwargs: Any) -> Any:
        """The trainer's result file, checked (both the sync and the deferrable path read it here)."""
        from airflow_mlops.operators.training import parse_fit_result

        result = super().extract_xcom(pod, **kwargs)
        if result is None:
            return None
        return parse_fit_result(result, where=f"the pod of task {self.task_id}")
