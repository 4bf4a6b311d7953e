"""Fairness gates: metric gaps across slices of the holdout, checked against pandas + scikit-learn.

The expected per-slice metrics are computed independently (``groupby`` / ``pd.cut`` and
scikit-learn's metrics), never read back from the function under test.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, recall_score, roc_auc_score

from airflow_mlops.registry.fairness import MISSING_SLICE, evaluate_fairness, slice_masks


def _holdout(n: int = 4000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows in four countries whose scores are informative to a different degree per country."""
    rng = np.random.default_rng(seed)
    country = rng.choice(["US", "DE", "FR", "BR"], n, p=[0.4, 0.3, 0.2, 0.1])
    amount = rng.lognormal(3.0, 1.2, n)
    y = rng.random(n) < 0.2
    signal = {"US": 2.0, "DE": 1.5, "FR": 1.0, "BR": 0.5}
    strength = np.array([signal[c] for c in country])
    logit = strength * (y * 2 - 1) + rng.normal(0.0, 1.0, n)
    score = 1.0 / (1.0 + np.exp(-logit))
    return pd.DataFrame({"country": country, "amount": amount}), y, score


def _sk_metric(metric: str, y: np.ndarray, score: np.ndarray, threshold: float) -> float:
    if metric == "roc_auc":
        return float(roc_auc_score(y, score))
    predicted = score >= threshold
    if metric == "recall":
        return float(recall_score(y, predicted, zero_division=0))
    return float(accuracy_score(y, predicted))


@pytest.mark.parametrize("metric", ["roc_auc", "recall", "accuracy"])
def test_categorical_gap_matches_groupby_and_sklearn(metric: str) -> None:
    holdout, y, score = _holdout()
    frame = holdout.assign(y=y, score=score)
    expected = {
        str(country): _sk_metric(metric, g["y"].to_numpy(), g["score"].to_numpy(), 0.5)
        for country, g in frame.groupby("country")
    }
    gap = max(expected.values()) - min(expected.values())
    assert gap > 0.05  # the countries really differ: the test can tell a wrong gap from a right one

    result = evaluate_fairness(
        holdout, y, score, slices=["country"], metrics={metric: {"max_gap": 1.0}}, threshold=0.5
    )
    (gate,) = result.gates
    assert gate.kind == "fairness" and gate.name == f"{metric}.gap_by_country"
    assert gate.value == pytest.approx(gap, abs=1e-9)
    detail = result.details["columns"][0]
    assert {s["slice"]: s["metrics"][metric] for s in detail["slices"]} == pytest.approx(expected)
    assert {s["slice"]: s["rows"] for s in detail["slices"]} == frame.groupby("country").size().to_dict()
    assert {s["slice"]: s["positives"] for s in detail["slices"]} == (
        frame.groupby("country")["y"].sum().astype(int).to_dict()
    )
    assert detail["gaps"][metric]["highest"] == max(expected, key=expected.__getitem__)
    assert detail["gaps"][metric]["lowest"] == min(expected, key=expected.__getitem__)


def test_the_gate_passes_at_the_gap_and_fails_just_below_it() -> None:
    holdout, y, score = _holdout()
    measured = evaluate_fairness(
        holdout, y, score, slices=["country"], metrics={"roc_auc": {"max_gap": 1.0}}, threshold=0.5
    ).gates[0]
    assert measured.value is not None
    at = evaluate_fairness(
        holdout, y, score, slices=["country"], metrics={"roc_auc": {"max_gap": measured.value}}, threshold=0.5
    ).gates[0]
    below = evaluate_fairness(
        holdout,
        y,
        score,
        slices=["country"],
        metrics={"roc_auc": {"max_gap": measured.value - 0.001}},
        threshold=0.5,
    ).gates[0]
    assert at.passed and not below.passed
    assert "is above the allowed gap" in below.reason and "highest US" in below.reason


