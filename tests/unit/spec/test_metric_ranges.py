"""Bounded metrics refuse impossible (and empty) thresholds when the spec is validated, at their key."""

from __future__ import annotations

import pytest

from tests.unit.spec import snippets

BASE = snippets.MINIMAL + "evaluation:\n"


def issues(evaluation: str) -> list:
    return snippets.issues(evaluation, BASE)


@pytest.mark.parametrize(
    ("evaluation", "path", "line", "words"),
    [
        ("  metrics: {roc_auc: {min: 1.5}}\n", "evaluation.metrics.roc_auc.min", 9, "can never pass"),
        ("  metrics: {f1: {min: 85}}\n", "evaluation.metrics.f1.min", 9, "a percentage? write 0.85"),
        ("  metrics: {accuracy: {max: -0.1}}\n", "evaluation.metrics.accuracy.max", 9, "can never pass"),
        ("  metrics: {recall: {min: -1}}\n", "evaluation.metrics.recall.min", 9, "can never fail"),
        ("  metrics: {pr_auc: {max: 2}}\n", "evaluation.metrics.pr_auc.max", 9, "can never fail"),
        ("  metrics: {log_loss: {max: -0.5}}\n", "evaluation.metrics.log_loss.max", 9, "lies in >= 0"),
        (
            "  compare_to_champion:\n    roc_auc: {max_regression: 1}\n",
            "evaluation.compare_to_champion.roc_auc.max_regression",
            10,
            "lets any candidate pass",
        ),
    ],
)
def test_out_of_range_bounds_are_refused_at_their_key(evaluation, path, line, words) -> None:
    (issue,) = issues(evaluation)
    assert (issue.path, issue.line) == (path, line)
    assert words in issue.message


def test_every_bad_bound_is_reported_and_good_ones_load() -> None:
    found = issues("  metrics: {roc_auc: {min: 1.5}, precision: {max: 3}, f1: {min: 0.5}}\n")
    assert sorted(i.path for i in found) == [
        "evaluation.metrics.precision.max",
        "evaluation.metrics.roc_auc.min",
    ]
    spec = snippets.load(
        "  metrics: {roc_auc: {min: 0, max: 1}, log_loss: {max: 40}}\n"
        "  compare_to_champion: {roc_auc: {max_regression: 0.99}, log_loss: {max_regression: 5}}\n",
        BASE,
    )
    assert spec.evaluation.metrics["log_loss"].max == 40  # log_loss is unbounded above
