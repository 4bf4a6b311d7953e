"""The training stage's preparation: the task settled, the accepted rows split into train and
holdout, and the trainer's config (see :mod:`airflow_mlops.training.config`).

No Airflow: DataFrames in, DataFrames and a dict out; pandas is imported by the callers' frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_mlops.exceptions import DataError

BUILTIN_NETWORKS = ("mlp", "cnn")


@dataclass(frozen=True)
class PreparedSplit:
    """The rows split for training: ``train`` and ``holdout`` frames, the features, the task, and
    whether the task was inferred from the target (the spec set none)."""

    train: Any
    holdout: Any
    features: list[str]
    task: str
    inferred: bool

    def frames(self) -> list[tuple[str, Any]]:
        """``[("train", train), ("holdout", holdout)]``."""
        return [("train", self.train), ("holdout", self.holdout)]


def split_for_training(
    frame: Any,
    *,
    target: str,
    features: Sequence[str] | None = None,
    task: str | None = None,
    holdout_fraction: float = 0.2,
    seed: int = 42,
) -> PreparedSplit:
    """Settle the task (``task``, else inferred from the target column), then split ``frame`` into
    train and holdout rows (by class, or by deciles of a regression target).

    :param features: the feature columns; default every column but the target.
    :raises DataError: the target column is missing.
    """
    from airflow_mlops.data.split import stratified_split
    from airflow_mlops.tasks import resolve_task

    chosen = list(features) if features else [c for c in map(str, frame.columns) if c != target]
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} is not in the data (columns: {', '.join(map(str, frame.columns))})"
        )
    settled = resolve_task(task, frame[target], column=target)
    train, holdout = stratified_split(
        frame, target=target, holdout_fraction=holdout_fraction, seed=seed, task=settled
    )
    return PreparedSplit(train=train, holdout=holdout, features=chosen, task=settled, inferred=not task)


def trainer_config(
    *,
    model: str,
    target: str,
    features: list[str],
    positive_label: Any,
    task: str | None,
    hyperparameters: Mapping[str, Any],
    seed: int,
    device: str,
    threshold: Mapping[str, Any],
    validation_fraction: float | None = None,
    early_stopping_patience: int | None = None,
    precision: str = "auto",
    privacy: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The trainer config of a job. The built-in trainer (networks and estimators; not your own
    ``package.module:fit``) also takes ``validation_fraction`` and ``early_stopping_patience``
    when set; the built-in networks (``mlp``, ``cnn``) the ``precision`` and ``privacy``."""
    config: dict[str, Any] = {
        "target": target,
        "features": features,
        "positive_label": positive_label,
        "task": task,
        "params": dict(hyperparameters),
        "seed": seed,
        "device": device,
        "threshold": dict(threshold),
    }
    if ":" not in model:  # the built-in trainer: networks and estimators
        if validation_fraction is not None:
            config["validation_fraction"] = validation_fraction
        if early_stopping_patience is not None:
            config["early_stopping_patience"] = early_stopping_patience
    if model in BUILTIN_NETWORKS:
        config["precision"] = precision
        if privacy is not None:
            config["privacy"] = dict(privacy)
    return config
