"""Poisoning screens: what they catch, what they spare, and that no row is ever lost."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.data.generate import FEATURES, TARGET, generate_fraud_data, inject_poison
from airflow_mlops.data.poisoning import CHECKS, ScreenResult, build_feature_matrix, screen_data
from airflow_mlops.exceptions import DataError, PoisoningDetectedError

F = list(FEATURES)


def screen(df: pd.DataFrame, **kwargs) -> ScreenResult:
    kwargs.setdefault("checks", ["duplicates", "label_flips"])
    kwargs.setdefault("max_suspect_fraction", 0.02)
    return screen_data(df, target=TARGET, features=F, **kwargs)


def assert_accounted(df: pd.DataFrame, result: ScreenResult) -> None:
    """Every input row is in exactly one output frame, unchanged."""
    s = result.summary
    assert s["rows_in"] == len(df) == s["rows_accepted"] + s["rows_quarantined"]
    assert (len(result.accepted), len(result.quarantined)) == (s["rows_accepted"], s["rows_quarantined"])
    positions = sorted(
        [df.index.get_loc(i) for i in result.accepted.index] + result.quarantined["_row_index"].tolist()
    )
    assert positions == list(range(len(df)))
    back = result.quarantined.set_index("_row_index").drop(columns="_reasons")
    pd.testing.assert_frame_equal(back, df.iloc[back.index].set_index(back.index), check_names=False)
    assert result.quarantined["_reasons"].str.len().gt(0).all()


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return generate_fraud_data(4000, seed=31)


@pytest.fixture(scope="module")
def poisoned(clean) -> pd.DataFrame:
    return inject_poison(clean, seed=2, n_conflicting_duplicates=12, n_label_flips=20)


def test_clean_data_is_mostly_accepted(clean):
    result = screen(clean, checks=["duplicates", "label_flips", "outliers"])
    assert result.passed
    assert result.summary["suspect_fraction"] < 0.01
    assert result.summary["check_counts"]["duplicates"] == 0
    assert result.summary["check_counts"]["outliers"] == 0
    # Genuine fraud is mostly kept: the screen must not strip the positive class.
    kept_fraud = result.accepted[TARGET].sum()
    assert kept_fraud >= 0.75 * clean[TARGET].sum()
    assert_accounted(clean, result)


def test_injected_poison_is_caught(poisoned):
    result = screen(poisoned)
    info = poisoned.attrs["poison"]
    quarantined = set(result.quarantined["_row_index"])
    reasons = dict(zip(result.quarantined["_row_index"], result.quarantined["_reasons"], strict=True))
    dup_rows = info["conflicting_duplicates"] + info["duplicate_sources"]
    assert set(dup_rows) <= quarantined  # both rows of each conflicting pair
    assert all("conflicting_duplicate" in reasons[i] for i in dup_rows)
    assert result.summary["check_counts"]["duplicates"] == 24
    caught = [i for i in info["label_flips"] if "label_flip" in reasons.get(i, "")]
    assert len(caught) >= 0.8 * len(info["label_flips"]), (len(caught), len(info["label_flips"]))
    assert_accounted(poisoned, result)
    json.dumps(result.summary)


def test_threshold_exceeded_raises_with_the_numbers(poisoned):
    result = screen(poisoned, max_suspect_fraction=0.005)
    assert not result.passed and not result.summary["passed"]
    n, q = result.summary["rows_in"], result.summary["rows_quarantined"]
    with pytest.raises(PoisoningDetectedError) as err:
        result.raise_if_failed()
    message = str(err.value)
    assert f"{q} of {n} rows suspect" in message
    assert f"suspect_fraction {q / n:.4f} > max_suspect_fraction 0.0050" in message
    assert (
        "duplicates=24" in message
        and f"label_flips={result.summary['check_counts']['label_flips']}" in message
    )


def test_passing_screen_does_not_raise(poisoned):
    result = screen(poisoned, max_suspect_fraction=0.05)
    assert result.passed
    result.raise_if_failed()


def test_class_balance(clean):
    reference = generate_fraud_data(20_000, seed=32)
    ok = screen(clean, checks=["class_balance"], reference=reference)
    assert ok.passed and ok.summary["checks"]["class_balance"]["status"] == "ran"
    assert ok.summary["rows_quarantined"] == 0

    shifted = clean.copy()
    legit = np.flatnonzero(shifted[TARGET].to_numpy() == 0)[:100]
    shifted.iloc[legit, shifted.columns.get_loc(TARGET)] = 1  # positive rate ~2 % -> ~4.5 %
    bad = screen(shifted, checks=["class_balance"], reference=reference, max_class_shift=0.5)
    assert not bad.passed
    assert bad.summary["rows_quarantined"] == 0 and len(bad.accepted) == len(shifted)
    (finding,) = bad.summary["dataset_findings"]
    assert "class_balance" in finding and "> max_class_shift 0.50" in finding
    with pytest.raises(PoisoningDetectedError, match="dataset findings: class_balance"):
        bad.raise_if_failed()

    skipped = screen(clean, checks=["class_balance"])
    assert skipped.passed and skipped.summary["checks"]["class_balance"] == {
        "status": "skipped: no reference"
    }


def test_class_balance_with_string_labels():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": ["no", "yes", "no", "no"]})
    ref = pd.DataFrame({"x": [1.0, 2.0], "y": ["no", "yes"]})
    result = screen_data(
        df,
        target="y",
        features=["x"],
        checks=["class_balance"],
        max_suspect_fraction=0.1,
        reference=ref,
        positive_label="yes",
        max_class_shift=0.4,
    )
    detail = result.summary["checks"]["class_balance"]
    assert (detail["positive_rate"], detail["reference_positive_rate"]) == (0.25, 0.5)
    assert detail["relative_change"] == 0.5 and not result.passed


def test_outliers():
    df = generate_fraud_data(2000, seed=33)
    df.loc[5, "amount"] = 5e8
    df.loc[6, "merchant_risk"] = 40.0
    df.loc[7, "n_tx_24h"] = 10_000
    df.loc[8, "account_age_days"] = -1_000_000
    result = screen(df, checks=["outliers"])
    got = dict(zip(result.quarantined["_row_index"], result.quarantined["_reasons"], strict=True))
    assert got == {5: "outlier", 6: "outlier", 7: "outlier", 8: "outlier"}
    assert_accounted(df, result)


def test_nans_and_infs_do_not_crash_and_missing_labels_are_quarantined():
    df = generate_fraud_data(1000, seed=34)
    df["is_fraud"] = df["is_fraud"].astype("float64")
    df.loc[0:9, "amount"] = np.nan
    df.loc[10:14, "country"] = None
    df.loc[15, "merchant_risk"] = np.inf
    df.loc[16:17, TARGET] = np.nan
    result = screen(df, checks=list(CHECKS), reference=generate_fraud_data(2000, seed=35))
    reasons = dict(zip(result.quarantined["_row_index"], result.quarantined["_reasons"], strict=True))
    assert reasons[16] == reasons[17] == "missing_label"
    assert "outlier" in reasons[15]  # an infinite value is an outlier
    assert not {*range(10)} & {i for i, r in reasons.items() if "outlier" in r}  # NaN is not an outlier
    assert result.summary["check_counts"]["missing_label"] == 2
    assert_accounted(df, result)


def test_exact_duplicates_with_the_same_label_are_fine():
    df = generate_fraud_data(500, seed=36)
    doubled = pd.concat([df, df], ignore_index=True)
    result = screen(doubled, checks=["duplicates"])
    assert result.summary["rows_quarantined"] == 0 and result.passed


def test_keeps_the_original_index(clean):
    df = clean.iloc[:300].set_index(pd.Index([f"tx{i}" for i in range(300)]))
    df.iloc[3, df.columns.get_loc("amount")] = 1e9
    result = screen(df, checks=["outliers"])
    assert list(result.quarantined.index) == ["tx3"] and result.quarantined["_row_index"].tolist() == [3]
    assert result.accepted.index[0] == "tx0"


def test_too_few_rows_for_label_flips_is_recorded():
    df = generate_fraud_data(8, seed=37)
    result = screen(df, checks=["label_flips"], neighbours=10)
    assert result.summary["checks"]["label_flips"]["status"].startswith("skipped")
    assert result.summary["rows_accepted"] == 8


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"features": ["amount", "amonut"]}, DataError, r"\['amonut'\] not in the data"),
        ({"target": "label"}, DataError, r"\['label'\] not in the data"),
        ({"features": []}, DataError, "no feature columns"),
        ({"features": ["amount", TARGET]}, DataError, "must not be listed"),
        ({"checks": ["duplicates", "magic"]}, ValueError, "unknown poisoning check"),
        ({"max_suspect_fraction": 1.5}, ValueError, "max_suspect_fraction"),
    ],
)
def test_bad_arguments(clean, kwargs, error, match):
    args = {
        "target": TARGET,
        "features": F,
        "checks": ["duplicates"],
        "max_suspect_fraction": 0.02,
        **kwargs,
    }
    with pytest.raises(error, match=match):
        screen_data(clean, **args)


def test_empty_frame_and_reserved_columns(clean):
    with pytest.raises(DataError, match="empty"):
        screen(clean.iloc[:0])
    with pytest.raises(DataError, match="reserves"):
        screen(clean.assign(_reasons="x"))


def test_build_feature_matrix():
    df = pd.DataFrame({"a": [1.0, np.nan, 3.0, 1e6], "c": ["x", "y", None, "x"]})
    x = build_feature_matrix(df, ["a", "c"])
    assert x.shape == (4, 4) and np.isfinite(x).all()
    assert np.allclose(x[:, 0].mean(), 0) and np.allclose(x[:, 0].std(), 1)
    assert np.allclose(x[:, 1:].sum(axis=1), 1 / np.sqrt(2))  # one category per row
