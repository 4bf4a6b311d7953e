"""The trainer entrypoint: tabular data in, a safetensors model directory out.

Runs as ``python -m airflow_mlops.training.trainer --train PATH --output DIR --config CONFIG``
in a subprocess of the Airflow worker, or in a Kubernetes pod that has neither Airflow nor
MLflow. It imports only the standard library, torch, numpy, pandas/pyarrow, safetensors and
:mod:`airflow_mlops.training.networks` (plus the standard-library-only exception hierarchy).

The config JSON holds::

    {"target": "is_fraud", "features": ["amount", "merchant"], "positive_label": 1,
     "categorical": ["merchant"],           # optional; default: object/string/category columns
     "model": "mlp",                        # mlp | cnn (cnn: params.image_shape is required)
     "params": {"epochs": 20, "lr": 0.001, "batch_size": 512, "hidden_units": [64, 32],
                "dropout": 0.1, "weight_decay": 0.0, "class_weight": "balanced",
                "image_shape": null, "conv_channels": [16, 32]},
     "seed": 42, "device": "auto",          # auto | cpu | cuda
     "precision": "auto",                   # auto (bf16 autocast on a bf16 GPU) | fp32 | bf16
     "privacy": null,                       # or {"epsilon": 3, "delta": 1e-5, "max_grad_norm": 1,
                                            #     "noise_multiplier": null}: DP-SGD (Opacus)
     "validation_fraction": 0.1,            # optional; 0 trains on everything, keeps the last epoch
     "early_stopping_patience": null,       # optional; stop after this many epochs without progress
     "threshold": {"rule": "best_f1"}}      # optional; the operating threshold's rule, chosen on
                                            # the validation split (see training/threshold.py)

Outputs in DIR: ``model.safetensors``, ``model_config.json`` (see
:func:`airflow_mlops.training.flavors.save_model_dir`; it holds the chosen ``threshold``) and
``metrics.json`` (with ``threshold``, ``val_precision`` and ``val_recall`` at it). They are written
into a temporary directory beside DIR and renamed into place, so a failed run leaves nothing
half-written. User errors (bad data, bad config) exit with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch

from airflow_mlops.exceptions import DataError, MLOpsError, PrivacyBudgetError, TrainingError
from airflow_mlops.labels import label_key, positive_mask
from airflow_mlops.metrics import PRIMARY_METRIC, compute_metrics
from airflow_mlops.tasks import (
    TASKS,
    class_indices,
    class_labels,
    regression_target,
    resolve_task,
    sort_classes,
)
from airflow_mlops.tasks import describe as describe_task
from airflow_mlops.training.flavors import save_model_dir
from airflow_mlops.training.networks import CNN, MLP, Preprocessor
from airflow_mlops.training.threshold import DEFAULT_RULE, check_rule, choose_threshold

log = logging.getLogger("airflow_mlops.training.trainer")

METRICS_FILE = "metrics.json"
EXIT_USER_ERROR = 2

# Defaults match airflow_mlops.spec.models.TrainingParams (not imported: it needs pydantic).
DEFAULT_PARAMS: dict[str, Any] = {
    "epochs": 20,
    "lr": 1e-3,
    "batch_size": 512,
    "hidden_units": [64, 32],
    "dropout": 0.1,
    "weight_decay": 0.0,
    "class_weight": "balanced",
    "image_shape": None,
    "conv_channels": [16, 32],
}
PRIVACY_DEFAULTS: dict[str, Any] = {"delta": 1e-5, "max_grad_norm": 1.0, "noise_multiplier": None}
BUILTIN_MODELS = ("mlp", "cnn")
_CONFIG_KEYS = {
    "model",
    "task",
    "precision",
    "privacy",
    "target",
    "features",
    "positive_label",
    "categorical",
    "params",
    "seed",
    "device",
    "validation_fraction",
    "early_stopping_patience",
    "threshold",
}
_EVAL_CHUNK = 65536


def train(train_df: pd.DataFrame, config: Mapping[str, Any], output_dir: str | Path) -> dict[str, Any]:
    """Train the configured model on ``train_df`` and write the model directory ``output_dir``.

    :param config: the trainer config (see the module docstring); unknown keys are rejected.
    :returns: the content of ``metrics.json``.
    :raises DataError: the data cannot be trained on (empty, no target, one class, non-numbers).
    :raises TrainingError: the config is invalid, CUDA was requested but is absent, or training
        diverged.
    """
    started = time.monotonic()
    cfg = _check_config(config)
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise TrainingError(f"output path {output_dir} exists and is not a directory")

    if len(train_df) == 0:
        raise DataError("the training data is empty (0 rows)")
    columns = [str(c) for c in train_df.columns]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise DataError(
            f"the training data has more than one column named {', '.join(map(repr, duplicated))}"
        )
    if list(train_df.columns) != columns:  # columns are read by name (a CSV or parquet table's are text)
        train_df = train_df.set_axis(columns, axis=1)
    target = cfg["target"]
    if target not in columns:
        raise DataError(
            f"target column {target!r} not found in the training data; its columns are: "
            + ", ".join(columns[:30])
        )
    features = cfg["features"] or [c for c in columns if c != target]
    if target in features:
        raise DataError(f"the target column {target!r} must not be listed in features")
    data = _target(train_df[target], cfg, target)
    log.info("task: %s", describe_task(data.task, data.classes, cfg["positive_label"]))
    if data.task == "binary":
        _check_threshold_split(cfg["threshold"], cfg["validation_fraction"])

    seed = cfg["seed"]
    rng = np.random.default_rng(seed)
    train_idx, val_idx = _split(data.y, data.task, cfg["validation_fraction"], rng)
    fit_df = train_df.iloc[train_idx]
    if cfg["model"] in BUILTIN_MODELS:
        outcome = _train_network(cfg, data, fit_df, train_df.iloc[val_idx], train_idx, val_idx, features)
    else:
        outcome = _train_estimator(cfg, data, fit_df, train_df.iloc[val_idx], train_idx, val_idx, features)
    metrics = {
        **outcome.metrics,
        "task": data.task,
        "rows": len(data.y),
        "train_rows": len(train_idx),
        "validation_rows": len(val_idx),
        "model": cfg["model"],
        "seed": seed,
    }
    if data.task == "binary":
        metrics["positive_rows"] = int(data.y.sum())
    elif data.task == "multiclass":
        metrics["classes"] = len(data.classes)
    primary = PRIMARY_METRIC[data.task]
    threshold = None
    if data.task == "binary":
        threshold = choose_threshold(data.y[val_idx], outcome.val_output, cfg["threshold"])
        at_threshold = threshold["validation"] or {}
        metrics.update(
            threshold=threshold["value"],
            threshold_rule=threshold["rule"],
            val_precision=at_threshold.get("precision"),
            val_recall=at_threshold.get("recall"),
        )
    metrics[f"train_{primary}"] = _metric_or_none(
        data.task, primary, data.y[train_idx][outcome.train_sample], outcome.train_output
    )
    metrics[f"val_{primary}"] = (
        _metric_or_none(data.task, primary, data.y[val_idx], outcome.val_output) if len(val_idx) else None
    )
    if outcome.history is not None:
        metrics["history"] = outcome.history
    metrics["duration_seconds"] = round(time.monotonic() - started, 3)

    def write(directory: Path) -> None:
        save_model_dir(
            directory,
            outcome.model,
            task=data.task,
            target=target,
            features=features,
            class_order=data.class_order,
            positive_label=cfg["positive_label"] if data.task == "binary" else None,
            preprocessor=outcome.preprocessor,
            seed=seed,
            training=outcome.training,
            threshold_choice=threshold,
            target_scaling=outcome.target_scaling,
        )

    _publish(output_dir, write, metrics)
    log.info(
        "done in %.1fs: %s train %s %s, validation %s%s -> %s",
        metrics["duration_seconds"],
        cfg["model"],
        primary,
        _fmt_optional(metrics[f"train_{primary}"]),
        _fmt_optional(metrics[f"val_{primary}"]),
        f"; threshold {threshold['value']:.4g} ({threshold['rule']})" if threshold else "",
        output_dir,
    )
    return metrics


@dataclass(frozen=True)
class _Target:
    """The encoded target: bool→float 0/1 (binary), class indices (multiclass), floats."""

    task: str
    y: np.ndarray
    classes: list[str]  # canonical labels, sorted (classification)
    class_order: list[str] | None  # the label of each model output column


@dataclass
class _Outcome:
    model: Any
    preprocessor: Preprocessor
    train_output: np.ndarray  # on the rows of train_sample (the training metric's, at most a sample)
    val_output: np.ndarray
    metrics: dict[str, Any]
    training: dict[str, Any]
    train_sample: np.ndarray  # the training rows the training metric is measured on
    history: list[dict[str, Any]] | None = None
    target_scaling: dict[str, float] | None = None


def _target(series: pd.Series, cfg: Mapping[str, Any], column: str) -> _Target:
    task = resolve_task(cfg["task"], series, column=column)
    if task == "binary":
        mask = positive_mask(series, cfg["positive_label"], column=column)
        positive = label_key(cfg["positive_label"])
        negative = next(label_key(v) for v in series[~mask].head(1))
        return _Target(
            task, mask.astype(np.float32), sort_classes([negative, positive]), [negative, positive]
        )
    if task == "multiclass":
        classes = class_labels(series, column=column)
        if len(classes) < 3:
            raise DataError(
                f"target column {column!r} has {len(classes)} classes: that is a binary task, not multiclass"
            )
        return _Target(task, class_indices(series, classes, column=column), classes, classes)
    return _Target(task, regression_target(series, column=column), [], None)


def _split(
    y: np.ndarray, task: str, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    if task == "regression":
        if fraction <= 0:
            return np.arange(len(y)), np.arange(0)
        order = rng.permutation(len(y))
        k = min(max(round(len(y) * fraction), 1), len(y) - 1) if len(y) >= 2 else 0
        return np.sort(order[k:]), np.sort(order[:k])
    return _stratified_split(y, fraction, rng)


#: The training metric (``train_<metric>``, for the record: the validation metric is the one that
#: decides) is measured on at most this many rows.
METRIC_SAMPLE_ROWS = 20_000


def _metric_sample(rows: int, seed: int) -> np.ndarray:
    """Row positions the training metric is measured on: all of them, or a seeded sample."""
    if rows <= METRIC_SAMPLE_ROWS:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, size=METRIC_SAMPLE_ROWS, replace=False))


def _metric_or_none(task: str, name: str, y: np.ndarray, output: np.ndarray) -> float | None:
    if len(y) == 0:
        return None
    value = compute_metrics(task, y, output, names=[name])[name]
    return value if math.isfinite(value) else None


def _train_network(
    cfg: Mapping[str, Any],
    data: _Target,
    fit_df: pd.DataFrame,
    val_df: pd.DataFrame,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    features: list[str],
) -> _Outcome:
    params = cfg["params"]
    device = _pick_device(cfg["device"])
    bf16 = _use_bf16(cfg["precision"], device)
    log.info(
        "device: %s%s, precision %s",
        device,
        f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "",
        "bf16 autocast" if bf16 else "fp32",
    )
    preprocessor = Preprocessor.fit(fit_df, features, cfg["categorical"])
    x_train = preprocessor.transform(fit_df)
    x_val = preprocessor.transform(val_df)
    y_train, y_val = data.y[train_idx], data.y[val_idx]
    if cfg["model"] == "cnn" and preprocessor.output_dim != math.prod(params["image_shape"]):
        raise DataError(
            f"params.image_shape {params['image_shape']} holds {math.prod(params['image_shape'])} "
            f"values per image but the {len(features)} feature column(s) encode to "
            f"{preprocessor.output_dim}; list exactly one numeric column per pixel value"
        )
    log.info(
        "rows: %d (train %d, validation %d), %d features -> %d inputs",
        len(data.y),
        len(y_train),
        len(y_val),
        len(features),
        preprocessor.output_dim,
    )
    scaling = None
    if data.task == "regression":
        mean, std = float(y_train.mean()), float(y_train.std())
        scaling = {"mean": mean, "std": std if math.isfinite(std) and std > 1e-12 else 1.0}
        y_train = ((y_train - scaling["mean"]) / scaling["std"]).astype(np.float32)
        y_val = ((y_val - scaling["mean"]) / scaling["std"]).astype(np.float32)
    losses, weighting = _losses(data, y_train, params, device)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    if device.type == "cuda":
        # cuBLAS needs this for reproducible matmuls; it must be set before its first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    outputs = len(data.classes) if data.task == "multiclass" else 1
    seed = cfg["seed"]
    try:
        # fork_rng keeps the caller's global RNG state untouched when train() runs in-process.
        with torch.random.fork_rng(devices=fork_devices):
            torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
            torch.manual_seed(seed)
            network = _build_network(cfg, x_train.shape[1], outputs).to(device)
            if cfg["privacy"] is not None:
                fit = _fit_private(network, x_train, y_train, x_val, y_val, losses, device, seed, cfg)
            else:
                fit = _fit(network, x_train, y_train, x_val, y_val, losses, device, seed, cfg, bf16)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
    model, history, best_epoch, stopped_early, extra = fit
    train_sample = _metric_sample(len(x_train), cfg["seed"])
    train_output = _outputs(model, x_train[train_sample], device, data.task, scaling)
    val_output = _outputs(model, x_val, device, data.task, scaling)
    best = history[best_epoch - 1]
    metrics: dict[str, Any] = {
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "stopped_early": stopped_early,
        "best_train_loss": best["train_loss"],
        "best_val_loss": best["val_loss"],
        **weighting,
        "device": device.type,
        "precision": "bf16" if bf16 and cfg["privacy"] is None else "fp32",
        **extra,
    }
    training = {
        "params": params,
        "validation_fraction": cfg["validation_fraction"],
        "early_stopping_patience": cfg["early_stopping_patience"],
        "best_epoch": best_epoch,
        **({"privacy": {k: extra[k] for k in extra if k.startswith("dp_")}} if cfg["privacy"] else {}),
    }
    return _Outcome(
        model, preprocessor, train_output, val_output, metrics, training, train_sample, history, scaling
    )


Losses = tuple[torch.nn.Module, torch.nn.Module]


def _losses(
    data: _Target, y_train: np.ndarray, params: Mapping[str, Any], device: torch.device
) -> tuple[Losses, dict[str, Any]]:
    """The loss (mean, sum) of the task: weighted BCE, weighted cross-entropy, MSE."""
    balanced = params["class_weight"] == "balanced"
    if data.task == "binary":
        n_pos = int(y_train.sum())
        pos_weight = (len(y_train) - n_pos) / n_pos if balanced and n_pos else 1.0
        weight = torch.tensor(pos_weight, dtype=torch.float32, device=device)
        return (
            torch.nn.BCEWithLogitsLoss(pos_weight=weight),
            torch.nn.BCEWithLogitsLoss(pos_weight=weight, reduction="sum"),
        ), {"pos_weight": pos_weight}
    if data.task == "multiclass":
        counts = np.bincount(y_train.astype(np.int64), minlength=len(data.classes)).astype(np.float64)
        weights = (
            np.where(counts > 0, len(y_train) / (len(counts) * np.maximum(counts, 1)), 0.0)
            if balanced
            else np.ones(len(counts))
        )
        w = torch.tensor(weights, dtype=torch.float32, device=device)
        return (
            torch.nn.CrossEntropyLoss(weight=w),
            _WeightedSumCrossEntropy(w),
        ), {"class_weights": [round(float(v), 6) for v in weights]}
    return (torch.nn.MSELoss(), torch.nn.MSELoss(reduction="sum")), {}


class _WeightedSumCrossEntropy(torch.nn.Module):
    """Cross-entropy summed so that sum / rows is the weighted mean per row (as in training)."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.loss = torch.nn.CrossEntropyLoss(weight=weight, reduction="sum")
        self.weight: torch.Tensor
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = self.loss(logits, y)
        return total * len(y) / self.weight[y].sum().clamp_min(1e-12)


