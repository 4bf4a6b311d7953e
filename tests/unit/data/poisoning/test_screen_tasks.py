"""The poisoning screen by task: multiclass targets per class, regression targets by residuals.

The binary screen's own tests are in test_screen.py (its results do not change).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.data.poisoning import ScreenResult, screen_data
from airflow_mlops.exceptions import DataError

ROW_CHECKS = ["duplicates", "label_issues"]


def frame(x: np.ndarray, y: np.ndarray) -> tuple[pd.DataFrame, list[str]]:
    names = [f"f{i}" for i in range(x.shape[1])]
    return pd.DataFrame(x, columns=names).assign(y=y), names


def halves(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """First half the reference, second half the batch."""
    half = len(df) // 2
    return df.iloc[:half].reset_index(drop=True), df.iloc[half:].reset_index(drop=True)


def held(result: ScreenResult, reason: str | None = None) -> set[int]:
    q = result.quarantined
    if reason is not None:
        q = q[q["_reasons"].str.contains(reason)]
    return set(q["_row_index"].tolist())


def rates(result: ScreenResult, poison: np.ndarray, n: int) -> tuple[float, float]:
    """Share of the poisoned rows flagged, share of the clean rows flagged."""
    flagged, poison_set = held(result), set(poison.tolist())
    return len(flagged & poison_set) / len(poison_set), len(flagged - poison_set) / (n - len(poison_set))


def assert_accounted(df: pd.DataFrame, result: ScreenResult) -> None:
    """Every input row in exactly one frame, unchanged; every quarantined row with a reason."""
    s = result.summary
    assert s["rows_in"] == len(df) == len(result.accepted) + len(result.quarantined)
    positions = sorted(
        [df.index.get_loc(i) for i in result.accepted.index] + result.quarantined["_row_index"].tolist()
    )
    assert positions == list(range(len(df)))
    back = result.quarantined.set_index("_row_index").drop(columns=["_reasons", "_scores"])
    pd.testing.assert_frame_equal(back, df.iloc[back.index].set_index(back.index), check_names=False)
    assert result.quarantined["_reasons"].str.len().gt(0).all()
    json.dumps(s, allow_nan=False)


# --- multiclass -----------------------------------------------------------------------------


def flip_to_another_class(
    batch: pd.DataFrame, share: float, k: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(batch), size=round(share * len(batch)), replace=False))
    out = batch.copy()
    out.loc[rows, "y"] = (out.loc[rows, "y"] + rng.integers(1, k, len(rows))) % k
    return out, rows


@pytest.fixture(scope="module")
def four_classes() -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=6000, n_features=10, n_informative=7, n_classes=4, n_clusters_per_class=1,
        class_sep=1.5, flip_y=0.0, random_state=11,
    )  # fmt: skip
    df, names = frame(x, y)
    ref, batch = halves(df)
    return ref, batch, names


@pytest.fixture(scope="module")
def four_classes_flipped(four_classes) -> tuple[pd.DataFrame, np.ndarray, ScreenResult, ScreenResult]:
    """5 % of the batch's labels moved to another class; screened with and without reference."""
    ref, batch, names = four_classes
    poisoned, flips = flip_to_another_class(batch, 0.05, 4, seed=0)
    args = {"target": "y", "features": names, "checks": ROW_CHECKS, "max_suspect_fraction": 1.0}
    with_ref = screen_data(poisoned, reference=ref, **args)
    # Without a reference the models are fitted out of fold on the batch (a smaller one: time).
    small = poisoned.iloc[:1500]
    without = screen_data(small, **args)
    return poisoned, flips, with_ref, without


