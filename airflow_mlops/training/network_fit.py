"""The built-in networks' fit: encode the features, scale a regression target, pick the loss of
the task, seed, run the loop (:mod:`airflow_mlops.training.loop`) and measure the outputs."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from airflow_mlops.exceptions import DataError
from airflow_mlops.training.loop import (
    Losses,
    build_network,
    fit_network,
    fit_network_private,
    network_outputs,
    pick_device,
    use_bf16,
)
from airflow_mlops.training.networks import Preprocessor
from airflow_mlops.training.rows import Outcome, Target, TriggerRows, metric_sample

# The trainer's logger: the job's command line sets its level (see training/job.py).
log = logging.getLogger("airflow_mlops.training.trainer")


def train_network(
    cfg: Mapping[str, Any],
    data: Target,
    fit_df: pd.DataFrame,
    val_df: pd.DataFrame,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    features: list[str],
    triggers: TriggerRows | None = None,
) -> Outcome:
    """Fit ``mlp`` or ``cnn`` on the training rows, choosing the epoch on the validation rows.

    The watermark's ``triggers`` join the training rows after the input scaling, the target
    scaling and the class weights are learned from the real rows."""
    params = cfg["params"]
    device = pick_device(cfg["device"])
    bf16 = use_bf16(cfg["precision"], device)
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
    real_rows = len(x_train)
    if triggers is not None:
        # Repeated inversely to their class weight: with `balanced` weights on a rare positive
        # class, equal repeats would let the positive trigger rows outweigh the others.
        frame, y_extra = triggers.expand(_row_weights(data, triggers.y, weighting))
        if scaling is not None:
            y_extra = (y_extra - scaling["mean"]) / scaling["std"]
        x_train, y_train = triggers.append(x_train, y_train, preprocessor, frame, y_extra)
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
            network = build_network(cfg, x_train.shape[1], outputs).to(device)
            if cfg["privacy"] is not None:
                fit = fit_network_private(network, x_train, y_train, x_val, y_val, losses, device, seed, cfg)
            else:
                fit = fit_network(network, x_train, y_train, x_val, y_val, losses, device, seed, cfg, bf16)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
    model, history, best_epoch, stopped_early, extra = fit
    train_sample = metric_sample(real_rows, cfg["seed"])
    train_output = network_outputs(model, x_train[train_sample], device, data.task, scaling)
    val_output = network_outputs(model, x_val, device, data.task, scaling)
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
    return Outcome(
        model, preprocessor, train_output, val_output, metrics, training, train_sample, history, scaling
    )


def _row_weights(data: Target, y: np.ndarray, weighting: Mapping[str, Any]) -> np.ndarray | None:
    """Each row's weight in the loss (its class weight; None when every row weighs alike)."""
    if data.task == "binary":
        return np.where(y == 1, float(weighting.get("pos_weight", 1.0)), 1.0)
    if data.task == "multiclass":
        return np.asarray(weighting["class_weights"], dtype=np.float64)[y.astype(np.int64)]
    return None


def _losses(
    data: Target, y_train: np.ndarray, params: Mapping[str, Any], device: torch.device
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
        total, weights = self.parts(logits, y)
        return total * len(y) / weights.clamp_min(1e-12)

    def parts(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The weighted loss summed over the rows and the rows' summed weight: over chunks of a
        validation set, ``sum(losses) / sum(weights)`` is the weighted mean of the whole set
        (rescaling each chunk by its own weight first would not be)."""
        return self.loss(logits, y), self.weight[y].sum()
