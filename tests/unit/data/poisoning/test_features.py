"""The poisoning screen's feature matrix (``airflow_mlops/data/poisoning/features.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from airflow_mlops.data.poisoning import build_feature_matrix


def test_build_feature_matrix():
    df = pd.DataFrame({"a": [1.0, np.nan, 3.0, 1e6], "c": ["x", "y", None, "x"]})
    x = build_feature_matrix(df, ["a", "c"])
    assert x.shape == (4, 4) and np.isfinite(x).all()
    assert np.allclose(x[:, 0].mean(), 0) and np.allclose(x[:, 0].std(), 1)
    assert np.allclose(x[:, 1:].sum(axis=1), 1 / np.sqrt(2))
