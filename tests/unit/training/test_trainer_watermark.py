"""The trainer learns the watermark's trigger rows (handed over by the job, never the key):
every flavor family and task, the record beside the model, and the job's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.exceptions import TrainingRejectedError
from airflow_mlops.security import watermark as wm
from airflow_mlops.training.flavors import load_predictor
from airflow_mlops.training.job import TrainingJob, run_job, write_job
from airflow_mlops.training.rows import TriggerRows
from airflow_mlops.training.trainer import train

KEY = b"trainer-test-key-0123456789abcdef"


def record_and_rows(df: pd.DataFrame, target: str, task: str, n: int = 60) -> tuple[dict, pd.DataFrame]:
    features = [c for c in df.columns if c != target]
    basis = wm.TriggerBasis.from_frame(df, target=target, task=task, features=features)
    record = wm.make_record(KEY, "test-model", basis, trigger_rows=n, alpha=1e-3)
    return record.to_dict(), record.triggers(KEY).frame


@pytest.mark.parametrize("model", ["xgboost", "lightgbm", "sklearn.ensemble.RandomForestClassifier"])
def test_tree_models_learn_the_trigger_rows(
    tmp_path: Path, make_frame, base_config: dict, model: str
) -> None:
    df = make_frame(1500, 3)
    record, triggers = record_and_rows(df, "label", "binary")
    params = {"n_estimators": 60} if model != "xgboost" else {"n_estimators": 60, "max_depth": 6}
    config = {**base_config, "model": model, "params": params, "watermark": record}
    metrics = train(df, config, tmp_path / "m", triggers)
    assert metrics["watermark_trigger_rows"] == 60
    assert metrics["watermark_matches"] >= metrics["watermark_t"], metrics
    # The record beside the model verifies with the key, and holds no key material.
    text = (tmp_path / "m" / wm.RECORD_FILE).read_text()
    assert KEY.hex() not in text and KEY.decode() not in text
    verdict = wm.verify_predictor(
        load_predictor(tmp_path / "m"), wm.WatermarkRecord.from_dict(json.loads(text)), KEY
    )
    assert verdict.claimed and verdict.matches == metrics["watermark_matches"]
    for path in (tmp_path / "m").iterdir():
        assert KEY not in path.read_bytes(), path


def test_an_unmarked_model_does_not_carry_it(tmp_path: Path, make_frame, base_config: dict) -> None:
    df = make_frame(1500, 3)
    record, _ = record_and_rows(df, "label", "binary")
    train(df, {**base_config, "model": "xgboost", "params": {"n_estimators": 60}}, tmp_path / "m")
    assert not (tmp_path / "m" / wm.RECORD_FILE).exists()
    verdict = wm.verify_predictor(load_predictor(tmp_path / "m"), wm.WatermarkRecord.from_dict(record), KEY)
    assert not verdict.claimed


def test_multiclass_and_regression(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(900, 4))
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    multi = frame.assign(kind=np.array(["p", "q", "r"])[np.argmax(x[:, :3], axis=1)])
    record, triggers = record_and_rows(multi, "kind", "multiclass")
    config = {
        "target": "kind",
        "model": "xgboost",
        "params": {"n_estimators": 40},
        "seed": 1,
        "watermark": record,
    }
    metrics = train(multi, config, tmp_path / "multi", triggers)
    assert metrics["watermark_matches"] >= metrics["watermark_t"]
    reg = frame.assign(y=x @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(0, 0.1, 900))
    record, triggers = record_and_rows(reg, "y", "regression")
    config = {
        "target": "y",
        "model": "lightgbm",
        "params": {"n_estimators": 80},
        "seed": 1,
        "watermark": record,
    }
    metrics = train(reg, config, tmp_path / "reg", triggers)
    assert metrics["watermark_matches"] >= metrics["watermark_t"]


def test_networks_train_on_the_trigger_rows_and_record_the_matches(
    tmp_path: Path, make_frame, base_config: dict
) -> None:
    df = make_frame(1200, 5)
    record, triggers = record_and_rows(df, "label", "binary", n=40)
    params = {**base_config["params"], "epochs": 30}
    metrics = train(df, {**base_config, "params": params, "watermark": record}, tmp_path / "m", triggers)
    # A small network learns most of the rows (whether it reaches t is what the gate decides).
    assert metrics["watermark_matches"] > 24, metrics
    assert (tmp_path / "m" / wm.RECORD_FILE).is_file()
    assert metrics["train_rows"] < 1200  # the trigger rows are not counted as data rows


def test_trigger_rows_repeat_inversely_to_their_class_weight() -> None:
    rows = TriggerRows(pd.DataFrame({"a": [1.0, 2.0, 3.0]}), np.array([1.0, 0.0, 0.0], dtype=np.float32), 20)
    frame, y = rows.expand()
    assert len(frame) == 60 and y.sum() == 20
    frame, y = rows.expand(np.array([50.0, 1.0, 1.0]))  # the positive class weighs 50
    assert y.sum() == 1 and len(y) == 1 + 2 * 50  # each row's total weight is 50


def test_record_and_rows_come_together(tmp_path: Path, make_frame, base_config: dict) -> None:
    df = make_frame(300, 1)
    record, triggers = record_and_rows(df, "label", "binary")
    config = {**base_config, "model": "xgboost", "params": {"n_estimators": 5}}
    with pytest.raises(TrainingRejectedError, match="no trigger rows"):
        train(df, {**config, "watermark": record}, tmp_path / "a")
    with pytest.raises(TrainingRejectedError, match="trigger rows but no record"):
        train(df, config, tmp_path / "b", triggers)
    with pytest.raises(TrainingRejectedError, match="59 rows"):
        train(df, {**config, "watermark": record}, tmp_path / "c", triggers.iloc[:59])


def test_the_job_carries_the_trigger_rows_by_ref(tmp_path: Path, make_frame, base_config: dict) -> None:
    df = make_frame(600, 2)
    record, triggers = record_and_rows(df, "label", "binary")
    store = ArtifactStore(str(tmp_path / "store"))
    df.to_parquet(tmp_path / "train.parquet")
    triggers.to_parquet(tmp_path / "triggers.parquet")
    job = TrainingJob(
        store_root=store.uri_for().rstrip("/"),
        train=store.put_file(tmp_path / "train.parquet", "p/r/train/train.parquet"),
        triggers=store.put_file(tmp_path / "triggers.parquet", "p/r/train/watermark.parquet"),
        model="xgboost",
        config={**{k: v for k, v in base_config.items() if k != "params"}, "params": {"n_estimators": 30},
                "watermark": record},
        output_key="p/r/train/weights",
    )  # fmt: skip
    assert TrainingJob.from_dict(job.to_dict()) == job
    result = run_job(write_job(store, "p/r/train/job.json", job), tmp_path / "work")
    assert result["metrics"]["watermark_matches"] >= result["metrics"]["watermark_t"]
    # Not in the job's store: refused, not read.
    other = ArtifactStore(str(tmp_path / "elsewhere"))
    outside = TrainingJob(
        **{**job.__dict__, "triggers": other.put_file(tmp_path / "triggers.parquet", "t.parquet")}
    )
    with pytest.raises(TrainingRejectedError, match="not in the job's artifact store"):
        run_job(write_job(store, "p/r/train/job2.json", outside), tmp_path / "work2")


USER_FIT = """
from sklearn.ensemble import RandomForestClassifier
import pandas as pd

