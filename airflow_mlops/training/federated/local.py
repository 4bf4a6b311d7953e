"""A client's side of federated training, without Flower: its rows, its local epochs, its scores.

:mod:`.client_app` calls these inside a SuperNode. A client reads only its own rows:

- ``data: partitions``: partition ``partition-id`` of ``num-partitions`` (the SuperNode's
  ``--node-config``) of the run's training table, read through the job's artifact reference and
  checked against its sha256 (one machine, or a test of the federation);
- ``data: node``: the table at the SuperNode's own ``data-path`` (``--node-config
  "data-path=/data/fraud.parquet"``): the rows never leave the node.

Each client keeps ``validation_fraction`` of its rows (seeded by the run's seed and its partition)
for the evaluation rounds and the threshold histogram; it trains on the rest.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.artifacts import ArtifactRef, ArtifactStore
from airflow_mlops.exceptions import DataError, TrainingRejectedError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.training.job import TrainingJob


def read_job(uri: str, sha256: str, size: int) -> TrainingJob:
    """``job.json`` through its reference (refused when its sha256 differs)."""
    from airflow_mlops.training.job import TrainingJob, _store_for

    ref = ArtifactRef(uri=uri, sha256=sha256, size=int(size), media_type="application/json")
    with tempfile.TemporaryDirectory(prefix="mlops-fl-job-") as tmp:
        path = _store_for(uri).fetch(ref, Path(tmp))
        return TrainingJob.from_dict(json.loads(path.read_text()), where=uri)


@dataclass(frozen=True)
class ClientRows:
    """A client's rows: the training part and the validation part, features and 0/1 labels."""

    train: pd.DataFrame
    validation: pd.DataFrame
    y_train: np.ndarray
    y_validation: np.ndarray


def client_table(
    job: TrainingJob, node_config: Mapping[str, Any], data: str, partitions: int = 0
) -> tuple[pd.DataFrame, int]:
    """This client's table and the number its validation split is seeded with.

    :param partitions: ``data: partitions``: the count the spec expects (0: any); a SuperNode
        started with another ``num-partitions`` is refused (its partition would overlap others).
    """
    from airflow_mlops.training.config import read_table

    from .common import partition_indices

    if data == "node":
        path = node_config.get("data-path")
        if not path:
            raise TrainingRejectedError(
                'data: node needs the SuperNode\'s own table: start it with --node-config "data-path=<file>"'
            )
        return read_table(Path(str(path))), 0
    try:
        pid, parts = int(node_config["partition-id"]), int(node_config["num-partitions"])
    except (KeyError, TypeError, ValueError):
        raise TrainingRejectedError(
            "data: partitions needs the SuperNode's partition: start it with "
            '--node-config "partition-id=<i> num-partitions=<n>"'
        ) from None
    if partitions and parts != partitions:
        raise TrainingRejectedError(
            f"this SuperNode splits the data into num-partitions={parts}, the spec into "
            f"training.federated.partitions={partitions}; restart it with the spec's count"
        )
    store = ArtifactStore(job.store_root)
    located = store.locate(job.train.uri)
    if located is None:
        raise TrainingRejectedError(
            f"the training data {job.train.uri} is not in the job's store {job.store_root}"
        )
    with tempfile.TemporaryDirectory(prefix="mlops-fl-data-") as tmp:
        path = store.fetch(job.train, Path(tmp), source=None if store.is_s3 else located)
        table = read_table(path)
    seed = int(job.config.get("seed", 42))
    return table.iloc[partition_indices(len(table), pid, parts, seed)].reset_index(drop=True), pid + 1


def split_rows(table: pd.DataFrame, config: Mapping[str, Any], salt: int) -> ClientRows:
    """Encode the labels (binary: 1 = the positive label) and keep a seeded validation share."""
    import numpy as np

    from airflow_mlops.labels import positive_mask

    target = str(config["target"])
    if target not in table.columns:
        raise DataError(f"this client's table has no target column {target!r}")
    if len(table) < 2:
        raise DataError(f"this client has {len(table)} row(s); it needs at least 2")
    y = positive_mask(table[target], config.get("positive_label", 1), column=target, require_both=False)
    fraction = float(config.get("validation_fraction", 0.1))
    rng = np.random.default_rng([int(config.get("seed", 42)), salt])
    order = rng.permutation(len(table))
    cut = min(len(table) - 1, max(1, round(len(table) * fraction))) if fraction > 0 else 0
    val_idx, train_idx = np.sort(order[:cut]), np.sort(order[cut:])
    return ClientRows(
        train=table.iloc[train_idx],
        validation=table.iloc[val_idx],
        y_train=y[train_idx].astype(np.float32),
        y_validation=y[val_idx].astype(np.float32),
    )


def features_of(config: Mapping[str, Any], table: pd.DataFrame) -> list[str]:
    """The feature columns: the config's, else every column but the target."""
    target = str(config["target"])
    return list(config.get("features") or [str(c) for c in table.columns if str(c) != target])


def label_summary(rows: ClientRows, table: pd.DataFrame, config: Mapping[str, Any]) -> dict[str, Any]:
    """Row and positive counts and the label names seen (the negative class's name for the model)."""
    from airflow_mlops.labels import label_key, positive_mask

    target = str(config["target"])
    mask = positive_mask(table[target], config.get("positive_label", 1), column=target, require_both=False)
    negatives = sorted({label_key(v) for v in table[target][~mask]})
    return {
        "rows": len(table),
        "positives": int(mask.sum()),
        "train_rows": len(rows.y_train),
        "train_positives": int(rows.y_train.sum()),
        "negative_labels": negatives,
    }


def build_model(config: Mapping[str, Any], input_dim: int) -> Any:
    """The built-in network of the config, seeded by the run's seed (the same start everywhere)."""
    import torch

    from airflow_mlops.training.config import check_config
    from airflow_mlops.training.loop import build_network

    cfg = check_config(config)
    torch.manual_seed(int(cfg["seed"]))
    return build_network(cfg, input_dim, 1)


def train_locally(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    params: Mapping[str, Any],
    *,
    pos_weight: float,
    seed: int,
    proximal_mu: float = 0.0,
) -> float:
    """``params.epochs`` local epochs of Adam on this client's rows (FedProx: plus the proximal term
    ``mu / 2 * ||w - w_global||^2``); returns the mean training loss of the last epoch."""
    import torch

    if len(x) == 0:
        raise DataError("this client has no training rows")
    generator = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    global_weights = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.Adam(
        model.parameters(), lr=float(params["lr"]), weight_decay=float(params.get("weight_decay", 0.0))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float32))
    batch = int(params["batch_size"])
    model.train()
    last = 0.0
    for _ in range(int(params["epochs"])):
        total, seen = 0.0, 0
        for idx in torch.randperm(len(xt), generator=generator).split(batch):
            optimizer.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            if proximal_mu > 0:
                prox = sum(
                    ((w - g) ** 2).sum() for w, g in zip(model.parameters(), global_weights, strict=True)
                )
                loss = loss + proximal_mu / 2 * prox
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        last = total / max(seen, 1)
    model.eval()
    return last


def scores_and_loss(
    model: Any, x: np.ndarray, y: np.ndarray, *, pos_weight: float
) -> tuple[np.ndarray, float]:
    """The model's positive-class probabilities on ``x`` and its mean loss on ``(x, y)``."""
    import torch

    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
        loss = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float32))(
            logits, torch.from_numpy(y)
        )
        return torch.sigmoid(logits).numpy().astype("float64"), float(loss) if len(y) else 0.0
