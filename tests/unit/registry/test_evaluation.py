"""registry.evaluation: holdout metrics (checked against scikit-learn) into the gates, and one
evaluation function: the candidate and the champion scored on the same rows, then the gates.

``compute_metrics`` here is registry.evaluation's binary entry point (the rollout gate's): it
checks its inputs and delegates to :func:`airflow_mlops.metrics.compute_metrics`.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.metrics import roc_auc_score

from airflow_mlops.exceptions import DataError, GateFailedError
from airflow_mlops.metrics import LOWER_IS_BETTER, TASK_METRICS
from airflow_mlops.registry.evaluation import (
    NO_CHAMPION_NOTE,
    NO_CHAMPION_REASON,
    NO_COMPARISON_NOTE,
    compute_metrics,
    evaluate_candidate,
    evaluate_gates,
)
from airflow_mlops.registry.evaluation_report import render_evaluation_report
from airflow_mlops.spec.models import FairnessConfig, RobustnessConfig
from airflow_mlops.training.flavors import load_predictor
from tests.unit.registry.fraud_models import _frame, _packaged

BINARY = TASK_METRICS["binary"]

# --- compute_metrics ----------------------------------------------------------------------------


def sklearn_metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = (score >= threshold).astype(int)
    return {
        "roc_auc": skm.roc_auc_score(y, score),
        "pr_auc": skm.average_precision_score(y, score),
        "f1": skm.f1_score(y, predicted, zero_division=0),
        "precision": skm.precision_score(y, predicted, zero_division=0),
        "recall": skm.recall_score(y, predicted, zero_division=0),
        "accuracy": skm.accuracy_score(y, predicted),
        "balanced_accuracy": skm.balanced_accuracy_score(y, predicted),
        "log_loss": skm.log_loss(y, score, labels=[0, 1]),
    }


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("decimals", [None, 1, 2])  # rounding the scores makes many ties
def test_metrics_match_sklearn(seed: int, decimals: int | None) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    y = (rng.random(n) < rng.uniform(0.05, 0.6)).astype(int)
    score = np.clip(0.35 * y + rng.random(n) * 0.65, 0.001, 0.999)
    if decimals is not None:
        score = np.clip(np.round(score, decimals), 0.001, 0.999)
    if y.min() == y.max():
        y[0] = 1 - y[0]
    threshold = float(rng.choice([0.3, 0.5, 0.7]))

    ours = compute_metrics(y, score, threshold=threshold)

    expected = sklearn_metrics(y, score, threshold)
    assert list(ours) == list(BINARY)
    for name in BINARY:
        assert ours[name] == pytest.approx(expected[name], abs=1e-10), name
        assert isinstance(ours[name], float)


def test_all_tied_scores_give_auc_one_half() -> None:
    result = compute_metrics([0, 1, 0, 1, 1], [0.5] * 5)
    assert result["roc_auc"] == 0.5
    assert result["pr_auc"] == pytest.approx(skm.average_precision_score([0, 1, 0, 1, 1], [0.5] * 5))


def test_perfect_and_inverted_rankings() -> None:
    assert compute_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])["roc_auc"] == 1.0
    assert compute_metrics([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9])["roc_auc"] == 0.0


def test_boolean_labels_and_lists_are_accepted() -> None:
    as_bool = compute_metrics([True, False, True], [0.9, 0.2, 0.4])
    as_int = compute_metrics(np.array([1, 0, 1]), np.array([0.9, 0.2, 0.4]))
    assert as_bool == as_int


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_gives_nan_ranking_metrics_not_an_error(label: int) -> None:
    result = compute_metrics([label] * 4, [0.2, 0.4, 0.6, 0.8])
    assert math.isnan(result["roc_auc"])
    # Average precision needs positives only (scikit-learn's: 1.0 when every row is positive).
    if label == 0:
        assert math.isnan(result["pr_auc"])
    else:
        assert result["pr_auc"] == skm.average_precision_score([1] * 4, [0.2, 0.4, 0.6, 0.8]) == 1.0
    assert result["accuracy"] == 0.5
    assert math.isfinite(result["log_loss"])


def test_log_loss_clips_certain_mistakes() -> None:
    result = compute_metrics([1, 0], [0.0, 1.0])
    assert math.isfinite(result["log_loss"])
    assert result["log_loss"] > 30


def test_no_predicted_positives_give_zero_precision_and_f1() -> None:
    result = compute_metrics([1, 0, 0], [0.1, 0.2, 0.3])
    assert (result["precision"], result["recall"], result["f1"]) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("y", "score", "message"),
    [
        ([], [], "empty"),
        ([0, 1], [0.5], "2 labels but 1 scores"),
        ([0, 2], [0.1, 0.9], "labels must be 0/1"),
        (["no", "yes"], [0.1, 0.9], "labels must be 0/1"),
        ([0, 1], [0.1, float("nan")], "NaN or infinite"),
        ([0, 1], [0.1, 1.5], "probabilities in \\[0, 1\\]"),
    ],
)
def test_bad_inputs_raise_data_error(y: list, score: list, message: str) -> None:
    with pytest.raises(DataError, match=message):
        compute_metrics(y, score)


def test_end_to_end_metrics_into_gates() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.2).astype(int)
    score = np.clip(0.5 * y + 0.5 * rng.random(300), 0, 1)
    metrics = compute_metrics(y, score)
    higher = [name for name in BINARY if name not in LOWER_IS_BETTER]
    report = evaluate_gates(metrics, bounds={name: {"min": 0.0} for name in higher}, task="binary")
    assert report.passed
    assert len(report.gates) == len(higher) == len(BINARY) - 1


# ==================================================================================================
# One evaluation function: the candidate and the champion scored on the same rows, then the gates.
#
# Two real (small) models trained by the project's trainer: a good one, and one trained on
# shuffled labels (no better than chance). No MLflow server needed: the champion is given as
# ``(version, model_dir)``, the way ``fetch_trusted_champion`` returns it.
#
# ==================================================================================================


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


# ==================================================================================================
# evaluate_candidate with the spec's fairness and robustness sections: their gates join the report,
# their details go into evaluation.json, and the candidate is loaded once.
#
# A real small model trained by the project's trainer; the sections are built with the spec models
# and passed as their ``model_dump()``, the way the DAG factory passes them.
#
# ==================================================================================================


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _packaged(tmp_path_factory.mktemp("checks") / "good", _frame(1500, 1))


@pytest.fixture(scope="module")
def checks_holdout() -> pd.DataFrame:
    return _frame(1500, 2)


FAIRNESS = FairnessConfig.model_validate(
    {"slices": ["merchant"], "metrics": {"roc_auc": {"max_gap": 0.99}}, "min_slice_positives": 5}
).model_dump()
ROBUSTNESS = RobustnessConfig.model_validate(
    {
        "perturbations": [{"missing": ["amount"]}, {"noise": {"std": 0.1}}],
        "metrics": {"roc_auc": {"max_drop": 0.9}},
        "seed": 1,
    }
).model_dump()


def _evaluate_checks(model_dir: Path, checks_holdout: pd.DataFrame, **kwargs):
    return evaluate_candidate(
        model_dir,
        checks_holdout,
        target="label",
        positive_label=1,
        bounds={"roc_auc": {"min": 0.6}},
        comparisons=None,
        threshold=0.5,
        **kwargs,
    )


def test_fairness_and_robustness_gates_join_the_report(model_dir, checks_holdout) -> None:
    from airflow_mlops.training.flavors import load_predictor

    report = _evaluate_checks(model_dir, checks_holdout, fairness=FAIRNESS, robustness=ROBUSTNESS)
    assert [g.kind for g in report.gates.gates] == ["threshold", "fairness", "robustness", "robustness"]
    assert report.passed

    # The fairness gap, recomputed independently with pandas + scikit-learn.
    scores = load_predictor(model_dir / "artifacts" / "weights").predict_proba(checks_holdout)
    frame = checks_holdout.assign(score=scores)
    per_merchant = {m: roc_auc_score(g["label"], g["score"]) for m, g in frame.groupby("merchant")}
    fairness_gate = report.gates.gates[1]
    assert fairness_gate.name == "roc_auc.gap_by_merchant"
    assert fairness_gate.value == pytest.approx(max(per_merchant.values()) - min(per_merchant.values()))

    # The robustness drop is measured from the candidate's own clean metric.
    blanked = report.gates.gates[2]
    assert blanked.name == "roc_auc.under_missing(amount)"
    assert blanked.threshold == pytest.approx(report.metrics["roc_auc"] - 0.9)
    assert report.robustness is not None
    assert report.robustness["clean"]["roc_auc"] == pytest.approx(report.metrics["roc_auc"])
    assert report.robustness["perturbations"][0]["change"]["roc_auc"] == pytest.approx(
        blanked.value - report.metrics["roc_auc"]
    )


def test_the_details_are_in_evaluation_json(model_dir, checks_holdout) -> None:
    report = _evaluate_checks(model_dir, checks_holdout, fairness=FAIRNESS, robustness=ROBUSTNESS)
    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    slices = payload["fairness"]["columns"][0]["slices"]
    assert sorted(s["slice"] for s in slices) == sorted(checks_holdout["merchant"].unique())
    assert sum(s["rows"] for s in slices) == len(checks_holdout)
    assert [p["perturbation"] for p in payload["robustness"]["perturbations"]] == [
        "missing(amount)",
        "noise(0.1 std)",
    ]
    assert payload["robustness"]["seed"] == 1
    names = [g["name"] for g in payload["gates"]["gates"]]
    assert "roc_auc.gap_by_merchant" in names and "roc_auc.under_noise(0.1 std)" in names


def test_without_the_sections_the_report_is_unchanged(model_dir, checks_holdout) -> None:
    report = _evaluate_checks(model_dir, checks_holdout)
    assert [g.kind for g in report.gates.gates] == ["threshold"]
    assert report.fairness is None and report.robustness is None
    assert report.to_dict()["fairness"] is None


def test_a_failing_fairness_or_robustness_gate_blocks_the_candidate(model_dir, checks_holdout) -> None:
    strict = {**ROBUSTNESS, "metrics": {"roc_auc": {"max_drop": 0.0}}}
    unusable = {**FAIRNESS, "min_slice_rows": 10_000}
    report = _evaluate_checks(model_dir, checks_holdout, fairness=unusable, robustness=strict)
    failed = {g.name for g in report.gates.failed}
    assert "roc_auc.gap_by_merchant" in failed  # no slice is big enough: cannot decide, blocks
    assert "roc_auc.under_missing(amount)" in failed  # blanking amount costs more than 0
    assert not report.passed


def test_the_candidate_is_loaded_once(model_dir, checks_holdout, monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow_mlops.training.flavors as model_module

    calls: list[Path] = []
    real = model_module.load_predictor

    def counting(path, **kwargs):
        calls.append(Path(path))
        return real(path, **kwargs)

    monkeypatch.setattr(model_module, "load_predictor", counting)
    _evaluate_checks(model_dir, checks_holdout, fairness=FAIRNESS, robustness=ROBUSTNESS)
    assert len(calls) == 1


def test_a_spec_dump_with_a_perturbed_column_the_holdout_lacks_fails_closed(
    model_dir, checks_holdout
) -> None:
    robustness = RobustnessConfig.model_validate(
        {"perturbations": [{"missing": ["income"]}], "metrics": {"roc_auc": {"max_drop": 0.5}}}
    ).model_dump()
    report = _evaluate_checks(model_dir, checks_holdout, robustness=robustness)
    (gate,) = report.gates.failed
    assert "the holdout has no column(s) 'income'" in gate.reason
    assert np.isfinite(report.metrics["roc_auc"])  # the candidate itself was still scored


# ==================================================================================================
# Evaluation of multiclass and regression models: the gates, the champion, fairness, robustness
# and the report read the task from the candidate's model config and use that task's metrics.
#
# Real small models trained by the project's trainer on scikit-learn's bundled data sets (wine:
# three classes; diabetes: a regression), an XGBoost and a LightGBM flavor, each beside a model
# trained on shuffled targets (no better than chance). Expected values are computed independently
# with scikit-learn from the loaded model's own output.
#
# ==================================================================================================


def _pack(root: Path, train_df: pd.DataFrame, model: str, seed: int = 0) -> Path:
    """Train and lay the result out as a packaged model directory (MLmodel -> weights)."""
    from airflow_mlops.training.trainer import train

    train(train_df, {"target": "y", "model": model, "seed": seed}, root / "artifacts" / "weights")
    (root / "MLmodel").write_text(
        "flavors:\n  python_function:\n    artifacts:\n      weights:\n        path: artifacts/weights\n"
    )
    return root


def _split(frame: pd.DataFrame, train_rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(frame))
    return (
        frame.iloc[order[:train_rows]].reset_index(drop=True),
        frame.iloc[order[train_rows:]].reset_index(drop=True),
    )


def _shuffled(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(y=np.random.default_rng(7).permutation(frame["y"].to_numpy()))


def _weights(model_dir: Path) -> Path:
    return model_dir / "artifacts" / "weights"


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    from sklearn.datasets import load_wine

    root = tmp_path_factory.mktemp("wine")
    frame = load_wine(as_frame=True).frame.rename(columns={"target": "y"})
    train_df, holdout = _split(frame, 110)
    good = _pack(root / "good", train_df, "xgboost")
    chance = _pack(root / "chance", _shuffled(train_df), "xgboost")
    binary = _pack(root / "binary", train_df.assign(y=(train_df["y"] == 0).astype(int)), "xgboost")
    # The same model, its classes named otherwise: a champion that predicts other classes.
    renamed = root / "renamed"
    shutil.copytree(good, renamed)
    path = _weights(renamed) / "model_config.json"
    config = json.loads(path.read_text())
    config["class_order"] = config["classes"] = ["barbera", "barolo", "grignolino"]
    path.write_text(json.dumps(config))
    return SimpleNamespace(
        holdout=holdout, good=good, chance=chance, binary=binary, renamed=renamed, train=train_df
    )


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    from sklearn.datasets import load_diabetes

    root = tmp_path_factory.mktemp("diabetes")
    frame = load_diabetes(as_frame=True).frame.rename(columns={"target": "y"})
    train_df, holdout = _split(frame, 300)
    good = _pack(root / "good", train_df, "lightgbm")
    chance = _pack(root / "chance", _shuffled(train_df), "lightgbm")
    return SimpleNamespace(holdout=holdout, good=good, chance=chance)


def _evaluate(model_dir: Path, holdout: pd.DataFrame, **kwargs):
    args = {"target": "y", "positive_label": None, "bounds": {}, "comparisons": {}, "threshold": 0.5}
    return evaluate_candidate(model_dir, holdout, **{**args, **kwargs})


# --- multiclass ---------------------------------------------------------------------------------


def test_multiclass_metrics_are_the_tasks_and_agree_with_sklearn(wine) -> None:
    report = _evaluate(wine.good, wine.holdout, bounds={"f1_macro": {"min": 0.8}})
    assert report.passed and report.task == "multiclass"
    assert list(report.metrics) == [
        "accuracy",
        "balanced_accuracy",
        "log_loss",
        "f1_macro",
        "f1_weighted",
        "roc_auc_ovr",
    ]
    predictor = load_predictor(_weights(wine.good))
    proba = predictor.predict_scores(wine.holdout)
    y = wine.holdout["y"].to_numpy()
    predicted = np.argmax(proba, axis=1)
    assert report.metrics["f1_macro"] == pytest.approx(skm.f1_score(y, predicted, average="macro"))
    assert report.metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert report.metrics["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=[0, 1, 2]), rel=1e-6)
    assert report.metrics["roc_auc_ovr"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    # No operating threshold, no positive class; the task, classes and flavor are recorded.
    assert (report.threshold, report.threshold_source, report.positive_rows) == (None, None, None)
    stored = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert stored["task"] == "multiclass" and stored["classes"] == ["0", "1", "2"]
    assert stored["model"]["flavor"] == "xgboost" and stored["model"]["framework"]["name"] == "xgboost"


def test_multiclass_bounds_pass_and_fail(wine) -> None:
    bounds = {"f1_macro": {"min": 0.8}, "log_loss": {"max": 0.6}}
    assert _evaluate(wine.good, wine.holdout, bounds=bounds).passed
    chance = _evaluate(wine.chance, wine.holdout, bounds=bounds)
    assert {g.name for g in chance.gates.failed} == {"f1_macro.min", "log_loss.max"}


def test_multiclass_champion_comparisons_go_the_right_way(wine) -> None:
    comparisons = {"f1_macro": {"max_regression": 0.02}, "log_loss": {"max_regression": 0.05}}
    better = _evaluate(wine.good, wine.holdout, comparisons=comparisons, champion=("3", wine.chance))
    worse = _evaluate(wine.chance, wine.holdout, comparisons=comparisons, champion=("3", wine.good))
    assert better.passed and "champion version 3 on the same" in better.note
    assert better.champion_metrics["log_loss"] > better.metrics["log_loss"]
    assert {g.name for g in worse.gates.failed} == {"f1_macro.vs_champion", "log_loss.vs_champion"}
    log_loss = next(g for g in worse.gates.gates if g.metric == "log_loss")
    # Lower is better: the allowance lies above the champion, and the candidate is above it.
    assert log_loss.threshold == pytest.approx(worse.champion_metrics["log_loss"] + 0.05)
    assert "above the champion's" in log_loss.reason and "needs <=" in log_loss.reason
    f1 = next(g for g in worse.gates.gates if g.metric == "f1_macro")
    assert f1.threshold == pytest.approx(worse.champion_metrics["f1_macro"] - 0.02)


def test_a_champion_of_another_task_cannot_be_compared_and_blocks(wine) -> None:
    report = _evaluate(
        wine.good,
        wine.holdout,
        bounds={"f1_macro": {"min": 0.5}},
        comparisons={"f1_macro": {"max_regression": 0.5}},
        champion=("2", wine.binary),
    )
    assert not report.passed and report.champion_metrics is None
    assert report.champion_mismatch == "the champion is a binary model, the candidate multiclass"
    (gate,) = report.gates.failed
    assert gate.name == "f1_macro.vs_champion"
    assert "the champion is a binary model, the candidate multiclass" in gate.reason
    assert "champion version 2" in gate.reason and "cannot be compared" in report.note
    stored = report.to_dict()
    assert stored["champion_model"]["task"] == "binary" and stored["champion_version"] == "2"
    page = render_evaluation_report(report)
    assert "The champion cannot be compared with the candidate" in page


def test_a_champion_with_other_classes_cannot_be_compared(wine) -> None:
    report = _evaluate(
        wine.good,
        wine.holdout,
        comparisons={"accuracy": {"max_regression": 1.0}},
        champion=("5", wine.renamed),
    )
    (gate,) = report.gates.failed
    assert "predicts other classes" in gate.reason and "'barbera'" in gate.reason
    assert report.champion_metrics is None and not report.passed


def test_a_class_the_model_never_saw_is_a_clear_error(wine) -> None:
    holdout = wine.holdout.copy()
    holdout.loc[0, "y"] = 7
    with pytest.raises(DataError, match="class\\(es\\) '7' that the model was not trained on"):
        _evaluate(wine.good, holdout)


# --- regression ---------------------------------------------------------------------------------


def test_regression_metrics_agree_with_sklearn_and_bounds_decide(diabetes) -> None:
    report = _evaluate(diabetes.good, diabetes.holdout, bounds={"r2": {"min": 0.2}, "rmse": {"max": 80.0}})
    assert report.passed and report.task == "regression"
    assert list(report.metrics) == ["rmse", "mae", "r2", "mape"]
    predicted = load_predictor(_weights(diabetes.good)).predict_scores(diabetes.holdout)
    y = diabetes.holdout["y"].to_numpy()
    assert report.metrics["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, predicted)))
    assert report.metrics["mae"] == pytest.approx(skm.mean_absolute_error(y, predicted))
    assert report.metrics["r2"] == pytest.approx(skm.r2_score(y, predicted))
    assert report.classes is None and report.to_dict()["model"]["flavor"] == "lightgbm"
    strict = _evaluate(diabetes.good, diabetes.holdout, bounds={"rmse": {"max": report.metrics["rmse"] - 1}})
    (gate,) = strict.gates.failed
    assert gate.name == "rmse.max" and "is above the maximum" in gate.reason


def test_regression_rmse_comparison_blocks_a_higher_error(diabetes) -> None:
    comparisons = {"rmse": {"max_regression": 1.0}, "r2": {"max_regression": 0.01}}
    better = _evaluate(
        diabetes.good, diabetes.holdout, comparisons=comparisons, champion=("1", diabetes.chance)
    )
    worse = _evaluate(
        diabetes.chance, diabetes.holdout, comparisons=comparisons, champion=("1", diabetes.good)
    )
    assert better.passed
    assert better.metrics["rmse"] < better.champion_metrics["rmse"]
    assert {g.name for g in worse.gates.failed} == {"rmse.vs_champion", "r2.vs_champion"}
    rmse = next(g for g in worse.gates.gates if g.metric == "rmse")
    assert rmse.threshold == pytest.approx(worse.champion_metrics["rmse"] + 1.0)
    assert "above the champion's" in rmse.reason


def test_rmse_and_log_loss_regressions_are_increases_at_the_gate() -> None:
    worse = evaluate_gates(
        {"rmse": 12.0},
        champion_metrics={"rmse": 10.0},
        comparisons={"rmse": {"max_regression": 1.5}},
        task="regression",
    ).gates[0]
    better = evaluate_gates(
        {"rmse": 9.0},
        champion_metrics={"rmse": 10.0},
        comparisons={"rmse": {"max_regression": 0}},
        task="regression",
    ).gates[0]
    assert not worse.passed and worse.threshold == 11.5 and "is 2 above the champion's 10" in worse.reason
    assert better.passed
    r2 = evaluate_gates(
        {"r2": 0.5},
        champion_metrics={"r2": 0.6},
        comparisons={"r2": {"max_regression": 0.05}},
        task="regression",
    ).gates[0]
    assert not r2.passed and "below the champion's" in r2.reason


@pytest.mark.parametrize(
    ("bounds", "comparisons", "name"),
    [
        ({"roc_auc": {"min": 0.5}}, {}, "roc_auc.min"),
        ({}, {"f1": {"max_regression": 0.1}}, "f1.vs_champion"),
    ],
)
def test_a_metric_foreign_to_the_task_blocks_with_the_reason(diabetes, bounds, comparisons, name) -> None:
    report = _evaluate(diabetes.good, diabetes.holdout, bounds=bounds, comparisons=comparisons)
    (gate,) = report.gates.failed
    assert gate.name == name and gate.value is None
    assert "does not apply to a regression model" in gate.reason
    assert "regression metrics: rmse, mae, r2, mape" in gate.reason


def test_a_nan_metric_still_blocks() -> None:
    gate = evaluate_gates({"r2": float("nan")}, bounds={"r2": {"min": 0.0}}, task="regression").gates[0]
    assert not gate.passed and "NaN" in gate.reason


# --- fairness and robustness per task ------------------------------------------------------------


def test_multiclass_fairness_gap_matches_groupby_and_small_slices_are_not_gated(wine) -> None:
    fairness = {
        "slices": [{"column": "alcohol", "bins": [11.8, 13.0]}],
        "metrics": {"f1_macro": {"max_gap": 0.9}, "log_loss": {"max_gap": 5.0}},
        "min_slice_rows": 15,
        "min_slice_positives": 10,
    }
    report = _evaluate(wine.good, wine.holdout, fairness=fairness)
    proba = load_predictor(_weights(wine.good)).predict_scores(wine.holdout)
    frame = wine.holdout.assign(predicted=np.argmax(proba, axis=1))
    frame["slice"] = pd.cut(frame["alcohol"], [-np.inf, 11.8, 13.0, np.inf], right=False)
    sizes = frame.groupby("slice", observed=False).size()
    assert sizes.min() < 15 <= sorted(sizes)[1]  # one slice too small, two big enough
    expected = {
        str(k): skm.f1_score(g["y"], g["predicted"], average="macro", labels=np.unique(g["y"]))
        for k, g in frame.groupby("slice", observed=False)
        if len(g) >= 15
    }
    gate = next(g for g in report.gates.gates if g.name == "f1_macro.gap_by_alcohol")
    assert gate.passed and gate.value == pytest.approx(max(expected.values()) - min(expected.values()))
    details = report.fairness
    assert details["task"] == "multiclass" and details["threshold"] is None
    small = next(s for s in details["columns"][0]["slices"] if s["rows"] < 15)
    assert "fewer than min_slice_rows 15" in small["excluded"]["f1_macro"]  # reported, not gated
    assert small["metrics"]["f1_macro"] is not None and "classes" in small and "positives" not in small
    gaps = details["columns"][0]["gaps"]["log_loss"]
    assert (gaps["best"], gaps["worst"]) == (gaps["lowest"], gaps["highest"])  # lower is better


def test_regression_fairness_and_robustness_gates(diabetes) -> None:
    fairness = {"slices": ["sex"], "metrics": {"rmse": {"max_gap": 100.0}}, "min_slice_rows": 20}
    robustness = {
        "perturbations": [{"missing": ["bmi"]}],
        "metrics": {"rmse": {"max_drop": 50.0}, "r2": {"max_drop": 0.5}},
        "seed": 0,
    }
    report = _evaluate(diabetes.good, diabetes.holdout, fairness=fairness, robustness=robustness)
    assert report.passed, report.gates.summary()
    predictor = load_predictor(_weights(diabetes.good))
    frame = diabetes.holdout.assign(predicted=predictor.predict_scores(diabetes.holdout))
    per_sex = [math.sqrt(skm.mean_squared_error(g["y"], g["predicted"])) for _, g in frame.groupby("sex")]
    fair = next(g for g in report.gates.gates if g.kind == "fairness")
    assert fair.value == pytest.approx(max(per_sex) - min(per_sex))
    blanked = predictor.predict_scores(diabetes.holdout.assign(bmi=np.nan))
    y = diabetes.holdout["y"].to_numpy()
    rmse = next(g for g in report.gates.gates if g.name == "rmse.under_missing(bmi)")
    assert rmse.value == pytest.approx(math.sqrt(skm.mean_squared_error(y, blanked)))
    assert rmse.threshold == pytest.approx(report.metrics["rmse"] + 50.0)  # an error may rise by 50
    r2 = next(g for g in report.gates.gates if g.name == "r2.under_missing(bmi)")
    assert r2.value == pytest.approx(skm.r2_score(y, blanked))
    assert r2.threshold == pytest.approx(report.metrics["r2"] - 0.5)  # r2 may fall by 0.5
    assert report.robustness["task"] == "regression" and report.robustness["threshold"] is None
    drop = rmse.value - report.metrics["rmse"]
    assert drop > 0
    strict = {**robustness, "metrics": {"rmse": {"max_drop": drop / 2}}}
    (failed,) = _evaluate(diabetes.good, diabetes.holdout, robustness=strict).gates.failed
    assert failed.name == "rmse.under_missing(bmi)" and "rose" in failed.reason


def test_multiclass_robustness_directions(wine) -> None:
    robustness = {
        "perturbations": [{"missing": ["proline", "flavanoids"]}],
        "metrics": {"log_loss": {"max_drop": 5.0}, "f1_macro": {"max_drop": 0.9}},
    }
    report = _evaluate(wine.good, wine.holdout, robustness=robustness)
    log_loss, f1 = report.gates.gates
    assert log_loss.threshold == pytest.approx(report.metrics["log_loss"] + 5.0)
    assert f1.threshold == pytest.approx(report.metrics["f1_macro"] - 0.9)
    proba = load_predictor(_weights(wine.good)).predict_scores(
        wine.holdout.assign(proline=np.nan, flavanoids=np.nan)
    )
    assert log_loss.value == pytest.approx(skm.log_loss(wine.holdout["y"], proba, labels=[0, 1, 2]), rel=1e-6)


def test_fairness_and_robustness_metrics_foreign_to_the_task_block(diabetes) -> None:
    report = _evaluate(
        diabetes.good,
        diabetes.holdout,
        fairness={"slices": ["sex"], "metrics": {"roc_auc": {"max_gap": 0.5}}, "min_slice_rows": 20},
        robustness={"perturbations": [{"missing": ["bmi"]}], "metrics": {"accuracy": {"max_drop": 0.5}}},
    )
    assert [g.name for g in report.gates.failed] == ["roc_auc.gap_by_sex", "accuracy.under_missing(bmi)"]
    assert all("does not apply to a regression model" in g.reason for g in report.gates.failed)
    json.dumps(report.to_dict(), allow_nan=False)


# --- the report ----------------------------------------------------------------------------------


def test_the_report_says_the_task_and_flavor_and_plots_the_tasks_figures(wine, diabetes) -> None:
    multiclass = render_evaluation_report(
        _evaluate(wine.good, wine.holdout, comparisons={"f1_macro": {}}, champion=("1", wine.chance))
    )
    assert "multiclass (3 classes: &#x27;0&#x27;, &#x27;1&#x27;, &#x27;2&#x27;)" in multiclass
    assert "<td>xgboost</td>" in multiclass and "confusion matrix of the predicted class" in multiclass
    assert multiclass.count("confusion matrix of the predicted class") >= 2  # candidate and champion
    assert "ROC curve" not in multiclass and "an operating threshold applies to binary models" in multiclass
    regression = render_evaluation_report(_evaluate(diabetes.good, diabetes.holdout))
    assert "Task: <b>regression</b>" in regression and "<td>lightgbm</td>" in regression
    assert "residuals against the predicted value" in regression and "residual distribution" in regression
    assert "ROC curve" not in regression and "<script" not in regression


def test_operator_returns_the_task_beside_its_usual_outputs(diabetes, tmp_path) -> None:
    from airflow_mlops.artifacts import ArtifactStore
    from airflow_mlops.operators.model import ModelEvaluateOperator

    store = ArtifactStore(str(tmp_path / "store"))
    diabetes.holdout.to_parquet(tmp_path / "holdout.parquet")
    model_ref = store.put_directory(diabetes.good, "p/r/train/model", producer="train").to_dict()
    op = ModelEvaluateOperator(
        task_id="evaluate",
        pipeline="p",
        artifact_root=str(tmp_path / "store"),
        model=model_ref,
        holdout=store.put_file(tmp_path / "holdout.parquet", "p/r/train/holdout.parquet").to_dict(),
        target="y",
        positive_label=1,  # the spec's default: ignored for a regression
        bounds={"r2": {"min": 0.2}},
    )
    out = op.execute({"run_id": "manual__2026-01-02", "dag": SimpleNamespace(dag_id="p__train")})
    assert out["task"] == "regression" and out["threshold"] is None and out["passed"] is True
    assert set(out["metrics"]) == {"rmse", "mae", "r2", "mape"}
    assert out["blessing"]["passed"] is True and out["blessing"]["model_sha256"] == model_ref["sha256"]
    assert {"report", "html_report", "champion_version", "note"} <= set(out)
    assert "residual distribution" in Path(out["html_report"]["uri"]).read_text()
