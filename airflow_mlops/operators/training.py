"""The training stage: prepare -> fit -> package, with a swappable fit step.

- :class:`TrainingPrepareOperator` splits the accepted rows into train/holdout, stores both and
  writes the trainer's ``job.json`` (inputs by :class:`~airflow_mlops.artifacts.ArtifactRef`,
  config, output key);
- the fit step runs ``python -m airflow_mlops.training --job <ref>`` (see
  :mod:`airflow_mlops.training.job`) and returns its result ref: ``ModelFitOperator`` (a
  subprocess of the worker, in :mod:`airflow_mlops.operators.training_local`), ``ModelFitPodOperator`` (Kubernetes, in
  :mod:`airflow_mlops.operators.training_kubernetes`) or ``ModelFitDockerOperator`` (in
  :mod:`airflow_mlops.operators.training_docker`);
- ``ModelPackageOperator`` (in :mod:`airflow_mlops.operators.training_package`) checks the weights are the ones this run's job asked for,
  packages them as an MLflow pyfunc model, stores it and logs the MLflow run.

The split and the trainer config are :mod:`airflow_mlops.training.prepare`'s; the trainer's
environment is :mod:`airflow_mlops.operators.trainer_env`'s. All these names stay importable from
here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.operators.trainer_env import (
    local_trainer_environment,
    s3_environment,
    trainer_python_path,
)
from airflow_mlops.operators.training_local import ModelFitOperator
from airflow_mlops.operators.training_package import ModelPackageOperator
from airflow_mlops.training.fit_result import (
    JOB_NAME,
    TRAINER_MODULE,
    WEIGHTS_NAME,
    parse_fit_result,
    store_root_uri,
    trainer_arguments,
)

__all__ = [  # the fit interface and the trainer environment stay importable from here
    "JOB_NAME",
    "TRAINER_MODULE",
    "WEIGHTS_NAME",
    "ModelFitOperator",
    "ModelPackageOperator",
    "TrainingPrepareOperator",
    "local_trainer_environment",
    "parse_fit_result",
    "s3_environment",
    "store_root_uri",
    "trainer_arguments",
    "trainer_python_path",
]


class TrainingPrepareOperator(MLOpsBaseOperator):
    """Split the accepted rows into train/holdout and write the trainer's job.

    :param data: ``ArtifactRef`` of the accepted rows (templated).
    :param target: label column; ``positive_label`` is its positive class.
    :param features: feature columns (default: every column but the target).
    :param model: ``mlp``, ``cnn`` or your own ``package.module:fit``.
    :param hyperparameters: the trainer's ``training.params`` (not called ``params``: that name is
        Airflow's own task params).
    :param options: settings for your own fit entrypoint.
    :param privacy: ``training.privacy`` (DP-SGD budget), or None.
    :param holdout_fraction: share of rows held out, stratified by label, for the gates.
    :param seed: seeds the split and the trainer; ``device`` is ``auto``, ``cpu`` or ``cuda``;
        ``precision`` ``auto``, ``fp32`` or ``bf16``.
    :param validation_fraction: share of the training rows the built-in trainer validates on
        (default: the trainer's, 0.1).
    :param watermark: ``training.watermark`` (``trigger_rows``, ``alpha``, ``p0``,
        ``key_connection``, ``identity``), or None: the trigger rows are derived here, where the
        key is (its connection), and handed to the trainer as an artifact; the key never leaves.
    :param threshold: the rule that chooses the operating threshold on the trainer's validation
        rows (``{"rule": "best_f1"}``, ``{"rule": "min_precision", "value": 0.8}``, ...; a number
        is a fixed threshold); default ``best_f1``. See :mod:`airflow_mlops.training.threshold`.

    Returns ``job`` (the ref ``--job`` takes), ``holdout`` and ``train`` refs, ``features``,
    ``train_rows``, ``holdout_rows``, ``data_sha256`` and ``watermark_commitment`` (or None).
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "data")
    stage = "train"
    ui_color = "#fde2e4"

    def __init__(
        self,
        *,
        data: Any,
        target: str,
        features: Sequence[str] | None = None,
        positive_label: Any = 1,
        task: str | None = None,
        model: str = "mlp",
        hyperparameters: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        early_stopping_patience: int | None = None,
        privacy: dict[str, Any] | None = None,
        holdout_fraction: float = 0.2,
        seed: int = 42,
        device: str = "auto",
        precision: str = "auto",
        threshold: Mapping[str, Any] | float | None = None,
        validation_fraction: float | None = None,
        watermark: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_mlops.training.threshold import DEFAULT_RULE, check_rule

        super().__init__(**kwargs)
        # Checked here, so a bad rule fails the DAG at parse time rather than in the trainer.
        self.threshold = check_rule(
            DEFAULT_RULE if threshold is None else threshold, where=f"task {kwargs.get('task_id')}: threshold"
        )
        self.validation_fraction = validation_fraction
        self.data = data
        self.target = target
        self.features = list(features) if features else None
        self.positive_label = positive_label
        self.task = task
        self.model = model
        self.early_stopping_patience = early_stopping_patience
        self.hyperparameters = dict(hyperparameters or {})
        self.options = dict(options or {})
        self.privacy = dict(privacy) if privacy else None
        self.holdout_fraction = holdout_fraction
        self.seed = seed
        self.device = device
        self.precision = precision
        self.watermark = dict(watermark) if watermark else None

    def trainer_config(self, features: list[str], task: str | None = None) -> dict[str, Any]:
        """The trainer config of the job (:func:`airflow_mlops.training.prepare.trainer_config`)."""
        from airflow_mlops.training.prepare import trainer_config

        return trainer_config(
            model=self.model,
            target=self.target,
            features=features,
            positive_label=self.positive_label,
            task=task if task is not None else self.task,
            hyperparameters=self.hyperparameters,
            seed=self.seed,
            device=self.device,
            threshold=self.threshold,
            validation_fraction=self.validation_fraction,
            early_stopping_patience=self.early_stopping_patience,
            precision=self.precision,
            privacy=self.privacy,
        )

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.data.io import read_table
        from airflow_mlops.tasks import describe
        from airflow_mlops.training.job import TrainingJob, write_job
        from airflow_mlops.training.prepare import split_for_training

        store = self.artifact_store()
        with self.scratch() as tmp:
            split = split_for_training(
                read_table(self.fetch(self.data, tmp / "in")),
                target=self.target,
                features=self.features,
                task=self.task,
                holdout_fraction=self.holdout_fraction,
                seed=self.seed,
            )
            self.log.info(
                "task: %s%s",
                describe(split.task, positive_label=self.positive_label),
                " (inferred from the target column; set `task:` in the spec to fix it)"
                if split.inferred
                else "",
            )
            refs = {name: self._put_table(store, context, tmp, name, frame) for name, frame in split.frames()}
            record, triggers = self._watermark(store, context, tmp, split)
        job = TrainingJob(
            store_root=store_root_uri(store), train=refs["train"], model=self.model,
            config={**self.trainer_config(split.features, split.task), **({"watermark": record} if record else {})},
            options=self.options,
            output_key=self.artifact_key(context, WEIGHTS_NAME), triggers=triggers,
        )  # fmt: skip
        job_ref = write_job(store, self.artifact_key(context, JOB_NAME), job, producer=self.task_id)
        rows = (len(split.train), len(split.holdout))
        self.log.info(
            "training job %s: %d training rows, %d holdout rows, model %s", job_ref.uri, *rows, self.model
        )
        data_sha = self.data["sha256"] if isinstance(self.data, dict) else getattr(self.data, "sha256", "")
        return {
            "job": job_ref.to_dict(),
            "train": refs["train"].to_dict(),
            "holdout": refs["holdout"].to_dict(),
            "features": split.features,
            "task": split.task,
            "train_rows": rows[0],
            "holdout_rows": rows[1],
            "data_sha256": data_sha,
            "watermark_commitment": record["commitment"] if record else None,
        }

    def _watermark(self, store: Any, context: Any, tmp: Any, split: Any) -> tuple[Any, Any]:
        """``(record, trigger table ref)`` of ``training.watermark``, or ``(None, None)``."""
        if not self.watermark:
            return None, None
        from airflow_mlops.hooks.signing import read_watermark_key
        from airflow_mlops.security.watermark import prepare_watermark

        wm = self.watermark
        record, triggers = prepare_watermark(
            read_watermark_key(wm.get("key_connection")), wm.get("identity") or self.pipeline, split.train,
            target=self.target, task=split.task, features=split.features, positive_label=self.positive_label,
            trigger_rows=wm.get("trigger_rows", 100), alpha=wm.get("alpha", 1e-6), p0=wm.get("p0"),
        )  # fmt: skip
        self.log.info("watermark: %d trigger rows, key %s", record.trigger_rows, record.commitment)
        return record.to_dict(), self._put_table(store, context, tmp, "watermark_triggers", triggers)

    def _put_table(self, store: Any, context: Any, tmp: Any, name: str, frame: Any) -> Any:
        """Store ``frame`` as this run's ``<name>.parquet``; its ref."""
        from airflow_mlops.data.io import write_table

        write_table(frame, tmp / f"{name}.parquet")
        key = self.artifact_key(context, f"{name}.parquet")
        return store.put_file(tmp / f"{name}.parquet", key, producer=self.task_id, rows=len(frame))
