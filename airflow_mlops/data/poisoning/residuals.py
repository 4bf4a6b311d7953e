"""``label_issues`` of a regression target: residual outliers of out-of-sample predictions, with a
cut calibrated on the reference or the fixed :data:`UNCALIBRATED_RESIDUAL_CUT`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.data.poisoning.fitting import crossfit_predict, oof_predict
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
# standard deviations (MAD / 0.6745 of the batch's residuals) from their median.
UNCALIBRATED_RESIDUAL_CUT = 5.0


@dataclass
class ResidualModel:
    """Out-of-sample predictions of a regression target and the residuals' robust scale.

    ``source`` as for :class:`LabelModel`: ``"reference"`` (``folds`` regressors cross-fitted on
    the reference: each reference row's residual from the model that did not see it,
    ``ref_residual``; each batch row predicted by their average) or ``"batch"`` (out of fold on
    the batch itself). ``center`` and ``scale`` (the median of the residuals and MAD / 0.6745
    around it) come from the reference's residuals when there are any, else from the batch's.
    """

    status: str
    prediction: np.ndarray  # per row (NaN where there is no finite target)
    residual: np.ndarray  # target - prediction (NaN where there is no finite target)
    center: float = 0.0
    scale: float = 1.0
    source: str = "batch"
    note: str = ""
    ref_residual: np.ndarray | None = None

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
        """From the reference when it has :data:`MIN_CALIBRATION_ROWS` rows with a finite target,
        else out of fold on the batch (at least ``max(MIN_CALIBRATION_ROWS, 2 x folds)`` rows)."""
        import numpy as np

        n = len(x)
        rows = np.flatnonzero(labelled)
        prediction = np.full(n, np.nan)
        note = ""
        if reference_x is not None and reference_y is not None:
            if len(reference_y) >= MIN_CALIBRATION_ROWS:
                ref_pred, batch_pred = crossfit_predict(
                    reference_x,
                    reference_y,
                    encoder,
                    x[rows],
                    folds=folds,
                    max_fit_rows=max_fit_rows,
                    seed=seed,
                )
                prediction[rows] = batch_pred
                ref_residual = reference_y - ref_pred
                center, scale = _robust_center_scale(ref_residual)
                return cls(
                    "ran", prediction, y - prediction, center, scale, "reference", ref_residual=ref_residual
                )
            note = (
                f"the reference has {len(reference_y)} rows with a finite target, fewer than "
                f"{MIN_CALIBRATION_ROWS}: the regressors were fitted on the batch itself, with the fixed cut"
            )
        need = max(MIN_CALIBRATION_ROWS, 2 * folds)
        distinct = len(np.unique(groups[rows]))
        if len(rows) < need or distinct < folds:
            status = (
                f"skipped: {len(rows)} rows with a finite target ({distinct} distinct), need at least "
                f"{need} (and folds={folds} distinct)"
            )
            return cls(status, prediction, np.full(n, np.nan), note=note)
        prediction[rows] = oof_predict(
            x[rows], y[rows], encoder, folds=folds, max_fit_rows=max_fit_rows, seed=seed, groups=groups[rows]
        )
        residual = y - prediction
        center, scale = _robust_center_scale(residual[rows])
        return cls("ran", prediction, residual, center, scale, "batch", note)

    def issues(self) -> tuple[np.ndarray, dict[str, Any], np.ndarray, np.ndarray]:
        """Suspect rows, details, each row's score (``|residual - center| / scale``) and cut.

        With the reference's residuals: conformal p-values of the batch's scores against the
        reference's (larger is stranger), Benjamini-Hochberg at :data:`FDR_LEVEL` (or
        :data:`ROW_LEVEL` when higher) over every row with a finite target; the cut sits just
        below the lowest discovery's score. Without: the fixed :data:`UNCALIBRATED_RESIDUAL_CUT`.
        """
        import numpy as np

        lab = np.isfinite(self.residual)
        score = np.abs(self.residual - self.center) / self.scale
        extra: dict[str, Any] = {}
        if self.ref_residual is not None:
            ref_score = np.abs(self.ref_residual - self.center) / self.scale
            p = conformal_p_values(np.sort(-ref_score), -score[lab])
            level = suspect_level(p) if len(p) else 0.0
            mask = np.zeros(len(score), dtype=bool)
            mask[np.flatnonzero(lab)[p <= level]] = True
            cut = float(np.nextafter(score[mask].min(), -np.inf)) if mask.any() else math.inf
            how = (
                f"calibrated: Benjamini-Hochberg at false discovery rate {FDR_LEVEL:g} on conformal "
                f"p-values against the reference's residual scores ({len(ref_score)} rows, each "
                "predicted by the cross-fit model that did not see it)"
            )
            extra = {
                "fdr_level": FDR_LEVEL,
                "p_value_threshold": float(level),
                "discoveries": int(mask.sum()),
                "reference_flag_rate": float((ref_score > cut).mean()),
                "reference_residual_quantiles": quantiles(self.ref_residual),
            }
        else:
            cut = UNCALIBRATED_RESIDUAL_CUT
            mask = lab & (score > cut)
            how = f"fixed: {UNCALIBRATED_RESIDUAL_CUT:g} robust standard deviations (no reference to calibrate on)"
        fitted = (
            "cross-fitted on the reference (the trusted rows), the batch predicted by their average"
            if self.source == "reference"
            else "out of fold on the batch itself"
        )
        detail = {
            "method": f"residual outliers: HistGradientBoosting regressors {fitted}; a row's score "
            "is |residual - median| / (MAD / 0.6745) of the residuals; suspect above the cut",
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
