"""The example pipeline's own screen task (as the DAG factory builds it from the example spec)
on the example data: clean, under budget and over budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.data.generate import TARGET, generate_fraud_data, inject_poison, write_example_data
from airflow_mlops.exceptions import PoisoningDetectedError
from airflow_mlops.factory import build_dags
from airflow_mlops.spec.loader import load_spec

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "dags" / "specs" / "fraud_detector.yaml"
CONTEXT = {"run_id": "manual__2026-01-02T00:00:00+00:00"}


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The example data, written by the same function the quickstart uses."""
    import datetime as dt

    return write_example_data(tmp_path_factory.mktemp("example"), start=dt.date(2026, 1, 1), days=1)


def run_screen(tmp_path: Path, df: pd.DataFrame, reference: str) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Execute the example DAG's screen task on ``df``; returns summary, accepted, quarantine."""
    dag = build_dags(load_spec(EXAMPLE), spec_path=EXAMPLE)["fraud_detector__train"]
    task = next(t for t in dag.tasks if t.task_id.endswith("screen"))
    src = tmp_path / "batch.parquet"
    df.to_parquet(src)
    store = tmp_path / "store"
    task.data = ArtifactStore(str(store)).put_file(src, "p/r/validate/batch.parquet").to_dict()
    task.artifact_root = str(store)
    task.reference = reference
    try:
        task.execute({**CONTEXT, "dag": dag})
    finally:
        screen_dir = next(store.rglob("screen_summary.json")).parent
    summary = json.loads((screen_dir / "screen_summary.json").read_text())
    accepted = pd.read_parquet(screen_dir / "accepted.parquet")
    quarantine = pd.read_parquet(screen_dir / "quarantine.parquet")
    assert len(accepted) + len(quarantine) == len(df) == summary["rows_in"]
    return summary, accepted, quarantine


def test_clean_example_data_keeps_its_positives(tmp_path: Path, example: dict[str, str]) -> None:
    clean = generate_fraud_data(4000, seed=11)
    summary, _, quarantine = run_screen(tmp_path, clean, example["reference"])
    assert summary["passed"]
    positives = clean[TARGET].to_numpy() == 1
    flagged = np.zeros(len(clean), dtype=bool)
    flagged[quarantine["_row_index"].to_numpy()] = True
    assert flagged[positives].mean() <= 0.01, (flagged[positives].sum(), positives.sum())
    assert flagged.mean() <= 0.01


def test_under_budget_batch_is_screened_and_quarantine_holds_exactly_the_suspects(
    tmp_path: Path, example: dict[str, str]
) -> None:
    batch = pd.read_parquet(example["train/2026-01-01"])  # ~0.5 % poison, budget 2 %
    summary, accepted, quarantine = run_screen(tmp_path, batch, example["reference"])
    assert summary["passed"] and 0 < summary["rows_quarantined"] <= 0.02 * len(batch)
    # Exactly the suspects: every quarantined row has a reason, and the reasons add up to the
    # per-check counts; the accepted rows are all the others, unchanged.
    reasons = quarantine["_reasons"].str.split(";").explode()
    check_of = {"conflicting_duplicate": "duplicates", "label_issue": "label_issues"}
    counts = reasons.map(lambda r: check_of.get(r, r)).value_counts().to_dict()
    assert counts == {k: v for k, v in summary["check_counts"].items() if v}
    kept = sorted(set(range(len(batch))) - set(quarantine["_row_index"]))
    pd.testing.assert_frame_equal(
        accepted.reset_index(drop=True), batch.iloc[kept].reset_index(drop=True), check_dtype=False
    )


def test_over_budget_batch_stops_before_training(tmp_path: Path, example: dict[str, str]) -> None:
    poisoned = inject_poison(
        generate_fraud_data(4000, seed=12), seed=3, n_conflicting_duplicates=80, n_label_flips=40
    )
    with pytest.raises(PoisoningDetectedError, match="max_suspect_fraction"):
        run_screen(tmp_path, poisoned, example["reference"])
    summary = json.loads(next((tmp_path / "store").rglob("screen_summary.json")).read_text())
    assert not summary["passed"] and summary["suspect_fraction"] > summary["max_suspect_fraction"]
    quarantine = pd.read_parquet(next((tmp_path / "store").rglob("quarantine.parquet")))
    held = set(quarantine.loc[quarantine["_reasons"].str.contains("conflicting_duplicate"), "_row_index"])
    info = poisoned.attrs["poison"]
    pairs = list(zip(info["duplicate_sources"], info["conflicting_duplicates"], strict=True))
    # One member of each conflicting pair, nearly always the wrong-label copy.
    assert all((src in held) != (copy in held) for src, copy in pairs)
    assert sum(copy in held for _, copy in pairs) >= 0.95 * len(pairs)
