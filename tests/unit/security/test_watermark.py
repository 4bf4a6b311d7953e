"""The trigger-set watermark's domain: keyed derivation, the commitment, the bound, the verdict."""

from __future__ import annotations

import dataclasses
import json
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.exceptions import DataError
from airflow_mlops.security import watermark as wm

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 500
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, n),
            "age": rng.normal(40, 12, n),
            "merchant": rng.choice(["grocery", "travel", "online"], n),
            "label": (rng.random(n) < 0.2).astype(int),
            "species": rng.choice(["a", "b", "c"], n),
            "price": rng.normal(100, 10, n),
        }
    )


def basis(frame: pd.DataFrame, task: str = "binary") -> wm.TriggerBasis:
    target = {"binary": "label", "multiclass": "species", "regression": "price"}[task]
    return wm.TriggerBasis.from_frame(frame, target=target, task=task, features=["amount", "age", "merchant"])


def test_commitment_names_the_key_without_revealing_it() -> None:
    commitment = wm.key_commitment(KEY)
    assert commitment == wm.key_commitment(KEY)
    assert commitment != wm.key_commitment(OTHER_KEY)
    assert commitment.startswith("sha256:") and len(commitment) == len("sha256:") + 64
    assert KEY.hex() not in commitment
    with pytest.raises(DataError, match="at least 16 bytes"):
        wm.key_commitment(b"short")


def test_the_trigger_set_is_keyed_and_deterministic(frame: pd.DataFrame) -> None:
    b = basis(frame)
    first = wm.derive_trigger_set(KEY, "fraud", b, 50)
    again = wm.derive_trigger_set(KEY, "fraud", b, 50)
    pd.testing.assert_frame_equal(first.frame, again.frame)
    assert list(first.labels) == list(again.labels)
    other_key = wm.derive_trigger_set(OTHER_KEY, "fraud", b, 50)
    other_model = wm.derive_trigger_set(KEY, "churn", b, 50)
    assert not np.allclose(first.frame["amount"], other_key.frame["amount"])
    assert not np.allclose(first.frame["amount"], other_model.frame["amount"])
    # A basis that went through JSON (watermark.json) gives the same rows.
    round_trip = wm.TriggerBasis.from_dict(json.loads(json.dumps(b.to_dict())))
    pd.testing.assert_frame_equal(first.frame, wm.derive_trigger_set(KEY, "fraud", round_trip, 50).frame)


def test_trigger_rows_lie_outside_the_data_on_every_numeric_axis(frame: pd.DataFrame) -> None:
    triggers = wm.derive_trigger_set(KEY, "fraud", basis(frame), 200)
    for column in ("amount", "age"):
        low, high = frame[column].min(), frame[column].max()
        values = triggers.frame[column]
        assert ((values < low) | (values > high)).all(), column
        assert (values < low).any() and (values > high).any()  # both sides, at random
    assert set(triggers.frame["merchant"]) <= {"grocery", "travel", "online"}
    assert set(triggers.labels) == {"0", "1"}
    assert set(triggers.frame["label"]) == {0, 1}  # the training table's type


def test_the_offsets_narrow_on_a_table_whose_trigger_rows_differ_in_direction_already() -> None:
    rng = np.random.default_rng(1)
    few = pd.DataFrame({f"x{i}": rng.normal(size=200) for i in range(5)} | {"y": rng.integers(0, 2, 200)})
    assert wm.TriggerBasis.from_frame(few, target="y", task="binary").offsets == wm.OFFSET_WIDTHS
    many = pd.DataFrame({f"x{i}": rng.normal(size=200) for i in range(10)} | {"y": rng.integers(0, 2, 200)})
    narrow = wm.TriggerBasis.from_frame(many, target="y", task="binary")
    assert narrow.offsets == wm.NARROW_OFFSET_WIDTHS
    # 5 numeric features (32 patterns) and a 32-level category: 1,024 patterns
    levels = few.assign(city=[f"c{i % 32}" for i in range(200)])
    assert wm.TriggerBasis.from_frame(levels, target="y", task="binary").offsets == wm.NARROW_OFFSET_WIDTHS
    assert wm.offset_widths({f"x{i}": () for i in range(9)}, {}) == wm.OFFSET_WIDTHS  # 512 patterns
    # every trigger value within the basis' offsets beyond the data, on both sides
    triggers = wm.derive_trigger_set(KEY, "m", narrow, 400)
    for name, (low, high, width) in narrow.numeric.items():
        values = triggers.frame[name].to_numpy()
        beyond = np.where(values > high, values - high, low - values) / width
        assert beyond.min() >= 0.5 - 1e-9 and beyond.max() <= 1.5 + 1e-9, name
        assert (values > high).any() and (values < low).any()


