"""Poisoning screens: what they catch, what they spare, and that no row is ever lost."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.data.generate import TARGET, generate_fraud_data
from airflow_mlops.data.poisoning import (
    CHECKS,
    ScreenResult,
    normalise_checks,
    screen_data,
)
from airflow_mlops.exceptions import DataError, PoisoningDetectedError
from tests.unit.data.screens import ALL, F, screen


def assert_accounted(df: pd.DataFrame, result: ScreenResult) -> None:
    """Every input row is in exactly one output frame, unchanged, with reasons and scores."""
    s = result.summary
    assert s["rows_in"] == len(df) == s["rows_accepted"] + s["rows_quarantined"]
    assert (len(result.accepted), len(result.quarantined)) == (s["rows_accepted"], s["rows_quarantined"])
    positions = sorted(
        [df.index.get_loc(i) for i in result.accepted.index] + result.quarantined["_row_index"].tolist()
    )
    assert positions == list(range(len(df)))
    back = result.quarantined.set_index("_row_index").drop(columns=["_reasons", "_scores"])
    pd.testing.assert_frame_equal(back, df.iloc[back.index].set_index(back.index), check_names=False)
    assert result.quarantined["_reasons"].str.len().gt(0).all()
    for text in result.quarantined["_scores"]:
        json.loads(text)
    assert set(s["hashes"]) == {"method", "input", "accepted", "quarantined"}
    json.dumps(s)


def flagged_mask(result: ScreenResult, n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[result.quarantined["_row_index"].to_numpy()] = True
    return mask


def flip_and_screen(batch: pd.DataFrame, ref: pd.DataFrame, flips: np.ndarray, **args) -> tuple[float, float]:
    """Flip the binary label ``y`` of rows ``flips``, screen; recall and precision of the flags."""
    poisoned = batch.copy()
    poisoned.loc[flips, "y"] = 1 - poisoned.loc[flips, "y"]
    result = screen_data(poisoned, reference=ref, **args)
    caught = set(result.quarantined["_row_index"])
    return len(caught & set(flips)) / len(flips), len(caught & set(flips)) / max(len(caught), 1)


def screen_clean_half(x: np.ndarray, y: np.ndarray, *, max_suspect_fraction: float) -> tuple:
    """First half the reference, second half the batch: screen the clean batch (label issues) and
    check that at most 1 % of each class is flagged. Returns reference, batch, args, result."""
    names = [f"f{i}" for i in range(x.shape[1])]
    df = pd.DataFrame(x, columns=names).assign(y=y)
    half = len(df) // 2
    ref, batch = df.iloc[:half].reset_index(drop=True), df.iloc[half:].reset_index(drop=True)
    args = {"target": "y", "features": names, "checks": ["label_issues"]}
    clean = screen_data(batch, max_suspect_fraction=max_suspect_fraction, reference=ref, **args)
    flagged = flagged_mask(clean, len(batch))
    for cls in (0, 1):
        assert flagged[batch["y"].to_numpy() == cls].mean() <= 0.01
    return ref, batch, args, clean


def test_clean_imbalanced_data_spares_the_positives(clean, clean_result):
    """The old kNN rule quarantined ~40 % of genuine fraud; now at most 1 % of each class."""
    result = clean_result
    assert result.passed and not result.summary["dataset_findings"]
    y = clean[TARGET].to_numpy()
    flagged = np.zeros(len(clean), dtype=bool)
    flagged[result.quarantined["_row_index"].to_numpy()] = True
    for cls in (0, 1):
        assert flagged[y == cls].mean() <= 0.01, (cls, flagged[y == cls].sum(), (y == cls).sum())
    assert result.summary["check_counts"]["duplicates"] == 0
    assert_accounted(clean, result)


def test_injected_poison_is_caught(poisoned, poisoned_result, reference):
    result = poisoned_result
    info = poisoned.attrs["poison"]
    reasons = dict(zip(result.quarantined["_row_index"], result.quarantined["_reasons"], strict=True))
    # Only the copies that carry the wrong label, not their genuine sources.
    assert all("conflicting_duplicate" in reasons.get(i, "") for i in info["conflicting_duplicates"])
    assert not any(i in reasons for i in info["duplicate_sources"])
    assert result.summary["check_counts"]["duplicates"] == 12
    # The duplicates check alone also judges the copies with the reference's models.
    alone = screen(poisoned, checks=["duplicates"], reference=reference)
    assert alone.summary["checks"]["duplicates"]["model_source"] == "batch and reference"
    held = set(alone.quarantined["_row_index"])
    assert set(info["conflicting_duplicates"]) <= held and not held & set(info["duplicate_sources"])
    # Hidden fraud (fraud relabelled legitimate) is caught; the kNN rule missed most of it.
    y_clean = generate_fraud_data(4000, seed=31)[TARGET].to_numpy()
    hidden = [i for i in info["label_flips"] if y_clean[i] == 1]
    caught = [i for i in hidden if "label_issue" in reasons.get(i, "")]
    assert hidden and len(caught) >= 0.8 * len(hidden), (len(caught), len(hidden))
    poison = set(info["label_flips"]) | set(info["conflicting_duplicates"])
    precision = len(poison & set(reasons)) / len(reasons)
    assert precision >= 0.6, precision
    assert_accounted(poisoned, result)


def test_summary_has_scores_and_thresholds(poisoned_result):
    checks = poisoned_result.summary["checks"]
    label = checks["label_issues"]
    assert label["threshold"].startswith("per class: the estimated number of issues")
    assert set(label["classes"]) == {"0", "1"}
    assert label["model_source"] == "batch and reference"
    suspects = sum(d["suspects"] for d in label["classes"].values())
    assert suspects == poisoned_result.summary["check_counts"]["label_issues"] > 0
    for detail in label["classes"].values():
        assert detail["cut"] is None or detail["cut"] <= 0
        assert 0 < detail["mean_self_confidence"] <= 1
        assert 0 <= detail["reference_ambiguous_share"] < 1
        assert detail["suspects"] <= round(detail["acted_on"]) <= detail["estimated_issues"] + 0.5
    ood = checks["out_of_distribution"]
    assert ood["fitted_on"] == "reference" and ood["threshold"].startswith("per class: Benjamini-Hochberg")
    assert set(ood["class_cuts"]) == {"0", "1"}
    for cut in ood["class_cuts"].values():
        assert cut is None or cut > ood["reference_score_quantiles"]["q0.5"]
    assert len(poisoned_result.scores["label_issues"]) == poisoned_result.summary["rows_in"]
    q = poisoned_result.quarantined
    flagged = q[q["_reasons"].str.contains("label_issue")]
    for text in flagged["_scores"]:
        scores = json.loads(text)
        assert scores["label_issue"] < 0 and scores["suggested_label"] in (0, 1)


def test_flips_in_balanced_data_beat_the_knn_rule():
    """Random flips at 10 % in a balanced problem: recall and precision floors."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=3000, n_features=8, n_informative=6, random_state=4, class_sep=1.5)
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(8)]).assign(y=y)
    ref = df.iloc[:1500].reset_index(drop=True)
    batch = df.iloc[1500:].reset_index(drop=True)
    flips = np.random.default_rng(0).choice(len(batch), size=150, replace=False)
    recall, precision = flip_and_screen(
        batch, ref, flips, target="y", features=[f"f{i}" for i in range(8)], checks=["label_issues"],
        max_suspect_fraction=0.2,
    )  # fmt: skip
    assert recall >= 0.5 and precision >= 0.85, (recall, precision)


