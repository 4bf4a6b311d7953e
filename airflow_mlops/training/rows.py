"""The training rows: the encoded target, the validation split, the rows the training metric is
measured on, and what a model's fit returns to :func:`airflow_mlops.training.trainer.train`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.exceptions import DataError
from airflow_mlops.labels import label_key, positive_mask
from airflow_mlops.tasks import class_indices, class_labels, regression_target, resolve_task, sort_classes
from airflow_mlops.training.networks import Preprocessor

#: The training metric (``train_<metric>``, for the record: the validation metric is the one that
#: decides) is measured on at most this many rows.
METRIC_SAMPLE_ROWS = 20_000


@dataclass(frozen=True)
class Target:
    """The encoded target: bool→float 0/1 (binary), class indices (multiclass), floats."""

    task: str
    y: np.ndarray
    classes: list[str]  # canonical labels, sorted (classification)
    class_order: list[str] | None  # the label of each model output column


@dataclass
class Outcome:
    """What a model's fit returns: the model, its outputs on the split, metrics and the record."""

    model: Any
    preprocessor: Preprocessor
    train_output: np.ndarray  # on the rows of train_sample (the training metric's, at most a sample)
    val_output: np.ndarray
    metrics: dict[str, Any]
    training: dict[str, Any]
    train_sample: np.ndarray  # the training rows the training metric is measured on
    history: list[dict[str, Any]] | None = None
    target_scaling: dict[str, float] | None = None


def encode_target(series: pd.Series, cfg: Mapping[str, Any], column: str) -> Target:
    """The target column encoded for the task (the config's, else inferred from the column)."""
    task = resolve_task(cfg["task"], series, column=column)
    if task == "binary":
        mask = positive_mask(series, cfg["positive_label"], column=column)
        positive = label_key(cfg["positive_label"])
        negative = next(label_key(v) for v in series[~mask].head(1))
        return Target(task, mask.astype(np.float32), sort_classes([negative, positive]), [negative, positive])
    if task == "multiclass":
        classes = class_labels(series, column=column)
        if len(classes) < 3:
            raise DataError(
                f"target column {column!r} has {len(classes)} classes: that is a binary task, not multiclass"
            )
        return Target(task, class_indices(series, classes, column=column), classes, classes)
    return Target(task, regression_target(series, column=column), [], None)


def binary_target(series: pd.Series, positive_label: Any, target: str) -> np.ndarray:
    """The target as float32 0/1 (1 = ``positive_label``, the one rule in ``labels.py``).

    Raises DataError if not learnable: missing labels, one class, more than two classes, or a
    positive label that does not occur.
    """
    return positive_mask(series, positive_label, column=target).astype(np.float32)


def split_rows(
    y: np.ndarray, task: str, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, validation): by class for a classification, at random for a regression."""
    if task == "regression":
        if fraction <= 0:
            return np.arange(len(y)), np.arange(0)
        order = rng.permutation(len(y))
        k = min(max(round(len(y) * fraction), 1), len(y) - 1) if len(y) >= 2 else 0
        return np.sort(order[k:]), np.sort(order[:k])
    return stratified_split(y, fraction, rng)


def stratified_split(
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


def metric_sample(rows: int, seed: int) -> np.ndarray:
    """Row positions the training metric is measured on: all of them, or a seeded sample."""
    if rows <= METRIC_SAMPLE_ROWS:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, size=METRIC_SAMPLE_ROWS, replace=False))


@dataclass(frozen=True)
class TriggerRows:
    """The watermark's trigger rows (distinct), their target encoded like ``Target.y``, and how
    often each is repeated in training.

    They are appended to the training rows only: never to the validation rows (the epoch, the
    threshold and the calibration are chosen on real rows), never to the rows the feature scaling
    or the class weights are learned from.
    """

    frame: pd.DataFrame
    y: np.ndarray
    repeats: int

    @property
    def distinct(self) -> int:
        return len(self.y)

    def expand(self, row_weights: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray]:
        """The repeated rows and targets. With ``row_weights`` (each row's loss weight, e.g. its
        class weight) a row is repeated inversely to its weight, so every trigger row weighs
        alike in the loss: ``max(repeats * min(w), max(w)) / w`` times, at least once."""
        if row_weights is None:
            counts = np.full(self.distinct, self.repeats)
        else:
            w = np.asarray(row_weights, dtype=np.float64)
            effective = max(self.repeats * float(w.min()), float(w.max()))
            counts = np.maximum(1, np.round(effective / w)).astype(np.int64)
        index = np.repeat(np.arange(self.distinct), counts)
        return self.frame.iloc[index].reset_index(drop=True), self.y[index]

    def append(
        self,
        x_train: np.ndarray,
        y_train: np.ndarray,
        preprocessor: Preprocessor,
        frame: pd.DataFrame,
        y_extra: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``x_train`` and ``y_train`` with the expanded rows (:meth:`expand`, ``y_extra`` as the
        trainer encoded it) appended, encoded by ``preprocessor``; logged."""
        import logging

        x = np.concatenate([x_train, preprocessor.transform(frame)])
        y = np.concatenate([y_train, y_extra.astype(y_train.dtype)])
        logging.getLogger("airflow_mlops.training.trainer").info(
            "watermark: %d trigger rows x %d appended to the training rows", self.distinct, self.repeats
        )
        return x, y


def trigger_rows(
    triggers: pd.DataFrame, data: Target, target: str, features: list[str], repeats: int
) -> TriggerRows:
    """Encode the trigger table's target for ``data``'s task (repeated ``repeats`` times in training).

    :raises DataError: a feature or the target is missing, or a keyed class is not one of the
        training target's classes.
    """
    missing = [c for c in [*features, target] if c not in triggers.columns]
    if missing:
        raise DataError(f"the watermark's trigger rows lack column(s) {', '.join(map(repr, missing))}")
    if data.task == "binary":
        assert data.class_order is not None
        keys = np.asarray([label_key(v) for v in triggers[target]])
        unknown = sorted(set(keys) - set(data.class_order))
        if unknown:
            raise DataError(f"the watermark's trigger rows hold class(es) {unknown} the target does not have")
        y = (keys == data.class_order[1]).astype(np.float32)
    elif data.task == "multiclass":
        y = class_indices(triggers[target], data.classes, column=target, where="the watermark's trigger rows")
    else:
        y = regression_target(triggers[target], column=target)
    return TriggerRows(triggers[features].reset_index(drop=True), y, repeats)