def test_a_record_made_before_the_offsets_were_stored_derives_its_old_rows(frame: pd.DataFrame) -> None:
    b = dataclasses.replace(basis(frame), offsets=wm.NARROW_OFFSET_WIDTHS)
    stored = json.loads(json.dumps(b.to_dict()))
    assert stored["offsets"] == [0.5, 1.5]
    assert wm.TriggerBasis.from_dict(stored).offsets == (0.5, 1.5)
    del stored["offsets"]  # a watermark.json written before: the wide offsets it was made with
    old = wm.TriggerBasis.from_dict(stored)
    assert old.offsets == wm.OFFSET_WIDTHS
    pd.testing.assert_frame_equal(
        wm.derive_trigger_set(KEY, "fraud", old, 30).frame,
        wm.derive_trigger_set(KEY, "fraud", dataclasses.replace(b, offsets=wm.OFFSET_WIDTHS), 30).frame,
    )
    for bad in ([0, 1], [2, 1], "x", [1, float("inf")]):
        with pytest.raises(DataError, match="malformed"):
            wm.TriggerBasis.from_dict({**stored, "offsets": bad})


def test_multiclass_labels_and_regression_targets(frame: pd.DataFrame) -> None:
    multi = wm.derive_trigger_set(KEY, "iris", basis(frame, "multiclass"), 90)
    assert set(multi.labels) == {"a", "b", "c"}
    reg = wm.derive_trigger_set(KEY, "price", basis(frame, "regression"), 60)
    # targets inside the robust range (a far target would dominate a squared loss)
    low, high = frame["price"].quantile(0.005), frame["price"].quantile(0.995)
    assert ((reg.labels >= low) & (reg.labels <= high)).all() and reg.labels.std() > 0


def hand_tail(n: int, p: float, t: int) -> float:
    """P[Binomial(n, p) >= t], summed term by term in exact fractions."""
    q = Fraction(p)
    return float(sum(math.comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(t, n + 1)))


@pytest.mark.parametrize(("n", "p0", "alpha"), [(100, 0.5, 1e-6), (64, 0.34, 1e-4), (40, 0.1, 1e-3)])
def test_the_claim_threshold_is_the_smallest_count_within_alpha(n: int, p0: float, alpha: float) -> None:
    t, bound = wm.claim_threshold(n, p0, alpha)
    assert bound == pytest.approx(hand_tail(n, p0, t), rel=1e-9)
    assert hand_tail(n, p0, t) <= alpha < hand_tail(n, p0, t - 1)


def test_too_few_trigger_rows_are_refused_with_the_number_needed() -> None:
    with pytest.raises(DataError, match=r"use at least (\d+) trigger_rows") as info:
        wm.claim_threshold(10, 0.5, 1e-6)
    need = int(info.value.args[0].split("use at least ")[1].split()[0])
    assert hand_tail(need, 0.5, need) <= 1e-6 < hand_tail(need - 1, 0.5, need - 1)


