"""`monitoring.estimation`: performance estimated without labels and the retrain rule that needs it."""

from __future__ import annotations

import pytest

from airflow_mlops.training.calibration import ESTIMABLE_METRICS
from tests.unit.spec import snippets

BASE = snippets.MINIMAL + "monitoring:\n  source: /live/{{ ds }}.parquet\n"


def load(text: str):
    return snippets.load(text, BASE)


def issue(text: str):
    (one, *_) = snippets.issues(text, BASE)
    return one


def test_estimation_defaults_and_keys() -> None:
    assert load("").monitoring.estimation is None
    est = load("  estimation: {max_drop: 0.02}\n").monitoring.estimation
    assert (est.metric, est.max_drop, est.retrain_on, est.confidence, est.samples) == (
        None,
        0.02,
        "drift",
        0.95,
        200,
    )
    est = load(
        "  estimation: {metric: f1_macro, max_drop: 0.05, retrain_on: drift_and_estimated_drop, samples: 500}\n"
    ).monitoring.estimation
    assert (est.metric, est.retrain_on, est.samples) == ("f1_macro", "drift_and_estimated_drop", 500)


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        (
            "  estimation: {metric: log_loss, max_drop: 0.1}\n",
            "monitoring.estimation.metric",
            "not estimated",
        ),
        ("  estimation: {metric: roc_auc}\n", "monitoring.estimation.max_drop", ""),
        ("  estimation: {max_drop: 0.02, retrain_on: sometimes}\n", "monitoring.estimation.retrain_on", ""),
        ("  estimation: {max_drop: 0.02, when: always}\n", "monitoring.estimation.when", ""),
        (
            "  on_drift: alert\n  estimation: {max_drop: 0.02, retrain_on: drift_and_estimated_drop}\n",
            "monitoring",
            "on_drift is alert",
        ),
    ],
)
def test_bad_estimation_settings_are_refused_at_their_key(text: str, path: str, words: str) -> None:
    found = issue(text)
    assert found.path == path
    assert words in found.format()


def test_every_estimable_metric_is_a_metric_of_its_task() -> None:
    from airflow_mlops.metrics import METRICS

    for task, names in ESTIMABLE_METRICS.items():
        assert all(task in METRICS[name].tasks for name in names)
