"""The training run in MLflow: the trained weights checked to be this run's, read and packaged
as an MLflow pyfunc model, and the run's params, metrics, tags and dataset inputs.

No Airflow: the functions take paths, refs and an MLflow client.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import ArtifactIntegrityError


def check_weights_location(reported: str, expected: str) -> None:
    """:raises ArtifactIntegrityError: the fit step reported weights elsewhere than where this
    run's training job writes them."""
    if reported.rstrip("/") != expected.rstrip("/"):
        raise ArtifactIntegrityError(
            f"the fit step reported weights at {reported}, but this run's training job writes "
            f"them to {expected}; refusing a model from elsewhere: re-run the training stage"
        )


def model_facts(config: Mapping[str, Any]) -> dict[str, str]:
    """The task, flavor and library of the trained model (run params an MLflow user filters on)."""
    framework = config.get("framework") or {}
    facts = {"task": str(config["task"]), "flavor": str(config["flavor"])}
    if framework.get("name"):
        facts["framework"] = f"{framework['name']}=={framework.get('version')}"
    return facts


@dataclass(frozen=True)
class TrainedModel:
    """What the trainer wrote beside the weights: its metrics (with the operating ``threshold`` of
    a binary model), the model's facts, and the threshold (None for other tasks)."""

    metrics: dict[str, Any]
    facts: dict[str, str]
    threshold: Any


def read_trained(weights_dir: Path) -> TrainedModel:
    """``metrics.json`` and ``model_config.json`` of a weights folder (JSON only: nothing loads)."""
    from airflow_mlops.training.flavors import read_config

    metrics = json.loads((weights_dir / "metrics.json").read_text())
    config = read_config(weights_dir)
    threshold = config.get("threshold")  # the operating threshold the trainer stored (binary)
    if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        metrics["threshold"] = float(threshold)
    return TrainedModel(metrics=metrics, facts=model_facts(config), threshold=threshold)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def log_training_run(
    client: Any,
    run_id: str,
    trained: TrainedModel,
    *,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
) -> None:
    """Log ``params`` (plus the operating threshold and the model's facts), the trainer's scalar
    metrics as ``train_<name>``, ``tags``, and the whole ``training/metrics.json``."""
    from airflow_mlops.registry.mlflow_registry import log_run_data

    log_run_data(
        client,
        run_id,
        params={
            **params,
            **({"operating_threshold": trained.threshold} if trained.threshold is not None else {}),
            **trained.facts,
        },
        metrics={f"train_{k}": float(v) for k, v in trained.metrics.items() if _number(v)},
        tags=dict(tags),
    )
    client.log_dict(run_id, trained.metrics, "training/metrics.json")


def reported_metrics(trained: TrainedModel) -> dict[str, Any]:
    """The trainer's metrics the package stage returns: scalars and texts, not the history."""
    return {k: v for k, v in trained.metrics.items() if isinstance(v, (int, float, str)) and k != "history"}
