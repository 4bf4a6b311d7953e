"""What the monitor needs to estimate a model's performance without labels, fitted at training time
on the validation rows and stored with the model (``model_config.json``'s ``calibration``).

Classification (binary, multiclass): **score calibration** for confidence-based performance
estimation (CBPE, :mod:`airflow_mlops.drift.estimation`). Three calibrators compete for the
positive class of a binary model, and for all the classes of a multiclass one together
(one-vs-rest, then each row renormalised to sum to 1):

- ``identity``: the model's own probability (it is calibrated already);
- ``platt``: ``sigmoid(a * logit(p) + b)``, two coefficients fitted by Newton's method;
- ``isotonic``: the pool-adjacent-violators fit, stored as at most :data:`MAX_KNOTS` blocks
  (adjacent blocks merged by weight, which keeps it monotone), interpolated linearly between
  blocks.

The winner, by :data:`FOLDS`-fold cross-fitting on the validation rows (binary: the lowest
held-out log loss; multiclass: the smallest held-out error of the expected confusion matrix,
which is what CBPE reads, see :func:`_multiclass_method`), is refitted on all of them and kept.

Regression: **direct loss estimation** (DLE): two ridge regressions fitted on the validation rows predict each row's absolute and squared error from the
prediction and the numeric features (each standardised, and its distance from the centre), so the
monitor can estimate MAE and RMSE where the errors grow (see :func:`fit_error_model` for what it
cannot see).

Everything stored is plain JSON numbers (breakpoints, coefficients), never a pickle; reading one
back checks its shape (:func:`check_calibration`). numpy only, imported inside the functions: the
trainer pod and the monitor share this module.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import ArtifactError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

FORMAT_VERSION = 1
METHODS = ("identity", "platt", "isotonic")
#: Folds of the cross-fitting that picks a class's calibrator.
FOLDS = 5
#: Fewer validation rows (or fewer than MIN_CLASS_ROWS of a class or of the rest) keeps ``identity``.
MIN_ROWS = 50
MIN_CLASS_ROWS = 5
#: Most blocks an isotonic calibrator keeps (its JSON stays small; it travels through XCom).
MAX_KNOTS = 128
#: Probabilities are kept in [EPS, 1 - EPS] (log loss and logits stay finite).
EPS = 1e-6
#: The most numeric features the error model of a regression reads (the first ones, in order).
MAX_ERROR_FEATURES = 50
RIDGE = 1.0
#: The metrics the monitor estimates from a stored calibration, per task (the spec's
#: ``monitoring.estimation.metric`` is one of these; the names are :mod:`airflow_mlops.metrics`').
ESTIMABLE_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "accuracy", "precision", "recall", "f1", "balanced_accuracy"),
    "multiclass": ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc_ovr"),
    "regression": ("mae", "rmse"),
}


# --- classification: calibrated probabilities --------------------------------------------------


def fit_calibration(
    task: str, y: Any, output: Any, classes: Sequence[str], *, seed: int = 0
) -> dict[str, Any]:
    """Fit the calibration of a classifier's probabilities on validation rows.

    :param task: ``binary`` or ``multiclass``.
    :param y: the validation target as the trainer encodes it (0/1; class indices into ``classes``).
    :param output: the model's output on the same rows (binary: positive-class probability, 1-D;
        multiclass: ``(rows, len(classes))`` probabilities in the order of ``classes``).
    :param classes: the label of each output column (binary: the positive label alone).
    :returns: the JSON-safe calibration (``{"format_version", "kind": "cbpe", "task", "classes",
        "rows", "calibrators": [{"method", ...coefficients, "log_loss": {method: held-out}}]}``).
    """
    import numpy as np

    if task not in ("binary", "multiclass"):
        raise ValueError(f"calibration applies to binary and multiclass models, not {task}")
    y = np.asarray(y).astype(np.int64)
    out = np.asarray(output, dtype=np.float64)
    columns = out.reshape(-1, 1) if task == "binary" else out
    if columns.shape != (len(y), len(classes)):
        raise ValueError(
            f"output of shape {out.shape} does not fit {len(y)} rows and classes {list(classes)}"
        )
    calibration: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": "cbpe",
        "task": task,
        "classes": [str(c) for c in classes],
        "rows": len(y),
    }
    if task == "binary":
        calibration["calibrators"] = [_fit_one((y == 1).astype(np.float64), columns[:, 0], seed)]
        return calibration
    method, scores = _multiclass_method(y, out, seed)
    calibration["calibrators"] = [
        _fit_method(method, (y == k).astype(np.float64), out[:, k]) for k in range(len(classes))
    ]
    calibration["selection"] = scores
    return calibration


def _multiclass_method(y: np.ndarray, out: np.ndarray, seed: int) -> tuple[str, dict[str, Any]]:
    """The one method for every class of a multiclass model, and the held-out scores it won by.

    What CBPE reads is the expected confusion matrix of the model's own predictions, so the
    methods are compared on that: cross-fitted on the validation rows, one-vs-rest, renormalised,
    the L1 distance between the expected (sum of calibrated probabilities per predicted class)
    and the realised confusion matrix, over the rows. (Per-class held-out log loss was the first
    rule: it kept the model's own probabilities, which overstated accuracy by 0.010 to 0.017 on
    the benchmark's windows, where one-vs-rest isotonic came within 0.01; see benchmarks/RESULTS.md.)
    """
    import numpy as np

    n, k = out.shape
    if n < MIN_ROWS or np.bincount(y, minlength=k).min() < MIN_CLASS_ROWS:
        return "identity", {"note": f"too few validation rows to calibrate ({n} rows)"}
    fold = np.random.default_rng(seed).permutation(n) % FOLDS
    predicted = np.argmax(out, axis=1)
    realised = np.zeros((k, k))
    np.add.at(realised, (predicted, y), 1.0)
    errors = {}
    for method in METHODS:
        proba = np.empty_like(out)
        for f in range(FOLDS):
            test, train = fold == f, fold != f
            fitted = [
                _fit_method(method, (y[train] == j).astype(np.float64), out[train, j]) for j in range(k)
            ]
            proba[test] = _ovr(fitted, out[test])
        expected = np.zeros((k, k))
        np.add.at(expected, predicted, proba)
        errors[method] = round(float(np.abs(expected - realised).sum() / n), 6)
    best = min(METHODS, key=lambda m: (errors[m], METHODS.index(m)))
    return best, {"by": "held-out confusion-matrix error", "errors": errors}


def apply_calibration(
    calibration: Mapping[str, Any], output: Any, classes: Sequence[str] | None = None
) -> np.ndarray:
    """Calibrated probabilities of ``output`` (the model's, shaped as for :func:`fit_calibration`).

    :param classes: multiclass: the label of each column of ``output`` (default: the calibration's
        own order); every column needs its class's calibrator.
    """
    import numpy as np

    check_calibration(calibration)
    out = np.asarray(output, dtype=np.float64)
    if calibration["task"] == "binary":
        return _apply_one(calibration["calibrators"][0], out.reshape(-1))
    order = list(calibration["classes"])
    wanted = [str(c) for c in (classes if classes is not None else order)]
    missing = [c for c in wanted if c not in order]
    if missing or out.ndim != 2 or out.shape[1] != len(wanted):
        raise ArtifactError(
            f"the calibration covers classes {order[:10]}; the output has shape {out.shape} for classes "
            f"{wanted[:10]} (missing: {missing[:10]})"
        )
    return _ovr([calibration["calibrators"][order.index(c)] for c in wanted], out)


def _ovr(calibrators: Sequence[Mapping[str, Any]], out: np.ndarray) -> np.ndarray:
    """Each column through its class's calibrator, each row renormalised to sum to 1."""
    import numpy as np

    proba = np.column_stack([_apply_one(c, out[:, j]) for j, c in enumerate(calibrators)])
    return proba / proba.sum(axis=1, keepdims=True)


def _fit_one(hits: np.ndarray, score: np.ndarray, seed: int) -> dict[str, Any]:
    """The calibrator of one class (``hits``: 1 where the row is of it) by held-out log loss."""
    import numpy as np

    n, positives = len(hits), int(hits.sum())
    if n < MIN_ROWS or min(positives, n - positives) < MIN_CLASS_ROWS:
        return {
            "method": "identity",
            "note": f"too few validation rows to calibrate ({n} rows, {positives} of the class)",
        }
    rng = np.random.default_rng(seed)
    fold = rng.permutation(n) % FOLDS
    held_out = {m: np.empty(n) for m in METHODS}
    for f in range(FOLDS):
        test, train = fold == f, fold != f
        for method in METHODS:
            fitted = _fit_method(method, hits[train], score[train])
            held_out[method][test] = _apply_one(fitted, score[test])
    losses = {m: _log_loss(hits, p) for m, p in held_out.items()}
    best = min(METHODS, key=lambda m: (losses[m], METHODS.index(m)))
    return {**_fit_method(best, hits, score), "log_loss": {m: round(v, 6) for m, v in losses.items()}}


def _fit_method(method: str, hits: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    if method == "platt":
        a, b = _platt(hits, score)
        return {"method": "platt", "a": a, "b": b}
    if method == "isotonic":
        x, y = _isotonic(hits, score)
        return {"method": "isotonic", "x": x, "y": y}
    return {"method": "identity"}


def _apply_one(calibrator: Mapping[str, Any], score: np.ndarray) -> np.ndarray:
    import numpy as np

    method = calibrator["method"]
    if method == "platt":
        z = calibrator["a"] * _logit(score) + calibrator["b"]
        p = 0.5 * (1.0 + np.tanh(0.5 * z))
    elif method == "isotonic":
        p = np.interp(score, calibrator["x"], calibrator["y"])
    else:
        p = score
    return np.clip(p, EPS, 1 - EPS)


def _logit(p: np.ndarray) -> np.ndarray:
    import numpy as np

    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def _log_loss(hits: np.ndarray, p: np.ndarray) -> float:
    import numpy as np

    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(hits * np.log(p) + (1 - hits) * np.log1p(-p)))


def _platt(hits: np.ndarray, score: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """``a, b`` of ``sigmoid(a * logit(score) + b)`` by Newton's method with step halving (a tiny
    ridge towards the identity keeps a separable fold finite)."""
    import numpy as np

    z = _logit(score)
    design = np.column_stack([z, np.ones_like(z)])
    prior = np.array([1.0, 0.0])
    ridge = 1e-6 * len(z)

    def loss(w: np.ndarray) -> float:
        margin = design @ w
        # -log-likelihood, stable: log(1 + e^m) - y m
        return float(np.sum(np.logaddexp(0.0, margin) - hits * margin) + ridge / 2 * np.sum((w - prior) ** 2))

    w = prior.copy()
    current = loss(w)
    for _ in range(iterations):
        p = 0.5 * (1.0 + np.tanh(0.5 * (design @ w)))
        grad = design.T @ (p - hits) + ridge * (w - prior)
        hess = (design * (p * (1 - p))[:, None]).T @ design + ridge * np.eye(2)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-6:
            trial = w - scale * step
            value = loss(trial)
            if value <= current:
                break
            scale /= 2
        else:
            break
        w, improvement, current = trial, current - value, value
        if improvement < 1e-10 * max(1.0, abs(current)):
            break
    return float(w[0]), float(w[1])


def _isotonic(hits: np.ndarray, score: np.ndarray) -> tuple[list[float], list[float]]:
    """Knots ``(x, y)`` of the increasing pool-adjacent-violators fit, for ``np.interp``."""
    import numpy as np

    order = np.argsort(score, kind="mergesort")
    xs, ys = score[order], hits[order]
    uniq, start = np.unique(xs, return_index=True)
    weight = np.diff(np.append(start, len(xs))).astype(np.float64)
    total = np.add.reduceat(ys, start)
    # Blocks: [low x, high x, weight, sum of hits]; merge while the previous mean is not lower.
    lo: list[float] = []
    hi: list[float] = []
    wt: list[float] = []
    sm: list[float] = []
    for x, w, s in zip(uniq.tolist(), weight.tolist(), total.tolist(), strict=True):
        lo.append(x)
        hi.append(x)
        wt.append(w)
        sm.append(s)
        while len(wt) > 1 and sm[-2] / wt[-2] >= sm[-1] / wt[-1]:
            hi[-2] = hi[-1]
            wt[-2] += wt[-1]
            sm[-2] += sm[-1]
            del lo[-1], hi[-1], wt[-1], sm[-1]
    if len(wt) > MAX_KNOTS:  # merge neighbours into MAX_KNOTS groups of about equal weight
        cum = np.cumsum(wt)
        group = np.minimum((cum - np.asarray(wt) / 2) / cum[-1] * MAX_KNOTS, MAX_KNOTS - 1).astype(int)
        merged: dict[int, list[float]] = {}
        for g, a, b, w, s in zip(group.tolist(), lo, hi, wt, sm, strict=True):
            if g in merged:
                merged[g][1], merged[g][2], merged[g][3] = b, merged[g][2] + w, merged[g][3] + s
            else:
                merged[g] = [a, b, w, s]
        lo, hi, wt, sm = (list(v) for v in zip(*merged.values(), strict=True))
    knots_x: list[float] = []
    knots_y: list[float] = []
    for a, b, w, s in zip(lo, hi, wt, sm, strict=True):
        value = min(max(s / w, EPS), 1 - EPS)
        for x in (a, b) if b > a else (a,):
            knots_x.append(float(x))
            knots_y.append(float(value))
    return knots_x, knots_y


# --- regression: direct loss estimation ----------------------------------------------------------


def fit_error_model(y: Any, prediction: Any, frame: pd.DataFrame, features: Sequence[str]) -> dict[str, Any]:
    """Fit the direct-loss-estimation model of a regression on validation rows.

    Two ridge regressions (``alpha`` :data:`RIDGE` on standardised inputs) predict a row's
    absolute error and its squared error from the prediction and up to
    :data:`MAX_ERROR_FEATURES` numeric features, each as its standardised value and the absolute
    of it (so errors that grow away from the training data's centre are seen). Categorical
    features are not read, and an error that depends on the features in a non-linear way beyond
    that is seen only as far as a linear model of those inputs can: this is a small, auditable
    error model (JSON coefficients), not a second gradient-boosted model.

    :returns: the JSON-safe calibration (``kind: "dle"``), with the validation rows' MAE and RMSE.
    """
    import numpy as np

    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(prediction, dtype=np.float64)
    numeric = [
        str(c) for c in features if c in frame.columns and _is_numeric(frame[c]) and frame[c].notna().any()
    ][:MAX_ERROR_FEATURES]
    raw = _raw_inputs(pred, frame, numeric)
    center = np.nanmean(raw, axis=0)
    scale = np.nanstd(raw, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    design = _design(raw, center, scale)
    residual = y - pred
    models = {}
    for name, target in (("abs", np.abs(residual)), ("squared", residual**2)):
        coef, intercept = _ridge(design, target)
        models[name] = {"coef": [float(c) for c in coef], "intercept": float(intercept)}
    return {
        "format_version": FORMAT_VERSION,
        "kind": "dle",
        "task": "regression",
        "rows": len(y),
        "inputs": ["prediction", *numeric],
        "center": [float(c) for c in center],
        "scale": [float(s) for s in scale],
        "models": models,
        "validation": {
            "mae": float(np.mean(np.abs(residual))) if len(y) else None,
            "rmse": float(np.sqrt(np.mean(residual**2))) if len(y) else None,
        },
    }


def predict_errors(
    calibration: Mapping[str, Any], prediction: Any, frame: pd.DataFrame
) -> dict[str, np.ndarray]:
    """Each row's expected absolute and squared error (``{"abs": ..., "squared": ...}``, >= 0)."""
    import numpy as np

    check_calibration(calibration)
    numeric = list(calibration["inputs"][1:])
    missing = [c for c in numeric if c not in frame.columns]
    if missing:
        raise ArtifactError(f"the error model reads feature(s) {missing[:10]} the window does not have")
    raw = _raw_inputs(np.asarray(prediction, dtype=np.float64), frame, numeric)
    design = _design(raw, np.asarray(calibration["center"]), np.asarray(calibration["scale"]))
    out = {}
    for name, model in calibration["models"].items():
        out[name] = np.maximum(design @ np.asarray(model["coef"]) + model["intercept"], 0.0)
    return out


def _is_numeric(series: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _raw_inputs(pred: np.ndarray, frame: pd.DataFrame, numeric: Sequence[str]) -> np.ndarray:
    import numpy as np

    cols = [pred] + [frame[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in numeric]
    return np.column_stack(cols) if cols else np.zeros((len(pred), 0))


def _design(raw: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    import numpy as np

    z = np.nan_to_num((raw - center) / scale, nan=0.0, posinf=0.0, neginf=0.0)
    return np.column_stack([z, np.abs(z)])


def _ridge(design: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    import numpy as np

    mean_x = design.mean(axis=0)
    mean_t = float(target.mean())
    xc = design - mean_x
    gram = xc.T @ xc + RIDGE * np.eye(design.shape[1])
    coef = np.linalg.solve(gram, xc.T @ (target - mean_t))
    return coef, mean_t - float(mean_x @ coef)


# --- reading one back ---------------------------------------------------------------------------


def check_calibration(calibration: Any) -> dict[str, Any]:
    """``calibration`` if it is a well-formed stored calibration.

    :raises ArtifactError: naming what is wrong (a model directory written by hand or damaged).
    """
    problem = _problem(calibration)
    if problem:
        raise ArtifactError(f"the model's stored calibration is malformed: {problem}; retrain the model")
    return dict(calibration)


def _problem(c: Any) -> str | None:
    if not isinstance(c, Mapping):
        return f"not a mapping ({type(c).__name__})"
    if c.get("format_version") != FORMAT_VERSION:
        return f"format_version {c.get('format_version')!r}, expected {FORMAT_VERSION}"
    kind = c.get("kind")
    if kind == "dle":
        inputs, models = c.get("inputs"), c.get("models")
        width = 2 * len(inputs) if isinstance(inputs, list) else -1
        if not isinstance(models, Mapping) or set(models) != {"abs", "squared"}:
            return "a dle calibration needs models abs and squared"
        for key in ("center", "scale"):
            if not _numbers(c.get(key), len(inputs) if isinstance(inputs, list) else -1):
                return f"{key} must be {width // 2} numbers"
        for name, model in models.items():
            if not isinstance(model, Mapping) or not _numbers(model.get("coef"), width):
                return f"model {name} needs {width} coefficients"
            if not _numbers([model.get("intercept")], 1):
                return f"model {name} needs a number intercept"
        return None
    if kind != "cbpe" or c.get("task") not in ("binary", "multiclass"):
        return f"kind {kind!r} / task {c.get('task')!r} is not cbpe for binary or multiclass"
    classes, calibrators = c.get("classes"), c.get("calibrators")
    if not isinstance(classes, list) or not isinstance(calibrators, list) or len(classes) != len(calibrators):
        return "classes and calibrators must be lists of the same length"
    if c["task"] == "binary" and len(calibrators) != 1:
        return "a binary calibration has one calibrator"
    for i, cal in enumerate(calibrators):
        method = cal.get("method") if isinstance(cal, Mapping) else None
        if method not in METHODS:
            return f"calibrator {i}: method {method!r} is not one of {', '.join(METHODS)}"
        if method == "platt" and not _numbers([cal.get("a"), cal.get("b")], 2):
            return f"calibrator {i}: platt needs numbers a and b"
        if method == "isotonic":
            x, y = cal.get("x"), cal.get("y")
            if not (_numbers(x, -1) and _numbers(y, len(x)) and len(x) >= 1):
                return f"calibrator {i}: isotonic needs knots x and y of one length"
            if any(b < a for a, b in itertools.pairwise(x)) or any(b < a for a, b in itertools.pairwise(y)):
                return f"calibrator {i}: isotonic knots must not decrease"
    return None


def _numbers(values: Any, length: int) -> bool:
    if not isinstance(values, list) or (length >= 0 and len(values) != length):
        return False
    return all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)