def test_bins_match_pandas_cut_with_open_ends() -> None:
    holdout, y, score = _holdout()
    edges = [10.0, 50.0, 200.0]
    result = evaluate_fairness(
        holdout,
        y,
        score,
        slices=[{"column": "amount", "bins": edges}],
        metrics={"recall": {"max_gap": 1.0}},
        threshold=0.5,
    )
    cut = pd.cut(holdout["amount"], [-np.inf, *edges, np.inf], right=False)
    frame = holdout.assign(y=y, score=score, bin=cut)
    groups = list(frame.groupby("bin", observed=False))
    slices = result.details["columns"][0]["slices"]
    assert [s["slice"] for s in slices] == ["< 10", "[10, 50)", "[50, 200)", ">= 200"]
    assert [s["rows"] for s in slices] == [len(g) for _, g in groups]
    assert [s["metrics"]["recall"] for s in slices] == pytest.approx(
        [_sk_metric("recall", g["y"].to_numpy(), g["score"].to_numpy(), 0.5) for _, g in groups]
    )
    expected = [_sk_metric("recall", g["y"].to_numpy(), g["score"].to_numpy(), 0.5) for _, g in groups]
    assert result.gates[0].value == pytest.approx(max(expected) - min(expected))


def test_a_small_slice_is_reported_and_excluded_from_the_gap() -> None:
    holdout, y, score = _holdout()
    # 30 rows of a fifth country whose scores are inverted: it would dominate the gap if used.
    extra = pd.DataFrame({"country": ["NG"] * 30, "amount": np.ones(30)})
    y_extra = np.arange(30) % 2 == 0
    holdout2 = pd.concat([holdout, extra], ignore_index=True)
    y2 = np.r_[y, y_extra]
    score2 = np.r_[score, np.where(y_extra, 0.1, 0.9)]

    result = evaluate_fairness(
        holdout2, y2, score2, slices=["country"], metrics={"roc_auc": {"max_gap": 1.0}}, threshold=0.5
    )
    without = evaluate_fairness(
        holdout, y, score, slices=["country"], metrics={"roc_auc": {"max_gap": 1.0}}, threshold=0.5
    )
    slices = {s["slice"]: s for s in result.details["columns"][0]["slices"]}
    assert slices["NG"]["rows"] == 30
    assert slices["NG"]["metrics"]["roc_auc"] == pytest.approx(0.0)  # reported ...
    assert "fewer than min_slice_rows 100" in slices["NG"]["excluded"]["roc_auc"]  # ... not gated
    assert "NG" not in result.details["columns"][0]["gaps"]["roc_auc"]["usable_slices"]
    assert result.gates[0].value == pytest.approx(without.gates[0].value)


def test_few_positives_exclude_a_slice_for_recall_but_not_for_accuracy() -> None:
    holdout, y, score = _holdout()
    y = y.copy()
    br = (holdout["country"] == "BR").to_numpy()
    y[np.flatnonzero(br & y)[5:]] = False  # BR keeps 5 positives
    result = evaluate_fairness(
        holdout,
        y,
        score,
        slices=["country"],
        metrics={"recall": {"max_gap": 1.0}, "accuracy": {"max_gap": 1.0}},
        threshold=0.5,
        min_slice_positives=10,
    )
    br_detail = next(s for s in result.details["columns"][0]["slices"] if s["slice"] == "BR")
    assert br_detail["positives"] == 5
    assert "fewer than min_slice_positives 10" in br_detail["excluded"]["recall"]
    assert "accuracy" not in br_detail["excluded"]
    gaps = result.details["columns"][0]["gaps"]
    assert "BR" not in gaps["recall"]["usable_slices"] and "BR" in gaps["accuracy"]["usable_slices"]


