"""registry/registration.py: the blessing checked against the model registered, the version's
tags, the audit entry, and the approval response."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.exceptions import PromotionBlockedError
from airflow_mlops.registry import registration

SHA = "a" * 64


def test_a_blessing_for_another_model_is_refused_before_anything_is_registered() -> None:
    other = {"model_sha256": "b" * 64, "passed": True, "compared": False, "champion_version": None}
    with pytest.raises(
        PromotionBlockedError, match=r"handed to register is for model b+, but the model to register is a+"
    ):
        registration.checked_blessing(other, SHA, where="register")
    assert registration.checked_blessing(None, SHA, where="register") is None


@pytest.mark.parametrize(
    "blessing",
    [
        {"passed": True, "compared": False},
        {"model_sha256": "short", "passed": True, "compared": False},
        {"model_sha256": SHA, "passed": "yes", "compared": False},
    ],
)
def test_a_malformed_blessing_is_refused(blessing: dict[str, Any]) -> None:
    with pytest.raises(PromotionBlockedError, match="malformed"):
        registration.checked_blessing(blessing, SHA, where="register")


def test_the_blessing_of_the_model_is_kept() -> None:
    blessing = registration.checked_blessing(
        {
            "model_sha256": SHA,
            "passed": True,
            "compared": True,
            "champion_version": 3,
            "by": "d/r/gates.evaluate",
        },
        SHA,
        where="register",
    )
    assert (blessing.model_sha256, blessing.compared, blessing.champion_version) == (SHA, True, "3")


def test_the_gates_tag_is_passed_only_when_the_gates_and_the_blessing_agree() -> None:
    from airflow_mlops.registry.mlflow_registry import TAG_GATES, TAG_TRAINING_DATA
    from airflow_mlops.registry.promotion import TAG_BLESSING

    failed = registration.checked_blessing(
        {"model_sha256": SHA, "passed": False, "compared": False}, SHA, where="r"
    )
    common = dict(
        pipeline="p", key_fingerprint="fp", code_version="1.0", dag_id="p__train", training_data=None
    )
    assert registration.version_tags(gates_passed=True, blessing=None, **common)[TAG_GATES] == "passed"
    assert registration.version_tags(gates_passed=False, blessing=None, **common)[TAG_GATES] == "failed"
    tags = registration.version_tags(gates_passed=True, blessing=failed, **common)
    assert tags[TAG_GATES] == "failed" and TAG_BLESSING in tags and TAG_TRAINING_DATA not in tags
    assert tags["mlops.dag_id"] == "p__train" and tags["mlops.airflow_mlops_version"] == "1.0"
    data = {"uri": "/s/a.parquet", "sha256": "cd", "size": 3, "media_type": "x", "producer": "prepare"}
    pinned = json.loads(
        registration.version_tags(gates_passed=True, blessing=None, **{**common, "training_data": data})[
            TAG_TRAINING_DATA
        ]
    )
    assert pinned == data


def test_the_version_tags_name_why_the_run_trained() -> None:
    from airflow_mlops.retrain.reason import TAG_KIND, TAG_REASON, TAG_SUMMARY, retrain_reason

    common = dict(
        pipeline="p", key_fingerprint="fp", code_version="1.0", dag_id="p__train", training_data=None
    )
    reason = retrain_reason({}, "scheduled")
    tags = registration.version_tags(gates_passed=True, blessing=None, retrain_reason=reason, **common)
    assert tags[TAG_KIND] == "schedule" and tags[TAG_SUMMARY] == "scheduled run"
    assert json.loads(tags[TAG_REASON]) == reason
    assert TAG_KIND not in registration.version_tags(gates_passed=True, blessing=None, **common)


def test_the_registration_is_audited_once() -> None:
    recorded: list[Any] = []

    class Client:
        tags: dict[str, str] = {}

        def get_model_version(self, name: str, version: str) -> Any:
            return SimpleNamespace(tags=dict(self.tags))

        def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
            recorded.append((key, value))
            self.tags[key] = value

    client = Client()
    registered = SimpleNamespace(model_name="m", version="4", model_sha256=SHA, run_id="r")
    assert registration.audit_registration(client, registered, None, by="airflow:d/r/register") is True
    assert any(k == "mlops.audit.registered" for k, _ in recorded)
    entry = json.loads(dict(recorded)["mlops.audit.registered"])
    assert entry["by"] == "airflow:d/r/register" and entry["reason"] == "gates passed"
    count = len(recorded)
    assert registration.audit_registration(client, registered, None, by="again") is False
    assert len(recorded) == count


def test_only_an_approve_response_with_an_approver_passes() -> None:
    ok = {
        "chosen_options": ["Approve"],
        "responded_by_user": {"id": "u1", "name": "Ann"},
        "responded_at": "t",
    }
    assert registration.approver(ok, task_id="promote") == "Ann at t"
    for bad, why in (
        (None, "needs the approval task's response"),
        ({**ok, "chosen_options": ["Reject"]}, "chose"),
        ({**ok, "responded_by_user": {}}, "names no approver"),
    ):
        with pytest.raises(PromotionBlockedError, match=why):
            registration.approver(bad, task_id="promote")
