"""Screens for poisoned or corrupt training rows.

:func:`screen_data` runs the configured checks and splits the input into *accepted* and
*quarantined* rows. Nothing is dropped silently (security invariant 5): every input row ends up in
exactly one of the two frames, the quarantine keeps each row's position in the input, the reasons
it was held back and its scores, and the function raises if that accounting ever fails to add up
(by count, by position and by a content hash of the rows, recorded in the summary).

Row checks (the names of ``poisoning.checks`` in the spec; each suspect row gets a reason):

``label_issues`` (old name ``label_flips``)
    Confident learning on *out-of-fold* predicted probabilities. A
    :class:`~sklearn.ensemble.HistGradientBoostingClassifier` is fitted on ``folds - 1`` folds
    (at most ``max_fit_rows`` rows each, so 1M rows screen in seconds) and predicts the held-out
    fold, so no row is judged by a model that saw it. Per class ``j`` the threshold ``t_j`` is the
    mean self-confidence of the rows labelled ``j``; a row is a *candidate* when the class its
    probabilities confidently point to (the most probable class ``j`` with ``p_j >= t_j``) is
    not its label. Its score is the class-normalised log-likelihood ratio
    ``log(p_y / prior_y) - max_j!=y log(p_j / prior_j)``, so a rare class is judged against its
    own rate, not the majority's. A candidate is suspect (reason ``label_issue``) when its score
    is below its class's cut. With a reference, the reference's rows are scored by the same fold
    models (none of which saw them), so they show how the batch's *clean* rows score under a
    model trained on the (possibly poisoned) batch; the cut of class ``j`` is set so that at
    most a share :data:`CALIBRATION_ALPHA` of the reference's class-``j`` rows would be flagged
    (a conformal bound on the clean rows' flag rate), and never above 0. Without a reference:
    the fixed :data:`UNCALIBRATED_LABEL_CUT`.
``out_of_distribution`` (old name ``outliers``)
    An :class:`~sklearn.ensemble.IsolationForest` fitted on the reference (without a reference: on
    the batch itself, which the summary says); a row whose anomaly score is above the cut is
    suspect (reason ``out_of_distribution``). The cut comes from the fitted data's own scores: the
    :data:`OOD_QUANTILE` quantile plus half its distance from the median. Independently, a value
    more than ``outlier_threshold`` robust z-scores (``0.6745 * |x - median| / MAD`` against the
    reference) from the median, an infinite value, or a negative value in a column the reference
    has only values >= 0 of (and that is log-compressed), makes a row suspect too.
``duplicates``
    Exact and near duplicates (identical after rounding every numeric feature to a thousandth of
    its standard deviation) with conflicting labels. Only the copies whose label disagrees with the
    group's most plausible label (the out-of-fold model's class-normalised view of the group) are
    suspect (reason ``conflicting_duplicate``), not every member of the pair.

Dataset checks (a finding fails the screen; no row is quarantined; they need a reference, without
one they are recorded as ``skipped: no reference``):

``class_balance``
    The positive rate against the reference's: a relative change above ``max_class_shift``.
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
from collections.abc import Sequence
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

# build_feature_matrix: categorical columns keep at most this many categories (the rest: "other").
MAX_CATEGORIES = 50
# A numeric column is log-compressed when all its values are >= 0 and its skewness is above this.
LOG_SKEW_THRESHOLD = 1.0
# 0.6745 is the 75th percentile of the standard normal: it makes the MAD comparable to a stdev.
_MAD_TO_Z = 0.6745
# label_issues: the share of a class's clean rows that its cut may flag (conformal, on the
# reference scored by the batch's models), the margin below a thin tail's cut (rank below
# MIN_CALIBRATION_RANK), the fewest reference rows a class needs to be calibrated at all, and
# the cut without a reference (the given label is 20 times less likely than another,
# after dividing by the class rates).
CALIBRATION_ALPHA = 0.005
CALIBRATION_MARGIN = math.log(2.0)
MIN_CALIBRATION_ROWS = 20
MIN_CALIBRATION_RANK = 5
UNCALIBRATED_LABEL_CUT = -math.log(20.0)
# Rows of the reference used to calibrate (a random sample when it has more).
MAX_CALIBRATION_ROWS = 10_000
# Model fits on fewer rows than this use one thread.
SMALL_FIT_ROWS = 20_000
# Probabilities are clipped to [PROB_FLOOR, 1] before logs: a score is at most ~log(1/PROB_FLOOR).
PROB_FLOOR = 1e-4
# out_of_distribution: the cut is this quantile of the fitted data's scores plus half its distance
# from the median.
OOD_QUANTILE = 0.995
OOD_MARGIN = 0.5
# duplicates: numeric features are rounded to this share of their standard deviation.
NEAR_DUPLICATE_RESOLUTION = 1e-3


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
        text = (
            f"poisoning screen {verdict}: {s['rows_quarantined']} of {s['rows_in']} rows suspect "
            f"(suspect_fraction {s['suspect_fraction']:.4f} {over} max_suspect_fraction "
            f"{s['max_suspect_fraction']:.4f}); suspects per check: {counts or 'none'}"
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
    :param positive_label: the label of the positive class, for ``class_balance``.
    :param folds: folds of the out-of-fold model (2-20).
    :param max_fit_rows: at most this many rows train each fold's model (all rows are scored).
    :param seed: seed of the fold split, the subsamples and the models.
    :raises DataError: the target or a feature column is missing, a feature column is all null,
        the reference's columns differ from the batch's, or there are no rows.
    :raises ValueError: an unknown check or an out-of-range setting.
    """
    import numpy as np

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

    labelled = df[target].notna().to_numpy()
    check_counts[REASON_MISSING_LABEL] = mark(~labelled, REASON_MISSING_LABEL)
    fit_frame = reference if reference is not None else df
    encoder = _Encoder.fit(fit_frame, list(features))
    x = encoder.transform(df)
    # Exact and near duplicates share a group: they always fall in the same fold, so no copy
    # is judged by a model that was trained on its twin.
    groups = _duplicate_groups(x, encoder)
    model: _LabelModel | None = None

    def label_model() -> _LabelModel:
        nonlocal model
        if model is None:
            ref_x = ref_labels = None
            if reference is not None and "label_issues" in checks:
                ref = reference[reference[target].notna()]
                if len(ref) > MAX_CALIBRATION_ROWS:
                    ref = ref.sample(n=MAX_CALIBRATION_ROWS, random_state=seed)
                ref_x, ref_labels = encoder.transform(ref), ref[target].to_numpy()
            model = _LabelModel.fit(
                x,
                df[target],
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

    for check in checks:  # each check once, in the order given
        if check == "label_issues":
            lm = label_model()
            if lm.status != "ran":
                check_details[check] = {"status": lm.status, "suspects": 0}
                check_counts[check] = 0
                continue
            cal = _calibrate_label_cut(lm) if reference is not None else None
            mask, detail = lm.issues(cal)
            count = mark(mask, REASON_LABEL_ISSUE)
            for i in np.flatnonzero(mask):
                row_scores[i]["label_issue"] = round(float(lm.score[i]), 4)
                row_scores[i]["suggested_label"] = _plain(lm.classes[lm.suggested[i]])
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
                labelled,
                outlier_threshold,
                seed,
                fitted_on="reference" if reference is not None else "batch",
            )
            count = mark(mask, REASON_OOD)
            for i in np.flatnonzero(mask):
                row_scores[i]["out_of_distribution"] = round(float(score[i]), 4)
            scores["out_of_distribution"] = score
            scores["out_of_distribution_cut"] = cut
            check_details[check] = {"status": "ran", "suspects": count, **detail}
        elif check == "duplicates":
            mask, detail = _conflicting_duplicates(df, groups, target, labelled, label_model)
            count = mark(mask, REASON_DUPLICATE)
            check_details[check] = {"status": "ran", "suspects": count, **detail}
        elif check == "class_balance":
            detail, finding = _class_balance(df, target, reference, positive_label, max_class_shift)
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
    quarantined[REASONS_COLUMN] = [";".join(reasons[i]) for i in quarantined_pos]
    quarantined[SCORES_COLUMN] = [json.dumps(row_scores[i], sort_keys=True) for i in quarantined_pos]
    hashes = _check_accounting(df, accepted, quarantined, accepted_pos, quarantined_pos)

    suspect_fraction = len(quarantined) / n
    passed = suspect_fraction <= max_suspect_fraction and not findings
    summary: dict[str, Any] = {
        "rows_in": n,
        "rows_accepted": len(accepted),
        "rows_quarantined": len(quarantined),
        "suspect_fraction": float(suspect_fraction),
        "max_suspect_fraction": float(max_suspect_fraction),
        "check_counts": check_counts,
        "checks": check_details,
        "dataset_findings": findings,
        "reference": "given" if reference is not None else "none: models fitted on the batch itself",
        "hashes": hashes,
        "passed": bool(passed),
    }
    result = ScreenResult(
        accepted=accepted, quarantined=quarantined, summary=summary, passed=bool(passed), scores=scores
    )
    log.info("%s", result.message())
    return result