def _train_estimator(
    cfg: Mapping[str, Any],
    data: _Target,
    fit_df: pd.DataFrame,
    val_df: pd.DataFrame,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    features: list[str],
) -> _Outcome:
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
    train_sample = _metric_sample(len(x_train), cfg["seed"])
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
    return _Outcome(fitted, preprocessor, train_output, val_output, metrics, training, train_sample)


def main(argv: list[str] | None = None) -> int:
    """The command line. Returns the exit status (0, or 2 for a user error)."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_mlops.training.trainer",
        description="Train the airflow-mlops tabular MLP and write a safetensors model directory.",
    )
    parser.add_argument("--train", required=True, help="training data (.parquet or .csv)")
    parser.add_argument("--output", required=True, help="model directory to create (replaced if present)")
    parser.add_argument("--config", required=True, help="trainer config JSON file")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
        )
    log.setLevel(logging.INFO)
    try:
        config = _read_config(Path(args.config))
        df = _read_table(Path(args.train))
        train(df, config, args.output)
    except MLOpsError as exc:
        message = " ".join(str(exc).split())
        print(f"trainer: error: {type(exc).__name__}: {message}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    return 0


# --- config and input -------------------------------------------------------------------------


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TrainingError(f"trainer config file not found: {path}")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainingError(f"trainer config {path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise TrainingError(f"trainer config {path} must hold a JSON object")
    return config


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"training data file not found: {path}")
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow and pandas raise many types; all mean "unreadable"
        raise DataError(f"cannot read training data {path}: {type(exc).__name__}: {exc}") from exc


def _check_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the config and fill in defaults. Raises TrainingError naming the bad key."""
    if not isinstance(config, Mapping):
        raise TrainingError("the trainer config must be a JSON object")
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise TrainingError(
            f"unknown trainer config key(s): {', '.join(unknown)}; known keys: {', '.join(sorted(_CONFIG_KEYS))}"
        )

    def bad(key: str, expected: str) -> TrainingError:
        return TrainingError(f"trainer config: {key} must be {expected}, got {config_value(key)!r}")

    def config_value(key: str) -> Any:
        node: Any = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        return node

    common = _common_config(config, bad)
    device = config.get("device", "auto")
    if device not in ("auto", "cpu", "cuda"):
        raise bad("device", "one of auto, cpu, cuda")

    raw_params = config.get("params") or {}
    if not isinstance(raw_params, Mapping):
        raise bad("params", "an object")
    model = config.get("model", "mlp")
    if not isinstance(model, str) or not model:
        raise bad("model", "mlp, cnn, xgboost, lightgbm or the import path of an estimator class")
    task = config.get("task")
    if task is not None and task not in TASKS:
        raise bad("task", f"one of {', '.join(TASKS)} or null (inferred from the target)")
    if model not in BUILTIN_MODELS:
        return _check_estimator_config(config, model, task, dict(raw_params), bad)
    unknown = sorted(set(raw_params) - set(DEFAULT_PARAMS))
    if unknown:
        raise TrainingError(
            f"unknown trainer params: {', '.join(unknown)}; known: {', '.join(sorted(DEFAULT_PARAMS))}"
        )
    params = {**DEFAULT_PARAMS, **raw_params}
    if not _is_int(params["epochs"]) or params["epochs"] < 1:
        raise bad("params.epochs", "a positive integer")
    if not _is_number(params["lr"]) or not params["lr"] > 0:
        raise bad("params.lr", "a positive number")
    if not _is_int(params["batch_size"]) or params["batch_size"] < 1:
        raise bad("params.batch_size", "a positive integer")
    hidden = params["hidden_units"]
    if not isinstance(hidden, list) or not hidden or not all(_is_int(u) and u >= 1 for u in hidden):
        raise bad("params.hidden_units", "a non-empty list of positive integers")
    if not _is_number(params["dropout"]) or not 0 <= params["dropout"] < 1:
        raise bad("params.dropout", "a number in [0, 1)")
    if not _is_number(params["weight_decay"]) or params["weight_decay"] < 0:
        raise bad("params.weight_decay", "a non-negative number")
    if params["class_weight"] not in ("balanced", "none"):
        raise bad("params.class_weight", "balanced or none")
    shape = params["image_shape"]
    if shape is not None and (
        not isinstance(shape, list) or len(shape) != 3 or not all(_is_int(d) and d >= 1 for d in shape)
    ):
        raise bad("params.image_shape", "[channels, height, width] (positive integers)")
    if model == "cnn" and shape is None:
        raise bad("params.image_shape", "set for model cnn: [channels, height, width]")
    conv = params["conv_channels"]
    if not isinstance(conv, list) or not conv or not all(_is_int(c) and c >= 1 for c in conv):
        raise bad("params.conv_channels", "a non-empty list of positive integers")
    precision = config.get("precision", "auto")
    if precision not in ("auto", "fp32", "bf16"):
        raise bad("precision", "one of auto, fp32, bf16")
    privacy = _check_privacy(config.get("privacy"), bad)
    if privacy is not None and common["early_stopping_patience"] is not None:
        raise TrainingError(
            "trainer config: early_stopping_patience cannot be combined with privacy (DP-SGD keeps the "
            "last epoch: choosing an epoch by validation loss would spend privacy unaccounted)"
        )
    return {
        **common,
        "model": model,
        "task": task,
        "precision": precision,
        "privacy": privacy,
        "device": device,
        "params": params,
    }