def test_flips_into_a_rare_class_are_caught_and_its_clean_rows_spared():
    """2 % positives, 10 % random flips: most flips go *into* the rare class and outnumber its
    genuine rows. Its clean rows were flagged by the old rule or the flips missed; the count of
    issues estimated per class adapts to the amount of poison in each."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=20_000, n_features=10, n_informative=6, weights=[0.98], flip_y=0.0,
        class_sep=1.5, random_state=7,
    )  # fmt: skip
    ref, batch, args, clean = screen_clean_half(x, y, max_suspect_fraction=1.0)
    assert clean.summary["checks"]["label_issues"]["model_source"] == "batch and reference"
    flips = np.random.default_rng(1).choice(len(batch), size=1000, replace=False)
    recall, precision = flip_and_screen(batch, ref, flips, max_suspect_fraction=1.0, **args)
    assert recall >= 0.9 and precision >= 0.9, (recall, precision)


def test_clean_rows_are_spared_and_flips_caught_in_balanced_data():
    """With a clean reference, a clean batch has at most 1 % of each class flagged, and most 10 %
    random flips are caught."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=6000, n_features=8, n_informative=6, flip_y=0.0, random_state=4, class_sep=1.5
    )
    ref, batch, args, clean = screen_clean_half(x, y, max_suspect_fraction=0.2)
    for detail in clean.summary["checks"]["label_issues"]["classes"].values():
        assert detail["suspects"] <= 0.01 * detail["rows"] and (detail["cut"] is None or detail["cut"] <= 0)
    flips = np.random.default_rng(0).choice(len(batch), size=300, replace=False)
    recall, precision = flip_and_screen(batch, ref, flips, max_suspect_fraction=0.2, **args)
    assert recall >= 0.55 and precision >= 0.85, (recall, precision)