# --- label issues ---------------------------------------------------------------------------


@dataclass
class _LabelModel:
    """Out-of-fold class probabilities of the batch and the confident-learning quantities."""

    status: str
    classes: list[Any]
    y: np.ndarray  # class code per row, -1 where unlabelled
    proba: np.ndarray  # (n, classes) out-of-fold probabilities (NaN rows where unlabelled)
    prior: np.ndarray
    thresholds: np.ndarray  # per class: mean self-confidence (confident learning)
    score: np.ndarray  # class-normalised log-likelihood ratio of the given label (NaN unlabelled)
    suggested: np.ndarray  # the class the probabilities confidently point to (-1: none)
    # The reference's rows scored by the batch's fold models (see _calibrate_label_cut).
    ref_y: np.ndarray | None = None  # class code per reference row (-1: a class the batch lacks)
    ref_score: np.ndarray | None = None
    ref_suggested: np.ndarray | None = None

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
        import numpy as np

        n = len(x)
        rows = np.flatnonzero(labelled)
        values = labels.to_numpy()[rows]
        classes_arr, codes = np.unique(
            values.astype(str) if values.dtype == object else values, return_inverse=True
        )
        classes = [_first_value(values, codes, k) for k in range(len(classes_arr))]
        y = np.full(n, -1, dtype=np.int64)
        y[rows] = codes
        k = len(classes)
        empty = np.full((n, max(k, 1)), np.nan)
        nan = np.full(n, np.nan)
        counts = np.bincount(codes, minlength=k) if k else np.zeros(0, dtype=np.int64)
        if k < 2:
            status = f"skipped: {k} class(es) among the labelled rows, need at least 2"
        elif counts.min() < folds:
            status = f"skipped: a class has {int(counts.min())} labelled rows, need at least folds={folds}"
        else:
            status = "ran"
        if status != "ran":
            return cls(status, classes, y, empty, np.zeros(k), np.zeros(k), nan, np.full(n, -1))
        proba = np.full((n, k), np.nan)
        proba[rows], ref_proba = _oof_proba(
            x[rows],
            codes,
            k,
            encoder,
            folds=folds,
            max_fit_rows=max_fit_rows,
            seed=seed,
            groups=groups[rows],
            extra=reference_x,
        )
        prior = counts / counts.sum()
        score, suggested, thresholds = _confident_learning(proba[rows], codes, prior)
        full_score = nan.copy()
        full_score[rows] = score
        full_suggested = np.full(n, -1, dtype=np.int64)
        full_suggested[rows] = suggested
        model = cls("ran", classes, y, proba, prior, thresholds, full_score, full_suggested)
        if ref_proba is not None and reference_labels is not None:
            lookup = {str(c): j for j, c in enumerate(classes)}
            ref_y = np.array([lookup.get(str(v), -1) for v in reference_labels], dtype=np.int64)
            known = ref_y >= 0
            model.ref_y = ref_y[known]
            model.ref_score, model.ref_suggested = _confident_scores(
                ref_proba[known], model.ref_y, prior, thresholds
            )
        return model

    def issues(self, calibration: dict[str, Any] | None) -> tuple[np.ndarray, dict[str, Any]]:
        """Suspect rows and the details: candidates whose score is below their class's cut."""
        import numpy as np

        if calibration is None:
            cuts = np.full(len(self.classes), UNCALIBRATED_LABEL_CUT)
            how = f"fixed: {UNCALIBRATED_LABEL_CUT:.3f} (no reference to calibrate on)"
        else:
            cuts = calibration["cuts"]
            how = calibration["how"]
        ref_rates = calibration.get("reference_flag_rates") if calibration else None
        lab = self.y >= 0
        cut_row = np.where(lab, cuts[np.maximum(self.y, 0)], np.nan)
        candidate = lab & (self.suggested >= 0) & (self.suggested != self.y)
        mask = candidate & (self.score < cut_row)
        per_class = {
            str(_plain(c)): {
                "rows": int((self.y == j).sum()),
                "prior": float(self.prior[j]),
                "mean_self_confidence": float(self.thresholds[j]),
                "cut": float(cuts[j]),
                "suspects": int((mask & (self.y == j)).sum()),
                "score_quantiles": _quantiles(self.score[self.y == j]),
                **({"reference_flag_rate": float(ref_rates[j])} if ref_rates is not None else {}),
            }
            for j, c in enumerate(self.classes)
        }
        detail = {
            "method": "confident learning on out-of-fold HistGradientBoosting probabilities",
            "threshold": how,
            "candidates": int(candidate.sum()),
            "classes": per_class,
            "cuts": [float(c) for c in cuts],
        }
        return mask, detail

    def row_cut(self, detail: dict[str, Any]) -> np.ndarray:
        import numpy as np

        cuts = np.asarray(detail["cuts"], dtype=float)
        return np.where(self.y >= 0, cuts[np.maximum(self.y, 0)], np.nan)


