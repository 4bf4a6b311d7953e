"""evaluation.fairness / evaluation.robustness: what loads, and every refusal located at its key."""

from __future__ import annotations

import pytest

from airflow_mlops.spec.loader import load_spec_text
from tests.unit.spec import snippets

HEADER = snippets.header(features=["country", "amount", "age"])
BASE = HEADER + "evaluation:\n"
FAIRNESS = "  fairness:\n    slices: [country]\n    metrics: {roc_auc: {max_gap: 0.1}}\n"
ROBUSTNESS = (
    "  robustness:\n    perturbations:\n      - {missing: [age]}\n    metrics: {roc_auc: {max_drop: 0.05}}\n"
)


def issues(evaluation: str, base: str = BASE) -> list:
    return snippets.issues(evaluation, base)


def test_both_sections_load_with_their_defaults() -> None:
    spec = snippets.load(
        "  fairness:\n"
        + "    slices: [country, {column: amount, bins: [0, 50, 500]}]\n"
        + "    metrics: {recall: {max_gap: 0.15}, log_loss: {max_gap: 3}}\n"
        + "  robustness:\n"
        + "    perturbations:\n"
        + "      - {missing: [age, country]}\n"
        + "      - {noise: {std: 0.1, features: [amount]}}\n"
        + "      - {noise: {std: 0.2}}\n"
        + "    metrics: {roc_auc: {max_drop: 0.05}}\n"
        + "    seed: 3\n",
        BASE,
    )
    fairness, robustness = spec.evaluation.fairness, spec.evaluation.robustness
    assert fairness is not None and robustness is not None
    assert (fairness.min_slice_rows, fairness.min_slice_positives) == (100, 10)
    dumped = fairness.model_dump()
    assert dumped["slices"] == ["country", {"column": "amount", "bins": [0.0, 50.0, 500.0]}]
    assert robustness.model_dump()["perturbations"] == [
        {"missing": ["age", "country"], "noise": None},
        {"missing": None, "noise": {"std": 0.1, "features": ["amount"]}},
        {"missing": None, "noise": {"std": 0.2, "features": None}},
    ]
    assert robustness.seed == 3
    assert load_spec_text(HEADER, check_imports=False).evaluation.fairness is None


@pytest.mark.parametrize(
    ("evaluation", "path", "line", "words"),
    [
        (
            "  fairness:\n    slices: [country]\n    metrics: {recall: {max_gap: 1}}\n",
            "evaluation.fairness.metrics.recall.max_gap",
            12,
            "max_gap 1 allows any gap",
        ),
        (
            "  fairness:\n    slices: [country]\n    metrics: {recall: {max_gap: 0}}\n",
            "evaluation.fairness.metrics.recall.max_gap",
            12,
            "greater than 0",
        ),
        (
            ROBUSTNESS.replace("max_drop: 0.05", "max_drop: 1.5"),
            "evaluation.robustness.metrics.roc_auc.max_drop",
            13,
            "max_drop 1.5 allows any drop",
        ),
        (
            "  fairness:\n    slices: [{column: amount, bins: [0, 500, 50]}]\n    metrics: {f1: {max_gap: 0.2}}\n",
            "evaluation.fairness.slices[0].bins",
            11,
            "strictly increasing: 500 is followed by 50",
        ),
        (
            "  fairness:\n    slices: []\n    metrics: {f1: {max_gap: 0.2}}\n",
            "evaluation.fairness.slices",
            11,
            "at least 1 item",
        ),
        (
            "  fairness:\n    slices: [country]\n    metrics: {}\n",
            "evaluation.fairness.metrics",
            12,
            "at least 1 item",
        ),
        (
            "  fairness:\n    slices: [country, {column: country, bins: [1]}]\n    metrics: {f1: {max_gap: 0.2}}\n",
            "evaluation.fairness.slices",
            11,
            "sliced more than once",
        ),
        (
            "  robustness:\n    perturbations: []\n    metrics: {roc_auc: {max_drop: 0.05}}\n",
            "evaluation.robustness.perturbations",
            11,
            "at least 1 item",
        ),
        (
            ROBUSTNESS.replace("[age]", "[]"),
            "evaluation.robustness.perturbations[0].missing",
            12,
            "at least 1 item",
        ),
        (
            ROBUSTNESS.replace("{missing: [age]}", "{noise: {std: 0.1, features: []}}"),
            "evaluation.robustness.perturbations[0].noise.features",
            12,
            "at least 1 item",
        ),
        (
            ROBUSTNESS.replace("{missing: [age]}", "{noise: {std: -1}}"),
            "evaluation.robustness.perturbations[0].noise.std",
            12,
            "greater than 0",
        ),
        (
            ROBUSTNESS.replace("{missing: [age]}", "{blank: [age]}"),
            "evaluation.robustness.perturbations[0].blank",
            12,
            "unknown key 'blank'",
        ),
        (
            ROBUSTNESS.replace("{missing: [age]}", "{missing: [age], noise: {std: 0.1}}"),
            "evaluation.robustness.perturbations[0]",
            12,
            "a perturbation is `{missing: [feature, ...]}` or `{noise: {std: ...}}`",
        ),
    ],
)
def test_vacuous_bounds_and_empty_or_malformed_entries_are_refused_at_their_key(
    evaluation, path, line, words
) -> None:
    found = issues(evaluation)
    assert [(i.path, i.line) for i in found] == [(path, line)], [str(i) for i in found]
    assert words in found[0].message


