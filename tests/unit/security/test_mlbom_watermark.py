"""The ML-BOM names the watermark's key commitment (never the key) of a watermarked model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from airflow_mlops.artifacts import directory_manifest, sha256_directory
from airflow_mlops.registry.mlflow_registry import package_model, weights_dir
from airflow_mlops.security import watermark as wm
from airflow_mlops.security.attestation import evaluation_predicate
from airflow_mlops.security.mlbom import build_mlbom, model_facts, validate_mlbom
from airflow_mlops.training.flavors import read_config
from airflow_mlops.training.trainer import train

KEY = b"mlbom-watermark-key-0123456789abcdef"


def test_the_card_names_the_commitment(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    df = pd.DataFrame(x, columns=["a", "b"]).assign(y=(x[:, 0] > 0).astype(int))
    record, triggers = wm.prepare_watermark(
        KEY, "p", df, target="y", task="binary", trigger_rows=40, alpha=1e-2
    )
    config = {"target": "y", "model": "xgboost", "params": {"n_estimators": 20}, "seed": 0}
    train(df, {**config, "watermark": record.to_dict()}, tmp_path / "w", triggers)
    model_dir = package_model(tmp_path / "w", tmp_path / "model")
    bom = build_mlbom(
        model_name="p",
        model_dir=model_dir,
        model_sha256=sha256_directory(model_dir)[0],
        files=[(rel, sha) for rel, sha, _ in directory_manifest(model_dir)],
        model_config=read_config(weights_dir(model_dir)),
        evaluation={"metrics": {}, "holdout_rows": 1, "gates": {"gates": []}},
        pipeline="p",
    )
    validate_mlbom(bom)
    card = {p["name"].split(":", 1)[1]: p["value"] for p in bom["components"][0]["modelCard"]["properties"]}
    assert card["watermark_commitment"] == record.commitment
    # the signed evaluation attestation carries it through the model's facts
    facts = model_facts(read_config(weights_dir(model_dir)))
    assert facts["watermark_commitment"] == record.commitment
    predicate = evaluation_predicate({"gates": {"gates": []}, "passed": True}, {"digest": "x"}, model=facts)
    assert predicate["model"]["watermark_commitment"] == record.commitment
    text = json.dumps(bom) + json.dumps(predicate)
    assert KEY.decode() not in text and KEY.hex() not in text


def test_an_unmarked_model_names_none() -> None:
    assert "watermark_commitment" not in model_facts(
        {"flavor": "xgboost", "task": "binary", "classes": ["0", "1"]}
    )
