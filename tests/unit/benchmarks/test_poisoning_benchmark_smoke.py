"""Smoke test of benchmarks/poisoning.py at tiny sizes: every side runs, the metrics add up.

The real cleanlab (AGPL) lives only in the benchmark's own venv; here a tiny stand-in package
``cleanlab`` (argmax disagrees with the label) runs through the same subprocess plumbing.
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
    "filter.py": (
        "import numpy as np\n"
        "def find_label_issues(labels, pred_probs, **kwargs):\n"
        "    return np.asarray(pred_probs).argmax(axis=1) != np.asarray(labels)\n"
    ),
}


@pytest.fixture(scope="module")
def bench(load_benchmark) -> ModuleType:
    return load_benchmark("poisoning.py")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_benchmark_runs_side_by_side(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "fake" / "cleanlab"
    fake.mkdir(parents=True)
    for name, text in FAKE_CLEANLAB.items():
        (fake / name).write_text(text)
    monkeypatch.setenv("PYTHONPATH", str(fake.parent))
    out = tmp_path / "results.json"
    attacks = "clean,random_10,out_of_distribution"
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
    assert "ratio, mean F1 screen_data / cleanlab (HGB):" in printed
    assert "target clean_fpr_per_class" in printed
    saved = json.loads(out.read_text())
    assert saved["quality"]["cleanlab_version"] == "0.0+fake"
    assert saved["quality"]["reference_given_to"] == ["screen_data", "IsolationForest"]

    q = results["quality"]
    assert {c["attack"] for c in q["cases"]} == set(attacks.split(","))
    for case in q["cases"]:
        assert set(case["sides"]) == set(bench.SIDES)
        for side in case["sides"].values():
            assert 0 <= side["precision"] <= 1 and 0 <= max(side["fpr_per_class"].values()) <= 1
            assert 0 <= side["downstream"]["balanced_accuracy"] <= 1
            if case["attack"] == "clean":
                assert side["poisoned"] == 0 and np.isnan(side["f1"])
            else:
                assert side["poisoned"] > 0 and 0 <= side["f1"] <= 1
    ours = q["summary"]["screen_data"]
    f1s = [c["sides"]["screen_data"]["f1"] for c in q["cases"] if c["attack"] == "random_10"]
    assert ours["mean_f1_per_attack"]["random_10"] == pytest.approx(np.mean(f1s))
    assert set(q["summary"]["targets"]) == {"mean_f1", "clean_fpr_per_class", "never_worse_downstream"}


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
