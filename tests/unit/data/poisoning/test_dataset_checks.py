"""The dataset checks ``class_balance`` and ``feature_shift``
(``airflow_mlops/data/poisoning/dataset_checks.py``): what moves them, what must not, and the
details they record."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.data.poisoning.dataset_checks import (
    CLASS_SHIFT_Z,
    _ks_distance,
    class_balance,
    class_shares,
    feature_shift,
    target_shift,
)
from airflow_mlops.exceptions import DataError


def _normal_frames(seed: int, n: int = 400, shift: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    colours = np.array(["red", "green", "blue"])

    def frame(size: int, delta: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "a": rng.normal(delta, 1.0, size),
                "b": rng.exponential(1.0, size),
                "c": colours[rng.integers(0, 3, size)],
            }
        )

    return frame(n, shift), frame(2 * n, 0.0)


# ---- feature_shift ----------------------------------------------------------------------------


def test_feature_shift_without_a_reference_is_skipped() -> None:
    batch, _ = _normal_frames(0)
    assert feature_shift(batch, None, ["a", "c"], 0.1) == ({"status": "skipped: no reference"}, [])


def test_feature_shift_spares_a_batch_from_the_reference_distribution() -> None:
    from scipy.stats import ks_2samp

    batch, reference = _normal_frames(1)
    detail, findings = feature_shift(batch, reference, ["a", "b", "c"], 0.15)
    assert findings == [] and detail["status"] == "ran" and detail["max_feature_shift"] == 0.15
    for name in ("a", "b"):
        assert detail["distances"][name] == pytest.approx(ks_2samp(batch[name], reference[name]).statistic)
    assert 0 <= detail["distances"]["c"] < 0.15
    json.dumps(detail, allow_nan=False)


def test_feature_shift_names_the_moved_numeric_and_categorical_features() -> None:
    batch, reference = _normal_frames(2, shift=1.0)
    batch["c"] = "red"  # a category mix from a third red to all red: total variation 2/3
    detail, findings = feature_shift(batch, reference, ["a", "b", "c"], 0.2)
    assert [f.split(" ")[1] for f in findings] == ["a", "c"]
    assert "a moved by KS distance" in findings[0] and "> max_feature_shift 0.200" in findings[0]
    assert "c moved by total variation distance" in findings[1]
    share_red = (reference["c"] == "red").mean()
    assert detail["distances"]["c"] == pytest.approx(1 - share_red)
    assert detail["distances"]["b"] < 0.2


def test_total_variation_counts_missing_as_a_category_and_a_new_category() -> None:
    batch = pd.DataFrame({"c": ["x", "x", None, "new"]})
    reference = pd.DataFrame({"c": ["x", "x", "x", "y"]})
    detail, _ = feature_shift(batch, reference, ["c"], 1.0)
    # p = {x: .5, missing: .25, new: .25}, q = {x: .75, y: .25}: half the L1 distance is 0.5
    assert detail["distances"]["c"] == pytest.approx(0.5)


def test_a_feature_with_no_finite_value_on_one_side_is_left_out_and_infinities_ignored() -> None:
    batch = pd.DataFrame({"a": [np.nan, np.inf, -np.inf], "b": [1.0, 2.0, np.inf]})
    reference = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.0]})
    detail, findings = feature_shift(batch, reference, ["a", "b"], 0.5)
    assert "a" not in detail["distances"] and findings == []
    assert detail["distances"]["b"] == pytest.approx(1 / 3)  # [1, 2] against [1, 2, 3]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ks_distance_is_scipys(seed: int) -> None:
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(seed)
    a = np.sort(np.round(rng.normal(0, 1, 57), 1))  # ties on both sides
    b = np.sort(np.round(rng.normal(0.3, 1.2, 91), 1))
    assert _ks_distance(a, b) == pytest.approx(ks_2samp(a, b).statistic)
    assert _ks_distance(a, a) == 0.0
    assert _ks_distance(np.array([0.0, 1.0]), np.array([5.0, 6.0])) == 1.0


# ---- class_balance (binary, with a positive label) ---------------------------------------------


def test_the_poisoning_screen_uses_the_rule() -> None:
    """Before: the screen fell back to text matching only when nothing matched; now a batch of
    text labels is held against integer reference labels by the same rule."""
    batch = pd.DataFrame({"y": ["1", "0", "0", "0"]})
    reference = pd.DataFrame({"y": [1, 1, 0, 0]})
    detail, finding = class_balance(batch, "y", reference, 1, max_shift=0.2)
    assert (detail["positive_rate"], detail["reference_positive_rate"]) == (0.25, 0.5)
    assert finding is not None and "relative change 0.50" in finding
    # A positive label in neither the batch nor the reference was a silent pass (0 vs 0).
    with pytest.raises(DataError, match="positive_label 'fraud' does not occur"):
        class_balance(pd.DataFrame({"y": [0, 1]}), "y", pd.DataFrame({"y": [0, 1]}), "fraud", 0.2)


def test_class_balance_passes_within_the_allowed_change_and_ignores_missing_labels() -> None:
    reference = pd.DataFrame({"y": [1] * 10 + [0] * 90})
    batch = pd.DataFrame({"y": [1.0] * 11 + [0.0] * 89 + [np.nan] * 50})  # rate 0.11: +10 %
    detail, finding = class_balance(batch, "y", reference, 1, max_shift=0.2)
    assert finding is None
    assert detail["positive_rate"] == pytest.approx(0.11) and detail["relative_change"] == pytest.approx(0.1)
    _, finding = class_balance(batch, "y", reference, 1, max_shift=0.05)
    assert finding is not None and "positive rate 0.1100 vs reference 0.1000" in finding


def test_a_positive_class_absent_from_the_reference_is_an_infinite_change() -> None:
    reference = pd.DataFrame({"y": [0] * 20})
    detail, finding = class_balance(pd.DataFrame({"y": [0, 0, 1]}), "y", reference, 1, max_shift=10.0)
    assert detail["relative_change"] == "inf" and finding is not None
    json.dumps(detail, allow_nan=False)
    detail, finding = class_balance(
        pd.DataFrame({"y": [0, 0]}), "y", reference.assign(y=[0] * 19 + [1]), 1, 0.5
    )
    assert detail["relative_change"] == 1.0 and finding is not None  # the positives vanished


def test_class_balance_needs_a_reference_with_the_target_and_labelled_rows() -> None:
    batch = pd.DataFrame({"y": [0, 1]})
    assert class_balance(batch, "y", None, 1, 0.2) == ({"status": "skipped: no reference"}, None)
    with pytest.raises(
        DataError, match=r"class_balance: the reference data has no target column 'y'; it has \['z'\]"
    ):
        class_balance(batch, "y", pd.DataFrame({"z": [0, 1]}), 1, 0.2)
    detail, finding = class_balance(
        pd.DataFrame({"y": [np.nan, np.nan]}), "y", pd.DataFrame({"y": [0, 1]}), 1, 0.2
    )
    assert detail["relative_change"] is None and "cannot compare positive rates" in finding


# ---- class_shares (multiclass, or binary without a positive label) -----------------------------


def test_class_shares_spare_sampling_noise_and_flag_a_real_move() -> None:
    rng = np.random.default_rng(4)
    reference = rng.choice(["a", "b", "c"], size=3000, p=[0.5, 0.3, 0.2])
    same = rng.choice(["a", "b", "c"], size=1000, p=[0.5, 0.3, 0.2])
    detail, finding = class_shares(same, reference, 0.2)
    assert finding is None and detail["largest_relative_change"] is None
    assert set(detail["classes"]) == {"a", "b", "c"} and detail["rows"] == 1000
    assert sum(c["rows"] for c in detail["classes"].values()) == 1000
    moved = rng.choice(["a", "b", "c"], size=1000, p=[0.4, 0.24, 0.36])  # c: +80 %, a and b: -20 %
    detail, finding = class_shares(moved, reference, 0.3)
    assert finding is not None and finding.startswith("class_balance: 1 class share(s) moved")
    assert "class 'c'" in finding and "class 'b'" not in finding
    assert detail["largest_relative_change"] == pytest.approx(detail["classes"]["c"]["relative_change"])
    assert detail["classes"]["c"]["z"] > CLASS_SHIFT_Z
    json.dumps(detail, allow_nan=False)


def test_a_small_class_must_also_move_beyond_the_standard_errors() -> None:
    """1 row of a class where the reference has 1 in 100: +100 % but well within the noise."""
    reference = np.array(["a"] * 99 + ["rare"])
    batch = np.array(["a"] * 48 + ["rare"] * 2)
    detail, finding = class_shares(batch, reference, 0.2)
    assert detail["classes"]["rare"]["relative_change"] == pytest.approx(3.0)
    assert detail["classes"]["rare"]["z"] < CLASS_SHIFT_Z and finding is None


def test_a_class_the_reference_lacks_is_a_finding_and_missing_labels_do_not_count() -> None:
    reference = np.array(["a", "b"] * 50, dtype=object)
    batch = np.array(["a", "b"] * 50 + ["new"] * 5 + [None] * 20, dtype=object)
    detail, finding = class_shares(batch, reference, 0.2)
    assert detail["rows"] == 105
    assert detail["classes"]["new"]["relative_change"] == "inf" and detail["classes"]["new"]["z"] is None
    assert (
        finding is not None
        and "class 'new' share 0.0476 vs reference 0.0000 (not in the reference)" in finding
    )
    json.dumps(detail, allow_nan=False)


def test_class_shares_without_labelled_rows_cannot_compare() -> None:
    detail, finding = class_shares(np.array([None, None], dtype=object), np.array(["a", "b"]), 0.2)
    assert finding is not None and "cannot compare class shares" in finding
    assert detail["rows"] == 0 and detail["largest_relative_change"] is None


# ---- target_shift (regression) -----------------------------------------------------------------


def test_target_shift_spares_the_same_distribution_and_flags_a_moved_target() -> None:
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(6)
    reference = rng.normal(100, 10, 2000)
    same = rng.normal(100, 10, 500)
    detail, finding = target_shift(same, reference, 0.1)
    assert finding is None and detail["ks_distance"] == pytest.approx(ks_2samp(same, reference).statistic)
    moved = same * 1.3
    detail, finding = target_shift(moved, reference, 0.1)
    assert finding is not None and "the target's distribution moved by KS distance" in finding
    assert detail["ks_distance"] > 0.5
    json.dumps(detail, allow_nan=False)


def test_target_shift_without_values_cannot_compare() -> None:
    detail, finding = target_shift(np.array([]), np.array([1.0, 2.0]), 0.1)
    assert detail["ks_distance"] is None and "cannot compare the target" in finding
