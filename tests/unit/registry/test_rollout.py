"""Rollout strategies: the spec's `registry.rollout` / `registry.approval`, the DAG wiring, the
live-window verdict and the approval response check."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_mlops.exceptions import DataError, PromotionBlockedError
from airflow_mlops.factory import build_dags
from airflow_mlops.operators.registry import approver
from airflow_mlops.registry.rollout import judge_window
from tests.unit.spec.test_language_features import issues_of, spec_of

# A top-level line keeps spec_of's dedent from lifting the registry keys to the top level.
TOP = "# end of registry\n"
MONITORING = """\
monitoring:
  source: live/{{ ds }}.parquet
"""


def _dags(registry_extra: str, monitoring: str = MONITORING):
    return build_dags(spec_of(registry_extra + monitoring))


# --- the spec -------------------------------------------------------------------------------------


def test_direct_is_the_default_and_moves_the_champion_alias() -> None:
    dags = build_dags(spec_of(""))
    promote = dags["churn__train"].get_task("release.promote")
    assert (promote.alias, promote.rollout_alias, promote.traffic_share) == ("champion", None, None)
    assert promote.approval is None
    assert "release.approve" not in dags["churn__train"].task_ids


def test_canary_gets_a_rollout_alias_with_traffic_and_a_gate_in_the_monitor() -> None:
    dags = _dags(
        "  rollout:\n    strategy: canary\n    traffic: 0.2\n"
        "    gate: {min_rows: 300, min_agreement: 0.8, compare_to_champion: {roc_auc: {max_regression: 0.02}}}\n"
    )
    promote = dags["churn__train"].get_task("release.promote")
    assert (promote.alias, promote.rollout_alias, promote.traffic_share) == ("champion", "canary", 0.2)
    gate = dags["churn__monitor"].get_task("monitor.rollout")
    assert (gate.alias, gate.rollout_alias, gate.min_rows, gate.min_agreement) == (
        "champion",
        "canary",
        300,
        0.8,
    )
    assert gate.compare_to_champion == {"roc_auc": {"max_regression": 0.02}}
    assert "monitor.score" in gate.upstream_task_ids


def test_shadow_has_no_traffic_and_its_own_alias_name() -> None:
    dags = _dags("  rollout: {strategy: shadow, alias: mirror}\n")
    promote = dags["churn__train"].get_task("release.promote")
    assert (promote.rollout_alias, promote.traffic_share) == ("mirror", None)
    assert dags["churn__monitor"].get_task("monitor.rollout").rollout_alias == "mirror"


def test_direct_has_no_rollout_task_in_the_monitor() -> None:
    dags = _dags("")
    assert "monitor.rollout" not in dags["churn__monitor"].task_ids


@pytest.mark.parametrize(
    ("extra", "monitoring", "fragment"),
    [
        ("  rollout: {strategy: canary}\n", TOP, "needs a `monitoring` section"),
        (
            "  rollout: {strategy: shadow, traffic: 0.1}\n",
            MONITORING,
            "`traffic` applies to `strategy: canary`",
        ),
        ("  rollout: {strategy: canary, traffic: 0.9}\n", MONITORING, "less than or equal to 0.5"),
        ("  rollout: {strategy: canary, alias: champion}\n", MONITORING, "is the champion alias"),
        (
            "  rollout: {strategy: direct, gate: {min_rows: 10}}\n",
            MONITORING,
            "apply to `shadow` and `canary`",
        ),
        ("  rollout: {strategy: canary, gate: {min_agreement: null}}\n", MONITORING, "checks nothing"),
        (
            "  rollout: {strategy: canary, gate: {compare_to_champion: {roc_auc: {max_regression: 1}}}}\n",
            MONITORING,
            "lets any candidate pass",
        ),
        ("  approval: {timeout: 0s}\n", TOP, "must be positive"),
    ],
)
def test_bad_rollout_settings_are_refused_at_validate_time(
    extra: str, monitoring: str, fragment: str
) -> None:
    issues = issues_of(extra + monitoring)
    assert any(fragment in i.message for i in issues), [i.message for i in issues]


def test_approval_puts_a_human_in_the_loop_before_the_promotion() -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    dag = build_dags(spec_of("  approval: {timeout: 2h, assigned_users: [risk-lead]}\n" + TOP))[
        "churn__train"
    ]
    approve = dag.get_task("release.approve")
    assert isinstance(approve, ApprovalOperator)
    assert approve.defaults == ["Reject"]  # no answer in time rejects
    assert approve.response_timeout.total_seconds() == 7200
    assert approve.assigned_users == [{"id": "risk-lead", "name": "risk-lead"}]
    assert "release.register" in approve.upstream_task_ids
    promote = dag.get_task("release.promote")
    assert "release.approve" in promote.upstream_task_ids and promote.approval is not None
    assert "ti.xcom_pull(task_ids='release.register', key='version')" in approve.body
    assert "churn-model" in approve.subject


# --- the approval response --------------------------------------------------------------------------


def test_approver_is_named_from_an_approve_response() -> None:
    response = {
        "chosen_options": ["Approve"],
        "responded_by_user": {"id": "7", "name": "ana"},
        "responded_at": "2026-12-01T10:00:00+00:00",
    }
    assert approver(response, task_id="promote") == "ana at 2026-12-01T10:00:00+00:00"


@pytest.mark.parametrize(
    ("response", "fragment"),
    [
        (None, "needs the approval task's response"),
        ({"chosen_options": ["Reject"], "responded_by_user": {"name": "ana"}}, r"chose \['Reject'\]"),
        ({"chosen_options": [], "responded_by_user": {"name": "ana"}}, "chose nothing"),
        ({"chosen_options": ["Approve"], "responded_by_user": {}}, "names no approver"),
    ],
)
def test_anything_but_a_named_approval_blocks(response, fragment: str) -> None:
    with pytest.raises(PromotionBlockedError, match=fragment):
        approver(response, task_id="promote")


# --- the live-window verdict --------------------------------------------------------------------------


def _window(n: int = 2000, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    champion = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1)
    return y, champion, rng


def test_a_candidate_that_decides_like_the_champion_passes() -> None:
    y, champion, rng = _window()
    candidate = np.clip(champion + rng.normal(0, 0.01, len(y)), 0, 1)
    report = judge_window(
        candidate,
        champion,
        candidate_threshold=0.5,
        champion_threshold=0.5,
        y_true=y,
        min_rows=500,
        min_agreement=0.9,
        comparisons={"roc_auc": {"max_regression": 0.02}},
    )
    expected_agreement = float(np.mean((candidate >= 0.5) == (champion >= 0.5)))
    assert report.verdict == "passed" and report.agreement == pytest.approx(expected_agreement)
    assert report.agreement > 0.9 and report.labelled


def test_agreement_uses_each_models_own_threshold() -> None:
    _, champion, _ = _window()
    candidate = champion / 2  # the same ranking, half the scores: the same decisions at half the threshold
    same = judge_window(
        candidate, champion, candidate_threshold=0.25, champion_threshold=0.5, min_rows=1, min_agreement=0.99
    )
    assert same.agreement == 1.0 and same.verdict == "passed"
    other = judge_window(
        candidate, champion, candidate_threshold=0.5, champion_threshold=0.5, min_rows=1, min_agreement=0.99
    )
    assert other.verdict == "failed" and "agreement" in other.reasons[0]


def test_a_worse_candidate_on_labelled_rows_fails() -> None:
    y, champion, rng = _window()
    candidate = rng.random(len(y))  # no skill
    report = judge_window(
        candidate,
        champion,
        candidate_threshold=0.5,
        champion_threshold=0.5,
        y_true=y,
        min_rows=500,
        min_agreement=None,
        comparisons={"roc_auc": {"max_regression": 0.02}},
    )
    assert report.verdict == "failed"
    assert any("roc_auc.vs_champion" in r for r in report.reasons)


def test_too_few_rows_or_no_labels_leave_the_verdict_open() -> None:
    _, champion, _ = _window(n=200)
    few = judge_window(
        champion, champion, candidate_threshold=0.5, champion_threshold=0.5, min_rows=500, min_agreement=0.9
    )
    assert few.verdict == "undecided" and "fewer than the 500" in few.reasons[0]
    unlabelled = judge_window(
        champion,
        champion,
        candidate_threshold=0.5,
        champion_threshold=0.5,
        min_rows=100,
        min_agreement=0.9,
        comparisons={"roc_auc": {"max_regression": 0.0}},
    )
    assert unlabelled.verdict == "undecided" and "no labels" in unlabelled.reasons[0]


def test_a_large_window_that_disagrees_fails_even_without_labels() -> None:
    _, champion, _ = _window()
    report = judge_window(
        1 - champion,
        champion,
        candidate_threshold=0.5,
        champion_threshold=0.5,
        min_rows=100,
        min_agreement=0.9,
        comparisons={"roc_auc": {"max_regression": 0.0}},
    )
    assert report.verdict == "failed"


def test_malformed_scores_are_refused() -> None:
    with pytest.raises(DataError, match="differ in shape"):
        judge_window(
            [0.1, 0.2], [0.1], candidate_threshold=0.5, champion_threshold=0.5, min_rows=1, min_agreement=0.9
        )
    with pytest.raises(DataError, match="not finite probabilities"):
        judge_window(
            [0.1, 1.5],
            [0.1, 0.2],
            candidate_threshold=0.5,
            champion_threshold=0.5,
            min_rows=1,
            min_agreement=0.9,
        )
