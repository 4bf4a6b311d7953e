"""One evaluation function: the candidate and the champion scored on the same rows, then the gates.

Two real (small) models trained by the project's trainer: a good one, and one trained on
shuffled labels (no better than chance). No MLflow server needed: the champion is given as
``(version, model_dir)``, the way ``fetch_trusted_champion`` returns it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.exceptions import DataError, GateFailedError
from airflow_mlops.registry.evaluation import (
    NO_CHAMPION_NOTE,
    NO_CHAMPION_REASON,
    NO_COMPARISON_NOTE,
    evaluate_candidate,
)

FEATURES = ["amount", "age", "merchant"]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 1.0, n)
    age = rng.normal(40.0, 12.0, n)
    merchant = rng.choice(["grocery", "travel", "online"], n)
    logit = -2.0 + 2.5 * (np.log(amount) - 3.0) + 2.0 * (merchant == "online")
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame({"amount": amount, "age": age, "merchant": merchant, "label": label})


def _packaged(root: Path, train_df: pd.DataFrame) -> Path:
    """Train and lay the result out as a packaged model directory (MLmodel -> weights)."""
    from airflow_mlops.training.trainer import train

    weights = root / "artifacts" / "weights"
    config = {
        "target": "label",
        "features": FEATURES,
        "positive_label": 1,
        "params": {"epochs": 8, "lr": 0.02, "batch_size": 128, "hidden_units": [16]},
        "seed": 3,
        "device": "cpu",
    }
    train(train_df, config, weights)
    (root / "MLmodel").write_text(
        "flavors:\n  python_function:\n    artifacts:\n      weights:\n        path: artifacts/weights\n"
    )
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    data = _frame(1500, 1)
    shuffled = data.assign(label=np.random.default_rng(9).permutation(data["label"].to_numpy()))
    return {"good": _packaged(root / "good", data), "chance": _packaged(root / "chance", shuffled)}


@pytest.fixture(scope="module")
def holdout() -> pd.DataFrame:
    return _frame(600, 2)


COMPARE = {"roc_auc": {"max_regression": 0.01}}


def test_no_champion_means_absolute_thresholds_only_and_says_so(models, holdout) -> None:
    report = evaluate_candidate(
        models["good"],
        holdout,
        target="label",
        positive_label=1,
        bounds={"roc_auc": {"min": 0.7}},
        comparisons=COMPARE,
        threshold=0.5,
        champion=None,
    )
    assert report.passed and report.note == NO_CHAMPION_NOTE
    assert report.champion_version is None and report.champion_metrics is None
    champion_gate = next(g for g in report.gates.gates if g.kind == "champion")
    assert champion_gate.reason == NO_CHAMPION_REASON
    assert report.holdout_rows == 600 and report.positive_rows == int(holdout["label"].sum())
    assert report.to_dict()["note"] == NO_CHAMPION_NOTE
    # The absolute threshold still decides: an impossible minimum blocks.
    strict = evaluate_candidate(
        models["good"],
        holdout,
        target="label",
        positive_label=1,
        bounds={"roc_auc": {"min": 0.999}},
        comparisons=COMPARE,
        threshold=0.5,
    )
    assert not strict.passed
    with pytest.raises(GateFailedError, match=r"roc_auc\.min"):
        strict.gates.raise_if_failed()
    plain = evaluate_candidate(
        models["good"], holdout, target="label", positive_label=1, bounds={}, comparisons={}, threshold=0.5
    )
    assert plain.note == NO_COMPARISON_NOTE


def test_a_worse_candidate_is_blocked_by_the_champion_on_the_same_rows(models, holdout) -> None:
    report = evaluate_candidate(
        models["chance"],
        holdout,
        target="label",
        positive_label=1,
        bounds={},
        comparisons=COMPARE,
        threshold=0.5,
        champion=("4", models["good"]),
    )
    assert not report.passed
    assert report.champion_version == "4" and "champion version 4 on the same 600 rows" in report.note
    assert report.champion_metrics is not None
    assert report.champion_metrics["roc_auc"] > report.metrics["roc_auc"] + 0.1
    (gate,) = report.gates.failed
    assert gate.name == "roc_auc.vs_champion"
    assert gate.threshold == pytest.approx(report.champion_metrics["roc_auc"] - 0.01)


def test_a_better_candidate_passes_against_the_champion(models, holdout) -> None:
    report = evaluate_candidate(
        models["good"],
        holdout,
        target="label",
        positive_label=1,
        bounds={"roc_auc": {"min": 0.7}},
        comparisons=COMPARE,
        threshold=0.5,
        champion=("4", models["chance"]),
    )
    assert report.passed
    assert report.to_dict()["champion_metrics"]["roc_auc"] < report.metrics["roc_auc"]


def test_quoted_and_text_labels_score_the_same(models, holdout) -> None:
    common = {"bounds": {}, "comparisons": {}, "threshold": 0.5, "target": "label"}
    as_ints = evaluate_candidate(models["good"], holdout, positive_label=1, **common)
    quoted = evaluate_candidate(models["good"], holdout, positive_label="1", **common)
    as_text = evaluate_candidate(
        models["good"], holdout.assign(label=holdout["label"].astype(str)), positive_label=1, **common
    )
    assert not math.isnan(as_ints.metrics["roc_auc"])
    assert as_ints.metrics == quoted.metrics == as_text.metrics


def test_unscorable_holdouts_are_clear_errors(models, holdout) -> None:
    common = {"bounds": {}, "comparisons": {}, "threshold": 0.5}
    with pytest.raises(DataError, match="no target column 'is_fraud'"):
        evaluate_candidate(models["good"], holdout, target="is_fraud", positive_label=1, **common)
    with pytest.raises(DataError, match="positive_label 'yes' does not occur"):
        evaluate_candidate(models["good"], holdout, target="label", positive_label="yes", **common)
    with pytest.raises(DataError, match="single class only"):
        evaluate_candidate(
            models["good"], holdout.assign(label=0), target="label", positive_label=0, **common
        )
