"""The data-stage operators against a real local artifact store (no Airflow run needed)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from airflow_mlops.artifacts import ArtifactRef
from airflow_mlops.data.generate import generate_fraud_data, inject_poison
from airflow_mlops.exceptions import DataValidationError, PoisoningDetectedError
from airflow_mlops.operators.data import DataValidateOperator, PoisoningScreenOperator

CONTEXT = {"run_id": "manual__2026-01-02T00:00:00+00:00", "dag": SimpleNamespace(dag_id="p__train")}


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    path = tmp_path / "batch.parquet"
    generate_fraud_data(2000, seed=3).to_parquet(path)
    return path


def test_validate_snapshots_the_batch_and_writes_a_report(tmp_path: Path, batch: Path) -> None:
    op = DataValidateOperator(
        task_id="validate",
        pipeline="p",
        artifact_root=str(tmp_path / "store"),
        source=str(batch),
        expectations=[{"expect_column_values_to_be_between": {"column": "amount", "min_value": 0}}],
    )
    out = op.execute(CONTEXT)
    data = ArtifactRef.from_dict(out["data"])
    assert out["success"] is True
    assert data.uri.startswith(
        str(tmp_path / "store" / "p" / "manual__2026-01-02T00_00_00_00_00" / "validate")
    )
    assert pd.read_parquet(data.uri).shape == (2000, 7)
    report = json.loads(Path(out["report"]["uri"]).read_text())
    assert report["success"] is True


def test_validate_fails_or_warns_as_configured(tmp_path: Path, batch: Path) -> None:
    expectations = [
        {"expect_column_values_to_be_between": {"column": "amount", "min_value": 0, "max_value": 1}}
    ]
    common = {
        "pipeline": "p",
        "artifact_root": str(tmp_path / "store"),
        "source": str(batch),
        "expectations": expectations,
    }
    with pytest.raises(DataValidationError, match="amount"):
        DataValidateOperator(task_id="v1", **common).execute(CONTEXT)
    out = DataValidateOperator(task_id="v2", on_failure="warn", **common).execute(CONTEXT)
    assert out["success"] is False


def test_screen_keeps_every_row_and_stores_the_quarantine_before_failing(tmp_path: Path) -> None:
    df = inject_poison(
        generate_fraud_data(1500, seed=5), seed=1, n_conflicting_duplicates=60, n_label_flips=0
    )
    src = tmp_path / "in.parquet"
    df.to_parquet(src)
    store_root = tmp_path / "store"
    from airflow_mlops.artifacts import ArtifactStore

    ref = ArtifactStore(str(store_root)).put_file(src, "p/r/validate/batch.parquet")
    op = PoisoningScreenOperator(
        task_id="screen",
        pipeline="p",
        artifact_root=str(store_root),
        data=ref.to_dict(),
        target="is_fraud",
        checks=["duplicates"],
        max_suspect_fraction=0.02,
    )
    with pytest.raises(PoisoningDetectedError):
        op.execute(CONTEXT)
    screen_dir = store_root / "p" / "manual__2026-01-02T00_00_00_00_00" / "screen"
    accepted = pd.read_parquet(screen_dir / "accepted.parquet")
    quarantine = pd.read_parquet(screen_dir / "quarantine.parquet")
    assert len(accepted) + len(quarantine) == len(df)
    # Only the copy of each conflicting pair whose label disagrees with the model's view.
    assert len(quarantine) == 60
    assert quarantine["_reasons"].str.contains("conflicting_duplicate").all()
    assert set(quarantine["_row_index"]) == set(range(1500, 1560))
    report = (screen_dir / "screen_report.html").read_text()
    assert "Quarantined rows and their nearest accepted rows" in report


def test_screen_refuses_a_tampered_input(tmp_path: Path, batch: Path) -> None:
    from airflow_mlops.artifacts import ArtifactStore
    from airflow_mlops.exceptions import ArtifactIntegrityError

    ref = ArtifactStore(str(tmp_path / "s")).put_file(batch, "p/r/validate/batch.parquet")
    generate_fraud_data(10, seed=9).to_parquet(ref.uri)
    op = PoisoningScreenOperator(
        task_id="s", pipeline="p", artifact_root=str(tmp_path / "s"), data=ref.to_dict(), target="is_fraud"
    )
    with pytest.raises(ArtifactIntegrityError):
        op.execute(CONTEXT)
