"""``label_issues`` of a classification target: confident learning on out-of-sample class
probabilities, with a cut calibrated on the reference (conformal p-values, Benjamini-Hochberg) or
the fixed :data:`UNCALIBRATED_LABEL_CUT`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.data.poisoning.fitting import crossfit_proba, oof_proba
from airflow_mlops.data.poisoning.stats import (
    FDR_LEVEL,
    MIN_CALIBRATION_ROWS,
    conformal_p_values,
    finite_or_none,
    plain,
    quantiles,
    suspect_level,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.data.poisoning.features import Encoder

# Without a calibrated cut: the given label 20 times less likely than another, after dividing by
# the class rates.
UNCALIBRATED_LABEL_CUT = -math.log(20.0)
# Probabilities are clipped to [PROB_FLOOR, 1] before logs: a score is at most ~log(1/PROB_FLOOR)
# (low enough that a flipped row far inside another class does not tie with borderline rows).
PROB_FLOOR = 1e-7


@dataclass
class LabelModel:
    """Class probabilities of the batch's rows from models that never saw them, and the
    confident-learning quantities.

    ``source`` says which models: ``"reference"`` (fitted on the trusted reference only, cross-
    fitted so that every reference row also has a score from a model that did not see it:
    ``ref_*``) or ``"batch"`` (out-of-fold models fitted on the batch itself, no ``ref_*``).
    """

    status: str
    classes: list[Any]
    y: np.ndarray  # class code per row, -1 where unlabelled
    proba: np.ndarray  # (n, classes) probabilities (NaN rows where unlabelled)
    prior: np.ndarray  # class rates of the data the models were fitted on
    thresholds: np.ndarray  # per class: mean self-confidence (confident learning)
    score: np.ndarray  # class-normalised log-likelihood ratio of the given label (NaN unlabelled)
    suggested: np.ndarray  # the class the probabilities confidently point to (-1: none)
    source: str = "batch"
    note: str = ""  # why the reference was not used, when it was given
    # The reference's rows, each scored by the one cross-fit model that did not see it.
    ref_y: np.ndarray | None = None
    ref_score: np.ndarray | None = None

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        labels: pd.Series,
        labelled: np.ndarray,
        encoder: Encoder,
        groups: np.ndarray,
        *,
        folds: int,
        max_fit_rows: int,
        seed: int,
        reference_x: np.ndarray | None = None,
        reference_labels: np.ndarray | None = None,
    ) -> LabelModel:
        """From the reference when one is given and has every class of the batch (at least
        :data:`MIN_CALIBRATION_ROWS` rows of each), else out of fold on the batch."""
        import numpy as np

        n = len(x)
        rows = np.flatnonzero(labelled)
        values = labels.to_numpy()[rows]
        note = ""
        if reference_x is not None and reference_labels is not None:
            both = np.concatenate([values.astype(object), reference_labels.astype(object)])
            classes = _classes_of(both)
            lookup = {str(c): j for j, c in enumerate(classes)}
            codes = np.array([lookup[str(v)] for v in values], dtype=np.int64)
            ref_y = np.array([lookup[str(v)] for v in reference_labels], dtype=np.int64)
            ref_counts = np.bincount(ref_y, minlength=len(classes))
            short = [
                str(plain(c)) for c, m in zip(classes, ref_counts, strict=True) if m < MIN_CALIBRATION_ROWS
            ]
            if len(classes) >= 2 and not short:
                return cls._from_reference(
                    n, rows, codes, classes, x[rows], reference_x, ref_y, encoder,
                    folds=folds, max_fit_rows=max_fit_rows, seed=seed,
                )  # fmt: skip
            note = (
                f"the reference has fewer than {MIN_CALIBRATION_ROWS} labelled rows of class(es) "
                f"{short}: the label model was fitted on the batch itself, with the fixed cut"
            )
        classes = _classes_of(values)
        lookup = {str(c): j for j, c in enumerate(classes)}
        codes = np.array([lookup[str(v)] for v in values], dtype=np.int64)
        y = np.full(n, -1, dtype=np.int64)
        y[rows] = codes
        k = len(classes)
        counts = np.bincount(codes, minlength=k) if k else np.zeros(0, dtype=np.int64)
        if k < 2:
            status = f"skipped: {k} class(es) among the labelled rows, need at least 2"
        elif counts.min() < folds:
            status = f"skipped: a class has {int(counts.min())} labelled rows, need at least folds={folds}"
        else:
            status = "ran"
        if status != "ran":
            empty = np.full((n, max(k, 1)), np.nan)
            nan = np.full(n, np.nan)
            return cls(status, classes, y, empty, np.zeros(k), np.zeros(k), nan, np.full(n, -1), note=note)
        batch_proba = oof_proba(
            x[rows], codes, k, encoder, folds=folds, max_fit_rows=max_fit_rows, seed=seed, groups=groups[rows]
        )
        prior = counts / counts.sum()
        thresholds = _mean_self_confidence(batch_proba, codes, k)
        model = cls._ran(n, rows, codes, classes, batch_proba, prior, thresholds)
        model.note = note
        return model

    @classmethod
    def _ran(
        cls,
        n: int,
        rows: np.ndarray,
        codes: np.ndarray,
        classes: list[Any],
        batch_proba: np.ndarray,
        prior: np.ndarray,
        thresholds: np.ndarray,
    ) -> LabelModel:
        """A model that ran: the labelled ``rows``' codes, probabilities and scores spread over all
        ``n`` rows."""
        import numpy as np

        y = np.full(n, -1, dtype=np.int64)
        y[rows] = codes
        proba = np.full((n, len(classes)), np.nan)
        proba[rows] = batch_proba
        score, suggested = _confident_scores(batch_proba, codes, prior, thresholds)
        full_score = np.full(n, np.nan)
        full_score[rows] = score
        full_suggested = np.full(n, -1, dtype=np.int64)
        full_suggested[rows] = suggested
        return cls("ran", classes, y, proba, prior, thresholds, full_score, full_suggested)

    @classmethod
    def _from_reference(
        cls,
        n: int,
        rows: np.ndarray,
        codes: np.ndarray,
        classes: list[Any],
        batch_x: np.ndarray,
        reference_x: np.ndarray,
        ref_y: np.ndarray,
        encoder: Encoder,
        *,
        folds: int,
        max_fit_rows: int,
        seed: int,
    ) -> LabelModel:
        """Cross-fit ``folds`` models on the reference: each reference row is scored by the model
        that did not see it, each batch row by the average of all of them (none saw it)."""
        import numpy as np

        k = len(classes)
        ref_proba, batch_proba = crossfit_proba(
            reference_x, ref_y, k, encoder, batch_x, folds=folds, max_fit_rows=max_fit_rows, seed=seed
        )
        prior = np.bincount(ref_y, minlength=k) / len(ref_y)
        thresholds = _mean_self_confidence(ref_proba, ref_y, k)
        model = cls._ran(n, rows, codes, classes, batch_proba, prior, thresholds)
        model.source = "reference"
        model.ref_y = ref_y
        model.ref_score = _confident_scores(ref_proba, ref_y, prior, thresholds)[0]
        return model

    def issues(self, calibration: dict[str, Any] | None) -> tuple[np.ndarray, dict[str, Any]]:
        """Suspect rows and the details: rows whose score is below their class's cut (and, when
        there is no calibration, whose probabilities confidently point to another class)."""
        import numpy as np

        lab = self.y >= 0
        candidate = lab & (self.suggested >= 0) & (self.suggested != self.y)
        if calibration is None:
            cuts = np.full(len(self.classes), UNCALIBRATED_LABEL_CUT)
            how = f"fixed: {UNCALIBRATED_LABEL_CUT:.3f} (no reference to calibrate on)"
            eligible = candidate
        else:
            cuts = calibration["cuts"]
            how = calibration["how"]
            eligible = lab
        cut_row = np.where(lab, cuts[np.maximum(self.y, 0)], np.nan)
        mask = eligible & (self.score < cut_row)
        ref_rates = calibration.get("reference_flag_rates") if calibration else None
        per_class = {
            str(plain(c)): {
                "rows": int((self.y == j).sum()),
                "prior": float(self.prior[j]),
                "mean_self_confidence": float(self.thresholds[j]),
                "cut": finite_or_none(cuts[j]),
                "suspects": int((mask & (self.y == j)).sum()),
                "score_quantiles": quantiles(self.score[self.y == j]),
                **({"reference_flag_rate": float(ref_rates[j])} if ref_rates is not None else {}),
            }
            for j, c in enumerate(self.classes)
        }
        fitted = (
            "cross-fitted on the reference (the trusted rows), the batch scored by their average"
            if self.source == "reference"
            else "out of fold on the batch itself"
        )
        detail = {
            "method": f"confident learning on HistGradientBoosting probabilities, {fitted}",
            "model_source": self.source,
            "threshold": how,
            "candidates": int(candidate.sum()),
            "classes": per_class,
            "cuts": [finite_or_none(c) for c in cuts],
            **(calibration.get("detail", {}) if calibration else {}),
            **({"note": self.note} if self.note else {}),
        }
        return mask, detail

    def row_cut(self, detail: dict[str, Any]) -> np.ndarray:
        import numpy as np

        cuts = np.array([-np.inf if c is None else c for c in detail["cuts"]], dtype=float)
        return np.where(self.y >= 0, cuts[np.maximum(self.y, 0)], np.nan)


def _classes_of(values: np.ndarray) -> list[Any]:
    """The distinct labels, sorted (as strings when mixed), each as its first occurrence."""
    import numpy as np

    keys = values.astype(str) if values.dtype == object else values
    _, first = np.unique(keys, return_index=True)
    return [plain(values[i]) for i in first]


def _mean_self_confidence(proba: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Per class, the mean probability the rows labelled with it give it (confident learning's
    per-class threshold)."""
    import numpy as np

    return np.array([proba[y == j, j].mean() if (y == j).any() else 1.0 for j in range(k)])