def _common_config(config: Mapping[str, Any], bad: Any) -> dict[str, Any]:
    """The keys every model reads (target, features, labels, seed, split)."""
    target = config.get("target")
    if not isinstance(target, str) or not target:
        raise bad("target", "the name of the label column")
    features = config.get("features")
    if features is not None and (
        not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features)
    ):
        raise bad("features", "a non-empty list of column names (or null for every column but the target)")
    categorical = config.get("categorical")
    if categorical is not None and (
        not isinstance(categorical, list) or not all(isinstance(c, str) for c in categorical)
    ):
        raise bad("categorical", "a list of column names (or null to infer)")
    positive_label = config.get("positive_label", 1)
    if not isinstance(positive_label, (int, str, bool)):
        raise bad("positive_label", "an integer, string or boolean label value")
    seed = config.get("seed", 42)
    if not _is_int(seed):
        raise bad("seed", "an integer")
    fraction = config.get("validation_fraction", 0.1)
    if not _is_number(fraction) or not 0 <= fraction < 0.9:
        raise bad("validation_fraction", "a number in [0, 0.9)")
    patience = config.get("early_stopping_patience")
    if patience is not None and (not _is_int(patience) or patience < 1):
        raise bad("early_stopping_patience", "a positive integer or null")
    threshold = check_rule(
        DEFAULT_RULE if config.get("threshold") is None else config["threshold"],
        where="trainer config: threshold",
    )
    if config.get("task") == "binary":  # else checked once the target tells the task
        _check_threshold_split(threshold, fraction)
    return {
        "target": target,
        "features": list(features) if features else None,
        "categorical": list(categorical) if categorical is not None else None,
        "positive_label": positive_label,
        "seed": seed,
        "validation_fraction": float(fraction),
        "early_stopping_patience": patience,
        "threshold": threshold,
    }


