"""Rollout strategies: the spec's `registry.rollout` / `registry.approval`, the DAG wiring, the
live-window verdict and the approval response check."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.exceptions import DataError, GateFailedError, PromotionBlockedError
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
    with pytest.raises(DataError, match="the candidate answered 2 rows, the champion 1"):
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
    with pytest.raises(DataError, match="one probability per class"):
        judge_window(
            np.full((3, 2), 0.5),
            np.full((3, 3), 1 / 3),
            task="multiclass",
            candidate_classes=["a", "b", "c"],
            champion_classes=["a", "b", "c"],
            min_rows=1,
            min_agreement=0.9,
        )
    with pytest.raises(DataError, match="needs the candidate's classes"):
        judge_window(
            np.full((3, 3), 1 / 3), np.full((3, 3), 1 / 3), task="multiclass", min_rows=1, min_agreement=0.9
        )
    with pytest.raises(DataError, match="NaN or infinite"):
        judge_window([1.0, np.nan], [1.0, 2.0], task="regression", min_rows=1, min_agreement=0.9)


def test_a_binary_window_of_one_class_is_judged_not_refused() -> None:
    y, champion, _ = _window()
    labels = np.where(y == 1, "fraud", "ok")
    labels[:] = "ok"  # a window without a single positive
    report = judge_window(
        champion,
        champion,
        candidate_classes=["fraud", "ok"],
        champion_classes=["fraud", "ok"],
        positive_label="fraud",
        y_true=labels,
        min_rows=100,
        min_agreement=0.9,
        comparisons={"accuracy": {"max_regression": 0.0}},
    )
    assert report.verdict == "passed" and report.labelled
    assert report.candidate_metrics is not None
    assert report.candidate_metrics["accuracy"] == pytest.approx(float(np.mean(champion < 0.5)))


# --- multiclass and regression windows --------------------------------------------------------------

CLASSES = ["bird", "cat", "dog"]


def _multiclass_window(n: int = 1000, seed: int = 1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), y] += 2.5  # a skilled champion
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return np.asarray(CLASSES, dtype=object)[y], probs, rng


def test_multiclass_agreement_is_the_share_of_rows_with_the_same_predicted_class() -> None:
    labels, champion, rng = _multiclass_window()
    candidate = champion.copy()
    flip = rng.random(len(labels)) < 0.2  # the candidate moves its mass to the next class on 20 % of rows
    candidate[flip] = np.roll(champion[flip], 1, axis=1)
    expected = float(np.mean(np.argmax(candidate, axis=1) == np.argmax(champion, axis=1)))
    assert 0.75 < expected < 0.85
    common = dict(
        task="multiclass",
        candidate_classes=CLASSES,
        champion_classes=CLASSES,
        min_rows=500,
    )
    passed = judge_window(candidate, champion, min_agreement=0.7, **common)
    assert passed.verdict == "passed" and passed.agreement == pytest.approx(expected)
    failed = judge_window(candidate, champion, min_agreement=0.9, **common)
    assert failed.verdict == "failed" and failed.reasons[0].startswith(f"agreement {expected:.4f} < 0.9")
    shares = passed.champion_summary["class_shares"]
    assert set(shares) == set(CLASSES) and sum(shares.values()) == pytest.approx(1.0)


def test_multiclass_agreement_compares_labels_when_the_class_orders_differ() -> None:
    _, champion, _ = _multiclass_window()
    # The same answers with the columns in another class order: every row agrees.
    order = [2, 0, 1]
    report = judge_window(
        champion[:, order],
        champion,
        task="multiclass",
        candidate_classes=[CLASSES[i] for i in order],
        champion_classes=CLASSES,
        min_rows=1,
        min_agreement=1.0,
    )
    assert report.agreement == 1.0 and report.verdict == "passed"


def test_a_worse_multiclass_candidate_fails_on_labelled_rows() -> None:
    labels, champion, rng = _multiclass_window()
    candidate = rng.dirichlet(np.ones(3), len(labels))  # no skill
    common = dict(
        task="multiclass",
        candidate_classes=CLASSES,
        champion_classes=CLASSES,
        y_true=labels,
        min_rows=500,
        min_agreement=None,
    )
    worse = judge_window(candidate, champion, comparisons={"f1_macro": {"max_regression": 0.05}}, **common)
    assert worse.verdict == "failed" and any("f1_macro.vs_champion" in r for r in worse.reasons)
    assert worse.champion_metrics is not None and worse.candidate_metrics is not None
    assert worse.champion_metrics["f1_macro"] > worse.candidate_metrics["f1_macro"] + 0.2
    same = judge_window(champion, champion, comparisons={"f1_macro": {"max_regression": 0.0}}, **common)
    assert same.verdict == "passed"


def test_multiclass_labels_are_encoded_per_model_and_unknown_classes_left_out() -> None:
    labels, champion, _ = _multiclass_window(n=600)
    raw = labels.copy()
    raw[:50] = "fish"  # a class neither model was trained on
    report = judge_window(
        champion,
        champion,
        task="multiclass",
        candidate_classes=CLASSES,
        champion_classes=CLASSES,
        y_true=raw,
        min_rows=100,
        min_agreement=0.9,
        comparisons={"accuracy": {"max_regression": 0.0}},
    )
    assert report.verdict == "passed"
    assert any("50 labelled row(s) of class(es) 'fish'" in r for r in report.reasons)
    kept = np.arange(600) >= 50
    expected = float(
        np.mean(np.asarray(CLASSES, dtype=object)[np.argmax(champion[kept], axis=1)] == labels[kept])
    )
    assert report.candidate_metrics is not None
    assert report.candidate_metrics["accuracy"] == pytest.approx(expected)


def _regression_window(n: int = 1000, seed: int = 2):
    rng = np.random.default_rng(seed)
    y = rng.normal(100.0, 20.0, n)
    champion = y + rng.normal(0, 2.0, n)
    return y, champion, rng


def test_regression_agreement_is_the_share_within_the_relative_error() -> None:
    y, champion, rng = _regression_window()
    candidate = champion * np.where(rng.random(len(y)) < 0.85, 1.05, 1.3)  # 15 % of rows 30 % off
    common = dict(task="regression", min_rows=500, max_relative_error=0.1)
    passed = judge_window(candidate, champion, min_agreement=0.8, **common)
    assert passed.verdict == "passed" and 0.8 < passed.agreement < 0.9
    failed = judge_window(candidate, champion, min_agreement=0.9, **common)
    assert failed.verdict == "failed" and "agreement" in failed.reasons[0]
    tighter = judge_window(
        candidate, champion, min_agreement=0.8, task="regression", min_rows=500, max_relative_error=0.04
    )
    # 5 % off is too far at 4 %, except where the floor (4 % of the mean |champion|) is wider.
    scale = float(np.mean(np.abs(champion)))
    expected = float(np.mean(np.abs(candidate - champion) <= 0.04 * np.maximum(np.abs(champion), scale)))
    assert tighter.agreement == pytest.approx(expected) and expected < 0.5 and tighter.verdict == "failed"
    assert passed.champion_summary["mean"] == pytest.approx(float(champion.mean()))


def test_regression_agreement_near_zero_is_relative_to_the_windows_scale() -> None:
    rng = np.random.default_rng(3)
    champion = rng.normal(0.0, 1.0, 1000)  # a target centred on zero
    candidate = champion + 0.05  # 0.05 off everywhere: tiny next to the predictions' size (~0.8)
    report = judge_window(candidate, champion, task="regression", min_rows=1, min_agreement=0.99)
    assert report.agreement == 1.0 and report.verdict == "passed"
    off = judge_window(champion + 0.5, champion, task="regression", min_rows=1, min_agreement=0.5)
    assert off.agreement < 0.5 and off.verdict == "failed"


def test_a_worse_regression_candidate_fails_on_labelled_rows() -> None:
    y, champion, rng = _regression_window()
    candidate = champion + rng.normal(0, 8.0, len(y))  # four times the champion's error
    common = dict(task="regression", y_true=y, min_rows=500, min_agreement=None)
    report = judge_window(candidate, champion, comparisons={"rmse": {"max_regression": 1.0}}, **common)
    assert report.candidate_metrics is not None and report.champion_metrics is not None
    assert report.candidate_metrics["rmse"] > report.champion_metrics["rmse"] + 4
    assert report.verdict == "failed" and any("rmse.vs_champion" in r for r in report.reasons)
    better = judge_window(champion, candidate, comparisons={"rmse": {"max_regression": 0.0}}, **common)
    assert better.verdict == "passed"


# -- the state machine and the window counter (registry.rollout) ----------------------------------


@pytest.mark.parametrize(
    ("verdict", "windows", "max_windows", "step"),
    [
        ("passed", 0, 7, "promote"),
        ("failed", 0, 7, "end"),
        ("undecided", 1, 7, "wait"),
        ("undecided", 6, 7, "wait"),
        ("undecided", 7, 7, "end"),  # the 7th undecided window ends it
        ("undecided", 9, 7, "end"),
        ("undecided", 1, 1, "end"),
    ],
)
def test_next_step_promotes_ends_or_waits_until_max_windows(verdict, windows, max_windows, step) -> None:
    from airflow_mlops.registry.rollout import next_step

    assert next_step(verdict, windows, max_windows) == step


def test_count_window_counts_each_run_once_and_survives_a_malformed_tag() -> None:
    from airflow_mlops.registry.rollout import count_window

    runs, added = count_window(None, "d/r1")
    assert (runs, added) == (["d/r1"], True)
    runs, added = count_window(json.dumps(runs), "d/r2")
    assert (runs, added) == (["d/r1", "d/r2"], True)
    assert count_window(json.dumps(runs), "d/r1") == (["d/r1", "d/r2"], False)  # a retry
    assert count_window("not json", "d/r3") == (["d/r3"], True)
    assert count_window('{"a": 1}', "d/r3") == (["d/r3"], True)


class _Registry:
    """An MLflow client with one model's versions and tags, and the alias moves it was asked for."""

    def __init__(self) -> None:
        self.tags: dict[str, dict[str, str]] = {"5": {}}
        self.removed: list[tuple[str, str]] = []

    def get_model_version(self, name: str, version: str) -> Any:
        return SimpleNamespace(version=version, tags=dict(self.tags[version]))

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.tags[version][key] = value


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """``run_rollout_window`` over a fake registry: candidate 5 on @canary, champion 3; both
    "models" answer with the scores the test sets."""
    import airflow_mlops.registry.mlflow_registry as registry
    import airflow_mlops.registry.promotion as promotion
    import airflow_mlops.training.flavors as flavors
    from airflow_mlops.registry.rollout import RolloutSettings, run_rollout_window

    client = _Registry()
    state: dict[str, Any] = {"candidate": "5", "scores": {}, "promoted": []}

    def predictor(name: str) -> Any:
        scores = lambda frame: np.asarray(state["scores"][name], dtype=float)  # noqa: E731
        return SimpleNamespace(
            task="binary",
            classes=["0", "1"],
            positive_label=1,
            config={"threshold": 0.5},
            predict_scores=scores,
            describe=lambda: {"name": name},
        )

    def champion_version(client_: Any, name: str, alias: str, **kwargs: Any) -> Any:
        return None if state["candidate"] is None else SimpleNamespace(version=state["candidate"], tags={})

    monkeypatch.setattr(registry, "champion_version", champion_version)
    monkeypatch.setattr(
        registry, "fetch_trusted_champion", lambda *a, **k: (state["candidate"], tmp_path / "candidate")
    )
    monkeypatch.setattr(registry, "fetch_trusted_version", lambda *a, **k: (tmp_path / "champion", None))
    monkeypatch.setattr(registry, "weights_dir", lambda d: Path(d))
    monkeypatch.setattr(flavors, "load_predictor", lambda d: predictor(Path(d).name))
    monkeypatch.setattr(flavors, "comparison_problem", lambda *a, **k: None)

    def remove_alias(client_: Any, **kwargs: Any) -> bool:
        client.removed.append((kwargs["alias"], kwargs["expected_version"]))
        return True

    def promote_version(client_: Any, **kwargs: Any) -> Any:
        state["promoted"].append(kwargs)
        return SimpleNamespace(to_dict=lambda: {"version": kwargs["version"], "alias": kwargs["alias"]})

    monkeypatch.setattr(promotion, "remove_alias", remove_alias)
    monkeypatch.setattr(promotion, "promote_version", promote_version)

    def run(run_id: str = "d/r1", **settings: Any) -> Any:
        scratch = tmp_path / run_id.replace("/", "-")
        scratch.mkdir(exist_ok=True)
        return run_rollout_window(
            client,
            RolloutSettings(model_name="m", alias="champion", rollout_alias="canary", target="y", **settings),
            champion_version="3",
            trust=b"pub",
            scratch=scratch,
            read_window=lambda: pd.DataFrame({"x": range(len(state["scores"]["candidate"]))}),
            store_report=lambda path: SimpleNamespace(
                uri=str(path), sha256="ab", to_dict=lambda: {"uri": str(path)}
            ),
            request_id=run_id,
            by="tester",
            blessed_by="d/r/rollout",
        )

    state["run"], state["client"] = run, client
    return state


