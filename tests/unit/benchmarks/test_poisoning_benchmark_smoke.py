"""Smoke test of benchmarks/poisoning.py at tiny sizes: every side runs in both regimes, the metrics add up.

The real cleanlab (AGPL) lives only in the benchmark's own venv; here a tiny stand-in package
``cleanlab`` (argmax disagrees with the label) runs through the same subprocess plumbing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

FAKE_CLEANLAB = {
    "__init__.py": '__version__ = "0.0+fake"\n',
    "filter.py": (
        "import numpy as np\n"
        "def find_label_issues(labels, pred_probs, **kwargs):\n"
        "    return np.asarray(pred_probs).argmax(axis=1) != np.asarray(labels)\n"
    ),
}


@pytest.fixture(scope="module")
def bench(load_benchmark) -> ModuleType:
    return load_benchmark("poisoning.py")


@pytest.fixture
def fake_cleanlab(fake_package) -> None:
    """The stand-in ``cleanlab`` on the PYTHONPATH of the peer subprocess (``sys.executable``)."""
    fake_package("cleanlab", FAKE_CLEANLAB)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_benchmark_runs_side_by_side_in_both_regimes(
    bench: ModuleType, fake_cleanlab: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    attacks = "clean,out_of_distribution"
    results = bench.main(
        [
            "--only",
            "quality",
            "--tiny",
            "--attacks",
            attacks,
            "--peer-python",
            sys.executable,
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    for regime in bench.REGIMES:
        assert f"Regime {regime}:" in printed
    assert printed.count("ratio, mean F1 screen_data / cleanlab (HGB):") == 2
    assert printed.count("target clean_fpr_per_class") == 2
    assert printed.count("screen_data: F1 per dataset and attack") == 2
    saved = json.loads(out.read_text())
    assert saved["quality"]["cleanlab_version"] == "0.0+fake"
    assert set(saved["quality"]["regimes"]) == set(bench.REGIMES)

    regimes = results["quality"]["regimes"]
    # Both regimes screen the very same attacked batches.
    batches = {
        regime: [
            (c["dataset"], c["attack"], c["rows"], c["sides"]["screen_data"]["poisoned"]) for c in r["cases"]
        ]
        for regime, r in regimes.items()
    }
    assert batches["reference"] == batches["no_reference"]
    for regime, r in regimes.items():
        assert r["inputs"] == bench.INPUTS[regime]
        assert {c["attack"] for c in r["cases"]} == set(attacks.split(","))
        for case in r["cases"]:
            assert set(case["sides"]) == set(bench.SIDES)
            assert case["reference_rows"] > 0 and case["test_rows"] > 0
            for side in case["sides"].values():
                assert len(side["fpr_per_class"]) == case["classes"]
                assert 0 <= side["precision"] <= 1 and 0 <= max(side["fpr_per_class"].values()) <= 1
                assert 0 <= side["downstream"]["balanced_accuracy"] <= 1
                change = side["downstream"]["accuracy"] - case["downstream_poisoned"]["accuracy"]
                assert side["accuracy_change_test_rows"] == round(change * case["test_rows"])
                if case["attack"] == "clean":
                    assert side["poisoned"] == 0 and np.isnan(side["f1"])
                else:
                    assert side["poisoned"] > 0 and 0 <= side["f1"] <= 1
        s = r["summary"]
        ours = s["screen_data"]
        f1s = [c["sides"]["screen_data"]["f1"] for c in r["cases"] if c["attack"] == "out_of_distribution"]
        assert ours["mean_f1_per_attack"]["out_of_distribution"] == pytest.approx(np.mean(f1s))
        assert (
            set(ours["f1_per_dataset"]) == set(ours["max_clean_fpr_per_dataset"]) == {"breast_cancer", "iris"}
        )
        assert ours["downstream_attacked_cases"] == len(f1s)
        assert s["best_peer"] == max(bench.PEERS, key=lambda side: s[side]["mean_f1"])
        assert set(s["mean_f1_ratio_screen_data_over"]) == set(bench.PEERS)
        assert set(s["targets"]) == {
            "mean_f1_vs_best_peer",
            "clean_fpr_per_class",
            "downstream_worse_share",
            "downstream_worse_share_one_fit",
        }
        bar = s[s["best_peer"]]["mean_f1"] + bench.TARGET_F1_MARGIN
        assert s["targets"]["mean_f1_vs_best_peer"]["met"] == (ours["mean_f1"] >= bar)
        # the noise floor: a perfect screen (exactly the poisoned rows dropped) on the same target
        attacked = [c for c in r["cases"] if c["attack"] != "clean"]
        perfect = [
            c["downstream_perfect_screen"]["correct_test_rows"]
            - c["downstream_poisoned"]["correct_test_rows"]
            for c in attacked
        ]
        assert s["perfect_screen"]["downstream_worse_cases"] == sum(change < -1 for change in perfect)
        assert s["targets"]["downstream_worse_share_one_fit"]["perfect_screen_share"] == pytest.approx(
            s["perfect_screen"]["downstream_worse_share"]
        )
        # the target's measure: the mean of the repeated fits, on subsets shared by every side
        for case in attacked:
            base = case["downstream_poisoned"]
            assert len(base["correct_test_rows_per_fit"]) == bench.DOWNSTREAM_FITS
            assert base["mean_correct_test_rows"] == pytest.approx(np.mean(base["correct_test_rows_per_fit"]))
            for side in case["sides"].values():
                change = side["downstream"]["mean_correct_test_rows"] - base["mean_correct_test_rows"]
                assert side["mean_accuracy_change_test_rows"] == pytest.approx(change)
        mean_worse = [c for c in attacked if c["sides"]["screen_data"]["mean_accuracy_change_test_rows"] < -1]
        target = s["targets"]["downstream_worse_share"]
        assert target["cases"] == len(mean_worse) and target["met"] == (
            len(mean_worse) / len(attacked) <= bench.TARGET_WORSE_SHARE
        )
    assert printed.count("a perfect screen (exactly the poisoned rows dropped)") == 4


def test_cleanlab_counts_only_the_rows_after_the_offset(bench: ModuleType, fake_cleanlab: None) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + rng.normal(scale=1.0, size=200) > 0).astype(int)
    jobs = [{"id": f"o{k}", "data": "d", "model": "lr", "offset": k} for k in (0, 60)]
    answer = bench.run_cleanlab(sys.executable, jobs, {"d": (x, y)})
    every = np.asarray(answer["results"]["o0"]["flagged"])
    assert len(every) > 0 and (every < 60).any()  # the test sees flags on both sides of the offset
    assert answer["results"]["o60"]["flagged"] == (every[every >= 60] - 60).tolist()


def test_splits_are_twenty_fifty_thirty_and_stratified(bench: ModuleType) -> None:
    for ds in bench.datasets(tiny=True, seed=0):
        sizes = np.array([len(ds.reference), len(ds.batch), len(ds.test)])
        assert sizes / sizes.sum() == pytest.approx([0.2, 0.5, 0.3], abs=0.01)
        shares = [f[bench.TARGET].value_counts(normalize=True).sort_index() for f in (ds.reference, ds.test)]
        assert np.allclose(shares[0], shares[1], atol=0.05)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_overlapping_sets_run_apart_and_are_saved_under_their_own_key(
    bench: ModuleType, fake_cleanlab: None, tmp_path: Path
) -> None:
    """``--sets overlapping``: make_classification with classes that overlap (a model trained
    on a clean batch of three classes is wrong on a tenth of the test rows or more), results
    under ``quality_overlapping``, beside the main part's results already in the file."""
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"quality": {"kept": True}, "machine": {"kept": True}}))
    sets = bench.datasets(tiny=True, seed=0, sets="overlapping")
    assert [ds.name for ds in sets] == list(bench.OVERLAPPING)
    results = bench.main(
        ["--only", "quality", "--tiny", "--sets", "overlapping", "--attacks", "clean", "--regimes", "reference",
         "--peer-python", sys.executable, "--out", str(out)]
    )  # fmt: skip
    saved = json.loads(out.read_text())
    assert saved["quality"] == {"kept": True}
    assert saved["machine"] == {"kept": True}  # the main run's machine, not this run's
    assert saved["machine_overlapping"]["cpus"] == os.cpu_count()
    cases = results["quality_overlapping"]["regimes"]["reference"]["cases"]
    assert [c["dataset"] for c in cases] == list(bench.OVERLAPPING)
    accuracy = {c["dataset"]: c["downstream_poisoned"]["accuracy"] for c in cases}
    assert min(accuracy.values()) < 0.9, accuracy  # the classes overlap


