"""The generated allowlists (airflow_mlops.security.scanning.generate): the committed lists are current."""

from __future__ import annotations

import pytest

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
