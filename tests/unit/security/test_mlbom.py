"""The CycloneDX ML-BOM of a model (airflow_mlops.security.mlbom) says what a model is, for every
flavor and task: the task, flavor, format and library (name and version), and a classifier's
classes; the document stays valid CycloneDX 1.6 and an invalid one is refused."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.artifacts import directory_manifest, sha256_directory
from airflow_mlops.exceptions import ArtifactError
from airflow_mlops.registry.mlflow_registry import package_model, weights_dir
from airflow_mlops.security.mlbom import build_mlbom, model_facts, pinned_requirements, validate_mlbom
from airflow_mlops.training.flavors import read_config
from airflow_mlops.training.trainer import train

DIGEST = "ab" * 32


def _frame(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(9)
    df = pd.DataFrame({"x1": rng.normal(0, 1, n), "x2": rng.normal(0, 1, n)})
    df["species"] = np.select([df.x1 < -0.4, df.x1 < 0.4], ["adelie", "chinstrap"], "gentoo")
    df["mass"] = 4000 + 300 * df.x1 - 100 * df.x2 + rng.normal(0, 20, n)
    return df


def _packaged(tmp: Path, model: str, target: str, params: dict[str, Any]) -> Path:
    df = _frame()
    train(
        df[["x1", "x2", target]], {"target": target, "model": model, "params": params, "seed": 1}, tmp / "w"
    )
    return package_model(tmp / "w", tmp / "model")


def _bom(model_dir: Path, metrics: dict[str, float]) -> dict[str, Any]:
    config = read_config(weights_dir(model_dir))
    bom = build_mlbom(
        model_name="penguins",
        model_dir=model_dir,
        model_sha256=sha256_directory(model_dir)[0],
        files=[(rel, sha) for rel, sha, _ in directory_manifest(model_dir)],
        model_config=config,
        evaluation={"metrics": metrics, "holdout_rows": 60, "gates": {"gates": []}},
        pipeline="penguins",
    )
    validate_mlbom(bom)
    return bom


def _model_props(bom: dict[str, Any]) -> dict[str, str]:
    return {p["name"].split(":", 1)[1]: p["value"] for p in bom["components"][0]["properties"]}


def _card_props(bom: dict[str, Any]) -> dict[str, str]:
    card = bom["components"][0]["modelCard"]
    return {p["name"].split(":", 1)[1]: p["value"] for p in card["properties"]}


def test_a_multiclass_lightgbm_model_is_described_with_its_library_and_classes(tmp_path: Path) -> None:
    model_dir = _packaged(tmp_path, "lightgbm", "species", {"n_estimators": 5})
    bom = _bom(model_dir, {"f1_macro": 0.9, "accuracy": 0.92})
    props = _model_props(bom)
    assert props["task"] == "multiclass" and props["flavor"] == "lightgbm"
    assert props["format"] == "lightgbm-text"
    assert (props["framework"], props["framework_version"]) == ("lightgbm", version("lightgbm"))
    assert props["classes"] == "3" and "torch_version" not in props
    card = bom["components"][0]["modelCard"]
    params = card["modelParameters"]
    assert params["task"] == "multiclass-classification"
    assert params["architectureFamily"] == "lightgbm"
    assert "3 classes of species (adelie, chinstrap, gentoo)" in params["outputs"][0]["format"]
    card_props = _card_props(bom)
    assert json.loads(card_props["class_labels"]) == ["adelie", "chinstrap", "gentoo"]
    assert "positive_label" not in card_props and "operating_threshold" not in card_props
    # The library the model needs is a component the model depends on; torch is not.
    libraries = {c["name"]: c["version"] for c in bom["components"] if c["type"] == "library"}
    assert libraries["lightgbm"] == version("lightgbm") and "torch" not in libraries
    assert "pkg:lightgbm" in bom["dependencies"][0]["dependsOn"]
    files = [c["name"] for c in bom["components"][0]["components"]]
    assert "artifacts/w/model.txt" in files and "pyfunc_model.py" in files


def test_a_regression_model_has_no_classes_and_outputs_values(tmp_path: Path) -> None:
    model_dir = _packaged(tmp_path, "mlp", "mass", {"epochs": 1, "hidden_units": [4]})
    bom = _bom(model_dir, {"rmse": 25.0, "r2": 0.8})
    props = _model_props(bom)
    assert (props["task"], props["flavor"], props["format"]) == ("regression", "torch", "safetensors")
    assert props["framework"] == "torch" and props["framework_version"] == version("torch")
    assert "classes" not in props
    params = bom["components"][0]["modelCard"]["modelParameters"]
    assert params["task"] == "regression" and params["architectureFamily"] == "mlp"
    assert params["outputs"] == [{"format": "predicted value of mass"}]
    assert "class_labels" not in _card_props(bom)
    metrics = {
        m["type"] for m in bom["components"][0]["modelCard"]["quantitativeAnalysis"]["performanceMetrics"]
    }
    assert metrics == {"rmse", "r2"}


def test_a_format_1_config_reads_as_a_binary_torch_model() -> None:
    facts = model_facts({"model_type": "mlp", "torch_version": "2.4.1", "positive_label": 1, "target": "y"})
    assert facts == {
        "flavor": "torch",
        "format": "safetensors",
        "framework": {"name": "torch", "version": "2.4.1"},
        "task": "binary",
    }
    xgb = model_facts(
        {
            "flavor": "xgboost",
            "format": "ubjson",
            "framework": {"name": "xgboost", "version": "3.2.0"},
            "task": "binary",
            "classes": ["no", "yes"],
        }
    )
    assert xgb["classes"] == ["no", "yes"] and xgb["framework"]["name"] == "xgboost"


def test_a_binary_card_says_its_positive_label_and_threshold(tmp_path: Path) -> None:
    config = {
        "format_version": 2,
        "flavor": "xgboost",
        "format": "ubjson",
        "framework": {"name": "xgboost", "version": "3.2.0"},
        "task": "binary",
        "target": "churned",
        "features": ["a"],
        "classes": ["no", "yes"],
        "class_order": ["no", "yes"],
        "positive_label": "yes",
        "threshold": 0.35,
        "objective": "binary:logistic",
    }
    bom = build_mlbom(
        model_name="churn",
        model_dir=tmp_path,
        model_sha256="ab" * 32,
        files=[("artifacts/weights/model.ubj", "01" * 32)],
        model_config=config,
        evaluation={"metrics": {"roc_auc": 0.8}, "holdout_rows": 10, "gates": {"gates": []}},
    )
    validate_mlbom(bom)
    card = bom["components"][0]["modelCard"]
    assert card["modelParameters"]["task"] == "binary-classification"
    assert card["modelParameters"]["outputs"] == [{"format": "probability that churned is yes"}]
    assert json.loads(card["modelParameters"]["modelArchitecture"]) == {"objective": "binary:logistic"}
    card_props = _card_props(bom)
    assert card_props["positive_label"] == "yes" and card_props["operating_threshold"] == "0.35"
    assert card_props["classes"] == "2"


@pytest.mark.parametrize("field", ["task", "flavor", "framework"])
def test_an_mlbom_with_a_malformed_property_is_refused(tmp_path: Path, field: str) -> None:
    """The schema check still bites: a property value must be a string."""
    from airflow_mlops.exceptions import ArtifactError

    bom = build_mlbom(
        model_name="m",
        model_dir=tmp_path,
        model_sha256="ab" * 32,
        files=[],
        model_config={
            "flavor": "lightgbm",
            "task": "regression",
            "framework": {"name": "lightgbm", "version": "4"},
        },
        evaluation={},
    )
    validate_mlbom(bom)
    for prop in bom["components"][0]["properties"]:
        if prop["name"] == f"airflow-mlops:{field}":
            prop["value"] = {"not": "a string"}
    with pytest.raises(ArtifactError, match="not valid CycloneDX"):
        validate_mlbom(bom)


# --- the ML-BOM of a hand-written model ---------------------------------------------------------


def _written_bom(tmp_path: Path, **overrides):
    (tmp_path / "requirements.txt").write_text("mlflow==3.17.2\ntorch==2.13.0\nnumpy<2\n# comment\n")
    kwargs = dict(
        model_name="fraud",
        model_dir=tmp_path,
        model_sha256=DIGEST,
        files=[("MLmodel", "01" * 32), ("artifacts/weights/model.safetensors", "02" * 32)],
        model_config={
            "model_type": "mlp",
            "architecture": {"input_dim": 3, "hidden_units": [8]},
            "features": ["a", "b"],
            "target": "y",
            "positive_label": 1,
            "threshold": 0.7,
        },
        evaluation={
            "metrics": {"roc_auc": 0.9, "pr_auc": float("nan")},
            "holdout_rows": 100,
            "gates": {"gates": [{"name": "roc_auc.min", "passed": True, "value": 0.9, "threshold": 0.85}]},
        },
        training_data={
            "uri": "s3://b/accepted.parquet",
            "sha256": "03" * 32,
            "size": 10,
            "metadata": {"rows": 7},
        },
        holdout={"uri": "s3://b/holdout.parquet", "sha256": "04" * 32, "size": 5, "metadata": {}},
        train_metrics={"val_roc_auc": 0.93, "history": [1, 2]},
        training={
            "backend": "kubernetes",
            "image": "registry.example/trainer:0.1.0",
            "params": {"epochs": 3},
        },
        signer="05" * 32,
        pipeline="fraud_detector",
    )
    kwargs.update(overrides)
    return build_mlbom(**kwargs)


def test_the_mlbom_is_valid_cyclonedx_1_6_with_a_model_card(tmp_path: Path) -> None:
    bom = _written_bom(tmp_path)
    validate_mlbom(bom)
    model = bom["components"][0]
    assert model["type"] == "machine-learning-model" and model["hashes"] == [
        {"alg": "SHA-256", "content": DIGEST}
    ]
    assert [f["name"] for f in model["components"]] == ["MLmodel", "artifacts/weights/model.safetensors"]
    card = model["modelCard"]
    datasets = {d["name"]: d for d in card["modelParameters"]["datasets"]}
    assert datasets["training data"]["contents"]["url"] == "s3://b/accepted.parquet"
    props = {p["name"]: p["value"] for p in datasets["training data"]["contents"]["properties"]}
    assert props["airflow-mlops:sha256"] == "03" * 32 and props["airflow-mlops:rows"] == "7"
    metrics = {m["type"]: m["value"] for m in card["quantitativeAnalysis"]["performanceMetrics"]}
    assert metrics == {"roc_auc": "0.9"}  # NaN is not a measurement
    card_props = {
        p["name"]: json.loads(p["value"]) if p["value"][:1] in "{[0123456789" else p["value"]
        for p in card["properties"]
    }
    assert card_props["airflow-mlops:gate:roc_auc.min"]["threshold"] == 0.85
    assert card_props["airflow-mlops:operating_threshold"] == 0.7
    libraries = {c["name"]: c["purl"] for c in bom["components"] if c["type"] == "library"}
    assert libraries == {"mlflow": "pkg:pypi/mlflow@3.17.2", "torch": "pkg:pypi/torch@2.13.0"}
    (container,) = [c for c in bom["components"] if c["type"] == "container"]
    assert (container["name"], container["version"]) == ("registry.example/trainer", "0.1.0")
    model_props = {p["name"]: p["value"] for p in model["properties"]}
    assert model_props["airflow-mlops:signer_key_fingerprint"] == "05" * 32
    assert "airflow-mlops:train:history" not in model_props  # only scalars


def test_an_invalid_mlbom_is_refused_naming_the_violation(tmp_path: Path) -> None:
    bom = _written_bom(tmp_path)
    bom["components"][0]["modelCard"]["unknown"] = 1
    with pytest.raises(ArtifactError, match=r"not valid CycloneDX 1\.6"):
        validate_mlbom(bom)


def test_pinned_requirements_reads_only_exact_pins(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("a==1.0\nb>=2\nC[extra] == 3.1 ; python_version>'3'\n-r x\n")
    assert pinned_requirements(tmp_path) == [("a", "1.0"), ("c", "3.1")]
    assert pinned_requirements(tmp_path / "missing") == []


def _reason(run_type: str, events: dict[Any, Any] | None = None) -> dict[str, Any]:
    from airflow_mlops.retrain.reason import retrain_reason

    return retrain_reason(events or {}, run_type)


def _drift_reason() -> dict[str, Any]:
    import datetime as dt
    from types import SimpleNamespace

    asset = SimpleNamespace(uri="x-mlops://churn/drift")
    event = SimpleNamespace(
        asset=asset,
        extra={
            "drifted_features": ["tenure"],
            "drift_statistics": {
                "tenure": {
                    "kind": "numeric",
                    "rules": ["tests"],
                    "tests": [{"test": "ks", "statistic": 0.3, "p_value": 1e-6, "drifted": True}],
                }
            },
            "window": "/store/churn/m1/monitor/window.parquet",
            "source_run": "churn__monitor/scheduled__2026-01-05",
        },
        timestamp=dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC),
        source_dag_id="churn__monitor",
        source_run_id="scheduled__2026-01-05",
        source_task_id="emit_drift",
    )
    return _reason("asset_triggered", {"drift": [event]})


def _small_bom(tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    bom = build_mlbom(
        model_name="churn",
        model_dir=tmp_path,
        model_sha256="ab" * 32,
        files=[("artifacts/weights/model.ubj", "01" * 32)],
        model_config={
            "flavor": "xgboost",
            "task": "binary",
            "framework": {"name": "xgboost", "version": "3"},
        },
        evaluation={"metrics": {"roc_auc": 0.8}, "holdout_rows": 10, "gates": {"gates": []}},
        **kwargs,
    )
    validate_mlbom(bom)  # still valid CycloneDX 1.6, formulation included
    return bom


def test_the_mlbom_names_the_drift_event_that_started_the_training_run(tmp_path: Path) -> None:
    reason = _drift_reason()
    bom = _small_bom(tmp_path, retrain_reason=reason, airflow_run="churn__train/asset_triggered__1")
    props = _model_props(bom)
    assert props["retrain:kind"] == "drift"
    assert props["retrain:summary"] == (
        "feature tenure (ks p=1e-06) drifted in window churn__monitor/scheduled__2026-01-05"
    )
    (workflow,) = bom["formulation"][0]["workflows"]
    assert workflow["uid"] == "churn__train/asset_triggered__1"
    trigger = workflow["trigger"]
    assert trigger["type"] == "api" and trigger["uid"] == "x-mlops://churn/drift"
    assert trigger["description"] == reason["summary"]
    event = trigger["event"]
    assert event["timeReceived"] == "2026-01-05T12:00:00+00:00"
    assert event["uid"] == "x-mlops://churn/drift/2026-01-05T12:00:00+00:00"
    assert json.loads(event["data"]["content"]) == reason
    sources = {p["name"]: p["value"] for p in event["properties"]}
    assert sources["airflow-mlops:source:run_id"] == "scheduled__2026-01-05"
    assert {p["name"]: p["value"] for p in trigger["properties"]}[
        "airflow-mlops:retrain:kinds"
    ] == '{"drift": 1}'


@pytest.mark.parametrize(
    ("run_type", "trigger_type"), [("scheduled", "scheduled"), ("manual", "manual"), ("backfill", "manual")]
)
def test_a_run_no_event_started_has_a_trigger_without_an_event(
    tmp_path: Path, run_type: str, trigger_type: str
) -> None:
    bom = _small_bom(tmp_path, retrain_reason=_reason(run_type))
    trigger = bom["formulation"][0]["workflows"][0]["trigger"]
    assert trigger["type"] == trigger_type and "event" not in trigger
    assert _model_props(bom)["retrain:kind"] == {"scheduled": "schedule"}.get(run_type, run_type)


def test_without_a_reason_the_mlbom_has_no_formulation(tmp_path: Path) -> None:
    bom = _small_bom(tmp_path)
    assert "formulation" not in bom and "retrain:kind" not in _model_props(bom)
