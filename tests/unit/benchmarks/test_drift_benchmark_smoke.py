"""Smoke test of benchmarks/drift.py at tiny sizes: every part runs, prints its ratios, p-values agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_benchmark_runs_and_prints_ratios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], load_benchmark
) -> None:
    pytest.importorskip("torch")
    bench = load_benchmark("drift.py")
    out = tmp_path / "results.json"
    results = bench.main(
        ["--rows", "1500", "--features", "4", "--mmd-rows", "150", "--mmd-features", "3",
         "--permutations", "20", "--seeds", "2", "--fa-rows", "300", "--out", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "ratio, faster peer / detect_drift (ks):" in printed and "x faster" in printed
    assert "False alarms over 2 no-drift seeds" in printed
    assert json.loads(out.read_text())["false_alarms"]["seeds"] == 2

    uni = results["univariate"]
    for name, side in uni["sides"].items():
        # same p-values as scipy (alibi-detect's differ by float32 rounding only)
        assert side["max_abs_p_diff_vs_scipy"] <= (1e-6 if name.startswith(("detect", "scipy")) else 1e-4), (
            name
        )
    assert uni["ratio_vs_faster_peer"]["ks"] > 0
    # the two equal-work ratios and the defaults over the KS-only time, printed and stored
    assert len(uni["ratios"]) == 4 and all(r > 0 for r in uni["ratios"].values())
    assert "equal work: scipy ks_2samp per column / detect_drift ks only:" in printed
    assert "detect_drift defaults / detect_drift ks only (time):" in printed
    rare = results["rare_share"]  # the 2 % -> 4 % level: flagged, as scipy's chi-squared does
    assert rare["detect_drift_flags_it"] and rare["scipy_flags_it_at_bonferroni"]
    assert not rare["distances_alone_flag_it"] and rare["other_features_flagged"] == []
    mv = results["multivariate"]
    side = mv["sides"]["detect_drift MMD (cpu)"]
    assert 0 < side["p_value"] <= 1 and isinstance(side["drift"], bool)
    if "alibi-detect MMDDrift (cpu)" in mv["sides"]:
        assert "ratio, alibi-detect / detect_drift (cpu)" in printed
    fa = results["false_alarms"]
    assert 0 <= fa["drift_verdicts"] <= 2 and fa["false_alarm_rate"] == fa["drift_verdicts"] / 2
