"""The monitor estimates the champion's performance without labels: score hands the stored
calibration to detect, detect reports the estimate (JSON, HTML) and summarises it for the drift
event, and emit carries it and applies ``retrain_on``."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from airflow_mlops.exceptions import DriftInputError
from airflow_mlops.tasks import encode_target
from airflow_mlops.training.calibration import fit_calibration, fit_error_model
from tests.unit.drift.task_models import TARGET, TaskModel, trained
from tests.unit.operators.test_monitor_tasks import Monitor, evaluation, shifted_cancer


@pytest.fixture
def monitor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Monitor:
    return Monitor(tmp_path, monkeypatch)


def calibrated(model: TaskModel, tmp_path: Path) -> TaskModel:
    """A copy of ``model`` whose model_config.json holds a calibration fitted on half its holdout."""
    predictor = model.predictor()
    rows = model.holdout.iloc[: len(model.holdout) // 2]
    output = predictor.predict_scores(rows)
    if model.task == "regression":
        cal = fit_error_model(rows[TARGET].to_numpy(), output, rows, model.features)
    else:
        y = encode_target(model.task, rows[TARGET], positive_label=1, classes=predictor.classes)
        labels = ["1"] if model.task == "binary" else predictor.classes
        cal = fit_calibration(model.task, np.asarray(y).astype(int), output, labels)
    out = tmp_path / f"calibrated-{model.task}"
    shutil.copytree(model.model_dir, out)
    config = json.loads((out / "model_config.json").read_text())
    config["calibration"] = cal
    (out / "model_config.json").write_text(json.dumps(config))
    return dataclasses.replace(model, model_dir=out)


def test_a_binary_champion_is_estimated_reported_and_the_event_carries_it(
    monitor: Monitor, tmp_path: Path
) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    cancer, window = shifted_cancer()
    cancer = calibrated(cancer, tmp_path)
    monitor.install(cancer, evaluation(cancer, ["roc_auc", "accuracy"]))

    # A labelled clean window: estimate and realised side by side.
    context = monitor.context()
    scored = monitor.score(cancer.holdout, context)
    assert scored["calibration"]["kind"] == "cbpe"
    detected = monitor.detect(
        scored, context, calibration=scored["calibration"], estimation={"max_drop": 0.05}
    )
    summary = detected["estimated_performance"]
    assert summary["available"] and summary["metric"] == "roc_auc" and summary["basis"] == "realised"
    assert summary["reference"] == pytest.approx(monitor.client.metrics["roc_auc"])
    low, high = summary["interval"]
    assert low <= summary["estimate"] <= high
    stored = monitor.stored_report(context)["estimated_performance"]
    assert stored["method"] == "cbpe" and {m["metric"] for m in stored["metrics"]} >= {
        "roc_auc",
        "accuracy",
        "f1",
    }
    assert all(m["realised"] is not None for m in stored["metrics"] if m["metric"] in ("roc_auc", "accuracy"))
    html = Path(detected["html"]["uri"]).read_text()
    assert "Estimated performance" in html and "realised on the window" in html

    # An unlabelled shifted window: the estimate alone, carried by the drift event.
    context = monitor.context()
    scored = monitor.score(window.drop(columns=TARGET), context)
    detected = monitor.detect(
        scored, context, calibration=scored["calibration"], estimation={"max_drop": 0.05}
    )
    assert detected["drifted"] is True
    summary = detected["estimated_performance"]
    assert summary["basis"] == "estimated" and summary["realised"] is None
    extra = monitor.emit(scored, detected, context)
    assert extra["estimated_performance"] == summary
    json.dumps(extra, allow_nan=False)
    # drift_and_estimated_drop: a drop within max_drop skips the event, with the numbers.
    lenient = {**summary, "max_drop": 1.0, "dropped": False}
    with pytest.raises(AirflowSkipException, match="no performance drop beyond max_drop"):
        monitor.emit(scored, {**detected, "estimated_performance": lenient}, monitor.context(),
             retrain_on="drift_and_estimated_drop")  # fmt: skip
    strict = {**summary, "drop": 0.2, "max_drop": 0.01, "dropped": True}
    extra = monitor.emit(scored, {**detected, "estimated_performance": strict}, monitor.context(),
                 retrain_on="drift_and_estimated_drop")  # fmt: skip
    assert extra["estimated_performance"]["dropped"] is True


def test_a_champion_without_calibration_is_reported_as_such_and_the_rule_refuses_to_guess(
    monitor: Monitor,
) -> None:
    cancer, window = shifted_cancer()  # the shared task model stores no calibration
    monitor.install(cancer, evaluation(cancer, ["roc_auc"]))
    context = monitor.context()
    scored = monitor.score(window, context)
    assert scored["calibration"] is None
    detected = monitor.detect(scored, context, calibration=None)
    summary = detected["estimated_performance"]
    assert summary["available"] is False and "no stored calibration" in summary["reason"]
    assert monitor.stored_report(context)["estimated_performance"] is None
    assert "No estimate in this report" in Path(detected["html"]["uri"]).read_text()
    assert "estimated_performance" in monitor.emit(scored, detected, context)  # the default: drift
    with pytest.raises(DriftInputError, match="no stored calibration"):
        monitor.emit(scored, detected, monitor.context(), retrain_on="drift_and_estimated_drop")
    with pytest.raises(ValueError, match="retrain_on"):
        monitor.emit(scored, detected, monitor.context(), retrain_on="always")


def test_a_regression_champion_gets_direct_loss_estimates(monitor: Monitor, tmp_path: Path) -> None:
    diabetes = calibrated(trained("diabetes"), tmp_path)
    monitor.install(diabetes, evaluation(diabetes, ["rmse", "mae"]))
    context = monitor.context()
    scored = monitor.score(diabetes.holdout.drop(columns=TARGET), context)
    detected = monitor.detect(
        scored, context, calibration=scored["calibration"], estimation={"metric": "mae", "max_drop": 5.0}
    )
    summary = detected["estimated_performance"]
    assert summary["method"] == "dle" and summary["metric"] == "mae" and summary["estimate"] > 0
    # mae is lower-is-better: the drop is estimate - recorded.
    assert summary["drop"] == pytest.approx(summary["estimate"] - monitor.client.metrics["mae"])
    # a metric the task does not estimate: the report keeps the estimate, the summary says why not.
    detected = monitor.detect(
        scored,
        monitor.context(),
        calibration=scored["calibration"],
        estimation={"metric": "roc_auc", "max_drop": 1},
    )
    assert detected["estimated_performance"]["available"] is False
    assert "not estimated for a regression" in detected["estimated_performance"]["reason"]


def test_the_spec_wires_estimation_into_the_monitor_dag(tmp_path: Path) -> None:
    from airflow_mlops.factory.builder import build_monitor_dag
    from airflow_mlops.spec.loader import load_spec_text

    text = f"""\
apiVersion: mlops/v1
pipeline: churn
data:
  source: {tmp_path}/train.parquet
  target: churned
registry:
  model_name: churn-model
monitoring:
  source: {tmp_path}/live.parquet
  estimation: {{metric: accuracy, max_drop: 0.03, retrain_on: drift_and_estimated_drop}}
"""
    dag = build_monitor_dag(load_spec_text(text, str(tmp_path / "spec.yaml"), check_imports=False))
    detect = dag.get_task("monitor.detect")
    assert detect.estimation["metric"] == "accuracy" and detect.estimation["max_drop"] == 0.03
    emitter = dag.get_task("monitor.emit_drift")
    assert emitter.retrain_on == "drift_and_estimated_drop"
