"""Smoke test of benchmarks/poisoning_regression.py at tiny sizes: every side runs in both regimes, the metrics add up.

The real cleanlab (AGPL) lives only in the benchmark's own venv; here a tiny stand-in package
``cleanlab`` (``regression.learn.CleanLearning``: residuals of a linear fit beyond three robust
standard deviations) runs through the same subprocess plumbing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

FAKE_CLEANLAB = {
    "__init__.py": '__version__ = "0.0+fake"\n',
    "filter.py": "",  # poisoning.py's probe of the peer imports it
    "regression/__init__.py": "",
    "regression/learn.py": (
        "import numpy as np\n"
        "import pandas as pd\n"
        "from sklearn.linear_model import LinearRegression\n"
        "class CleanLearning:\n"
        "    def __init__(self, model=None, *, cv_n_folds=5, seed=None):\n"
        "        self.model = model\n"
        "    def find_label_issues(self, X, y):\n"
        "        residual = y - LinearRegression().fit(X, y).predict(X)\n"
        "        scale = np.median(np.abs(residual - np.median(residual))) / 0.6745\n"
        "        issue = np.abs(residual - np.median(residual)) > 3 * scale\n"
        "        return pd.DataFrame({'is_label_issue': issue, 'given_label': y})\n"
    ),
}


@pytest.fixture(scope="module")
def bench(load_benchmark) -> ModuleType:
    return load_benchmark("poisoning_regression.py")


@pytest.fixture
def fake_cleanlab(fake_package) -> None:
    """The stand-in ``cleanlab`` on the PYTHONPATH of the peer subprocess (``sys.executable``)."""
    fake_package("cleanlab", FAKE_CLEANLAB)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_benchmark_runs_side_by_side_in_both_regimes(
    bench: ModuleType, fake_cleanlab: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    attacks = "clean,shift_10"
    bench.main(["--tiny", "--attacks", attacks, "--peer-python", sys.executable, "--out", str(out)])
    printed = capsys.readouterr().out
    for regime in bench.REGIMES:
        assert f"Regime {regime}:" in printed
    assert printed.count("ratio, mean F1 screen_data / cleanlab (HGB):") == 2
    assert printed.count("target clean_fpr") == 2
    assert printed.count("screen_data: F1 per dataset and attack") == 2
    assert printed.count("a perfect screen (exactly the poisoned rows dropped)") == 2
    # Everything below is read back from the stored JSON: the targets follow from its numbers.
    saved = json.loads(out.read_text())
    assert saved["machine"]["cpus"] and len(saved["machine"]["load_average_at_end"]) == 3
    assert len(saved["machine"]["git_commit"]) == 40
    quality = saved["quality"]
    assert quality["cleanlab_version"] == "0.0+fake"
    regimes = quality["regimes"]
    assert set(regimes) == set(bench.REGIMES)

    # Both regimes screen the very same attacked batches.
    batches = {
        regime: [
            (c["dataset"], c["attack"], c["rows"], c["sides"]["screen_data"]["poisoned"]) for c in r["cases"]
        ]
        for regime, r in regimes.items()
    }
    assert batches["reference"] == batches["no_reference"]
    assert {name for name, *_ in batches["reference"]} == {"diabetes", "make_regression (small)"}
    for regime, r in regimes.items():
        assert r["inputs"] == bench.INPUTS[regime]
        assert {c["attack"] for c in r["cases"]} == set(attacks.split(","))
        for case in r["cases"]:
            assert set(case["sides"]) == set(bench.SIDES)
            assert case["reference_rows"] > 0 and case["test_rows"] > 0
            base = case["downstream_poisoned"]
            assert base["rows"] == case["rows"]
            assert case["perfect_screen_r2_change"] == pytest.approx(
                case["downstream_perfect_screen"]["r2"] - base["r2"]
            )
            for side in case["sides"].values():
                assert 0 <= side["precision"] <= 1 and 0 <= side["fpr"] <= 1
                # The downstream change is the R² (RMSE) difference, the model on the kept rows.
                assert side["r2_change"] == pytest.approx(side["downstream"]["r2"] - base["r2"])
                assert side["rmse_change"] == pytest.approx(side["downstream"]["rmse"] - base["rmse"])
                assert side["downstream"]["rows"] == case["rows"] - side["flagged"]
                clean_rows = case["rows"] - side["poisoned"]
                false_pos = side["flagged"] - round(side["precision"] * side["flagged"])
                assert side["fpr"] == pytest.approx(false_pos / clean_rows)
                if case["attack"] == "clean":
                    assert side["poisoned"] == 0 and np.isnan(side["f1"])
                else:
                    assert side["poisoned"] == round(0.1 * case["rows"]) and 0 <= side["f1"] <= 1
        s = r["summary"]
        attacked = [c for c in r["cases"] if c["attack"] != "clean"]
        for side in bench.SIDES:
            f1s = [c["sides"][side]["f1"] for c in attacked]
            assert s[side]["mean_f1_per_attack"]["shift_10"] == pytest.approx(np.mean(f1s))
            assert s[side]["mean_f1"] == pytest.approx(np.mean(f1s))
            fprs = {c["dataset"]: c["sides"][side]["fpr"] for c in r["cases"] if c["attack"] == "clean"}
            assert s[side]["clean_fpr_per_dataset"] == pytest.approx(fprs)
            assert s[side]["max_clean_fpr"] == pytest.approx(max(fprs.values()))
            worse = [c for c in attacked if c["sides"][side]["r2_change"] < -bench.TARGET_R2_DROP]
            assert s[side]["downstream_worse_cases"] == len(worse)
            assert s[side]["downstream_worse_share"] == pytest.approx(len(worse) / len(attacked))
        ours = s["screen_data"]
        assert set(ours["f1_per_dataset"]) == {"diabetes", "make_regression (small)"}
        best = max(bench.PEERS, key=lambda side: s[side]["mean_f1"])
        assert s["best_peer"] == best
        assert s["mean_f1_ratio_screen_data_over"][best] == pytest.approx(
            ours["mean_f1"] / s[best]["mean_f1"]
        )
        targets = s["targets"]
        assert set(targets) == {"mean_f1_vs_best_peer", "clean_fpr", "downstream_worse_share"}
        assert targets["mean_f1_vs_best_peer"]["met"] == (
            ours["mean_f1"] >= s[best]["mean_f1"] + bench.TARGET_F1_MARGIN
        )
        assert targets["clean_fpr"]["met"] == (ours["max_clean_fpr"] <= bench.TARGET_CLEAN_FPR)
        worse = [c for c in attacked if c["sides"]["screen_data"]["r2_change"] < -bench.TARGET_R2_DROP]
        assert targets["downstream_worse_share"]["cases"] == len(worse)
        assert targets["downstream_worse_share"]["met"] == (
            len(worse) / len(attacked) <= bench.TARGET_WORSE_SHARE
        )
        perfect = [c for c in attacked if c["perfect_screen_r2_change"] < -bench.TARGET_R2_DROP]
        assert targets["downstream_worse_share"]["perfect_screen_share"] == pytest.approx(
            len(perfect) / len(attacked)
        )


def test_cleanlab_counts_only_the_rows_after_the_offset(bench: ModuleType, fake_cleanlab: None) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=200)
    bad = rng.choice(200, size=20, replace=False)
    y[bad] += 5.0
    jobs = [{"id": f"o{k}", "data": "d", "offset": k} for k in (0, 60)]
    answer = bench.run_cleanlab(sys.executable, jobs, {"d": (x, y)})
    every = np.asarray(answer["results"]["o0"]["flagged"])
    assert (every < 60).any() and (every >= 60).any()  # flags on both sides of the offset
    assert answer["results"]["o60"]["flagged"] == (every[every >= 60] - 60).tolist()


def test_splits_are_twenty_fifty_thirty_and_stratified_on_the_target(bench: ModuleType) -> None:
    for ds in bench.datasets(tiny=True, seed=0):
        sizes = np.array([len(ds.reference), len(ds.batch), len(ds.test)])
        assert sizes / sizes.sum() == pytest.approx([0.2, 0.5, 0.3], abs=0.01)
        q = [np.quantile(f[bench.TARGET], [0.1, 0.5, 0.9]) for f in (ds.reference, ds.batch, ds.test)]
        spread = float(ds.batch[bench.TARGET].std())
        assert np.allclose(q[0], q[1], atol=0.15 * spread) and np.allclose(q[2], q[1], atol=0.15 * spread)


def test_detection_metrics_match_scikit_learn(bench: ModuleType) -> None:
    from sklearn.metrics import f1_score, precision_score, recall_score

    rng = np.random.default_rng(0)
    poison = rng.random(300) < 0.2
    flagged = np.where(rng.random(300) < 0.8, poison, ~poison)
    m = bench.detection(flagged, poison)
    assert m["precision"] == pytest.approx(precision_score(poison, flagged))
    assert m["recall"] == pytest.approx(recall_score(poison, flagged))
    assert m["f1"] == pytest.approx(f1_score(poison, flagged))
    assert m["fpr"] == pytest.approx(flagged[~poison].mean())


def test_downstream_is_the_r2_of_the_model_on_the_kept_rows(bench: ModuleType) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 4))
    y = x[:, 0] * 3 + np.sin(x[:, 1]) + rng.normal(scale=0.3, size=600)
    keep = rng.random(400) < 0.9
    got = bench.downstream(x[:400], y[:400], keep, x[400:], y[400:])
    pred = HistGradientBoostingRegressor(random_state=0).fit(x[:400][keep], y[:400][keep]).predict(x[400:])
    assert got["r2"] == pytest.approx(r2_score(y[400:], pred))
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean((y[400:] - pred) ** 2)))
    assert got["rows"] == keep.sum()


def test_attacks_poison_what_they_say(bench: ModuleType) -> None:
    ds = bench.datasets(tiny=True, seed=0)[1]
    y = ds.batch[bench.TARGET].to_numpy()
    n = len(y)
    sd = float(ds.reference[bench.TARGET].std())
    for name, share in (("noise_5", 0.05), ("noise_20", 0.2), ("shift_10", 0.1)):
        batch, poison = bench.attack(ds, name, seed=1)
        assert len(batch) == n and poison.sum() == round(share * n)
        new = batch[bench.TARGET].to_numpy()
        assert np.array_equal(new != y, poison)  # exactly the poisoned targets changed
        assert batch[ds.features].equals(ds.batch[ds.features])
        if name.startswith("noise"):
            assert np.isin(new[poison], y).all()  # another row's target: from the marginal
        else:
            moved = np.abs(new[poison] - y[poison]) / sd
            assert moved.min() >= 3 - 1e-9 and moved.max() <= 6 + 1e-9
            assert (new[poison] > y[poison]).any() and (new[poison] < y[poison]).any()
    clean, poison = bench.attack(ds, "clean", seed=1)
    assert clean.equals(ds.batch) and not poison.any()
    for name in ("duplicates", "out_of_distribution"):
        batch, poison = bench.attack(ds, name, seed=1)
        extra = batch.iloc[n:]
        assert len(batch) == n + round(0.03 * n) and poison[n:].all() and not poison[:n].any()
        assert batch.iloc[:n].equals(ds.batch)
        # Each copy's source row: the batch row whose target it does not share but most features.
        x_ref = ds.batch[ds.features].to_numpy()
        for _, row in extra.iterrows():
            same = (x_ref == row[ds.features].to_numpy()[None, :]).sum(axis=1)
            src = int(same.argmax())
            assert row[bench.TARGET] != y[src] and np.isin(row[bench.TARGET], y)
            if name == "duplicates":
                assert same[src] == len(ds.features)
            else:
                assert same[src] == len(ds.features) - 3
                moved = [f for f in ds.features if row[f] != ds.batch.loc[src, f]]
                z = [abs(row[f] - ds.reference[f].mean()) / ds.reference[f].std() for f in moved]
                assert min(z) >= 6 - 1e-9 and max(z) <= 10 + 1e-9


def test_a_peer_that_cannot_run_fails_the_run(
    bench: ModuleType, fake_package, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    with pytest.raises(RuntimeError, match="cannot import cleanlab"):
        bench.main(["--tiny", "--peer-python", sys.executable])
    # A cleanlab without its regression API fails it too.
    fake_package("cleanlab", {k: v for k, v in FAKE_CLEANLAB.items() if not k.startswith("regression")})
    with pytest.raises(RuntimeError, match=r"cannot import cleanlab\.regression\.learn"):
        bench.main(["--tiny", "--peer-python", sys.executable])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_scale_part_times_both_regimes_beside_isolation_forest(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scale.json"
    bench.main(["--only", "scale", "--scale-rows", "2000", "--scale-features", "5", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "Scale, 2000 rows x 5 features" in printed
    assert printed.count("ratio, seconds screen_data [") == 2
    saved = json.loads(out.read_text())
    assert "quality" not in saved
    sc = saved["scale"]
    assert sc["rows"] == 2000 and sc["reference_rows"] == 400
    assert set(sc["sides"]) == {
        "screen_data [no_reference]",
        "screen_data [reference]",
        "IsolationForest [reference]",
    }
    forest = sc["sides"]["IsolationForest [reference]"]["seconds"]
    for regime in bench.REGIMES:
        side = sc["sides"][f"screen_data [{regime}]"]
        assert side["seconds"] > 0 and 0 <= side["fpr"] <= 1
        # 10 % of the targets swapped among themselves: a swap that lands on its own row is no poison
        assert side["flagged"] > 0 and side["recall"] > 0.5
        assert sc["targets"][regime]["value"] == side["seconds"]
        assert sc["targets"][regime]["met"] == (side["seconds"] < 60)
        assert sc["ratio_screen_data_over_isolation_forest"][regime] == pytest.approx(
            side["seconds"] / forest
        )
