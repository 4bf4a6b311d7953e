"""The estimator classes ``training.model`` may name, known without importing their libraries.

``spec validate`` and the DAG processor check an estimator path (``sklearn.ensemble.
RandomForestClassifier``, ``xgboost.XGBRegressor``) and its ``training.params`` against
``known_estimators.json``, generated from the pinned scikit-learn, XGBoost and LightGBM by
``python -m airflow_mlops.spec.estimators`` (``tests/unit/spec/test_estimators.py`` fails while it is
stale). A path outside those libraries (your own estimator class) is checked when the trainer
imports it.
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

TABLE = Path(__file__).resolve().parent / "known_estimators.json"
LIBRARIES = ("sklearn", "xgboost", "lightgbm")
#: short names of training.model -> the library's estimator per task family
SHORT_NAMES = ("xgboost", "lightgbm")


@lru_cache(maxsize=1)
def known() -> dict[str, Any]:
    """``{"versions": {...}, "estimators": {path: {"kind": classifier|regressor|other, "params": [...],
    "kwargs": bool}}}``."""
    data: dict[str, Any] = json.loads(TABLE.read_text())
    return data


def lookup(path: str) -> dict[str, Any] | None:
    """The table's entry for an estimator path, or None when the path is not a library's."""
    entry: dict[str, Any] | None = known()["estimators"].get(path)
    return entry


def in_known_library(path: str) -> bool:
    return path.split(".", 1)[0] in LIBRARIES


def suggest(path: str) -> list[str]:
    """Known paths close to ``path`` (for "did you mean")."""
    names = list(known()["estimators"])
    close = difflib.get_close_matches(path, names, n=3, cutoff=0.75)
    if close:
        return close
    tail = path.rsplit(".", 1)[-1].lower()
    return [n for n in names if n.rsplit(".", 1)[-1].lower() == tail][:3]


def generate() -> dict[str, Any]:
    """Build the table from the installed libraries (public import paths only)."""
    import importlib
    import inspect
    import pkgutil
    import warnings

    import sklearn
    from sklearn.base import ClassifierMixin, RegressorMixin, is_classifier, is_regressor
    from sklearn.utils import all_estimators

    estimators: dict[str, Any] = {}
    versions = {"scikit-learn": sklearn.__version__}

    def params_of(cls: type) -> tuple[list[str], bool]:
        signature = inspect.signature(cls)
        names = [p.name for p in signature.parameters.values() if p.name != "self"]
        kwargs = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
        return sorted(n for n in names if n not in ("args", "kwargs")), kwargs

    def kind_of(cls: type) -> str:
        try:
            probe = cls()
            if is_classifier(probe):
                return "classifier"
            if is_regressor(probe):
                return "regressor"
        except Exception:  # needs arguments (meta-estimators): judged by the mixins
            pass
        if issubclass(cls, ClassifierMixin):
            return "classifier"
        if issubclass(cls, RegressorMixin):
            return "regressor"
        return "other"

    public_modules = sorted(
        m.name
        for m in pkgutil.iter_modules(sklearn.__path__, "sklearn.")
        if not m.name.rsplit(".", 1)[-1].startswith("_")
        and m.name not in ("sklearn.tests", "sklearn.conftest")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, cls in all_estimators():
            # Its own public module first (sklearn.svm._classes -> sklearn.svm): other modules
            # import some classes too (sklearn.calibration imports LinearSVC).
            parts = cls.__module__.split(".")
            home = ".".join(parts[: next((i for i, p in enumerate(parts) if p.startswith("_")), len(parts))])
            path = next(
                (
                    f"{module}.{name}"
                    for module in (home, *public_modules)
                    if module in public_modules
                    and getattr(importlib.import_module(module), name, None) is cls
                ),
                None,
            )
            if path is None:
                continue
            params, kwargs = params_of(cls)
            estimators[path] = {"kind": kind_of(cls), "params": params, "kwargs": kwargs}
        for library, names in (
            ("xgboost", ("XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor")),
            ("lightgbm", ("LGBMClassifier", "LGBMRegressor")),
        ):
            try:
                module = importlib.import_module(library)
            except ImportError:
                continue
            versions[library] = module.__version__
            for name in names:
                cls = getattr(module, name)
                params, kwargs = params_of(cls)
                estimators[f"{library}.{name}"] = {"kind": kind_of(cls), "params": params, "kwargs": kwargs}
    return {"versions": versions, "estimators": dict(sorted(estimators.items()))}


def main() -> None:
    TABLE.write_text(json.dumps(generate(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {TABLE}")


if __name__ == "__main__":
    main()
