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


# --- the operating threshold: each model at its own -----------------------------------------------


def _with_threshold(src: Path, dest: Path, threshold: object) -> Path:
    """A copy of a packaged model whose model_config.json stores ``threshold`` (absent: None)."""
    import json
    import shutil

    shutil.copytree(src, dest)
    path = dest / "artifacts" / "weights" / "model_config.json"
    config = json.loads(path.read_text())
    config.pop("threshold", None)
    if threshold is not None:
        config["threshold"] = threshold
    path.write_text(json.dumps(config))
    return dest


def _sklearn_at(model_dir: Path, holdout: pd.DataFrame, threshold: float) -> tuple[float, float]:
    from sklearn.metrics import precision_score, recall_score

    from airflow_mlops.training.flavors import load_predictor

    predicted = load_predictor(model_dir / "artifacts" / "weights").predict_proba(holdout) >= threshold
    return precision_score(holdout["label"], predicted), recall_score(holdout["label"], predicted)


def test_candidate_and_champion_are_each_scored_at_their_own_threshold(models, holdout, tmp_path) -> None:
    candidate = _with_threshold(models["good"], tmp_path / "candidate", 0.3)
    champion = _with_threshold(models["good"], tmp_path / "champion", 0.7)
    report = evaluate_candidate(
        candidate,
        holdout,
        target="label",
        positive_label=1,
        bounds={},
        comparisons=COMPARE,
        threshold=0.5,
        champion=("4", champion),
    )
    assert (report.threshold, report.threshold_source) == (0.3, "model")
    assert (report.champion_threshold, report.champion_threshold_source) == (0.7, "model")
    precision, recall = _sklearn_at(candidate, holdout, 0.3)
    assert report.metrics["precision"] == pytest.approx(precision)
    assert report.metrics["recall"] == pytest.approx(recall)
    precision, recall = _sklearn_at(champion, holdout, 0.7)
    assert report.champion_metrics["precision"] == pytest.approx(precision)
    assert report.champion_metrics["recall"] == pytest.approx(recall)
    # Same weights, different thresholds: the ranking metrics agree, the thresholded ones do not.
    assert report.metrics["roc_auc"] == report.champion_metrics["roc_auc"]
    assert report.metrics["recall"] > report.champion_metrics["recall"]
    stored = report.to_dict()
    assert (stored["threshold"], stored["champion_threshold"]) == (0.3, 0.7)
    assert (stored["threshold_source"], stored["champion_threshold_source"]) == ("model", "model")


def test_a_model_without_a_stored_threshold_is_scored_at_the_fallback(models, holdout, tmp_path) -> None:
    old = _with_threshold(models["good"], tmp_path / "old", None)
    report = evaluate_candidate(
        old, holdout, target="label", positive_label=1, bounds={}, comparisons={}, threshold=0.4
    )
    assert (report.threshold, report.threshold_source) == (0.4, "fallback")
    assert report.champion_threshold is None and report.to_dict()["champion_threshold_source"] is None
    precision, _ = _sklearn_at(old, holdout, 0.4)
    assert report.metrics["precision"] == pytest.approx(precision)
    # The trainer stores one: a freshly trained model never falls back.
    fresh = evaluate_candidate(
        models["good"], holdout, target="label", positive_label=1, bounds={}, comparisons={}, threshold=0.4
    )
    assert fresh.threshold_source == "model" and fresh.threshold != 0.4


@pytest.mark.parametrize("bad", ["0.5", 1.5, -0.1, True])
def test_a_stored_threshold_that_is_not_a_probability_blocks(models, holdout, tmp_path, bad) -> None:
    from airflow_mlops.exceptions import ArtifactError

    broken = _with_threshold(models["good"], tmp_path / "broken", bad)
    with pytest.raises(ArtifactError, match="not a number in"):
        evaluate_candidate(
            broken, holdout, target="label", positive_label=1, bounds={}, comparisons={}, threshold=0.5
        )
