"""The one positive-label rule, shared by training, the poisoning screen and evaluation.

A label matches ``positive_label`` when both name the same value once read as data: ``1``,
``1.0``, ``"1"``, ``" 1 "``, ``True`` and ``"true"`` are all the same class (CSV files turn
integers into text and booleans into ``"True"``; the spec's YAML may quote them), while ``"yes"``
matches only ``"yes"`` (case-sensitive). The target must be binary: missing labels, more than two
classes, or a positive label that never occurs are errors that name the column and its values,
never a silent all-negative target.

Light on purpose: no Airflow, no MLflow; numpy and pandas are imported inside the function. The
trainer (torch + numpy + pandas only) imports it too.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_SHOWN = 10


def label_key(value: Any) -> str:
    """The canonical text of a label: what two labels must share to be the same class.

    Booleans read as ``1``/``0``; integral numbers (``1``, ``1.0``, ``"1"``, ``"1.0"``) as the
    integer's text; other numbers by ``repr``; text is stripped, ``"true"``/``"false"`` (any
    case) read as booleans, numeric text as its number, anything else kept as written.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("true", "false"):
            return "1" if text.lower() == "true" else "0"
        try:
            number = float(text)
        except ValueError:
            return text
        return _number_key(number) if math.isfinite(number) else text
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy.bool_ too
        return "1" if value else "0"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return _number_key(float(value))
    return str(value)


def _number_key(number: float) -> str:
    return str(int(number)) if number.is_integer() else repr(number)


def positive_mask(
    labels: pd.Series | Any, positive_label: Any, *, column: str = "target", require_both: bool = True
) -> np.ndarray:
    """A boolean array: True where a label is ``positive_label`` (see :func:`label_key`).

    :param labels: the target column (a pandas Series or anything 1-D).
    :param positive_label: the spec's ``data.positive_label``.
    :param column: the column's name, for messages.
    :param require_both: when True (training, evaluation) the labels must hold the positive
        class *and* a negative class; when False (one batch of the poisoning screen) only the
        positive label must be known -- a batch may lack one class, that is what the screen
        measures; pass the batch together with its reference so that the check is meaningful.
    :raises DataError: missing labels; more than two classes; ``positive_label`` is not one of
        the labels; with ``require_both``, a single class only.
    """
    import numpy as np
    import pandas as pd

    if isinstance(labels, pd.Series):
        series = labels
    else:
        array = np.asarray(labels, dtype=object)
        if array.ndim != 1:
            raise DataError(f"target column {column!r} must be 1-D, not of shape {array.shape}")
        series = pd.Series(array)
    missing = int(series.isna().sum())
    if missing:
        raise DataError(
            f"target column {column!r} has {missing} missing value(s) of {len(series)}; "
            "label or drop those rows (a missing label is neither positive nor negative)"
        )
    if positive_label is None or (isinstance(positive_label, float) and math.isnan(positive_label)):
        raise DataError(f"positive_label for {column!r} is {positive_label!r}; set data.positive_label")
    wanted = label_key(positive_label)
    values = list(pd.unique(series))
    keys = {value: label_key(value) for value in values}
    classes = sorted(set(keys.values()))
    shown = ", ".join(repr(v) for v in values[:_SHOWN]) + (" ..." if len(values) > _SHOWN else "")
    if len(classes) > 2:
        raise DataError(
            f"target column {column!r} has {len(classes)} classes ({shown}); the pipeline is binary: "
            f"map the target to {positive_label!r} and one other class before it reaches the pipeline"
        )
    if require_both and len(classes) < 2:
        raise DataError(
            f"target column {column!r} holds a single class only ({shown or 'no rows'}); "
            f"it needs both positive ({positive_label!r}) and negative rows"
        )
    if wanted not in classes:
        if not classes:
            return np.zeros(0, dtype=bool)
        raise DataError(
            f"positive_label {positive_label!r} does not occur in target column {column!r} "
            f"(its values: {shown}); set data.positive_label to one of them"
        )
    positives = [value for value, key in keys.items() if key == wanted]
    return np.asarray(series.isin(positives), dtype=bool)
