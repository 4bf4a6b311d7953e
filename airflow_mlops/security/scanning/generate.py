"""Generate the committed library allowlists (``sklearn_globals.py``, ``torch_globals.py``,
``xgboost_globals.py``, ``lightgbm_globals.py``).

Run ``python -m airflow_mlops.security.scanning.generate`` after upgrading scikit-learn, torch,
XGBoost or LightGBM (a library that is not installed keeps its committed list);
``tests/unit/security/scanning/test_generate.py`` fails while a committed list is stale for the
installed version. The scanner itself never imports these libraries: it reads the committed lists.

What goes in:

- **scikit-learn**: every estimator class of :func:`sklearn.utils.all_estimators` (under the
  module that defines it, which is the name a pickle imports), plus every class defined in the
  helper modules whose objects fitted estimators keep (tree structures, neighbour trees and
  their distance metrics, losses and links, optimisers, kernels, histogram-boosting predictors),
  plus the Cython ``newObj`` helpers that recreate those extension types (``newObj(cls)`` only
  calls ``cls.__new__(cls)``; ``cls`` is itself a global the scan checks), the private
  estimators public ones keep once fitted, and the univariate feature-selection score functions
  (``f_classif`` ...: array statistics, the parameter of ``SelectKBest`` and its siblings).
- **torch**: every ``torch.nn.Module`` subclass defined in ``torch.nn.modules`` (what a
  ``torch.save`` of a whole module imports), plus ``torch.nn.parameter`` classes.
- **XGBoost**: the scikit-learn API estimators (every ``xgboost.sklearn.XGBModel`` subclass
  defined in ``xgboost.sklearn``: ``XGBClassifier``, ``XGBRegressor``, ``XGBRanker``, the random
  forest ones) and ``xgboost.core.Booster``, which a pickle of a fitted estimator or booster
  imports (nothing else: the model itself is a ``bytearray`` in the booster's state).
- **LightGBM**: every ``lightgbm.sklearn.LGBMModel`` subclass defined in ``lightgbm.sklearn`` and
  ``lightgbm.basic.Booster`` (its state is the model text).

The boosters' constructors load a model file named by their arguments, so the policy allows them
only the way a pickler writes them (``cls.__new__`` then ``__setstate__``, see
:data:`.policy.NEW_ONLY_GLOBALS`).

Names that the denylist refuses (see :mod:`.policy`) are never written, whatever the library has.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: scikit-learn modules whose classes fitted estimators store as attributes (seen in real pickles).
SKLEARN_HELPER_MODULES = (
    "sklearn._loss.link",
    "sklearn._loss.loss",
    "sklearn._loss._loss",
    "sklearn.tree._tree",
    "sklearn.neighbors._kd_tree",
    "sklearn.neighbors._ball_tree",
    "sklearn.metrics._dist_metrics",
    "sklearn.neural_network._stochastic_optimizers",
    "sklearn.ensemble._hist_gradient_boosting.predictor",
    "sklearn.ensemble._hist_gradient_boosting.binning",
    "sklearn.gaussian_process.kernels",
    "sklearn.linear_model._sgd_fast",
    "sklearn.utils._bunch",
)
#: single helpers found in real pickles outside those modules.
SKLEARN_HELPER_NAMES = (
    "sklearn.compose._column_transformer._RemainderColsList",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.multiclass._ConstantPredictor",
    "sklearn.tree._tree.Tree",
    "sklearn.metrics._dist_metrics.newObj",
    "sklearn.neighbors._kd_tree.newObj",
    "sklearn.neighbors._ball_tree.newObj",
    "sklearn.neighbors._binary_tree.newObj",
    # private estimators public ones keep once fitted (CalibratedClassifierCV's default sigmoid
    # calibration, GaussianProcessClassifier's binary models, BisectingKMeans' tree nodes)
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.gaussian_process._gpc._BinaryGaussianProcessClassifierLaplace",
    "sklearn.cluster._bisect_k_means._BisectingTree",
    # the score functions univariate feature selectors keep as a parameter (pure array statistics)
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.feature_selection._univariate_selection.f_regression",
    "sklearn.feature_selection._univariate_selection.r_regression",
    "sklearn.feature_selection._univariate_selection.f_oneway",
    "sklearn.feature_selection._univariate_selection.chi2",
    "sklearn.feature_selection._mutual_info.mutual_info_classif",
    "sklearn.feature_selection._mutual_info.mutual_info_regression",
)


def _classes_defined_in(module_name: str) -> list[str]:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return []
    out = []
    for name, obj in vars(module).items():
        if inspect.isclass(obj) and obj.__module__ == module_name and not name.startswith("__"):
            out.append(f"{module_name}.{obj.__qualname__}")
    return out


def _resolves(dotted: str) -> bool:
    module, _, name = dotted.rpartition(".")
    try:
        return hasattr(importlib.import_module(module), name)
    except ImportError:
        return False


def sklearn_globals() -> tuple[str, list[str]]:
    """(installed scikit-learn version, sorted allowlist entries)."""
    import sklearn
    from sklearn.utils import all_estimators

    from airflow_mlops.security.scanning.policy import is_dangerous

    names: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _, cls in all_estimators():
            names.add(f"{cls.__module__}.{cls.__qualname__}")
        for module_name in SKLEARN_HELPER_MODULES:
            names.update(_classes_defined_in(module_name))
        names.update(n for n in SKLEARN_HELPER_NAMES if _resolves(n))
    safe = sorted(n for n in names if "<" not in n and not is_dangerous(*n.rsplit(".", 1)))
    return sklearn.__version__, safe


def torch_globals() -> tuple[str, list[str]]:
    """(installed torch version, sorted allowlist entries)."""
    import torch

    from airflow_mlops.security.scanning.policy import is_dangerous

    names: set[str] = set()
    prefix = "torch.nn.modules"
    for module_name, module in sorted(sys.modules.items()):
        if module is None or not (module_name == prefix or module_name.startswith(prefix + ".")):
            continue
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, torch.nn.Module)
                and obj.__module__.startswith(prefix)
            ):
                names.add(f"{obj.__module__}.{obj.__qualname__}")
    names.update(_classes_defined_in("torch.nn.parameter"))
    safe = sorted(n for n in names if "<" not in n and not is_dangerous(*n.rsplit(".", 1)))
    return torch.__version__.split("+")[0], safe


def _subclasses_defined_in(module_name: str, base: type) -> list[str]:
    module = importlib.import_module(module_name)
    return [
        f"{module_name}.{obj.__qualname__}"
        for obj in vars(module).values()
        if inspect.isclass(obj) and obj.__module__ == module_name and issubclass(obj, base)
    ]


def xgboost_globals() -> tuple[str, list[str]]:
    """(installed XGBoost version, sorted allowlist entries)."""
    import xgboost
    from xgboost.sklearn import XGBModel

    from airflow_mlops.security.scanning.policy import is_dangerous

    names = set(_subclasses_defined_in("xgboost.sklearn", XGBModel))
    names.add(f"{xgboost.Booster.__module__}.{xgboost.Booster.__qualname__}")
    safe = sorted(n for n in names if "<" not in n and not is_dangerous(*n.rsplit(".", 1)))
    return xgboost.__version__, safe


def lightgbm_globals() -> tuple[str, list[str]]:
    """(installed LightGBM version, sorted allowlist entries)."""
    import lightgbm
    from lightgbm.sklearn import LGBMModel

    from airflow_mlops.security.scanning.policy import is_dangerous

    names = set(_subclasses_defined_in("lightgbm.sklearn", LGBMModel))
    names.add(f"{lightgbm.Booster.__module__}.{lightgbm.Booster.__qualname__}")
    safe = sorted(n for n in names if "<" not in n and not is_dangerous(*n.rsplit(".", 1)))
    return lightgbm.__version__, safe


def render(library: str, version: str, names: list[str], constant: str) -> str:
    """The text of a generated module (formatted as ``ruff format`` would)."""
    lines = [
        f'"""Generated by ``python -m airflow_mlops.security.scanning.generate``: {library} globals. Do not edit."""',
        "",
        f'{constant.upper()}_VERSION = "{version}"',
        "",
        f"{constant.upper()}_GLOBALS: frozenset[str] = frozenset(",
        "    [",
        *(f'        "{n}",' for n in names),
        "    ]",
        ")",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Write the generated modules next to this file (XGBoost/LightGBM only when installed)."""
    import torch.nn  # noqa: F401  (loads torch.nn.modules.* into sys.modules)

    version, names = sklearn_globals()
    (HERE / "sklearn_globals.py").write_text(render("scikit-learn", version, names, "sklearn"))
    print(f"sklearn_globals.py: scikit-learn {version}, {len(names)} globals")
    version, names = torch_globals()
    (HERE / "torch_globals.py").write_text(render("torch", version, names, "torch_nn"))
    print(f"torch_globals.py: torch {version}, {len(names)} globals")
    optional = (
        ("xgboost", "XGBoost", xgboost_globals, "xgboost_globals.py", "xgboost"),
        ("lightgbm", "LightGBM", lightgbm_globals, "lightgbm_globals.py", "lightgbm"),
    )
    for module, library, generate, filename, constant in optional:
        try:
            importlib.import_module(module)
        except ImportError:
            print(f"{filename}: {library} is not installed, the committed list is kept")
            continue
        version, names = generate()
        (HERE / filename).write_text(render(library, version, names, constant))
        print(f"{filename}: {library} {version}, {len(names)} globals")


if __name__ == "__main__":
    main()
