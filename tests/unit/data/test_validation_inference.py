"""Inferred expectations: batches from the reference's distribution pass, broken batches fail.

The batches run through ``validate_dataframe`` (Great Expectations), as in the validate stage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.data.validation import (
    MIN_REFERENCE_ROWS,
    _chance_share,
    infer_expectations,
    validate_dataframe,
)


def _load(name: str) -> pd.DataFrame:
    import sklearn.datasets

    return getattr(sklearn.datasets, f"load_{name}")(as_frame=True).frame


def _split(df: pd.DataFrame, seed: int, reference: float, batch: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(df))
    n_ref, n_batch = round(reference * len(df)), round(batch * len(df))
    return df.iloc[order[:n_ref]], df.iloc[order[n_ref : n_ref + n_batch]]


def _infer(reference: pd.DataFrame) -> list[dict[str, dict]]:
    return infer_expectations(reference, columns=[str(c) for c in reference.columns])


def _of(expectations: list[dict[str, dict]], column: str) -> list[dict[str, dict]]:
    return [e for e in expectations if next(iter(e.values()))["column"] == column]


def _failed_columns(report) -> set[str]:
    return {r.kwargs["column"] for r in report.failed}


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, dict]]]:
    reference, batch = _split(_load("breast_cancer"), seed=7, reference=0.5, batch=0.3)
    return reference, batch, _infer(reference)


# --- same distribution: passes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "seed", "reference", "batch"),
    [
        ("breast_cancer", 0, 0.5, 0.3),
        ("breast_cancer", 1, 0.3, 0.2),
        ("wine", 0, 0.5, 0.3),
        ("wine", 1, 0.3, 0.1),
        ("digits", 0, 0.5, 0.3),
        ("digits", 1, 0.3, 0.2),
        ("diabetes", 0, 0.5, 0.3),
        ("iris", 0, 0.3, 0.3),
    ],
)
def test_a_same_distribution_batch_passes(dataset: str, seed: int, reference: float, batch: float) -> None:
    ref, new = _split(_load(dataset), seed, reference, batch)
    # Rows of the batch beyond the reference's extremes: a rule that wants every row within them
    # fails every one of these batches.
    beyond = [c for c in ref.columns if not new[c].between(ref[c].min(), ref[c].max()).all()]
    assert beyond, "the batch should be a hard case: values beyond the reference's extremes"
    report = validate_dataframe(new, _infer(ref))
    assert report.success, report.summary()


def test_an_always_zero_pixel_tolerates_a_rare_stroke() -> None:
    digits = _load("digits")
    stroke = digits.index[digits["pixel_3_0"] != 0]
    assert len(stroke) == 2  # 2 of 1,797 images touch this pixel
    rest = digits.drop(index=stroke)
    reference, batch = _split(rest, seed=3, reference=0.5, batch=0.2)
    batch = pd.concat([batch, digits.loc[stroke[:1]]])
    expectations = _infer(reference)
    (pixel,) = [e["expect_column_values_to_be_between"] for e in _of(expectations, "pixel_3_0")[2:]]
    assert (pixel["min_value"], pixel["max_value"]) == (0, 0) and 0.9 < pixel["mostly"] < 1
    mine = _of(expectations, "pixel_3_0")
    report = validate_dataframe(batch, mine)
    assert report.success, report.summary()
    # ... but a pixel that lights up throughout is not that
    lit = batch.assign(pixel_3_0=np.where(np.arange(len(batch)) % 3 == 0, 8.0, 0.0))
    assert not validate_dataframe(lit, mine).success


def test_nulls_like_the_references_pass_and_many_more_fail() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(10, 2, 4000)
    values[rng.random(4000) < 0.1] = np.nan
    reference, batch = pd.DataFrame({"x": values[:3000]}), pd.DataFrame({"x": values[3000:]})
    expectations = _infer(reference)
    (nulls,) = [e for e in expectations if "expect_column_values_to_not_be_null" in e]
    assert 0.85 < nulls["expect_column_values_to_not_be_null"]["mostly"] < 0.9  # 10 % null, tolerates ~13 %
    assert validate_dataframe(batch, expectations).success
    holed = batch.assign(x=batch["x"].where(np.arange(len(batch)) % 4 != 0))  # a quarter more nulls
    assert _failed_columns(validate_dataframe(holed, expectations)) == {"x"}


def test_categories_closed_open_and_constant() -> None:
    rng = np.random.default_rng(11)
    rows = 3000
    tail = 1 / np.arange(1, 401) ** 1.1
    frame = pd.DataFrame(
        {
            "country": rng.choice(["US", "GB", "DE", "FR"], rows),
            "merchant": np.char.add("m", rng.choice(400, rows, p=tail / tail.sum()).astype(str)),
            "channel": ["web"] * rows,
        }
    )
    reference, batch = frame.iloc[:2000], frame.iloc[2000:].copy()
    expectations = _infer(reference)
    sets = {k["column"]: k for e in expectations for n, k in e.items() if n.endswith("_in_set")}
    assert "mostly" not in sets["country"]  # every country seen many times: a closed set
    assert 0.9 < sets["merchant"]["mostly"] < 0.99  # singletons: unseen merchants are expected
    assert 0.99 < sets["channel"]["mostly"] < 1  # one value: another one is rare, not impossible
    # a few merchants the reference never saw, one order through a new channel: sampling
    assert (~batch["merchant"].isin(sets["merchant"]["value_set"])).any()
    batch.iloc[0, batch.columns.get_loc("channel")] = "app"
    assert validate_dataframe(batch, expectations).success
    # one unknown country code is a corruption (a typo, a new encoding)
    typo = batch.copy()
    typo.iloc[5, typo.columns.get_loc("country")] = "UK"
    assert _failed_columns(validate_dataframe(typo, expectations)) == {"country"}
    flood = batch.copy()
    flood.iloc[: len(flood) // 5, flood.columns.get_loc("merchant")] = "junk"
    assert _failed_columns(validate_dataframe(flood, expectations)) == {"merchant"}


# --- broken batches: fail, on the broken column ------------------------------------------------


def _far(batch: pd.DataFrame, reference: pd.DataFrame, column: str, share: float) -> pd.DataFrame:
    out = batch.copy()
    ref = reference[column]
    rows = np.arange(len(out)) < round(share * len(out))
    out[column] = np.where(rows, ref.max() + 10 * (ref.max() - ref.min()), out[column])
    return out


@pytest.mark.parametrize(
    ("corruption", "column"),
    [
        ("x100", "mean radius"),
        ("x100", "worst fractal dimension"),
        ("all_null", "mean texture"),
        ("60%_null", "mean area"),
        ("text", "mean perimeter"),
        ("missing", "mean symmetry"),
        ("20%_far", "area error"),
        ("negated", "mean smoothness"),
        ("5%_negated", "worst concavity"),  # holds zeros: a non-negative quantity, one negative fails
        ("5%_negated", "mean fractal dimension"),  # 0.050 .. 0.097: its range above 0 or more
    ],
)
def test_a_broken_batch_fails_on_the_broken_column(cancer, corruption: str, column: str) -> None:
    reference, batch, expectations = cancer
    bad = batch.copy()
    if corruption == "x100":
        bad[column] = bad[column] * 100
    elif corruption == "all_null":
        bad[column] = np.nan
    elif corruption == "60%_null":
        bad[column] = bad[column].where(np.arange(len(bad)) % 5 >= 3)
    elif corruption == "text":
        bad[column] = bad[column].map(str)
    elif corruption == "missing":
        bad = bad.drop(columns=[column])
    elif corruption == "20%_far":
        bad = _far(bad, reference, column, 0.2)
    elif corruption == "negated":
        bad[column] = -bad[column]
    elif corruption == "5%_negated":
        flip = (np.arange(len(bad)) % 20 == 0) & (bad[column] != 0).to_numpy()
        assert 0 < flip.sum() < 0.06 * len(bad)
        bad[column] = np.where(flip, -bad[column], bad[column])
    report = validate_dataframe(bad, expectations)
    assert not report.success
    assert _failed_columns(report) == {column}, report.summary()


def test_the_tolerance_lets_a_few_far_values_through_on_a_small_reference(cancer) -> None:
    """The price of the tolerance: 1 % garbage in one column of 171 rows passes (284 reference
    rows cannot rule out that a fresh sample puts ~5 % beyond their extremes); 20 % does not."""
    reference, batch, expectations = cancer
    (between, *_) = [e["expect_column_values_to_be_between"] for e in _of(expectations, "area error")[2:]]
    assert 0.94 < between["mostly"] < 0.96
    assert validate_dataframe(_far(batch, reference, "area error", 0.01), expectations).success


# --- rules ------------------------------------------------------------------------------------


def test_the_sign_floor_goes_to_non_negative_quantities_only() -> None:
    rng = np.random.default_rng(2)
    rows = 500
    frame = pd.DataFrame(
        {
            "count": rng.poisson(3, rows),  # holds zeros
            "amount": rng.lognormal(3, 1, rows),  # right-skewed
            "kelvin": rng.normal(290, 5, rows),  # far above 0
            "signed": np.abs(rng.normal(6, 1, rows)),  # positive by luck, near 0 for its spread
            "centred": rng.normal(0, 1, rows),
        }
    )
    assert frame["signed"].min() > 0 and frame["signed"].min() < np.ptp(frame["signed"])
    floors = {
        k["column"]
        for e in _infer(frame)
        for n, k in e.items()
        if n == "expect_column_values_to_be_between" and "max_value" not in k
    }
    assert floors == {"count", "amount", "kelvin"}


def test_whole_numbers_get_whole_bounds_and_infinities_no_range(caplog) -> None:
    rows = 200
    frame = pd.DataFrame(
        {
            "pixels": np.tile(np.arange(0, 17, dtype=float), rows // 17 + 1)[:rows],  # floats, whole
            "ratio": np.r_[np.linspace(0, 1, rows - 1), np.inf],
        }
    )
    with caplog.at_level("INFO", logger="airflow_mlops.data.validation"):
        expectations = _infer(frame)
    (pixels, _) = [e["expect_column_values_to_be_between"] for e in _of(expectations, "pixels")[2:]]
    assert (pixels["min_value"], pixels["max_value"]) == (0, 19)  # 16 + 14 % of 16, rounded up
    assert all(isinstance(pixels[k], int) for k in ("min_value", "max_value"))
    assert not [e for e in _of(expectations, "ratio") if "expect_column_values_to_be_between" in e]
    assert "Not inferring a range for ratio: the reference holds infinite values" in caplog.text


def test_tiny_references_stop_at_existence_and_nulls() -> None:
    frame = pd.DataFrame({"x": np.arange(MIN_REFERENCE_ROWS - 1, dtype=float), "c": ["a", "b"] * 14 + ["a"]})
    names = [next(iter(e)) for e in _infer(frame)]
    assert set(names) == {"expect_column_to_exist", "expect_column_values_to_not_be_null"}


@pytest.mark.parametrize("draw", ["uniform", "normal", "exponential"])
def test_the_tolerance_holds_its_false_alarm_rate_for_any_distribution(draw: str) -> None:
    """The share beyond the reference's extremes (no margin) exceeds the tolerance in at most
    ``alpha`` of same-distribution batches, whatever the distribution, and not far less."""
    n, alpha, trials = 100, 0.05, 4000
    tolerance = _chance_share(2, n - 1, n, alpha)
    rng = np.random.default_rng(0)
    sample = getattr(rng, draw)(size=(trials, 2 * n))
    reference, batch = sample[:, :n], sample[:, n:]
    lo, hi = reference.min(axis=1, keepdims=True), reference.max(axis=1, keepdims=True)
    share = ((batch < lo) | (batch > hi)).mean(axis=1)
    rate = float((share > tolerance).mean())
    assert alpha / 4 < rate <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / trials)