def test_the_gate_skips_without_a_rollout_and_ends_one_on_the_champion_itself(gate) -> None:
    gate["candidate"] = None
    assert "no rollout in progress" in gate["run"]().skipped
    gate["candidate"] = "3"
    outcome = gate["run"]()
    assert "was the champion already" in outcome.skipped
    assert gate["client"].removed == [("canary", "3")]


def test_an_agreeing_window_promotes_with_the_report_as_evidence(gate) -> None:
    gate["scores"] = {"candidate": [0.9, 0.1] * 5, "champion": [0.8, 0.2] * 5}
    outcome = gate["run"](min_rows=10)
    assert (outcome.verdict, outcome.step) == ("passed", "promote")
    (promoted,) = gate["promoted"]
    assert (promoted["version"], promoted["alias"]) == ("5", "champion")
    assert promoted["blessing"].evidence == "rollout" and promoted["blessing"].champion_version == "3"
    assert gate["client"].removed == [("canary", "5")]
    assert outcome.to_dict()["promotion"] == {"version": "5", "alias": "champion"}


def test_a_disagreeing_window_ends_the_rollout(gate) -> None:
    gate["scores"] = {"candidate": [0.9] * 10, "champion": [0.1] * 10}
    with pytest.raises(GateFailedError, match="ended, the champion stays version 3"):
        gate["run"](min_rows=10)
    assert gate["client"].removed == [("canary", "5")] and not gate["promoted"]


