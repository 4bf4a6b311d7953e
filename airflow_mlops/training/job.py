"""The training job: what every backend runs, from artifact refs in to a model ref out.

``python -m airflow_mlops.training --job '<ArtifactRef JSON of job.json>' [--result PATH]
[--print-result]`` is the one entrypoint of the local subprocess, the Kubernetes pod and the
Docker container. It needs torch and the project's light modules only (no Airflow, no MLflow):

1. fetch ``job.json`` through its ref and check its sha256 (see :class:`TrainingJob`);
2. fetch the training table through its ref (local path or S3), refusing a sha256 mismatch;
3. train: a built-in model (``mlp``, ``cnn``; :func:`airflow_mlops.training.trainer.train`) or
   your own ``package.module:fit`` (the contract is :class:`FitContext`);
4. check the model directory loads (:func:`airflow_mlops.training.flavors.load_predictor`: no
   pickle, safetensors only) and put it into the store at the job's output key;
5. write the result -- ``{"format_version": 1, "weights": <ArtifactRef>, "metrics": {...}}`` --
   to ``--result`` (the local backend's file, or KPO's ``/airflow/xcom/return.json``) and, with
   ``--print-result``, as the last stdout line after :data:`RESULT_MARKER` (Docker).

Exit status: 0 done; 2 the job was refused and no retry can help (bad data or config, integrity,
privacy budget); 1 anything else (a network error: a retry may help). S3 credentials come from
the process environment (the pod's secret references, the container's private environment, the
variables the local backend hands its subprocess); nothing here reads Airflow connections.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.artifacts import ArtifactRef, ArtifactStore
from airflow_mlops.exceptions import (
    DataError,
    MLOpsError,
    TrainingError,
    TrainingRejectedError,
    is_retryable,
)
from airflow_mlops.training.threshold import DEFAULT_RULE, check_rule, choose_threshold

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.training.networks import Preprocessor

log = logging.getLogger("airflow_mlops.training.job")

JOB_FORMAT_VERSION = 1
RESULT_FORMAT_VERSION = 1
RESULT_MARKER = "airflow-mlops-result: "
EXIT_REJECTED = 2
_JOB_KEYS = {"format_version", "store_root", "inputs", "model", "config", "options", "output_key"}


@dataclass(frozen=True)
class TrainingJob:
    """``job.json``: everything the trainer needs, pinned by the job's own ref.

    :param store_root: root of the artifact store the output goes to (local dir or ``s3://``).
    :param train: ref of the training table (parquet or csv).
    :param model: ``mlp``, ``cnn`` or ``package.module:fit``.
    :param config: the trainer config (see :mod:`airflow_mlops.training.config`); for a user
        entrypoint: target, features, positive_label, seed, device and params.
    :param options: free-form settings for a user entrypoint.
    :param output_key: key (under ``store_root``) of the model directory to write.
    :param triggers: ref of the watermark's trigger rows (``inputs.watermark``), derived by the
        prepare step from the key in its Airflow connection; the key itself never reaches the
        trainer. Present exactly when ``config.watermark`` holds the watermark's record.
    """

    store_root: str
    train: ArtifactRef
    model: str
    config: dict[str, Any]
    output_key: str
    options: dict[str, Any] = field(default_factory=dict)
    triggers: ArtifactRef | None = None

    def to_dict(self) -> dict[str, Any]:
        inputs = {"train": self.train.to_dict()}
        if self.triggers is not None:
            inputs["watermark"] = self.triggers.to_dict()
        return {
            "format_version": JOB_FORMAT_VERSION,
            "store_root": self.store_root,
            "inputs": inputs,
            "model": self.model,
            "config": dict(self.config),
            "options": dict(self.options),
            "output_key": self.output_key,
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "job.json") -> TrainingJob:
        if not isinstance(data, Mapping):
            raise TrainingRejectedError(f"{where} must hold a JSON object")
        unknown = sorted(set(data) - _JOB_KEYS)
        if unknown:
            raise TrainingRejectedError(f"{where}: unknown key(s) {', '.join(unknown)}")
        if data.get("format_version") != JOB_FORMAT_VERSION:
            raise TrainingRejectedError(
                f"{where}: format_version {data.get('format_version')!r} is not {JOB_FORMAT_VERSION}; "
                "the trainer image and the Airflow package differ in version: use the same release"
            )
        try:
            train = ArtifactRef.from_dict(data["inputs"]["train"])
            marked = data["inputs"].get("watermark")
            job = cls(
                triggers=ArtifactRef.from_dict(marked) if marked is not None else None,
                store_root=str(data["store_root"]),
                train=train,
                model=str(data["model"]),
                config=dict(data["config"]),
                output_key=str(data["output_key"]),
                options=dict(data.get("options") or {}),
            )
        except (KeyError, TypeError, ValueError, MLOpsError) as exc:
            raise TrainingRejectedError(f"{where} is malformed: {type(exc).__name__}: {exc}") from exc
        if not job.output_key or job.output_key.startswith("/") or ".." in job.output_key.split("/"):
            raise TrainingRejectedError(f"{where}: output_key {job.output_key!r} must be a relative key")
        return job


@dataclass(frozen=True)
class FitContext:
    """What a user ``fit`` entrypoint gets, and the contract it keeps.

    Your function is ``fit(train: pandas.DataFrame, ctx: FitContext) -> Mapping[str, float]``:

    - ``train`` is the training table (the holdout rows were split off before; split a
      validation set from ``train`` yourself if you want one);
    - :attr:`task` is the pipeline's task (``binary``, ``multiclass`` or ``regression``: the
      spec's ``task``, else inferred from the target); :meth:`y` gives the target encoded for it
      (0/1 with 1 the positive class, class indices into :attr:`classes`, or floats) and
      :meth:`x` the feature columns;
    - it trains any supported model -- a scikit-learn estimator or pipeline, an XGBoost or
      LightGBM model (scikit-learn API or booster), the built-in ``MLP``/``CNN`` or a torch
      ``nn.Module`` of your own -- and writes it with :meth:`save`, which stores it in its safe
      format (see :mod:`airflow_mlops.training.flavors`) so the scan, the gates and MLflow serving
      read it; nothing is pickled;
    - it returns its metrics (numbers and strings; logged to MLflow as ``train_<name>``);
    - it seeds what it randomises from ``ctx.seed`` and trains on ``ctx.device``;
    - binary only: it chooses the operating threshold: ``ctx.choose_threshold(y_val, scores)``
      with labels and scores of rows the model did not fit on applies :attr:`threshold_rule` (the
      spec's ``evaluation.threshold``) and records the choice, which :meth:`save` stores with the
      model. With a ``fixed`` rule nothing needs choosing; with any other rule a binary fit that
      records no choice is refused;
    - optional, for performance estimation without labels: ``ctx.calibrate(y_val, output,
      x_val)`` with rows the model did not fit on records the calibration the monitor estimates
      the model's metrics with (:mod:`airflow_mlops.training.calibration`); a binary fit's
      ``choose_threshold`` records it too. A model without one is monitored without estimates.

    The trainer then loads the written model back and fails the job if it does not load.
    """

    target: str
    features: list[str] | None
    positive_label: Any
    seed: int
    device: str
    params: dict[str, Any]
    options: dict[str, Any]
    output_dir: Path
    threshold_rule: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_RULE))
    task: str = "binary"
    #: classification: the canonical labels (sorted) of the training target; see :meth:`y`.
    classes: list[str] = field(default_factory=list)
    _threshold: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _calibration: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _class_order: list[str] = field(default_factory=list, init=False, repr=False, compare=False)
    _columns: list[str] = field(default_factory=list, init=False, repr=False, compare=False)
    _triggers: list[pd.DataFrame] = field(default_factory=list, init=False, repr=False, compare=False)

    def learn_classes(self, train: pd.DataFrame) -> None:
        """Record the target's classes and the feature columns (the trainer calls this first)."""
        from airflow_mlops.labels import label_key, positive_mask
        from airflow_mlops.tasks import class_labels, sort_classes

        series = train[self.target]
        self._columns[:] = list(self.features or [str(c) for c in train.columns if str(c) != self.target])
        if self.task == "binary":
            mask = positive_mask(series, self.positive_label, column=self.target)
            negative = label_key(series[~mask].iloc[0])
            self._class_order[:] = [negative, label_key(self.positive_label)]
            self.classes[:] = sort_classes(self._class_order)
        elif self.task == "multiclass":
            self.classes[:] = class_labels(series, column=self.target)
            self._class_order[:] = list(self.classes)
            if len(self.classes) < 3:  # refused before your fit runs, not when it saves
                raise DataError(
                    f"target column {self.target!r} has {len(self.classes)} classes: that is a binary "
                    "task, not multiclass"
                )

    def watermark_rows(self, train_rows: int) -> pd.DataFrame | None:
        """The watermark's trigger rows to append to your training rows (``training.watermark``),
        or None when the pipeline has none.

        They are rows of the training table (the feature columns and the target, with keyed
        labels), each repeated as the built-in trainer repeats them for ``train_rows`` training
        rows. Append them to the rows you fit on -- never to the rows you validate, choose the
        threshold or calibrate on -- and fit your feature scaling before you append them. A model
        that does not learn them is blocked by the evaluate stage's watermark gate. The key never
        reaches the trainer; only these rows do.
        """
        import numpy as np

        from airflow_mlops.security.watermark import repeats_for

        if not self._triggers:
            return None
        rows = self._triggers[0]
        index = np.tile(np.arange(len(rows)), repeats_for(train_rows, len(rows)))
        return rows.iloc[index].reset_index(drop=True)

    @property
    def feature_columns(self) -> list[str]:
        """The feature columns (the spec's ``data.features``, else every column but the target)."""
        return list(self._columns)

    def x(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature columns of ``frame``."""
        return frame[self.feature_columns]

    def y(self, frame: pd.DataFrame) -> Any:
        """The target of ``frame`` encoded for the task: 0/1 ints (1 = positive), class indices
        into :attr:`classes`, or float64 values."""
        import numpy as np

        from airflow_mlops.tasks import encode_target

        encoded = encode_target(
            self.task,
            frame[self.target],
            positive_label=self.positive_label,
            classes=self.classes,
            column=self.target,
        )
        return encoded.astype(np.int64) if self.task == "binary" else encoded

    def choose_threshold(self, y_true: Any, scores: Any) -> float:
        """Choose the operating threshold by :attr:`threshold_rule` and record it (binary only).

        :param y_true: labels of rows the model did not fit on (1/True positive, 0/False not).
        :param scores: the model's positive-class probabilities for the same rows.
        :returns: the threshold (a row is positive where ``score >= threshold``).
        :raises DataError: no rows, no positive among them, mismatched or non-finite inputs.
        :raises TrainingRejectedError: no threshold meets the rule (the message gives the best).
        """
        if self.task != "binary":
            raise TrainingRejectedError(f"an operating threshold applies to binary tasks, not {self.task}")
        choice = choose_threshold(y_true, scores, self.threshold_rule)
        self._threshold.clear()
        self._threshold.update(choice)
        if len(choice.get("validation") or {}) and not self._calibration:
            self.calibrate(y_true, scores)
        return float(choice["value"])

    def calibrate(self, y_true: Any, output: Any, x: pd.DataFrame | None = None) -> None:
        """Fit and record the calibration the monitor estimates performance with (stored by
        :meth:`save`).

        :param y_true: labels of rows the model did not fit on, encoded as :meth:`y` gives them.
        :param output: the model's output for them (binary: positive-class probabilities;
            multiclass: ``(rows, classes)`` probabilities in the order of :attr:`classes`;
            regression: predicted values).
        :param x: regression only: the feature columns of those rows (the error model reads them).
        """
        import numpy as np

        from airflow_mlops.training.calibration import fit_calibration, fit_error_model

        if self.task == "regression":
            if x is None:
                raise TrainingRejectedError(
                    "ctx.calibrate of a regression needs x: the rows' feature columns"
                )
            fitted = fit_error_model(y_true, output, x, self.feature_columns)
        else:
            labels = [self._class_order[1]] if self.task == "binary" else list(self.classes)
            fitted = fit_calibration(
                self.task, np.asarray(y_true).astype(np.int64), output, labels, seed=self.seed
            )
        self._calibration.clear()
        self._calibration.update(fitted)

    @property
    def threshold_choice(self) -> dict[str, Any] | None:
        """What :meth:`choose_threshold` recorded (see :func:`~airflow_mlops.training.threshold.
        choose_threshold`), or None."""
        return dict(self._threshold) if self._threshold else None

    def save(
        self,
        model: Any,
        preprocessor: Preprocessor | None = None,
        *,
        training: Mapping[str, Any] | None = None,
        init_kwargs: Mapping[str, Any] | None = None,
        target_scaling: Mapping[str, float] | None = None,
        class_order: Sequence[Any] | None = None,
    ) -> None:
        """Write ``model`` and ``model_config.json`` (with the recorded threshold, if one was
        chosen already) into :attr:`output_dir`.

        :param model: a fitted scikit-learn estimator or pipeline, an XGBoost or LightGBM model
            (scikit-learn API or booster), the built-in ``MLP``/``CNN`` or your own torch module.
        :param preprocessor: the fitted :class:`~airflow_mlops.training.networks.Preprocessor` whose
            matrix the model was trained on (required for torch models); None when the model takes
            the feature columns as a DataFrame (e.g. a scikit-learn pipeline).
        :param init_kwargs: your own torch module: the JSON keyword arguments that rebuild it
            (its class must live in an importable module of your package).
        :param target_scaling: regression on a standardised target: ``{"mean": m, "std": s}``.
        :param class_order: classification: the label of each of the model's output columns. Read
            from the model's ``classes_`` by default; needed when those cannot tell whether the
            model was fitted on the target's own labels or on :meth:`y` (a 0/1 target whose
            positive label is 0: the message says so).
        :raises TrainingError: a model that cannot be stored safely (the message says why).
        """
        from airflow_mlops.training.flavors import save_model_dir

        save_model_dir(
            self.output_dir,
            model,
            task=self.task,
            target=self.target,
            features=list(preprocessor.features) if preprocessor is not None else self.feature_columns,
            class_order=self._model_class_order(model, class_order),
            positive_label=self.positive_label if self.task == "binary" else None,
            preprocessor=preprocessor,
            seed=self.seed,
            training=training,
            threshold_choice=self.threshold_choice,
            init_kwargs=init_kwargs,
            target_scaling=target_scaling,
            calibration=dict(self._calibration) or None,
        )

    def _model_class_order(self, model: Any, given: Sequence[Any] | None = None) -> list[str] | None:
        """The label of each of the model's output columns.

        A model fitted on the raw labels (``classes_`` are the target's own values) keeps them; a
        model fitted on :meth:`y` (``classes_`` are 0..K-1) or with no ``classes_`` (a booster, a
        torch module) has this context's encoding. Where ``classes_`` fit both readings and they
        differ (a 0/1 target whose positive label is 0), ``given`` must say which.
        """
        from airflow_mlops.labels import label_key

        if self.task == "regression":
            return None
        if given is not None:
            order = [label_key(c) for c in list(given)]
            if sorted(order) != sorted(self._class_order):
                raise TrainingRejectedError(
                    f"class_order {order[:10]} is not an order of the target's classes {self.classes[:10]}"
                )
            return order
        raw = getattr(model, "classes_", None)
        if raw is None:
            return list(self._class_order)
        keys = [label_key(c) for c in list(raw)]
        encoded = [str(i) for i in range(len(self._class_order))]
        if sorted(keys) == sorted(self._class_order):
            if keys == encoded and keys != self._class_order:
                raise TrainingRejectedError(
                    f"the model's classes_ {keys} are both the target's own labels and the encoding of "
                    f"ctx.y (1 = the positive label {self.positive_label!r}), and the two read its columns "
                    f"differently; pass ctx.save(model, ..., class_order=model.classes_) if it was fitted on "
                    f"the target column, or class_order={self._class_order} if it was fitted on ctx.y"
                )
            return keys
        if keys == encoded:
            return list(self._class_order)
        raise TrainingRejectedError(
            f"the model's classes_ {keys[:10]} are neither the target's classes {self._class_order[:10]} "
            "nor the encoding of ctx.y (0..K-1)"
        )


def read_job_ref(value: str) -> ArtifactRef:
    """The ``--job`` argument: the JSON of the job's :class:`ArtifactRef`."""
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise TrainingRejectedError(f"--job is not the JSON of an artifact reference: {exc}") from exc
    try:
        return ArtifactRef.from_dict(data)
    except MLOpsError as exc:
        raise TrainingRejectedError(f"--job: {exc}") from exc


def write_job(store: ArtifactStore, key: str, job: TrainingJob, *, producer: str = "") -> ArtifactRef:
    """Put ``job.json`` into the store at ``key`` and return its ref (what ``--job`` takes)."""
    with tempfile.TemporaryDirectory(prefix="mlops-job-") as tmp:
        path = Path(tmp) / "job.json"
        path.write_text(json.dumps(job.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n")
        return store.put_file(path, key, producer=producer)


def run_job(job_ref: ArtifactRef, work_dir: str | Path) -> dict[str, Any]:
    """Run a training job (steps 1-4 of the module docstring); returns the result dict."""
    work = Path(work_dir)
    job_path = _store_for(job_ref.uri).fetch(job_ref, work / "job")
    try:
        raw = json.loads(job_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainingRejectedError(f"job {job_ref.uri} is not valid JSON: {exc}") from exc
    job = TrainingJob.from_dict(raw, where=job_ref.uri)
    store = ArtifactStore(job.store_root)
    log.info("job %s: model %s, training data %s", job_ref.uri, job.model, job.train.uri)
    # The training data must be the job's own snapshot in its store: job.json names the store,
    # so a train ref pointing anywhere else (another folder or bucket) is refused, not read.
    located = store.locate(job.train.uri)
    if located is None:
        raise TrainingRejectedError(
            f"job {job_ref.uri}: its training data {job.train.uri} is not in the job's artifact store "
            f"{job.store_root}; refusing to read it"
        )
    train_path = store.fetch(job.train, work / "inputs", source=None if store.is_s3 else located)
    log.info("training data verified: sha256 %s, %d bytes", job.train.sha256, job.train.size)
    train_df = _read_table(train_path)
    triggers = None
    if job.triggers is not None:
        at = store.locate(job.triggers.uri)
        if at is None:
            raise TrainingRejectedError(
                f"job {job_ref.uri}: its watermark trigger rows {job.triggers.uri} are not in the job's "
                f"artifact store {job.store_root}; refusing to read them"
            )
        triggers = _read_table(
            store.fetch(job.triggers, work / "watermark", source=None if store.is_s3 else at)
        )
        log.info("watermark trigger rows verified: sha256 %s", job.triggers.sha256)

    out = work / "weights"
    if ":" not in job.model:  # mlp, cnn, xgboost, lightgbm or an estimator class
        from airflow_mlops.training.trainer import train

        metrics = train(train_df, {**job.config, "model": job.model}, out, triggers)
    else:
        metrics = _run_entrypoint(job, train_df, out, triggers)

    from airflow_mlops.training.flavors import load_predictor

    try:
        load_predictor(out)
    except MLOpsError as exc:
        raise TrainingRejectedError(
            f"the trained model in {out} does not load ({exc}); a fit entrypoint must write it with "
            "FitContext.save (see docs/training.md)"
        ) from exc
    ref = store.put_directory(out, job.output_key, producer="trainer", model=job.model)
    log.info("model written: %s (sha256 %s)", ref.uri, ref.sha256)
    scalars = {k: v for k, v in metrics.items() if _is_scalar(v)}
    return {"format_version": RESULT_FORMAT_VERSION, "weights": ref.to_dict(), "metrics": scalars}


def _run_entrypoint(
    job: TrainingJob, train_df: pd.DataFrame, out: Path, triggers: pd.DataFrame | None = None
) -> dict[str, Any]:
    from airflow_mlops.tasks import resolve_task

    record = job.config.get("watermark")
    if (record is None) != (triggers is None):
        raise TrainingRejectedError(
            "the job has a watermark record but no trigger rows, or trigger rows but no record; "
            "it was not written by the training prepare step of this release"
        )

    fit = resolve_fit(job.model)
    config = job.config
    out.mkdir(parents=True, exist_ok=True)
    target = str(config["target"])
    if target not in train_df.columns:
        raise TrainingRejectedError(f"the training data has no target column {target!r}")
    task = resolve_task(config.get("task"), train_df[target], column=target)
    ctx = FitContext(
        task=task,
        target=str(config["target"]),
        features=list(config["features"]) if config.get("features") else None,
        positive_label=config.get("positive_label", 1),
        seed=int(config.get("seed", 42)),
        device=str(config.get("device", "auto")),
        params=dict(config.get("params") or {}),
        options=dict(job.options),
        output_dir=out,
        threshold_rule=check_rule(
            DEFAULT_RULE if config.get("threshold") is None else config["threshold"],
            where=f"{job.model}: config threshold",
        ),
    )
    ctx.learn_classes(train_df)
    if triggers is not None:
        ctx._triggers.append(triggers)
    log.info("running your fit entrypoint %s (task %s)", job.model, task)
    returned = fit(train_df, ctx)
    if not isinstance(returned, Mapping):
        raise TrainingRejectedError(
            f"{job.model} returned {type(returned).__name__}; a fit entrypoint returns a mapping of metrics"
        )
    metrics = {str(k): v for k, v in returned.items()}
    bad = sorted(k for k, v in metrics.items() if not _is_scalar(v))
    if bad:
        raise TrainingRejectedError(
            f"{job.model} returned non-scalar metric(s) {', '.join(bad)}; return numbers or strings"
        )
    threshold = _record_threshold(ctx, out, job.model)
    _record_calibration(ctx, out)
    if threshold is not None:
        metrics.setdefault("threshold", threshold)
    if record is not None:
        from airflow_mlops.training.trainer import write_watermark

        metrics.update(write_watermark(out, record, triggers))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    return metrics


def _record_threshold(ctx: FitContext, out: Path, entrypoint: str) -> float | None:
    """Store the fit's threshold in ``model_config.json`` (however the fit ordered its calls).

    A fixed rule records its value when the fit chose nothing; any other rule needs the fit's
    choice. Returns the threshold, or None when there is no readable model config (the load check
    that follows reports that).
    """
    from airflow_mlops.training.flavors import CONFIG_FILE

    path = out / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(config, dict) or config.get("task", "binary") != "binary":
        return None
    choice = ctx.threshold_choice
    if choice is None:
        rule = ctx.threshold_rule
        if rule["rule"] != "fixed":
            raise TrainingRejectedError(
                f"{entrypoint} chose no operating threshold, but the rule is {rule['rule']} "
                f"({json.dumps(rule)}): call ctx.choose_threshold(y_val, scores) with labels and scores "
                "of rows the model did not fit on, or set a fixed `evaluation.threshold: <number>` in the spec"
            )
        choice = choose_threshold([], [], rule)
    config["threshold"] = float(choice["value"])
    config["threshold_choice"] = choice
    path.write_text(json.dumps(config, indent=2, allow_nan=False) + "\n")
    log.info("operating threshold %.4g (%s)", choice["value"], choice["rule"])
    return float(choice["value"])


def _record_calibration(ctx: FitContext, out: Path) -> None:
    """Store the fit's calibration in ``model_config.json`` when it was recorded after :meth:`save`."""
    from airflow_mlops.training.calibration import check_calibration
    from airflow_mlops.training.flavors import CONFIG_FILE

    path = out / CONFIG_FILE
    if not ctx._calibration:
        return
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return
    if (
        not isinstance(config, dict)
        or "calibration" in config
        or config.get("task") != ctx._calibration["task"]
    ):
        return
    config["calibration"] = check_calibration(ctx._calibration)
    path.write_text(json.dumps(config, indent=2, allow_nan=False) + "\n")


def resolve_fit(path: str) -> Any:
    """Import ``package.module:fit`` (or ``package.module.fit``)."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TrainingRejectedError(
            f"cannot import {module_name!r} for training.model {path!r}: {exc}; install your package "
            "in the trainer image (or on the worker for the local backend)"
        ) from exc
    fit = getattr(module, attr, None)
    if not callable(fit):
        raise TrainingRejectedError(f"training.model {path!r}: {module_name} has no callable {attr!r}")
    return fit


def _store_for(uri: str) -> ArtifactStore:
    """A store that can read ``uri`` (fetching uses the ref's own URI; the root only picks S3 or local)."""
    if uri.startswith("s3://"):
        return ArtifactStore("s3://" + uri[len("s3://") :].split("/", 1)[0])
    return ArtifactStore(str(Path(uri[len("file://") :] if uri.startswith("file://") else uri).parent))


def _read_table(path: Path) -> pd.DataFrame:
    from airflow_mlops.training.config import read_table

    return read_table(path)


def _is_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (int, str, bool))


def write_result(path: str | Path, result: Mapping[str, Any]) -> None:
    """Write the result JSON atomically (a reader never sees half a file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(result, fh, allow_nan=False)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


STDIN_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def read_stdin_credentials(stream: Any) -> dict[str, str]:
    """The S3 credentials the docker backend writes to the container's stdin: one line holding a
    JSON object whose keys are among :data:`STDIN_CREDENTIALS` (no other setting can be smuggled in
    this way). One line, not "until the end of input": the trainer never waits on a stream left
    open. Raises ``ValueError`` naming what is wrong, never a value."""
    text = stream.readline(65536)
    try:
        data = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        raise ValueError("--credentials-stdin: stdin is not a JSON object") from None
    if not isinstance(data, dict) or not data:
        raise ValueError("--credentials-stdin: expected a JSON object of credentials on stdin, got none")
    unknown = sorted(k for k in data if k not in STDIN_CREDENTIALS)
    if unknown:
        raise ValueError(
            f"--credentials-stdin: unexpected keys {unknown} (allowed: {list(STDIN_CREDENTIALS)})"
        )
    if not all(isinstance(v, str) for v in data.values()):
        raise ValueError("--credentials-stdin: every credential must be a string")
    return dict(data)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (0, 1 or :data:`EXIT_REJECTED`)."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_mlops.training",
        description="Run an airflow-mlops training job: artifact refs in, a model ref out.",
    )
    parser.add_argument("--job", required=True, help="JSON of the ArtifactRef of job.json")
    parser.add_argument("--result", help="write the result JSON here (e.g. /airflow/xcom/return.json)")
    parser.add_argument(
        "--print-result",
        action="store_true",
        help=f"print the result as the last line: {RESULT_MARKER}{{...}}",
    )
    parser.add_argument("--work-dir", help="scratch directory (default: a new one under $TMPDIR)")
    parser.add_argument(
        "--credentials-stdin",
        action="store_true",
        help="read the S3 credentials as one JSON object on stdin (the docker backend: never in "
        "the container's environment)",
    )
    args = parser.parse_args(argv)
    if args.credentials_stdin:
        try:
            os.environ.update(read_stdin_credentials(sys.stdin))
        except ValueError as exc:
            print(f"trainer: error: {exc}", file=sys.stderr, flush=True)
            return EXIT_REJECTED
    if not logging.getLogger().handlers:
        logging.basicConfig(
            stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
        )
    for name in ("airflow_mlops.training.job", "airflow_mlops.training.trainer"):
        logging.getLogger(name).setLevel(logging.INFO)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="mlops-train-"))
    try:
        result = run_job(read_job_ref(args.job), work)
    except MLOpsError as exc:
        message = " ".join(str(exc).split())
        print(f"trainer: error: {type(exc).__name__}: {message}", file=sys.stderr, flush=True)
        final = not is_retryable(exc) or isinstance(exc, TrainingError)
        return EXIT_REJECTED if final else 1
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    if args.result:
        write_result(args.result, result)
    logging.shutdown()
    sys.stdout.flush()
    if args.print_result:
        print(RESULT_MARKER + json.dumps(result, separators=(",", ":")), flush=True)
    return 0
