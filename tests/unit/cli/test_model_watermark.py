"""``airflow-mlops model watermark verify``: on a watermarked and an unwatermarked model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.cli import main
from airflow_mlops.security import watermark as wm
from airflow_mlops.training.trainer import train

KEY = "cli-watermark-key-0123456789abcdef"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("wm-cli")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 3))
    df = pd.DataFrame(x, columns=["a", "b", "c"]).assign(label=(x[:, 0] + x[:, 1] > 0).astype(int))
    basis = wm.TriggerBasis.from_frame(df, target="label", task="binary")
    record = wm.make_record(KEY.encode(), "cli-model", basis, trigger_rows=60, alpha=1e-3)
    config = {"target": "label", "model": "xgboost", "params": {"n_estimators": 40}, "seed": 0}
    train(df, {**config, "watermark": record.to_dict()}, root / "marked", record.triggers(KEY.encode()).frame)
    train(df, config, root / "plain", None)
    (root / "record.json").write_text(record.to_json())
    return {"marked": root / "marked", "plain": root / "plain", "record": root / "record.json"}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["model", "watermark", "verify", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_watermarked_model_is_claimed(models, capsys, monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_WATERMARK_KEY", KEY)
    status, out, _ = run(capsys, str(models["marked"]), "--json")
    verdict = json.loads(out)
    assert status == 0 and verdict["claimed"] is True
    assert verdict["matches"] >= verdict["t"] and verdict["n"] == 60
    assert verdict["bound"] <= 1e-3 and KEY not in out
    status, out, _ = run(capsys, str(models["marked"]))
    assert status == 0 and "watermark present" in out and "bound" in out


def test_an_unwatermarked_model_is_not(models, capsys, monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_WATERMARK_KEY", KEY)
    status, out, _ = run(capsys, str(models["plain"]), "--record", str(models["record"]), "--json")
    verdict = json.loads(out)
    assert status == 1 and verdict["claimed"] is False and verdict["matches"] < verdict["t"]
    # Without a record (the plain model has none, and none is given): refused, not guessed.
    status, _, err = run(capsys, str(models["plain"]))
    assert status == 1 and "no watermark record" in err


def test_the_key_must_be_given_and_be_the_committed_one(models, capsys, monkeypatch) -> None:
    monkeypatch.delenv("MLOPS_WATERMARK_KEY", raising=False)
    with pytest.raises(SystemExit, match="MLOPS_WATERMARK_KEY is not set"):
        run(capsys, str(models["marked"]))
    monkeypatch.setenv("OTHER", "another-key-0123456789abcdef")
    status, out, err = run(capsys, str(models["marked"]), "--key-env", "OTHER")
    assert status == 1 and "recorded commitment" in err and "another-key" not in out + err


def test_an_unsafe_model_is_refused_before_it_is_loaded(models, capsys, monkeypatch, tmp_path: Path) -> None:
    import pickle
    import shutil

    monkeypatch.setenv("MLOPS_WATERMARK_KEY", KEY)
    bad = tmp_path / "bad"
    shutil.copytree(models["marked"], bad)
    (bad / "extra.pkl").write_bytes(pickle.dumps(print))  # a global outside the allowlist
    status, _, err = run(capsys, str(bad))
    assert status == 1 and "extra.pkl" in err


def test_a_registered_version_by_its_models_uri(models, capsys, monkeypatch, tmp_path: Path) -> None:
    """``models:/NAME/VERSION``: the version is downloaded (here: a stand-in for the registry's
    download), its packaged layout read through MLmodel, scanned and verified."""
    import shutil

    from airflow_mlops.cli import model as cli_model
    from airflow_mlops.registry import mlflow_registry

    packaged = tmp_path / "version"
    shutil.copytree(models["marked"], packaged / "artifacts" / "weights")
    (packaged / "MLmodel").write_text(
        "flavors:\n  python_function:\n    artifacts:\n      weights:\n        path: artifacts/weights\n"
    )
    asked: list[tuple[str, str]] = []

    def download_version(client, name, version, dest):
        asked.append((name, version))
        return packaged, packaged / "sig", None

    monkeypatch.setattr(mlflow_registry, "download_version", download_version)
    monkeypatch.setattr(cli_model, "mlflow_client", lambda args: object())
    monkeypatch.setenv("MLOPS_WATERMARK_KEY", KEY)
    status, out, _ = run(capsys, "models:/fraud_detector/7", "--json")
    assert status == 0 and json.loads(out)["claimed"] is True and asked == [("fraud_detector", "7")]
    status, _, err = run(capsys, "models:/no-version")
    assert status == 1 and "models:/NAME/VERSION" in err