def test_multiclass_flips_are_caught_and_clean_rows_spared(four_classes, four_classes_flipped) -> None:
    ref, batch, names = four_classes
    poisoned, flips, result, _ = four_classes_flipped
    recall, false_rate = rates(result, flips, len(poisoned))
    # measured: 145 of 150 flips caught, 2 of 2850 clean rows flagged
    assert recall >= 0.85 and false_rate <= 0.005, (recall, false_rate)
    s = result.summary
    assert s["task"] == "multiclass"
    label = s["checks"]["label_issues"]
    assert label["model_source"] == "batch and reference"
    assert label["threshold"].startswith("per class: the estimated number of issues")
    assert set(label["classes"]) == {"0", "1", "2", "3"}
    assert set(s["class_counts"]) == {"0", "1", "2", "3"}
    assert sum(c["quarantined"] for c in s["class_counts"].values()) == s["rows_quarantined"]
    assert sum(c["rows"] for c in s["class_counts"].values()) == len(poisoned)
    # A caught flip's suggested label is a class (as written: an integer) other than the given one.
    q = result.quarantined.set_index("_row_index")
    caught = sorted(held(result, "label_issue") & set(flips.tolist()))
    suggested = [json.loads(q.loc[i, "_scores"])["suggested_label"] for i in caught]
    assert all(isinstance(v, int) and v in (0, 1, 2, 3) for v in suggested)
    back_to_truth = sum(v == batch.loc[i, "y"] for v, i in zip(suggested, caught, strict=True))
    assert back_to_truth >= 0.9 * len(caught), (back_to_truth, len(caught))
    assert_accounted(poisoned, result)
    # The clean batch: at most 0.5 % of each class flagged (measured: none).
    clean = screen_data(
        batch, target="y", features=names, checks=ROW_CHECKS, max_suspect_fraction=1.0, reference=ref
    )
    flagged = np.zeros(len(batch), dtype=bool)
    flagged[list(held(clean))] = True
    for c in range(4):
        assert flagged[batch["y"].to_numpy() == c].mean() <= 0.005, c


def test_multiclass_flips_without_a_reference(four_classes_flipped) -> None:
    _, flips, _, result = four_classes_flipped
    n = len(result.accepted) + len(result.quarantined)
    recall, false_rate = rates(result, flips[flips < n], n)
    # measured: 64 of 69 flips caught, 3 of 1431 clean rows flagged
    assert recall >= 0.8 and false_rate <= 0.01, (recall, false_rate)
    label = result.summary["checks"]["label_issues"]
    assert label["model_source"] == "batch" and "with the reference" not in label["threshold"]
    assert "at least 2% of the class they come from" in label["threshold"]


def test_multiclass_duplicates_and_labels_written_differently(four_classes) -> None:
    """Copies of rows relabelled to another class: the copies are held, not their sources; 1, 1.0
    and "1" are one class."""
    ref, batch, names = four_classes
    batch = batch.iloc[:1000]
    rng = np.random.default_rng(3)
    sources = np.sort(rng.choice(len(batch), size=20, replace=False))
    copies = batch.iloc[sources].copy()
    copies["y"] = (copies["y"] + rng.integers(1, 4, len(copies))) % 4
    df = pd.concat([batch, copies], ignore_index=True)
    labels = df["y"].astype(object)
    labels[::3] = labels[::3].map(str)  # "2"
    labels[1::3] = labels[1::3].map(float)  # 2.0
    df["y"] = labels
    result = screen_data(
        df, target="y", features=names, checks=["duplicates"], max_suspect_fraction=1.0, reference=ref
    )
    assert result.summary["task"] == "multiclass"
    assert set(result.summary["class_counts"]) == {"0", "1", "2", "3"}
    dups = held(result, "conflicting_duplicate")
    assert dups == set(range(len(batch), len(df))), sorted(dups)
    assert not dups & set(sources.tolist())
    assert_accounted(df, result)