def test_undecided_windows_are_counted_once_per_run_until_max_windows(gate) -> None:
    from airflow_mlops.registry.rollout import undecided_windows_tag

    gate["scores"] = {"candidate": [0.9, 0.1], "champion": [0.8, 0.2]}  # 2 rows < min_rows
    first = gate["run"]("d/r1", min_rows=10, max_windows=3)
    assert (first.verdict, first.step, first.windows) == ("undecided", "wait", 1)
    assert gate["run"]("d/r1", min_rows=10, max_windows=3).windows == 1  # a retry counts once
    assert gate["run"]("d/r2", min_rows=10, max_windows=3).windows == 2
    tag = json.loads(gate["client"].tags["5"][undecided_windows_tag("canary")])
    assert tag == ["d/r1", "d/r2"] and not gate["client"].removed
    with pytest.raises(GateFailedError, match="no verdict in 3 windows"):
        gate["run"]("d/r3", min_rows=10, max_windows=3)
    assert gate["client"].removed == [("canary", "5")]


def test_binary_models_that_score_different_classes_are_not_compared() -> None:
    from airflow_mlops.registry.rollout import incomparable

    def model(task: str, positive: Any = None) -> SimpleNamespace:
        return SimpleNamespace(task=task, positive_label=positive)

    assert incomparable(model("binary", 1), model("binary", "1"), "2", "1") == ""  # one label, two spellings
    assert "the champion scores positive class 'no', the candidate 'yes'" in incomparable(
        model("binary", "yes"), model("binary", "no"), "2", "1"
    )
    assert "the champion is a multiclass model, the candidate regression" in incomparable(
        model("regression"), model("multiclass"), "2", "1"
    )
    assert incomparable(model("multiclass"), model("multiclass"), "2", "1") == ""
