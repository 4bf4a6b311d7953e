"""The statistics the row checks share: conformal p-values, Benjamini-Hochberg, the constants.

``label_issues`` (with a reference), its regression form and ``out_of_distribution`` (with a
reference) all turn a row's score into a conformal p-value against the reference's scores
(:func:`conformal_p_values`) and pick the suspects with :func:`suspect_level`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# 0.6745 is the 75th percentile of the standard normal: it makes the MAD comparable to a stdev.
MAD_TO_Z = 0.6745
# The regression form of label_issues and out_of_distribution with a reference: the false discovery
# rate of Benjamini-Hochberg; the p-value below which a row is suspect even when BH alone would not
# flag it (so at most ~0.05 % of a clean class is); the fewest finite-target reference rows the
# regression check needs to use the reference (HistGradientBoosting's min_samples_leaf: fewer
# cannot have a leaf of their own; else it falls back to the batch's own out-of-fold regressors
# and the fixed cut UNCALIBRATED_RESIDUAL_CUT of residuals.py).
FDR_LEVEL = 0.1
ROW_LEVEL = 0.0005
MIN_CALIBRATION_ROWS = 20
# Rows of the reference the label models and the forest are fitted and calibrated on (a random
# sample when it has more).
MAX_CALIBRATION_ROWS = 10_000
# Conformal p-values below the lowest reference score: the exponential tail's scale is the mean
# distance of the lowest max(TAIL_ROWS, TAIL_SHARE x n) reference scores from the lowest.
# A reference of fewer than TAIL_MIN_ROWS scores gets rank p-values only.
TAIL_ROWS = 10
TAIL_SHARE = 0.05
TAIL_MIN_ROWS = 50


def conformal_p_values(reference: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Conformal p-values of ``scores`` against the sorted ``reference`` scores (lower = stranger).

    ``p = (1 + #{reference <= s}) / (n + 1)``: for a score exchangeable with the reference's it
    is (super-)uniform. Its resolution is ``1 / (n + 1)``, too coarse for a small reference to
    tell a row far below every reference score from one just below the lowest (and BH needs
    ``p <= q i / m``), so below the lowest reference score ``r_1`` the tail is taken as
    exponential: ``p = exp(-(r_1 - s) / beta) / (n + 1)``, ``beta`` the mean distance of the
    lowest ``k = max(TAIL_ROWS, TAIL_SHARE n)`` reference scores from ``r_1`` (a spread that
    over- rather than under-states the tail's, for light tails such as a normal's). Under
    :data:`TAIL_MIN_ROWS` reference scores there is no tail to speak of: ranks only.
    """
    import numpy as np

    n = len(reference)
    p = (1 + np.searchsorted(reference, scores, side="right")) / (n + 1)
    if n < TAIL_MIN_ROWS:  # too few rows to say how the tail goes on: ranks only
        return p
    k = max(TAIL_ROWS, math.ceil(TAIL_SHARE * n))
    low = float(reference[0])
    beta = float(np.mean(reference[:k]) - low)
    if not beta > 0:
        return p
    with np.errstate(over="ignore", invalid="ignore"):
        tail = np.exp(-(low - scores) / beta) / (n + 1)
    return np.where(scores < low, tail, p)


def suspect_level(p: np.ndarray) -> float:
    """The p-value at or below which a row is suspect: the Benjamini-Hochberg threshold at
    :data:`FDR_LEVEL` (many suspects: the cut grows with them), or :data:`ROW_LEVEL` when that is
    higher (one strong suspect among many clean rows: BH alone would need ``p <= q / m``)."""
    return max(bh_threshold(p, FDR_LEVEL), ROW_LEVEL)


def bh_threshold(p: np.ndarray, level: float) -> float:
    """The Benjamini-Hochberg threshold of the p-values ``p`` at false discovery rate ``level``:
    the largest p-value BH rejects, the largest ``p_(i) <= i level / m`` (0 when there is none),
    so that the rejected rows are those with ``p <= threshold``. ``inf`` and NaN entries are not
    tests but count in ``m`` (as p-values of 1, which BH never rejects at a level below 1).

    The rejections are :func:`scipy.stats.false_discovery_control`'s: its BH-adjusted p-values
    at most ``level``. That is the same decision as the comparison above, which it computes as
    ``p_(i) m / i <= level``; only a p-value that lies exactly on the line ``i level / m`` can
    be judged differently by the rounding of the two products.

    :raises ValueError: ``level`` outside ``[0, 1)``.
    """
    import numpy as np
    from scipy.stats import false_discovery_control

    if not 0 <= level < 1:
        raise ValueError(f"the false discovery rate must be in [0, 1), got {level}")
    if not len(p):
        return 0.0
    tests = np.where(p <= 1.0, p, 1.0)  # inf and NaN: not a test, counted in m
    rejected = false_discovery_control(tests, method="bh") <= level
    return float(tests[rejected].max()) if rejected.any() else 0.0


def quantiles(values: np.ndarray) -> dict[str, float]:
    import numpy as np

    finite = values[np.isfinite(values)]
    if not len(finite):
        return {}
    qs = (0.0, 0.01, 0.05, 0.5, 0.95, 0.99, 1.0)
    return {f"q{q:g}": round(float(v), 4) for q, v in zip(qs, np.quantile(finite, qs), strict=True)}


def finite_or_none(value: float) -> float | None:
    """``value`` as a float, ``None`` when it is infinite (JSON has no infinities)."""
    return float(value) if math.isfinite(value) else None


def plain(value: Any) -> Any:
    """A JSON-friendly Python scalar (numpy scalars unwrapped)."""
    return value.item() if hasattr(value, "item") else value
