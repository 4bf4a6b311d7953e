"""The training stage of the lifecycle DAG: prepare -> fit -> package, fit by backend.

Imports only light modules: the Kubernetes and Docker providers are imported inside
:func:`build_fit_task`, and only for a spec whose ``training.backend`` needs them, so parsing a
folder of ``local`` specs never loads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import TrainingRejectedError
from airflow_mlops.operators.training import (
    ModelFitOperator,
    ModelPackageOperator,
    TrainingPrepareOperator,
)

if TYPE_CHECKING:
    from airflow_mlops.spec.models import PipelineSpec

# Task ids inside the "training" TaskGroup; the package task is the stage's output.
PREPARE_TASK, FIT_TASK, PACKAGE_TASK = "prepare", "fit", "package"


def build_training(
    spec: PipelineSpec,
    *,
    data: Any,
    settings: dict[str, Any],
    datasets: dict[str, Any] | None = None,
    base: Path | None = None,
) -> Any:
    """Create the three training tasks (inside the caller's TaskGroup); returns the package task.

    :param data: the accepted rows (an XComArg of the screen task).
    :param datasets: ``{role: XComArg}`` of the tables logged as MLflow dataset inputs of the
        training run (see :class:`ModelPackageOperator`).
    :param settings: operator arguments of the ``train`` stage (pipeline, artifact root, AWS
        connection, task settings); every task of the stage gets them.
    """
    training = spec.training
    prepare = TrainingPrepareOperator(
        task_id=PREPARE_TASK,
        data=data,
        target=spec.data.target,
        features=spec.data.features,
        positive_label=spec.data.positive_label,
        task=spec.task_hint,
        model=training.model,
        hyperparameters=training.hyperparameters(),
        options=dict(training.options),
        early_stopping_patience=training.early_stopping_patience,
        privacy=training.privacy.model_dump() if training.privacy else None,
        holdout_fraction=training.holdout_fraction,
        seed=training.seed,
        device=training.device,
        precision=training.precision,
        threshold=spec.evaluation.threshold.as_config(),
        validation_fraction=training.validation_fraction,
        watermark=(
            training.watermark.model_dump() if training.watermark and training.watermark.enabled else None
        ),
        **settings,
    )
    prepared: Any = prepare.output  # each key of the returned dict is also its own XCom
    fit = build_fit_task(spec, job=prepared["job"], settings=settings, base=base)
    registry = spec.registry
    package = ModelPackageOperator(
        task_id=PACKAGE_TASK,
        fit_result=fit.output,
        prepared=prepared,
        target=spec.data.target,
        model=training.model,
        hyperparameters=training.hyperparameters(),
        holdout_fraction=training.holdout_fraction,
        seed=training.seed,
        backend=training.backend,
        experiment=registry.experiment or spec.pipeline,
        mlflow_conn_id=registry.connection,
        datasets=datasets,
        **settings,
    )
    return package


def build_fit_task(
    spec: PipelineSpec, *, job: Any, settings: dict[str, Any], base: Path | None = None
) -> Any:
    """The fit task for ``spec.training.backend``: a subprocess, a pod or a container."""
    training = spec.training
    if training.backend == "local":
        python_path = [
            str((base / p).resolve()) if base and not Path(p).is_absolute() else p
            for p in training.python_path
        ]
        return ModelFitOperator(task_id=FIT_TASK, job=job, python_path=python_path, **settings)
    if training.backend == "federated":
        return build_federated_fit(spec, job=job, settings=settings)
    # The container backends take the task settings, not the lifecycle operators' store settings.
    task_args = {
        k: v
        for k, v in settings.items()
        if k not in ("pipeline", "artifact_root", "aws_conn_id", "allowed_roots")
    }
    root = settings.get("artifact_root")
    resources = training.resources
    assert training.image is not None  # the spec model requires it for these backends
    if training.backend == "kubernetes":
        if root and "{{" not in root and not root.startswith("s3://"):
            raise TrainingRejectedError(
                f"spec {spec.pipeline}: training.backend kubernetes needs an s3:// artifacts.root (the pod "
                f"cannot read the worker's directory {root!r})"
            )
        from airflow_mlops.operators.training_kubernetes import ModelFitPodOperator

        k8s = training.kubernetes or _default(spec, "kubernetes")
        return ModelFitPodOperator(
            task_id=FIT_TASK,
            job=job,
            image=training.image,
            pipeline=spec.pipeline,
            gpus=resources.gpus,
            cpu=resources.cpu,
            memory=resources.memory,
            node_selector=k8s.node_selector,
            tolerations=[t.model_dump(exclude_none=True) for t in k8s.tolerations]
            if k8s.tolerations is not None
            else None,
            secrets=[s.model_dump() for s in k8s.secrets],
            env=k8s.env,
            namespace=k8s.namespace,
            service_account=k8s.service_account,
            image_pull_secrets=k8s.image_pull_secrets,
            image_pull_policy=k8s.image_pull_policy,
            scratch_size=k8s.scratch_size,
            labels=k8s.labels,
            priority_class_name=k8s.priority_class,
            startup_timeout_seconds=int(k8s.startup_timeout.total_seconds()),
            deferrable=k8s.deferrable,
            kubernetes_conn_id=k8s.connection,
            **task_args,
        )
    from airflow_mlops.operators.training_docker import ModelFitDockerOperator

    docker = training.docker or _default(spec, "docker")
    return ModelFitDockerOperator(
        task_id=FIT_TASK,
        job=job,
        image=training.image,
        gpus=resources.gpus,
        cpu=resources.cpu,
        memory=resources.memory,
        aws_conn_id=settings.get("aws_conn_id"),
        scratch_size=docker.scratch_size,
        docker_url=docker.url,
        docker_conn_id=docker.connection,
        network_mode=docker.network_mode,
        **task_args,
    )


def build_federated_fit(spec: PipelineSpec, *, job: Any, settings: dict[str, Any]) -> Any:
    """The ``federated`` fit task: the job run by the Flower federation of ``training.federated``."""
    from airflow_mlops.operators.training_federated import ModelFitFederatedOperator

    fed = spec.training.federated_settings
    values = fed.model_dump(exclude={"connection"})
    for name in ("connect_timeout", "round_timeout", "timeout", "poll_interval"):
        values[name] = getattr(fed, name).total_seconds()
    return ModelFitFederatedOperator(
        task_id=FIT_TASK, job=job, federated=values, flower_conn_id=fed.connection, **settings
    )


def _default(spec: PipelineSpec, backend: str) -> Any:
    from airflow_mlops.spec.models import DockerTraining, KubernetesTraining

    return KubernetesTraining() if backend == "kubernetes" else DockerTraining()
