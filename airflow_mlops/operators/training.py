"""Operator that trains a model with the trainer entrypoint and logs the run to MLflow."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow_mlops.exceptions import TrainingError
from airflow_mlops.hooks.mlflow import MLflowHook
from airflow_mlops.operators.base import MLOpsBaseOperator

# What a served model needs (MLflow writes these into the model's requirements.txt).
SERVING_REQUIREMENTS = ["torch", "safetensors", "numpy", "pandas"]


class ModelTrainOperator(MLOpsBaseOperator):
    """Split accepted data into train/holdout, run the trainer, package the model for MLflow.

    The trainer (``python -m airflow_mlops.training.trainer``) is the same entrypoint the
    Kubernetes pod runs; with the ``local`` backend it runs in a subprocess of the worker, so a
    crash in it cannot take the worker down. The MLflow run is found again by its
    ``mlops.airflow_run`` tag on retries.

    :param data: ``ArtifactRef`` of the accepted rows (templated).
    :param target: label column; ``positive_label`` is its positive class.
    :param features: feature columns (default: every column but the target).
    :param hyperparameters: the trainer's ``training.params`` (epochs, lr, batch_size, ...; see
        ``docs/spec.md``). Not called ``params``: that name is Airflow's own task params.
    :param holdout_fraction: share of rows held out, stratified by label, for the gates.
    :param seed: seeds the split and the trainer; ``device`` is ``auto``, ``cpu`` or ``cuda``.

    Returns ``{"model", "holdout"}`` refs, ``mlflow_run_id`` and ``train_metrics``.
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
        hyperparameters: dict[str, Any] | None = None,
        holdout_fraction: float = 0.2,
        seed: int = 42,
        device: str = "auto",
        experiment: str | None = None,
        mlflow_conn_id: str = "mlflow_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data = data
        self.target = target
        self.features = list(features) if features else None
        self.positive_label = positive_label
        self.hyperparameters = dict(hyperparameters or {})
        self.holdout_fraction = holdout_fraction
        self.seed = seed
        self.device = device
        self.experiment = experiment or self.pipeline
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def hook(self) -> MLflowHook:
        return MLflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def _run_trainer(self, train_path: Any, out_dir: Any, config_path: Any) -> None:
        cmd = [
            sys.executable,
            "-m",
            "airflow_mlops.training.trainer",
            "--train",
            str(train_path),
            "--output",
            str(out_dir),
            "--config",
            str(config_path),
        ]
        self.log.info("Running trainer: %s", " ".join(cmd))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            self.log.info("trainer | %s", line.rstrip())
            tail = [*tail, line.rstrip()][-20:]
        if proc.wait() != 0:
            raise TrainingError(
                f"the trainer exited with status {proc.returncode}; its last lines:\n" + "\n".join(tail)
            )

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.data.io import read_table, write_table
        from airflow_mlops.data.split import stratified_split
        from airflow_mlops.registry.mlflow_registry import (
            TAG_DATA_SHA256,
            log_run_data,
            package_model,
            start_or_resume_run,
        )

        store = self.artifact_store()
        client = self.hook.get_conn()
        with self.scratch() as tmp:
            data_path = self.fetch(self.data, tmp / "in")
            df = read_table(data_path)
            features = self.features or [c for c in map(str, df.columns) if c != self.target]
            train_df, holdout_df = stratified_split(
                df, target=self.target, holdout_fraction=self.holdout_fraction, seed=self.seed
            )
            write_table(train_df, tmp / "train.parquet")
            write_table(holdout_df, tmp / "holdout.parquet")
            config = {
                "target": self.target,
                "features": features,
                "positive_label": self.positive_label,
                "params": self.hyperparameters,
                "seed": self.seed,
                "device": self.device,
            }
            (tmp / "config.json").write_text(json.dumps(config, indent=2, default=str))
            self._run_trainer(tmp / "train.parquet", tmp / "weights", tmp / "config.json")
            train_metrics = json.loads((tmp / "weights" / "metrics.json").read_text())

            package_model(tmp / "weights", tmp / "model", pip_requirements=SERVING_REQUIREMENTS)
            model_ref = store.put_directory(
                tmp / "model", self.artifact_key(context, "model"), producer=self.task_id
            )
            holdout_ref = store.put_file(
                tmp / "holdout.parquet",
                self.artifact_key(context, "holdout.parquet"),
                producer=self.task_id,
                rows=len(holdout_df),
            )
            data_sha = (
                self.data["sha256"] if isinstance(self.data, dict) else getattr(self.data, "sha256", "")
            )
            run_id = start_or_resume_run(
                client,
                experiment=self.experiment,
                pipeline=self.pipeline,
                airflow_run=self.airflow_run(context),
                run_name=f"{self.pipeline} {context['run_id']}",
            )
            scalar_metrics = {
                f"train_{k}": float(v) for k, v in train_metrics.items() if isinstance(v, (int, float))
            }
            log_run_data(
                client,
                run_id,
                params={
                    **{f"param_{k}": v for k, v in self.hyperparameters.items()},
                    "features": ",".join(features),
                    "target": self.target,
                    "seed": self.seed,
                    "holdout_fraction": self.holdout_fraction,
                    "train_rows": len(train_df),
                    "holdout_rows": len(holdout_df),
                },
                metrics=scalar_metrics,
                tags={TAG_DATA_SHA256: data_sha, "mlops.model_sha256": model_ref.sha256},
            )
            client.log_dict(run_id, train_metrics, "training/metrics.json")
        return {
            "model": model_ref.to_dict(),
            "holdout": holdout_ref.to_dict(),
            "mlflow_run_id": run_id,
            "train_metrics": {k: v for k, v in train_metrics.items() if isinstance(v, (int, float, str))},
        }
