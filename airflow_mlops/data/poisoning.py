"""Screens for poisoned or corrupt training rows.

:func:`screen_data` runs the configured checks and splits the input into *accepted* and
*quarantined* rows. Nothing is dropped silently (security invariant 5): every input row ends up in
exactly one of the two frames, the quarantine keeps each row's position in the input, the reasons
it was held back and its scores, and the function raises if that accounting ever fails to add up
(by count, by position and by a content hash of the rows, recorded in the summary).

The checks follow the task (``task``: ``binary``, ``multiclass`` or ``regression``; None infers it
from the labelled targets of the batch and the reference, :func:`airflow_mlops.tasks.infer_task`).
A multiclass target is judged per class exactly as a binary one (its labels read by
:func:`~airflow_mlops.data.labels.label_key`: ``1``, ``1.0`` and ``"1"`` are one class); what a
regression target changes is said under each check. The summary names the task, with the rows of
each class (``class_counts``) or the target's quantiles (``target``).

Row checks (the names of ``poisoning.checks`` in the spec; each suspect row gets a reason):

``label_issues`` (old name ``label_flips``)
    Confident learning on class probabilities from models that never saw the row they score.
    **With a reference** (the trusted rows), ``folds`` HistGradientBoosting
    models are cross-fitted on the reference alone (poisoned rows cannot teach them their labels):
    each reference row is scored by the model that did not see it, each batch row by the
    average of all of them. A row's score is the class-normalised log-likelihood ratio
    ``log(p_y / prior_y) - max_j!=y log(p_j / prior_j)``, so a rare class is judged against its
    own rate, not the majority's. Its conformal p-value is its rank among the reference's scores
    *of the same class* (a clean batch row is exchangeable with them), smoothed below the lowest
    one (exponential tail, :func:`_conformal_p_values`); per class, Benjamini-Hochberg at false
    discovery rate :data:`FDR_LEVEL` over the rows whose label is less likely than another class
    picks the suspects (reason ``label_issue``). The cut adapts to the amount of poison: a clean
    batch has almost no suspects (any at all with probability at most ``FDR_LEVEL`` per class),
    a class swamped by flips loses them all. **Without a reference** (or one with fewer than
    :data:`MIN_CALIBRATION_ROWS` rows of a class): out-of-fold models on the batch itself
    (``folds`` folds, at most ``max_fit_rows`` rows each, copies of a row in one fold), the
    confident-learning rule (the class the probabilities confidently point to, ``p_j >= t_j``
    with ``t_j`` the mean self-confidence of class ``j``, is not the label) and the fixed cut
    :data:`UNCALIBRATED_LABEL_CUT`.
    **Regression**: residual outliers. HistGradientBoosting regressors, cross-fitted on the
    reference (or out of fold on the batch) as above, predict each row; its score is
    ``|residual - median| / (MAD / 0.6745)`` of the residuals (the reference's when given). With a
    reference: conformal p-values against the reference's own out-of-fold scores and
    Benjamini-Hochberg at :data:`FDR_LEVEL`; without: the fixed cut
    :data:`UNCALIBRATED_RESIDUAL_CUT`. A row whose target is infinite is quarantined with reason
    ``non_finite_target``.
``out_of_distribution`` (old name ``outliers``)
    An :class:`~sklearn.ensemble.IsolationForest`. With a reference it is fitted on one half of
    it and the other half calibrates: the batch's anomaly scores get conformal p-values against
    that half's (per class when the class has :data:`MIN_OOD_CLASS_ROWS` calibration rows, else
    against all of them) and Benjamini-Hochberg at :data:`FDR_LEVEL` picks the suspects (reason
    ``out_of_distribution``). Without a reference the forest is fitted on the batch itself (the
    summary says so) and the cut comes from its own scores: the :data:`OOD_QUANTILE` quantile plus
    half its distance from the median. Independently, a value more than ``outlier_threshold``
    robust z-scores (``0.6745 * |x - median| / MAD`` against the reference; a heavy-tailed column
    ``>= 0`` is first log-compressed as ``log(x + median)``) from the median (and, with a
    reference, outside the range of the reference's values by more than
    :data:`EXTREME_RANGE_MARGIN` x its width; in a column whose MAD is 0 only an infinite value
    counts), an infinite value, or a negative value in a column the reference has only values >= 0 of (and
    that is log-compressed), makes a row suspect too. A regression has no classes: one cut for all
    rows.
``duplicates``
    Exact and near duplicates (identical after rounding every numeric feature to a thousandth of
    its standard deviation) with conflicting labels. Only the copies whose label disagrees with the
    group's most plausible label (the label model's view of the group, on average over its copies) are
    suspect (reason ``conflicting_duplicate``), not every member of the pair. **Regression**:
    copies whose targets differ by more than a tolerance (the larger of
    :data:`DUPLICATE_TARGET_SHARE` x the target's robust standard deviation and
    :data:`DUPLICATE_RESIDUAL_Z` x the residual scale of the label model); the copies farther than
    that from the copy nearest the model's prediction are suspect.

Dataset checks (a finding fails the screen; no row is quarantined; they need a reference, without
one they are recorded as ``skipped: no reference``):

``class_balance``
    Binary: the positive rate against the reference's: a relative change above
    ``max_class_shift``. Multiclass (or binary without a ``positive_label``): each class's share
    against the reference's, a finding when a share changed by more than ``max_class_shift``
    relative to the reference's *and* by more than :data:`CLASS_SHIFT_Z` standard errors (a small
    class's share is noisy), or a class the reference does not have. Regression: the target's
    Kolmogorov-Smirnov distance to the reference's, above ``max_feature_shift``.
``feature_shift``
    Per feature, the Kolmogorov-Smirnov distance (numeric) or total-variation distance
    (categorical) between the batch and the reference: above ``max_feature_shift``.

Rows without a label are always quarantined (reason ``missing_label``): they cannot be trained
on and the label-based checks cannot judge them.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import DataError, PoisoningDetectedError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

CHECKS: tuple[str, ...] = (
    "duplicates",
    "label_issues",
    "out_of_distribution",
    "class_balance",
    "feature_shift",
)
# Names of earlier releases, still accepted: the kNN label-flip rule and the robust-z outlier rule
# were replaced by these checks.
CHECK_ALIASES: dict[str, str] = {"label_flips": "label_issues", "outliers": "out_of_distribution"}
DATASET_CHECKS: tuple[str, ...] = ("class_balance", "feature_shift")
ROW_INDEX_COLUMN = "_row_index"
REASONS_COLUMN = "_reasons"
SCORES_COLUMN = "_scores"

REASON_DUPLICATE = "conflicting_duplicate"
REASON_LABEL_ISSUE = "label_issue"
REASON_OOD = "out_of_distribution"
REASON_MISSING_LABEL = "missing_label"
REASON_NON_FINITE_TARGET = "non_finite_target"

# build_feature_matrix: categorical columns keep at most this many categories (the rest: "other").
MAX_CATEGORIES = 50
# A numeric column is log-compressed when all its values are >= 0 and its skewness is above this.
LOG_SKEW_THRESHOLD = 1.0
# 0.6745 is the 75th percentile of the standard normal: it makes the MAD comparable to a stdev.
_MAD_TO_Z = 0.6745
# label_issues and out_of_distribution with a reference: the false discovery rate of
# Benjamini-Hochberg; the p-value below which a row is suspect even when BH alone would not flag
# it (so at most ~0.05 % of a clean class is); the fewest reference rows of each class the label
# check needs to use the reference (HistGradientBoosting's min_samples_leaf: fewer cannot have a
# leaf of their own; else it falls back to the batch's own out-of-fold models and the fixed cut
# below: the given label 20 times less likely than another, after dividing by the class rates);
# and the fewest calibration rows a class needs for its own out-of-distribution p-values.
FDR_LEVEL = 0.1
ROW_LEVEL = 0.0005
MIN_CALIBRATION_ROWS = 20
MIN_OOD_CLASS_ROWS = 10
UNCALIBRATED_LABEL_CUT = -math.log(20.0)
# Rows of the reference the label models and the forest are fitted and calibrated on (a random
# sample when it has more).
MAX_CALIBRATION_ROWS = 10_000
# Model fits on fewer rows than this use one thread.
SMALL_FIT_ROWS = 20_000
# Probabilities are clipped to [PROB_FLOOR, 1] before logs: a score is at most ~log(1/PROB_FLOOR)
# (low enough that a flipped row far inside another class does not tie with borderline rows).
PROB_FLOOR = 1e-7
# Conformal p-values below the lowest reference score: the exponential tail's scale is the mean
# distance of the lowest max(TAIL_ROWS, TAIL_SHARE x n) reference scores from the lowest.
# A reference of fewer than TAIL_MIN_ROWS scores gets rank p-values only.
TAIL_ROWS = 10
TAIL_SHARE = 0.05
TAIL_MIN_ROWS = 50
# out_of_distribution: the cut is this quantile of the fitted data's scores plus half its distance
# from the median.
OOD_QUANTILE = 0.995
OOD_MARGIN = 0.5
# out_of_distribution with a reference: an extreme value must also be beyond the reference's
# range by this share of the range.
EXTREME_RANGE_MARGIN = 0.5
# duplicates: numeric features are rounded to this share of their standard deviation.
NEAR_DUPLICATE_RESOLUTION = 1e-3
# Regression, label_issues without a reference (or with one of fewer than MIN_CALIBRATION_ROWS
# labelled rows): a row is suspect when its out-of-fold residual is more than this many robust
# standard deviations (MAD / 0.6745 of the batch's residuals) from their median.
UNCALIBRATED_RESIDUAL_CUT = 5.0
# Regression, duplicates: copies disagree when their targets differ by more than the larger of
# this share of the target's robust standard deviation and DUPLICATE_RESIDUAL_Z x the label
# model's robust residual scale (the noise the features do not explain: two clean copies differ
# by it with a standard deviation of sqrt(2) x the scale, so 6 is ~4.2 of those).
DUPLICATE_TARGET_SHARE = 0.05
DUPLICATE_RESIDUAL_Z = 6.0
# class_balance without a positive class (multiclass): a class's share must also have moved by
# more than this many (two-sample binomial) standard errors, so that sampling noise in a class of
# a few rows does not fail the screen.
CLASS_SHIFT_Z = 3.0


@dataclass(frozen=True, eq=False)
class ScreenResult:
    """The outcome of :func:`screen_data`.

    :ivar accepted: the rows that passed every check (original index and columns).
    :ivar quarantined: the suspect rows, original columns plus ``_row_index`` (position in the
        input), ``_reasons`` (semicolon-joined reasons) and ``_scores`` (JSON: the score of each
        check that flagged the row, and the suggested label of a label issue).
    :ivar summary: JSON-serialisable: ``rows_in``, ``rows_accepted``, ``rows_quarantined``,
        ``suspect_fraction``, ``max_suspect_fraction``, ``check_counts`` (suspect rows per check),
        ``checks`` (status, thresholds and score quantiles per check), ``dataset_findings``,
        ``hashes`` (sha256 of the input, accepted and quarantined rows) and ``passed``.
    :ivar passed: the suspect fraction is at most ``max_suspect_fraction`` and there are no
        dataset findings.
    :ivar scores: per check, the score of every input row (numpy arrays, for the report).
    """

    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    summary: dict[str, Any]
    passed: bool
    scores: dict[str, Any] = field(default_factory=dict)

    def message(self) -> str:
        """One paragraph saying what the screen found, with the counts and the threshold."""
        s = self.summary
        counts = ", ".join(f"{name}={n}" for name, n in s["check_counts"].items())
        verdict = "passed" if self.passed else "failed"
        over = ">" if s["suspect_fraction"] > s["max_suspect_fraction"] else "<="
        allowed = s.get("max_suspect_rows")
        text = (
            f"poisoning screen {verdict}: {s['rows_quarantined']} of {s['rows_in']} rows suspect "
            f"(suspect_fraction {s['suspect_fraction']:.4f} {over} max_suspect_fraction "
            f"{s['max_suspect_fraction']:.4f}"
            + (f", at most {allowed} of {s['rows_in']} rows allowed" if allowed is not None else "")
            + f"); suspects per check: {counts or 'none'}"
        )
        if s["dataset_findings"]:
            text += "; dataset findings: " + "; ".join(s["dataset_findings"])
        return text

    def raise_if_failed(self) -> None:
        """Raise :class:`PoisoningDetectedError` when the screen did not pass.

        :raises PoisoningDetectedError: naming the suspects per check, the fraction and the threshold.
        """
        if not self.passed:
            raise PoisoningDetectedError(
                self.message() + ". The suspect rows are in the quarantine with their reasons; "
                "inspect them, then fix the data or adjust the poisoning settings of the spec."
            )


def normalise_checks(checks: Sequence[str]) -> list[str]:
    """``checks`` with old names mapped to their checks (:data:`CHECK_ALIASES`), each once.

    :raises ValueError: an unknown check (with the closest known name).
    """
    import difflib

    out: list[str] = []
    for check in checks:
        name = CHECK_ALIASES.get(check, check)
        if name not in CHECKS:
            close = difflib.get_close_matches(check, [*CHECKS, *CHECK_ALIASES], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"unknown poisoning check {check!r}: {hint}use any of {list(CHECKS)}")
        if name not in out:
            out.append(name)
    return out


def build_feature_matrix(df: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """Encode ``features`` of ``df`` as a dense float matrix for distance computations.

    * Numeric (and boolean) columns: missing and infinite values are imputed with the column
      median (0 when the whole column is missing); a column with only values >= 0 and a skewness
      above :data:`LOG_SKEW_THRESHOLD` is ``log1p``-compressed; then it is standardised to mean
      0, standard deviation 1 (a constant column becomes 0).
    * Other columns (strings, categories, ...): one-hot encoded, missing as its own category,
      at most :data:`MAX_CATEGORIES` of the most frequent categories (the rest share one
      column), scaled by ``1/sqrt(2)`` so that two different categories are as far apart as
      one standard deviation of a numeric column.

    :raises DataError: a feature column is missing.
    """
    import numpy as np
    import pandas as pd

    _require_columns(df, list(features))
    blocks: list[np.ndarray] = []
    for name in features:
        col = df[name]
        if _is_numeric(col):
            values = _numeric_view(col)
            finite = np.isfinite(values)
            fill = float(np.median(values[finite])) if finite.any() else 0.0
            values = np.where(finite, values, fill)
            std = values.std()
            blocks.append(((values - values.mean()) / std if std > 0 else np.zeros_like(values))[:, None])
        else:
            text = col.astype(object).where(col.notna(), "__missing__").astype(str)
            top = text.value_counts(sort=True).index[:MAX_CATEGORIES]
            text = text.where(text.isin(top), "__other__")
            onehot = pd.get_dummies(text, dtype=float).to_numpy()
            blocks.append(onehot / np.sqrt(2.0))
    if not blocks:
        return np.zeros((len(df), 0))
    return np.hstack(blocks)


@dataclass
class _Encoder:
    """Features as a float matrix for the tree models, with statistics taken from one frame.

    Numeric columns keep their values (+-inf become NaN: trees treat NaN as missing; the robust
    z-score catches the infinite values); categorical columns become codes of their
    :data:`MAX_CATEGORIES` most frequent categories in the fitted frame (others: NaN).
    """

    features: list[str]
    numeric: list[bool]
    categories: dict[str, list[str]]
    median: dict[str, float]
    mad: dict[str, float]
    std: dict[str, float]

    @classmethod
    def fit(cls, df: pd.DataFrame, features: list[str]) -> _Encoder:
        import numpy as np

        numeric = [_is_numeric(df[f]) for f in features]
        categories: dict[str, list[str]] = {}
        median: dict[str, float] = {}
        mad: dict[str, float] = {}
        std: dict[str, float] = {}
        for name, is_num in zip(features, numeric, strict=True):
            if is_num:
                values = _float_values(df[name])
                finite = values[np.isfinite(values)]
                if len(finite) == 0:
                    raise DataError(
                        f"feature column {name!r} has no finite value in the data it is compared "
                        "against: drop it from data.features or fix the data"
                    )
                med = float(np.median(finite))
                median[name] = med
                mad[name] = float(np.median(np.abs(finite - med)))
                std[name] = float(finite.std())
            else:
                text = df[name].dropna().astype(str)
                categories[name] = [str(c) for c in text.value_counts(sort=True).index[:MAX_CATEGORIES]]
        return cls(list(features), numeric, categories, median, mad, std)

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        import numpy as np
        import pandas as pd

        out = np.empty((len(df), len(self.features)), dtype=np.float64)
        for j, (name, is_num) in enumerate(zip(self.features, self.numeric, strict=True)):
            if is_num:
                values = _float_values(df[name])
                out[:, j] = np.where(np.isfinite(values), values, np.nan)
            else:
                col = df[name]
                text = col.astype(str).where(col.notna())
                codes = pd.Categorical(text, categories=self.categories[name]).codes
                out[:, j] = np.where(codes >= 0, codes, np.nan)
        return out

    @property
    def categorical_mask(self) -> list[bool]:
        return [not n for n in self.numeric]


def allowed_suspects(rows: int, max_fraction: float) -> int:
    """How many suspect rows a batch of ``rows`` may hold before the screen stops the run.

    ``max_suspect_fraction`` of the rows, with the sampling noise of a small batch tolerated: the
    95th percentile of ``Binomial(rows, max_fraction)`` (a batch whose rows are suspect at exactly
    the allowed rate exceeds it once in twenty). At 60 rows and 2 % that is 3 rows, not 1; at
    100,000 rows 2.07 %. The suspects are quarantined either way: they never reach training.
    """
    from scipy.stats import binom

    if rows <= 0 or max_fraction <= 0:
        return 0
    if max_fraction >= 1:
        return rows
    return int(max(math.floor(rows * max_fraction), binom.ppf(0.95, rows, max_fraction)))


def screen_data(
    df: pd.DataFrame,
    *,
    target: str,
    features: list[str],
    checks: Sequence[str],
    max_suspect_fraction: float,
    neighbours: int = 10,
    outlier_threshold: float = 8.0,
    max_class_shift: float = 0.5,
    max_feature_shift: float = 0.1,
    reference: pd.DataFrame | None = None,
    positive_label: Any = 1,
    folds: int = 5,
    max_fit_rows: int = 50_000,
    seed: int = 0,
    task: str | None = None,
) -> ScreenResult:
    """Screen ``df`` for poisoned rows and split it into accepted and quarantined rows.

    :param df: the training batch.
    :param target: the label column.
    :param features: the feature columns the checks look at.
    :param checks: which checks run, a subset of :data:`CHECKS` or their old names
        (:data:`CHECK_ALIASES`); see the module docstring.
    :param max_suspect_fraction: the screen fails when more than this share of rows is suspect.
    :param neighbours: ignored; it was ``k`` of the kNN label-flip rule that ``label_issues``
        replaced (kept so that old callers keep working).
    :param outlier_threshold: robust z-score (against the reference) above which a value makes a
        row out of distribution.
    :param max_class_shift: largest allowed relative change of the positive rate.
    :param max_feature_shift: largest allowed KS / total-variation distance of a feature.
    :param reference: the trusted reference data set (with the target column): the label cut
        is calibrated on it, the out-of-distribution model is fitted on it, the dataset checks
        compare against it.
    :param positive_label: the label of the positive class of a binary task (``class_balance``
        compares its rate; None: every class's share); ignored by the other tasks.
    :param folds: folds of the out-of-fold model (2-20).
    :param max_fit_rows: at most this many rows train each fold's model (all rows are scored).
    :param seed: seed of the fold split, the subsamples and the models.
    :param task: ``binary``, ``multiclass`` or ``regression`` (the spec's ``task``); None infers
        it from the labelled targets of the batch and the reference
        (:func:`airflow_mlops.tasks.infer_task`; a single class is ``binary`` when a
        ``positive_label`` is given, else ``multiclass``).
    :raises DataError: the target or a feature column is missing, a ``binary`` target (with a
        ``positive_label``) holds more than two classes, the target cannot serve the declared
        task, a feature column is all null, the reference's columns differ from the batch's, or
        there are no rows.
    :raises ValueError: an unknown check or task, or an out-of-range setting.
    """
    import numpy as np
    import pandas as pd

    del neighbours  # see the docstring
    checks = normalise_checks(checks)
    if not 0 <= max_suspect_fraction <= 1:
        raise ValueError(f"max_suspect_fraction must be in [0, 1], got {max_suspect_fraction}")
    if not 2 <= folds <= 20:
        raise ValueError(f"folds must be in [2, 20], got {folds}")
    if max_fit_rows < 100:
        raise ValueError(f"max_fit_rows must be >= 100, got {max_fit_rows}")
    if not features:
        raise DataError("no feature columns to screen: give at least one feature")
    if target in features:
        raise DataError(f"the target column {target!r} must not be listed among the features")
    _require_columns(df, [target, *features])
    task = _screen_task(task, df, reference, target, positive_label)
    if task == "binary" and positive_label is not None:
        _require_binary_target(df, reference, target, positive_label)
    clash = [c for c in (ROW_INDEX_COLUMN, REASONS_COLUMN, SCORES_COLUMN) if c in df.columns]
    if clash:
        raise DataError(f"the data already has column(s) {clash}, which the quarantine reserves: rename them")
    n = len(df)
    if n == 0:
        raise DataError("no rows to screen: the training batch is empty")
    empty = [f for f in features if df[f].isna().all()]
    if empty:
        raise DataError(
            f"feature column(s) {empty} are entirely null in the training batch: fix the data or "
            "drop them from data.features"
        )
    if reference is not None:
        _check_reference(df, reference, target, features)

    reasons: list[list[str]] = [[] for _ in range(n)]
    row_scores: list[dict[str, Any]] = [{} for _ in range(n)]
    check_counts: dict[str, int] = {}
    check_details: dict[str, dict[str, Any]] = {}
    findings: list[str] = []
    scores: dict[str, Any] = {}

    def mark(mask: np.ndarray, reason: str) -> int:
        hits = np.flatnonzero(mask)
        for i in hits:
            reasons[i].append(reason)
        return len(hits)

    present = df[target].notna().to_numpy()
    check_counts[REASON_MISSING_LABEL] = mark(~present, REASON_MISSING_LABEL)
    labelled = present
    y_num = ref_y_num = None  # regression: the targets as float64
    if task == "regression":
        y_num = _float_values(df[target])
        labelled = np.isfinite(y_num)
        check_counts[REASON_NON_FINITE_TARGET] = mark(present & ~labelled, REASON_NON_FINITE_TARGET)
        if reference is not None:
            ref_y_num = _finite(reference[target])
    # The labels as the classification checks read them: as given (binary, as it always was), or
    # their canonical class texts (multiclass: 1, 1.0 and "1" are one class).
    view = _label_view(df[target], task)
    texts = _class_texts(view, task)
    fit_frame = reference if reference is not None else df
    encoder = _Encoder.fit(fit_frame, list(features))
    x = encoder.transform(df)
    # Exact and near duplicates share a group: they always fall in the same fold, so no copy
    # is judged by a model that was trained on its twin.
    groups = _duplicate_groups(x, encoder)
    model: _LabelModel | None = None
    residuals: _ResidualModel | None = None

    def reference_sample() -> pd.DataFrame | None:
        if reference is None:
            return None
        ref = reference[reference[target].notna()]
        if task == "regression":
            ref = ref[np.isfinite(_float_values(ref[target]))]
        if len(ref) > MAX_CALIBRATION_ROWS:
            ref = ref.sample(n=MAX_CALIBRATION_ROWS, random_state=seed)
        return ref

    def label_model() -> _LabelModel:
        nonlocal model
        if model is None:
            ref_x = ref_labels = None
            # With a reference, the label models learn from it (the trusted rows) for the
            # duplicates check too.
            ref = reference_sample()
            if ref is not None:
                ref_x, ref_labels = encoder.transform(ref), _label_view(ref[target], task).to_numpy()
            model = _LabelModel.fit(
                x,
                view,
                labelled,
                encoder,
                groups,
                folds=folds,
                max_fit_rows=max_fit_rows,
                seed=seed,
                reference_x=ref_x,
                reference_labels=ref_labels,
            )
        return model

    def residual_model() -> _ResidualModel:
        nonlocal residuals
        if residuals is None:
            assert y_num is not None
            ref = reference_sample()
            residuals = _ResidualModel.fit(
                x,
                y_num,
                labelled,
                encoder,
                groups,
                folds=folds,
                max_fit_rows=max_fit_rows,
                seed=seed,
                reference_x=None if ref is None else encoder.transform(ref),
                reference_y=None if ref is None else _float_values(ref[target]),
            )
        return residuals

    shown_label = _representatives(df[target], reference, target) if task == "multiclass" else {}
    for check in checks:  # each check once, in the order given
        if check == "label_issues" and task == "regression":
            rm = residual_model()
            if rm.status != "ran":
                check_details[check] = {"status": rm.status, "suspects": 0}
                check_counts[check] = 0
                continue
            mask, detail, score, cut = rm.issues()
            count = mark(mask, REASON_LABEL_ISSUE)
            for i in np.flatnonzero(mask):
                row_scores[i]["label_issue"] = round(float(score[i]), 4)
                row_scores[i]["predicted_target"] = float(rm.prediction[i])
                row_scores[i]["residual"] = float(rm.residual[i])
            scores["label_issues"] = score
            scores["label_issues_cut"] = cut
            check_details[check] = {"status": "ran", "suspects": count, **detail}
        elif check == "label_issues":
            lm = label_model()
            if lm.status != "ran":
                check_details[check] = {"status": lm.status, "suspects": 0}
                check_counts[check] = 0
                continue
            cal = _calibrate_label_cut(lm) if reference is not None else None
            mask, detail = lm.issues(cal)
            count = mark(mask, REASON_LABEL_ISSUE)
            for i in np.flatnonzero(mask):
                suggested = _plain(lm.classes[lm.suggested[i]])
                row_scores[i]["label_issue"] = round(float(lm.score[i]), 4)
                row_scores[i]["suggested_label"] = shown_label.get(suggested, suggested)
            scores["label_issues"] = lm.score
            scores["label_issues_cut"] = lm.row_cut(detail)
            check_details[check] = {"status": "ran", "suspects": count, **detail}
        elif check == "out_of_distribution":
            mask, detail, score, cut = _out_of_distribution(
                df,
                x,
                fit_frame,
                encoder,
                target,
                features,
                outlier_threshold,
                seed,
                class_of=lambda labels: _class_texts(_label_view(labels, task), task),
                fitted_on="reference" if reference is not None else "batch",
            )
            count = mark(mask, REASON_OOD)
            for i in np.flatnonzero(mask):
                row_scores[i]["out_of_distribution"] = round(float(score[i]), 4)
            scores["out_of_distribution"] = score
            scores["out_of_distribution_cut"] = cut
            check_details[check] = {"status": "ran", "suspects": count, **detail}
        elif check == "duplicates":
            if task == "regression":
                assert y_num is not None
                spread = _target_scale(ref_y_num if ref_y_num is not None else y_num[labelled])
                mask, detail = _conflicting_duplicate_targets(y_num, groups, labelled, spread, residual_model)
            else:
                mask, detail = _conflicting_duplicates(texts, groups, labelled, label_model)
            count = mark(mask, REASON_DUPLICATE)
            check_details[check] = {"status": "ran", "suspects": count, **detail}
        elif check == "class_balance":
            if reference is None:
                detail, finding = {"status": "skipped: no reference"}, None
            elif task == "regression":
                assert y_num is not None and ref_y_num is not None
                detail, finding = _target_shift(y_num[labelled], ref_y_num, max_feature_shift)
            elif task == "binary" and positive_label is not None:
                detail, finding = _class_balance(df, target, reference, positive_label, max_class_shift)
            else:
                ref_texts = _class_texts(_label_view(reference[target], task), task)
                detail, finding = _class_shares(texts, ref_texts, max_class_shift)
            check_details[check] = detail
            if finding:
                findings.append(finding)
            continue
        else:  # feature_shift
            detail, shift_findings = _feature_shift(df, reference, features, max_feature_shift)
            check_details[check] = detail
            findings.extend(shift_findings)
            continue
        check_counts[check] = count

    suspect = np.fromiter((bool(r) for r in reasons), dtype=bool, count=n)
    accepted_pos = np.flatnonzero(~suspect)
    quarantined_pos = np.flatnonzero(suspect)
    accepted = df.iloc[accepted_pos].copy()
    quarantined = df.iloc[quarantined_pos].copy()
    quarantined[ROW_INDEX_COLUMN] = quarantined_pos.astype("int64")
    # Text columns even when empty (a clean batch has an empty quarantine of the same shape).
    quarantined[REASONS_COLUMN] = pd.Series(
        [";".join(reasons[i]) for i in quarantined_pos], index=quarantined.index, dtype=object
    )
    quarantined[SCORES_COLUMN] = pd.Series(
        [json.dumps(row_scores[i], sort_keys=True) for i in quarantined_pos],
        index=quarantined.index,
        dtype=object,
    )
    hashes = _check_accounting(df, accepted, quarantined, accepted_pos, quarantined_pos)

    suspect_fraction = len(quarantined) / n
    max_suspect_rows = allowed_suspects(n, max_suspect_fraction)
    passed = len(quarantined) <= max_suspect_rows and not findings
    summary: dict[str, Any] = {
        "task": task,
        "rows_in": n,
        "rows_accepted": len(accepted),
        "rows_quarantined": len(quarantined),
        "suspect_fraction": float(suspect_fraction),
        "max_suspect_fraction": float(max_suspect_fraction),
        "max_suspect_rows": int(max_suspect_rows),
        "check_counts": check_counts,
        "checks": check_details,
        "dataset_findings": findings,
        "reference": "given" if reference is not None else "none: models fitted on the batch itself",
        "hashes": hashes,
        "passed": bool(passed),
    }
    if task == "regression":
        assert y_num is not None
        summary["target"] = {
            "labelled_rows": int(labelled.sum()),
            "quantiles": _quantiles(y_num[labelled]),
            "accepted_quantiles": _quantiles(y_num[labelled & ~suspect]),
            **({"reference_quantiles": _quantiles(ref_y_num)} if ref_y_num is not None else {}),
        }
    else:
        summary["class_counts"] = _class_counts(texts, suspect)
    result = ScreenResult(
        accepted=accepted, quarantined=quarantined, summary=summary, passed=bool(passed), scores=scores
    )
    log.info("%s", result.message())
    return result


# --- label issues ---------------------------------------------------------------------------


@dataclass
class _LabelModel:
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
        encoder: _Encoder,
        groups: np.ndarray,
        *,
        folds: int,
        max_fit_rows: int,
        seed: int,
        reference_x: np.ndarray | None = None,
        reference_labels: np.ndarray | None = None,
    ) -> _LabelModel:
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
                str(_plain(c)) for c, m in zip(classes, ref_counts, strict=True) if m < MIN_CALIBRATION_ROWS
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
        batch_proba = _oof_proba(
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
    ) -> _LabelModel:
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
        encoder: _Encoder,
        *,
        folds: int,
        max_fit_rows: int,
        seed: int,
    ) -> _LabelModel:
        """Cross-fit ``folds`` models on the reference: each reference row is scored by the model
        that did not see it, each batch row by the average of all of them (none saw it)."""
        import numpy as np

        k = len(classes)
        ref_proba, batch_proba = _crossfit_proba(
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
            str(_plain(c)): {
                "rows": int((self.y == j).sum()),
                "prior": float(self.prior[j]),
                "mean_self_confidence": float(self.thresholds[j]),
                "cut": _finite_or_none(cuts[j]),
                "suspects": int((mask & (self.y == j)).sum()),
                "score_quantiles": _quantiles(self.score[self.y == j]),
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
            "cuts": [_finite_or_none(c) for c in cuts],
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
    return [_plain(values[i]) for i in first]


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


def _hgb(encoder: _Encoder, seed: int, *, regression: bool = False) -> Any:
    """The screen's gradient-boosting model: a classifier, or a regressor for a regression target."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    return model(
        max_iter=100,
        learning_rate=0.1,
        max_leaf_nodes=31,
        min_samples_leaf=20,
        l2_regularization=1.0,
        categorical_features=encoder.categorical_mask if any(encoder.categorical_mask) else None,
        early_stopping=False,
        random_state=seed,
    )


def _fit_threads(rows: int, max_fit_rows: int) -> int | None:
    # Small fits run faster on one thread (and do not spin on a busy machine).
    return 1 if min(rows, max_fit_rows) < SMALL_FIT_ROWS else None


def _predict_into(out: np.ndarray, rows: Any, model: Any, x: np.ndarray, weight: float = 1.0) -> None:
    """Add ``weight`` x the model's probabilities to ``out[rows]`` (in the columns of its classes:
    a fold's model may not have seen every class)."""
    import numpy as np

    cols = model.classes_.astype(np.int64)
    out[np.ix_(np.arange(len(out))[rows], cols)] += weight * model.predict_proba(x)


def _oof_proba(
    x: np.ndarray,
    y: np.ndarray,
    k: int,
    encoder: _Encoder,
    *,
    folds: int,
    max_fit_rows: int,
    seed: int,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Out-of-fold probabilities: each fold predicted by a model fitted on (a sample of) the rest.

    With ``groups``, the folds are stratified over each group's first row and every row goes to
    its group's fold (so no copy is judged by a model that was trained on its twin)."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    proba = np.zeros((len(x), k))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    if groups is None:
        splits = list(splitter.split(x, y))
    else:
        _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
        fold_of_group = np.empty(len(first), dtype=np.int64)
        for f, (_, test) in enumerate(splitter.split(first[:, None], y[first])):
            fold_of_group[test] = f
        fold = fold_of_group[inverse.ravel()]
        splits = [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(folds)]
    with threadpool_limits(limits=_fit_threads(len(x), max_fit_rows), user_api="openmp"):
        for train, test in splits:
            if len(train) > max_fit_rows:
                train = np.sort(rng.choice(train, size=max_fit_rows, replace=False))
            model = _hgb(encoder, seed).fit(x[train], y[train])
            _predict_into(proba, test, model, x[test])
    return proba


def _crossfit_proba(
    rx: np.ndarray,
    ry: np.ndarray,
    k: int,
    encoder: _Encoder,
    bx: np.ndarray,
    *,
    folds: int,
    max_fit_rows: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``folds`` models cross-fitted on the reference ``rx``, ``ry``: the reference's out-of-fold
    probabilities, and the batch ``bx``'s average probabilities over all the models."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    ref_proba = np.zeros((len(rx), k))
    batch_proba = np.zeros((len(bx), k))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(limits=_fit_threads(len(rx), max_fit_rows), user_api="openmp"):
        for train, test in splitter.split(rx, ry):
            if len(train) > max_fit_rows:
                train = np.sort(rng.choice(train, size=max_fit_rows, replace=False))
            model = _hgb(encoder, seed).fit(rx[train], ry[train])
            _predict_into(ref_proba, test, model, rx[test])
            _predict_into(batch_proba, slice(None), model, bx, 1.0 / folds)
    return ref_proba, batch_proba


def _calibrate_label_cut(model: _LabelModel) -> dict[str, Any] | None:
    """Per class, the score cut that controls the false discovery rate at :data:`FDR_LEVEL`.

    Each labelled batch row gets a conformal p-value against the reference rows of its own class
    (a Mondrian, i.e. class-conditional, p-value; :func:`_conformal_p_values`, ranks smoothed
    below the lowest reference score), the reference rows scored by the cross-fit model that did
    not see them. A clean batch row and a reference row are exchangeable (the batch row is scored
    by the average of the models, which is if anything better, so its p-value is if anything
    larger: the test stays valid), so a clean row's p-value is (super-)uniform. Per class, the
    rows whose label is less likely than another class (score < 0) are the tests, and
    :func:`_suspect_level` (Benjamini-Hochberg at ``q``, or :data:`ROW_LEVEL` when higher) sets
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
        p = np.where(own < 0, _conformal_p_values(ref, own), np.inf)
        thresholds[j] = _suspect_level(p)
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


def _conformal_p_values(reference: np.ndarray, scores: np.ndarray) -> np.ndarray:
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


def _suspect_level(p: np.ndarray) -> float:
    """The p-value at or below which a row is suspect: the Benjamini-Hochberg threshold at
    :data:`FDR_LEVEL` (many suspects: the cut grows with them), or :data:`ROW_LEVEL` when that is
    higher (one strong suspect among many clean rows: BH alone would need ``p <= q / m``)."""
    return max(_bh_threshold(p, FDR_LEVEL), ROW_LEVEL)


def _bh_threshold(p: np.ndarray, level: float) -> float:
    """The Benjamini-Hochberg threshold of the p-values ``p`` at false discovery rate ``level``:
    the largest ``p_(i) <= i level / m`` (0 when there is none); ``inf`` entries are not tests
    but count in ``m``."""
    import numpy as np

    m = len(p)
    if not m:
        return 0.0
    order = np.sort(p)
    passing = np.flatnonzero(order <= level * np.arange(1, m + 1) / m)
    return float(order[passing[-1]]) if len(passing) else 0.0


# --- residual outliers (regression) --------------------------------------------------------


@dataclass
class _ResidualModel:
    """Out-of-sample predictions of a regression target and the residuals' robust scale.

    ``source`` as for :class:`_LabelModel`: ``"reference"`` (``folds`` regressors cross-fitted on
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
        encoder: _Encoder,
        groups: np.ndarray,
        *,
        folds: int,
        max_fit_rows: int,
        seed: int,
        reference_x: np.ndarray | None = None,
        reference_y: np.ndarray | None = None,
    ) -> _ResidualModel:
        """From the reference when it has :data:`MIN_CALIBRATION_ROWS` rows with a finite target,
        else out of fold on the batch (at least ``max(MIN_CALIBRATION_ROWS, 2 x folds)`` rows)."""
        import numpy as np

        n = len(x)
        rows = np.flatnonzero(labelled)
        prediction = np.full(n, np.nan)
        note = ""
        if reference_x is not None and reference_y is not None:
            if len(reference_y) >= MIN_CALIBRATION_ROWS:
                ref_pred, batch_pred = _crossfit_predict(
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
        prediction[rows] = _oof_predict(
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
            p = _conformal_p_values(np.sort(-ref_score), -score[lab])
            level = _suspect_level(p) if len(p) else 0.0
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
                "reference_residual_quantiles": _quantiles(self.ref_residual),
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
            "cut": _finite_or_none(cut),
            "residual_center": float(self.center),
            "residual_scale": float(self.scale),
            "residual_quantiles": _quantiles(self.residual[lab]),
            "score_quantiles": _quantiles(score[lab]),
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
    scale = float(np.median(deviation)) / _MAD_TO_Z
    if not scale > 0:
        scale = float(deviation.mean())
    if not scale > 0:
        scale = 1e-12 * max(1.0, float(np.abs(finite).max()))
    return center, scale


def _oof_predict(
    x: np.ndarray,
    y: np.ndarray,
    encoder: _Encoder,
    *,
    folds: int,
    max_fit_rows: int,
    seed: int,
    groups: np.ndarray,
) -> np.ndarray:
    """Out-of-fold regression predictions; every copy of a row (``groups``) in one fold."""
    import numpy as np
    from sklearn.model_selection import KFold
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    out = np.zeros(len(x))
    _, inverse = np.unique(groups, return_inverse=True)
    n_groups = int(inverse.max()) + 1 if len(inverse) else 0
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    for f, (_, test) in enumerate(splitter.split(np.zeros((n_groups, 1)))):
        fold_of_group[test] = f
    fold = fold_of_group[inverse.ravel()]
    with threadpool_limits(limits=_fit_threads(len(x), max_fit_rows), user_api="openmp"):
        for f in range(folds):
            train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            if len(train) > max_fit_rows:
                train = np.sort(rng.choice(train, size=max_fit_rows, replace=False))
            out[test] = _hgb(encoder, seed, regression=True).fit(x[train], y[train]).predict(x[test])
    return out


def _crossfit_predict(
    rx: np.ndarray,
    ry: np.ndarray,
    encoder: _Encoder,
    bx: np.ndarray,
    *,
    folds: int,
    max_fit_rows: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``folds`` regressors cross-fitted on the reference: its out-of-fold predictions, and the
    batch's average prediction over all of them."""
    import numpy as np
    from sklearn.model_selection import KFold
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    ref_pred = np.zeros(len(rx))
    batch_pred = np.zeros(len(bx))
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(limits=_fit_threads(len(rx), max_fit_rows), user_api="openmp"):
        for train, test in splitter.split(rx):
            if len(train) > max_fit_rows:
                train = np.sort(rng.choice(train, size=max_fit_rows, replace=False))
            model = _hgb(encoder, seed, regression=True).fit(rx[train], ry[train])
            ref_pred[test] = model.predict(rx[test])
            if len(bx):
                batch_pred += model.predict(bx) / folds
    return ref_pred, batch_pred


# --- out of distribution ------------------------------------------------------------------


def _out_of_distribution(
    df: pd.DataFrame,
    x: np.ndarray,
    fit_frame: pd.DataFrame,
    encoder: _Encoder,
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
        logged = _is_heavy_tailed(_float_values(fit_frame[name]))
        ref_values = _float_values(fit_frame[name])
        values = _float_values(df[name])
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
            if mad == 0:  # a flag or mostly constant column: only infinities count
                hit = np.isinf(values)
            else:
                z = _MAD_TO_Z * np.abs(values - median) / mad
                hit = np.where(np.isnan(z), False, z > outlier_threshold)
            if fitted_on == "reference":
                # A value the trusted reference has seen is not extreme, however small the MAD
                # of a sparse or discrete column makes its z-score.
                # Nor is one just past the edge of a small reference: it must be beyond it by
                # EXTREME_RANGE_MARGIN x the reference's range.
                lo, hi = float(finite.min()), float(finite.max())
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
        "score_quantiles": _quantiles(score),
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
        p = _conformal_p_values(ref, -score[rows])
        t = _suspect_level(p)
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
        "reference_score_quantiles": _quantiles(calib_score),
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
        "reference_score_quantiles": _quantiles(fit_score),
    }
    return score > cut, cut, detail, score


# --- duplicates -----------------------------------------------------------------------------


def _duplicate_groups(x: np.ndarray, encoder: _Encoder) -> np.ndarray:
    """A group id per row: rows equal after rounding numeric features to a thousandth of a std."""
    import numpy as np
    import pandas as pd

    keys = np.empty_like(x)
    for j, (name, num) in enumerate(zip(encoder.features, encoder.numeric, strict=True)):
        col = x[:, j]
        step = encoder.std.get(name, 0.0) * NEAR_DUPLICATE_RESOLUTION if num else 0.0
        keys[:, j] = np.round(col / step) if step > 0 else col
    frame = pd.DataFrame(keys).fillna(np.inf)  # missing values group together
    return frame.groupby(list(frame.columns), sort=False, dropna=False).ngroup().to_numpy()


def _conflicting_duplicates(
    labels: np.ndarray, group: np.ndarray, labelled: np.ndarray, label_model: Any
) -> tuple[np.ndarray, dict[str, Any]]:
    """Copies (exact or near) whose label (``labels``: class texts) disagrees with their group's
    most plausible label; any number of classes."""
    import numpy as np
    import pandas as pd

    mask = np.zeros(len(labels), dtype=bool)
    probe = pd.DataFrame({"g": group[labelled], "y": labels[labelled]})
    n_labels = probe.groupby("g")["y"].nunique()
    conflicting = n_labels.index[n_labels.to_numpy() > 1].to_numpy()
    detail: dict[str, Any] = {
        "method": "exact and near duplicates (numeric features rounded to "
        f"{NEAR_DUPLICATE_RESOLUTION:g} standard deviations) with conflicting labels",
        "conflicting_groups": len(conflicting),
    }
    if not len(conflicting):
        detail["resolved_by"] = "nothing to resolve"
        return mask, detail
    in_conflict = labelled & np.isin(group, conflicting)
    lm = label_model()
    if lm.status == "ran":
        # The group's most plausible label: the most probable class, on average over its copies
        # (plain probabilities: here the class rates rightly count).
        rows = np.flatnonzero(in_conflict)
        per_group = pd.DataFrame(lm.proba[rows]).groupby(group[rows]).mean()
        best = per_group.to_numpy().argmax(axis=1)
        best_of = dict(zip(per_group.index.to_numpy(), best, strict=True))
        preferred = np.array([best_of[g] for g in group[rows]])
        mask[rows[lm.y[rows] != preferred]] = True
        detail["resolved_by"] = "label model: copies whose label is not the group's most plausible"
        detail["model_source"] = lm.source
    else:
        mask[in_conflict] = True  # cannot tell which copy is genuine: hold them all back
        detail["resolved_by"] = f"every copy (label model {lm.status})"
    return mask, detail


def _target_scale(y: np.ndarray) -> float:
    """The robust standard deviation of a regression target (MAD / 0.6745, else its standard
    deviation; 0 for a constant or empty one)."""
    import numpy as np

    finite = y[np.isfinite(y)]
    if not len(finite):
        return 0.0
    scale = float(np.median(np.abs(finite - np.median(finite)))) / _MAD_TO_Z
    return scale if scale > 0 else float(finite.std())


def _conflicting_duplicate_targets(
    y: np.ndarray, group: np.ndarray, labelled: np.ndarray, target_scale: float, residual_model: Any
) -> tuple[np.ndarray, dict[str, Any]]:
    """Regression: copies (exact or near) whose targets differ by more than the tolerance.

    The tolerance is :data:`DUPLICATE_TARGET_SHARE` x the target's robust standard deviation, or
    :data:`DUPLICATE_RESIDUAL_Z` x the residual scale of the label model when that is larger (two
    measurements of one row differ by the noise the features do not explain). In a conflicting
    group the copy nearest the model's prediction for the group is taken as genuine and the
    copies farther than the tolerance from it are suspect; without a model, every copy."""
    import numpy as np
    import pandas as pd

    mask = np.zeros(len(y), dtype=bool)
    rows = np.flatnonzero(labelled)
    values = pd.Series(y[rows])
    spread = values.groupby(group[rows]).agg(lambda v: float(v.max() - v.min()))
    floor = DUPLICATE_TARGET_SHARE * target_scale
    detail: dict[str, Any] = {
        "method": "exact and near duplicates (numeric features rounded to "
        f"{NEAR_DUPLICATE_RESOLUTION:g} standard deviations) whose targets differ by more than the tolerance",
        "tolerance_rule": f"the larger of {DUPLICATE_TARGET_SHARE:g} x the target's robust standard deviation "
        f"and {DUPLICATE_RESIDUAL_Z:g} x the label model's robust residual scale",
    }
    candidates = spread.index[spread.to_numpy() > floor].to_numpy()
    tolerance = floor
    rm = residual_model() if len(candidates) else None
    if rm is not None and rm.status == "ran":
        tolerance = max(floor, DUPLICATE_RESIDUAL_Z * rm.scale)
    conflicting = spread.index[spread.to_numpy() > tolerance].to_numpy()
    detail["tolerance"] = float(tolerance)
    detail["conflicting_groups"] = len(conflicting)
    if not len(conflicting):
        detail["resolved_by"] = "nothing to resolve"
        return mask, detail
    in_conflict = rows[np.isin(group[rows], conflicting)]
    if rm is not None and rm.status == "ran":
        frame = pd.DataFrame({"g": group[in_conflict], "y": y[in_conflict], "p": rm.prediction[in_conflict]})
        frame["gap"] = (frame["y"] - frame.groupby("g")["p"].transform("mean")).abs()
        anchor = frame.loc[frame.groupby("g")["gap"].idxmin(), ["g", "y"]].set_index("g")["y"]
        far = (frame["y"] - frame["g"].map(anchor)).abs().to_numpy() > tolerance
        mask[in_conflict[far]] = True
        detail["resolved_by"] = (
            "label model: copies farther than the tolerance from the copy nearest the group's prediction"
        )
        detail["model_source"] = rm.source
    else:
        mask[in_conflict] = True  # cannot tell which copy is genuine: hold them all back
        status = rm.status if rm is not None else "not run"
        detail["resolved_by"] = f"every copy (label model {status})"
    return mask, detail


# --- dataset checks -------------------------------------------------------------------------


def _feature_shift(
    df: pd.DataFrame, reference: pd.DataFrame | None, features: list[str], max_shift: float
) -> tuple[dict[str, Any], list[str]]:
    """Per feature, KS (numeric) or total-variation (categorical) distance to the reference."""
    import numpy as np

    if reference is None:
        return {"status": "skipped: no reference"}, []
    distances: dict[str, float] = {}
    findings: list[str] = []
    for name in features:
        if _is_numeric(df[name]):
            a = np.sort(_finite(df[name]))
            b = np.sort(_finite(reference[name]))
            if not len(a) or not len(b):
                continue
            d = _ks_distance(a, b)
            kind = "KS"
        else:
            p = df[name].astype(str).where(df[name].notna(), "__missing__").value_counts(normalize=True)
            q = (
                reference[name]
                .astype(str)
                .where(reference[name].notna(), "__missing__")
                .value_counts(normalize=True)
            )
            d = float(0.5 * p.sub(q, fill_value=0.0).abs().sum())
            kind = "total variation"
        distances[name] = d
        if d > max_shift:
            findings.append(
                f"feature_shift: {name} moved by {kind} distance {d:.3f} > max_feature_shift {max_shift:.3f}"
            )
    detail = {"status": "ran", "max_feature_shift": float(max_shift), "distances": distances}
    return detail, findings


def _ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov distance of the sorted arrays ``a`` and ``b``."""
    import numpy as np

    grid = np.concatenate([a, b])
    return float(
        np.max(
            np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b))
        )
    )


def _class_shares(
    labels: np.ndarray, reference: np.ndarray, max_shift: float
) -> tuple[dict[str, Any], str | None]:
    """class_balance of a target without a positive class (multiclass): every class's share of
    the labelled rows against the reference's.

    A class moved when its share changed by more than ``max_shift`` relative to the reference's
    share *and* by more than :data:`CLASS_SHIFT_Z` two-sample binomial standard errors (a small
    class's share is noisy); a class the reference does not have is an infinite change.
    """
    import numpy as np
    import pandas as pd

    from airflow_mlops.tasks import sort_classes

    counts = pd.Series(labels).dropna().value_counts()
    ref_counts = pd.Series(reference).dropna().value_counts()
    n, m = int(counts.sum()), int(ref_counts.sum())
    detail: dict[str, Any] = {
        "status": "ran",
        "method": "each class's share of the labelled rows against the reference's: a relative change "
        f"above max_class_shift that is also beyond {CLASS_SHIFT_Z:g} standard errors",
        "max_class_shift": float(max_shift),
        "rows": n,
        "reference_rows": m,
    }
    if not n or not m:
        detail["largest_relative_change"] = None
        return (
            detail,
            "class_balance: cannot compare class shares: no labelled rows in the data or the reference",
        )
    per_class: dict[str, dict[str, Any]] = {}
    moved: list[tuple[float, str, float, float]] = []
    for c in sort_classes(set(counts.index) | set(ref_counts.index)):
        p, q = int(counts.get(c, 0)) / n, int(ref_counts.get(c, 0)) / m
        if q == 0:
            change, z = math.inf, math.inf
        else:
            change = abs(p - q) / q
            se = math.sqrt(q * (1 - q) * (1 / n + 1 / m))
            z = abs(p - q) / se if se > 0 else (0.0 if p == q else math.inf)
        per_class[c] = {
            "rows": int(counts.get(c, 0)),
            "share": p,
            "reference_share": q,
            "relative_change": change if math.isfinite(change) else "inf",
            "z": _finite_or_none(z),
        }
        if change > max_shift and z > CLASS_SHIFT_Z:
            moved.append((change, c, p, q))
    largest = max((v[0] for v in moved), default=None)
    detail["classes"] = per_class
    detail["largest_relative_change"] = (
        None if largest is None else (largest if math.isfinite(largest) else "inf")
    )
    if not moved:
        return detail, None
    moved.sort(key=lambda v: (-v[0], v[1]))
    shown = "; ".join(
        f"class {c!r} share {p:.4f} vs reference {q:.4f} "
        + ("(not in the reference)" if q == 0 else f"(relative change {ch:.2f})")
        for ch, c, p, q in moved[:10]
    ) + ("; ..." if len(moved) > 10 else "")
    del np
    return (
        detail,
        f"class_balance: {len(moved)} class share(s) moved beyond max_class_shift {max_shift:.2f}: {shown}",
    )


def _target_shift(
    y: np.ndarray, reference: np.ndarray, max_shift: float
) -> tuple[dict[str, Any], str | None]:
    """class_balance of a regression target: its Kolmogorov-Smirnov distance to the reference's,
    judged like a feature's (against ``max_feature_shift``; a relative change of a class share
    means nothing for a number)."""
    import numpy as np

    detail: dict[str, Any] = {
        "status": "ran",
        "method": "regression target: Kolmogorov-Smirnov distance to the reference's target, "
        "against max_feature_shift",
        "max_feature_shift": float(max_shift),
        "quantiles": _quantiles(y),
        "reference_quantiles": _quantiles(reference),
    }
    if not len(y) or not len(reference):
        detail["ks_distance"] = None
        return (
            detail,
            "class_balance: cannot compare the target: no finite target in the data or the reference",
        )
    d = _ks_distance(np.sort(y), np.sort(reference))
    detail["ks_distance"] = d
    if d > max_shift:
        return detail, (
            f"class_balance: the target's distribution moved by KS distance {d:.3f} > max_feature_shift "
            f"{max_shift:.3f} (median {float(np.median(y)):.4g} vs reference {float(np.median(reference)):.4g})"
        )
    return detail, None


def _positive_rates(
    labels: pd.Series, reference: pd.Series, positive_label: Any, target: str
) -> tuple[float, float]:
    """Share of (non-missing) positive labels in the data and in the reference (NaN when none).

    One rule for what "positive" means (``data/labels.py``), applied to both together: the
    positive label must occur in one of them and they may hold two classes between them.
    """
    import pandas as pd

    from airflow_mlops.data.labels import positive_mask

    labels, reference = labels.dropna(), reference.dropna()
    both = pd.concat([labels.astype(object), reference.astype(object)], ignore_index=True)
    mask = positive_mask(both, positive_label, column=target, require_both=False)
    data_mask, ref_mask = mask[: len(labels)], mask[len(labels) :]
    rate = float(data_mask.mean()) if len(data_mask) else float("nan")
    ref_rate = float(ref_mask.mean()) if len(ref_mask) else float("nan")
    return rate, ref_rate


def _class_balance(
    df: pd.DataFrame, target: str, reference: pd.DataFrame | None, positive_label: Any, max_shift: float
) -> tuple[dict[str, Any], str | None]:
    """The class_balance check's details and its dataset finding (``None`` when it passes)."""
    if reference is None:
        return {"status": "skipped: no reference"}, None
    if target not in reference.columns:
        raise DataError(
            f"class_balance: the reference data has no target column {target!r}; it has "
            f"{list(map(str, reference.columns))}"
        )
    rate, ref_rate = _positive_rates(df[target], reference[target], positive_label, target)
    detail: dict[str, Any] = {
        "status": "ran",
        "positive_label": _plain(positive_label),
        "positive_rate": rate,
        "reference_positive_rate": ref_rate,
        "max_class_shift": float(max_shift),
    }
    if math.isnan(ref_rate) or math.isnan(rate):
        detail["relative_change"] = None
        return (
            detail,
            "class_balance: cannot compare positive rates: no labelled rows in the data or the reference",
        )
    # A class that was absent from the reference and appears now is an infinite change.
    change = abs(rate - ref_rate) / ref_rate if ref_rate else (0.0 if rate == 0 else math.inf)
    detail["relative_change"] = change if math.isfinite(change) else "inf"
    if change > max_shift:
        return detail, (
            f"class_balance: positive rate {rate:.4f} vs reference {ref_rate:.4f} "
            f"(relative change {change:.2f} > max_class_shift {max_shift:.2f})"
        )
    return detail, None


# --- helpers --------------------------------------------------------------------------------


def _screen_task(
    declared: str | None, df: pd.DataFrame, reference: pd.DataFrame | None, target: str, positive_label: Any
) -> str:
    """The task the screen judges the target by: the declared one (checked against the labelled
    targets of the batch and the reference), else inferred from them.

    Non-finite numbers are left out (a regression's infinite target is a suspect row, not a reason
    to refuse the batch). Labels of a single class cannot say what the task is: ``binary`` when a
    ``positive_label`` is given (as the screen always was), else ``multiclass``.
    """
    import numpy as np
    import pandas as pd

    from airflow_mlops.data.labels import label_key
    from airflow_mlops.tasks import TASKS, infer_task, resolve_task

    if declared is not None and declared not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)} (or None: inferred), got {declared!r}")
    parts = [df[target].dropna()]
    if reference is not None and target in reference.columns:
        parts.append(reference[target].dropna())
    labels = pd.concat(parts, ignore_index=True)
    dtype = labels.dtype
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        labels = labels[np.isfinite(labels.to_numpy(dtype=np.float64))]
    if declared == "binary":
        return "binary"  # its two classes are _require_binary_target's to check
    if declared is not None:
        return resolve_task(declared, labels, column=target)
    keys: set[str] = set()
    for value in pd.unique(labels):
        keys.add(label_key(value))
        if len(keys) > 1:
            return infer_task(labels, column=target)
    return "binary" if positive_label is not None else "multiclass"


def _label_view(labels: pd.Series, task: str) -> pd.Series:
    """The target as the label model reads it: as given (binary: the screen always read it so),
    canonical class texts (multiclass, :func:`~airflow_mlops.data.labels.label_key`: ``1``,
    ``1.0`` and ``"1"`` are one class), float64 (regression). Missing stays missing."""
    from airflow_mlops.data.labels import label_key

    if task == "multiclass":
        return labels.astype(object).map(label_key, na_action="ignore")
    if task == "regression":
        import pandas as pd

        return pd.Series(_float_values(labels), index=labels.index)
    return labels


def _class_texts(view: pd.Series, task: str) -> np.ndarray:
    """Each row's class as text (None/NaN where missing); all None for a regression (no classes)."""
    import numpy as np

    if task == "regression":
        return np.full(len(view), None, dtype=object)
    return view.astype(str).where(view.notna()).to_numpy()


def _representatives(labels: pd.Series, reference: pd.DataFrame | None, target: str) -> dict[str, Any]:
    """Each canonical class text's first label as written (batch, then reference)."""
    import pandas as pd

    from airflow_mlops.data.labels import label_key

    out: dict[str, Any] = {}
    parts = [labels] + ([reference[target]] if reference is not None and target in reference.columns else [])
    for part in parts:
        for value in pd.unique(part.dropna()):
            out.setdefault(label_key(value), _plain(value))
    return out


def _class_counts(texts: np.ndarray, suspect: np.ndarray) -> dict[str, dict[str, int]]:
    """Per class: labelled rows, accepted and quarantined (for the summary and the report)."""
    from airflow_mlops.tasks import sort_classes

    out: dict[str, dict[str, int]] = {}
    for c in sort_classes({v for v in texts if isinstance(v, str)}):
        rows = texts == c
        out[c] = {
            "rows": int(rows.sum()),
            "accepted": int((rows & ~suspect).sum()),
            "quarantined": int((rows & suspect).sum()),
        }
    return out


def _require_binary_target(
    df: pd.DataFrame, reference: pd.DataFrame | None, target: str, positive_label: Any
) -> None:
    """A binary pipeline's target (the batch's, with the reference's) holds at most two classes.

    More is not poisoning -- no row is suspect, the data is for another task -- so it is a final
    :class:`DataError` before any check runs, never a finding or a quarantine.
    """
    import pandas as pd

    from airflow_mlops.data.labels import label_key

    labels = [df[target]]
    if reference is not None and target in reference.columns:
        labels.append(reference[target])
    values = list(pd.unique(pd.concat([s.dropna().astype(object) for s in labels], ignore_index=True)))
    classes = {label_key(v) for v in values}
    if len(classes) > 2:
        shown = ", ".join(repr(_plain(v)) for v in values[:10]) + (" ..." if len(values) > 10 else "")
        where = "the batch and its reference hold" if len(labels) > 1 else "the batch holds"
        raise DataError(
            f"target column {target!r} has {len(classes)} classes ({shown}): {where} {len(classes)} "
            f"distinct labels, but the task is binary (positive_label {positive_label!r}); this is not "
            "a poisoning finding and no row was screened. Map the target to two classes before the "
            "pipeline, or point data.target at the binary label column"
        )


def _check_reference(df: pd.DataFrame, reference: pd.DataFrame, target: str, features: list[str]) -> None:
    """The reference must have the batch's target and features, of the same kind."""
    missing = [c for c in [target, *features] if c not in reference.columns]
    if missing:
        raise DataError(
            f"the reference data lacks column(s) {missing} that the batch has; it has "
            f"{list(map(str, reference.columns))}: the reference must have the same columns as the batch"
        )
    differ = [f for f in features if _is_numeric(df[f]) != _is_numeric(reference[f])]
    if differ:
        kinds = ", ".join(f"{f}: batch {df[f].dtype}, reference {reference[f].dtype}" for f in differ)
        raise DataError(
            f"the reference data's column type differs from the batch's ({kinds}): fix one of them"
        )
    if len(reference) == 0:
        raise DataError("the reference data has no rows")
    empty = [f for f in features if reference[f].isna().all()]
    if empty:
        raise DataError(f"feature column(s) {empty} are entirely null in the reference data")


def _check_accounting(
    df: pd.DataFrame,
    accepted: pd.DataFrame,
    quarantined: pd.DataFrame,
    accepted_pos: np.ndarray,
    quarantined_pos: np.ndarray,
) -> dict[str, str]:
    """Invariant 5: every input row is in exactly one frame, unchanged. Returns the hashes."""
    import hashlib

    import numpy as np
    import pandas as pd

    n = len(df)
    covered = np.zeros(n, dtype=np.int64)
    np.add.at(covered, accepted_pos, 1)
    np.add.at(covered, quarantined_pos, 1)
    # One hash over the three frames: pandas hashes an object column through its categories, each
    # hashed as its first value, so 2, 2.0 and "2" (one category) would hash as whichever came
    # first in each frame apart. Together, that is always the input's first (as it is alone).
    parts = [frame for frame in (df, accepted, quarantined[list(df.columns)]) if len(frame)]
    hashed = pd.util.hash_pandas_object(pd.concat(parts, ignore_index=True), index=False).to_numpy()
    row_in, row_acc, row_q = np.split(hashed, [n, n + len(accepted)])
    same = np.array_equal(np.sort(row_in), np.sort(np.concatenate([row_acc, row_q])))
    if len(accepted) + len(quarantined) != n or not (covered == 1).all() or not same:
        raise DataError(
            f"poisoning screen accounting error: {len(accepted)} accepted + {len(quarantined)} "
            f"quarantined != {n} rows in; refusing to continue (this is a bug, please report it)"
        )

    def digest(values: np.ndarray) -> str:
        return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()

    return {
        "method": "sha256 over pandas row hashes (index excluded), in row order",
        "input": digest(row_in),
        "accepted": digest(row_acc),
        "quarantined": digest(row_q),
    }


def _require_columns(df: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"column(s) {missing} not in the data; it has {list(map(str, df.columns))}: "
            "check data.target and data.features in the spec"
        )


def _is_numeric(col: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(col.dtype))


def _float_values(col: pd.Series) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()


def _finite(col: pd.Series) -> np.ndarray:
    import numpy as np

    values = _float_values(col)
    return values[np.isfinite(values)]


def _is_heavy_tailed(values: np.ndarray) -> bool:
    import numpy as np

    finite = values[np.isfinite(values)]
    if len(finite) <= 2 or finite.min() < 0:
        return False
    std = finite.std()
    skew = float(((finite - finite.mean()) ** 3).mean() / std**3) if std > 0 else 0.0
    return skew > LOG_SKEW_THRESHOLD


def _numeric_view(col: pd.Series) -> np.ndarray:
    """A numeric column as float64 (missing as NaN), log1p-compressed when heavy right-tailed."""
    import numpy as np

    values = _float_values(col)
    if _is_heavy_tailed(values):
        with np.errstate(invalid="ignore"):
            values = np.log1p(values)  # keeps +inf as +inf, NaN as NaN
    return values


def _quantiles(values: np.ndarray) -> dict[str, float]:
    import numpy as np

    finite = values[np.isfinite(values)]
    if not len(finite):
        return {}
    qs = (0.0, 0.01, 0.05, 0.5, 0.95, 0.99, 1.0)
    return {f"q{q:g}": round(float(v), 4) for q, v in zip(qs, np.quantile(finite, qs), strict=True)}


def _finite_or_none(value: float) -> float | None:
    """``value`` as a float, ``None`` when it is infinite (JSON has no infinities)."""
    return float(value) if math.isfinite(value) else None


def _plain(value: Any) -> Any:
    """A JSON-friendly Python scalar (numpy scalars unwrapped)."""
    return value.item() if hasattr(value, "item") else value
