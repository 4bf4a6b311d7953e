"""Screens for poisoned or corrupt training rows.

:func:`screen_data` runs the configured checks and splits the input into *accepted* and
*quarantined* rows. Nothing is dropped silently (security invariant 5): every input row ends up in
exactly one of the two frames, the quarantine keeps each row's position in the input, the reasons
it was held back and its scores, and the function raises if that accounting ever fails to add up
(by count, by position and by a content hash of the rows, recorded in the summary).

The checks follow the task (``task``: ``binary``, ``multiclass`` or ``regression``; None infers it
from the labelled targets of the batch and the reference, :func:`airflow_mlops.tasks.infer_task`).
A multiclass target is judged per class exactly as a binary one (its labels read by
:func:`~airflow_mlops.labels.label_key`: ``1``, ``1.0`` and ``"1"`` are one class); what a
regression target changes is said under each check. The summary names the task, with the rows of
each class (``class_counts``) or the target's quantiles (``target``).

Row checks (the names of ``poisoning.checks`` in the spec; each suspect row gets a reason):

``label_issues`` (old name ``label_flips``)
    Confident learning on class probabilities from models that never saw the row they score
    (:mod:`.label_issues`). Every fold's models (gradient-boosted trees and a logistic regression,
    their probabilities averaged) learn from the batch's other folds **and**, when one is given,
    the reference's other folds, and score the batch's and the reference's held-out rows: a clean
    batch row and a reference row are scored alike. Per class, the number of rows whose label is
    wrong is estimated by the calibrated confident joint (a row counts for the likeliest class
    whose probability reaches that class's mean self-confidence, measured on the reference's
    clean rows when given). A *move* (rows that look like class ``j`` labelled ``i``) is acted on
    only when it is a practical share: all the moves out of ``j`` at least :data:`SOURCE_SHARE` of
    ``j``'s rows, or all the moves into ``i`` at least :data:`DESTINATION_SHARE` of ``i``'s rows
    (beyond :data:`NOISE_Z` Poisson standard errors). Every data set holds rows that look like
    another class, and a kind of one class that mimics another (a few per cent of a rare class)
    cannot be told from moved rows one by one; an attack moves a share of a class. **With a
    reference** the moves beyond the share its clean rows show (plus :data:`BASELINE_Z` standard
    errors), or a class's excess over its reference share (beyond :data:`EXCESS_Z`), are acted on
    too from the smaller :data:`REFERENCE_SOURCE_SHARE` and :data:`REFERENCE_DESTINATION_SHARE`.
    The estimated number of rows, among those
    whose label is not the likeliest class, with the largest margin ``max_j p_j - p_label`` are
    suspect (reason ``label_issue``; the row's score is ``p_label - max_j p_j``). The rows the
    ``out_of_distribution`` and ``duplicates`` checks quarantine (when they run) are neither
    counted nor taken: a far row's label is often random and a conflicting copy is a move already
    found, so neither is evidence that other rows moved. The reference only adds evidence: more
    rows to learn from and a measured baseline, no p-value floor tied to its size.
    **Regression**: residual outliers. Regressors that start from a robust (Huber) linear fit, so
    a trend reaches the largest and smallest targets, and add HistGradientBoosting with an
    absolute-error loss on what it leaves (a median fit, which a share of poisoned targets hardly
    moves) learn out of fold from the reference and the batch together (without a reference: from the batch, then a second time
    without the first pass's suspects) and predict each row; its score is its residual in robust
    standard deviations of the residuals at its target level and on its side of them (the
    reference's residuals when given). A row is suspect beyond :data:`UNCALIBRATED_RESIDUAL_CUT`;
    with a reference that cut rises only when its own residuals cross it, and falls where
    conformal p-values against them and Benjamini-Hochberg at :data:`FDR_LEVEL` find a set below
    it. A row whose target is infinite is quarantined with reason ``non_finite_target``.
``out_of_distribution`` (old name ``outliers``)
    An :class:`~sklearn.ensemble.IsolationForest`. With a reference it is fitted on one half of
    it and the other half calibrates: the batch's anomaly scores get conformal p-values against
    that half's (per class when the class has :data:`MIN_OOD_CLASS_ROWS` calibration rows, else
    against all of them) and Benjamini-Hochberg at :data:`FDR_LEVEL` picks the suspects (reason
    ``out_of_distribution``). Without a reference the forest is fitted on the batch itself (the
    summary says so) and the cut comes from its own scores: the :data:`OOD_QUANTILE` quantile plus
    half its distance from the median. Independently, a value more than ``outlier_threshold``
    robust z-scores (``0.6745 * |x - median| / MAD`` against the reference; a heavy-tailed column
    ``>= 0`` is first log-compressed as ``log(x + median)``) from the median and outside the
    range of the reference's values (without a reference: of the batch's, less
    :data:`BATCH_RANGE_SHARE` at each end) by more than :data:`EXTREME_RANGE_MARGIN` x its width
    (in a column whose MAD is 0 only an infinite value counts), a value outside that range by
    more than :data:`FAR_RANGE_MARGIN` x its width whatever its z-score (a bounded column's MAD is
    a quarter of its range, so its z-scores stay small), an infinite value, or a negative value in
    a column the reference has only values >= 0 of (and that is log-compressed), makes a row
    suspect too. A regression has no classes: one cut for all
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

The package only re-exports; its modules import each other one way: :mod:`.screen` (the
orchestration) -> the checks (:mod:`.label_issues`, :mod:`.residuals`,
:mod:`.out_of_distribution`, :mod:`.duplicates`, :mod:`.dataset_checks`) and :mod:`.targets`,
:mod:`.result` -> :mod:`.fitting` (the gradient-boosting fits) -> :mod:`.features` (encoders,
column helpers), :mod:`.stats` (conformal p-values, Benjamini-Hochberg, shared constants).
"""