def test_multiclass_class_balance_per_class_with_small_class_care() -> None:
    rng = np.random.default_rng(5)

    def draw(n: int, shares: list[float]) -> pd.DataFrame:
        return pd.DataFrame({"a": rng.normal(size=n), "y": rng.choice(len(shares), size=n, p=shares)})

    ref = draw(4000, [0.45, 0.34, 0.20, 0.01])
    args = {"target": "y", "features": ["a"], "checks": ["class_balance"], "max_suspect_fraction": 1.0}
    same = screen_data(draw(3000, [0.45, 0.34, 0.20, 0.01]), reference=ref, **args)
    assert same.passed and same.summary["checks"]["class_balance"]["status"] == "ran"
    detail = same.summary["checks"]["class_balance"]
    assert set(detail["classes"]) == {"0", "1", "2", "3"}
    # Class 2 nearly gone: a finding that names it; the rows are not quarantined.
    moved = screen_data(draw(3000, [0.55, 0.40, 0.04, 0.01]), reference=ref, **args)
    (finding,) = moved.summary["dataset_findings"]
    assert "class '2'" in finding and "max_class_shift 0.50" in finding and "class '0'" not in finding
    assert not moved.passed and moved.summary["rows_quarantined"] == 0
    # The 1 % class doubled in a batch of 300 (6 rows instead of 3): a relative change of 1.0, but
    # within sampling noise -- no finding.
    small = draw(300, [0.45, 0.34, 0.20, 0.01])
    small.loc[small.index[:6], "y"] = 3
    small.loc[small.index[6:], "y"] = small.loc[small.index[6:], "y"].replace(3, 0)
    wobble = screen_data(small, reference=ref, **args)
    assert wobble.summary["checks"]["class_balance"]["classes"]["3"]["relative_change"] > 0.5
    assert wobble.passed, wobble.summary["dataset_findings"]
    # A class the reference never had.
    new = draw(3000, [0.45, 0.34, 0.20, 0.01])
    new.loc[new.index[:40], "y"] = 7
    (finding,) = screen_data(new, reference=ref, **args).summary["dataset_findings"]
    assert "class '7'" in finding and "not in the reference" in finding


# --- regression -----------------------------------------------------------------------------


