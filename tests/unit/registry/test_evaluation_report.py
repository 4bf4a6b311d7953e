"""The evaluation report page: every section renders, the curves agree with scikit-learn, the
page is bounded in size and escapes every string from the data."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score, roc_curve

from airflow_mlops.exceptions import DataError
from airflow_mlops.registry.evaluation import EvaluationReport, evaluate_gates
from airflow_mlops.registry.evaluation_report import (
    MAX_CURVE_POINTS,
    render_evaluation_report,
    roc_points,
    score_curves,
)

HOSTILE = "<script>alert('x')</script>&\"quoted\""


def _scores(n: int = 3000, seed: int = 0, rounding: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    score = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * y - 0.5)))
    if rounding is not None:
        score = np.round(score, rounding)  # ties
    return y, score


@pytest.mark.parametrize("rounding", [None, 2])
def test_roc_points_match_sklearn_and_the_auc_agrees(rounding) -> None:
    y, score = _scores(rounding=rounding)
    fpr, tpr, thresholds = roc_points(y, score)
    ref_fpr, ref_tpr, ref_thr = roc_curve(y, score, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, ref_tpr, atol=1e-12)
    np.testing.assert_allclose(thresholds[1:], ref_thr[1:])
    curves = score_curves(y, score, threshold=0.5)
    assert curves["roc"]["points"] == len(ref_fpr)
    assert abs(curves["roc"]["auc"] - roc_auc_score(y, score)) < 1e-6
    assert abs(curves["pr"]["average_precision"] - average_precision_score(y, score)) < 1e-6


def test_curves_are_downsampled_monotone_with_their_endpoints() -> None:
    y, score = _scores(n=5000)
    curves = score_curves(y, score, threshold=0.4)
    roc, pr = curves["roc"], curves["pr"]
    assert roc["points"] > MAX_CURVE_POINTS  # it had to be downsampled
    for xs, ys in ((roc["fpr"], roc["tpr"]), (pr["recall"], pr["precision"])):
        assert 2 <= len(xs) == len(ys) <= MAX_CURVE_POINTS
    assert np.all(np.diff(roc["fpr"]) >= 0) and np.all(np.diff(roc["tpr"]) >= 0)
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(pr["recall"]) >= 0) and pr["recall"][0] == 0.0 and pr["recall"][-1] == 1.0
    assert pr["precision"][-1] == pytest.approx(y.mean())
    # The kept points lie on sklearn's curve.
    ref_fpr, ref_tpr, _ = roc_curve(y, score, drop_intermediate=False)
    pairs = set(zip(np.round(ref_fpr, 12), np.round(ref_tpr, 12), strict=True))
    assert all((round(a, 12), round(b, 12)) in pairs for a, b in zip(roc["fpr"], roc["tpr"], strict=True))


def test_confusion_and_histograms_agree_with_an_independent_count() -> None:
    y, score = _scores(n=1200, seed=3)
    threshold = 0.37
    curves = score_curves(y, score, threshold=threshold)
    tn, fp, fn, tp = confusion_matrix(y, (score >= threshold).astype(int)).ravel()
    assert curves["confusion"] == {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    hist = curves["histogram"]
    assert sum(hist["positives"]) == int(y.sum()) and sum(hist["negatives"]) == int((1 - y).sum())
    assert hist["positives"] == np.histogram(score[y == 1], bins=hist["edges"])[0].tolist()


def test_single_class_has_no_curves_and_bad_scores_are_refused() -> None:
    curves = score_curves(np.ones(10, dtype=int), np.linspace(0, 1, 10), threshold=0.5)
    assert curves["roc"] is None and curves["pr"] is None and curves["confusion"]["tp"] == 5
    with pytest.raises(DataError, match="both classes"):
        roc_points(np.zeros(4), np.arange(4) / 4)
    with pytest.raises(DataError, match="NaN or infinite"):
        score_curves([0, 1], [0.2, float("nan")], threshold=0.5)
    with pytest.raises(DataError, match="one length"):
        score_curves([0, 1, 1], [0.2, 0.3], threshold=0.5)


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


def test_class_curves_match_sklearn_and_fold_rare_classes() -> None:
    from airflow_mlops.registry.evaluation_report import MAX_MATRIX_CLASSES, OTHER_CLASSES, class_curves

    rng = np.random.default_rng(4)
    k, n = 30, 6000
    y = np.minimum(rng.geometric(0.12, n) - 1, k - 1)  # a few frequent classes, many rare ones
    proba = rng.random((n, k)) + 3.0 * np.eye(k)[y] * (rng.random(n) < 0.7)[:, None]
    proba /= proba.sum(axis=1, keepdims=True)
    predicted = np.argmax(proba, axis=1)
    curves = class_curves(y, proba, classes=[f"c{i}" for i in range(k)])
    assert curves["classes"] == k and curves["rows"] == n
    labels = curves["labels"]
    assert len(labels) == MAX_MATRIX_CLASSES and labels[-1] == OTHER_CLASSES
    assert curves["folded"] == k - (MAX_MATRIX_CLASSES - 1)
    matrix = np.asarray(curves["matrix"])
    assert matrix.sum() == n
    full = confusion_matrix(y, predicted, labels=range(k))
    shown = [int(label[1:]) for label in labels[:-1]]
    np.testing.assert_array_equal(matrix[:-1, :-1], full[np.ix_(shown, shown)])  # the shown block is exact
    support = np.bincount(y, minlength=k)
    assert (
        sorted(support[shown].tolist(), reverse=True) == sorted(support.tolist(), reverse=True)[: len(shown)]
    )
    c0 = next(c for c in curves["per_class"] if c["class"] == "c0")
    assert c0["recall"] == pytest.approx(full[0, 0] / full[0].sum())
    assert c0["precision"] == pytest.approx(full[0, 0] / full[:, 0].sum())
    assert curves["accuracy"] == pytest.approx(np.mean(predicted == y))
    small = class_curves([0, 1, 2, 2], np.eye(3)[[0, 2, 2, 1]])
    assert small["labels"] == ["0", "1", "2"] and small["folded"] == 0
    with pytest.raises(DataError, match="outside the model's 3 classes"):
        class_curves([0, 3], np.eye(3)[[0, 1]])


HALF_BINS = 20  # a constant residual falls in the middle bin of the default 40


def test_residual_curves_are_bounded_keep_the_extremes_and_count_every_row() -> None:
    from airflow_mlops.registry.evaluation_report import MAX_SCATTER_POINTS, residual_curves

    rng = np.random.default_rng(2)
    y = rng.normal(100.0, 20.0, 5000)
    pred = y + rng.normal(0.0, 5.0, 5000)
    pred[123] = y[123] - 90.0  # the worst residual must be shown
    curves = residual_curves(y, pred)
    points = curves["points"]
    assert len(points["predicted"]) <= MAX_SCATTER_POINTS
    assert max(points["residual"]) == pytest.approx(90.0)
    assert sum(curves["histogram"]["counts"]) == 5000
    assert curves["summary"]["mean"] == pytest.approx(np.mean(y - pred))
    assert curves["summary"]["max_abs"] == pytest.approx(90.0)
    assert (
        residual_curves([1.0, 2.0], [1.0, 2.0])["histogram"]["counts"][HALF_BINS] == 2
    )  # constant residuals
    with pytest.raises(DataError, match="NaN or infinite"):
        residual_curves([1.0, 2.0], [1.0, float("nan")])


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