def _check_threshold_split(threshold: Mapping[str, Any], fraction: float) -> None:
    """A binary model's threshold rule needs validation rows to choose on."""
    if fraction == 0 and threshold["rule"] != "fixed":
        raise TrainingError(
            f"trainer config: threshold rule {threshold['rule']} chooses the threshold on the validation "
            "split, but validation_fraction is 0; keep a validation split or use a fixed threshold "
            "(evaluation.threshold: <number> in the spec)"
        )


def _check_estimator_config(
    config: Mapping[str, Any], model: str, task: str | None, params: dict[str, Any], bad: Any
) -> dict[str, Any]:
    """The config of an estimator model (xgboost, lightgbm, a scikit-learn class): its params go
    to the estimator's constructor, which checks them when the estimator is built."""
    from airflow_mlops.training.estimators import check_model_name

    check_model_name(model)
    for key in ("privacy",):
        if config.get(key) is not None:
            raise TrainingError(f"trainer config: {key} applies to the built-in torch models, not {model}")
    if config.get("device", "auto") not in ("auto", "cpu", "cuda"):
        raise bad("device", "one of auto, cpu, cuda")
    return {
        **_common_config(config, bad),
        "model": model,
        "task": task,
        "params": params,
        "privacy": None,
        "device": config.get("device", "auto"),
        "precision": config.get("precision", "auto"),
    }