def test_log_loss_gaps_and_drops_have_no_upper_range() -> None:
    spec = load_spec_text(
        BASE
        + FAIRNESS.replace("roc_auc: {max_gap: 0.1}", "log_loss: {max_gap: 4}")
        + ROBUSTNESS.replace("roc_auc: {max_drop: 0.05}", "log_loss: {max_drop: 2}"),
        check_imports=False,
    )
    assert spec.evaluation.fairness is not None and spec.evaluation.fairness.metrics["log_loss"].max_gap == 4


@pytest.mark.parametrize(
    ("evaluation", "path", "line", "words"),
    [
        (FAIRNESS.replace("[country]", "[churned]"), "evaluation.fairness.slices[0]", 11, "is the target"),
        (
            FAIRNESS.replace("[country]", "[city]"),
            "evaluation.fairness.slices[0]",
            11,
            "not among data.features",
        ),
        (
            FAIRNESS.replace("[country]", "[country, {column: income, bins: [1]}]"),
            "evaluation.fairness.slices[1].column",
            11,
            "'income' is not among data.features",
        ),
        (
            ROBUSTNESS.replace("[age]", "[age, churned]"),
            "evaluation.robustness.perturbations[0].missing[1]",
            12,
            "'churned' is the target",
        ),
        (
            ROBUSTNESS.replace("{missing: [age]}", "{noise: {std: 0.1, features: [amount, income]}}"),
            "evaluation.robustness.perturbations[0].noise.features[1]",
            12,
            "'income' is not among data.features",
        ),
    ],
)
def test_slice_and_perturbed_columns_must_be_features(evaluation, path, line, words) -> None:
    found = issues(evaluation)
    assert [(i.path, i.line) for i in found] == [(path, line)], [str(i) for i in found]
    assert words in found[0].message


def test_without_listed_features_only_the_target_is_refused() -> None:
    base = snippets.MINIMAL + "evaluation:\n"
    spec = load_spec_text(base + FAIRNESS.replace("[country]", "[city]"), check_imports=False)
    assert spec.evaluation.fairness is not None
    (issue,) = issues(ROBUSTNESS.replace("[age]", "[churned]"), base)
    assert issue.path == "evaluation.robustness.perturbations[0].missing[0]"
    assert "target" in issue.message