from __future__ import annotations

from airflow_mlops.data.poisoning.dataset_checks import CLASS_SHIFT_Z
from airflow_mlops.data.poisoning.duplicates import (
    DUPLICATE_RESIDUAL_Z,
    DUPLICATE_TARGET_SHARE,
    NEAR_DUPLICATE_RESOLUTION,
)
from airflow_mlops.data.poisoning.features import LOG_SKEW_THRESHOLD, MAX_CATEGORIES, build_feature_matrix
from airflow_mlops.data.poisoning.fitting import SMALL_FIT_ROWS
from airflow_mlops.data.poisoning.label_issues import (
    BASELINE_Z,
    DESTINATION_SHARE,
    EXCESS_Z,
    NOISE_Z,
    REFERENCE_DESTINATION_SHARE,
    REFERENCE_SOURCE_SHARE,
    SOURCE_SHARE,
)
from airflow_mlops.data.poisoning.out_of_distribution import (
    BATCH_RANGE_SHARE,
    EXTREME_RANGE_MARGIN,
    FAR_RANGE_MARGIN,
    MIN_OOD_CLASS_ROWS,
    OOD_MARGIN,
    OOD_QUANTILE,
)
from airflow_mlops.data.poisoning.residuals import UNCALIBRATED_RESIDUAL_CUT
from airflow_mlops.data.poisoning.result import (
    REASONS_COLUMN,
    ROW_INDEX_COLUMN,
    SCORES_COLUMN,
    ScreenResult,
    allowed_suspects,
)
from airflow_mlops.data.poisoning.screen import (
    CHECK_ALIASES,
    CHECKS,
    DATASET_CHECKS,
    REASON_DUPLICATE,
    REASON_LABEL_ISSUE,
    REASON_MISSING_LABEL,
    REASON_NON_FINITE_TARGET,
    REASON_OOD,
    normalise_checks,
    screen_data,
)
from airflow_mlops.data.poisoning.stats import (
    FDR_LEVEL,
    MAD_TO_Z,
    MAX_CALIBRATION_ROWS,
    MIN_CALIBRATION_ROWS,
    ROW_LEVEL,
    TAIL_MIN_ROWS,
    TAIL_ROWS,
    TAIL_SHARE,
)

__all__ = [
    "BASELINE_Z",
    "BATCH_RANGE_SHARE",
    "CHECKS",
    "CHECK_ALIASES",
    "CLASS_SHIFT_Z",
    "DATASET_CHECKS",
    "DESTINATION_SHARE",
    "DUPLICATE_RESIDUAL_Z",
    "DUPLICATE_TARGET_SHARE",
    "EXCESS_Z",
    "EXTREME_RANGE_MARGIN",
    "FAR_RANGE_MARGIN",
    "FDR_LEVEL",
    "LOG_SKEW_THRESHOLD",
    "MAD_TO_Z",
    "MAX_CALIBRATION_ROWS",
    "MAX_CATEGORIES",
    "MIN_CALIBRATION_ROWS",
    "MIN_OOD_CLASS_ROWS",
    "NEAR_DUPLICATE_RESOLUTION",
    "NOISE_Z",
    "OOD_MARGIN",
    "OOD_QUANTILE",
    "REASONS_COLUMN",
    "REASON_DUPLICATE",
    "REASON_LABEL_ISSUE",
    "REASON_MISSING_LABEL",
    "REASON_NON_FINITE_TARGET",
    "REASON_OOD",
    "REFERENCE_DESTINATION_SHARE",
    "REFERENCE_SOURCE_SHARE",
    "ROW_INDEX_COLUMN",
    "ROW_LEVEL",
    "SCORES_COLUMN",
    "SMALL_FIT_ROWS",
    "SOURCE_SHARE",
    "TAIL_MIN_ROWS",
    "TAIL_ROWS",
    "TAIL_SHARE",
    "UNCALIBRATED_RESIDUAL_CUT",
    "ScreenResult",
    "allowed_suspects",
    "build_feature_matrix",
    "normalise_checks",
    "screen_data",
]
