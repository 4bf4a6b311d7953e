"""The operating threshold: choose_threshold against scikit-learn, and the trainer storing it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_curve, precision_score, recall_score

from airflow_mlops.exceptions import DataError, TrainingError, TrainingRejectedError
from airflow_mlops.training import network_fit
from airflow_mlops.training.flavors import load_predictor
from airflow_mlops.training.rows import binary_target, stratified_split
from airflow_mlops.training.threshold import check_rule, choose_threshold
from airflow_mlops.training.trainer import train


def scored(seed: int, n: int = 400, *, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Imbalanced labels with overlapping scores; ``decimals`` rounds them to create ties."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    y[:2] = [1, 0]
    score = np.clip(rng.normal(0.3 + 0.35 * y, 0.18), 0.0, 1.0)
    return y, (np.round(score, decimals) if decimals is not None else score)


def brute_force(y: np.ndarray, score: np.ndarray) -> list[tuple[float, float, float, float]]:
    """``(threshold, precision, recall, f1)`` for every distinct score, by scikit-learn."""
    rows = []
    for t in np.unique(score):
        predicted = score >= t
        rows.append(
            (
                float(t),
                precision_score(y, predicted, zero_division=0),
                recall_score(y, predicted),
                f1_score(y, predicted),
            )
        )
    return rows


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("decimals", [None, 2])
def test_best_f1_is_the_brute_force_maximum_with_ties_to_the_higher_threshold(seed: int, decimals) -> None:
    y, score = scored(seed, decimals=decimals)
    choice = choose_threshold(y, score, {"rule": "best_f1"})
    rows = brute_force(y, score)
    best = max(f1 for _, _, _, f1 in rows)
    expected = max(t for t, _, _, f1 in rows if f1 == pytest.approx(best, abs=1e-12))
    assert choice["value"] == expected
    assert choice["validation"]["f1"] == pytest.approx(best)
    assert choice["validation"]["precision"] == pytest.approx(precision_score(y, score >= expected))
    assert choice["validation"]["rows"] == len(y) and choice["validation"]["positives"] == int(y.sum())
    json.dumps(choice, allow_nan=False)  # JSON-safe


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("target", [0.5, 0.7, 0.9])
def test_min_precision_takes_the_highest_recall_among_precise_enough_thresholds(
    seed: int, target: float
) -> None:
    y, score = scored(seed, decimals=3)
    precision, recall, thresholds = precision_recall_curve(y, score)
    # scikit-learn's curve: precision[i], recall[i] at thresholds[i] (the last point has no threshold).
    ok = [(r, t) for p, r, t in zip(precision[:-1], recall[:-1], thresholds, strict=True) if p >= target]
    if not ok:
        with pytest.raises(TrainingRejectedError, match=f"no threshold reaches precision {target:g}"):
            choose_threshold(y, score, {"rule": "min_precision", "value": target})
        return
    best_recall = max(r for r, _ in ok)
    expected = max(t for r, t in ok if r == best_recall)
    choice = choose_threshold(y, score, {"rule": "min_precision", "value": target})
    assert choice["value"] == pytest.approx(expected)
    assert choice["validation"]["recall"] == pytest.approx(best_recall)
    assert precision_score(y, score >= choice["value"]) >= target
    assert (choice["rule"], choice["target"]) == ("min_precision", target)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("target", [0.5, 0.9, 1.0])
def test_min_recall_takes_the_highest_precision_among_sensitive_enough_thresholds(
    seed: int, target: float
) -> None:
    y, score = scored(seed, decimals=2)
    rows = [row for row in brute_force(y, score) if row[2] >= target]
    best_precision = max(p for _, p, _, _ in rows)
    expected = max(t for t, p, _, _ in rows if p == pytest.approx(best_precision, abs=1e-12))
    choice = choose_threshold(y, score, {"rule": "min_recall", "value": target})
    assert choice["value"] == expected
    assert choice["validation"]["precision"] == pytest.approx(best_precision)
    assert recall_score(y, score >= choice["value"]) >= target


def test_fixed_rule_and_bare_number_keep_the_value_and_report_it_on_validation_rows() -> None:
    y, score = scored(1)
    choice = choose_threshold(y, score, 0.42)
    assert choice["value"] == 0.42 and choice["rule"] == "fixed"
    assert choice["validation"]["recall"] == pytest.approx(recall_score(y, score >= 0.42))
    assert choose_threshold([], [], {"rule": "fixed", "value": 0.6})["validation"] is None


def test_an_unreachable_precision_names_the_best_that_was_reachable() -> None:
    y = np.array([1, 0, 1, 0, 0, 1])
    score = np.array([0.9, 0.9, 0.8, 0.7, 0.6, 0.5])  # at best 2 of 3 alerts are fraud
    with pytest.raises(TrainingRejectedError) as info:
        choose_threshold(y, score, {"rule": "min_precision", "value": 0.8})
    message = str(info.value)
    assert "no threshold reaches precision 0.8 on the 6 validation rows" in message
    assert "the best is 0.6667 at recall 0.6667" in message


def test_bad_inputs_and_rules_are_refused() -> None:
    y, score = scored(2)
    with pytest.raises(DataError, match="there are none"):
        choose_threshold([], [], {"rule": "best_f1"})
    with pytest.raises(DataError, match="none of the 3 is positive"):
        choose_threshold([0, 0, 0], [0.1, 0.2, 0.3], {"rule": "min_recall", "value": 0.5})
    with pytest.raises(DataError, match="NaN or infinite"):
        choose_threshold([0, 1], [0.1, float("nan")], {"rule": "best_f1"})
    with pytest.raises(DataError, match="same length"):
        choose_threshold([0, 1], [0.1], {"rule": "best_f1"})
    with pytest.raises(DataError, match="labels must be 0/1"):
        choose_threshold([0, 2], [0.1, 0.2], {"rule": "best_f1"})
    for rule, match in [
        ({"rule": "top_k"}, "unknown rule 'top_k'"),
        ({"rule": "best_f1", "value": 0.5}, "takes no value"),
        ({"rule": "min_precision"}, "needs a number value"),
        ({"rule": "min_recall", "value": 1.5}, r"must lie in \(0, 1\]"),
        ({"rule": "fixed", "value": 1.0}, r"must lie in \(0, 1\)"),
        ({"rule": "best_f1", "extra": 1}, "unknown key"),
        (True, "must be a number or a mapping"),
    ]:
        with pytest.raises(TrainingRejectedError, match=match):
            choose_threshold(y, score, rule)
    assert check_rule(0.3) == {"rule": "fixed", "value": 0.3}


def test_choosing_is_vectorised() -> None:
    y, score = scored(3, n=400_000)
    started = time.process_time()  # CPU seconds: not inflated by a busy machine's waits
    choice = choose_threshold(y, score, {"rule": "min_precision", "value": 0.6})
    assert time.process_time() - started < 5  # O(n log n): an O(n^2) scan would take hours
    assert precision_score(y, score >= choice["value"]) >= 0.6


# --- the trainer --------------------------------------------------------------------------------


def test_the_trainer_chooses_on_its_validation_rows_and_stores_the_threshold(
    tmp_path: Path, make_frame, base_config: dict
) -> None:
    df = make_frame(1500, 31)
    base_config["threshold"] = {"rule": "min_precision", "value": 0.6}
    metrics = train(df, base_config, tmp_path / "m")

    predictor = load_predictor(tmp_path / "m")
    config = predictor.config
    assert config["format_version"] == 2 and config["task"] == "binary"
    assert config["threshold"] == metrics["threshold"] == config["threshold_choice"]["value"]
    assert config["threshold_choice"]["rule"] == metrics["threshold_rule"] == "min_precision"
    # Recompute on the same validation rows (the split's seed is the trainer's): the stored
    # threshold is what the rule gives on them, and its precision meets the rule.
    y_all = binary_target(df["label"], 1, "label")
    _, val_idx = stratified_split(y_all, 0.1, np.random.default_rng(base_config["seed"]))
    y_val = y_all[val_idx]
    scores = predictor.predict_proba(df.iloc[val_idx])
    expected = choose_threshold(y_val, scores, base_config["threshold"])
    assert config["threshold"] == pytest.approx(expected["value"], abs=1e-6)
    predicted = scores >= config["threshold"]
    assert metrics["val_precision"] == pytest.approx(precision_score(y_val, predicted))
    assert metrics["val_recall"] == pytest.approx(recall_score(y_val, predicted))
    assert metrics["val_precision"] >= 0.6
    saved = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert saved["threshold"] == metrics["threshold"]


def test_the_trainer_defaults_to_best_f1_and_refuses_rules_without_validation_rows(
    tmp_path: Path, make_frame, base_config: dict
) -> None:
    metrics = train(make_frame(600, 32), base_config, tmp_path / "m")
    assert metrics["threshold_rule"] == "best_f1"
    assert load_predictor(tmp_path / "m").config["threshold_choice"]["rule"] == "best_f1"

    with pytest.raises(TrainingError, match="validation_fraction is 0"):
        train(make_frame(300, 33), {**base_config, "validation_fraction": 0}, tmp_path / "n")
    with pytest.raises(TrainingError, match="unknown rule 'best_auc'"):
        train(make_frame(300, 33), {**base_config, "threshold": {"rule": "best_auc"}}, tmp_path / "n")
    assert not (tmp_path / "n").exists()  # refused before any training


def test_an_unreachable_rule_fails_the_training_without_writing_a_model(
    tmp_path: Path, make_frame, base_config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A model that scores every row alike: no threshold separates anything.
    monkeypatch.setattr(
        network_fit, "network_outputs", lambda model, x, device, task, scaling: np.full(len(x), 0.5)
    )
    base_config["threshold"] = {"rule": "min_precision", "value": 0.9}
    with pytest.raises(
        TrainingRejectedError, match=r"no threshold reaches precision 0\.9 on the 60 validation rows"
    ):
        train(make_frame(600, 34), base_config, tmp_path / "m")
    assert not (tmp_path / "m").exists()