def test_one_usable_slice_fails_closed() -> None:
    holdout, y, score = _holdout()
    result = evaluate_fairness(
        holdout,
        y,
        score,
        slices=["country"],
        metrics={"accuracy": {"max_gap": 0.5}},
        threshold=0.5,
        min_slice_rows=1400,  # only US (about 1,600 rows; DE has about 1,200) is big enough
    )
    (gate,) = result.gates
    assert not gate.passed and gate.value is None
    assert "1 usable slice(s) of 'country'" in gate.reason and "at least 2" in gate.reason


def test_a_metric_that_cannot_be_measured_on_a_usable_slice_fails_closed() -> None:
    holdout, y, score = _holdout()
    y = y.copy()
    y[(holdout["country"] == "FR").to_numpy()] = True  # FR: positives only, so no ROC AUC
    (gate,) = evaluate_fairness(
        holdout, y, score, slices=["country"], metrics={"roc_auc": {"max_gap": 0.9}}, threshold=0.5
    ).gates
    assert not gate.passed
    assert "could not be measured on usable slice(s) FR" in gate.reason


@pytest.mark.parametrize(
    ("slices", "words"),
    [
        (["city"], "the holdout has no column 'city'"),
        ([{"column": "country", "bins": [1, 2]}], "cannot be binned"),
        (["amount"], "distinct values (limit 50 slices)"),
    ],
)
def test_a_column_that_cannot_be_sliced_fails_every_gate_of_it(slices, words) -> None:
    holdout, y, score = _holdout()
    result = evaluate_fairness(
        holdout,
        y,
        score,
        slices=slices,
        metrics={"accuracy": {"max_gap": 0.5}, "roc_auc": {"max_gap": 0.5}},
        threshold=0.5,
    )
    assert len(result.gates) == 2 and not any(g.passed for g in result.gates)
    assert all(words in g.reason for g in result.gates)
    assert words in result.details["columns"][0]["error"]


def test_missing_values_are_a_slice_of_their_own() -> None:
    column = pd.Series(["a", None, "b", "a", np.nan], name="c")
    masks = dict(slice_masks(column))
    assert list(masks) == ["a", "b", MISSING_SLICE]
    assert masks[MISSING_SLICE].tolist() == [False, True, False, False, True]
    numbers = pd.Series([1.0, np.nan, 5.0, 20.0], name="x")
    binned = dict(slice_masks(numbers, [2.0, 10.0]))
    assert {k: v.tolist() for k, v in binned.items()} == {
        "< 2": [True, False, False, False],
        "[2, 10)": [False, False, True, False],
        ">= 10": [False, False, False, True],
        MISSING_SLICE: [False, True, False, False],
    }


def test_every_slice_column_is_gated_on_its_own_and_details_are_strict_json() -> None:
    holdout, y, score = _holdout()
    result = evaluate_fairness(
        holdout,
        y,
        score,
        slices=["country", {"column": "amount", "bins": [20.0]}],
        metrics={"roc_auc": {"max_gap": 0.9}, "log_loss": {"max_gap": 5.0}},
        threshold=0.5,
    )
    assert [g.name for g in result.gates] == [
        "roc_auc.gap_by_country",
        "log_loss.gap_by_country",
        "roc_auc.gap_by_amount",
        "log_loss.gap_by_amount",
    ]
    text = json.dumps(result.details, allow_nan=False)  # no NaN sneaks into evaluation.json
    assert json.loads(text)["columns"][1]["bins"] == [20.0]


def test_an_undefined_slice_metric_is_null_in_the_details() -> None:
    holdout = pd.DataFrame({"g": ["a"] * 150 + ["b"] * 150})
    y = np.r_[np.zeros(150, bool), np.arange(150) % 3 == 0]  # slice a has no positives
    score = np.linspace(0.01, 0.99, 300)
    result = evaluate_fairness(
        holdout, y, score, slices=["g"], metrics={"accuracy": {"max_gap": 0.9}}, threshold=0.5
    )
    a = result.details["columns"][0]["slices"][0]
    assert a["slice"] == "a" and a["metrics"]["roc_auc"] is None
    accuracy = [accuracy_score(y[:150], score[:150] >= 0.5), accuracy_score(y[150:], score[150:] >= 0.5)]
    assert a["metrics"]["accuracy"] == pytest.approx(accuracy[0])
    assert result.gates[0].value == pytest.approx(abs(accuracy[0] - accuracy[1]))  # accuracy is still gated