def _check_privacy(raw: Any, bad: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise bad("privacy", "an object with epsilon (and optionally delta, max_grad_norm, noise_multiplier)")
    unknown = sorted(set(raw) - {"epsilon", *PRIVACY_DEFAULTS})
    if unknown:
        raise TrainingError(
            f"unknown trainer privacy key(s): {', '.join(unknown)}; known: epsilon, {', '.join(PRIVACY_DEFAULTS)}"
        )
    privacy = {**PRIVACY_DEFAULTS, **raw}
    if not _is_number(privacy.get("epsilon")) or not privacy["epsilon"] > 0:
        raise bad("privacy.epsilon", "a positive number (the privacy budget)")
    if not _is_number(privacy["delta"]) or not 0 < privacy["delta"] < 1:
        raise bad("privacy.delta", "a number in (0, 1)")
    if not _is_number(privacy["max_grad_norm"]) or not privacy["max_grad_norm"] > 0:
        raise bad("privacy.max_grad_norm", "a positive number")
    noise = privacy["noise_multiplier"]
    if noise is not None and (not _is_number(noise) or not noise > 0):
        raise bad("privacy.noise_multiplier", "a positive number or null")
    return {k: float(v) if v is not None else None for k, v in privacy.items()}


def _binary_target(series: pd.Series, positive_label: Any, target: str) -> np.ndarray:
    """The target as float32 0/1 (1 = ``positive_label``, the one rule in ``data/labels.py``).

    Raises DataError if not learnable: missing labels, one class, more than two classes, or a
    positive label that does not occur.
    """
    return positive_mask(series, positive_label, column=target).astype(np.float32)


def _pick_device(requested: str) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainingError(
                "device 'cuda' was requested but CUDA is not available here; use device 'auto' or 'cpu'"
            )
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _stratified_split(
    y: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, validation), the validation share taken from each class alike.

    Every class keeps at least one training row; a class of one row stays in training.
    """
    if fraction <= 0:
        return np.arange(len(y)), np.arange(0)
    val_parts = []
    for cls in np.sort(pd.unique(y)):  # hashing, not a sort of every row
        idx = rng.permutation(np.flatnonzero(y == cls))
        k = min(max(round(len(idx) * fraction), 1), len(idx) - 1) if len(idx) >= 2 else 0
        val_parts.append(idx[:k])
    val_idx = np.sort(np.concatenate(val_parts))
    in_val = np.zeros(len(y), dtype=bool)
    in_val[val_idx] = True
    train_idx = np.flatnonzero(~in_val)
    return train_idx, val_idx


# --- training -----------------------------------------------------------------------------------


def _build_network(cfg: Mapping[str, Any], input_dim: int, outputs: int = 1) -> MLP | CNN:
    params = cfg["params"]
    if cfg["model"] == "cnn":
        return CNN(
            params["image_shape"], params["conv_channels"], params["hidden_units"], params["dropout"], outputs
        )
    return MLP(input_dim, params["hidden_units"], params["dropout"], outputs)


def _use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast: always for ``bf16``; for ``auto`` on a GPU that supports it."""
    if precision == "bf16":
        return True
    return precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array on ``device``; through pinned memory (an asynchronous copy) for a GPU."""
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


FitOutcome = tuple[MLP | CNN, list[dict[str, Any]], int, bool, dict[str, Any]]


def _fit(
    model: MLP | CNN,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    losses: Losses,
    device: torch.device,
    seed: int,
    cfg: Mapping[str, Any],
    bf16: bool,
) -> FitOutcome:
    """The epoch loop. Returns the best model (by validation loss), history, best epoch, stopped
    early, and extra metrics (throughput)."""
    params = cfg["params"]
    loss_fn, sum_loss_fn = losses
    optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    shuffle = torch.Generator().manual_seed(seed)

    # The whole (small) training set moves to the device once, through pinned memory on a GPU;
    # batches are then index gathers on the device, with no host round trip per step.
    xt, yt = _to_device(x_train, device), _to_device(y_train, device)
    xv, yv = _to_device(x_val, device), _to_device(y_val, device)
    has_val = len(y_val) > 0
    n, batch_size, epochs = len(yt), params["batch_size"], params["epochs"]
    patience = cfg["early_stopping_patience"]

    history: list[dict[str, Any]] = []
    best_loss, best_epoch, best_state = math.inf, 0, None
    stopped_early = False
    train_seconds = 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        started = time.perf_counter()
        order = torch.randperm(n, generator=shuffle).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(xt[idx]).float(), yt[idx])
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        train_loss = float(total.item()) / n  # .item() waits for the device: the timing is honest
        seconds = time.perf_counter() - started
        train_seconds += seconds
        _check_finite(train_loss, epoch)
        val_loss = _mean_loss(model, xv, yv, sum_loss_fn) if has_val else None
        score = val_loss if val_loss is not None else train_loss
        improved = score < best_loss if has_val else True  # without validation keep the last epoch
        if improved:
            best_loss, best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        _log_epoch(epoch, epochs, train_loss, val_loss, n / seconds, improved)
        if patience is not None and has_val and epoch - best_epoch >= patience:
            log.info("early stop: no validation improvement for %d epoch(s)", patience)
            stopped_early = True
            break
    assert best_state is not None  # epochs >= 1 and the first epoch always improves
    model.load_state_dict(best_state)
    model.eval()
    extra = {"samples_per_second": round(n * len(history) / train_seconds, 1)}
    return model, history, best_epoch, stopped_early, extra


def _fit_private(
    model: MLP | CNN,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    losses: Losses,
    device: torch.device,
    seed: int,
    cfg: Mapping[str, Any],
) -> FitOutcome:
    """DP-SGD with Opacus: per-sample clipping, Gaussian noise, Poisson sampling, RDP accounting.

    The budget is enforced before any step: with a given noise multiplier, the epsilon the whole
    run would spend is computed first and a run above ``privacy.epsilon`` fails; without one, Opacus
    picks the smallest noise that meets the budget. The spent epsilon is logged after every epoch
    and checked again at the end. The last epoch is kept (no selection on validation loss).
    """
    try:
        from opacus import PrivacyEngine
        from opacus.accountants import RDPAccountant
    except ImportError as exc:
        raise TrainingError(
            "training.privacy needs Opacus, which is not installed here: pip install 'airflow-mlops[dp]' "
            "(in the trainer image too)"
        ) from exc
    from torch.utils.data import DataLoader, TensorDataset

    params, privacy = cfg["params"], cfg["privacy"]
    budget, delta = privacy["epsilon"], privacy["delta"]
    n, batch_size, epochs = len(y_train), params["batch_size"], params["epochs"]
    if delta >= 1.0 / n:
        raise TrainingError(
            f"privacy.delta {delta:g} is not below 1 / training rows (1/{n} = {1.0 / n:.2g}): such a delta "
            "allows leaking a whole row; lower training.privacy.delta"
        )
    loss_fn, sum_loss_fn = losses
    optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    dataset = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=device.type == "cuda",
    )
    engine = PrivacyEngine(accountant="rdp")
    sample_rate = 1.0 / len(loader)
    noise = privacy["noise_multiplier"]
    if noise is None:
        model, optimizer, loader = engine.make_private_with_epsilon(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            target_epsilon=budget,
            target_delta=delta,
            epochs=epochs,
            max_grad_norm=privacy["max_grad_norm"],
        )
        noise = float(optimizer.noise_multiplier)
    else:
        planned = RDPAccountant()
        planned.history = [(noise, sample_rate, epochs * len(loader))]
        expected = float(planned.get_epsilon(delta))
        if expected > budget:
            raise PrivacyBudgetError(
                f"DP-SGD would spend epsilon {expected:.3f} (delta {delta:g}) over {epochs} epochs with "
                f"noise_multiplier {noise:g}, above the budget training.privacy.epsilon = {budget:g}; "
                "raise noise_multiplier, lower epochs, raise batch_size, or remove noise_multiplier to "
                "let the trainer pick the noise for the budget"
            )
        model, optimizer, loader = engine.make_private(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=noise,
            max_grad_norm=privacy["max_grad_norm"],
        )
    log.info(
        "DP-SGD: budget epsilon %.3f, delta %g, noise multiplier %.4f, clipping norm %g, sample rate %.5f",
        budget,
        delta,
        noise,
        privacy["max_grad_norm"],
        sample_rate,
    )
    unwrapped = cast("MLP | CNN", model._module)  # the network inside Opacus' GradSampleModule
    xv, yv = _to_device(x_val, device), _to_device(y_val, device)
    has_val = len(y_val) > 0
    history: list[dict[str, Any]] = []
    train_seconds, seen, epsilon = 0.0, 0, 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        started = time.perf_counter()
        total, count = 0.0, 0
        for xb, yb in loader:
            if len(yb) == 0:  # Poisson sampling can draw an empty batch
                continue
            xb = xb.to(device, non_blocking=True)
            yb = yb.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(yb)
            count += len(yb)
        seconds = time.perf_counter() - started
        train_seconds += seconds
        seen += count
        train_loss = total / max(count, 1)
        _check_finite(train_loss, epoch)
        epsilon = float(engine.get_epsilon(delta))
        val_loss = _mean_loss(unwrapped, xv, yv, sum_loss_fn) if has_val else None
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "epsilon": epsilon})
        _log_epoch(epoch, epochs, train_loss, val_loss, count / seconds, True, epsilon)
    if epsilon > budget + 1e-9:  # the accountant disagrees with the plan: never ship such a model
        raise PrivacyBudgetError(
            f"DP-SGD spent epsilon {epsilon:.3f}, above the budget training.privacy.epsilon = {budget:g}"
        )
    trained = unwrapped
    trained.eval()
    extra = {
        "samples_per_second": round(seen / train_seconds, 1),
        "dp_epsilon": epsilon,
        "dp_epsilon_budget": budget,
        "dp_delta": delta,
        "dp_noise_multiplier": noise,
        "dp_max_grad_norm": privacy["max_grad_norm"],
        "dp_accountant": "rdp",
    }
    log.info("DP-SGD: spent epsilon %.3f of the budget %.3f (delta %g)", epsilon, budget, delta)
    return trained, history, len(history), False, extra


def _check_finite(train_loss: float, epoch: int) -> None:
    if not math.isfinite(train_loss):
        raise TrainingError(
            f"training diverged at epoch {epoch} (loss is {train_loss}); lower params.lr or check the data"
        )


def _log_epoch(
    epoch: int,
    epochs: int,
    train_loss: float,
    val_loss: float | None,
    samples_per_second: float,
    improved: bool,
    epsilon: float | None = None,
) -> None:
    log.info(
        "epoch %d/%d train_loss=%.5f val_loss=%s%s %.0f samples/s%s",
        epoch,
        epochs,
        train_loss,
        "n/a" if val_loss is None else f"{val_loss:.5f}",
        "" if epsilon is None else f" epsilon={epsilon:.3f}",
        samples_per_second,
        " *" if improved else "",
    )


def _mean_loss(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, sum_loss_fn: torch.nn.Module
) -> float:
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(y), _EVAL_CHUNK):
            total += float(sum_loss_fn(model(x[start : start + _EVAL_CHUNK]), y[start : start + _EVAL_CHUNK]))
    value = total / len(y)
    if not math.isfinite(value):
        raise TrainingError("the validation loss is not finite; lower params.lr or check the data")
    return value


def _outputs(
    model: torch.nn.Module,
    x: np.ndarray,
    device: torch.device,
    task: str,
    scaling: Mapping[str, float] | None,
) -> np.ndarray:
    """The task's output (see :mod:`airflow_mlops.metrics`) of the trained network for ``x``."""
    model.eval()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(x), _EVAL_CHUNK):
            out = model(torch.from_numpy(x[start : start + _EVAL_CHUNK]).to(device)).float()
            if task == "binary":
                out = torch.sigmoid(out)
            elif task == "multiclass":
                out = torch.softmax(out, dim=-1)
            chunks.append(out.to("cpu", torch.float64).numpy())
    if not chunks:
        return np.zeros((0, model.outputs) if task == "multiclass" else (0,), dtype=np.float64)  # type: ignore[arg-type]
    values = np.concatenate(chunks)
    if scaling is not None:
        values = scaling["mean"] + scaling["std"] * values
    return values


