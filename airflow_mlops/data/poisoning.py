"""Screens for poisoned or corrupt training rows.

:func:`screen_data` runs the configured checks and splits the input into *accepted* and
*quarantined* rows. Nothing is dropped silently (security invariant 5): every input row ends up in
exactly one of the two frames, the quarantine keeps each row's position in the input and the
reasons it was held back, and the function raises if that accounting ever fails to add up.

Checks (the names of ``poisoning.checks`` in the spec):

``duplicates``
    Rows with identical feature values but different labels. Every row of such a group is
    suspect (reason ``conflicting_duplicate``): which of them is the genuine one cannot be told.
``label_flips``
    A k-nearest-neighbour screen: a row whose label disagrees with at least 90 % of its ``k``
    nearest neighbours (so that its own class is a small minority around it) is suspect
    (reason ``label_flip``). Distances are computed on :func:`build_feature_matrix`.
``outliers``
    A robust z-score, ``0.6745 * (x - median) / MAD``, per numeric feature; a row with any
    feature above ``outlier_threshold`` is suspect (reason ``outlier``). Heavy right-tailed
    columns are compared on a log scale (see :func:`build_feature_matrix`), so the ordinary
    tail of e.g. transaction amounts is not flagged but absurd values are. Columns whose MAD
    is 0 (constant or almost constant, such as flags) are skipped.
``class_balance``
    A dataset-level check: the positive rate against the reference's. A relative change above
    ``max_class_shift`` is a *dataset finding*, which fails the screen without quarantining
    rows. Without a reference it is recorded as ``skipped: no reference``.

Rows without a label are always quarantined (reason ``missing_label``): they cannot be trained
on and the label-based checks cannot judge them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import DataError, PoisoningDetectedError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

CHECKS: tuple[str, ...] = ("duplicates", "label_flips", "outliers", "class_balance")
ROW_INDEX_COLUMN = "_row_index"
REASONS_COLUMN = "_reasons"

REASON_DUPLICATE = "conflicting_duplicate"
REASON_LABEL_FLIP = "label_flip"
REASON_OUTLIER = "outlier"
REASON_MISSING_LABEL = "missing_label"

# label_flips: a row is suspect when at least this share of its neighbours has another label.
FLIP_DISAGREEMENT = 0.9
# build_feature_matrix: categorical columns keep at most this many categories (the rest: "other").
MAX_CATEGORIES = 50
# A numeric column is log-compressed when all its values are >= 0 and its skewness is above this.
LOG_SKEW_THRESHOLD = 1.0
# 0.6745 is the 75th percentile of the standard normal: it makes the MAD comparable to a stdev.
_MAD_TO_Z = 0.6745


@dataclass(frozen=True, eq=False)
class ScreenResult:
    """The outcome of :func:`screen_data`.

    :ivar accepted: the rows that passed every check (original index and columns).
    :ivar quarantined: the suspect rows, original columns plus ``_row_index`` (position in the
        input) and ``_reasons`` (semicolon-joined reasons).
    :ivar summary: JSON-serialisable counts: ``rows_in``, ``rows_accepted``,
        ``rows_quarantined``, ``suspect_fraction``, ``max_suspect_fraction``, ``check_counts``
        (suspect rows per check), ``checks`` (status and details per check),
        ``dataset_findings`` and ``passed``.
    :ivar passed: the suspect fraction is at most ``max_suspect_fraction`` and there are no
        dataset findings.
    """

    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    summary: dict[str, Any]
    passed: bool

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
    reference: pd.DataFrame | None = None,
    positive_label: Any = 1,
) -> ScreenResult:
    """Screen ``df`` for poisoned rows and split it into accepted and quarantined rows.

    :param df: the training batch.
    :param target: the label column.
    :param features: the feature columns the checks look at.
    :param checks: which checks run, a subset of :data:`CHECKS` (see the module docstring).
    :param max_suspect_fraction: the screen fails when more than this share of rows is suspect.
    :param neighbours: ``k`` of the label-flip screen.
    :param outlier_threshold: robust z-score above which a value is an outlier.
    :param max_class_shift: largest allowed relative change of the positive rate.
    :param reference: the reference data set (with the target column), for ``class_balance``.
    :param positive_label: the label of the positive class, for ``class_balance``.
    :raises DataError: the target or a feature column is missing, or there are no rows.
    :raises ValueError: an unknown check or an out-of-range setting.
    """
    import numpy as np

    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise ValueError(f"unknown poisoning check(s) {unknown}: use any of {list(CHECKS)}")
    if not 0 <= max_suspect_fraction <= 1:
        raise ValueError(f"max_suspect_fraction must be in [0, 1], got {max_suspect_fraction}")
    if neighbours < 1:
        raise ValueError(f"neighbours must be >= 1, got {neighbours}")
    if not features:
        raise DataError("no feature columns to screen: give at least one feature")
    if target in features:
        raise DataError(f"the target column {target!r} must not be listed among the features")
    _require_columns(df, [target, *features])
    clash = [c for c in (ROW_INDEX_COLUMN, REASONS_COLUMN) if c in df.columns]
    if clash:
        raise DataError(f"the data already has column(s) {clash}, which the quarantine reserves: rename them")
    n = len(df)
    if n == 0:
        raise DataError("no rows to screen: the training batch is empty")

    reasons: list[list[str]] = [[] for _ in range(n)]
    check_counts: dict[str, int] = {}
    check_details: dict[str, dict[str, Any]] = {}
    findings: list[str] = []

    def mark(mask: np.ndarray, reason: str) -> int:
        hits = np.flatnonzero(mask)
        for i in hits:
            reasons[i].append(reason)
        return len(hits)

    labelled = df[target].notna().to_numpy()
    check_counts[REASON_MISSING_LABEL] = mark(~labelled, REASON_MISSING_LABEL)

    for check in dict.fromkeys(checks):  # each check once, in the order given
        if check == "duplicates":
            mask = _conflicting_duplicates(df, target, features)
            count = mark(mask, REASON_DUPLICATE)
            check_details[check] = {"status": "ran", "suspects": count}
        elif check == "label_flips":
            mask, status = _label_flips(df, target, features, neighbours, labelled)
            count = mark(mask, REASON_LABEL_FLIP)
            check_details[check] = {"status": status, "suspects": count, "neighbours": neighbours}
        elif check == "outliers":
            mask, columns = _outliers(df, features, outlier_threshold)
            count = mark(mask, REASON_OUTLIER)
            check_details[check] = {
                "status": "ran" if columns else "skipped: no numeric feature with spread",
                "suspects": count,
                "threshold": float(outlier_threshold),
                "columns": columns,
            }
        else:  # class_balance
            detail, finding = _class_balance(df, target, reference, positive_label, max_class_shift)
            check_details[check] = detail
            if finding:
                findings.append(finding)
            continue
        check_counts[check] = count

    suspect = np.fromiter((bool(r) for r in reasons), dtype=bool, count=n)
    accepted_pos = np.flatnonzero(~suspect)
    quarantined_pos = np.flatnonzero(suspect)
    accepted = df.iloc[accepted_pos].copy()
    quarantined = df.iloc[quarantined_pos].copy()
    quarantined[ROW_INDEX_COLUMN] = quarantined_pos.astype("int64")
    quarantined[REASONS_COLUMN] = [";".join(reasons[i]) for i in quarantined_pos]

    # Invariant 5: every input row is in exactly one of the two frames.
    covered = np.zeros(n, dtype=np.int64)
    np.add.at(covered, accepted_pos, 1)
    np.add.at(covered, quarantined_pos, 1)
    if len(accepted) + len(quarantined) != n or not (covered == 1).all():
        raise DataError(
            f"poisoning screen accounting error: {len(accepted)} accepted + {len(quarantined)} "
            f"quarantined != {n} rows in; refusing to continue (this is a bug, please report it)"
        )

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
        "passed": bool(passed),
    }
    result = ScreenResult(accepted=accepted, quarantined=quarantined, summary=summary, passed=bool(passed))
    log.info("%s", result.message())
    return result


# --- helpers --------------------------------------------------------------------------------


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


def _numeric_view(col: pd.Series) -> np.ndarray:
    """A numeric column as float64 (missing as NaN), log1p-compressed when heavy right-tailed."""
    import numpy as np
    import pandas as pd

    values = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
    finite = values[np.isfinite(values)]
    if len(finite) > 2 and finite.min() >= 0:
        std = finite.std()
        skew = float(((finite - finite.mean()) ** 3).mean() / std**3) if std > 0 else 0.0
        if skew > LOG_SKEW_THRESHOLD:
            with np.errstate(invalid="ignore"):
                values = np.log1p(values)  # keeps +inf as +inf, NaN as NaN
    return values


def _conflicting_duplicates(df: pd.DataFrame, target: str, features: list[str]) -> np.ndarray:
    """Rows whose exact feature values also occur with another label (all rows of the group)."""
    labels_per_group = df.groupby(features, dropna=False, sort=False)[target].transform("nunique")
    return (labels_per_group > 1).to_numpy()


def _label_flips(
    df: pd.DataFrame, target: str, features: list[str], k: int, labelled: np.ndarray
) -> tuple[np.ndarray, str]:
    """Rows whose label disagrees with >= 90 % of their k nearest (labelled) neighbours."""
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    n = len(df)
    mask = np.zeros(n, dtype=bool)
    rows = np.flatnonzero(labelled)
    if len(rows) <= k:
        return mask, f"skipped: {len(rows)} labelled rows, need more than neighbours={k}"
    sub = df.iloc[rows]
    x = build_feature_matrix(sub, features)
    y = sub[target].to_numpy()
    nn = NearestNeighbors(n_neighbors=k + 1).fit(x)
    _, idx = nn.kneighbors(x)
    # Drop each row itself from its neighbours. With exact duplicates the row may not come
    # first (or at all, among more than k+1 copies): then the last neighbour is dropped.
    own = idx == np.arange(len(rows))[:, None]
    own[~own.any(axis=1), -1] = True
    neigh = idx[~own].reshape(len(rows), k)
    disagreement = (y[neigh] != y[:, None]).mean(axis=1)
    # >= 90 % disagreement means the row's own class is a small minority in its neighbourhood.
    mask[rows[disagreement >= FLIP_DISAGREEMENT]] = True
    return mask, "ran"


def _outliers(df: pd.DataFrame, features: list[str], threshold: float) -> tuple[np.ndarray, list[str]]:
    """Rows with a robust z-score above ``threshold`` in any numeric feature; the columns used."""
    import numpy as np

    mask = np.zeros(len(df), dtype=bool)
    used: list[str] = []
    for name in features:
        col = df[name]
        if not _is_numeric(col) or col.dtype == bool:
            continue
        values = _numeric_view(col)
        finite = np.isfinite(values)
        if not finite.any():
            continue
        median = float(np.median(values[finite]))
        mad = float(np.median(np.abs(values[finite] - median)))
        if mad == 0:
            log.info("outliers: skipping column %s (MAD is 0: constant or almost constant)", name)
            continue
        used.append(name)
        with np.errstate(invalid="ignore"):
            z = _MAD_TO_Z * np.abs(values - median) / mad
        mask |= np.where(np.isnan(z), False, z > threshold)  # +-inf values count as outliers
    return mask, used


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
    import math

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
        "positive_label": positive_label.item() if hasattr(positive_label, "item") else positive_label,
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
