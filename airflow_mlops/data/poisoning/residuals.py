"""``label_issues`` of a regression target: residual outliers of out-of-sample predictions, with a
cut calibrated on the reference or the fixed :data:`UNCALIBRATED_RESIDUAL_CUT`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.data.poisoning.fitting import oof_predict
from airflow_mlops.data.poisoning.stats import (
    FDR_LEVEL,
    MAD_TO_Z,
    MIN_CALIBRATION_ROWS,
    conformal_p_values,
    finite_or_none,
    quantiles,
    suspect_level,
)

if TYPE_CHECKING:
    import numpy as np

    from airflow_mlops.data.poisoning.features import Encoder

# Regression, label_issues without a reference (or with one of fewer than MIN_CALIBRATION_ROWS
# labelled rows): a row is suspect when its out-of-fold residual is more than this many robust
# standard deviations (MAD / 0.6745 of the residuals of rows at its target level) from their
# median. With a reference the same cut holds unless more than REFERENCE_CLEAN_RATE of the
# reference's own residuals lie beyond it (then the cut rises to their 1 - REFERENCE_CLEAN_RATE
# quantile); Benjamini-Hochberg on the conformal p-values may lower it. 5.5, not 5: a noise with
# heavy tails (Student's t with 3 degrees of freedom) has 1.1 % of its rows beyond 5 robust
# standard deviations and 0.8 % beyond 5.5; a model that fits the signal well leaves exactly that
# noise, and without a reference nothing tells its far rows from poisoned ones.
UNCALIBRATED_RESIDUAL_CUT = 5.5
REFERENCE_CLEAN_RATE = 0.005
# The residuals' centre and scale are those of the rows at a row's target level: the rows that
# set them (the reference's, else the batch's) are cut, in order of their predicted target, into
# at most SCALE_BINS bins of at least SCALE_BIN_ROWS rows; each bin's median and robust standard
# deviation are interpolated linearly between the bins' median predictions (flat beyond the ends).
# A noise that grows with the target (prices, counts, durations) then gets a wider cut where the
# target is high and a tighter one where it is low. A bin's scale is at least SCALE_FLOOR x the
# scale of all the rows together.
SCALE_BINS = 10
SCALE_BIN_ROWS = 500
SCALE_FLOOR = 0.1
# Without a reference the regressors are fitted a second time, on the rows the first pass did
# not find suspect (as robust regression does): a share of poisoned targets no longer pulls the
# models nor widens the scale. Every row is scored by the second pass. Each pass's fold models
# learn from at most half of max_fit_rows rows (a batch of more rows than that costs what one
# pass did).


@dataclass
class ResidualModel:
    """Out-of-sample predictions of a regression target and the residuals' robust scale.

    ``source``: ``"reference"`` (the regressors learnt from the reference and the batch's other
    folds, out of fold on both: each reference row's residual from a model that did not see it,
    ``ref_residual``) or ``"batch"`` (out of fold on the batch itself). ``center`` and ``scale``
    (the median of the residuals and MAD / 0.6745 around it) come from the reference's residuals
    when there are any, else from the batch's; ``row_center`` and ``row_scale`` are those of the
    rows at each row's target level (see :data:`SCALE_BINS`), ``ref_center`` and ``ref_scale``
    the same for the reference's rows.
    """

    status: str
    prediction: np.ndarray  # per row (NaN where there is no finite target)
    residual: np.ndarray  # target - prediction (NaN where there is no finite target)
    center: float = 0.0
    scale: float = 1.0
    source: str = "batch"
    note: str = ""
    ref_residual: np.ndarray | None = None
    row_center: np.ndarray | None = None
    row_below: np.ndarray | None = None
    row_above: np.ndarray | None = None
    ref_center: np.ndarray | None = None
    ref_below: np.ndarray | None = None
    ref_above: np.ndarray | None = None
    passes: int = 1
    first_pass_suspects: int = 0

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        labelled: np.ndarray,
        encoder: Encoder,
        groups: np.ndarray,
        *,
        folds: int,
        max_fit_rows: int,
        seed: int,
        reference_x: np.ndarray | None = None,
        reference_y: np.ndarray | None = None,
    ) -> ResidualModel:
        """From the reference and the batch together when the reference has
        :data:`MIN_CALIBRATION_ROWS` rows with a finite target, else out of fold on the batch (at
        least ``max(MIN_CALIBRATION_ROWS, 2 x folds)`` rows), in two passes."""
        import numpy as np

        n = len(x)
        rows = np.flatnonzero(labelled)
        prediction = np.full(n, np.nan)
        note = ""
        use_reference = reference_x is not None and reference_y is not None
        ref_rows = 0 if reference_y is None else len(reference_y)
        if use_reference and ref_rows < MIN_CALIBRATION_ROWS:
            note = (
                f"the reference has {ref_rows} rows with a finite target, fewer than "
                f"{MIN_CALIBRATION_ROWS}: the regressors were fitted on the batch itself, with the fixed cut"
            )
            use_reference = False
        need = max(MIN_CALIBRATION_ROWS, 2 * folds)
        distinct = len(np.unique(groups[rows]))
        if not use_reference and (len(rows) < need or distinct < folds):
            status = (
                f"skipped: {len(rows)} rows with a finite target ({distinct} distinct), need at least "
                f"{need} (and folds={folds} distinct)"
            )
            return cls(status, prediction, np.full(n, np.nan), note=note)
        args: dict[str, Any] = {"folds": folds, "max_fit_rows": max_fit_rows, "seed": seed}
        if use_reference:
            assert reference_x is not None and reference_y is not None
            batch_pred, ref_pred = oof_predict(
                x[rows],
                y[rows],
                encoder,
                groups=groups[rows],
                reference_x=reference_x,
                reference_y=reference_y,
                **args,
            )
            assert ref_pred is not None
            prediction[rows] = batch_pred
            ref_residual = reference_y - ref_pred
            center, scale = _robust_center_scale(ref_residual)
            row_center, row_below, row_above = _level_center_scale(ref_pred, ref_residual, prediction)
            ref_center, ref_below, ref_above = _level_center_scale(ref_pred, ref_residual, ref_pred)
            return cls(
                "ran",
                prediction,
                y - prediction,
                center,
                scale,
                "reference",
                ref_residual=ref_residual,
                row_center=row_center,
                row_below=row_below,
                row_above=row_above,
                ref_center=ref_center,
                ref_below=ref_below,
                ref_above=ref_above,
            )
        # two passes fit no more rows than one: half of max_fit_rows each
        args["max_fit_rows"] = max(MIN_CALIBRATION_ROWS, max_fit_rows // 2)
        prediction[rows], _ = oof_predict(x[rows], y[rows], encoder, groups=groups[rows], **args)
        residual = y - prediction
        row_center, row_below, row_above = _level_center_scale(prediction[rows], residual[rows], prediction)
        passes = 1
        first_score = _scores(residual[rows], row_center[rows], row_below[rows], row_above[rows])
        first = first_score > UNCALIBRATED_RESIDUAL_CUT
        suspects = int(first.sum())
        if 0 < suspects <= len(rows) - need:
            prediction[rows], _ = oof_predict(
                x[rows], y[rows], encoder, groups=groups[rows], exclude=first, **args
            )
            residual = y - prediction
            row_center, row_below, row_above = _level_center_scale(
                prediction[rows], residual[rows], prediction
            )
            passes = 2
        center, scale = _robust_center_scale(residual[rows])
        return cls(
            "ran",
            prediction,
            residual,
            center,
            scale,
            "batch",
            note,
            row_center=row_center,
            row_below=row_below,
            row_above=row_above,
            passes=passes,
            first_pass_suspects=suspects,
        )

    def _score(
        self,
        residual: np.ndarray,
        center: np.ndarray | None,
        below: np.ndarray | None,
        above: np.ndarray | None,
    ) -> np.ndarray:
        """Scores of ``residual`` against the level-wise centre and side scales, or against the
        global ``center`` and ``scale`` where there are none."""
        import numpy as np

        if center is None or below is None or above is None:
            return np.abs(residual - self.center) / self.scale
        return _scores(residual, center, below, above)

    def issues(self) -> tuple[np.ndarray, dict[str, Any], np.ndarray, np.ndarray]:
        """Suspect rows, details, each row's score (``|residual - center| / scale``, the centre
        and scale of the rows at its target level) and cut.

        With the reference's residuals: the fixed :data:`UNCALIBRATED_RESIDUAL_CUT`, raised to the
        reference's ``1 - REFERENCE_CLEAN_RATE`` quantile of scores when that is higher; lowered
        to just below the lowest discovery of Benjamini-Hochberg at :data:`FDR_LEVEL` (or
        :data:`ROW_LEVEL` when higher) on conformal p-values of the batch's scores against the
        reference's (larger is stranger) when that is lower. Without: the fixed cut.
        """
        import numpy as np

        lab = np.isfinite(self.residual)
        score = self._score(self.residual, self.row_center, self.row_below, self.row_above)
        extra: dict[str, Any] = {}
        if self.ref_residual is not None:
            ref_score = self._score(self.ref_residual, self.ref_center, self.ref_below, self.ref_above)
            p = conformal_p_values(np.sort(-ref_score), -score[lab])
            level = suspect_level(p) if len(p) else 0.0
            found = np.zeros(len(score), dtype=bool)
            found[np.flatnonzero(lab)[p <= level]] = True
            bh_cut = float(np.nextafter(score[found].min(), -np.inf)) if found.any() else math.inf
            fixed = max(UNCALIBRATED_RESIDUAL_CUT, float(np.quantile(ref_score, 1 - REFERENCE_CLEAN_RATE)))
            cut = min(bh_cut, fixed)
            mask = lab & (score > cut)
            how = (
                f"calibrated: {UNCALIBRATED_RESIDUAL_CUT:g} robust standard deviations unless more than "
                f"{REFERENCE_CLEAN_RATE:g} of the reference's residual scores ({len(ref_score)} rows, each "
                "predicted by a fold model that did not see it) lie beyond (then their quantile); lower "
                f"where Benjamini-Hochberg at false discovery rate {FDR_LEVEL:g} on conformal p-values "
                "against them finds a set below"
            )
            extra = {
                "fdr_level": FDR_LEVEL,
                "p_value_threshold": float(level),
                "discoveries": int(found.sum()),
                "fixed_cut_checked_on_reference": float(fixed),
                "reference_flag_rate": float((ref_score > cut).mean()),
                "reference_residual_quantiles": quantiles(self.ref_residual),
            }
        else:
            cut = UNCALIBRATED_RESIDUAL_CUT
            mask = lab & (score > cut)
            how = f"fixed: {UNCALIBRATED_RESIDUAL_CUT:g} robust standard deviations (no reference to calibrate on)"
            extra = {"passes": self.passes, "first_pass_suspects": self.first_pass_suspects}
        fitted = (
            "out of fold on the reference (the trusted rows) and the batch together"
            if self.source == "reference"
            else "out of fold on the batch itself"
        )
        detail = {
            "method": f"residual outliers: HistGradientBoosting regressors (absolute error) {fitted}; "
            "a row's score is |residual - median| / (MAD / 0.6745) of the residuals at its target "
            "level; suspect above the cut",
            "model_source": self.source,
            "threshold": how,
            "cut": finite_or_none(cut),
            "residual_center": float(self.center),
            "residual_scale": float(self.scale),
            "residual_quantiles": quantiles(self.residual[lab]),
            "score_quantiles": quantiles(score[lab]),
            **extra,
            **({"note": self.note} if self.note else {}),
        }
        return mask, detail, score, np.where(lab, cut, np.nan)


def _level_center_scale(
    level: np.ndarray, residual: np.ndarray, at: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The residuals' centre and robust scales below and above it at each target level of
    ``at``: ``level`` (the predictions) and ``residual`` of the rows that set them, cut into bins
    by level (:data:`SCALE_BINS`), interpolated between the bins' median levels."""
    import numpy as np

    ok = np.isfinite(level) & np.isfinite(residual)
    level, residual = level[ok], residual[ok]
    center, scale = _robust_center_scale(residual)
    bins = max(1, min(SCALE_BINS, len(level) // SCALE_BIN_ROWS))
    if not len(level):
        return np.full(len(at), center), np.full(len(at), scale), np.full(len(at), scale)
    order = np.argsort(level, kind="stable")
    mids, centers, belows, aboves = [], [], [], []
    for part in np.array_split(order, bins):
        c, s = _robust_center_scale(residual[part])
        below, above = _side_scales(residual[part], c, s)
        mids.append(float(np.median(level[part])))
        centers.append(c)
        belows.append(max(below, SCALE_FLOOR * scale))
        aboves.append(max(above, SCALE_FLOOR * scale))
    xs = np.maximum.accumulate(np.array(mids))
    at_ = np.where(np.isfinite(at), at, float(np.median(level)))
    return np.interp(at_, xs, centers), np.interp(at_, xs, belows), np.interp(at_, xs, aboves)


def _side_scales(residual: np.ndarray, center: float, scale: float) -> tuple[float, float]:
    """The robust scales of the residuals below and above ``center`` (the median of each side's
    distances / 0.6745: each is the MAD for a symmetric noise); ``scale`` for a side whose median
    distance is 0."""
    import numpy as np

    d = residual - center
    out = []
    for side in (-d[d < 0], d[d > 0]):
        s = float(np.median(side)) / MAD_TO_Z if len(side) else 0.0
        out.append(s if s > 0 else scale)
    return out[0], out[1]


def _scores(residual: np.ndarray, center: np.ndarray, below: np.ndarray, above: np.ndarray) -> np.ndarray:
    """A row's residual from the centre, in robust standard deviations of its side."""
    import numpy as np

    d = residual - center
    with np.errstate(invalid="ignore"):
        return np.where(d >= 0, d / above, -d / below)


def _robust_center_scale(residual: np.ndarray) -> tuple[float, float]:
    """The median of ``residual`` and its robust standard deviation (MAD / 0.6745; the mean
    absolute deviation when the MAD is 0, a tiny positive number when that is 0 too)."""
    import numpy as np

    finite = residual[np.isfinite(residual)]
    if not len(finite):
        return 0.0, 1.0
    center = float(np.median(finite))
    deviation = np.abs(finite - center)
    scale = float(np.median(deviation)) / MAD_TO_Z
    if not scale > 0:
        scale = float(deviation.mean())
    if not scale > 0:
        scale = 1e-12 * max(1.0, float(np.abs(finite).max()))
    return center, scale