def test_overlapping_classes_with_a_reference_are_spared_and_flips_still_caught():
    """make_classification's defaults (two informative features, 1 % of labels flipped by the
    generator) with classes that overlap: a row in five lies nearer the other class, so the
    batch's own confident-learning estimate acted on several per cent of a clean batch. The
    reference shows the same share: the clean batch is spared (at most 1 % of each class), and
    10 % random flips, far beyond it, are still found."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=6000, class_sep=0.7, random_state=0)
    ref, batch, args, clean = screen_clean_half(x, y, max_suspect_fraction=0.2)
    classes = clean.summary["checks"]["label_issues"]["classes"]
    assert all(detail.get("as_in_the_clean_reference") for detail in classes.values()), classes
    flips = np.random.default_rng(0).choice(len(batch), size=300, replace=False)
    recall, precision = flip_and_screen(batch, ref, flips, max_suspect_fraction=0.3, **args)
    assert recall >= 0.7 and precision >= 0.45, (recall, precision)


def test_without_a_reference_overlapping_classes_keep_a_clean_batch_and_catch_flips():
    """Two Gaussian classes a standard deviation apart (a sixth of the rows nearer the other
    class), no reference: the confident joint alone quarantined 8 % of each class of a clean
    batch; the anchor rows bound it to under 1 %, and 10 % random flips are still found."""
    rng = np.random.default_rng(4)
    n = 10_000
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 5))
    x[:, 0] += np.where(y == 1, 1.0, -1.0)
    names = [f"f{i}" for i in range(5)]
    batch = pd.DataFrame(x, columns=names).assign(y=y)
    args = {"target": "y", "features": names, "checks": ["label_issues"], "max_suspect_fraction": 0.3}
    clean = screen_data(batch, **args)
    flagged = flagged_mask(clean, n)
    for cls in (0, 1):
        assert flagged[y == cls].mean() <= 0.01, (cls, flagged[y == cls].mean())
    flips = rng.choice(n, size=1000, replace=False)
    recall, precision = flip_and_screen(batch, None, flips, **args)
    assert recall >= 0.65 and precision >= 0.4, (recall, precision)


def test_negative_value_in_a_log_compressed_column_is_out_of_distribution(clean, reference):
    df = clean.iloc[:500].copy().reset_index(drop=True)
    df["amount"] = df["amount"].astype("float64")
    df.loc[7, "amount"] = -250.0  # log1p cannot compress it; the reference has no negative amount
    result = screen(df, checks=["out_of_distribution"], reference=reference)
    reasons = dict(zip(result.quarantined["_row_index"], result.quarantined["_reasons"], strict=True))
    assert "out_of_distribution" in reasons.get(7, "")
    assert "amount" in result.summary["checks"]["out_of_distribution"]["extreme_value_columns"]


def test_injected_out_of_distribution_rows_with_plausible_labels(clean, reference):
    df = clean.copy().reset_index(drop=True)
    rng = np.random.default_rng(1)
    rows = rng.choice(len(df), size=20, replace=False)
    # 4-8 standard deviations out on one (log) feature, the label kept as it was.
    log_std = np.log1p(reference["merchant_risk"]).std()
    df.loc[rows, "merchant_risk"] = df.loc[rows, "merchant_risk"] + rng.uniform(4, 8, size=20) * log_std * 3
    df.loc[rows, "n_tx_24h"] = df.loc[rows, "n_tx_24h"] + 15
    result = screen(df, checks=["out_of_distribution"], reference=reference)
    caught = {
        i
        for i, r in zip(result.quarantined["_row_index"], result.quarantined["_reasons"], strict=True)
        if "out_of_distribution" in r
    }
    assert len(caught & set(rows)) >= 18
    assert len(caught - set(rows)) <= 0.01 * len(df)
    assert_accounted(df, result)


def test_threshold_exceeded_raises_with_the_numbers(poisoned, poisoned_result):
    result = screen(poisoned, checks=["duplicates"], max_suspect_fraction=0.001)
    assert not result.passed and not result.summary["passed"]
    n, q = result.summary["rows_in"], result.summary["rows_quarantined"]
    with pytest.raises(PoisoningDetectedError) as err:
        result.raise_if_failed()
    message = str(err.value)
    assert f"{q} of {n} rows suspect" in message
    assert f"suspect_fraction {q / n:.4f} > max_suspect_fraction 0.0010" in message
    assert "duplicates=12" in message


def test_old_check_names_still_work_and_unknown_names_say_what_to_use():
    assert normalise_checks(["label_flips", "outliers", "label_issues"]) == [
        "label_issues",
        "out_of_distribution",
    ]
    with pytest.raises(ValueError, match="did you mean 'label_issues'"):
        normalise_checks(["label_issue"])
    assert set(CHECKS) == set(ALL)


def test_class_balance(clean, reference):
    ok = screen(clean, checks=["class_balance"], reference=reference)
    assert ok.passed and ok.summary["checks"]["class_balance"]["status"] == "ran"
    shifted = clean.copy()
    legit = np.flatnonzero(shifted[TARGET].to_numpy() == 0)[:100]
    shifted.iloc[legit, shifted.columns.get_loc(TARGET)] = 1
    bad = screen(shifted, checks=["class_balance"], reference=reference, max_class_shift=0.5)
    assert not bad.passed and bad.summary["rows_quarantined"] == 0
    (finding,) = bad.summary["dataset_findings"]
    assert "class_balance" in finding and "> max_class_shift 0.50" in finding
    skipped = screen(clean, checks=["class_balance"])
    assert skipped.passed and skipped.summary["checks"]["class_balance"] == {
        "status": "skipped: no reference"
    }


def test_feature_shift_is_a_dataset_finding(clean, reference):
    from scipy.stats import ks_2samp

    moved = clean.assign(amount=clean["amount"] * 3)
    result = screen(moved, checks=["feature_shift"], reference=reference)
    assert not result.passed and result.summary["rows_quarantined"] == 0
    distances = result.summary["checks"]["feature_shift"]["distances"]
    assert distances["amount"] == pytest.approx(ks_2samp(moved["amount"], reference["amount"]).statistic)
    assert any("feature_shift: amount" in f for f in result.summary["dataset_findings"])
    assert distances["merchant_risk"] < 0.1
    ok = screen(clean, checks=["feature_shift"], reference=reference)
    assert ok.passed


def test_nans_and_infs_do_not_crash_and_missing_labels_are_quarantined(reference):
    df = generate_fraud_data(1000, seed=34)
    df["is_fraud"] = df["is_fraud"].astype("float64")
    df.loc[0:9, "amount"] = np.nan
    df.loc[10:14, "country"] = None
    df.loc[15, "merchant_risk"] = np.inf
    df.loc[16:17, TARGET] = np.nan
    result = screen(df, checks=ALL, reference=reference, max_suspect_fraction=0.5)
    reasons = dict(zip(result.quarantined["_row_index"], result.quarantined["_reasons"], strict=True))
    assert reasons[16].startswith("missing_label") and reasons[17].startswith("missing_label")
    assert "out_of_distribution" in reasons[15]  # an infinite value is out of distribution
    assert result.summary["check_counts"]["missing_label"] == 2
    assert_accounted(df, result)


def test_keeps_the_original_index(clean, reference):
    df = clean.iloc[:300].set_index(pd.Index([f"tx{i}" for i in range(300)]))
    df.iloc[3, df.columns.get_loc("amount")] = 1e9
    result = screen(df, checks=["out_of_distribution"], reference=reference)
    assert "tx3" in list(result.quarantined.index) and 3 in result.quarantined["_row_index"].tolist()
    assert result.accepted.index[0] == "tx0"


def test_too_few_rows_for_label_issues_is_recorded():
    df = generate_fraud_data(8, seed=37)
    result = screen(df, checks=["label_issues"])
    assert result.summary["checks"]["label_issues"]["status"].startswith("skipped")
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
        ({"folds": 1}, ValueError, "folds"),
    ],
)
def test_bad_arguments(clean, kwargs, error, match):
    args = {"target": TARGET, "features": F, "checks": ["duplicates"], "max_suspect_fraction": 0.02, **kwargs}
    with pytest.raises(error, match=match):
        screen_data(clean, **args)


def test_bad_input_names_the_column(clean, reference):
    with pytest.raises(DataError, match="empty"):
        screen(clean.iloc[:0])
    with pytest.raises(DataError, match="reserves"):
        screen(clean.assign(_reasons="x"))
    with pytest.raises(DataError, match=r"\['amount'\] are entirely null in the training batch"):
        screen(clean.assign(amount=np.nan))
    with pytest.raises(DataError, match=r"reference data lacks column\(s\) \['hour'\]"):
        screen(clean, reference=reference.drop(columns="hour"))
    with pytest.raises(DataError, match="country: batch"):
        screen(clean, reference=reference.assign(country=1.0))


def test_extreme_values_must_leave_the_reference_range_and_small_skewed_columns_are_compressed():
    """A sparse column (MAD 0: only infinities count) or a skewed column of small values (where
    log1p is nearly the identity) made clean rows "extreme"; a value far outside the reference
    still is."""
    rng = np.random.default_rng(8)

    def frame(n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "pixel": np.where(rng.random(n) < 0.8, 0.0, rng.integers(1, 17, n)).astype(float),
                "small": rng.lognormal(-5.0, 1.0, n),  # ~0.007, heavy right tail
                "x": rng.normal(0, 1, n),
                "y": rng.integers(0, 2, n),
            }
        )

    ref, batch = frame(200), frame(3000)
    args = {"target": "y", "features": ["pixel", "small", "x"], "checks": ["out_of_distribution"]}
    clean = screen_data(batch, max_suspect_fraction=1.0, reference=ref, **args)
    detail = clean.summary["checks"]["out_of_distribution"]
    assert detail["extreme_value_suspects"] <= 0.002 * len(batch), detail["extreme_value_columns"]
    # A value just past the edge of a small reference is not extreme (a digit's stroke in a pixel
    # that the reference's 200 rows never used that strongly).
    edge = batch.copy()

    def strokes(n: int) -> np.ndarray:  # mostly -1..1, sometimes -12..12: MAD 1, range 24
        return np.where(rng.random(n) < 0.8, rng.integers(-1, 2, n), rng.integers(-12, 13, n)).astype(float)

    edge["count"] = strokes(len(edge))
    ref = ref.assign(count=strokes(len(ref)))
    edge.loc[3, "count"] = ref["count"].max() + 2  # robust z ~9.4 > 8, but only just past the edge
    near = screen_data(
        edge, max_suspect_fraction=1.0, reference=ref, **{**args, "features": [*args["features"], "count"]}
    )
    assert 3 not in set(near.quarantined["_row_index"])
    ref = ref.drop(columns="count")
    bad = batch.copy()
    bad.loc[5, "small"] = 50 * ref["small"].max()
    bad.loc[6, "x"] = 40.0
    result = screen_data(bad, max_suspect_fraction=1.0, reference=ref, **args)
    held = set(result.quarantined["_row_index"])
    assert {5, 6} <= held


def _three_classes(seed: int, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["y"] = np.argmax(x, axis=1)
    return frame


@pytest.mark.parametrize(
    "checks", [["duplicates", "label_issues"], ["class_balance"], ["duplicates"], ["out_of_distribution"]]
)
def test_a_multiclass_target_in_a_binary_pipeline_is_a_final_error_not_poisoning(checks) -> None:
    from airflow_mlops.exceptions import is_retryable

    with pytest.raises(DataError, match=r"target column 'y' has 3 classes .*the task is binary") as info:
        screen_data(
            _three_classes(0),
            target="y",
            features=["a", "b", "c"],
            checks=checks,
            max_suspect_fraction=0.02,
            reference=_three_classes(1),
            positive_label=1,
            task="binary",
        )
    assert not isinstance(info.value, PoisoningDetectedError) and not is_retryable(info.value)
    assert "not a poisoning finding" in str(info.value)
    # Without a declared task the same data is a multiclass target and is screened as one.
    inferred = screen_data(
        _three_classes(0),
        target="y",
        features=["a", "b", "c"],
        checks=checks,
        max_suspect_fraction=0.02,
        reference=_three_classes(1),
        positive_label=1,
    )
    assert inferred.summary["task"] == "multiclass"
    assert set(inferred.summary["class_counts"]) == {"0", "1", "2"}


def _binary_batch_with_a_multiclass_reference() -> dict[str, Any]:
    batch = _three_classes(0)
    batch["y"] = (batch["y"] == 1).astype(int)
    return {"df": batch, "reference": _three_classes(1)}


def _text_labels() -> dict[str, Any]:
    texts = _three_classes(2)
    texts["y"] = texts["y"].map({0: "no", 1: "yes", 2: "maybe"})
    return {"df": texts, "positive_label": "yes"}


@pytest.mark.parametrize(
    "make", [_binary_batch_with_a_multiclass_reference, _text_labels], ids=["in-reference", "as-text"]
)
def test_a_third_class_only_in_the_reference_or_as_text_counts_too(make) -> None:
    with pytest.raises(DataError, match="has 3 classes"):
        screen_data(
            target="y",
            features=["a", "b", "c"],
            checks=["duplicates"],
            max_suspect_fraction=0.02,
            task="binary",
            **make(),
        )


def test_binary_labels_written_differently_are_two_classes() -> None:
    batch = _three_classes(3)
    batch["y"] = np.where(batch["y"] == 1, 1.0, 0).astype(object)
    batch.loc[batch.index[:5], "y"] = 1  # 1 and 1.0 are one class
    result = screen_data(
        batch, target="y", features=["a", "b", "c"], checks=["duplicates"], max_suspect_fraction=0.5
    )
    assert result.summary["rows_in"] == len(batch)


def test_a_multiclass_screen_models_every_class() -> None:
    result = screen_data(
        _three_classes(4),
        target="y",
        features=["a", "b", "c"],
        checks=["duplicates", "label_issues"],
        max_suspect_fraction=0.05,
        positive_label=None,
    )
    assert set(result.summary["checks"]["label_issues"]["classes"]) == {"0", "1", "2"}
