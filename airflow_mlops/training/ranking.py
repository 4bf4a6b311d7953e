"""Rank-based ROC AUC shared by the trainer (which runs with torch/numpy only) and the gates."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U over average ranks (a tied positive/negative pair counts one
    half); NaN when ``y`` holds a single class. ``y`` is 0/1."""
    import numpy as np

    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    average_ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    return float((average_ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
