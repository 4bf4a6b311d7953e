"""Scores of a binary model on random rows, shared by the curve tests (metrics) and the evaluation
report's tests."""

from __future__ import annotations

import numpy as np


def _scores(n: int = 3000, seed: int = 0, rounding: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    score = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * y - 0.5)))
    if rounding is not None:
        score = np.round(score, rounding)  # ties
    return y, score
