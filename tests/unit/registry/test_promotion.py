"""Moving aliases on evidence (airflow_mlops.registry.promotion): verification, promotion, alias
removal and rollback.

Against a local MLflow registry (SQLite), with versions registered as the register stage does
(signed, blessed, with a signed evaluation attestation): a move happens only on evidence that
verifies, records what it replaced and its audit entry, converges when retried, and leaves the
alias as it was when anything fails. The same against a real server that goes down mid-move and
with tampered artifacts is in ``tests/integration/test_promotion_reliability.py`` and
``tests/integration/test_promotion_security.py``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.exceptions import PromotionBlockedError, PromotionConflictError, is_retryable
from airflow_mlops.registry.audit import audit_history
from airflow_mlops.registry.blessing import TAG_BLESSING, Blessing
from airflow_mlops.registry.locks import TAG_LOCK_EXPIRES, TAG_LOCK_HOLDER, lock_name
from airflow_mlops.registry.mlflow_registry import TAG_GATES, TAG_MODEL_SHA256
from airflow_mlops.registry.promotion import (
    PromotionResult,
    RollbackResult,
    check_blessing,
    previous_tag,
    promote_version,
    remove_alias,
    rollback_alias,
    rollback_request_tag,
    traffic_tag,
    verify_registered,
)
from airflow_mlops.security.trust import as_trust
from tests.unit.ui.models_registry import register

MODEL = "fraud"
SHA = "ab" * 32


@pytest.fixture
def versions(client: Any, tmp_path: Path, keys: tuple[bytes, bytes]) -> list[str]:
    """Versions 1 and 2 of MODEL, signed and blessed with an evaluation attestation; no alias."""
    return [register(client, tmp_path, keys[0], model=MODEL, tag=f"train/run-{n}") for n in (1, 2)]


def _promote(client: Any, version: str, keys: tuple[bytes, bytes], **kwargs: Any) -> PromotionResult:
    kwargs.setdefault("alias", "champion")
    kwargs.setdefault("by", "tester")
    return promote_version(client, model_name=MODEL, version=version, trust=keys[1], **kwargs)


def _alias(client: Any, alias: str = "champion") -> str | None:
    version = client.get_registered_model(MODEL).aliases.get(alias)
    return None if version is None else str(version)


def _tags(client: Any, version: str) -> dict[str, str]:
    return dict(client.get_model_version(MODEL, version).tags or {})


def _no_lock(client: Any, alias: str = "champion") -> bool:
    return not client.search_registered_models(filter_string=f"name = '{lock_name(MODEL, alias)}'")


def _version(tags: dict[str, str], version: str = "3", name: str = MODEL) -> Any:
    """A model version as the registry answers it, for the checks that only read one."""
    return SimpleNamespace(name=name, version=version, tags=tags)


def _blessing(**fields: Any) -> Blessing:
    values = {"model_sha256": SHA, "passed": True, "compared": False, "champion_version": None, "by": "gates"}
    return Blessing(**{**values, **fields})


# --- tag names ------------------------------------------------------------------------------------


def test_the_tags_of_an_alias_name_it() -> None:
    assert previous_tag("champion") == "mlops.champion.previous"
    assert rollback_request_tag("champion") == "mlops.champion.rollback_request"
    assert traffic_tag("canary") == "mlops.canary.traffic_share"
    assert previous_tag("canary") != previous_tag("champion")


# --- the blessing against the registered digest and the champion ----------------------------------


def test_a_passed_blessing_for_the_registered_digest_holds() -> None:
    blessing = _blessing()
    mv = _version({TAG_MODEL_SHA256: SHA, TAG_BLESSING: blessing.to_tag()})
    assert check_blessing(mv, current_champion="7", champion_alias="champion") == blessing
    # not compared with a champion: whichever champion there is now does not matter
    assert check_blessing(mv, current_champion=None, champion_alias="champion") == blessing


def test_a_blessing_handed_in_is_checked_instead_of_the_tag() -> None:
    mv = _version({TAG_MODEL_SHA256: SHA, TAG_BLESSING: _blessing(passed=False).to_tag()})
    live = _blessing(evidence="rollout")
    assert check_blessing(mv, current_champion=None, champion_alias="champion", blessing=live) is live
    with pytest.raises(PromotionBlockedError, match="its rollout gates did not all pass"):
        check_blessing(
            _version({TAG_MODEL_SHA256: SHA}),
            current_champion=None,
            champion_alias="champion",
            blessing=_blessing(passed=False, evidence="rollout"),
        )


@pytest.mark.parametrize(
    ("tags", "fragment"),
    [
        ({TAG_MODEL_SHA256: SHA}, "carries no blessing"),
        ({TAG_MODEL_SHA256: SHA, TAG_BLESSING: "{"}, "is not JSON"),
        (
            {TAG_MODEL_SHA256: SHA, TAG_BLESSING: _blessing(passed=False).to_tag()},
            "gates did not all pass (gates)",
        ),
        (
            {TAG_MODEL_SHA256: "cd" * 32, TAG_BLESSING: _blessing().to_tag()},
            f"digest {SHA}, but the registered",
        ),
        ({TAG_BLESSING: _blessing().to_tag()}, "registered model's digest is None"),
    ],
    ids=["none", "not-json", "failed", "other-digest", "no-digest"],
)
def test_a_missing_failed_or_foreign_blessing_blocks(tags: dict[str, str], fragment: str) -> None:
    with pytest.raises(PromotionBlockedError, match="version 3 of 'fraud'") as caught:
        check_blessing(_version(tags), current_champion=None, champion_alias="champion")
    assert fragment in str(caught.value)
    assert not is_retryable(caught.value)


@pytest.mark.parametrize(
    ("compared_with", "now", "fragment"),
    [
        ("1", "2", "compared it with version 1 as @champion, but @champion is now version 2"),
        ("1", None, "compared it with version 1 as @champion, but @champion is now none"),
        (None, "2", "compared it with no champion as @champion, but @champion is now version 2"),
    ],
)
def test_a_blessing_compared_with_another_champion_is_stale(
    compared_with: str | None, now: str | None, fragment: str
) -> None:
    blessing = _blessing(compared=True, champion_version=compared_with)
    mv = _version({TAG_MODEL_SHA256: SHA, TAG_BLESSING: blessing.to_tag()})
    with pytest.raises(PromotionBlockedError, match="The evidence is stale") as caught:
        check_blessing(mv, current_champion=now, champion_alias="champion")
    assert fragment in str(caught.value)
    assert check_blessing(mv, current_champion=compared_with, champion_alias="champion") == blessing


# --- verification of the registered artifact ------------------------------------------------------


def test_a_registered_version_verifies_and_yields_its_attested_blessing(
    client: Any, versions: list[str], keys: tuple[bytes, bytes]
) -> None:
    mv, attested = verify_registered(client, MODEL, versions[0], keys[1], purpose="check")
    assert str(mv.version) == versions[0]
    assert attested == Blessing.of_version(mv)
    assert attested.model_sha256 == _tags(client, versions[0])[TAG_MODEL_SHA256]


def test_a_version_under_another_key_does_not_verify(client: Any, versions: list[str]) -> None:
    from airflow_mlops.security.keys import generate_key_pair

    _, other_public = generate_key_pair()
    with pytest.raises(PromotionBlockedError, match=f"why: version {versions[0]} of 'fraud' does not verify"):
        verify_registered(client, MODEL, versions[0], other_public, purpose="why")


def test_an_attestation_is_required_unless_the_caller_restores_an_older_version(
    client: Any, tmp_path: Path, keys: tuple[bytes, bytes]
) -> None:
    version = register(client, tmp_path, keys[0], model=MODEL, tag="train/old", attest=False)
    with pytest.raises(PromotionBlockedError, match="no signed evaluation attestation"):
        verify_registered(client, MODEL, version, keys[1], purpose="promote")
    mv, attested = verify_registered(
        client, MODEL, version, keys[1], purpose="restore", require_attestation=False
    )
    assert (str(mv.version), attested) == (version, None)


def test_an_attestation_signed_with_another_key_does_not_verify(
    client: Any, tmp_path: Path, keys: tuple[bytes, bytes]
) -> None:
    from airflow_mlops.security.keys import generate_key_pair

    forged = register(
        client, tmp_path, keys[0], model=MODEL, tag="train/forged", attest_key=generate_key_pair()[0]
    )
    with pytest.raises(PromotionBlockedError, match="does not verify"):
        verify_registered(client, MODEL, forged, keys[1], purpose="promote", require_attestation=False)


def test_a_blessing_tag_edited_after_the_attestation_blocks(
    client: Any, versions: list[str], keys: tuple[bytes, bytes]
) -> None:
    tag = json.loads(_tags(client, versions[0])[TAG_BLESSING])
    client.set_model_version_tag(MODEL, versions[0], TAG_BLESSING, json.dumps({**tag, "compared": True}))
    with pytest.raises(PromotionBlockedError, match="differs from its signed attestation"):
        verify_registered(client, MODEL, versions[0], keys[1], purpose="promote")


# --- promotion ------------------------------------------------------------------------------------


def test_a_first_promotion_moves_the_alias_and_records_who_and_why(
    client: Any, versions: list[str], keys: tuple[bytes, bytes]
) -> None:
    result = _promote(
        client, versions[0], keys, reason="first model", approved_by="alice", request_id="dag/r1"
    )
    assert _alias(client) == versions[0]
    assert result == PromotionResult(
        model_name=MODEL,
        alias="champion",
        version=versions[0],
        previous_version=None,
        signature_verified=True,
        key_fingerprint=as_trust(keys[1]).fingerprint,
        by="tester",
        reason="first model",
        approved_by="alice",
        traffic_share=None,
    )
    assert result.to_dict()["previous_version"] is None
    tags = _tags(client, versions[0])
    assert tags["mlops.promoted_alias"] == "champion"
    assert previous_tag("champion") not in tags
    audit = json.loads(tags["mlops.audit.promoted.champion"])
    assert (audit["action"], audit["to"], audit["from"], audit["by"]) == (
        "promoted",
        versions[0],
        None,
        "tester",
    )
    assert (audit["approved_by"], audit["request"], audit["reason"]) == ("alice", "dag/r1", "first model")
    assert [(e["action"], e["version"]) for e in audit_history(client, MODEL)] == [("promoted", versions[0])]
    assert _no_lock(client)


def test_a_promotion_records_the_version_it_replaced(
    client: Any, versions: list[str], keys: tuple[bytes, bytes]
) -> None:
    _promote(client, versions[0], keys)
    result = _promote(client, versions[1], keys)
    assert _alias(client) == versions[1]
    assert result.previous_version == versions[0]
    assert _tags(client, versions[1])[previous_tag("champion")] == versions[0]
    assert [e["to"] for e in audit_history(client, MODEL)] == versions
    assert audit_history(client, MODEL)[-1]["from"] == versions[0]


def test_without_a_request_id_the_actor_and_time_hold_the_lock(
    client: Any, versions: list[str], keys: tuple[bytes, bytes]
) -> None:
    result = promote_version(client, model_name=MODEL, version=versions[0], alias="champion", trust=keys[1])
    assert result.by.startswith("cli:")  # the command line's user@host, then the time
    assert audit_history(client, MODEL)[-1]["request"] == result.by


@pytest.mark.parametrize("gates", ["failed", None])
def test_a_version_without_passed_gates_is_never_promoted(
    client: Any, versions: list[str], keys: tuple[bytes, bytes], gates: str | None
) -> None:
    if gates is None:
        client.delete_model_version_tag(MODEL, versions[0], TAG_GATES)
    else:
        client.set_model_version_tag(MODEL, versions[0], TAG_GATES, gates)
    with pytest.raises(PromotionBlockedError, match=r"lacks the tag mlops\.gates=passed"):
        _promote(client, versions[0], keys)
    with pytest.raises(PromotionBlockedError, match="not every gate passed"):
        _promote(client, versions[1], keys, gates_passed=False)
    assert _alias(client) is None
    assert audit_history(client, MODEL) == []


def test_a_version_without_a_blessing_fails_before_any_download(
    client: Any, versions: list[str], keys: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_mlops.registry.promotion as promotion

    client.delete_model_version_tag(MODEL, versions[0], TAG_BLESSING)
    monkeypatch.setattr(promotion, "verify_registered", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(PromotionBlockedError, match="carries no blessing"):
        _promote(client, versions[0], keys)
    assert _alias(client) is None


def test_a_version_whose_attestation_says_failed_is_not_promoted(
    client: Any, tmp_path: Path, keys: tuple[bytes, bytes]
) -> None:
    failed = register(client, tmp_path, keys[0], model=MODEL, tag="train/failed", passed=False)
    client.set_model_version_tag(MODEL, failed, TAG_GATES, "passed")  # the tag edited, not the statement
    with pytest.raises(PromotionBlockedError, match="attestation does not say it passed"):
        _promote(client, failed, keys)
    assert _alias(client) is None


def test_a_version_that_does_not_verify_leaves_the_champion(
    client: Any, versions: list[str], keys: tuple[bytes, bytes]
) -> None:
    from airflow_mlops.security.keys import generate_key_pair

    _promote(client, versions[0], keys)
    with pytest.raises(PromotionBlockedError, match="does not verify"):
        promote_version(
            client, model_name=MODEL, version=versions[1], alias="champion", trust=generate_key_pair()[1]
        )
    assert _alias(client) == versions[0]
    assert previous_tag("champion") not in _tags(client, versions[1])
    assert len(audit_history(client, MODEL)) == 1


def test_a_retried_request_converges_without_a_second_record(
    client: Any, versions: list[str], keys: tuple[bytes, bytes]
) -> None:
    _promote(client, versions[0], keys)
    first = _promote(client, versions[1], keys, request_id="dag/r2")
    again = _promote(client, versions[1], keys, request_id="dag/r2")
    assert _alias(client) == versions[1]
    assert again.previous_version == first.previous_version == versions[0]
    assert [e["to"] for e in audit_history(client, MODEL)] == versions  # recorded once


def test_a_retry_completes_the_record_an_earlier_try_lost(
    client: Any, versions: list[str], keys: tuple[bytes, bytes]
) -> None:
    # an earlier try moved the alias, then died before writing its audit entry
    client.set_registered_model_alias(MODEL, "champion", versions[0])
    result = _promote(client, versions[0], keys, request_id="dag/r1")
    assert result.previous_version is None
    assert [(e["action"], e["to"], e["request"]) for e in audit_history(client, MODEL)] == [
        ("promoted", versions[0], "dag/r1")
    ]


def test_a_promotion_waits_for_no_one_while_another_holds_the_lock(
    client: Any, versions: list[str], keys: tuple[bytes, bytes]
) -> None:
    client.create_registered_model(
        lock_name(MODEL, "champion"),
        tags={TAG_LOCK_HOLDER: "dag/other", TAG_LOCK_EXPIRES: f"{time.time() + 600:.3f}"},
    )
    with pytest.raises(PromotionConflictError, match="dag/other holds the lock"):
        _promote(client, versions[0], keys)
    assert _alias(client) is None
    assert audit_history(client, MODEL) == []


def test_a_rollout_alias_is_checked_against_the_champion(
    client: Any, versions: list[str], keys: tuple[bytes, bytes]
) -> None:
    _promote(client, versions[0], keys)
    digest = _tags(client, versions[1])[TAG_MODEL_SHA256]
    stale = _blessing(model_sha256=digest, compared=True, champion_version="99", evidence="rollout")
    with pytest.raises(PromotionBlockedError, match="@champion is now version 1"):
        _promote(client, versions[1], keys, alias="canary", champion_alias="champion", blessing=stale)
    assert _alias(client, "canary") is None
    live = _blessing(model_sha256=digest, compared=True, champion_version=versions[0], evidence="rollout")
    result = _promote(
        client, versions[1], keys, alias="canary", champion_alias="champion", blessing=live, traffic_share=0.1
    )
    assert (_alias(client, "canary"), _alias(client)) == (versions[1], versions[0])  # the champion stays
    assert result.previous_version is None and result.traffic_share == 0.1
    assert client.get_registered_model(MODEL).tags[traffic_tag("canary")] == "0.1"
    assert Blessing.from_dict(json.loads(_tags(client, versions[1])[f"{TAG_BLESSING}.canary"])) == live
    assert _no_lock(client, "canary")


# --- removing an alias ----------------------------------------------------------------------------


def test_an_ended_rollout_takes_its_alias_and_traffic_share_off(
    client: Any, versions: list[str], keys: tuple[bytes, bytes]
) -> None:
    client.set_registered_model_alias(MODEL, "canary", versions[1])
    client.set_registered_model_tag(MODEL, traffic_tag("canary"), "0.2")
    removed = remove_alias(
        client, model_name=MODEL, alias="canary", expected_version=versions[1], by="dag", reason="ended"
    )
    assert removed
    assert _alias(client, "canary") is None
    assert traffic_tag("canary") not in client.get_registered_model(MODEL).tags
    entry = audit_history(client, MODEL)[-1]
    assert (entry["action"], entry["alias"], entry["version"], entry["reason"]) == (
        "alias_removed",
        "canary",
        versions[1],
        "ended",
    )
    assert "mlops.audit.alias_removed.canary" in _tags(client, versions[1])
    assert _no_lock(client, "canary")


def test_an_alias_without_a_traffic_share_is_removed_too(client: Any, versions: list[str]) -> None:
    client.set_registered_model_alias(MODEL, "shadow", versions[0])
    assert remove_alias(
        client, model_name=MODEL, alias="shadow", expected_version=versions[0], by="d", reason="r"
    )
    assert _alias(client, "shadow") is None


def test_an_alias_that_moved_or_is_gone_is_left_alone(client: Any, versions: list[str]) -> None:
    client.set_registered_model_alias(MODEL, "canary", versions[0])
    assert not remove_alias(
        client, model_name=MODEL, alias="canary", expected_version=versions[1], by="d", reason="r"
    )
    assert _alias(client, "canary") == versions[0]
    assert not remove_alias(
        client, model_name=MODEL, alias="shadow", expected_version=versions[1], by="d", reason="r"
    )
    assert audit_history(client, MODEL) == []
    assert _no_lock(client, "canary") and _no_lock(client, "shadow")


# --- rollback -------------------------------------------------------------------------------------


def test_a_rollback_restores_the_replaced_version_and_records_why(
    client: Any, versions: list[str], keys: tuple[bytes, bytes]
) -> None:
    _promote(client, versions[0], keys)
    _promote(client, versions[1], keys)
    result = rollback_alias(
        client, model_name=MODEL, alias="champion", trust=keys[1], reason="recall fell", request_id="dag/rb"
    )
    assert _alias(client) == versions[0]
    assert result == RollbackResult(
        MODEL,
        "champion",
        versions[0],
        versions[1],
        True,
        as_trust(keys[1]).fingerprint,
        "recall fell",
        "dag/rb",
    )
    restored, replaced = _tags(client, versions[0]), _tags(client, versions[1])
    assert restored["mlops.champion.rolled_back_from"] == versions[1]
    assert restored[rollback_request_tag("champion")] == "dag/rb"
    assert replaced["mlops.champion.rollback_reason"] == "recall fell"
    entry = audit_history(client, MODEL)[-1]
    assert (entry["action"], entry["from"], entry["to"], entry["request"]) == (
        "rolled_back",
        versions[1],
        versions[0],
        "dag/rb",
    )
    assert _no_lock(client)


def test_a_retried_rollback_is_not_done_twice(
    client: Any, versions: list[str], keys: tuple[bytes, bytes]
) -> None:
    _promote(client, versions[0], keys)
    _promote(client, versions[1], keys)
    first = rollback_alias(client, model_name=MODEL, alias="champion", trust=keys[1], request_id="dag/rb")
    again = rollback_alias(client, model_name=MODEL, alias="champion", trust=keys[1], request_id="dag/rb")
    assert again == first
    assert _alias(client) == versions[0]  # not rolled back past it
    assert [e["action"] for e in audit_history(client, MODEL)].count("rolled_back") == 1


def test_a_retried_rollback_completes_a_lost_record(
    client: Any, versions: list[str], keys: tuple[bytes, bytes]
) -> None:
    # an earlier try moved the alias and tagged the request, then died before the audit entry
    client.set_registered_model_alias(MODEL, "champion", versions[0])
    client.set_model_version_tag(MODEL, versions[0], rollback_request_tag("champion"), "dag/rb")
    client.set_model_version_tag(MODEL, versions[0], "mlops.champion.rolled_back_from", versions[1])
    result = rollback_alias(client, model_name=MODEL, alias="champion", trust=keys[1], request_id="dag/rb")
    assert (result.version, result.rolled_back_from) == (versions[0], versions[1])
    assert [(e["action"], e["from"], e["request"]) for e in audit_history(client, MODEL)] == [
        ("rolled_back", versions[1], "dag/rb")
    ]


def test_nothing_to_roll_back_blocks(client: Any, versions: list[str], keys: tuple[bytes, bytes]) -> None:
    with pytest.raises(PromotionBlockedError, match="has no @champion version: nothing to roll back"):
        rollback_alias(client, model_name=MODEL, alias="champion", trust=keys[1])
    _promote(client, versions[0], keys)
    with pytest.raises(PromotionBlockedError, match="records no previous version"):
        rollback_alias(client, model_name=MODEL, alias="champion", trust=keys[1])
    assert _alias(client) == versions[0]


def test_a_rollback_of_a_champion_that_moved_on_blocks(
    client: Any, versions: list[str], keys: tuple[bytes, bytes]
) -> None:
    _promote(client, versions[0], keys)
    _promote(client, versions[1], keys)
    with pytest.raises(PromotionBlockedError, match=f"points at version {versions[1]}, not {versions[0]}"):
        rollback_alias(
            client, model_name=MODEL, alias="champion", trust=keys[1], expected_version=versions[0]
        )
    assert _alias(client) == versions[1]


def test_a_rollback_to_a_version_that_lost_its_gates_or_does_not_verify_blocks(
    client: Any, versions: list[str], keys: tuple[bytes, bytes]
) -> None:
    from airflow_mlops.security.keys import generate_key_pair

    _promote(client, versions[0], keys)
    _promote(client, versions[1], keys)
    with pytest.raises(PromotionBlockedError, match="the alias stays on"):
        rollback_alias(client, model_name=MODEL, alias="champion", trust=generate_key_pair()[1])
    client.set_model_version_tag(MODEL, versions[0], TAG_GATES, "failed")
    with pytest.raises(
        PromotionBlockedError, match=f"back to version {versions[0]}: it lacks mlops.gates=passed"
    ):
        rollback_alias(client, model_name=MODEL, alias="champion", trust=keys[1])
    assert _alias(client) == versions[1]
    assert "rolled_back" not in [e["action"] for e in audit_history(client, MODEL)]


def test_a_rollback_may_restore_a_version_from_before_attestations(
    client: Any, tmp_path: Path, keys: tuple[bytes, bytes]
) -> None:
    old = register(client, tmp_path, keys[0], model=MODEL, tag="train/old", attest=False)
    new = register(client, tmp_path, keys[0], model=MODEL, tag="train/new")
    client.set_registered_model_alias(MODEL, "champion", old)  # promoted before attestations existed
    _promote(client, new, keys)
    result = rollback_alias(client, model_name=MODEL, alias="champion", trust=keys[1], by="alice")
    assert (_alias(client), result.by) == (old, "alice")
