"""The data of a training run as MLflow dataset inputs: lineage the MLflow way.

The training run logs every table it descends from -- the input batch, the accepted rows, the
quarantine, the train and holdout splits -- as an MLflow *dataset input* of the run (what
``mlflow.log_input`` records), so the MLflow UI lists them on the run, with their schema, row
count and where they live, and a search can find every run that used a given dataset.

Each dataset is built with :func:`mlflow.data.from_pandas` (MLflow's own schema inference), with:

* ``source``: the artifact's URI in the store (a local path or ``s3://``);
* ``digest``: the artifact's sha256 -- cut to MLflow's limit of :data:`DATASET_DIGEST_LENGTH`
  characters (MLflow's database holds no more); the full sha256 is in the dataset's profile and
  in the input tag :data:`TAG_DATASET_SHA256`, so it can be compared with an ``ArtifactRef``;
* ``profile``: ``num_rows``, ``num_elements`` and ``sha256``;
* input tags: ``mlflow.data.context`` (``input``, ``accepted``, ``quarantine``, ``training``,
  ``evaluation``: see :data:`DATASET_CONTEXTS`) and :data:`TAG_DATASET_SHA256`.

No table is loaded in full to describe it: the schema is inferred from the first rows of the
parquet file and the row count read from its footer (:func:`table_dataset`). Logging is
idempotent: a retried task does not log the same dataset twice (:func:`log_dataset_inputs`).
Pure domain code (no Airflow); functions take an ``mlflow.MlflowClient``.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.artifacts import ArtifactRef

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Dataset

log = logging.getLogger(__name__)

#: MLflow stores at most this many characters of a dataset digest (its ``datasets.digest`` column).
DATASET_DIGEST_LENGTH = 36
#: Input tag holding the artifact's full sha256.
TAG_DATASET_SHA256 = "mlops.sha256"
#: MLflow's input tag for the role of a dataset in a run (``mlflow.utils.mlflow_tags``).
TAG_DATASET_CONTEXT = "mlflow.data.context"
#: The context each dataset of a training run is logged with, by its role in the pipeline.
DATASET_CONTEXTS: dict[str, str] = {
    "input": "input",  # the batch as validated (the snapshot of data.source)
    "accepted": "accepted",  # the rows the poisoning screen let through
    "quarantine": "quarantine",  # the rows it held back, with their reasons
    "train": "training",  # the split of the accepted rows the model was fitted on
    "holdout": "evaluation",  # the split the gates evaluate on
}
# Rows read to infer a schema (a parquet file is not loaded in full).
_SCHEMA_SAMPLE_ROWS = 256


def dataset_digest(sha256: str) -> str:
    """The MLflow dataset digest of an artifact: its sha256, cut to MLflow's limit."""
    return sha256[:DATASET_DIGEST_LENGTH]


def table_dataset(
    ref: ArtifactRef | Mapping[str, Any],
    *,
    name: str,
    path: str | Path | None = None,
    frame: pd.DataFrame | None = None,
) -> Dataset:
    """The MLflow dataset entity of a table artifact.

    :param ref: the artifact: its URI is the source, its sha256 the digest.
    :param name: the dataset's name in MLflow (e.g. ``fraud_detector.accepted``).
    :param path: a local copy of a parquet artifact: only its first rows and its footer are read.
    :param frame: the table, when the caller has it in memory already (then ``path`` is unused).
    :raises ValueError: neither ``path`` nor ``frame`` is given.
    """
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import Dataset

    ref = ArtifactRef.from_dict(dict(ref) if isinstance(ref, Mapping) else ref)
    if frame is not None:
        sample, rows = frame, len(frame)
    elif path is not None:
        sample, rows = _parquet_sample(Path(path))
    else:
        raise ValueError(f"table_dataset({ref.uri}): give the table (frame=) or a local copy (path=)")
    # MLflow warns that a path "can be interpreted in multiple ways" (it is the artifact's URI)
    # and that integer columns cannot hold missing values (a hint for model signatures).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dataset = from_pandas(sample, source=ref.uri, name=name, digest=dataset_digest(ref.sha256))
        schema = dataset.schema
    return Dataset(
        name=dataset.name,
        digest=dataset.digest,
        source_type=dataset.source._get_source_type(),
        source=dataset.source.to_json(),
        schema=json.dumps({"mlflow_colspec": schema.to_dict()}) if schema is not None else None,
        profile=json.dumps(
            {"num_rows": int(rows), "num_elements": int(rows) * len(sample.columns), "sha256": ref.sha256}
        ),
    )


def _parquet_sample(path: Path) -> tuple[pd.DataFrame, int]:
    """The first rows of a parquet file (for the schema) and its row count (from the footer)."""
    import pyarrow.parquet as pq

    from airflow_mlops.data.io import read_table

    if path.suffix.lower() not in (".parquet", ".pq"):
        frame = read_table(path)  # CSV has no footer: read it
        return frame, len(frame)
    with pq.ParquetFile(path) as parquet:
        rows = parquet.metadata.num_rows
        batch = next(parquet.iter_batches(batch_size=_SCHEMA_SAMPLE_ROWS), None)
        table = batch if batch is not None else parquet.schema_arrow.empty_table()
        return table.to_pandas(), int(rows)


def log_dataset_inputs(
    client: MlflowClient, run_id: str, datasets: Sequence[tuple[Dataset, str]]
) -> list[tuple[str, str]]:
    """Log ``(dataset, context)`` pairs as dataset inputs of the run; returns what was logged.

    A dataset the run already has with the same name, digest and context (an earlier try of
    the task logged it) is skipped, so retries add nothing. The input tags are the context and
    the full sha256 (taken from the dataset's profile). Returns ``(name, context)`` of each new
    input.
    """
    from mlflow.entities import DatasetInput, InputTag

    run = client.get_run(run_id)
    have = {
        (d.dataset.name, d.dataset.digest, _context(d.tags))
        for d in (run.inputs.dataset_inputs if run.inputs else [])
    }
    new: list[DatasetInput] = []
    logged: list[tuple[str, str]] = []
    for dataset, context in datasets:
        if (dataset.name, dataset.digest, context) in have:
            log.info("Run %s already has dataset %s (%s): not logged again", run_id, dataset.name, context)
            continue
        tags = [InputTag(key=TAG_DATASET_CONTEXT, value=context)]
        sha = (json.loads(dataset.profile or "{}") or {}).get("sha256")
        if sha:
            tags.append(InputTag(key=TAG_DATASET_SHA256, value=str(sha)))
        new.append(DatasetInput(dataset=dataset, tags=tags))
        have.add((dataset.name, dataset.digest, context))
        logged.append((dataset.name, context))
    if new:
        client.log_inputs(run_id, datasets=new)
        log.info("Logged dataset inputs of run %s: %s", run_id, ", ".join(f"{n} ({c})" for n, c in logged))
    return logged


def _context(tags: Sequence[Any]) -> str | None:
    return next((t.value for t in tags or () if t.key == TAG_DATASET_CONTEXT), None)