def _confident_learning(
    proba: np.ndarray, y: np.ndarray, prior: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the class-normalised score of its label, the confidently suggested class (-1:
    none) and, per class, the threshold (mean self-confidence of the class)."""
    import numpy as np

    k = proba.shape[1]
    thresholds = np.array([proba[y == j, j].mean() for j in range(k)])
    score, suggested = _confident_scores(proba, y, prior, thresholds)
    return score, suggested, thresholds


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
    logp = np.log(np.clip(proba, PROB_FLOOR, 1.0)) - np.log(prior)[None, :]
    own = logp[ar, y]
    logp[ar, y] = -np.inf
    score = own - logp.max(axis=1)
    return score, suggested


def _hgb(encoder: _Encoder, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=100,
        learning_rate=0.1,
        max_leaf_nodes=31,
        min_samples_leaf=20,
        l2_regularization=1.0,
        categorical_features=encoder.categorical_mask if any(encoder.categorical_mask) else None,
        early_stopping=False,
        random_state=seed,
    )


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
    extra: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Out-of-fold probabilities: each fold predicted by a model fitted on (a sample of) the rest.

    With ``groups``, the folds are stratified over each group's first row and every row goes to
    its group's fold. Rows of ``extra`` (rows no model trains on: the reference) are dealt out to
    the folds at random and predicted by their fold's model, so they are scored exactly as the
    batch's own rows are. Returns the batch's and the extra rows' probabilities."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    proba = np.zeros((len(x), k))
    extra_proba = np.zeros((len(extra), k)) if extra is not None else None
    extra_fold = rng.integers(0, folds, size=len(extra)) if extra is not None else None
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
    # Small fits run faster on one thread (and do not spin on a busy machine).
    threads = 1 if min(len(x), max_fit_rows) < SMALL_FIT_ROWS else None
    with threadpool_limits(limits=threads, user_api="openmp"):
        for f, (train, test) in enumerate(splits):
            if len(train) > max_fit_rows:
                train = np.sort(rng.choice(train, size=max_fit_rows, replace=False))
            model = _hgb(encoder, seed).fit(x[train], y[train])
            cols = model.classes_.astype(np.int64)
            proba[np.ix_(test, cols)] = model.predict_proba(x[test])
            if extra is not None and extra_proba is not None and extra_fold is not None:
                mine = np.flatnonzero(extra_fold == f)
                if len(mine):
                    extra_proba[np.ix_(mine, cols)] = model.predict_proba(extra[mine])
    return proba, extra_proba


def _calibrate_label_cut(model: _LabelModel) -> dict[str, Any] | None:
    """Per class, the cut that keeps the flag rate of clean rows below :data:`CALIBRATION_ALPHA`.

    The reference's rows are clean and come from the batch's distribution, and they were scored by
    the batch's own fold models (models that saw none of them), exactly as each batch row was by
    the models that did not see it: a clean batch row and a reference row are exchangeable. A
    reference row of class ``j`` that the confident-learning rule would flag (a candidate) counts
    with its score, any other with +inf; the cut of class ``j`` is the ``m``-th smallest of these,
    ``m = floor(alpha * (n_j + 1))``, so a clean batch row is flagged with probability at most
    ``alpha`` (the conformal bound), and never above 0 (the label must be less likely than another
    class). When every reference candidate's score is above that, the cut is 0: the
    confident-learning rule alone decides. When ``m`` is below :data:`MIN_CALIBRATION_RANK` (a
    class with fewer than ~1,000 reference rows) the tail is too thin to trust: the cut is the
    ``max(m, 1)``-th smallest less a margin of ``log 2``.
    """
    import numpy as np

    if model.ref_y is None or model.ref_score is None or model.ref_suggested is None:
        return None
    k = len(model.classes)
    ref_y, ref_score = model.ref_y, model.ref_score
    candidate = (model.ref_suggested >= 0) & (model.ref_suggested != ref_y)
    conformity = np.where(candidate, ref_score, np.inf)
    counts = np.bincount(ref_y, minlength=k)
    if counts.min() < MIN_CALIBRATION_ROWS:
        return None
    cuts = np.zeros(k)
    flagged = np.zeros(k)
    for j in range(k):
        values = np.sort(conformity[ref_y == j])
        m = math.floor(CALIBRATION_ALPHA * (len(values) + 1))
        cut = float(values[max(m, 1) - 1])
        if m < MIN_CALIBRATION_RANK:  # a thin tail: its few rows say little about the next ones
            cut -= CALIBRATION_MARGIN
        cuts[j] = min(cut, 0.0)
        flagged[j] = float((values < cuts[j]).mean())
    return {
        "cuts": cuts,
        "reference_flag_rates": flagged,
        "how": f"calibrated: per class, the floor({CALIBRATION_ALPHA:g} x (n + 1))-th smallest score "
        f"of the reference's candidates ({len(ref_y)} rows scored by the batch's fold models), "
        "capped at 0",
    }


# --- out of distribution ------------------------------------------------------------------


def _out_of_distribution(
    df: pd.DataFrame,
    x: np.ndarray,
    fit_frame: pd.DataFrame,
    encoder: _Encoder,
    target: str,
    features: list[str],
    labelled: np.ndarray,
    outlier_threshold: float,
    seed: int,
    *,
    fitted_on: str,
) -> tuple[np.ndarray, dict[str, Any], np.ndarray, np.ndarray]:
    """Isolation-forest anomaly scores against ``fit_frame`` with a class-aware automatic cut, and
    extreme values (robust z-score, infinities). Returns mask, details, scores, per-row cut."""
    import numpy as np
    from sklearn.ensemble import IsolationForest

    fit = fit_frame
    if len(fit) > MAX_CALIBRATION_ROWS:
        fit = fit.sample(n=MAX_CALIBRATION_ROWS, random_state=seed)
    fill = np.array(
        [encoder.median[f] if num else -1.0 for f, num in zip(features, encoder.numeric, strict=True)]
    )

    def impute(m: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(m), fill[None, :], m)

    x_fit = impute(encoder.transform(fit))
    forest = IsolationForest(n_estimators=100, max_samples=min(256, len(x_fit)), random_state=seed)
    forest.fit(x_fit)
    fit_score = -forest.score_samples(x_fit)
    score = -forest.score_samples(impute(x))

    def cut_of(values: np.ndarray) -> float:
        q = float(np.quantile(values, OOD_QUANTILE))
        return q + OOD_MARGIN * (q - float(np.median(values)))

    overall = cut_of(fit_score)
    cuts: dict[str, float] = {}
    cut = np.full(len(df), overall)
    fit_labels = fit[target].astype(str).where(fit[target].notna()).to_numpy()
    labels = df[target].astype(str).where(df[target].notna()).to_numpy()
    for value in sorted({str(v) for v in fit_labels if isinstance(v, str)}):
        own = fit_score[fit_labels == value]
        # A class with few rows cannot have its own tail: it gets the overall cut or its maximum.
        c = cut_of(own) if len(own) >= 200 else max(overall, float(own.max()))
        cuts[value] = c
        cut[labels == value] = c
    forest_mask = score > cut

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
            with np.errstate(invalid="ignore", divide="ignore"):
                ref_values, values = np.log1p(ref_values), np.log1p(values)
        finite = ref_values[np.isfinite(ref_values)]
        median = float(np.median(finite))
        mad = float(np.median(np.abs(finite - median)))
        with np.errstate(invalid="ignore"):
            if mad == 0:  # a flag or nearly constant column: only infinities count
                hit = np.isinf(values)
            else:
                z = _MAD_TO_Z * np.abs(values - median) / mad
                hit = np.where(np.isnan(z), False, z > outlier_threshold)
        hit |= negative
        if hit.any():
            extreme_cols.append(name)
        extreme |= hit
    detail = {
        "method": "isolation forest (100 trees) + robust z-score of each numeric feature",
        "fitted_on": fitted_on,
        "threshold": f"per class: the {OOD_QUANTILE:g} quantile of the fitted data's own scores plus "
        f"{OOD_MARGIN:g} x its distance from their median",
        "cut": float(overall),
        "class_cuts": cuts,
        "forest_suspects": int(forest_mask.sum()),
        "extreme_value_suspects": int(extreme.sum()),
        "extreme_value_columns": extreme_cols,
        "outlier_threshold": float(outlier_threshold),
        "score_quantiles": _quantiles(score),
        "reference_score_quantiles": _quantiles(fit_score),
    }
    del labelled
    return forest_mask | extreme, detail, score, cut


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
    df: pd.DataFrame, group: np.ndarray, target: str, labelled: np.ndarray, label_model: Any
) -> tuple[np.ndarray, dict[str, Any]]:
    """Copies (exact or near) whose label disagrees with their group's most plausible label."""
    import numpy as np
    import pandas as pd

    mask = np.zeros(len(df), dtype=bool)
    labels = df[target].astype(str).where(df[target].notna()).to_numpy()
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
        detail["resolved_by"] = "out-of-fold model: copies whose label is not the group's most plausible"
    else:
        mask[in_conflict] = True  # cannot tell which copy is genuine: hold them all back
        detail["resolved_by"] = f"every copy (label model {lm.status})"
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
            grid = np.concatenate([a, b])
            d = float(
                np.max(
                    np.abs(
                        np.searchsorted(a, grid, "right") / len(a)
                        - np.searchsorted(b, grid, "right") / len(b)
                    )
                )
            )
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
    row_in = pd.util.hash_pandas_object(df, index=False).to_numpy()
    row_acc = pd.util.hash_pandas_object(accepted, index=False).to_numpy()
    row_q = pd.util.hash_pandas_object(quarantined[list(df.columns)], index=False).to_numpy()
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


def _first_value(values: np.ndarray, codes: np.ndarray, k: int) -> Any:
    import numpy as np

    return _plain(values[int(np.flatnonzero(codes == k)[0])])


def _plain(value: Any) -> Any:
    """A JSON-friendly Python scalar (numpy scalars unwrapped)."""
    return value.item() if hasattr(value, "item") else value
