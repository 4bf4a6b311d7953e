"""The scanner's policy tables (airflow_mlops.security.scanning.policy): everything installed is on the
allowlist, and nothing on it is on the denylist."""

from __future__ import annotations

import pytest

from airflow_mlops.security.scanning import policy


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


def test_the_allowlist_holds_what_the_pickles_import_and_nothing_the_denylist_refuses() -> None:
    from airflow_mlops.security.scanning.lightgbm_globals import LIGHTGBM_GLOBALS
    from airflow_mlops.security.scanning.xgboost_globals import XGBOOST_GLOBALS

    for name in (
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
        "xgboost.sklearn.XGBRanker",
    ):
        assert name in XGBOOST_GLOBALS
    for name in (
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
    ):
        assert name in LIGHTGBM_GLOBALS
    for name in XGBOOST_GLOBALS | LIGHTGBM_GLOBALS:
        assert name in policy.BUILTIN_SAFE_GLOBALS
        assert not policy.is_dangerous(*name.rsplit(".", 1))
    assert policy.NEW_ONLY_GLOBALS <= XGBOOST_GLOBALS | LIGHTGBM_GLOBALS