def test_malformed_entries_raise_rather_than_vanish() -> None:
    holdout, y, score = _holdout(200)
    with pytest.raises(ValueError, match="give max_gap"):
        evaluate_fairness(holdout, y, score, slices=["country"], metrics={"f1": {"max": 1}}, threshold=0.5)
    with pytest.raises(ValueError, match="a slice is a column name"):
        evaluate_fairness(
            holdout, y, score, slices=[{"col": "amount"}], metrics={"f1": {"max_gap": 0.1}}, threshold=0.5
        )


# --- other tasks -----------------------------------------------------------------------------------


def test_regression_gaps_use_the_tasks_metrics_and_name_the_best_slice_by_direction() -> None:
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    rng = np.random.default_rng(3)
    n = 3000
    region = rng.choice(["north", "south", "east"], n)
    y = rng.normal(50.0, 10.0, n)
    noise = {"north": 1.0, "south": 4.0, "east": 8.0}
    predicted = y + rng.normal(0.0, 1.0, n) * np.array([noise[r] for r in region])
    holdout = pd.DataFrame({"region": region})
    result = evaluate_fairness(
        holdout,
        y,
        predicted,
        slices=["region"],
        metrics={"rmse": {"max_gap": 5.0}, "r2": {"max_gap": 0.9}},
        task="regression",
    )
    frame = holdout.assign(y=y, p=predicted)
    rmse = {r: float(np.sqrt(mean_squared_error(g["y"], g["p"]))) for r, g in frame.groupby("region")}
    rmse_gate, r2_gate = result.gates
    assert rmse_gate.value == pytest.approx(max(rmse.values()) - min(rmse.values()))
    assert not rmse_gate.passed  # east's error is far above north's
    assert r2_gate.passed
    gaps = result.details["columns"][0]["gaps"]
    assert (gaps["rmse"]["best"], gaps["rmse"]["worst"]) == ("north", "east")  # lower is better
    assert (gaps["r2"]["best"], gaps["r2"]["worst"]) == ("north", "east")  # higher is better
    north = next(s for s in result.details["columns"][0]["slices"] if s["slice"] == "north")
    assert north["metrics"]["mae"] == pytest.approx(
        mean_absolute_error(frame[frame.region == "north"]["y"], frame[frame.region == "north"]["p"])
    )
    assert "positives" not in north and result.details["min_slice_positives"] is None
    json.dumps(result.details, allow_nan=False)


def test_multiclass_slices_need_rows_not_positives_and_foreign_metrics_fail() -> None:
    rng = np.random.default_rng(5)
    n = 900
    group = rng.choice(["a", "b"], n)
    y = rng.integers(0, 3, n)
    proba = rng.random((n, 3)) + 1.5 * np.eye(3)[y]
    proba /= proba.sum(axis=1, keepdims=True)
    result = evaluate_fairness(
        pd.DataFrame({"g": group}),
        y,
        proba,
        slices=["g"],
        metrics={"f1_macro": {"max_gap": 0.5}, "recall": {"max_gap": 0.5}},
        min_slice_positives=10_000,  # a binary setting: no effect on a multiclass model
        task="multiclass",
    )
    f1, recall = result.gates
    assert f1.passed and f1.value is not None
    assert not recall.passed and "recall is a binary metric" in recall.reason
    assert "does not apply to a multiclass model" in recall.reason
    slices = result.details["columns"][0]["slices"]
    assert all(s["excluded"] == {} and s["classes"] == 3 for s in slices)
