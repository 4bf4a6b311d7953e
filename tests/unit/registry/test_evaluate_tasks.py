"""Evaluation of multiclass and regression models: the gates, the champion, fairness, robustness
and the report read the task from the candidate's model config and use that task's metrics.

Real small models trained by the project's trainer on scikit-learn's bundled data sets (wine:
three classes; diabetes: a regression), an XGBoost and a LightGBM flavor, each beside a model
trained on shuffled targets (no better than chance). Expected values are computed independently
with scikit-learn from the loaded model's own output.
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

from airflow_mlops.exceptions import DataError
from airflow_mlops.registry.evaluation import evaluate_candidate, evaluate_gates
from airflow_mlops.registry.evaluation_report import render_evaluation_report
from airflow_mlops.training.flavors import load_predictor


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