def _confident_scores(
    proba: np.ndarray, y: np.ndarray, prior: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the class-normalised score of its label and the confidently suggested class (-1:
    none), given the per-class ``thresholds``."""
    import numpy as np

    ar = np.arange(len(proba))
    above = proba >= thresholds[None, :]
    masked = np.where(above, proba, -1.0)
    suggested = np.where(above.any(axis=1), masked.argmax(axis=1), -1)
    with np.errstate(divide="ignore"):
        logp = np.log(np.clip(proba, PROB_FLOOR, 1.0)) - np.log(prior)[None, :]
    own = logp[ar, y]
    logp[ar, y] = -np.inf
    score = own - logp.max(axis=1)
    return score, suggested


def calibrate_label_cut(model: LabelModel) -> dict[str, Any] | None:
    """Per class, the score cut that controls the false discovery rate at :data:`FDR_LEVEL`.

    Each labelled batch row gets a conformal p-value against the reference rows of its own class
    (a Mondrian, i.e. class-conditional, p-value; :func:`conformal_p_values`, ranks smoothed
    below the lowest reference score), the reference rows scored by the cross-fit model that did
    not see them. A clean batch row and a reference row are exchangeable (the batch row is scored
    by the average of the models, which is if anything better, so its p-value is if anything
    larger: the test stays valid), so a clean row's p-value is (super-)uniform. Per class, the
    rows whose label is less likely than another class (score < 0) are the tests, and
    :func:`suspect_level` (Benjamini-Hochberg at ``q``, or :data:`ROW_LEVEL` when higher) sets
    the p-value threshold: the expected share of clean rows among a class's suspects stays at
    most ``q`` (Bates et al., 2023, "Testing for outliers with conformal p-values"), so a clean
    batch has almost no suspects and a heavily flipped class loses its flips, whatever its rate.
    p-values rise with the score, so the class's cut is just above its highest discovery's score
    (``-inf``, reported as ``None``, when it has none).
    """
    import numpy as np

    if model.ref_y is None or model.ref_score is None:
        return None
    k = len(model.classes)
    lab = model.y >= 0
    y, score = model.y[lab], model.score[lab]
    cuts = np.zeros(k)
    flagged = np.zeros(k)
    thresholds = np.zeros(k)
    discoveries = np.zeros(k, dtype=np.int64)
    for j in range(k):
        own = score[y == j]
        ref = np.sort(model.ref_score[model.ref_y == j])
        if not len(ref) or not len(own):
            cuts[j] = -math.inf
            continue
        # Only a row whose label is less likely than another class (score < 0) is a test.
        p = np.where(own < 0, conformal_p_values(ref, own), np.inf)
        thresholds[j] = suspect_level(p)
        hits = own[p <= thresholds[j]]
        discoveries[j] = len(hits)
        # The cut: just above the highest discovery's score (p-values rise with the score).
        cuts[j] = float(np.nextafter(hits.max(), np.inf)) if len(hits) else -math.inf
        flagged[j] = float((ref < cuts[j]).mean())
    return {
        "cuts": cuts,
        "reference_flag_rates": flagged,
        "how": f"calibrated: Benjamini-Hochberg at false discovery rate {FDR_LEVEL:g} on conformal "
        f"p-values against the reference's rows of the same class ({len(model.ref_y)} rows, each "
        "scored by the cross-fit model that did not see it); cuts capped at 0",
        "detail": {
            "fdr_level": FDR_LEVEL,
            "p_value_thresholds": [float(v) for v in thresholds],
            "discoveries": int(discoveries.sum()),
        },
    }
