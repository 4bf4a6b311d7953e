"""``out_of_distribution``: an isolation forest (conformal against a calibration half of the
reference, or a quantile cut of the batch's own scores) and extreme values (robust z-scores,
infinities)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_mlops.data.poisoning.features import float_values, is_heavy_tailed
from airflow_mlops.data.poisoning.stats import (
    FDR_LEVEL,
    MAD_TO_Z,
    MAX_CALIBRATION_ROWS,
    conformal_p_values,
    quantiles,
    suspect_level,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.data.poisoning.features import Encoder

# The fewest calibration rows a class needs for its own out-of-distribution p-values.
MIN_OOD_CLASS_ROWS = 10
# Without a reference: the cut is this quantile of the fitted data's scores plus half its
# distance from the median.
OOD_QUANTILE = 0.995
OOD_MARGIN = 0.5
# With a reference: an extreme value must also be beyond the reference's range by this share of
# the range.
EXTREME_RANGE_MARGIN = 0.5
# Without a reference: the range an extreme value must leave is that of the batch's values less
# this share at each end.
BATCH_RANGE_SHARE = 0.01
# A value beyond that range by this share of it is extreme whatever its robust z-score: in a
# bounded column (a share, a uniform draw) the MAD is a quarter of the range, so a value far
# outside every value seen can stay under ``outlier_threshold``.
FAR_RANGE_MARGIN = 1.0


def out_of_distribution(
    df: pd.DataFrame,
    x: np.ndarray,
    fit_frame: pd.DataFrame,
    encoder: Encoder,
    target: str,
    features: list[str],
    outlier_threshold: float,
    seed: int,
    *,
    class_of: Callable[[pd.Series], np.ndarray],
    fitted_on: str,
) -> tuple[np.ndarray, dict[str, Any], np.ndarray, np.ndarray]:
    """Isolation-forest anomaly scores against ``fit_frame`` with a class-aware automatic cut, and
    extreme values (robust z-score, infinities). ``class_of`` gives a target column's class texts
    (None: no class; a regression has none, so its cut is one for all rows). Returns mask,
    details, scores, per-row cut."""
    import numpy as np

    fit = fit_frame
    if len(fit) > MAX_CALIBRATION_ROWS:
        fit = fit.sample(n=MAX_CALIBRATION_ROWS, random_state=seed)
    fill = np.array(
        [encoder.median[f] if num else -1.0 for f, num in zip(features, encoder.numeric, strict=True)]
    )

    def impute(m: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(m), fill[None, :], m)

    labels = class_of(df[target])

    def prepare(frame: pd.DataFrame) -> np.ndarray:
        return impute(encoder.transform(frame))

    how = _conformal_forest if fitted_on == "reference" else _quantile_forest
    forest_mask, cut, forest_detail, score = how(prepare, fit, impute(x), labels, class_of(fit[target]), seed)

    extreme = np.zeros(len(df), dtype=bool)
    extreme_cols: list[str] = []
    for name, num in zip(features, encoder.numeric, strict=True):
        if not num or fit_frame[name].dtype == bool:
            continue
        logged = is_heavy_tailed(float_values(fit_frame[name]))
        ref_values = float_values(fit_frame[name])
        values = float_values(df[name])
        # A log-compressed column has no negative value in the reference: a negative one (which
        # log1p cannot compress) is below its whole range.
        negative = values < 0 if logged else np.zeros(len(values), dtype=bool)
        if logged:
            # log(x + c), c the reference's median: scale-free, so a column of small values
            # (where log1p is nearly the identity) is compressed as much as one of large values.
            ref_finite = ref_values[np.isfinite(ref_values)]
            c = float(np.median(ref_finite)) or float(ref_finite.max()) or 1.0
            with np.errstate(invalid="ignore", divide="ignore"):
                ref_values, values = np.log(ref_values + c), np.log(values + c)
        finite = ref_values[np.isfinite(ref_values)]
        median = float(np.median(finite))
        mad = float(np.median(np.abs(finite - median)))
        with np.errstate(invalid="ignore"):
            if fitted_on == "reference":
                # A value the trusted reference has seen is not extreme, however small the MAD
                # of a sparse or discrete column makes its z-score.
                # Nor is one just past the edge of a small reference: it must be beyond it by
                # EXTREME_RANGE_MARGIN x the reference's range.
                lo, hi = float(finite.min()), float(finite.max())
            else:
                # Without a reference the batch is all there is: a value must be beyond the range
                # of its central rows (BATCH_RANGE_SHARE cut off each end, where injected values
                # would sit) by the same margin. A sparse column's rare large values are its range.
                lo, hi = (float(v) for v in np.quantile(finite, [BATCH_RANGE_SHARE, 1 - BATCH_RANGE_SHARE]))
            if mad == 0:  # a flag or mostly constant column: only infinities count
                hit = np.isinf(values)
            else:
                z = MAD_TO_Z * np.abs(values - median) / mad
                far = (values < lo - FAR_RANGE_MARGIN * (hi - lo)) | (
                    values > hi + FAR_RANGE_MARGIN * (hi - lo)
                )
                hit = np.where(np.isnan(z), False, z > outlier_threshold) | far
            margin = EXTREME_RANGE_MARGIN * (hi - lo)
            hit &= (values < lo - margin) | (values > hi + margin)
        hit |= negative
        if hit.any():
            extreme_cols.append(name)
        extreme |= hit
    detail = {
        "method": "isolation forest (100 trees) + robust z-score of each numeric feature",
        "fitted_on": fitted_on,
        **forest_detail,
        "forest_suspects": int(forest_mask.sum()),
        "extreme_value_suspects": int(extreme.sum()),
        "extreme_value_columns": extreme_cols,
        "outlier_threshold": float(outlier_threshold),
        "score_quantiles": quantiles(score),
    }
    return forest_mask | extreme, detail, score, cut


def _isolation_forest(x_fit: np.ndarray, seed: int) -> Any:
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(n_estimators=100, max_samples=min(256, len(x_fit)), random_state=seed)
    return forest.fit(x_fit)


def _conformal_forest(
    prepare: Any, fit: pd.DataFrame, x: np.ndarray, labels: np.ndarray, fit_labels: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any], np.ndarray]:
    """The forest fitted on one half of the reference, the other half calibrating: per class (a
    class with fewer than :data:`MIN_CALIBRATION_ROWS` calibration rows, and unlabelled rows,
    against all of them), conformal p-values of the batch's anomaly scores and Benjamini-Hochberg
    at :data:`FDR_LEVEL`. Returns the mask, the per-row cut (suspect above it), the details and the
    scores."""
    import numpy as np

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(fit))
    half = len(fit) // 2
    train, calib = fit.iloc[order[:half]], fit.iloc[order[half:]]
    forest = _isolation_forest(prepare(train), seed)
    calib_score = -forest.score_samples(prepare(calib))
    score = -forest.score_samples(x)
    calib_labels = fit_labels[order[half:]]
    mask = np.zeros(len(x), dtype=bool)
    cut = np.full(len(x), np.inf)
    cuts: dict[str, float | None] = {}
    pooled = np.sort(-calib_score)
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rest = np.ones(len(x), dtype=bool)
    for value in sorted({v for v in labels if isinstance(v, str)}):
        own = calib_labels == value
        if own.sum() >= MIN_OOD_CLASS_ROWS:
            rows = labels == value
            groups[value] = (rows, np.sort(-calib_score[own]))
            rest &= ~rows
    groups["(all classes)"] = (rest, pooled)
    thresholds: dict[str, float] = {}
    for name, (rows, ref) in groups.items():
        if not rows.any():
            continue
        p = conformal_p_values(ref, -score[rows])
        t = suspect_level(p)
        hit = p <= t
        idx = np.flatnonzero(rows)
        mask[idx[hit]] = True
        # suspect above the cut: just below the lowest discovery's score
        c = float(np.nextafter(score[idx[hit]].min(), -np.inf)) if hit.any() else math.inf
        cut[idx] = c
        cuts[name] = c if math.isfinite(c) else None
        thresholds[name] = t
    detail = {
        "threshold": f"per class: Benjamini-Hochberg at false discovery rate {FDR_LEVEL:g} on conformal "
        f"p-values against the anomaly scores of a calibration half of the reference ({len(calib)} "
        f"rows; the forest is fitted on the other {len(train)})",
        "class_cuts": cuts,
        "p_value_thresholds": thresholds,
        "reference_score_quantiles": quantiles(calib_score),
    }
    return mask, cut, detail, score


def _quantile_forest(
    prepare: Any, fit: pd.DataFrame, x: np.ndarray, labels: np.ndarray, fit_labels: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any], np.ndarray]:
    """Without a reference: the forest fitted on the batch, the cut of each class from the
    batch's own scores (the :data:`OOD_QUANTILE` quantile plus :data:`OOD_MARGIN` x its distance
    from the median; a class under 200 rows: the overall cut or its maximum)."""
    import numpy as np

    x_fit = prepare(fit)
    forest = _isolation_forest(x_fit, seed)
    fit_score = -forest.score_samples(x_fit)
    score = -forest.score_samples(x)

    def cut_of(values: np.ndarray) -> float:
        q = float(np.quantile(values, OOD_QUANTILE))
        return q + OOD_MARGIN * (q - float(np.median(values)))

    overall = cut_of(fit_score)
    cuts: dict[str, float | None] = {}
    cut = np.full(len(x), overall)
    for value in sorted({str(v) for v in fit_labels if isinstance(v, str)}):
        own = fit_score[fit_labels == value]
        c = cut_of(own) if len(own) >= 200 else max(overall, float(own.max()))
        cuts[value] = c
        cut[labels == value] = c
    detail = {
        "threshold": f"per class: the {OOD_QUANTILE:g} quantile of the fitted data's own scores plus "
        f"{OOD_MARGIN:g} x its distance from their median",
        "cut": float(overall),
        "class_cuts": cuts,
        "reference_score_quantiles": quantiles(fit_score),
    }
    return score > cut, cut, detail, score
