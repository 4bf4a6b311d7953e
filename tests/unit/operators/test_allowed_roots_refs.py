"""Refs are read only from the pipeline's artifact store or the allowed roots, whoever wrote them
(an XCom, an asset event, a model version's tag, a training job), and the store a task writes is
the folder its check resolved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from airflow_mlops.artifacts import ArtifactRef, ArtifactStore, sha256_file
from airflow_mlops.exceptions import DataError, OutsideAllowedRootsError, TrainingRejectedError
from airflow_mlops.operators.monitor import ChampionScoreOperator


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    root, outside = (tmp_path / "root").resolve(), (tmp_path / "outside").resolve()
    (root / "in").mkdir(parents=True)
    outside.mkdir()
    pd.DataFrame({"x": [1, 2], "y": [0, 1]}).to_parquet(outside / "secret.parquet")
    pd.DataFrame({"x": [1, 2], "y": [0, 1]}).to_parquet(root / "in" / "window.parquet")
    return {"root": root, "outside": outside, "tmp": tmp_path.resolve()}


def score(tree: dict[str, Path], **kwargs: object) -> ChampionScoreOperator:
    return ChampionScoreOperator(
        task_id="score",
        pipeline="p",
        artifact_root=str(tree["root"] / "store"),
        source=str(tree["root"] / "in" / "window.parquet"),
        target="y",
        model_name="m",
        allowed_roots=[str(tree["root"])],
        **kwargs,  # type: ignore[arg-type]
    )


def forged(path: Path) -> dict[str, object]:
    return ArtifactRef(
        str(path), sha256_file(path), path.stat().st_size, "application/vnd.apache.parquet"
    ).to_dict()


def test_a_champions_training_data_tag_pointing_outside_is_not_read(tree: dict[str, Path]) -> None:
    """``monitoring.reference: champion`` reads the ref a model version's tag holds: a tag set by
    hand cannot make the monitor read a file outside the store and the roots."""
    from airflow_mlops.registry.mlflow_registry import TAG_TRAINING_DATA

    mv = SimpleNamespace(
        version="3", tags={TAG_TRAINING_DATA: json.dumps(forged(tree["outside"] / "secret.parquet"))}
    )
    with pytest.raises(OutsideAllowedRootsError, match="outside the artifact store"):
        score(tree)._reference(mv, tree["tmp"] / "scratch")
    assert not (tree["tmp"] / "scratch" / "reference-in" / "secret.parquet").exists()
    # In the store (or under the roots), it is read and verified.
    store = ArtifactStore(str(tree["root"] / "store"))
    ref = store.put_file(tree["root"] / "in" / "window.parquet", "p/r/prepare/train.parquet")
    mv.tags[TAG_TRAINING_DATA] = json.dumps(ref.to_dict())
    frame, _ = score(tree)._reference(mv, tree["tmp"] / "scratch2")
    assert len(frame) == 2


def test_any_fetch_refuses_a_ref_outside_the_store_and_the_roots(tree: dict[str, Path]) -> None:
    op = score(tree)
    with pytest.raises(OutsideAllowedRootsError):
        op.fetch(forged(tree["outside"] / "secret.parquet"), tree["tmp"] / "s1")
    link = tree["root"] / "store" / "p" / "r" / "link.parquet"  # in the store, leading out
    link.parent.mkdir(parents=True)
    link.symlink_to(tree["outside"] / "secret.parquet")
    with pytest.raises(OutsideAllowedRootsError):
        op.fetch(forged(link), tree["tmp"] / "s2")


def test_the_operator_store_is_the_checked_folder(tree: dict[str, Path]) -> None:
    op = score(tree)
    op.artifact_root = f"file://{tree['outside']}/a%2f..%2f..%2froot/store"  # decoded: root/store
    store = op.artifact_store()
    assert store.uri_for("k") == str(tree["root"] / "store" / "k")
    op.artifact_root = f"file://{tree['root']}/a%2f..%2f..%2foutside/store"  # decoded: outside/store
    with pytest.raises(OutsideAllowedRootsError, match=r"artifacts\.root"):
        op.artifact_store()


def test_the_monitor_window_is_opened_as_checked(
    tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder swapped for a link right after the window's check: the open refuses it."""
    from airflow_mlops.data.io import read_table
    from airflow_mlops.operators.base import MLOpsBaseOperator

    op = score(tree)
    real = MLOpsBaseOperator.check_location

    def check_then_swap(self: MLOpsBaseOperator, location: str, what: str = "data location") -> str:
        resolved = real(self, location, what)
        shutil.move(str(tree["root"] / "in"), str(tree["root"] / "in.old"))
        (tree["root"] / "in").symlink_to(tree["outside"], target_is_directory=True)
        shutil.copy(tree["outside"] / "secret.parquet", tree["outside"] / "window.parquet")
        return resolved

    monkeypatch.setattr(MLOpsBaseOperator, "check_location", check_then_swap)
    with pytest.raises(OutsideAllowedRootsError, match="changed after it was checked"):
        read_table(op.fetch_source(op.source, tree["tmp"], "monitoring.source"), checked=True)


def test_a_training_job_reads_its_data_only_from_its_own_store(tree: dict[str, Path]) -> None:
    from airflow_mlops.training.job import TrainingJob, run_job, write_job

    store = ArtifactStore(str(tree["root"] / "store"))
    job = TrainingJob(
        store_root=store.uri_for().rstrip("/"),
        train=ArtifactRef.from_dict(forged(tree["outside"] / "secret.parquet")),
        model="mlp",
        config={"target": "y", "features": ["x"]},
        output_key="p/r/train/weights",
    )
    job_ref = write_job(store, "p/r/train/job.json", job, producer="prepare")
    with pytest.raises(TrainingRejectedError, match="not in the job's artifact store"):
        run_job(job_ref, tree["tmp"] / "work")
    assert not (tree["tmp"] / "work" / "inputs").exists()


def test_an_event_ref_into_the_store_is_opened_without_links(tree: dict[str, Path]) -> None:
    """A file in the store replaced by a link after its ref was written: refused, not followed."""
    store = ArtifactStore(str(tree["root"] / "store"))
    ref = store.put_file(tree["root"] / "in" / "window.parquet", "p/r/monitor/window.parquet")
    Path(ref.uri).unlink()
    Path(ref.uri).symlink_to(tree["outside"] / "secret.parquet")
    with pytest.raises((OutsideAllowedRootsError, DataError)):
        score(tree).fetch(ref, tree["tmp"] / "s")