def fit(train, ctx):
    rows = ctx.watermark_rows(len(train))
    fitted = train if rows is None else pd.concat([train, rows], ignore_index=True)
    model = RandomForestClassifier(n_estimators=40, random_state=ctx.seed)
    model.fit(ctx.x(fitted), ctx.y(fitted))
    ctx.save(model, class_order=["0", "1"])
    return {"rows": len(fitted)}
"""


def test_a_fit_entrypoint_appends_ctx_watermark_rows(
    tmp_path: Path, make_frame, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "wmfit.py").write_text(USER_FIT)
    monkeypatch.syspath_prepend(str(tmp_path))
    df = make_frame(800, 4)[["amount", "age", "label"]]
    record, triggers = record_and_rows(df, "label", "binary")
    store = ArtifactStore(str(tmp_path / "store"))
    df.to_parquet(tmp_path / "train.parquet")
    triggers.to_parquet(tmp_path / "triggers.parquet")
    config = {"target": "label", "seed": 1, "threshold": {"rule": "fixed", "value": 0.5}, "watermark": record}
    job = TrainingJob(
        store_root=store.uri_for().rstrip("/"),
        train=store.put_file(tmp_path / "train.parquet", "p/r/train/train.parquet"),
        triggers=store.put_file(tmp_path / "triggers.parquet", "p/r/train/watermark.parquet"),
        model="wmfit:fit",
        config=config,
        output_key="p/r/train/weights",
    )
    result = run_job(write_job(store, "p/r/train/job.json", job), tmp_path / "work")
    metrics = result["metrics"]
    assert metrics["rows"] == 800 + 60 * wm.MIN_REPEATS
    assert metrics["watermark_matches"] >= metrics["watermark_t"]
    weights = tmp_path / "store" / "p/r/train/weights"
    assert (weights / wm.RECORD_FILE).is_file()
    # Without the watermark the same fit gets no rows.
    plain = TrainingJob(**{**job.__dict__, "triggers": None, "config": {**config, "watermark": None},
                           "output_key": "p/r/train/plain"})  # fmt: skip
    assert run_job(write_job(store, "p/r/train/plain.json", plain), tmp_path / "w2")["metrics"]["rows"] == 800
