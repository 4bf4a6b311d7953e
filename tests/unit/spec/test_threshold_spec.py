"""`evaluation.threshold`: a number or a rule, refused at its key when it cannot work."""

from __future__ import annotations

import typing

import jsonschema
import pytest
import yaml

from airflow_mlops.spec.models import ThresholdRuleName
from airflow_mlops.spec.schema import json_schema
from airflow_mlops.training.threshold import RULES, check_rule
from tests.unit.spec.snippets import MINIMAL as BASE
from tests.unit.spec.snippets import issues, load


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (None, {"rule": "best_f1"}),
        ("0.7", {"rule": "fixed", "value": 0.7}),
        ("{rule: best_f1}", {"rule": "best_f1"}),
        ("{rule: min_precision, value: 0.8}", {"rule": "min_precision", "value": 0.8}),
        ("{rule: min_recall, value: 1}", {"rule": "min_recall", "value": 1.0}),
        ("{rule: fixed, value: 0.25}", {"rule": "fixed", "value": 0.25}),
    ],
)
def test_a_number_or_a_rule_loads_and_reaches_the_trainer_as_it_checks_it(threshold, expected) -> None:
    spec = load("" if threshold is None else f"evaluation:\n  threshold: {threshold}\n")
    rule = spec.evaluation.threshold.as_config()
    assert rule == expected
    assert check_rule(rule) == expected  # the trainer accepts what the spec lets through
    assert spec.evaluation.threshold.fallback == (expected["value"] if expected["rule"] == "fixed" else 0.5)
    # The generated JSON Schema (what editors check against) accepts the same text.
    document = yaml.safe_load(
        BASE + ("" if threshold is None else f"evaluation:\n  threshold: {threshold}\n")
    )
    jsonschema.validate(document, json_schema())


@pytest.mark.parametrize(
    ("threshold", "path", "words"),
    [
        ("{rule: best_f1, value: 0.3}", "evaluation.threshold.value", "takes no `value`"),
        ("{rule: min_precision}", "evaluation.threshold.value", "needs `value`, e.g. `{rule: min_precision"),
        ("{rule: min_recall, value: 0}", "evaluation.threshold.value", "must be in (0, 1]"),
        ("{rule: min_precision, value: 80}", "evaluation.threshold.value", "a percentage? write 0.8"),
        ("{rule: fixed, value: 1}", "evaluation.threshold.value", "no row is positive"),
        ("1.5", "evaluation.threshold", "a fixed threshold lies in (0, 1)"),
        ("0", "evaluation.threshold", "every row is positive"),
        ("{rule: top_k}", "evaluation.threshold.rule", "best_f1"),
        ("{rule: best_f1, target: 3}", "evaluation.threshold.target", ""),
        ("high", "evaluation.threshold", "a number (a fixed threshold) or a rule"),
        ("true", "evaluation.threshold", "a number (a fixed threshold) or a rule"),
    ],
)
def test_a_bad_threshold_is_refused_at_its_key(threshold, path, words) -> None:
    (issue,) = issues(f"evaluation:\n  threshold: {threshold}\n")
    assert issue.path.startswith(path) and issue.line == 9, issue.format()
    assert words in issue.format(), issue.format()


def test_a_rule_needs_validation_rows_and_validation_fraction_is_for_the_builtin_models() -> None:
    (issue,) = issues("training:\n  validation_fraction: 0\n")  # the default rule is best_f1
    assert (issue.path, issue.line) == ("training.validation_fraction", 9), issue.format()
    assert "validation_fraction is 0" in issue.message
    spec = load("training:\n  validation_fraction: 0\nevaluation:\n  threshold: 0.5\n")
    assert spec.training.validation_fraction == 0

    (issue,) = issues("training:\n  model: mypkg.train:fit\n  validation_fraction: 0.2\n")
    assert "your own fit splits its own validation rows" in issue.message


def test_the_spec_and_the_trainer_know_the_same_rules() -> None:
    assert set(typing.get_args(ThresholdRuleName)) == set(RULES)
