"""Estimator models for the trainer: XGBoost, LightGBM and any scikit-learn estimator by path.

``training.model`` in the spec names one of:

- ``xgboost`` / ``lightgbm``: the library's scikit-learn estimator for the task
  (``XGBClassifier``/``XGBRegressor``, ``LGBMClassifier``/``LGBMRegressor``), with
  ``training.params`` as its constructor arguments and early stopping on the validation rows
  (``training.early_stopping_patience`` rounds);
- the import path of an estimator class, e.g. ``sklearn.ensemble.HistGradientBoostingClassifier``
  or ``xgboost.XGBRegressor``: built with ``training.params``.

The trainer feeds every estimator the project's prepared matrix (numeric columns standardised,
categories one-hot encoded; tree models keep missing values as NaN and learn where they go) and
stores it in its flavor's safe format (:mod:`airflow_mlops.training.flavors`).
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_mlops.exceptions import TrainingError

SHORT_NAMES = {
    "xgboost": {"classification": "xgboost.XGBClassifier", "regression": "xgboost.XGBRegressor"},
    "lightgbm": {"classification": "lightgbm.LGBMClassifier", "regression": "lightgbm.LGBMRegressor"},
}
_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


@dataclass(frozen=True)
class EstimatorKind:
    path: str  # module.Class of the estimator built
    library: str  # xgboost | lightgbm | sklearn | other
    keeps_missing: bool  # NaN reaches the estimator (it handles missing values itself)

    def output_function(self, model: Any, task: str) -> Callable[[Any], Any]:
        """The task's output (see :mod:`airflow_mlops.metrics`) of the fitted ``model``."""
        import numpy as np

        if task == "regression":
            return lambda x: np.asarray(model.predict(x), dtype=np.float64)
        if task == "binary":
            return lambda x: np.asarray(model.predict_proba(x), dtype=np.float64)[:, 1]
        return lambda x: np.asarray(model.predict_proba(x), dtype=np.float64)


def check_model_name(model: str) -> None:
    """Refuse a ``training.model`` that is neither a short name nor a dotted class path."""
    if model in SHORT_NAMES or _PATH.match(model):
        return
    raise TrainingError(
        f"training model {model!r} is not mlp, cnn, xgboost, lightgbm or the import path of an "
        "estimator class (e.g. sklearn.ensemble.HistGradientBoostingClassifier)"
    )


def resolve_class(model: str, task: str) -> type:
    """The estimator class ``model`` names for ``task``.

    :raises TrainingError: it cannot be imported, is not a class with ``fit``, or does not fit
        the task (a regressor for a classification or the reverse).
    """
    check_model_name(model)
    kind = "regression" if task == "regression" else "classification"
    path = SHORT_NAMES[model][kind] if model in SHORT_NAMES else model
    module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except ImportError as exc:
        raise TrainingError(f"cannot import {module_name} for training model {path}: {exc}") from exc
    except AttributeError:
        raise TrainingError(f"{module_name} has no {name!r} (training model {path})") from None
    if not isinstance(cls, type) or not callable(getattr(cls, "fit", None)):
        raise TrainingError(f"training model {path} is not an estimator class (it has no fit method)")
    from sklearn.base import is_classifier, is_regressor

    try:
        probe = cls()
        is_classifier(probe)
    except Exception:  # a meta-estimator that needs arguments: fit checks it
        probe = None
    if probe is not None:
        if kind == "classification" and is_regressor(probe):
            raise TrainingError(f"{path} is a regressor but the task is {task}; use a classifier")
        if kind == "regression" and is_classifier(probe):
            raise TrainingError(f"{path} is a classifier but the task is regression; use a regressor")
    return cls


def _require_probabilities(estimator: Any, path: str) -> None:
    """A classifier must give class probabilities. Judged on the estimator as configured:
    ``predict_proba`` of ``SVC(probability=True)`` or ``SGDClassifier(loss="log_loss")`` exists
    only with those parameters."""
    if not hasattr(estimator, "predict_proba"):
        raise TrainingError(
            f"{path} has no predict_proba with these training.params: the gates and the monitor need class "
            "probabilities; pick a probabilistic classifier or calibrate it "
            "(sklearn.calibration.CalibratedClassifierCV)"
        )


def _library(cls: type) -> str:
    root = cls.__module__.split(".")[0]
    return root if root in ("xgboost", "lightgbm", "sklearn") else "other"


