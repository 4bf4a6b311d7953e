"""training/container.py: resource quantities, the secrets apart, the container's user."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airflow_mlops.training.container import cpu_count, local_store_user, memory_bytes, split_secrets


def test_quantities_read_as_kubernetes_writes_them() -> None:
    assert cpu_count("4") == 4.0 and cpu_count("500m") == 0.5
    assert memory_bytes("16Gi") == 16 * 1024**3 and memory_bytes("512Mi") == 512 * 1024**2
    assert memory_bytes("2G") == 2 * 1024**3 and memory_bytes("100") == 100
    with pytest.raises(ValueError, match="not a memory size"):
        memory_bytes("lots")


def test_credentials_are_split_from_the_settings() -> None:
    settings, secrets = split_secrets(
        {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_ENDPOINT_URL": "http://minio"}
    )
    assert settings == {"AWS_ENDPOINT_URL": "http://minio"}
    assert secrets == {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}


@pytest.mark.skipif(os.getuid() == 0, reason="a root worker hands the files to 1000:1000")
def test_a_non_root_worker_runs_the_trainer_as_itself(tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"inputs": {"train": {"uri": str(tmp_path / "train.parquet")}}}))
    assert local_store_user(job) == f"{os.getuid()}:{os.getgid()}"


@pytest.mark.skipif(os.getuid() != 0, reason="only a root worker hands files over")
def test_a_root_worker_hands_the_job_and_training_table_to_the_trainer_not_the_holdout(
    tmp_path: Path,
) -> None:
    stage = tmp_path / "train"
    stage.mkdir()
    train, holdout, job = stage / "train.parquet", stage / "holdout.parquet", stage / "job.json"
    train.write_bytes(b"t")
    holdout.write_bytes(b"h")
    job.write_text(json.dumps({"inputs": {"train": {"uri": f"file://{train}"}}}))
    assert local_store_user(job) == "1000:1000"
    assert {p.stat().st_uid for p in (stage, job, train)} == {1000}
    assert holdout.stat().st_uid == 0
