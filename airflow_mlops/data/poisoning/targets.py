"""The target as the screen reads it: the task, the label views and class texts, and the checks
of the target and the reference that run before any screen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_mlops.data.poisoning.features import float_values, is_numeric
from airflow_mlops.data.poisoning.stats import plain
from airflow_mlops.exceptions import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def screen_task(
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

    from airflow_mlops.labels import label_key
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
        return "binary"  # its two classes are require_binary_target's to check
    if declared is not None:
        return resolve_task(declared, labels, column=target)
    keys: set[str] = set()
    for value in pd.unique(labels):
        keys.add(label_key(value))
        if len(keys) > 1:
            return infer_task(labels, column=target)
    return "binary" if positive_label is not None else "multiclass"


def label_view(labels: pd.Series, task: str) -> pd.Series:
    """The target as the label model reads it: as given (binary: the screen always read it so),
    canonical class texts (multiclass, :func:`~airflow_mlops.labels.label_key`: ``1``,
    ``1.0`` and ``"1"`` are one class), float64 (regression). Missing stays missing."""
    from airflow_mlops.labels import label_key

    if task == "multiclass":
        return labels.astype(object).map(label_key, na_action="ignore")
    if task == "regression":
        import pandas as pd

        return pd.Series(float_values(labels), index=labels.index)
    return labels


def class_texts(view: pd.Series, task: str) -> np.ndarray:
    """Each row's class as text (None/NaN where missing); all None for a regression (no classes)."""
    import numpy as np

    if task == "regression":
        return np.full(len(view), None, dtype=object)
    return view.astype(str).where(view.notna()).to_numpy()


def representatives(labels: pd.Series, reference: pd.DataFrame | None, target: str) -> dict[str, Any]:
    """Each canonical class text's first label as written (batch, then reference)."""
    import pandas as pd

    from airflow_mlops.labels import label_key

    out: dict[str, Any] = {}
    parts = [labels] + ([reference[target]] if reference is not None and target in reference.columns else [])
    for part in parts:
        for value in pd.unique(part.dropna()):
            out.setdefault(label_key(value), plain(value))
    return out


def class_counts(texts: np.ndarray, suspect: np.ndarray) -> dict[str, dict[str, int]]:
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


def require_binary_target(
    df: pd.DataFrame, reference: pd.DataFrame | None, target: str, positive_label: Any
) -> None:
    """A binary pipeline's target (the batch's, with the reference's) holds at most two classes.

    More is not poisoning -- no row is suspect, the data is for another task -- so it is a final
    :class:`DataError` before any check runs, never a finding or a quarantine.
    """
    import pandas as pd

    from airflow_mlops.labels import label_key

    labels = [df[target]]
    if reference is not None and target in reference.columns:
        labels.append(reference[target])
    values = list(pd.unique(pd.concat([s.dropna().astype(object) for s in labels], ignore_index=True)))
    classes = {label_key(v) for v in values}
    if len(classes) > 2:
        shown = ", ".join(repr(plain(v)) for v in values[:10]) + (" ..." if len(values) > 10 else "")
        where = "the batch and its reference hold" if len(labels) > 1 else "the batch holds"
        raise DataError(
            f"target column {target!r} has {len(classes)} classes ({shown}): {where} {len(classes)} "
            f"distinct labels, but the task is binary (positive_label {positive_label!r}); this is not "
            "a poisoning finding and no row was screened. Map the target to two classes before the "
            "pipeline, or point data.target at the binary label column"
        )


def check_reference(df: pd.DataFrame, reference: pd.DataFrame, target: str, features: list[str]) -> None:
    """The reference must have the batch's target and features, of the same kind."""
    missing = [c for c in [target, *features] if c not in reference.columns]
    if missing:
        raise DataError(
            f"the reference data lacks column(s) {missing} that the batch has; it has "
            f"{list(map(str, reference.columns))}: the reference must have the same columns as the batch"
        )
    differ = [f for f in features if is_numeric(df[f]) != is_numeric(reference[f])]
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