def test_downstream_subsets_are_seeded_and_hold_four_fifths(bench: ModuleType) -> None:
    first, again = bench.downstream_subsets(5000, seed=3), bench.downstream_subsets(5000, seed=3)
    assert len(first) == bench.DOWNSTREAM_FITS
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[1])  # each fit its own subset
    assert all(abs(sub.mean() - bench.DOWNSTREAM_SUBSAMPLE) < 0.03 for sub in first)


def test_detection_metrics_match_scikit_learn(bench: ModuleType) -> None:
    from sklearn.metrics import f1_score, precision_score, recall_score

    rng = np.random.default_rng(0)
    poison = rng.random(300) < 0.2
    flagged = np.where(rng.random(300) < 0.8, poison, ~poison)
    y = rng.integers(0, 3, 300)
    m = bench.detection(flagged, poison, y)
    assert m["precision"] == pytest.approx(precision_score(poison, flagged))
    assert m["recall"] == pytest.approx(recall_score(poison, flagged))
    assert m["f1"] == pytest.approx(f1_score(poison, flagged))
    for c in range(3):
        rows = ~poison & (y == c)
        assert m["fpr_per_class"][str(c)] == pytest.approx(flagged[rows].mean())


def test_attacks_poison_what_they_say(bench: ModuleType) -> None:
    (ds, *_) = bench.datasets(tiny=True, seed=0)
    y = ds.batch[bench.TARGET].to_numpy()
    batch, poison = bench.attack(ds, "random_10", seed=1)
    assert poison.sum() == round(0.1 * len(y))
    changed = batch[bench.TARGET].to_numpy() != y
    assert np.array_equal(changed, poison)
    batch, poison = bench.attack(ds, "duplicates", seed=1)
    assert len(batch) == len(y) + poison.sum() and poison[len(y) :].all() and not poison[: len(y)].any()


def test_a_peer_that_cannot_run_fails_the_run(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    with pytest.raises(RuntimeError, match="cannot import cleanlab"):
        bench.main(["--only", "quality", "--tiny", "--peer-python", sys.executable])
