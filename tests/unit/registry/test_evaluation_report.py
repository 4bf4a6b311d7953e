"""The evaluation report page: every section renders, the page is bounded in size and escapes
every string from the data (the curves it draws are checked in tests/unit/core/test_metrics.py)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from airflow_mlops.exceptions import DataError
from airflow_mlops.registry.evaluation import EvaluationReport, evaluate_gates
from airflow_mlops.registry.evaluation_report import (
    MAX_CURVE_POINTS,
    render_evaluation_report,
    score_curves,
)
from tests.unit.core.curve_scores import _scores

HOSTILE = "<script>alert('x')</script>&\"quoted\""


def _report(*, champion: bool = True, hostile: bool = False) -> EvaluationReport:
    y, score = _scores(seed=1)
    cy, cscore = y, np.clip(score + 0.05, 0, 1)
    metrics = {"roc_auc": roc_auc_score(y, score), "f1": 0.61}
    champion_metrics = {"roc_auc": roc_auc_score(cy, cscore), "f1": 0.6} if champion else None
    gates = evaluate_gates(
        metrics,
        bounds={"roc_auc": {"min": 0.99}, "f1": {"min": 0.5}},
        champion_metrics=champion_metrics,
        comparisons={"roc_auc": {"max_regression": 0.01}},
    )
    curves = {"candidate": score_curves(y, score, threshold=0.42)}
    if champion:
        curves["champion"] = score_curves(cy, cscore, threshold=0.5)
    label = HOSTILE if hostile else "grocery"
    fairness = {
        "threshold": 0.42,
        "min_slice_rows": 50,
        "min_slice_positives": 5,
        "columns": [
            {
                "column": HOSTILE if hostile else "merchant",
                "bins": None,
                "slices": [
                    {
                        "slice": label,
                        "rows": 900,
                        "positives": 250,
                        "metrics": {"accuracy": 0.8},
                        "excluded": {},
                    },
                    {
                        "slice": "travel",
                        "rows": 20,
                        "positives": 2,
                        "metrics": {"accuracy": None},
                        "excluded": {"accuracy": "too few rows"},
                    },
                ],
                "gaps": {"accuracy": {"gap": 0.0}},
                "error": None,
            }
        ],
    }
    robustness = {
        "perturbations": [
            {
                "perturbation": "missing(amount)",
                "columns": ["amount"],
                "metrics": {"roc_auc": 0.7},
                "change": {"roc_auc": -0.1},
                "error": None,
            },
            {
                "perturbation": "noise(x)",
                "columns": [],
                "metrics": {},
                "change": {},
                "error": HOSTILE if hostile else "no column x",
            },
        ]
    }
    return EvaluationReport(
        metrics=metrics,
        gates=gates,
        champion_version=HOSTILE if hostile else ("7" if champion else None),
        champion_metrics=champion_metrics,
        holdout_rows=len(y),
        positive_rows=int(y.sum()),
        threshold=0.42,
        note=HOSTILE if hostile else "compared with champion version 7 on the same 3000 rows",
        champion_threshold=0.5 if champion else None,
        champion_threshold_source="model" if champion else None,
        fairness=fairness,
        robustness=robustness,
        curves=curves,
    )


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)

    def handle_data(self, data) -> None:
        self.text.append(data)


def test_the_page_shows_every_section() -> None:
    report = _report()
    page = render_evaluation_report(report, context={"pipeline": "p"})
    assert page.startswith("<!DOCTYPE html>") and "Content-Security-Policy" in page
    for anchor in ("gates", "metrics", "thresholds", "plots", "fairness", "robustness"):
        assert f'<section id="{anchor}">' in page
    assert "blocked" in page  # roc_auc.min 0.99 fails
    for gate in report.gates.gates:
        assert gate.name in page
    assert page.count("FAILED") == len(report.gates.failed)
    assert "champion (version 7)" in page and "0.42" in page and "stored with the model" in page
    for label in ("ROC curve", "Precision-recall curve", "confusion matrix", "score distributions"):
        assert label in page
    auc = report.curves["candidate"]["roc"]["auc"]
    assert f"candidate (AUC {auc:.4f})" in page and "champion (AUC" in page
    assert "threshold 0.42" in page and "missing(amount)" in page and "too few rows" in page
    assert "<script" not in page
    parser = _Collector()
    parser.feed(page)
    assert parser.tags.count("svg") == 6  # ROC, PR, and a histogram and a matrix per model
    assert parser.tags.count("polyline") == 1 + 2 + 2  # the diagonal, two models on two plots
    # Bounded: each curve is at most MAX_CURVE_POINTS points.
    for points in re.findall(r'points="([^"]*)"', page):
        assert len(points.split()) <= MAX_CURVE_POINTS


def test_without_a_champion_or_curves_the_page_says_so() -> None:
    report = _report(champion=False)
    page = render_evaluation_report(report.to_dict())  # the stored evaluation.json: no curves
    assert "No scores were handed to the report" in page and "<svg" not in page
    assert "No champion was scored" in page
    page = render_evaluation_report(report)
    assert "champion (AUC" not in page and "candidate (AUC" in page


def test_hostile_strings_are_escaped() -> None:
    page = render_evaluation_report(_report(hostile=True), context={HOSTILE: HOSTILE})
    assert "<script>" not in page and "alert('x')" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;quoted&quot;" in page
    parser = _Collector()
    parser.feed(page)
    assert "script" not in parser.tags
    assert any(HOSTILE in t for t in parser.text)  # shown as text
    with pytest.raises(DataError, match="EvaluationReport"):
        render_evaluation_report(["not", "a", "report"])


# --- multiclass and regression figures ------------------------------------------------------------


def test_multiclass_and_regression_pages_escape_class_labels_and_say_the_task() -> None:
    from airflow_mlops.registry.evaluation_report import model_curves

    y = np.array([0, 1, 2, 2, 1, 0])
    proba = np.eye(3)[[0, 1, 2, 1, 1, 0]]
    classes = [HOSTILE, "b", "c"]
    gates = evaluate_gates({"f1_macro": 0.8}, bounds={"f1_macro": {"min": 0.5}}, task="multiclass")
    report = EvaluationReport(
        metrics={"f1_macro": 0.8, "log_loss": 0.3},
        gates=gates,
        champion_version=None,
        champion_metrics=None,
        holdout_rows=6,
        positive_rows=None,
        threshold=None,
        note="no champion comparison configured: absolute thresholds only",
        threshold_source=None,
        curves={"candidate": model_curves("multiclass", y, proba, classes=classes)},
        task="multiclass",
        classes=tuple(classes),
        model={"flavor": "sklearn", "task": "multiclass", "format": "skops", "framework": {"name": HOSTILE}},
    )
    page = render_evaluation_report(report)
    assert "<script>" not in page and "alert('x')" not in page
    assert "Holdout: 6 rows, 3 classes." in page and "confusion matrix of the predicted class" in page
    assert "lower" in page and "higher" in page  # each metric's direction
    parser = _Collector()
    parser.feed(page)
    assert "script" not in parser.tags and parser.tags.count("svg") == 1
    stored = render_evaluation_report(report.to_dict())  # evaluation.json: no curves
    assert "No scores were handed to the report" in stored and "multiclass (3 classes" in stored
    regression = EvaluationReport(
        metrics={"rmse": 1.0},
        gates=evaluate_gates({"rmse": 1.0}, bounds={"rmse": {"max": 2.0}}, task="regression"),
        champion_version=None,
        champion_metrics=None,
        holdout_rows=3,
        positive_rows=None,
        threshold=None,
        note="n",
        threshold_source=None,
        curves={"candidate": model_curves("regression", [1.0, 2.0, 3.0], [1.5, 2.0, 2.0])},
        task="regression",
    )
    page = render_evaluation_report(regression)
    assert "Holdout: 3 rows." in page and "residual distribution" in page and "ROC curve" not in page
    assert "an earlier release" in page  # no model description handed over
