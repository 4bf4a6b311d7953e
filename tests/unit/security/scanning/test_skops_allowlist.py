"""The skops allowlist (airflow_mlops.security.scanning.skops_allowlist): dangerous names are refused
whatever the caller allows, and what skops files need is on it."""

from __future__ import annotations

import pytest

from airflow_mlops.security.scanning import FindingKind
from airflow_mlops.security.scanning.skops_allowlist import SKOPS_SAFE_NAMES, skops_name_problem

skops_io = pytest.importorskip("skops.io")
pytest.importorskip("sklearn")


@pytest.mark.parametrize(
    "name",
    [
        "builtins.eval",
        "builtins.exec",
        "builtins.getattr",
        "builtins.map",
        "os.system",
        "subprocess.Popen",
        "operator.attrgetter",
        "operator.methodcaller",
        "functools.partial",
        "numpy.load",
        "joblib.load",
        "zoneinfo.ZoneInfo",
    ],
)
def test_dangerous_names_are_refused_whatever_the_caller_allows(name: str) -> None:
    module = name.rpartition(".")[0]
    problem = skops_name_problem(name, frozenset([name, f"{module}.*"]))

    assert problem is not None and problem[0] == FindingKind.DANGEROUS_GLOBAL
    assert name not in SKOPS_SAFE_NAMES


def test_the_skops_allowlist() -> None:
    for name in (
        "builtins.str",
        "builtins.dict",
        "collections.OrderedDict",
        "numpy.ndarray",
        "numpy.float64",
        "numpy.random.PCG64",
        "numpy.core._multiarray_umath.log1p",  # a ufunc, named as skops names it
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "xgboost.sklearn.XGBClassifier",
        "lightgbm.basic.Booster",
        "scipy.sparse._csr.csr_matrix",
    ):
        assert skops_name_problem(name) is None, name
    for name in ("builtins.print", "numpy.random.seed", "numpy.core._multiarray_umath.add_docstring", "a..b"):
        assert skops_name_problem(name) is not None, name
