"""The operating threshold: chosen on validation rows by the spec's rule, stored with the model.

A rule is a mapping (the spec's ``evaluation.threshold``, normalised)::

    {"rule": "fixed", "value": 0.5}           # this threshold, whatever the data says
    {"rule": "best_f1"}                       # the threshold with the highest F1 (the default)
    {"rule": "min_precision", "value": 0.8}   # the highest recall with precision >= 0.8
    {"rule": "min_recall", "value": 0.9}      # the highest precision with recall >= 0.9

:func:`choose_threshold` picks among the distinct validation scores (a row is predicted positive
where ``score >= threshold``, as :func:`airflow_mlops.registry.evaluation.compute_metrics` does);
ties go to the higher threshold (fewer alerts for the same quality). It sorts once and counts
true and false positives cumulatively, so it costs O(n log n).

Light on purpose: the standard library and numpy (imported inside the functions), so the trainer
pod (no pydantic, no Airflow, no MLflow) and the Airflow side share it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import DataError, TrainingRejectedError

if TYPE_CHECKING:
    import numpy as np

#: The rules, and whether each takes a ``value``.
RULES: dict[str, bool] = {"fixed": True, "best_f1": False, "min_precision": True, "min_recall": True}
DEFAULT_RULE: dict[str, Any] = {"rule": "best_f1"}


def check_rule(rule: Any, *, where: str = "threshold") -> dict[str, Any]:
    """Validate a rule mapping; returns it normalised (``value`` a float, absent for ``best_f1``).

    A bare number is the ``fixed`` rule. ``fixed`` takes a value in (0, 1), ``min_precision`` and
    ``min_recall`` in (0, 1].

    :raises TrainingRejectedError: naming ``where``, the bad part and the rules there are.
    """
    if _is_number(rule):
        rule = {"rule": "fixed", "value": rule}
    known = ", ".join(RULES)
    if not isinstance(rule, Mapping):
        raise TrainingRejectedError(
            f"{where} must be a number or a mapping {{rule: {known}, value: ...}}, got {rule!r}"
        )
    name = rule.get("rule")
    if name not in RULES:
        raise TrainingRejectedError(f"{where}: unknown rule {name!r}; the rules are {known}")
    extra = sorted(set(rule) - {"rule", "value"})
    if extra:
        raise TrainingRejectedError(
            f"{where}: unknown key(s) {', '.join(map(str, extra))}; a rule has rule and value"
        )
    value = rule.get("value")
    if not RULES[name]:
        if value is not None:
            raise TrainingRejectedError(f"{where}: rule {name} takes no value, got value {value!r}")
        return {"rule": name}
    if value is None or not _is_number(value):
        raise TrainingRejectedError(f"{where}: rule {name} needs a number value, got {value!r}")
    target = float(value)
    high_ok = name != "fixed"
    if not (0 < target < 1 or (high_ok and target == 1)):
        span = "(0, 1]" if high_ok else "(0, 1)"
        raise TrainingRejectedError(f"{where}: the value of rule {name} must lie in {span}, got {value!r}")
    return {"rule": name, "value": target}


def choose_threshold(y_true: Any, scores: Any, rule: Any) -> dict[str, Any]:
    """Choose the operating threshold on validation rows by ``rule`` (see the module docstring).

    :param y_true: validation labels, 1/True for the positive class, 0/False otherwise.
    :param scores: the model's positive-class probabilities for the same rows.
    :param rule: a rule mapping (or a number: the ``fixed`` rule).
    :returns: JSON-safe ``{"value": t, "rule": name, "target": value or None, "validation":
        {"rows", "positives", "precision", "recall", "f1"}}``; ``validation`` is None for the
        ``fixed`` rule when there are no validation rows (or no positives among them).
    :raises DataError: no validation rows, no positive among them (for a rule that learns from
        them), mismatched or non-finite inputs, labels other than 0/1.
    :raises TrainingRejectedError: an unknown or malformed rule, or no threshold that meets the
        rule's constraint (the message gives the best that was reachable).
    """
    checked = check_rule(rule)
    name, target = checked["rule"], checked.get("value")
    y, score = _arrays(y_true, scores)
    positives = int(y.sum())
    if name == "fixed":
        assert target is not None
        validation = _at(y, score, target) if len(y) and positives else None
        return _choice(target, name, target, validation)
    if len(y) == 0:
        raise DataError(
            f"rule {name} chooses the threshold on validation rows, but there are none; keep a "
            "validation split (validation_fraction > 0) or set a fixed threshold"
        )
    if positives == 0:
        raise DataError(
            f"rule {name} chooses the threshold on validation rows, but none of the {len(y)} is "
            "positive; train on more positive rows or set a fixed threshold"
        )

    import numpy as np

    thresholds, tp, fp = _curve(y, score)
    precision = tp / (tp + fp)
    recall = tp / positives
    f1 = 2 * tp / (tp + fp + positives)
    # Candidates run from the highest threshold down, so argmax (the first maximum) breaks ties
    # towards the higher threshold.
    if name == "best_f1":
        best = int(np.argmax(f1))
    else:
        assert target is not None
        constrained, measure, other = (
            (precision, recall, "recall") if name == "min_precision" else (recall, precision, "precision")
        )
        what = "precision" if name == "min_precision" else "recall"
        ok = constrained >= target - 1e-12
        if not ok.any():
            # The best reachable: the highest value of the constrained measure, and the best of
            # the other measure there.
            top = int(np.argmax(np.where(constrained == constrained.max(), measure, -1.0)))
            raise TrainingRejectedError(
                f"no threshold reaches {what} {target:g} on the {len(y)} validation rows "
                f"({positives} positive); the best is {constrained[top]:.4g} at {other} "
                f"{measure[top]:.4g} (threshold {thresholds[top]:.4g}): lower the rule's value, "
                "use rule best_f1, or train on more data"
            )
        best = int(np.argmax(np.where(ok, measure, -1.0)))
    validation = {
        "rows": len(y),
        "positives": positives,
        "precision": float(precision[best]),
        "recall": float(recall[best]),
        "f1": float(f1[best]),
    }
    return _choice(float(thresholds[best]), name, target, validation)


def _choice(
    value: float, rule: str, target: float | None, validation: dict[str, Any] | None
) -> dict[str, Any]:
    return {"value": float(value), "rule": rule, "target": target, "validation": validation}


def _curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores from high to low, with the true and false positives at each as threshold
    (the counts every ROC and precision-recall point of the project is made of)."""
    import numpy as np

    from airflow_mlops.metrics import threshold_counts

    tp, fp, thresholds = threshold_counts(y, score)
    return thresholds, tp.astype(np.float64), fp.astype(np.float64)


def _at(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, Any]:
    predicted = score >= threshold
    tp = int((predicted & (y == 1)).sum())
    fp = int((predicted & (y == 0)).sum())
    positives = int(y.sum())
    return {
        "rows": len(y),
        "positives": positives,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / positives,
        "f1": 2 * tp / (tp + fp + positives),
    }


def _arrays(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    y = np.asarray(y_true)
    score = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or score.ndim != 1:
        raise DataError(f"labels and scores must be 1-D, got shapes {y.shape} and {score.shape}")
    if len(y) != len(score):
        raise DataError(f"{len(y)} labels but {len(score)} scores; they must be the same length")
    if y.dtype == bool:
        y = y.astype(np.int64)
    if len(y) and (not np.issubdtype(y.dtype, np.number) or not np.isin(y, (0, 1)).all()):
        found = sorted({str(v) for v in np.unique(y)})[:10]
        raise DataError(f"labels must be 0/1 (or booleans), found values {', '.join(found)}")
    if not np.isfinite(score).all():
        raise DataError(f"{int((~np.isfinite(score)).sum())} score(s) are NaN or infinite")
    return y.astype(np.int64), score


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
