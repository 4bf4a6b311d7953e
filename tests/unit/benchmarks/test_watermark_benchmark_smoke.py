"""Smoke test of benchmarks/watermark.py at a tiny size: one dataset, one tree flavor, one seed."""

from __future__ import annotations

from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark) -> ModuleType:
    return load_benchmark("watermark.py")


def test_the_benchmark_measures_cost_false_claims_and_survival(bench: ModuleType, monkeypatch) -> None:
    monkeypatch.setattr(bench, "FLAVORS", {"xgboost": bench.FLAVORS["xgboost"]})
    monkeypatch.setattr(bench, "params_for", lambda flavor, rows: {"n_estimators": 30})
    results = bench.run(["breast_cancer"], fraud_rows=0, seeds=1, trigger_rows=60, alpha=1e-3)
    entry = results["datasets"]["breast_cancer"]["flavors"]["xgboost"]
    assert entry["marked"]["claimed"] and entry["marked"]["matches"] >= entry["marked"]["t"]
    assert not entry["unmarked"][0]["claimed"]
    assert abs(entry["cost_pp"]) < 10
    assert "surrogate_refit_50pct" in entry["survival"]
    assert results["false_claims"] == "0/1" and results["wrong_key_claims"] == "0/20"
    assert 0 <= results["p0_measured"]["binary"] <= 1
    assert "xgboost" in bench.summary_line("breast_cancer", "xgboost", entry)


def test_the_run_leaves_the_callers_logging_as_it_was(bench: ModuleType) -> None:
    import logging

    logger = logging.getLogger("airflow_mlops")
    before = logger.level
    bench.run([], fraud_rows=0, seeds=1, trigger_rows=60, alpha=1e-3)
    assert logger.level == before
