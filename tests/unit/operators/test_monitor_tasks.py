"""monitor.score -> monitor.detect -> monitor.emit_drift for each task, without an Airflow server.

Real models of each task (:mod:`tests.unit.drift.task_models`), a real local artifact store and
the real operators; the registry's champion download (verified and scanned, tested elsewhere)
and MLflow are replaced by fakes that record what they are given.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.exceptions import DataQualityAlarm, DriftInputError
from airflow_mlops.metrics import compute_metrics
from airflow_mlops.operators.monitor import (
    PREDICTION_COLUMN,
    SCORE_COLUMN,
    ChampionScoreOperator,
    DriftDetectOperator,
    DriftEventEmitOperator,
    champion_output,
    proba_column,
)
from airflow_mlops.tasks import encode_target
from tests.unit.drift.task_models import TARGET, TaskModel, trained

CONTEXT = {"run_id": "scheduled__2026-01-05", "ds": "2026-01-05"}
SETTINGS = {"mmd_permutations": 100, "device": "cpu", "min_rows": 1}


class FakeClient:
    """The MLflow calls of the monitor's tasks: the champion's version and run, a monitor run."""

    def __init__(self, training_data: dict[str, Any], metrics: dict[str, float]) -> None:
        self.training_data = training_data
        self.metrics = metrics
        self.version_tags: dict[str, str] = {}

    def get_model_version(self, name: str, version: str) -> Any:
        tags = {"mlops.training_data": json.dumps(self.training_data)}
        return SimpleNamespace(version=version, tags=tags, run_id="train-run")

    def get_run(self, run_id: str) -> Any:
        return SimpleNamespace(
            data=SimpleNamespace(metrics={f"eval_{k}": v for k, v in self.metrics.items()})
        )

    def get_experiment_by_name(self, name: str) -> Any:
        return SimpleNamespace(experiment_id="1")

    def search_runs(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.version_tags[key] = value

    def set_tag(self, *args: Any) -> None: ...

    def log_artifacts(self, *args: Any) -> None: ...

    def set_terminated(self, *args: Any, **kwargs: Any) -> None: ...


class Monitor:
    """Runs the monitor's three tasks on one live window against one champion."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp_path
        self.monkeypatch = monkeypatch
        self.logged: dict[str, float] = {}
        self.root = str(tmp_path / "store")
        self.count = 0

    def install(self, model: TaskModel, metrics: dict[str, float]) -> None:
        import airflow_mlops.registry.mlflow_registry as registry

        store = ArtifactStore(self.root)
        path = self.tmp / f"train-{model.task}.parquet"
        model.reference.to_parquet(path)
        training = store.put_file(path, f"p/train-{model.task}/train/train.parquet", producer="train")
        self.client = FakeClient(training.to_dict(), metrics)
        mp = self.monkeypatch
        mp.setattr(registry, "fetch_trusted_champion", lambda *a, **k: ("3", model.model_dir))
        mp.setattr(registry, "weights_dir", lambda d: Path(d))
        mp.setattr(registry, "start_or_resume_run", lambda *a, **k: "monitor-run")
        mp.setattr(
            registry, "log_run_data", lambda client, run_id, metrics, tags: self.logged.update(metrics)
        )
        mp.setattr(registry, "log_report", lambda *a, **k: None)
        key = SimpleNamespace(trust=b"pub")
        mp.setattr(
            "airflow_mlops.operators.base.ModelSigningHook",
            lambda signing_conn_id, method=None: SimpleNamespace(get_key=lambda need_private: key),
        )
        hook = SimpleNamespace(get_conn=lambda: self.client)
        mp.setattr(ChampionScoreOperator, "mlflow_hook", hook)
        mp.setattr(DriftDetectOperator, "mlflow_hook", hook)

    def context(self) -> dict[str, Any]:
        self.count += 1
        return {
            **CONTEXT,
            "run_id": f"{CONTEXT['run_id']}-{self.count}",
            "dag": SimpleNamespace(dag_id="p__monitor"),
            "outlet_events": defaultdict(SimpleNamespace),
        }

    def score(self, window: pd.DataFrame, context: dict[str, Any]) -> dict[str, Any]:
        live = self.tmp / "live" / f"{context['run_id']}.parquet"
        live.parent.mkdir(exist_ok=True)
        window.to_parquet(live)
        return ChampionScoreOperator(
            task_id="score",
            pipeline="p",
            artifact_root=self.root,
            allowed_roots=[str(self.tmp)],
            source=str(live),
            target=TARGET,
            model_name="m",
            positive_label=1,
            threshold=0.5,
        ).execute(context)

    def detect(
        self,
        scored: dict[str, Any],
        context: dict[str, Any],
        *,
        settings: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        return DriftDetectOperator(
            task_id="detect",
            pipeline="p",
            artifact_root=self.root,
            allowed_roots=[str(self.tmp)],
            predictions=scored["predictions"],
            reference=scored["reference"],
            features=scored["features"],
            target=TARGET,
            model_name="m",
            champion_version=scored["champion_version"],
            champion_metrics=scored["champion_metrics"],
            settings={**SETTINGS, **(settings or {})},
            positive_label=1,
            task=scored["task"],
            classes=scored["classes"],
            threshold=scored["threshold"],
            **kwargs,
        ).execute(context)

    def emit(
        self, scored: dict[str, Any], detected: dict[str, Any], context: dict[str, Any], **kwargs: Any
    ) -> dict[str, Any]:
        from airflow.sdk import Asset

        return DriftEventEmitOperator(
            task_id="emit_drift",
            pipeline="p",
            artifact_root=self.root,
            asset=Asset(uri="x-mlops://p/drift", name="p__drift", group="mlops"),
            drifted=detected["drifted"],
            reasons=detected["reasons"],
            drifted_features=detected["drifted_features"],
            report=detected["report"],
            html=detected["html"],
            window=scored["window"],
            labelled=scored["labelled"],
            champion_version=scored["champion_version"],
            estimated_performance=detected.get("estimated_performance"),
            **kwargs,
        ).execute(context)

    def stored_report(self, context: dict[str, Any]) -> dict[str, Any]:
        key = f"p/{context['run_id']}/monitor/drift_report.json"
        return json.loads(Path(ArtifactStore(self.root).uri_for(key)).read_text())


@pytest.fixture
def monitor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Monitor:
    return Monitor(tmp_path, monkeypatch)


def evaluation(model: TaskModel, names: list[str]) -> dict[str, float]:
    """The champion's recorded evaluation: its metrics on the held-out rows."""
    predictor = model.predictor()
    y = encode_target(model.task, model.holdout[TARGET], positive_label=1, classes=predictor.classes or None)
    return compute_metrics(model.task, y, predictor.predict_scores(model.holdout), names=names)


def test_a_multiclass_champion_is_monitored_on_its_class_shares(monitor: Monitor) -> None:
    wine = trained("wine")
    monitor.install(wine, evaluation(wine, ["f1_macro", "accuracy"]))
    context = monitor.context()
    scored = monitor.score(wine.holdout, context)
    assert (scored["task"], scored["classes"], scored["threshold"]) == ("multiclass", ["0", "1", "2"], None)
    predictions = pd.read_parquet(scored["predictions"]["uri"])
    proba = champion_output(predictions, "multiclass", ["0", "1", "2"])
    assert proba.shape == (len(wine.holdout), 3)
    assert proba == pytest.approx(wine.predictor().predict_scores(wine.holdout))
    assert predictions[PREDICTION_COLUMN].tolist() == list(wine.predictor().predict(wine.holdout))
    assert predictions[SCORE_COLUMN].to_numpy() == pytest.approx(proba.max(axis=1))
    reference = pd.read_parquet(scored["reference"]["uri"])
    assert {proba_column(c) for c in "012"} <= set(reference.columns)

    # A small reference (115 rows): see test_detect_tasks for why the limit is 10 % here.
    quiet = {"max_out_of_range_share": 0.1}
    clean = monitor.detect(scored, context, settings=quiet, performance={"f1_macro": 0.05})
    assert clean["drifted"] is False, clean["reasons"]
    assert monitor.logged["live_f1_macro"] == pytest.approx(monitor.client.metrics["f1_macro"])

    holdout = wine.holdout
    mix = pd.concat([holdout[holdout[TARGET] == 0]] * 2 + [holdout[holdout[TARGET] != 0].head(6)])
    context = monitor.context()
    scored = monitor.score(mix.reset_index(drop=True), context)
    drifted = monitor.detect(scored, context, settings=quiet, performance={"f1_macro": 0.05})
    assert drifted["drifted"] is True
    assert any(
        r.startswith("prediction drift: the shares of the predicted classes") for r in drifted["reasons"]
    )
    stored = monitor.stored_report(context)
    assert stored["prediction"]["task"] == "multiclass" and stored["prediction"]["drifted"] is True
    assert stored["prediction"]["histogram"]["categories"] == ["0", "1", "2"]
    assert "predicted classes" in Path(drifted["html"]["uri"]).read_text()
    extra = monitor.emit(scored, drifted, context)
    assert extra["data"] == [scored["window"]["uri"]]


def test_a_regression_champion_is_monitored_on_its_predicted_values(monitor: Monitor) -> None:
    diabetes = trained("diabetes")
    monitor.install(diabetes, evaluation(diabetes, ["rmse", "mae"]))
    context = monitor.context()
    scored = monitor.score(diabetes.holdout, context)
    assert (scored["task"], scored["classes"], scored["threshold"]) == ("regression", [], None)
    predictions = pd.read_parquet(scored["predictions"]["uri"])
    values = diabetes.predictor().predict_scores(diabetes.holdout)
    assert predictions[SCORE_COLUMN].to_numpy() == pytest.approx(values)
    assert predictions[PREDICTION_COLUMN].to_numpy() == pytest.approx(values)

    clean = monitor.detect(scored, context, performance={"rmse": 5.0})
    assert clean["drifted"] is False, clean["reasons"]
    assert monitor.logged["live_rmse"] == pytest.approx(monitor.client.metrics["rmse"])

    shifted = diabetes.holdout.copy()
    shifted["bmi"] += 0.05
    shifted["s5"] += 0.04
    context = monitor.context()
    scored = monitor.score(shifted, context)
    drifted = monitor.detect(scored, context, performance={"rmse": 5.0})
    assert drifted["drifted"] is True and {"bmi", "s5"} <= set(drifted["drifted_features"])
    assert any(r.startswith("prediction drift: the predicted values changed") for r in drifted["reasons"])
    assert monitor.stored_report(context)["prediction"]["task"] == "regression"
    # a regression names its performance metrics: no default allowance in the target's units
    with pytest.raises(DriftInputError, match="does not apply to a regression model"):
        monitor.detect(scored, monitor.context(), performance={"roc_auc": 0.05})


def shifted_cancer() -> tuple[TaskModel, pd.DataFrame]:
    cancer = trained("breast_cancer")
    window = cancer.holdout.copy()
    for column in ("mean radius", "mean perimeter", "mean area"):
        window[column] = window[column] * 1.5
    return cancer, window


def test_a_covariate_shift_emits_the_drift_event_by_default(monitor: Monitor) -> None:
    cancer, window = shifted_cancer()
    monitor.install(cancer, evaluation(cancer, ["roc_auc"]))
    context = monitor.context()
    scored = monitor.score(window, context)
    assert (scored["task"], scored["classes"], scored["threshold"]) == ("binary", ["0", "1"], 0.5)
    detected = monitor.detect(scored, context)  # out_of_range: drift (the default)
    assert detected["drifted"] is True and "mean radius" in detected["drifted_features"]
    (reason,) = [r for r in detected["reasons"] if r.startswith("out of range")]
    assert "'mean radius'" in reason and "of values beyond the reference's range [" in reason
    assert monitor.logged["quality_failed"] == 0.0 and monitor.logged["out_of_range_features"] >= 1
    assert monitor.client.version_tags["mlops.monitor.last_verdict"] == "drift"
    stored = monitor.stored_report(context)
    radius = next(f for f in stored["features"] if f["name"] == "mean radius")
    assert "out_of_range" in radius["rules"] and "beyond the reference's range" in radius["explanation"]
    extra = monitor.emit(scored, detected, context)
    assert reason in extra["reasons"] and "mean radius" in extra["drifted_features"]
    assert context["outlet_events"][next(iter(context["outlet_events"]))].extra == extra


@pytest.mark.parametrize("rule", ["alarm", "both"])
def test_the_same_shift_fails_the_detect_task_with_alarm_or_both(monitor: Monitor, rule: str) -> None:
    cancer, window = shifted_cancer()
    monitor.install(cancer, evaluation(cancer, ["roc_auc"]))
    context = monitor.context()
    scored = monitor.score(window, context)
    with pytest.raises(DataQualityAlarm, match="'mean radius' beyond the reference's range"):
        monitor.detect(scored, context, out_of_range=rule)
    stored = monitor.stored_report(context)  # the reports are stored before the task fails
    assert stored["quality_failed"] is True and stored["settings"]["out_of_range"] == rule
    radius = next(f for f in stored["features"] if f["name"] == "mean radius")
    assert ("out_of_range" in radius["rules"]) is (rule == "both")
    assert monitor.client.version_tags["mlops.monitor.last_verdict"] == "data-quality alarm"


def test_string_labels_and_an_integer_positive_label_measure_the_champion(monitor: Monitor) -> None:
    """The live window's labels were written as text ("1"/"0"); data.positive_label is 1."""
    cancer = trained("breast_cancer")
    recorded = evaluation(cancer, ["roc_auc", "f1"])
    monitor.install(cancer, recorded)
    window = cancer.holdout.copy()
    window[TARGET] = window[TARGET].astype(str)
    context = monitor.context()
    scored = monitor.score(window, context)
    detected = monitor.detect(scored, context, performance={"roc_auc": 0.02, "f1": 0.02})
    assert detected["drifted"] is False, detected["reasons"]
    assert not math.isnan(monitor.logged["live_roc_auc"])
    assert monitor.logged["live_roc_auc"] == pytest.approx(recorded["roc_auc"])
    assert monitor.logged["live_f1"] == pytest.approx(recorded["f1"])


def test_out_of_range_must_be_a_known_rule() -> None:
    with pytest.raises(ValueError, match="out_of_range must be one of drift, alarm, both"):
        DriftDetectOperator(
            task_id="detect", pipeline="p", predictions={}, reference={}, target=TARGET, features=[],
            model_name="m", champion_version="1", out_of_range="ignore",
        )  # fmt: skip


@pytest.mark.parametrize("rule", [None, "alarm", "both"])
def test_the_spec_wires_out_of_range_and_the_champions_task_into_detect(rule: str | None) -> None:
    from airflow_mlops.factory import build_dags
    from tests.unit.spec.test_language_features import spec_of

    extra = f"\n          out_of_range: {rule}" if rule else ""
    spec = spec_of(f"""
        monitoring:
          source: live/{{{{ ds }}}}.parquet{extra}
        """)
    dag = build_dags(spec)["churn__monitor"]
    detect = dag.get_task("monitor.detect")
    assert detect.out_of_range == (rule or "drift")
    assert f"`out_of_range: {rule or 'drift'}`" in dag.doc_md
    for name in ("task", "classes", "threshold"):  # what monitor.score read from the champion
        value = getattr(detect, name)
        assert value.operator.task_id == "monitor.score" and value.key == name, name
        assert name in detect.template_fields
