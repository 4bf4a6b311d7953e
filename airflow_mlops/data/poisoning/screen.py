""":func:`screen_data`: the checks run in order on one batch, and its split into accepted and
quarantined rows (see the package docstring for what each check does)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.data import screen_defaults as defaults
from airflow_mlops.data.poisoning.dataset_checks import (
    class_balance,
    class_shares,
    feature_shift,
    target_shift,
)
from airflow_mlops.data.poisoning.duplicates import (
    conflicting_duplicate_targets,
    conflicting_duplicates,
    duplicate_groups,
    target_scale,
)
from airflow_mlops.data.poisoning.features import Encoder, finite_values, float_values, require_columns
from airflow_mlops.data.poisoning.label_issues import LabelModel
from airflow_mlops.data.poisoning.out_of_distribution import out_of_distribution
from airflow_mlops.data.poisoning.residuals import ResidualModel
from airflow_mlops.data.poisoning.result import (
    REASONS_COLUMN,
    ROW_INDEX_COLUMN,
    SCORES_COLUMN,
    ScreenResult,
    allowed_suspects,
    check_accounting,
)
from airflow_mlops.data.poisoning.stats import MAX_CALIBRATION_ROWS, plain, quantiles
from airflow_mlops.data.poisoning.targets import (
    check_reference,
    class_counts,
    class_texts,
    label_view,
    representatives,
    require_binary_target,
    screen_task,
)
from airflow_mlops.exceptions import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger("airflow_mlops.data.poisoning")

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

REASON_DUPLICATE = "conflicting_duplicate"
REASON_LABEL_ISSUE = "label_issue"
REASON_OOD = "out_of_distribution"
REASON_MISSING_LABEL = "missing_label"
REASON_NON_FINITE_TARGET = "non_finite_target"


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


def screen_data(
    df: pd.DataFrame,
    *,
    target: str,
    features: list[str],
    checks: Sequence[str],
    max_suspect_fraction: float,
    neighbours: int = defaults.NEIGHBOURS,
    outlier_threshold: float = defaults.OUTLIER_THRESHOLD,
    max_class_shift: float = defaults.MAX_CLASS_SHIFT,
    max_feature_shift: float = defaults.MAX_FEATURE_SHIFT,
    reference: pd.DataFrame | None = None,
    positive_label: Any = 1,
    folds: int = defaults.FOLDS,
    max_fit_rows: int = defaults.MAX_FIT_ROWS,
    seed: int = defaults.SEED,
    task: str | None = None,
) -> ScreenResult:
    """Screen ``df`` for poisoned rows and split it into accepted and quarantined rows.

    :param df: the training batch.
    :param target: the label column.
    :param features: the feature columns the checks look at.
    :param checks: which checks run, a subset of :data:`CHECKS` or their old names
        (:data:`CHECK_ALIASES`); see the package docstring.
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
    require_columns(df, [target, *features])
    task = screen_task(task, df, reference, target, positive_label)
    if task == "binary" and positive_label is not None:
        require_binary_target(df, reference, target, positive_label)
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
        check_reference(df, reference, target, features)

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
        y_num = float_values(df[target])
        labelled = np.isfinite(y_num)
        check_counts[REASON_NON_FINITE_TARGET] = mark(present & ~labelled, REASON_NON_FINITE_TARGET)
        if reference is not None:
            ref_y_num = finite_values(reference[target])
    # The labels as the classification checks read them: as given (binary, as it always was), or
    # their canonical class texts (multiclass: 1, 1.0 and "1" are one class).
    view = label_view(df[target], task)
    texts = class_texts(view, task)
    fit_frame = reference if reference is not None else df
    encoder = Encoder.fit(fit_frame, list(features))
    x = encoder.transform(df)
    # Exact and near duplicates share a group: they always fall in the same fold, so no copy
    # is judged by a model that was trained on its twin.
    groups = duplicate_groups(x, encoder)
    model: LabelModel | None = None
    residuals: ResidualModel | None = None

    def reference_sample() -> pd.DataFrame | None:
        if reference is None:
            return None
        ref = reference[reference[target].notna()]
        if task == "regression":
            ref = ref[np.isfinite(float_values(ref[target]))]
        if len(ref) > MAX_CALIBRATION_ROWS:
            ref = ref.sample(n=MAX_CALIBRATION_ROWS, random_state=seed)
        return ref

    def label_model() -> LabelModel:
        nonlocal model
        if model is None:
            ref_x = ref_labels = None
            # With a reference, the label models learn from it (the trusted rows) for the
            # duplicates check too.
            ref = reference_sample()
            if ref is not None:
                ref_x, ref_labels = encoder.transform(ref), label_view(ref[target], task).to_numpy()
            model = LabelModel.fit(
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

    def residual_model() -> ResidualModel:
        nonlocal residuals
        if residuals is None:
            assert y_num is not None
            ref = reference_sample()
            residuals = ResidualModel.fit(
                x,
                y_num,
                labelled,
                encoder,
                groups,
                folds=folds,
                max_fit_rows=max_fit_rows,
                seed=seed,
                reference_x=None if ref is None else encoder.transform(ref),
                reference_y=None if ref is None else float_values(ref[target]),
            )
        return residuals

    ood: tuple[np.ndarray, dict[str, Any], np.ndarray, np.ndarray] | None = None

    def out_of_distribution_result() -> tuple[np.ndarray, dict[str, Any], np.ndarray, np.ndarray]:
        nonlocal ood
        if ood is None:
            ood = out_of_distribution(
                df,
                x,
                fit_frame,
                encoder,
                target,
                features,
                outlier_threshold,
                seed,
                class_of=lambda labels: class_texts(label_view(labels, task), task),
                fitted_on="reference" if reference is not None else "batch",
            )
        return ood

    copies: tuple[np.ndarray, dict[str, Any]] | None = None

    def duplicates_result() -> tuple[np.ndarray, dict[str, Any]]:
        nonlocal copies
        if copies is None:
            if task == "regression":
                assert y_num is not None
                spread = target_scale(ref_y_num if ref_y_num is not None else y_num[labelled])
                copies = conflicting_duplicate_targets(y_num, groups, labelled, spread, residual_model)
            else:
                copies = conflicting_duplicates(texts, groups, labelled, label_model)
        return copies

    def quarantined_by_others() -> np.ndarray:
        """The rows the out-of-distribution and duplicates checks (those asked for) quarantine:
        their labels are no evidence of a label move, so label_issues neither counts nor takes
        them (a far row's label is often random, a conflicting copy is one move already)."""
        out = np.zeros(n, dtype=bool)
        if "out_of_distribution" in checks:
            out |= out_of_distribution_result()[0]
        if "duplicates" in checks:
            out |= duplicates_result()[0]
        return out

    shown_label = representatives(df[target], reference, target) if task == "multiclass" else {}
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
            mask, detail = lm.issues(exclude=quarantined_by_others())
            count = mark(mask, REASON_LABEL_ISSUE)
            for i in np.flatnonzero(mask):
                suggested = plain(lm.classes[lm.suggested[i]])
                row_scores[i]["label_issue"] = round(float(lm.score[i]), 4)
                row_scores[i]["suggested_label"] = shown_label.get(suggested, suggested)
            scores["label_issues"] = lm.score
            scores["label_issues_cut"] = lm.row_cut(detail)
            check_details[check] = {"status": "ran", "suspects": count, **detail}
        elif check == "out_of_distribution":
            mask, detail, score, cut = out_of_distribution_result()
            count = mark(mask, REASON_OOD)
            for i in np.flatnonzero(mask):
                row_scores[i]["out_of_distribution"] = round(float(score[i]), 4)
            scores["out_of_distribution"] = score
            scores["out_of_distribution_cut"] = cut
            check_details[check] = {"status": "ran", "suspects": count, **detail}
        elif check == "duplicates":
            mask, detail = duplicates_result()
            count = mark(mask, REASON_DUPLICATE)
            check_details[check] = {"status": "ran", "suspects": count, **detail}
        elif check == "class_balance":
            if reference is None:
                detail, finding = {"status": "skipped: no reference"}, None
            elif task == "regression":
                assert y_num is not None and ref_y_num is not None
                detail, finding = target_shift(y_num[labelled], ref_y_num, max_feature_shift)
            elif task == "binary" and positive_label is not None:
                detail, finding = class_balance(df, target, reference, positive_label, max_class_shift)
            else:
                ref_texts = class_texts(label_view(reference[target], task), task)
                detail, finding = class_shares(texts, ref_texts, max_class_shift)
            check_details[check] = detail
            if finding:
                findings.append(finding)
            continue
        else:  # feature_shift
            detail, shift_findings = feature_shift(df, reference, features, max_feature_shift)
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
    hashes = check_accounting(df, accepted, quarantined, accepted_pos, quarantined_pos)

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
            "quantiles": quantiles(y_num[labelled]),
            "accepted_quantiles": quantiles(y_num[labelled & ~suspect]),
            **({"reference_quantiles": quantiles(ref_y_num)} if ref_y_num is not None else {}),
        }
    else:
        summary["class_counts"] = class_counts(texts, suspect)
    result = ScreenResult(
        accepted=accepted, quarantined=quarantined, summary=summary, passed=bool(passed), scores=scores
    )
    log.info("%s", result.message())
    return result
