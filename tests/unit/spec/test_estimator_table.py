"""known_estimators.json is current: regenerated in memory from the installed libraries, it is the
committed table (as the scanner's allowlists are, tests/unit/security/scanning/test_generate.py)."""

from __future__ import annotations

import importlib
import json

import pytest

from airflow_mlops.spec import estimators

REGENERATE = "run `python -m airflow_mlops.spec.estimators` and commit known_estimators.json"


@pytest.fixture(scope="module")
def generated() -> dict:
    for library in ("sklearn", "xgboost", "lightgbm"):
        pytest.importorskip(library)
    return estimators.generate()


def test_the_committed_table_is_the_generated_one(generated: dict) -> None:
    committed = json.loads(estimators.TABLE.read_text())
    assert committed["versions"] == generated["versions"], REGENERATE
    assert sorted(committed["estimators"]) == sorted(generated["estimators"]), REGENERATE
    assert committed == json.loads(json.dumps(generated)), REGENERATE


def test_the_versions_are_the_installed_ones(generated: dict) -> None:
    import lightgbm
    import sklearn
    import xgboost

    assert generated["versions"] == {
        "scikit-learn": sklearn.__version__,
        "xgboost": xgboost.__version__,
        "lightgbm": lightgbm.__version__,
    }


def test_every_estimator_is_known_by_its_own_modules_public_path(generated: dict) -> None:
    """Some modules import other modules' classes (sklearn.calibration imports LinearSVC): the
    table names each class by the public module it belongs to, the path a user writes."""
    from sklearn.utils import all_estimators

    for name, cls in all_estimators():
        parts = cls.__module__.split(".")
        public = ".".join(
            p for p in parts[: next((i for i, p in enumerate(parts) if p.startswith("_")), None)]
        )
        if len(public.split(".")) != 2 or not hasattr(importlib.import_module(public), name):
            continue  # a class only a deeper module exports (sklearn.feature_extraction.text)
        assert f"{public}.{name}" in generated["estimators"], name
    for path in ("sklearn.svm.LinearSVC", "sklearn.isotonic.IsotonicRegression", "xgboost.XGBClassifier"):
        assert estimators.lookup(path) is not None, path
    assert estimators.lookup("sklearn.calibration.LinearSVC") is None


def test_every_entry_names_an_importable_class_of_its_kind_and_parameters(generated: dict) -> None:
    import inspect

    for path, entry in generated["estimators"].items():
        module, _, name = path.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        assert isinstance(cls, type) and callable(getattr(cls, "fit", None)), path
        assert set(entry["params"]) <= set(inspect.signature(cls.__init__).parameters), path
        assert entry["kind"] in ("classifier", "regressor", "other"), path
        if name.endswith("Classifier"):
            assert entry["kind"] == "classifier", path
        if name.endswith("Regressor"):
            assert entry["kind"] == "regressor", path
    kinds = {p: e["kind"] for p, e in generated["estimators"].items()}
    assert kinds["sklearn.linear_model.LogisticRegression"] == "classifier"
    assert kinds["sklearn.svm.LinearSVC"] == "classifier"
    assert kinds["sklearn.isotonic.IsotonicRegression"] == "regressor"
    assert kinds["sklearn.linear_model.Ridge"] == "regressor"
    assert kinds["sklearn.preprocessing.StandardScaler"] == "other"
    assert generated["estimators"]["xgboost.XGBClassifier"]["kwargs"] is True


def test_suggestions_come_from_the_table() -> None:
    assert "sklearn.svm.LinearSVC" in estimators.suggest("sklearn.svm.LinerSVC")
    assert "sklearn.ensemble.RandomForestRegressor" in estimators.suggest(
        "sklearn.ensemble.RandomForestRegresor"
    )
    # The class name alone (another module) still finds it.
    assert (
        estimators.suggest("sklearn.trees.RandomForestClassifier")[0]
        == "sklearn.ensemble.RandomForestClassifier"
    )
    assert estimators.in_known_library("sklearn.foo.Bar") and not estimators.in_known_library("mypkg.Model")
