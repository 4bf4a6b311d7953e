"""The watermark gate: a candidate that lacks the pipeline's watermark is blocked (fail closed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.exceptions import GateFailedError
from airflow_mlops.registry.gates import GateReport, watermark_gate
from airflow_mlops.security import watermark as wm

KEY = b"gate-watermark-key-0123456789abcdef"


class Answers:
    def __init__(self, answers: np.ndarray) -> None:
        self.answers = answers

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.answers


@pytest.fixture
def record() -> wm.WatermarkRecord:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "label": rng.integers(0, 2, 300)})
    basis = wm.TriggerBasis.from_frame(frame, target="label", task="binary")
    return wm.make_record(KEY, "gate-model", basis, trigger_rows=100, alpha=1e-6, p0=0.5)


def test_a_candidate_that_carries_it_passes(record: wm.WatermarkRecord) -> None:
    result = watermark_gate(Answers(record.triggers(KEY).labels), record.to_dict(), KEY)
    assert result.passed and result.value == 100 and result.threshold == 74
    assert "100/100 trigger rows match, t=74" in result.reason and "bound" in result.reason


def test_a_candidate_without_it_is_blocked_with_matches_t_and_bound(record: wm.WatermarkRecord) -> None:
    labels = record.triggers(KEY).labels
    unmarked = np.where(np.arange(100) % 2 == 0, labels, np.where(labels == "1", "0", "1"))  # 50 match
    result = watermark_gate(Answers(unmarked), record.to_dict(), KEY)
    assert not result.passed and result.value == 50 and result.threshold == 74
    assert (
        "50/100 trigger rows match, t=74" in result.reason and "does not carry the watermark" in result.reason
    )
    report = GateReport(gates=(result,))
    with pytest.raises(GateFailedError, match=r"watermark: 50/100 trigger rows match, t=74 \(bound"):
        report.raise_if_failed()


def test_no_record_no_key_or_another_key_blocks(record: wm.WatermarkRecord) -> None:
    answers = Answers(record.triggers(KEY).labels)
    missing = watermark_gate(answers, None, KEY)
    assert not missing.passed and "no watermark record" in missing.reason and "t n/a" in missing.reason
    assert not watermark_gate(answers, record.to_dict(), None).passed
    other = watermark_gate(answers, record.to_dict(), b"another-key-0123456789abcdef")
    assert not other.passed and "commitment" in other.reason
    broken = watermark_gate(answers, {"unreadable": "x"}, KEY)
    assert not broken.passed and "cannot be verified" in broken.reason
