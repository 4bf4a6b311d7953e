"""detect_drift end to end: verdicts, data quality, prediction and performance drift, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.drift import DriftReport, detect_drift
from airflow_mlops.exceptions import DataError, DriftInputError


def window(n: int, *, seed: int, shift: float = 0.0, corr: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = corr * a + np.sqrt(1 - corr**2) * rng.normal(size=n)  # N(0, 1) whatever corr is
    return pd.DataFrame(
        {
            "a": a + shift,
            "b": b,
            "amount": rng.lognormal(3, 1, n),
            "count": rng.poisson(3, n),
            "city": rng.choice(["paris", "lyon", "nice"], n, p=[0.5, 0.3, 0.2]),
            "label": rng.integers(0, 2, n),
        }
    )


FAST = {"mmd_permutations": 100, "device": "cpu"}


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_no_drift_data_gives_no_drift(seed: int) -> None:
    report = detect_drift(window(2000, seed=0), window(1500, seed=seed), target="label", **FAST)
    assert not report.drifted and not report.quality_failed, report.summary()
    assert report.reasons == ()
    assert {f.name for f in report.features} == {"a", "b", "amount", "count", "city"}
    assert report.multivariate is not None and report.multivariate.p_value >= 0.05


def test_a_real_shift_is_dataset_drift_with_a_reason() -> None:
    ref = window(3000, seed=0)
    cur = window(2000, seed=1, shift=0.6)
    cur["amount"] = cur["amount"] * 1.8
    cur["city"] = np.random.default_rng(3).choice(["paris", "lyon", "nice"], len(cur), p=[0.2, 0.3, 0.5])
    report = detect_drift(ref, cur, target="label", **FAST)
    assert report.drifted and report.dataset_drift and not report.quality_failed
    assert set(report.drifted_features) == {"a", "amount", "city"}
    assert report.drift_share == pytest.approx(3 / 5)
    assert report.reasons[0].startswith("3 of 5 features drifted (share 0.60 >= 0.5): ")
    ks = report.feature("a").test("ks")
    assert ks is not None and ks.adjusted_p_value == pytest.approx(
        min(1.0, ks.p_value * 5)
    )  # Bonferroni over 5
    assert report.feature("city").kind == "categorical" and report.feature("city").test("chi2") is not None
    # share rule: the same drift is not dataset drift when most features must move
    strict = detect_drift(ref, cur, target="label", drift_share=0.8, multivariate=False)
    assert not strict.drifted and strict.drifted_features == report.drifted_features


def test_correlation_shift_is_caught_by_mmd_but_by_no_univariate_test() -> None:
    ref = window(2000, seed=0)
    cur = window(2000, seed=1, corr=0.8)
    report = detect_drift(ref, cur, target="label", **FAST)
    assert report.drifted_features == ()
    for feature in report.features:
        for test in feature.tests:
            assert not test.drifted, (feature.name, test)
    assert report.multivariate is not None and report.multivariate.drifted
    assert report.multivariate.p_value == pytest.approx(1 / 101)  # no permutation reached it
    assert report.drifted and any("MMD" in r for r in report.reasons)
    assert report.multivariate.features == ("a", "b", "amount", "count")


def test_null_surge_with_unchanged_values_is_a_quality_alarm() -> None:
    ref = window(3000, seed=0)
    cur = window(3000, seed=1)
    cur.loc[cur.sample(frac=0.4, random_state=0).index, "amount"] = np.nan
    report = detect_drift(ref, cur, target="label", multivariate=False)
    assert report.quality_failed and not report.drifted
    failed = report.failed_quality_checks
    assert [(q.check, q.column) for q in failed] == [("null_rate", "amount")]
    assert failed[0].current == pytest.approx(0.4) and failed[0].reference == 0.0
    assert "+40.0 points > 5.0 allowed" in failed[0].message
    assert not report.feature("amount").drifted  # its non-null values did not change
    assert any(r.startswith("data quality: null rate of 'amount'") for r in report.reasons)


def test_new_categories_and_out_of_range_values_fail_quality_with_out_of_range_alarm() -> None:
    ref = window(2000, seed=0)
    cur = window(2000, seed=1)
    cur.loc[:199, "city"] = "berlin"  # 10 % unseen
    cur.loc[:149, "count"] = 1000  # 7.5 % above the reference maximum
    report = detect_drift(ref, cur, target="label", multivariate=False, out_of_range="alarm")
    by_check = {(q.check, q.column): q for q in report.quality}
    new = by_check[("new_categories", "city")]
    assert not new.passed and new.current == pytest.approx(0.1) and "'berlin'" in new.message
    out = by_check[("out_of_range", "count")]
    outside = ((cur["count"] > ref["count"].max()) | (cur["count"] < ref["count"].min())).mean()
    assert not out.passed and out.current == pytest.approx(outside) and outside >= 0.075
    assert out.alarm and out.action == "alarm"
    assert by_check[("out_of_range", "a")].passed and by_check[("new_categories", "city")].threshold == 0.05
    hist = report.feature("city").histogram
    assert hist["categories"][-1] == "berlin" and hist["reference"][-1] == 0.0
    assert report.quality_failed
    assert {(q.check, q.column) for q in report.failed_quality_checks} == {
        ("new_categories", "city"),
        ("out_of_range", "count"),
    }
    # By default the values beyond the range are drift of `count`; the new category stays an alarm.
    default = detect_drift(ref, cur, target="label", multivariate=False)
    assert [(q.check, q.column) for q in default.failed_quality_checks] == [("new_categories", "city")]
    assert "out_of_range" in default.feature("count").rules and default.drifted
    assert default.settings["out_of_range"] == "drift"


def test_schema_mismatch_lists_every_difference() -> None:
    ref = window(100, seed=0)
    cur = window(100, seed=1).drop(columns=["b"])
    cur["extra"] = 1.0
    cur["city"] = 3.5  # retyped: strings -> floats
    with pytest.raises(DriftInputError) as err:
        detect_drift(ref, cur, target="label")
    text = str(err.value)
    assert "columns missing from the current window: b" in text
    assert "the reference does not have: extra" in text
    assert "'city' changed type" in text
    assert isinstance(err.value, DataError)
    # with explicit features, extra columns are ignored but a missing one is still an error
    with pytest.raises(DriftInputError, match="missing from the current window: b"):
        detect_drift(ref, cur, features=["a", "b"])


@pytest.mark.parametrize("empty", ["reference", "current"])
def test_an_empty_window_is_an_error(empty: str) -> None:
    frames = {"reference": window(50, seed=0), "current": window(50, seed=1)}
    frames[empty] = frames[empty].iloc[0:0]
    with pytest.raises(DriftInputError, match="no rows"):
        detect_drift(frames["reference"], frames["current"], target="label")


def test_prediction_drift_on_the_champions_scores() -> None:
    rng = np.random.default_rng(7)
    ref, cur = window(2000, seed=0), window(2000, seed=1)
    same = detect_drift(
        ref, cur, target="label", multivariate=False,
        reference_scores=rng.beta(2, 5, 2000), current_scores=rng.beta(2, 5, 2000),
    )  # fmt: skip
    assert same.prediction is not None and not same.prediction.drifted and not same.drifted
    moved = detect_drift(
        ref, cur, target="label", multivariate=False,
        reference_scores=rng.beta(2, 5, 2000), current_scores=rng.beta(5, 2, 2000),
    )  # fmt: skip
    assert moved.prediction is not None and moved.prediction.drifted and moved.drifted
    assert not moved.dataset_drift  # the features did not move; the scores did
    assert [t.test for t in moved.prediction.tests] == ["ks", "wasserstein", "psi"]
    assert moved.prediction.histogram["edges"][0] < moved.prediction.histogram["edges"][-1]
    assert any(r.startswith("prediction drift") for r in moved.reasons)


def test_performance_drift_with_labels_and_a_string_positive_label() -> None:
    rng = np.random.default_rng(11)
    cur = window(1000, seed=1)
    y = rng.integers(0, 2, 1000)
    cur["label"] = np.where(y == 1, "yes", "no")
    good = np.clip(y * 0.6 + rng.uniform(0, 0.4, 1000), 0, 1)  # separates the classes perfectly
    ref = window(1000, seed=0)
    ok = detect_drift(
        ref, cur, target="label", multivariate=False, current_scores=good,
        expected_metrics={"roc_auc": 0.97, "accuracy": 0.9}, max_metric_drop={"roc_auc": 0.05, "accuracy": 0.05},
        positive_label="yes",
    )  # fmt: skip
    assert [p.metric for p in ok.performance] == ["roc_auc", "accuracy"]
    assert ok.performance[0].current == pytest.approx(1.0) and not any(p.drifted for p in ok.performance)
    bad = detect_drift(
        ref, cur, target="label", multivariate=False, current_scores=rng.uniform(size=1000),
        expected_metrics={"roc_auc": 0.97}, positive_label="yes",
    )  # fmt: skip
    (check,) = bad.performance
    assert check.drifted and check.max_drop == 0.05 and check.drop > 0.3  # default allowance
    assert bad.drifted and any(r.startswith("performance drift: roc_auc") for r in bad.reasons)
    with pytest.raises(DriftInputError, match="no recorded 'f1'"):
        detect_drift(ref, cur, target="label", current_scores=good, expected_metrics={"roc_auc": 0.9},
                     max_metric_drop={"f1": 0.1}, positive_label="yes", multivariate=False)  # fmt: skip


def test_single_class_labels_block_instead_of_passing() -> None:
    cur = window(300, seed=1)
    cur["label"] = 1
    report = detect_drift(
        window(300, seed=0), cur, target="label", multivariate=False,
        current_scores=np.full(300, 0.7), expected_metrics={"roc_auc": 0.9},
    )  # fmt: skip
    assert report.quality_failed and not report.performance[0].drifted
    assert [q.check for q in report.failed_quality_checks] == ["labels"]


def test_json_round_trip_is_lossless() -> None:
    rng = np.random.default_rng(5)
    cur = window(800, seed=1, shift=0.5)
    cur.loc[:99, "city"] = "berlin"
    report = detect_drift(
        window(1000, seed=0), cur, target="label", reference_scores=rng.uniform(size=1000),
        current_scores=rng.uniform(size=800), expected_metrics={"roc_auc": 0.8}, **FAST,
    )  # fmt: skip
    text = json.dumps(report.to_dict())
    back = DriftReport.from_dict(json.loads(text))
    assert back == report
    assert back.to_dict() == report.to_dict() and back.summary() == report.summary()
    assert json.loads(text)["drifted_features"] == list(report.drifted_features)


def test_summary_has_a_line_per_feature_and_the_verdict() -> None:
    report = detect_drift(
        window(1000, seed=0), window(1000, seed=1, shift=1.0), target="label", multivariate=False
    )
    text = report.summary()
    assert text.splitlines()[0].startswith("Drift report: no drift")  # 1 of 5 features < share 0.5
    assert any(line.strip().startswith("DRIFT a ") for line in text.splitlines())
    assert sum(line.strip().startswith("ok ") for line in text.splitlines()) == 4


def test_distance_only_and_p_value_only_configurations() -> None:
    ref, cur = window(2000, seed=0), window(2000, seed=1, shift=0.3)
    only_p = detect_drift(
        ref, cur, target="label", numeric_tests=["ks"], categorical_tests=["chi2"], multivariate=False
    )
    assert "a" in only_p.drifted_features
    only_d = detect_drift(
        ref,
        cur,
        target="label",
        numeric_tests=["psi"],
        categorical_tests=["psi"],
        psi_threshold=10.0,
        multivariate=False,
    )
    assert only_d.drifted_features == ()
    bh = detect_drift(ref, cur, target="label", correction="bh", multivariate=False)
    assert bh.settings["correction"] == "bh" and "a" in bh.drifted_features


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"p_value": 1.5}, "p_value=1.5"),
        ({"correction": "holm"}, "correction='holm'"),
        ({"numeric_tests": ["ks", "t-test"]}, "numeric_tests="),
        ({"mmd_permutations": 10}, "use at least 20 permutations"),
        ({"device": "tpu"}, "not a torch device"),
        ({"features": ["a", "label"]}, "is listed in features"),
    ],
)
def test_bad_settings_fail_with_what_and_how(settings: dict, message: str) -> None:
    with pytest.raises(DriftInputError, match=message):
        detect_drift(window(50, seed=0), window(50, seed=1), target="label", **settings)


def test_infinite_values_are_rejected() -> None:
    cur = window(100, seed=1)
    cur.loc[3, "a"] = np.inf
    with pytest.raises(DriftInputError, match="infinite values in the current window's column"):
        detect_drift(window(100, seed=0), cur, target="label")


def test_importing_the_package_loads_no_numpy() -> None:
    code = (
        "import sys, airflow_mlops.drift as d; d.DriftReport; "
        "print(sorted(m for m in ('numpy', 'pandas', 'scipy', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_level_is_shared_between_the_test_families_that_can_flag_drift() -> None:
    """Univariate, MMD and prediction drift each get p / 3, so the overall false-alarm rate <= p."""
    rng = np.random.default_rng(3)
    ref, cur = window(1000, seed=0), window(800, seed=1)
    three = detect_drift(
        ref, cur, target="label", reference_scores=rng.uniform(size=1000),
        current_scores=rng.uniform(size=800), p_value=0.06, mmd_p_value=0.09, **FAST,
    )  # fmt: skip
    assert three.settings["family_split"] == 3
    assert three.multivariate is not None and three.multivariate.threshold == pytest.approx(0.03)
    ks = three.features[0].test("ks")
    assert ks is not None and ks.threshold == pytest.approx(0.02)
    assert three.prediction is not None and three.prediction.tests[0].threshold == pytest.approx(0.02)
    one = detect_drift(ref, cur, target="label", multivariate=False, p_value=0.06)
    assert one.settings["family_split"] == 1
    assert one.features[0].test("ks").threshold == pytest.approx(0.06)  # type: ignore[union-attr]
    with pytest.raises(DriftInputError, match="at least 60 permutations"):
        detect_drift(ref, cur, target="label", reference_scores=rng.uniform(size=1000),
                     current_scores=rng.uniform(size=800), mmd_permutations=50, device="cpu")  # fmt: skip
