"""The synthetic card-fraud generator: determinism, shape, learnability, poison, example files."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.data.generate import (
    COLUMNS,
    COUNTRIES,
    FEATURES,
    TARGET,
    generate_fraud_data,
    inject_poison,
    main,
    write_example_data,
)
from airflow_mlops.data.io import read_table


@pytest.fixture(scope="module")
def big() -> pd.DataFrame:
    return generate_fraud_data(20_000, seed=11)


def test_deterministic_and_seed_sensitive():
    a = generate_fraud_data(500, seed=3)
    pd.testing.assert_frame_equal(a, generate_fraud_data(500, seed=3))
    assert not a.equals(generate_fraud_data(500, seed=4))


def test_schema_and_ranges(big):
    assert tuple(big.columns) == COLUMNS
    assert big["amount"].dtype == np.float64 and (big["amount"] >= 0).all()
    assert big["merchant_risk"].between(0, 1).all()
    assert big["hour"].dtype == np.int64 and big["hour"].between(0, 23).all()
    assert set(big["country"]) == set(COUNTRIES)
    assert (big["account_age_days"] >= 0).all() and (big["n_tx_24h"] >= 0).all()
    assert set(big[TARGET]) == {0, 1}
    assert not big.isna().any().any()
    assert 0.015 < big[TARGET].mean() < 0.025


def test_learnable_but_not_trivially_separable(big):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in FEATURES if c != "country"]
    model = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), numeric), ("cat", OneHotEncoder(), ["country"])]),
        LogisticRegression(max_iter=1000),
    )
    model.fit(big[list(FEATURES)], big[TARGET])
    holdout = generate_fraud_data(20_000, seed=12)
    auc = roc_auc_score(holdout[TARGET], model.predict_proba(holdout[list(FEATURES)])[:, 1])
    assert 0.85 < auc < 0.99, auc
    # No single feature separates the classes.
    for col in numeric:
        single = roc_auc_score(big[TARGET], big[col])
        assert max(single, 1 - single) < 0.9, (col, single)


def test_shift_moves_the_distribution(big):
    live = generate_fraud_data(20_000, seed=11, shift=1.0)
    assert live["amount"].median() > 1.3 * big["amount"].median()
    assert live["merchant_risk"].mean() > big["merchant_risk"].mean() + 0.05
    assert live["n_tx_24h"].mean() > big["n_tx_24h"].mean() + 0.5
    assert live["country"].isin(["BR", "NG"]).mean() > big["country"].isin(["BR", "NG"]).mean() + 0.1


def test_inject_poison():
    clean = generate_fraud_data(4000, seed=5)
    poisoned = inject_poison(clean, seed=1, n_conflicting_duplicates=6, n_label_flips=8)
    info = poisoned.attrs["poison"]
    assert len(poisoned) == 4006
    assert info["conflicting_duplicates"] == list(range(4000, 4006))
    # Original rows keep their positions; exactly the flipped ones changed label.
    changed = np.flatnonzero(poisoned[TARGET].to_numpy()[:4000] != clean[TARGET].to_numpy())
    assert sorted(changed.tolist()) == info["label_flips"] and len(changed) == 8
    assert poisoned.iloc[:4000][list(FEATURES)].equals(clean[list(FEATURES)])
    for dup, src in zip(info["conflicting_duplicates"], info["duplicate_sources"], strict=True):
        assert poisoned.loc[dup, list(FEATURES)].equals(poisoned.loc[src, list(FEATURES)])
        assert poisoned.loc[dup, TARGET] != poisoned.loc[src, TARGET]
    assert not set(info["duplicate_sources"]) & set(info["label_flips"])
    again = inject_poison(clean, seed=1, n_conflicting_duplicates=6, n_label_flips=8)
    pd.testing.assert_frame_equal(poisoned, again)


def test_inject_poison_rejects_bad_counts():
    with pytest.raises(ValueError, match=">= 0"):
        inject_poison(generate_fraud_data(50, seed=1), seed=1, n_conflicting_duplicates=-1, n_label_flips=0)


def _digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_write_example_data_is_idempotent(tmp_path):
    start = dt.date(2026, 1, 1)
    paths = write_example_data(tmp_path / "a", start=start, days=2, rows_per_day=1200, seed=7)
    assert sorted(paths) == ["live", "reference", "train/2026-01-01", "train/2026-01-02"]
    assert paths["train/2026-01-02"].endswith("train/2026-01-02/batch.parquet")
    assert len(read_table(paths["reference"])) == 20_000
    batch = read_table(paths["train/2026-01-01"])
    assert len(batch) == 1203  # 1200 // 400 = 3 conflicting duplicates appended
    assert tuple(batch.columns) == COLUMNS
    live = read_table(paths["live"])
    assert live["amount"].median() > 1.3 * read_table(paths["reference"])["amount"].median()

    # Same bytes on a re-run; a day's batch does not depend on start/days.
    again = write_example_data(tmp_path / "b", start=start + dt.timedelta(days=1), days=1, rows_per_day=1200)
    assert _digest(paths["reference"]) == _digest(again["reference"])
    assert _digest(paths["live"]) == _digest(again["live"])
    assert _digest(paths["train/2026-01-02"]) == _digest(again["train/2026-01-02"])
    assert _digest(paths["train/2026-01-01"]) != _digest(paths["train/2026-01-02"])


def test_cli(tmp_path, capsys):
    assert (
        main(["--out", str(tmp_path), "--start", "2026-03-01", "--days", "1", "--rows-per-day", "800"]) == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"reference", "live", "train/2026-03-01"}
    assert (tmp_path / "train" / "2026-03-01" / "batch.parquet").is_file()


def test_cli_as_module_rejects_bad_date(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_mlops.data.generate",
            "--out",
            str(tmp_path),
            "--start",
            "01/01/2026",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "--start" in proc.stderr
