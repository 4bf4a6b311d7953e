"""The built-in allowlist: generated lists are current, and nothing on it is on the denylist."""

from __future__ import annotations

import pytest

from airflow_mlops.security.scanning import policy
from airflow_mlops.security.scanning.sklearn_globals import SKLEARN_GLOBALS, SKLEARN_VERSION
from airflow_mlops.security.scanning.torch_globals import TORCH_NN_GLOBALS, TORCH_NN_VERSION

REGENERATE = "run `python -m airflow_mlops.security.scanning.generate` and commit the result"


def test_committed_sklearn_list_is_current_for_the_installed_version() -> None:
    pytest.importorskip("sklearn")
    from airflow_mlops.security.scanning.generate import sklearn_globals

    version, names = sklearn_globals()

    assert (SKLEARN_VERSION, sorted(SKLEARN_GLOBALS)) == (version, names), REGENERATE


def test_committed_torch_list_is_current_for_the_installed_version() -> None:
    pytest.importorskip("torch.nn")
    from airflow_mlops.security.scanning.generate import torch_globals

    version, names = torch_globals()

    assert (TORCH_NN_VERSION, sorted(TORCH_NN_GLOBALS)) == (version, names), REGENERATE


def test_committed_xgboost_list_is_current_for_the_installed_version() -> None:
    pytest.importorskip("xgboost")
    from airflow_mlops.security.scanning.generate import xgboost_globals
    from airflow_mlops.security.scanning.xgboost_globals import XGBOOST_GLOBALS, XGBOOST_VERSION

    version, names = xgboost_globals()

    assert (XGBOOST_VERSION, sorted(XGBOOST_GLOBALS)) == (version, names), REGENERATE


def test_committed_lightgbm_list_is_current_for_the_installed_version() -> None:
    pytest.importorskip("lightgbm")
    from airflow_mlops.security.scanning.generate import lightgbm_globals
    from airflow_mlops.security.scanning.lightgbm_globals import LIGHTGBM_GLOBALS, LIGHTGBM_VERSION

    version, names = lightgbm_globals()

    assert (LIGHTGBM_VERSION, sorted(LIGHTGBM_GLOBALS)) == (version, names), REGENERATE


def test_every_installed_estimator_is_allowed() -> None:
    pytest.importorskip("sklearn")
    from sklearn.utils import all_estimators

    missing = [f"{c.__module__}.{c.__qualname__}" for _, c in all_estimators()]
    assert [m for m in missing if m not in policy.BUILTIN_SAFE_GLOBALS] == []


def test_only_the_joblib_wrapper_overrides_the_denylist() -> None:
    overlap = {g for g in policy.BUILTIN_SAFE_GLOBALS if policy.is_dangerous(*g.rsplit(".", 1))}

    assert overlap == {policy.JOBLIB_ARRAY_WRAPPER}


@pytest.mark.parametrize(
    "dotted",
    [
        "os.system",
        "posix.system",
        "subprocess.Popen",
        "builtins.eval",
        "builtins.exec",
        "builtins.getattr",
        "builtins.__import__",
        "importlib.import_module",
        "marshal.loads",
        "functools.partial",
        "ctypes.CDLL",
        "runpy.run_path",
        "pickle.loads",
        "_pickle.loads",
        "operator.attrgetter",
        "numpy.core._ufunc_reconstruct",
        "joblib.load",
        "torch.load",
    ],
)
def test_classic_payload_globals_are_dangerous(dotted: str) -> None:
    assert policy.is_dangerous(*dotted.rsplit(".", 1))
    assert dotted not in policy.BUILTIN_SAFE_GLOBALS


def test_allowlisted_callables_that_may_return_shared_objects_are_marked() -> None:
    # calling an Enum class looks up an existing member: state set on it would poison the process
    import enum
    import importlib

    from airflow_mlops.security.scanning.policy import BUILTIN_SAFE_GLOBALS, SHARED_RESULT_GLOBALS

    unmarked = []
    for dotted in sorted(BUILTIN_SAFE_GLOBALS):
        module, _, name = dotted.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        if isinstance(obj, type) and issubclass(obj, enum.Enum) and dotted not in SHARED_RESULT_GLOBALS:
            unmarked.append(dotted)
    assert not unmarked, f"enum classes missing from SHARED_RESULT_GLOBALS: {unmarked}"