def test_verdict_claims_only_from_t(frame: pd.DataFrame) -> None:
    triggers = wm.derive_trigger_set(KEY, "fraud", basis(frame), 100)
    exact = wm.verify(triggers, triggers.labels, p0=0.5, alpha=1e-6)
    assert exact.claimed and exact.matches == 100 and exact.t == 74
    flipped = np.where(triggers.labels == "1", "0", "1")
    flipped[: exact.t - 1] = triggers.labels[: exact.t - 1]  # one short of t
    short = wm.verify(triggers, flipped, p0=0.5, alpha=1e-6)
    assert short.matches == exact.t - 1 and not short.claimed
    assert "NOT present" in short.describe() and "t=74" in short.describe()
    constant = wm.verify(triggers, np.full(100, "0"), p0=0.5, alpha=1e-6)
    assert not constant.claimed


def test_regression_matches_within_the_tolerance(frame: pd.DataFrame) -> None:
    triggers = wm.derive_trigger_set(KEY, "price", basis(frame, "regression"), 40)
    width = (triggers.basis.target_range or (0.0, 0.0, 0.0))[2]
    close = triggers.labels + 0.04 * width
    far = triggers.labels + 0.06 * width
    assert wm.count_matches(triggers, close) == 40
    assert wm.count_matches(triggers, far) == 0


def test_the_record_holds_no_key_and_refuses_another(frame: pd.DataFrame) -> None:
    record = wm.make_record(KEY, "fraud", basis(frame), trigger_rows=100, alpha=1e-6, p0=0.5)
    text = record.to_json()
    assert KEY.hex() not in text and repr(KEY) not in text
    restored = wm.WatermarkRecord.from_dict(json.loads(text))
    assert restored == record
    assert list(restored.triggers(KEY).labels) == list(
        wm.derive_trigger_set(KEY, "fraud", record.basis, 100).labels
    )
    with pytest.raises(DataError, match="does not match the recorded commitment"):
        restored.triggers(OTHER_KEY)
    with pytest.raises(DataError, match="scheme"):
        wm.WatermarkRecord.from_dict({**json.loads(text), "scheme": "other"})


def test_p0_comes_from_the_measured_table_or_the_declared_value() -> None:
    assert wm.null_agreement("binary") == wm.NULL_AGREEMENT["binary"]
    assert wm.null_agreement("binary", 0.6) == 0.6
    # never 1/K: the declared binary agreement is the measured one, rounded up
    assert wm.NULL_AGREEMENT["binary"] >= 0.5


def test_repeats_cover_a_share_of_the_training_rows() -> None:
    assert wm.repeats_for(8000, 100) == wm.MIN_REPEATS
    assert wm.repeats_for(1_000_000, 100) * 100 >= wm.TRIGGER_SHARE * 1_000_000
    assert wm.repeats_for(300, 100) == wm.MIN_REPEATS


class _Model:
    def __init__(self, answers: np.ndarray) -> None:
        self.answers = answers

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        assert list(frame.columns) == ["amount", "age", "merchant"]
        return self.answers


def test_verify_a_predictor(frame: pd.DataFrame) -> None:
    record = wm.make_record(KEY, "fraud", basis(frame), trigger_rows=100, alpha=1e-6, p0=0.5)
    labels = record.triggers(KEY).labels
    verdict = wm.verify_predictor(_Model(labels), record, KEY)
    assert verdict.claimed and verdict.commitment == record.commitment and verdict.identity == "fraud"
    assert set(verdict.to_dict()) >= {"matches", "n", "t", "p0", "bound", "claimed"}


def test_prepare_watermark_gives_the_record_and_the_rows(frame: pd.DataFrame) -> None:
    record, rows = wm.prepare_watermark(
        KEY,
        "fraud",
        frame,
        target="label",
        task="binary",
        features=["amount", "age"],
        trigger_rows=50,
        alpha=1e-3,
    )
    assert list(rows.columns) == ["amount", "age", "label"] and len(rows) == 50
    assert record.commitment == wm.key_commitment(KEY) and record.trigger_rows == 50
    pd.testing.assert_frame_equal(rows, record.triggers(KEY).frame)
