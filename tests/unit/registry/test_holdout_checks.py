"""The holdout checks of an evaluation (airflow_mlops.registry.holdout_checks)."""

from __future__ import annotations

from tests.unit.registry.fraud_models import _holdout


def test_a_model_that_takes_the_dataframe_has_its_feature_kinds_read_from_the_holdout() -> None:
    """A scikit-learn pipeline stored with ``input: dataframe`` has no project preprocessor: its
    numeric features (noise applies) are the holdout's number columns, the rest categorical."""
    from types import SimpleNamespace

    from airflow_mlops.registry.holdout_checks import feature_kinds

    holdout, _ = _holdout(50)
    holdout = holdout.assign(flag=holdout["age"] > 40)
    predictor = SimpleNamespace(preprocessor=None, features=["amount", "merchant", "flag", "age"])
    assert feature_kinds(predictor, holdout) == (["amount", "age"], ["merchant", "flag"])
