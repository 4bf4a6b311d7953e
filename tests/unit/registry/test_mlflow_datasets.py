"""The training run's data as MLflow dataset inputs, on a real (sqlite) MLflow tracking store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from airflow_mlops.artifacts import ArtifactStore, sha256_file
from airflow_mlops.data.generate import generate_fraud_data
from airflow_mlops.exceptions import ArtifactIntegrityError
from airflow_mlops.registry.mlflow_datasets import (
    DATASET_DIGEST_LENGTH,
    TAG_DATASET_CONTEXT,
    TAG_DATASET_SHA256,
    log_dataset_inputs,
    table_dataset,
)


@pytest.fixture
def tables(tmp_path: Path) -> tuple[str, dict[str, pd.DataFrame], dict[str, dict[str, Any]]]:
    """An artifact store holding an input batch, its accepted rows and an empty quarantine."""
    root = str(tmp_path / "store")
    store = ArtifactStore(root)
    batch = generate_fraud_data(700, seed=51)
    frames = {"input": batch, "accepted": batch.iloc[:650], "quarantine": batch.iloc[:0]}
    refs = {}
    for role, frame in frames.items():
        path = tmp_path / f"{role}.parquet"
        frame.to_parquet(path)
        refs[role] = store.put_file(path, f"p/run/stage/{role}.parquet", producer=role).to_dict()
    return root, frames, refs


def _inputs(client: Any, run_id: str) -> dict[str, Any]:
    return {d.dataset.name: d for d in client.get_run(run_id).inputs.dataset_inputs}


def test_dataset_inputs_carry_uri_digest_context_and_profile(client: Any, tables, tmp_path: Path) -> None:
    _, frames, refs = tables
    experiment = client.create_experiment("e")
    run_id = client.create_run(experiment).info.run_id
    contexts = {"input": "input", "accepted": "training", "quarantine": "quarantine"}
    datasets = [
        (table_dataset(refs[role], name=f"p.{role}", path=refs[role]["uri"]), contexts[role])
        for role in frames
    ]
    assert log_dataset_inputs(client, run_id, datasets) == [(f"p.{r}", contexts[r]) for r in frames]

    got = _inputs(client, run_id)
    assert set(got) == {"p.input", "p.accepted", "p.quarantine"}
    for role, frame in frames.items():
        item = got[f"p.{role}"]
        sha = sha256_file(refs[role]["uri"])  # the bytes in the store, independently hashed
        assert refs[role]["sha256"] == sha
        assert item.dataset.digest == sha[:DATASET_DIGEST_LENGTH]
        assert json.loads(item.dataset.source) == {"uri": refs[role]["uri"]}
        tags = {t.key: t.value for t in item.tags}
        assert tags == {TAG_DATASET_CONTEXT: contexts[role], TAG_DATASET_SHA256: sha}
        profile = json.loads(item.dataset.profile)
        assert profile == {
            "num_rows": len(frame),
            "num_elements": len(frame) * frame.shape[1],
            "sha256": sha,
        }
        schema = json.loads(item.dataset.schema)["mlflow_colspec"]
        assert [c["name"] for c in schema] == list(frame.columns)

    # a retry logs nothing twice
    assert log_dataset_inputs(client, run_id, datasets) == []
    assert len(client.get_run(run_id).inputs.dataset_inputs) == 3


def test_schema_from_the_file_matches_mlflows_own_from_the_frame(tables) -> None:
    import mlflow.data

    _, frames, refs = tables
    from_file = table_dataset(refs["accepted"], name="a", path=refs["accepted"]["uri"])
    from_frame = table_dataset(refs["accepted"], name="a", frame=frames["accepted"])
    own = mlflow.data.from_pandas(frames["accepted"], source=refs["accepted"]["uri"], name="a")
    assert from_file.schema == from_frame.schema == json.dumps({"mlflow_colspec": own.schema.to_dict()})
    assert from_file.profile == from_frame.profile
    with pytest.raises(ValueError, match="give the table"):
        table_dataset(refs["accepted"], name="a")


def test_the_package_step_logs_the_lineage_verified(client: Any, tables, tmp_path: Path) -> None:
    from airflow_mlops.operators.training import ModelPackageOperator

    root, _, refs = tables
    experiment = client.create_experiment("p")
    run_id = client.create_run(experiment).info.run_id
    op = ModelPackageOperator(
        task_id="package",
        pipeline="p",
        artifact_root=root,
        fit_result={},
        prepared={},
        target="is_fraud",
        datasets=refs,
    )
    prepared = {"train": refs["accepted"], "holdout": refs["quarantine"]}
    op._log_datasets(client, run_id, prepared)
    got = _inputs(client, run_id)
    contexts = {name: {t.key: t.value for t in d.tags}[TAG_DATASET_CONTEXT] for name, d in got.items()}
    assert contexts == {
        "p.input": "input",
        "p.accepted": "accepted",
        "p.quarantine": "quarantine",
        "p.train": "training",
        "p.holdout": "evaluation",
    }
    # An artifact changed after its producer wrote it is refused, not logged.
    pd.DataFrame({"x": [1]}).to_parquet(refs["input"]["uri"])
    other = client.create_run(experiment).info.run_id
    with pytest.raises(ArtifactIntegrityError, match=r"input\.parquet"):
        op._log_datasets(client, other, prepared)
    assert client.get_run(other).inputs.dataset_inputs == []


def test_factory_wires_the_lineage_into_the_package_task() -> None:
    from airflow_mlops.factory import build_dags
    from airflow_mlops.spec.loader import load_spec

    example = Path(__file__).resolve().parents[3] / "dags" / "specs" / "fraud_detector.yaml"
    dag = build_dags(load_spec(example), spec_path=example)["fraud_detector__train"]
    package = dag.get_task("training.package")
    refs = {role: (arg.operator.task_id, arg.key) for role, arg in package.datasets.items()}
    assert refs == {
        "input": ("data.validate", "data"),
        "accepted": ("data.screen", "accepted"),
        "quarantine": ("data.screen", "quarantine"),
    }
    assert dag.get_task("data.validate").target == "is_fraud"