# --- output -------------------------------------------------------------------------------------


def _publish(output_dir: Path, write: Callable[[Path], None], metrics: dict[str, Any]) -> None:
    """Write the model (``write``) and ``metrics.json`` into a temp dir beside ``output_dir``,
    then rename it into place."""
    parent = output_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=parent))
    try:
        write(tmp)
        (tmp / METRICS_FILE).write_text(json.dumps(_json_safe(metrics), indent=2, allow_nan=False) + "\n")
        if output_dir.exists():
            # A retried task replaces its earlier output; the old tree is moved aside first so
            # the directory always holds either the old or the new model, complete.
            old = parent / f".{output_dir.name}.old-{uuid.uuid4().hex}"
            os.replace(output_dir, old)
            os.replace(tmp, output_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _fmt_optional(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _run_and_exit(entry: Callable[[], int] | None = None) -> None:
    """Run :func:`main` and leave with its status, skipping the interpreter's native teardown.

    With torch and pyarrow loaded, the C++ destructors of their thread pools at interpreter exit
    now and then abort the process ("terminate called without an active exception", SIGABRT),
    which turns a clean exit status into -6. Everything the trainer writes is closed by then, so
    it flushes its streams and logs and leaves with ``os._exit``.
    """
    import traceback

    try:
        status = (entry or main)()
    except SystemExit as exc:  # argparse: --help, usage errors
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        status = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    _run_and_exit()
