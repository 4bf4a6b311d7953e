"""``training.package``: the trained weights packaged for MLflow, and the training run logged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_mlops.artifacts import ArtifactRef
from airflow_mlops.hooks.mlflow import MLflowHook
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.operators.links import MLflowRunLink
from airflow_mlops.training.fit_result import WEIGHTS_NAME, parse_fit_result


class ModelPackageOperator(MLOpsBaseOperator):
    """Package the trained weights for MLflow and log the training run.

    Refuses weights other than the ones this run's job asked for (the fit step's result names the
    artifact; its URI must be the job's output key and its content must match the sha256). The
    MLflow run is found again by its ``mlops.airflow_run`` tag on retries.

    Any flavor packages alike: ``mlflow.pyfunc.load_model`` predicts through
    :mod:`airflow_mlops.registry.pyfunc_model`, the model's ``requirements.txt`` pins its
    library, and the run's params say its ``task``, ``flavor`` and ``framework``.

    :param fit_result: the fit step's return value (templated).
    :param prepared: the prepare step's return value (templated).
    :param hyperparameters: logged as ``param_<name>``; ``backend`` is logged as a tag.
    :param datasets: ``{role: ArtifactRef}`` of the tables the model descends from, e.g.
        ``{"input": validate.output["data"], "accepted": screen.output["accepted"],
        "quarantine": screen.output["quarantine"]}`` (templated). Each, and the ``train`` and
        ``holdout`` splits of ``prepared``, is logged as an MLflow dataset input of the run
        (source: its URI, digest: its sha256; see :mod:`airflow_mlops.registry.mlflow_datasets`).

    Returns ``{"model", "holdout"}`` refs, ``mlflow_run_id`` and ``train_metrics``.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "fit_result", "prepared", "datasets")
    stage = "train"
    ui_color = "#fde2e4"
    operator_extra_links = (MLflowRunLink(),)

    def __init__(
        self,
        *,
        fit_result: Any,
        prepared: Any,
        target: str,
        model: str = "mlp",
        hyperparameters: dict[str, Any] | None = None,
        holdout_fraction: float = 0.2,
        seed: int = 42,
        backend: str = "local",
        experiment: str | None = None,
        mlflow_conn_id: str = MLflowHook.default_conn_name,
        datasets: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.datasets = dict(datasets or {})
        self.fit_result = fit_result
        self.prepared = prepared
        self.target = target
        self.model = model
        self.hyperparameters = dict(hyperparameters or {})
        self.holdout_fraction = holdout_fraction
        self.seed = seed
        self.backend = backend
        self.experiment = experiment or self.pipeline
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.operators.run_events import retrain_reason
        from airflow_mlops.registry import training_run
        from airflow_mlops.registry.mlflow_registry import TAG_DATA_SHA256, package_model, start_or_resume_run
        from airflow_mlops.retrain.reason import reason_tags

        store = self.artifact_store()
        weights = ArtifactRef.from_dict(parse_fit_result(self.fit_result)["weights"])
        training_run.check_weights_location(
            weights.uri, store.uri_for(self.artifact_key(context, WEIGHTS_NAME))
        )
        prepared = dict(self.prepared)
        client = self.mlflow_hook.get_conn()
        with self.scratch() as tmp:
            weights_dir = self.fetch(weights, tmp / "in")
            trained = training_run.read_trained(weights_dir)
            # requirements.txt: the flavor's library, pinned (registry.mlflow_registry.SERVING_REQUIREMENTS)
            package_model(weights_dir, tmp / "model")
            model_ref = store.put_directory(
                tmp / "model", self.artifact_key(context, "model"), producer=self.task_id
            )
        run_id = start_or_resume_run(
            client, experiment=self.experiment, pipeline=self.pipeline, airflow_run=self.airflow_run(context),
            run_name=f"{self.pipeline} {context['run_id']}",
        )  # fmt: skip
        training_run.log_training_run(
            client,
            run_id,
            trained,
            params=self._run_params(prepared),
            tags={
                TAG_DATA_SHA256: prepared.get("data_sha256") or "",
                "mlops.model_sha256": model_ref.sha256,
                "mlops.weights_sha256": weights.sha256,
                "mlops.training_backend": self.backend,
                **reason_tags(retrain_reason(context)),  # why this run trains
            },
        )
        self._log_datasets(client, run_id, prepared)
        return {
            "model": model_ref.to_dict(),
            "holdout": dict(prepared["holdout"]),
            "mlflow_run_id": run_id,
            "train_metrics": training_run.reported_metrics(trained),
        }

    def _run_params(self, prepared: Mapping[str, Any]) -> dict[str, Any]:
        """The training run's params: ``param_<name>`` per hyperparameter, the model, data and split."""
        return {
            **{f"param_{k}": v for k, v in self.hyperparameters.items()},
            "model": self.model,
            "features": ",".join(prepared.get("features") or []),
            "target": self.target,
            "seed": self.seed,
            "holdout_fraction": self.holdout_fraction,
            "train_rows": prepared.get("train_rows"),
            "holdout_rows": prepared.get("holdout_rows"),
        }

    def _log_datasets(self, client: Any, run_id: str, prepared: Mapping[str, Any]) -> None:
        """Log ``datasets`` and the splits as MLflow dataset inputs, each read verified (only its
        first rows and parquet footer: no table is loaded in full)."""
        from airflow_mlops.registry.mlflow_datasets import (
            DATASET_CONTEXTS,
            log_dataset_inputs,
            table_dataset,
        )

        refs = {**self.datasets, "train": prepared.get("train"), "holdout": prepared.get("holdout")}
        entries = []
        with self.scratch() as tmp:
            for role, ref in refs.items():
                if not ref:
                    continue
                path = self.fetch(ref, tmp / role)
                dataset = table_dataset(ref, name=f"{self.pipeline}.{role}", path=path)
                entries.append((dataset, DATASET_CONTEXTS.get(role, role)))
        log_dataset_inputs(client, run_id, entries)