def wild_targets(
    batch: pd.DataFrame, ref: pd.DataFrame, share: float, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """``share`` of the targets replaced by values 3-6 reference standard deviations from its
    median (either side)."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(batch), size=max(1, round(share * len(batch))), replace=False))
    out = batch.copy()
    sign = rng.choice([-1.0, 1.0], len(rows))
    out.loc[rows, "y"] = ref["y"].median() + sign * rng.uniform(3, 6, len(rows)) * ref["y"].std()
    return out, rows


@pytest.fixture(scope="module")
def regression() -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=4000, n_features=8, n_informative=6, noise=10.0, random_state=3)
    df, names = frame(x, y)
    ref, batch = halves(df)
    return ref, batch, names


@pytest.mark.parametrize("with_reference", [True, False], ids=["reference", "no-reference"])
def test_regression_wild_targets_are_caught_and_clean_rows_spared(regression, with_reference) -> None:
    ref, batch, names = regression
    reference = ref if with_reference else None
    poisoned, wild = wild_targets(batch, ref, 0.03, seed=1)
    args = {"target": "y", "features": names, "checks": ALL_ROW, "max_suspect_fraction": 1.0}
    result = screen_data(poisoned, reference=reference, **args)
    recall, false_rate = rates(result, wild, len(poisoned))
    # measured: 60 of 60 caught; 8 of 1940 clean rows flagged with a reference, 1 without; of the
    # clean batch 2 of 2000 with a reference, 4 without
    assert recall >= 0.95 and false_rate <= 0.01, (recall, false_rate)
    s = result.summary
    assert s["task"] == "regression" and "class_counts" not in s
    label = s["checks"]["label_issues"]
    assert label["model_source"] == ("reference" if with_reference else "batch")
    assert label["threshold"].startswith("calibrated" if with_reference else "fixed: 5")
    assert label["residual_scale"] > 0 and label["cut"] > 0
    assert set(s["target"]) >= {"quantiles", "accepted_quantiles", "labelled_rows"}
    assert s["target"]["accepted_quantiles"]["q1"] < s["target"]["quantiles"]["q1"]
    q = result.quarantined.set_index("_row_index")
    for i in sorted(held(result, "label_issue") & set(wild.tolist()))[:10]:
        scores = json.loads(q.loc[i, "_scores"])
        assert scores["residual"] == pytest.approx(poisoned.loc[i, "y"] - scores["predicted_target"])
        assert scores["label_issue"] > label["cut"]
        # the prediction is near the true target, far from the wild one
        assert abs(scores["predicted_target"] - batch.loc[i, "y"]) < abs(scores["residual"])
    assert_accounted(poisoned, result)
    clean = screen_data(batch, reference=reference, **args)
    assert clean.summary["rows_quarantined"] <= 0.005 * len(batch), clean.summary["check_counts"]


ALL_ROW = ["duplicates", "label_issues", "out_of_distribution"]


def test_regression_on_diabetes_with_a_reference() -> None:
    """Real data with a weak model (R^2 ~ 0.4): 3 % wild targets are still caught."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    df, names = frame(data.data, data.target)
    df = df.sample(frac=1.0, random_state=0).reset_index(drop=True)
    ref, batch = halves(df)
    poisoned, wild = wild_targets(batch, ref, 0.03, seed=2)
    args = {"target": "y", "features": names, "checks": ROW_CHECKS, "max_suspect_fraction": 1.0}
    result = screen_data(poisoned, reference=ref, **args)
    recall, false_rate = rates(result, wild, len(poisoned))
    assert recall >= 0.7 and false_rate <= 0.03, (recall, false_rate)
    clean = screen_data(batch, reference=ref, **args)
    assert clean.summary["rows_quarantined"] <= 0.02 * len(batch)


def test_regression_duplicates_whose_targets_disagree(regression) -> None:
    """Copies with a target far from their source's are held (not the source); copies within
    the tolerance are not."""
    ref, batch, names = regression
    batch = batch.iloc[:1000]
    rng = np.random.default_rng(4)
    sources = np.sort(rng.choice(len(batch), size=30, replace=False))
    copies = batch.iloc[sources].copy()
    sd = ref["y"].std()
    far, near = copies.iloc[:15].copy(), copies.iloc[15:].copy()
    far["y"] = far["y"] + rng.choice([-1.0, 1.0], 15) * rng.uniform(2, 3, 15) * sd
    near["y"] = near["y"] + rng.normal(0, 0.01 * sd, 15)
    df = pd.concat([batch, far, near], ignore_index=True)
    for reference in (ref, None):
        result = screen_data(
            df,
            target="y",
            features=names,
            checks=["duplicates"],
            max_suspect_fraction=1.0,
            reference=reference,
        )
        dup = result.summary["checks"]["duplicates"]
        assert dup["conflicting_groups"] == 15 and dup["tolerance"] > 0.05 * 0.5 * sd
        assert held(result) == set(range(len(batch), len(batch) + 15)), sorted(held(result))
        assert_accounted(df, result)


def test_regression_duplicates_of_noisy_repeated_measurements_are_not_conflicts() -> None:
    """Discrete features (many exact duplicates) and a noisy target: copies differ by the noise,
    which the tolerance (6 x the residual scale) allows; a copy 10 noise units off is held."""
    rng = np.random.default_rng(6)

    def draw(n: int) -> pd.DataFrame:
        x = rng.integers(0, 4, size=(n, 3)).astype(float)
        return pd.DataFrame(x, columns=["a", "b", "c"]).assign(y=x @ [3.0, -2.0, 1.0] + rng.normal(0, 1.0, n))

    ref, batch = draw(2000), draw(2000)
    batch.loc[5, "y"] += 10.0
    result = screen_data(
        batch,
        target="y",
        features=["a", "b", "c"],
        checks=["duplicates"],
        max_suspect_fraction=1.0,
        reference=ref,
    )
    assert held(result) == {5}, (sorted(held(result)), result.summary["checks"]["duplicates"])


def test_regression_class_balance_is_the_target_shift(regression) -> None:
    from scipy.stats import ks_2samp

    from airflow_mlops.data.screen_report import render_screen_report

    ref, batch, names = regression
    args = {"target": "y", "features": names, "checks": ["class_balance"], "max_suspect_fraction": 1.0}
    ok = screen_data(batch, reference=ref, **args)
    assert ok.passed and ok.summary["checks"]["class_balance"]["ks_distance"] < 0.1
    moved = batch.assign(y=batch["y"] + 0.5 * ref["y"].std())
    bad = screen_data(moved, reference=ref, **args)
    detail = bad.summary["checks"]["class_balance"]
    assert detail["ks_distance"] == pytest.approx(ks_2samp(moved["y"], ref["y"]).statistic)
    (finding,) = bad.summary["dataset_findings"]
    assert "target's distribution moved" in finding and "max_feature_shift 0.100" in finding
    assert not bad.passed and bad.summary["rows_quarantined"] == 0
    # No reference: skipped, and the report says why.
    skipped = screen_data(batch, **{**args, "checks": ["class_balance", "feature_shift"]})
    assert skipped.summary["checks"]["class_balance"] == {"status": "skipped: no reference"}
    page = render_screen_report(skipped, target="y", features=names)
    assert page.count("skipped: no reference") >= 2 and "label_issues was not among the checks" in page


def test_regression_missing_and_infinite_targets_are_quarantined_with_reasons(regression) -> None:
    ref, batch, names = regression
    df = batch.iloc[:400].copy()
    df.loc[[3, 4], "y"] = np.nan
    df.loc[5, "y"] = np.inf
    df.loc[6, "y"] = -np.inf
    result = screen_data(
        df, target="y", features=names, checks=[*ALL_ROW, "class_balance"], max_suspect_fraction=1.0,
        reference=ref,
    )  # fmt: skip
    reasons = dict(zip(result.quarantined["_row_index"], result.quarantined["_reasons"], strict=True))
    assert reasons[3] == reasons[4] == "missing_label"
    assert reasons[5] == reasons[6] == "non_finite_target"
    assert result.summary["check_counts"]["non_finite_target"] == 2
    assert result.summary["target"]["labelled_rows"] == 396
    assert_accounted(df, result)


def test_regression_label_issues_skipped_with_the_reason_when_too_few_rows(regression) -> None:
    _, batch, names = regression
    result = screen_data(
        batch.iloc[:12], target="y", features=names, checks=ROW_CHECKS, max_suspect_fraction=1.0
    )
    status = result.summary["checks"]["label_issues"]["status"]
    assert status.startswith("skipped: 12 rows with a finite target") and "need at least 20" in status
    assert result.summary["rows_accepted"] == 12


# --- task, report, determinism, operator ----------------------------------------------------


def test_the_task_is_declared_or_inferred(regression) -> None:
    _, batch, names = regression
    args = {"features": names, "checks": ["duplicates"], "max_suspect_fraction": 1.0}
    assert screen_data(batch, target="y", **args).summary["task"] == "regression"
    text = batch.assign(y=np.where(batch["y"] > 0, "up", "down"))
    with pytest.raises(DataError, match="non-numeric"):
        screen_data(text, target="y", task="regression", **args)
    with pytest.raises(ValueError, match="task must be one of"):
        screen_data(batch, target="y", task="ordinal", **args)
    two = screen_data(text, target="y", task="multiclass", **args)
    assert two.summary["task"] == "multiclass" and set(two.summary["class_counts"]) == {"down", "up"}


def test_binary_results_are_the_same_declared_or_inferred() -> None:
    from airflow_mlops.data.generate import FEATURES, TARGET, generate_fraud_data, inject_poison

    df = inject_poison(
        generate_fraud_data(1500, seed=40), seed=3, n_conflicting_duplicates=8, n_label_flips=10
    )
    ref = generate_fraud_data(3000, seed=41)
    args = {"target": TARGET, "features": list(FEATURES), "max_suspect_fraction": 1.0, "reference": ref}
    checks = ["duplicates", "label_issues", "out_of_distribution", "class_balance"]
    inferred = screen_data(df, checks=checks, **args)
    declared = screen_data(df, checks=checks, task="binary", **args)
    assert inferred.summary["task"] == "binary"
    pd.testing.assert_frame_equal(inferred.quarantined, declared.quarantined)
    assert inferred.summary == declared.summary
    assert inferred.summary["checks"]["class_balance"]["positive_label"] == 1  # the positive rate


def test_the_report_says_the_task(four_classes_flipped, regression) -> None:
    from airflow_mlops.data.screen_report import render_screen_report

    poisoned, _, result, _ = four_classes_flipped
    page = render_screen_report(result, target="y", features=[c for c in poisoned.columns if c != "y"])
    assert "Task: multiclass (4 classes among the labelled rows)" in page
    assert "share quarantined" in page
    for c, counts in result.summary["class_counts"].items():
        assert f"<td>{c}</td><td>{counts['rows']}</td><td>{counts['accepted']}</td>" in page
    assert "log-likelihood ratio of the given label" in page
    ref, batch, names = regression
    poisoned, _ = wild_targets(batch.iloc[:600], ref, 0.03, seed=5)
    reg = screen_data(
        poisoned, target="y", features=names, checks=ROW_CHECKS, max_suspect_fraction=0.5, reference=ref
    )
    page = render_screen_report(reg, target="y", features=names)
    assert "Task: regression." in page and "robust residual scale (MAD / 0.6745)" in page
    assert "residual score (|residual - median| / robust residual scale; suspect above the cut)" in page
    assert f"<td>suspects</td><td>{reg.summary['checks']['label_issues']['suspects']}</td>" in page
    assert page.count("class='suspect'") == reg.summary["rows_quarantined"] > 0


def test_multiclass_and_regression_screens_are_deterministic_with_the_seed(four_classes, regression) -> None:
    for ref, batch, names in (four_classes, regression):
        small = batch.iloc[:400]
        if batch["y"].nunique() < 10:
            small, _ = flip_to_another_class(small, 0.05, 4, seed=9)
        else:
            small, _ = wild_targets(small, ref, 0.03, seed=9)
        args = {"target": "y", "features": names, "checks": ALL_ROW, "max_suspect_fraction": 1.0, "seed": 7}
        first, second = screen_data(small, **args), screen_data(small, **args)
        assert first.summary["rows_quarantined"] > 0
        pd.testing.assert_frame_equal(first.quarantined, second.quarantined)
        assert first.summary == second.summary


def test_the_screen_operator_passes_the_task(tmp_path: Path, regression) -> None:
    from airflow_mlops.artifacts import ArtifactStore
    from airflow_mlops.exceptions import PoisoningDetectedError
    from airflow_mlops.operators.data import PoisoningScreenOperator

    with pytest.raises(ValueError, match="task must be one of"):
        PoisoningScreenOperator(task_id="s", pipeline="p", data={}, target="y", task="ordinal")
    ref, batch, names = regression
    poisoned, wild = wild_targets(batch.iloc[:500], ref, 0.03, seed=6)
    src = tmp_path / "in.parquet"
    poisoned.to_parquet(src)
    store = tmp_path / "store"
    data = ArtifactStore(str(store)).put_file(src, "p/r/validate/batch.parquet")
    op = PoisoningScreenOperator(
        task_id="screen", pipeline="p", artifact_root=str(store), data=data.to_dict(), target="y",
        features=names, checks=ROW_CHECKS, max_suspect_fraction=0.01, task="regression",
    )  # fmt: skip
    context = {"run_id": "manual__2026-01-02T00:00:00+00:00", "dag": SimpleNamespace(dag_id="p__train")}
    with pytest.raises(PoisoningDetectedError):
        op.execute(context)
    screen_dir = store / "p" / "manual__2026-01-02T00_00_00_00_00" / "screen"
    summary = json.loads((screen_dir / "screen_summary.json").read_text())
    assert summary["task"] == "regression"
    quarantine = pd.read_parquet(screen_dir / "quarantine.parquet")
    assert set(wild.tolist()) <= set(quarantine["_row_index"])
