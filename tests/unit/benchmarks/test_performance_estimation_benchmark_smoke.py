"""Smoke test of benchmarks/performance_estimation.py: a tiny run of our side (NannyML lives only in
the benchmark's own venv), the windows, the realised metrics and the summary add up."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark) -> ModuleType:
    return load_benchmark("performance_estimation.py")


def test_a_tiny_run_without_nannyml(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    results = bench.main(
        ["--windows", "2", "--rows", "400", "--train-rows", "1500", "--validation-rows", "600",
         "--levels", "0,1", "--samples", "50", "--skip-nannyml", "--out", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "binary: 4 windows of 400 rows" in printed and "multiclass: 4 windows" in printed
    assert "nannyml" not in printed.split("results written")[0].lower().replace("skip-nannyml", "")
    saved = json.loads(out.read_text())
    assert set(saved["tasks"]) == {"binary", "multiclass"}
    for task, run in results["tasks"].items():
        assert "_peer_inputs" not in run and len(run["windows"]) == 4
        for metric, row in run["summary"].items():
            realised = np.array([w["realised"][metric] for w in run["windows"]])
            est = np.array([w["ours"][metric]["estimate"] for w in run["windows"]])
            assert row["ours"]["mae"] == pytest.approx(np.mean(np.abs(est - realised)))
            assert 0 <= row["ours"]["coverage"] <= 1 and row["ours"]["mean_width"] > 0
            assert row["realised_drop"] == pytest.approx(
                row["per_level"]["0.0"]["realised"] - row["per_level"]["1.0"]["realised"]
            )
            assert set(bench.METRICS[task]) == set(run["summary"])


def test_the_shift_makes_the_task_harder(bench: ModuleType) -> None:
    rng = np.random.default_rng(0)
    for task in bench.TASKS:
        p0 = bench.true_proba(task, bench.features(20000, 0.0, rng))
        p1 = bench.true_proba(task, bench.features(20000, 1.0, rng))
        # The Bayes accuracy (the most probable class is right) falls with the shift.
        best = (lambda p: np.maximum(p, 1 - p)) if task == "binary" else (lambda p: p.max(axis=1))
        assert best(p1).mean() < best(p0).mean() - 0.03


def test_nannymls_estimates_go_beside_ours_window_by_window(bench: ModuleType) -> None:
    task = {"task": "binary", "windows": [{"realised": {}} for _ in range(2)]}
    per = {"estimate": [0.8, 0.7], "low": [0.75, 0.65], "high": [0.85, 0.75]}
    peer = {
        "tasks": {
            "binary": {
                "chunks": 2,
                "seconds": 1.0,
                "metrics": {m: per for m in ("roc_auc", "accuracy", "f1")},
            }
        }
    }
    bench.attach_peer(task, peer)
    assert task["windows"][1]["nannyml"]["roc_auc"] == {"estimate": 0.7, "low": 0.65, "high": 0.75}
    peer["tasks"]["binary"]["chunks"] = 3
    with pytest.raises(RuntimeError, match="3 chunks of 2 windows"):
        bench.attach_peer(task, peer)
