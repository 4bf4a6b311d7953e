"""The estimators' fit (XGBoost, LightGBM, a scikit-learn class): encode the features, check the
classes, fit with early stopping on the validation rows, and measure the outputs."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.exceptions import DataError, TrainingError
from airflow_mlops.labels import label_key
from airflow_mlops.training.networks import Preprocessor
from airflow_mlops.training.rows import Outcome, Target, TriggerRows, metric_sample

# The trainer's logger: the job's command line sets its level (see training/job.py).
log = logging.getLogger("airflow_mlops.training.trainer")


def train_estimator(
    cfg: Mapping[str, Any],
    data: Target,
    fit_df: pd.DataFrame,
    val_df: pd.DataFrame,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    features: list[str],
    triggers: TriggerRows | None = None,
) -> Outcome:
    """Fit the configured estimator on the training rows (early stopping on the validation rows),
    and on the watermark's ``triggers`` if given (appended after the encoding is learned)."""
    from airflow_mlops.training.estimators import fit_estimator, make_estimator

    estimator, kind = make_estimator(cfg["model"], data.task, cfg["params"], cfg["seed"])
    preprocessor = Preprocessor.fit(fit_df, features, cfg["categorical"], keep_missing=kind.keeps_missing)
    x_train = preprocessor.transform(fit_df)
    x_val = preprocessor.transform(val_df)
    y_train, y_val = data.y[train_idx], data.y[val_idx]
    if data.task != "regression":
        y_train, y_val = y_train.astype(np.int64), y_val.astype(np.int64)
        counts = np.bincount(y_train, minlength=len(data.classes))
        missing = [int(i) for i in np.flatnonzero(counts == 0)]
        if missing:
            raise DataError(
                f"class(es) {', '.join(repr(data.classes[i]) for i in missing)} of {cfg['target']!r} have "
                "no training rows after the validation split; add rows or lower validation_fraction"
            )
    real_rows = len(x_train)
    if triggers is not None:
        x_train, y_train = triggers.append(x_train, y_train, preprocessor, *triggers.expand())
    log.info(
        "rows: %d (train %d, validation %d), %d features -> %d inputs; estimator %s",
        len(data.y),
        len(y_train),
        len(y_val),
        len(features),
        preprocessor.output_dim,
        kind.path,
    )
    started = time.perf_counter()
    fitted, extra = fit_estimator(
        estimator, kind, x_train, y_train, x_val, y_val, patience=cfg["early_stopping_patience"]
    )
    seconds = time.perf_counter() - started
    fitted_classes = getattr(fitted, "classes_", None) if data.task != "regression" else None
    if fitted_classes is not None and [label_key(c) for c in fitted_classes] != [
        str(i) for i in range(len(data.classes))
    ]:
        # Its probability columns follow its classes_: not the encoding the metrics and the saved
        # model read (0..K-1 in order).
        raise TrainingError(
            f"{kind.path} lists its classes as {[label_key(c) for c in fitted_classes][:10]} after fitting "
            f"on class indices 0..{len(data.classes) - 1}; its probability columns cannot be read"
        )
    predict = kind.output_function(fitted, data.task)
    train_sample = metric_sample(real_rows, cfg["seed"])
    train_output = predict(x_train[train_sample])
    val_output = (
        predict(x_val)
        if len(y_val)
        else np.zeros((0,) if data.task != "multiclass" else (0, len(data.classes)))
    )
    metrics = {"fit_seconds": round(seconds, 3), "estimator": kind.path, **extra}
    training = {
        "estimator": kind.path,
        "params": dict(cfg["params"]),
        "validation_fraction": cfg["validation_fraction"],
        "early_stopping_patience": cfg["early_stopping_patience"],
        **extra,
    }
    return Outcome(fitted, preprocessor, train_output, val_output, metrics, training, train_sample)
