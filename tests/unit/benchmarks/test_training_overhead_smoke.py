"""Smoke test of benchmarks/training_overhead.py at a tiny size: both sides run every step on the
same rows, the stages are timed and broken down, and the overhead ratio is what the table says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_benchmark_runs_both_sides_on_the_same_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], load_benchmark
) -> None:
    pytest.importorskip("xgboost")
    pytest.importorskip("mlflow")
    bench = load_benchmark("training_overhead.py")
    out = tmp_path / "results.json"
    results = bench.main(
        ["--rows", "2000", "--warmup-rows", "500", "--rounds", "2", "--n-estimators", "3",
         "--max-depth", "3", "--threads", "1", "--no-imports", "--work", str(tmp_path / "work"),
         "--out", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "overhead / plain fit = " in printed and "plain fit alone" in printed
    assert json.loads(out.read_text())["config"]["rows"] == 2000

    config = results["config"]
    assert config["threads"] == [1] and set(results["by_threads"]) == {"1"}
    measured = results["by_threads"]["1"]
    # the holdout (20 %) and the trainer's validation rows (10 % of the rest) are kept from both fits
    assert config["holdout_rows"] == 400 and config["validation_rows"] == 160
    assert config["fit_rows"] == 2000 - 400 - 160
    assert config["features_after_encoding"] == {"plain": 11, "pipeline": 11}
    for run in measured["runs"]["plain"]:
        assert run["fit_rows"] == config["fit_rows"] and run["trees"] == 3
    for run in measured["runs"]["pipeline"]:
        assert run["fit_rows"] == config["fit_rows"]
        assert set(run["seconds"]) == set(bench.STAGES)
        assert run["parts"]["fit"]["XGBoost fit (eval_set = validation rows)"] > 0
        assert run["parts"]["scan"]["scan_model_dir"] > 0
        assert run["parts"]["sign"]["sign_model"] > 0 and run["parts"]["sign"]["verify_model"] > 0
        # exclusive timers never add up to more than their stage
        for stage in bench.STAGES:
            assert sum(run["parts"][stage].values()) <= run["seconds"][stage] + 1e-6

    s = measured["summary"]
    assert s["overhead_seconds"] == pytest.approx(s["pipeline"]["total"] - s["plain"]["total"])
    assert s["overhead_ratio"] == pytest.approx(s["overhead_seconds"] / s["plain"]["fit"])
    assert s["meets_target"] is (s["overhead_ratio"] <= 0.15)
    assert len(s["overhead_ratio_per_round"]) == 2
    cpu = s["cpu"]
    assert cpu["overhead_ratio"] == pytest.approx(cpu["overhead_seconds"] / cpu["plain_fit"])
    assert cpu["pipeline_fit"] > 0 and cpu["plain_fit"] > 0


def test_timers_are_removed_after_the_run(load_benchmark) -> None:
    import contextlib

    import airflow_mlops.training.estimators as estimators
    from airflow_mlops.artifacts import ArtifactStore
    from airflow_mlops.training.model import Preprocessor

    bench = load_benchmark("training_overhead.py")
    before = (ArtifactStore.fetch, estimators.fit_estimator, Preprocessor.__dict__["fit"])
    with contextlib.ExitStack() as stack:
        bench.install_timers(bench.Clock(), stack)
        assert estimators.fit_estimator is not before[1]
    assert (ArtifactStore.fetch, estimators.fit_estimator, Preprocessor.__dict__["fit"]) == before
