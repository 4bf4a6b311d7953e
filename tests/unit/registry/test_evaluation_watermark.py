"""evaluate_candidate with ``training.watermark``: the watermark gate on the candidate's own record,
closed when the candidate does not carry it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.exceptions import GateFailedError
from airflow_mlops.registry.evaluation import evaluate_candidate
from airflow_mlops.security import watermark as wm
from airflow_mlops.training.trainer import train

KEY = b"evaluation-watermark-key-0123456789"


def _pack(root: Path, df: pd.DataFrame, marked: bool) -> Path:
    config = {"target": "y", "model": "xgboost", "params": {"n_estimators": 40}, "seed": 0}
    triggers = None
    if marked:
        record, triggers = wm.prepare_watermark(
            KEY, "p", df, target="y", task="binary", trigger_rows=60, alpha=1e-3
        )
        config["watermark"] = record.to_dict()
    train(df, config, root / "artifacts" / "weights", triggers)
    (root / "MLmodel").write_text(
        "flavors:\n  python_function:\n    artifacts:\n      weights:\n        path: artifacts/weights\n"
    )
    return root


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(900, 3))
    df = pd.DataFrame(x, columns=["a", "b", "c"]).assign(y=(x[:, 0] - x[:, 2] > 0).astype(int))
    return df.iloc[:700].reset_index(drop=True), df.iloc[700:].reset_index(drop=True)


def evaluate(model_dir: Path, holdout: pd.DataFrame, key: bytes | None = KEY) -> object:
    return evaluate_candidate(
        model_dir,
        holdout,
        target="y",
        positive_label=1,
        bounds=None,
        comparisons=None,
        threshold=0.5,
        watermark_required=True,
        watermark_key=key,
    )


def test_a_watermarked_candidate_passes_the_gate(tmp_path: Path, data) -> None:
    report = evaluate(_pack(tmp_path / "m", data[0], marked=True), data[1])
    gate = report.gates.gates[-1]
    assert gate.name == "watermark" and gate.passed and gate.value >= gate.threshold
    assert wm.key_commitment(KEY) in gate.reason  # the signed evaluation names the key's commitment
    assert KEY.decode() not in json.dumps(report.gates.to_dict())


def test_a_candidate_without_the_watermark_is_blocked(tmp_path: Path, data) -> None:
    report = evaluate(_pack(tmp_path / "m", data[0], marked=False), data[1])
    assert not report.gates.passed
    with pytest.raises(GateFailedError, match="watermark: the candidate carries no watermark record"):
        report.gates.raise_if_failed()
    marked = _pack(tmp_path / "w", data[0], marked=True)
    assert not evaluate(marked, data[1], key=None).gates.passed  # no key: blocked, not skipped
