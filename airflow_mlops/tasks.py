"""The learning task of a pipeline -- binary, multiclass or regression -- and its targets.

One module says what a task is, how it is inferred from a target column when the spec does not
name it, and how a target column becomes the array the metrics read:

- ``binary``: a boolean array, True for the positive class (the one rule of
  :mod:`airflow_mlops.labels`);
- ``multiclass``: class indices into the model's ``classes`` (the canonical label texts of
  :func:`~airflow_mlops.labels.label_key`, sorted), so ``1``, ``"1"`` and ``1.0`` are one class;
- ``regression``: float64 values.

Light on purpose (the trainer, the DAG processor and the spec models import it): no Airflow, no
MLflow, no torch; numpy and pandas are imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.exceptions import DataError
from airflow_mlops.labels import label_key, positive_mask

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
CLASSIFICATION: frozenset[str] = frozenset({"binary", "multiclass"})

#: An integer-valued target with more distinct values than this is inferred as regression; set
#: ``task: multiclass`` in the spec for more classes.
MAX_INFERRED_CLASSES = 20
#: The most classes a classification target may have (a column with more is an identifier or a
#: number, not a class).
MAX_CLASSES = 1000
_SHOWN = 10
#: ``pandas.api.types.infer_dtype`` of an object column that holds numbers only.
_NUMBERS = frozenset({"integer", "floating", "mixed-integer-float", "decimal"})


def infer_task(series: pd.Series | Any, *, column: str = "target") -> Task:
    """The task a target column asks for, when the spec names none.

    Booleans and text are classes; numbers with a fractional part, or integers with more than
    :data:`MAX_INFERRED_CLASSES` distinct values, are a regression target; two classes are
    ``binary``, more are ``multiclass``.

    :raises DataError: the column is empty, has missing values, or holds one value only.
    """
    import numpy as np
    import pandas as pd

    series = _as_series(series)
    _no_missing(series, column)
    if len(series) == 0:
        raise DataError(f"target column {column!r} is empty: no task can be inferred from it")
    dtype = series.dtype
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if pd.api.types.is_object_dtype(dtype) and pd.api.types.infer_dtype(series, skipna=False) in _NUMBERS:
        numeric = True  # numbers held as objects (parquet decimals, a mixed int/float column)
    if numeric and not isinstance(dtype, pd.CategoricalDtype):
        values = series.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise DataError(f"target column {column!r} holds infinite values; fix or drop those rows")
        distinct = pd.unique(values)
        if not np.all(np.equal(np.mod(distinct, 1), 0)) or len(distinct) > MAX_INFERRED_CLASSES:
            return "regression"
        n_classes = len(distinct)
    else:
        n_classes = len({label_key(v) for v in pd.unique(series)})
    if n_classes < 2:
        raise DataError(
            f"target column {column!r} holds a single value ({series.iloc[0]!r}); a model needs at "
            "least two classes (or varied values for regression)"
        )
    return "binary" if n_classes == 2 else "multiclass"


def resolve_task(declared: str | None, series: pd.Series | Any, *, column: str = "target") -> Task:
    """The spec's ``task`` when it names one (checked against the data), else :func:`infer_task`.

    :raises DataError: the data cannot serve the declared task (text values for a regression, a
        single class, more classes than :data:`MAX_CLASSES`).
    """
    if declared is None:
        return infer_task(series, column=column)
    if declared not in TASKS:
        raise DataError(f"unknown task {declared!r}; one of {', '.join(TASKS)}")
    if declared == "regression":
        regression_target(series, column=column)
    elif declared == "multiclass":
        classes = class_labels(series, column=column)
        if len(classes) < 2:
            raise DataError(f"target column {column!r} holds a single class; multiclass needs two or more")
    return declared


def class_labels(series: pd.Series | Any, *, column: str = "target") -> list[str]:
    """The sorted canonical class labels (:func:`label_key`) of a classification target.

    Integer-like labels sort by value (``"2"`` before ``"10"``), others as text.

    :raises DataError: missing labels, or more than :data:`MAX_CLASSES` classes.
    """
    import pandas as pd

    series = _as_series(series)
    _no_missing(series, column)
    keys = {label_key(v) for v in pd.unique(series)}
    if len(keys) > MAX_CLASSES:
        raise DataError(
            f"target column {column!r} has {len(keys)} distinct values, more than the {MAX_CLASSES} "
            "classes a classifier takes; is it an identifier, or a regression target (`task: regression`)?"
        )
    return sort_classes(keys)


def sort_classes(keys: Any) -> list[str]:
    """Canonical label texts in a stable order: numbers by value first, then text."""

    def order(key: str) -> tuple[int, float, str]:
        try:
            number = float(key)
        except ValueError:
            return (1, 0.0, key)
        return (0, number, key) if math.isfinite(number) else (1, 0.0, key)

    return sorted({str(k) for k in keys}, key=order)


def class_indices(
    series: pd.Series | Any, classes: Sequence[str], *, column: str = "target", where: str = "the data"
) -> np.ndarray:
    """Each label's index into ``classes`` (canonical texts, as the model stores them).

    :raises DataError: missing labels, or a label the model was not trained on (named).
    """
    import numpy as np
    import pandas as pd

    series = _as_series(series)
    _no_missing(series, column)
    position = {key: i for i, key in enumerate(classes)}
    keys = {value: label_key(value) for value in pd.unique(series)}
    unknown = sorted({k for k in keys.values() if k not in position})
    if unknown:
        shown = ", ".join(repr(k) for k in unknown[:_SHOWN]) + (" ..." if len(unknown) > _SHOWN else "")
        raise DataError(
            f"target column {column!r} of {where} holds class(es) {shown} that the model was not "
            f"trained on (its classes: {', '.join(repr(c) for c in classes[:_SHOWN])}"
            f"{' ...' if len(classes) > _SHOWN else ''})"
        )
    mapping = {value: position[key] for value, key in keys.items()}
    return np.asarray(series.map(mapping).to_numpy(), dtype=np.int64)


def regression_target(series: pd.Series | Any, *, column: str = "target") -> np.ndarray:
    """A regression target as float64.

    :raises DataError: missing values, text that is not a number, infinities, or a constant target.
    """
    import numpy as np
    import pandas as pd

    series = _as_series(series)
    _no_missing(series, column)
    if pd.api.types.is_bool_dtype(series.dtype):
        raise DataError(f"target column {column!r} is boolean: that is a binary task, not a regression")
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna()
    if bad.any():
        first = series[bad]
        raise DataError(
            f"target column {column!r} holds {int(bad.sum())} non-numeric value(s) such as "
            f"{first.iloc[0]!r} (row {first.index[0]!r}); a regression target must be numbers"
        )
    out = values.to_numpy(dtype=np.float64)
    if not np.isfinite(out).all():
        raise DataError(f"target column {column!r} holds infinite values; fix or drop those rows")
    if len(out) > 1 and float(np.ptp(out)) == 0.0:
        raise DataError(f"target column {column!r} is constant ({out[0]:g}): there is nothing to learn")
    return out


def encode_target(
    task: str,
    series: pd.Series | Any,
    *,
    positive_label: Any = 1,
    classes: Sequence[str] | None = None,
    column: str = "target",
    where: str = "the data",
    require_both: bool = True,
) -> np.ndarray:
    """The target as the metrics read it: bool (binary), class indices (multiclass), float64."""
    if task == "binary":
        return positive_mask(series, positive_label, column=column, require_both=require_both)
    if task == "multiclass":
        if classes is None:
            raise DataError("multiclass targets need the model's classes to be encoded")
        return class_indices(series, classes, column=column, where=where)
    if task == "regression":
        return regression_target(series, column=column)
    raise DataError(f"unknown task {task!r}; one of {', '.join(TASKS)}")


def describe(task: str, classes: Sequence[str] | None = None, positive_label: Any = None) -> str:
    """One line for logs and reports, e.g. ``multiclass (3 classes: '0', '1', '2')``."""
    if task == "binary":
        return f"binary (positive class {positive_label!r})" if positive_label is not None else "binary"
    if task == "multiclass" and classes:
        shown = ", ".join(repr(c) for c in list(classes)[:_SHOWN])
        return f"multiclass ({len(classes)} classes: {shown}{' ...' if len(classes) > _SHOWN else ''})"
    return task


def _as_series(values: Any) -> pd.Series:
    import numpy as np
    import pandas as pd

    if isinstance(values, pd.Series):
        return values
    return pd.Series(np.asarray(values, dtype=object))


def _no_missing(series: pd.Series, column: str) -> None:
    missing = int(series.isna().sum())
    if missing:
        raise DataError(
            f"target column {column!r} has {missing} missing value(s) of {len(series)}; "
            "label or drop those rows"
        )