def make_estimator(model: str, task: str, params: Mapping[str, Any], seed: int) -> tuple[Any, EstimatorKind]:
    """Build the estimator ``model`` names, with ``params`` and the run's seed.

    :raises TrainingError: an unknown parameter (named, with the ones the estimator takes).
    """
    cls = resolve_class(model, task)
    library = _library(cls)
    if library == "other":
        raise TrainingError(
            f"{cls.__module__}.{cls.__name__} is not a scikit-learn, XGBoost or LightGBM estimator: models are "
            "loaded with those libraries' types only (never by unpickling your code); to train your own model "
            "class, write a fit function (training.model: package.module:fit) that returns one of theirs or a "
            "torch module of your own (see docs/training.md)"
        )
    kwargs = dict(params)
    accepted = _init_params(cls)
    unknown = sorted(set(kwargs) - accepted) if accepted is not None else []
    if unknown and library not in ("xgboost", "lightgbm"):  # those two take **kwargs for the booster
        raise TrainingError(
            f"{cls.__module__}.{cls.__name__} takes no parameter(s) {', '.join(unknown)}; it takes: "
            f"{', '.join(sorted(accepted or ()))}"
        )
    if accepted is not None and "random_state" in accepted:
        kwargs.setdefault("random_state", seed)
    if library == "lightgbm":
        kwargs.setdefault("verbose", -1)
    try:
        estimator = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"cannot build {cls.__name__} from training.params {kwargs}: {exc}") from exc
    if task != "regression":
        _require_probabilities(
            estimator, model if model not in SHORT_NAMES else SHORT_NAMES[model]["classification"]
        )
    keeps_missing = library in ("xgboost", "lightgbm") or _allows_nan(estimator)
    return estimator, EstimatorKind(f"{cls.__module__}.{cls.__name__}", library, keeps_missing)


def _init_params(cls: type) -> set[str] | None:
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return None
    names = {p.name for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    names.discard("self")
    return names


def _allows_nan(estimator: Any) -> bool:
    try:
        from sklearn.utils import get_tags

        return bool(get_tags(estimator).input_tags.allow_nan)
    except Exception:  # an estimator without tags: impute, the safe choice
        return False


def fit_estimator(
    estimator: Any,
    kind: EstimatorKind,
    x_train: Any,
    y_train: Any,
    x_val: Any,
    y_val: Any,
    *,
    patience: int | None,
) -> tuple[Any, dict[str, Any]]:
    """Fit, with early stopping on the validation rows for XGBoost and LightGBM when asked.

    :returns: the fitted estimator and what to record (best iteration).
    :raises TrainingError: the estimator's fit failed (its message).
    """
    extra: dict[str, Any] = {}
    has_val = len(y_val) > 0
    try:
        # The validation rows are scored each round only when they decide something (early stopping).
        if kind.library == "xgboost" and has_val and patience is not None:
            estimator.set_params(early_stopping_rounds=patience)
            estimator.fit(x_train, y_train, eval_set=[(x_val, y_val)], verbose=False)
            best = getattr(estimator, "best_iteration", None)
            if best is not None:
                extra["best_iteration"] = int(best)
        elif kind.library == "lightgbm" and has_val and patience is not None:
            import lightgbm

            callbacks = [lightgbm.early_stopping(patience, verbose=False)]
            if "eval_X" in inspect.signature(estimator.fit).parameters:  # LightGBM >= 4.6
                estimator.fit(x_train, y_train, eval_X=(x_val,), eval_y=(y_val,), callbacks=callbacks)
            else:
                estimator.fit(x_train, y_train, eval_set=[(x_val, y_val)], callbacks=callbacks)
            if estimator.best_iteration_:
                extra["best_iteration"] = int(estimator.best_iteration_)
        else:
            if patience is not None and kind.library in ("xgboost", "lightgbm"):
                raise TrainingError("early stopping needs validation rows: set validation_fraction above 0")
            estimator.fit(x_train, y_train)
    except TrainingError:
        raise
    except (ValueError, TypeError, MemoryError) as exc:
        raise TrainingError(f"{kind.path}.fit failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # library errors (XGBoostError, LightGBMError) have no common base
        raise TrainingError(f"{kind.path}.fit failed: {type(exc).__name__}: {exc}") from exc
    return estimator, extra
