"""Robustness gates: the candidate scored on perturbed copies of the holdout.

A transparent scoring function (a logistic model written out here, imputing the training mean)
lets every expected value be computed independently with scikit-learn; one test uses a real
trained model to confirm what the project's preprocessor does with a blanked column.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from airflow_mlops.metrics import compute_metrics
from airflow_mlops.registry.robustness import evaluate_robustness, perturb
from tests.unit.registry.fraud_models import _holdout

NUMERIC = ["amount", "age"]
CATEGORICAL = ["merchant"]
MEANS = {"amount": 3.0, "age": 40.0}


def _predict(df: pd.DataFrame) -> np.ndarray:
    """The 'model': missing numbers become the training mean, a missing merchant no category."""
    amount = df["amount"].astype(float).fillna(MEANS["amount"]).to_numpy()
    age = df["age"].astype(float).fillna(MEANS["age"]).to_numpy()
    online = (df["merchant"] == "online").to_numpy()
    logit = -1.0 + 1.5 * (amount - 3.0) + 0.05 * (age - 40.0) + 1.0 * online
    return 1.0 / (1.0 + np.exp(-logit))


def _evaluate(holdout, y, perturbations, metrics, *, seed=0):
    clean = compute_metrics("binary", y, _predict(holdout), threshold=0.5)
    return evaluate_robustness(
        _predict,
        holdout,
        y,
        perturbations=perturbations,
        metrics=metrics,
        threshold=0.5,
        clean_metrics=clean,
        numeric_features=NUMERIC,
        categorical_features=CATEGORICAL,
        seed=seed,
    )


def test_missing_feature_drop_matches_sklearn_on_a_hand_blanked_copy() -> None:
    holdout, y = _holdout()
    result = _evaluate(holdout, y, [{"missing": ["amount"]}], {"roc_auc": {"max_drop": 0.5}})
    clean = roc_auc_score(y, _predict(holdout))
    blanked = roc_auc_score(y, _predict(holdout.assign(amount=np.nan)))
    assert clean - blanked > 0.1  # amount carries most of the signal: the drop is real
    (gate,) = result.gates
    assert gate.kind == "robustness" and gate.name == "roc_auc.under_missing(amount)"
    assert gate.value == pytest.approx(blanked)
    assert gate.threshold == pytest.approx(clean - 0.5)
    assert gate.passed
    (entry,) = result.details["perturbations"]
    assert entry["change"]["roc_auc"] == pytest.approx(blanked - clean)
    assert entry["columns"] == ["amount"]


def test_the_gate_fails_when_the_drop_exceeds_max_drop_and_says_by_how_much() -> None:
    holdout, y = _holdout()
    drop = roc_auc_score(y, _predict(holdout)) - roc_auc_score(y, _predict(holdout.assign(amount=np.nan)))
    at = _evaluate(holdout, y, [{"missing": ["amount"]}], {"roc_auc": {"max_drop": drop}}).gates[0]
    below = _evaluate(holdout, y, [{"missing": ["amount"]}], {"roc_auc": {"max_drop": drop - 0.001}}).gates[0]
    assert at.passed and not below.passed
    assert "more than the allowed" in below.reason and "under missing(amount)" in below.reason


def test_log_loss_gates_its_rise() -> None:
    holdout, y = _holdout()
    rise = log_loss(y, _predict(holdout.assign(amount=np.nan))) - log_loss(y, _predict(holdout))
    assert rise > 0.05
    blank = [{"missing": ["amount"]}]
    (passed,) = _evaluate(holdout, y, blank, {"log_loss": {"max_drop": rise + 0.01}}).gates
    (failed,) = _evaluate(holdout, y, blank, {"log_loss": {"max_drop": rise - 0.01}}).gates
    assert passed.passed and not failed.passed
    assert "rose" in failed.reason


def test_noise_is_deterministic_scaled_by_the_holdout_std_and_keeps_missing_values() -> None:
    holdout, _ = _holdout(20_000)
    holdout.loc[:9, "age"] = np.nan
    spec = {"noise": {"std": 0.5, "features": None}}
    kwargs = {"numeric_features": NUMERIC, "categorical_features": CATEGORICAL}
    first, columns = perturb(holdout, spec, seed=3, **kwargs)
    again, _ = perturb(holdout, spec, seed=3, **kwargs)
    other, _ = perturb(holdout, spec, seed=4, **kwargs)
    assert columns == NUMERIC  # default: every numeric feature
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["amount"], other["amount"])
    for column in NUMERIC:
        added = (first[column] - holdout[column]).dropna()
        assert added.std() == pytest.approx(0.5 * holdout[column].std(ddof=0), rel=0.03)
    assert first.loc[:9, "age"].isna().all()
    assert (first["merchant"] == holdout["merchant"]).all()  # categorical: untouched
    assert holdout.loc[10:, "age"].notna().all()  # the holdout itself is not modified


def test_noise_on_named_features_only_and_its_drop_matches_an_independent_copy() -> None:
    holdout, y = _holdout()
    spec = {"noise": {"std": 1.0, "features": ["amount"]}}
    result = _evaluate(holdout, y, [spec], {"roc_auc": {"max_drop": 0.5}}, seed=11)
    noisy, _ = perturb(holdout, spec, numeric_features=NUMERIC, categorical_features=CATEGORICAL, seed=11)
    assert (noisy["age"] == holdout["age"]).all()
    expected = roc_auc_score(y, _predict(noisy))
    assert result.gates[0].value == pytest.approx(expected)
    assert result.gates[0].name == "roc_auc.under_noise(1 std: amount)"


@pytest.mark.parametrize(
    ("perturbation", "words"),
    [
        ({"missing": ["income"]}, "the holdout has no column(s) 'income'"),
        ({"noise": {"std": 0.1, "features": ["merchant"]}}, "'merchant' is categorical for the model"),
        ({"missing": ["label"]}, "'label' is not a feature of the model"),
    ],
)
def test_a_perturbation_that_cannot_be_applied_fails_closed(perturbation, words) -> None:
    holdout, y = _holdout()
    result = _evaluate(
        holdout,
        y,
        [perturbation, {"missing": ["age"]}],
        {"roc_auc": {"max_drop": 0.9}, "accuracy": {"max_drop": 0.9}},
    )
    broken, fine = result.gates[:2], result.gates[2:]
    assert not any(g.passed for g in broken) and all(words in g.reason for g in broken)
    assert all(g.passed for g in fine)  # the other perturbation is still measured
    assert words in result.details["perturbations"][0]["error"]


def test_an_unmeasurable_clean_metric_blocks() -> None:
    holdout, y = _holdout()
    result = evaluate_robustness(
        _predict,
        holdout,
        y,
        perturbations=[{"missing": ["age"]}],
        metrics={"roc_auc": {"max_drop": 0.1}},
        threshold=0.5,
        clean_metrics={"roc_auc": float("nan")},
        numeric_features=NUMERIC,
        categorical_features=CATEGORICAL,
    )
    assert not result.gates[0].passed and "clean holdout could not be measured" in result.gates[0].reason
    json.dumps(result.details, allow_nan=False)


def test_the_project_model_imputes_the_training_mean_and_no_category(tmp_path: Path) -> None:
    from airflow_mlops.training.flavors import load_predictor
    from tests.unit.registry.fraud_models import _frame, _packaged

    model_dir = _packaged(tmp_path / "m", _frame(800, 1))
    predictor = load_predictor(model_dir / "artifacts" / "weights")
    holdout = _frame(300, 2)
    numeric, categorical = list(predictor.preprocessor.numeric), list(predictor.preprocessor.categorical)
    assert categorical == ["merchant"]

    blanked, _ = perturb(
        holdout,
        {"missing": ["amount", "merchant"]},
        numeric_features=numeric,
        categorical_features=categorical,
    )
    mean = predictor.preprocessor.numeric["amount"][0]
    by_hand = holdout.assign(amount=mean, merchant="a category never seen in training")
    np.testing.assert_allclose(predictor.predict_proba(blanked), predictor.predict_proba(by_hand), rtol=1e-6)
    assert not np.allclose(predictor.predict_proba(blanked), predictor.predict_proba(holdout))
