"""The registry's audit trail (airflow_mlops.registry.audit): who moved which alias, when and why.

Against a local MLflow registry (SQLite): each record is a version tag and an entry of the
registered model's bounded history; the readers that make retries converge (``in_history``,
``last_move_is``) and a history tag that is not JSON (strict, or read as empty by the writers).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import pytest

from airflow_mlops.registry import audit
from airflow_mlops.registry.audit import (
    HISTORY_LIMIT,
    TAG_HISTORY,
    audit_entry,
    audit_history,
    command_line_actor,
    in_history,
    last_move_is,
    now,
    record_audit,
)

MODEL = "fraud"


@pytest.fixture
def model(client: Any) -> Any:
    """A registered model with versions 1 and 2 (no run behind them: tags are all the audit needs)."""
    client.create_registered_model(MODEL)
    for _ in range(2):
        client.create_model_version(MODEL, source="file:///nowhere")
    return client


def _version_tags(client: Any, version: str) -> dict[str, str]:
    return dict(client.get_model_version(MODEL, version).tags or {})


def test_now_is_utc_iso_8601_to_the_second() -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stamp = now()
    parsed = dt.datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == dt.timedelta(0)
    assert parsed.microsecond == 0 and stamp.endswith("+00:00")
    assert before <= parsed <= dt.datetime.now(dt.UTC)


def test_the_command_line_actor_is_user_at_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit.getpass, "getuser", lambda: "alice")
    monkeypatch.setattr(audit.socket, "gethostname", lambda: "box")
    assert command_line_actor() == "cli:alice@box"


@pytest.mark.parametrize("error", [KeyError("uid 1234"), OSError("no login")])
def test_a_user_without_a_name_is_unknown(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def getuser() -> str:  # what getpass does in a container whose uid has no passwd entry
        raise error

    monkeypatch.setattr(audit.getpass, "getuser", getuser)
    monkeypatch.setattr(audit.socket, "gethostname", lambda: "box")
    assert command_line_actor() == "cli:unknown@box"


def test_an_entry_says_what_who_when_and_why() -> None:
    entry = audit_entry("promoted", by="dag/run", reason="better recall", alias="champion", to="2")
    assert entry["action"] == "promoted" and entry["by"] == "dag/run"
    assert entry["reason"] == "better recall"
    assert (entry["alias"], entry["to"]) == ("champion", "2")
    assert dt.datetime.fromisoformat(entry["at"]).utcoffset() == dt.timedelta(0)
    assert audit_entry("registered", by="x")["reason"] == ""  # no reason given: empty, not missing
    assert json.loads(json.dumps(entry)) == entry  # stored as JSON


def test_an_entrys_reason_is_bounded() -> None:
    assert len(audit_entry("rolled_back", by="x", reason="r" * 5000)["reason"]) == 2000


def test_a_record_is_a_version_tag_and_a_history_entry(model: Any, caplog: pytest.LogCaptureFixture) -> None:
    entry = audit_entry("promoted", by="dag/run-1", reason="r", alias="champion", to="2")
    with caplog.at_level(logging.INFO, logger="airflow_mlops.registry.audit"):
        record_audit(model, MODEL, "2", entry, key="promoted.champion")
    assert json.loads(_version_tags(model, "2")["mlops.audit.promoted.champion"]) == entry
    assert "mlops.audit.promoted.champion" not in _version_tags(model, "1")
    assert audit_history(model, MODEL) == [{**entry, "version": "2"}]
    assert "audit fraud promoted v2" in caplog.text


def test_the_history_keeps_order_and_versions_as_text(model: Any) -> None:
    record_audit(model, MODEL, 1, audit_entry("registered", by="a"), key="registered")
    record_audit(model, MODEL, "2", audit_entry("registered", by="b"), key="registered")
    record_audit(
        model, MODEL, "2", audit_entry("promoted", by="c", alias="champion"), key="promoted.champion"
    )
    history = audit_history(model, MODEL)
    assert [(e["action"], e["by"], e["version"]) for e in history] == [
        ("registered", "a", "1"),
        ("registered", "b", "2"),
        ("promoted", "c", "2"),
    ]
    assert json.loads(_version_tags(model, "1")["mlops.audit.registered"])["by"] == "a"


def test_a_record_of_no_version_goes_to_the_history_only(model: Any) -> None:
    record_audit(model, MODEL, None, audit_entry("rollout_ended", by="a", alias="canary"), key="rollout")
    assert audit_history(model, MODEL)[-1]["version"] is None
    assert not any(k.startswith("mlops.audit.") for v in ("1", "2") for k in _version_tags(model, v))


def test_a_record_without_history_is_the_version_tag_only(
    model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="airflow_mlops.registry.audit"):
        record_audit(model, MODEL, "1", audit_entry("scanned", by="a"), key="scanned", history=False)
    assert json.loads(_version_tags(model, "1")["mlops.audit.scanned"])["action"] == "scanned"
    assert audit_history(model, MODEL) == []
    assert "audit fraud scanned v1" in caplog.text  # still logged


def test_the_history_keeps_only_the_last_entries(model: Any) -> None:
    # Seeded close to the limit, so the test writes a few entries, not fifty.
    seeded = [{"action": "old", "n": i, "version": "1"} for i in range(HISTORY_LIMIT - 1)]
    model.set_registered_model_tag(MODEL, TAG_HISTORY, json.dumps(seeded))
    for n in range(3):
        record_audit(model, MODEL, None, audit_entry("new", by="x", n=n), key="new")
    history = audit_history(model, MODEL)
    assert len(history) == HISTORY_LIMIT
    assert history[0]["n"] == 2  # the two oldest dropped
    assert [e["n"] for e in history[-3:]] == [0, 1, 2] and history[-1]["action"] == "new"


def test_values_that_are_not_json_are_written_as_text(model: Any) -> None:
    when = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    record_audit(model, MODEL, "1", audit_entry("registered", by="a", when=when), key="registered")
    assert audit_history(model, MODEL)[-1]["when"] == str(when)
    assert json.loads(_version_tags(model, "1")["mlops.audit.registered"])["when"] == str(when)


def test_a_model_without_history_has_an_empty_one(model: Any) -> None:
    assert audit_history(model, MODEL) == []
    assert not in_history(model, MODEL, "promoted", "1", "dag/run")
    assert not last_move_is(model, MODEL, "champion", "promoted", "1")


@pytest.mark.parametrize(
    ("raw", "read"),
    [
        ('{"action": "promoted"}', []),  # not a list
        ('[{"action": "a"}, "junk", 3, null, {"action": "b"}]', [{"action": "a"}, {"action": "b"}]),
        ("", []),  # an empty tag is no history
    ],
)
def test_the_history_reads_only_its_entries(model: Any, raw: str, read: list[dict[str, Any]]) -> None:
    model.set_registered_model_tag(MODEL, TAG_HISTORY, raw)
    assert audit_history(model, MODEL) == read


def test_a_history_that_is_not_json_raises_when_strict_and_is_restarted_by_the_writers(model: Any) -> None:
    model.set_registered_model_tag(MODEL, TAG_HISTORY, "[{not json")
    with pytest.raises(json.JSONDecodeError):
        audit_history(model, MODEL)
    assert audit_history(model, MODEL, strict=False) == []
    assert not in_history(model, MODEL, "promoted", "1", "r")
    record_audit(model, MODEL, "1", audit_entry("promoted", by="a", alias="champion"), key="promoted")
    assert [e["action"] for e in audit_history(model, MODEL)] == ["promoted"]  # the move is not failed


def test_a_missing_model_is_the_registrys_error(client: Any) -> None:
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException):
        audit_history(client, "no-such-model")


def test_in_history_matches_action_version_and_request(model: Any) -> None:
    entry = audit_entry("rolled_back", by="a", alias="champion", request="dag/run-7")
    record_audit(model, MODEL, 1, entry, key="rolled_back.champion")
    assert in_history(model, MODEL, "rolled_back", "1", "dag/run-7")
    assert in_history(model, MODEL, "rolled_back", 1, "dag/run-7")  # type: ignore[arg-type]
    assert not in_history(model, MODEL, "rolled_back", "1", "dag/run-8")
    assert not in_history(model, MODEL, "rolled_back", "2", "dag/run-7")
    assert not in_history(model, MODEL, "promoted", "1", "dag/run-7")


def test_last_move_is_the_latest_entry_about_that_alias(model: Any) -> None:
    def move(action: str, alias: str, version: str) -> None:
        record_audit(model, MODEL, version, audit_entry(action, by="a", alias=alias), key=f"{action}.{alias}")

    move("promoted", "champion", "1")
    assert last_move_is(model, MODEL, "champion", "promoted", "1")
    move("promoted", "canary", "2")  # another alias's move does not count
    assert last_move_is(model, MODEL, "champion", "promoted", "1")
    assert last_move_is(model, MODEL, "canary", "promoted", 2)  # type: ignore[arg-type]
    move("promoted", "champion", "2")
    assert not last_move_is(model, MODEL, "champion", "promoted", "1")  # an earlier move, not the last
    assert last_move_is(model, MODEL, "champion", "promoted", "2")
    move("rolled_back", "champion", "1")
    assert not last_move_is(model, MODEL, "champion", "promoted", "1")  # the action counts too
    assert last_move_is(model, MODEL, "champion", "rolled_back", "1")
