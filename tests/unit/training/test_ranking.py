"""The trainer's own ROC AUC (``airflow_mlops/training/ranking.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from airflow_mlops.training.ranking import roc_auc


def test_internal_roc_auc_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500).astype(np.float32)
    score = np.round(rng.random(500), 1)  # many ties
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert np.isnan(roc_auc(np.zeros(5, dtype=np.float32), np.arange(5.0)))
