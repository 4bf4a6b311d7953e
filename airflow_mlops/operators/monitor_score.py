"""``monitor.score``: the champion scores the live window (batch inference) and the reference."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_mlops.hooks.mlflow import MLflowHook
from airflow_mlops.hooks.signing import ModelSigningHook
from airflow_mlops.operators.base import MLOpsBaseOperator


class ChampionScoreOperator(MLOpsBaseOperator):
    """Score the live window with the champion (batch inference) and prepare the reference.

    The champion is downloaded, its signature and digest verified and every file scanned before
    it is loaded, exactly as for promotion; any flavor and task loads
    (:func:`airflow_mlops.training.flavors.load_predictor`). The window is snapshotted into the
    artifact store, and its predictions (the window plus the champion's output columns, see
    :func:`~airflow_mlops.drift.scoring.champion_columns`) are stored beside it: they are this pipeline's batch predictions for
    the interval.

    :param source: path or ``s3://`` URI of the live window (templated, e.g. ``.../{{ ds }}/...``).
    :param reference: ``champion`` (the rows the champion was trained on, pinned by sha256 on its
        model version), ``data`` (``data_reference``), or a path / URI (templated).
    :param threshold: binary models: the decision threshold for ``mlops_prediction`` when the
        model records none.

    Returns ``{"window", "predictions", "reference"}`` refs, ``champion_version``,
    ``champion_metrics`` (its recorded evaluation), ``labelled`` (the window has the target),
    ``features``, and what the detector needs to read the output: ``task``, ``classes`` (the
    model's class labels; empty for a regression) and ``threshold`` (binary; else None), and
    ``calibration``: what the detector estimates the champion's metrics with on an unlabelled
    window (:mod:`airflow_mlops.training.calibration`, JSON numbers stored with the model at
    training time; None for a model trained without one).
    Skips (with the reason in the log) when there is no champion yet: nothing to monitor.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "source", "reference", "data_reference")
    stage = "monitor"
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        source: str,
        target: str,
        model_name: str,
        features: Sequence[str] | None = None,
        data_format: str | None = None,
        reference: str = "champion",
        data_reference: str | None = None,
        max_reference_rows: int = 50_000,
        positive_label: Any = 1,
        threshold: float = 0.5,
        alias: str = "champion",
        allowed_globals: Sequence[str] = (),
        seed: int = 0,
        mlflow_conn_id: str = MLflowHook.default_conn_name,
        signing_conn_id: str = ModelSigningHook.default_conn_name,
        signing_method: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.target = target
        self.model_name = model_name
        self.features = list(features) if features else None
        self.data_format = data_format
        self.reference = reference
        self.data_reference = data_reference
        self.max_reference_rows = max_reference_rows
        self.positive_label = positive_label
        self.threshold = threshold
        self.alias = alias
        self.allowed_globals = list(allowed_globals)
        self.seed = seed
        self.mlflow_conn_id = mlflow_conn_id
        self.signing_conn_id = signing_conn_id
        self.signing_method = signing_method

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.data.io import read_table
        from airflow_mlops.drift import scoring

        client = self.mlflow_hook.get_conn()
        store = self.artifact_store()
        with self.scratch() as tmp:
            path = self.fetch_source(self.source, tmp, "monitoring.source")
            window = read_table(path, self.data_format, checked=True)
            scoring.check_window(window, self.source)
            version, predictor = self._champion(client, tmp)
            threshold = scoring.binary_threshold(predictor, self.threshold)
            self._log_scoring(len(window), version, predictor, threshold)
            put = functools.partial(self._put_table, store, context, tmp)
            refs = {"window": put(window, "window.parquet", source=self.source)}
            served = {"model_name": self.model_name, "model_version": version, "task": predictor.task}
            served.update({"threshold": threshold} if threshold is not None else {})
            refs["predictions"] = put(
                scoring.scored(predictor, window, threshold), "predictions.parquet", **served
            )
            mv = client.get_model_version(self.model_name, version)
            reference, described = self._reference(mv, tmp)
            reference = scoring.sample_reference(
                reference, predictor, threshold, max_rows=self.max_reference_rows, seed=self.seed
            )
            refs["reference"] = put(reference, "reference.parquet", source=described)
        features = self.features or predictor.features
        self.log.info("Reference: %s (%s rows); features: %s", described, len(reference), features)
        return {
            **refs,
            "champion_version": version,
            "champion_metrics": scoring.recorded_metrics(client, mv),
            "features": features,
            "labelled": self.target in window.columns,
            "task": predictor.task,
            "classes": list(predictor.classes),
            "threshold": threshold,
            "calibration": predictor.calibration,
        }

    def _champion(self, client: Any, tmp: Path) -> tuple[str, Any]:
        """The champion's version and its predictor, verified and scanned; skips without one."""
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.registry.mlflow_registry import weights_dir
        from airflow_mlops.training.flavors import load_predictor

        champion = self.fetch_trusted_alias(client, self.model_name, self.alias, tmp / "champion")
        if champion is None:
            raise AirflowSkipException(
                f"{self.model_name} has no @{self.alias} version yet: nothing to monitor until the "
                "first model is promoted"
            )
        version, model_dir = champion
        return version, load_predictor(weights_dir(model_dir))

    def _log_scoring(self, rows: int, version: str, predictor: Any, threshold: float | None) -> None:
        from airflow_mlops.tasks import describe

        self.log.info(
            "Scoring %s rows of %s with %s version %s (verified, scanned): %s model (%s)%s",
            rows,
            self.source,
            self.model_name,
            version,
            predictor.flavor,
            describe(predictor.task, predictor.classes, predictor.positive_label),
            "" if threshold is None else f", threshold {threshold}",
        )

    def _put_table(
        self, store: Any, context: Any, tmp: Path, frame: Any, name: str, **meta: Any
    ) -> dict[str, Any]:
        """Write ``frame`` as parquet and store it under this run's ``name``; its ref as a dict."""
        from airflow_mlops.data.io import write_table

        write_table(frame, tmp / name)
        ref = store.put_file(
            tmp / name, self.artifact_key(context, name), producer=self.task_id, rows=len(frame), **meta
        )
        return ref.to_dict()

    def _reference(self, mv: Any, tmp: Path) -> tuple[Any, str]:
        """The reference rows and where they came from (``mv``: the champion's model version)."""
        from airflow_mlops.data.io import read_table
        from airflow_mlops.drift.scoring import training_data_ref
        from airflow_mlops.exceptions import DriftInputError

        if self.reference == "champion":
            ref = training_data_ref(mv, self.model_name)
            path = self.fetch(ref, tmp / "reference-in")  # checked against the pinned sha256
            return read_table(path), f"the training data of version {mv.version} ({ref.uri})"
        location = self.data_reference if self.reference == "data" else self.reference
        if not location:
            raise DriftInputError("monitoring.reference is `data`, but the spec sets no data.reference")
        what = "data.reference" if self.reference == "data" else "monitoring.reference"
        return read_table(self.fetch_source(location, tmp / "reference-in", what), checked=True), location
