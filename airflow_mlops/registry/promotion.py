"""Moving aliases on evidence: verification, promotion and rollback (the blessing, the alias lock and
the audit trail they rely on are in ``blessing.py``, ``locks.py`` and ``audit.py`` of this package).

Pure domain code (no Airflow): functions take an ``mlflow.MlflowClient``.

- **Blessing.** The gates' verdict for one exact model digest, stored as the version tag
  ``mlops.blessing`` at registration: the model's sha256, whether every gate passed, which
  champion version the candidate was compared with (or that there was none), and a pointer to
  the evaluation report. Promotion checks the blessing, the signature and the scan of a fresh
  download of the *registered* artifact, and that the champion is still the one the blessing
  compared with: a candidate judged against a champion that has since been replaced is not
  promoted on stale evidence.
- **Alias lock.** MLflow has no compare-and-set on aliases, so two promotions of one model could
  interleave. Every alias move holds a lock: a registered model named
  ``<model>.mlops-lock.<alias>``, whose *creation* is atomic in the registry's database (a second
  creator gets ``RESOURCE_ALREADY_EXISTS``). The loser of a race fails at once, naming the
  holder; a lock whose lease has expired (its holder crashed) is taken over; the same request
  retried re-enters its own lock.
- **One move.** Each alias move is one registry call, so the alias points at the old or the new
  version, never at nothing. What it replaces is recorded on the new version first
  (``mlops.<alias>.previous``), so rollback knows where to go back to.
- **Audit trail.** Every registration, promotion, rollback and rollout decision writes who, what,
  when and why: a JSON version tag ``mlops.audit.<action>[.<alias>]`` and an entry in the
  registered model's ``mlops.audit.history`` (the last :data:`HISTORY_LIMIT` entries, appended
  under the lock), and the same line to the log.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import (
    PromotionBlockedError,
    SignatureVerificationError,
    UnsafeModelError,
)
from airflow_mlops.registry.audit import (
    audit_entry,
    audit_history,
    command_line_actor,
    in_history,
    last_move_is,
    now,
    record_audit,
)
from airflow_mlops.registry.blessing import TAG_BLESSING, Blessing
from airflow_mlops.registry.locks import (
    DEFAULT_LEASE_SECONDS,
    alias_lock,
    is_lock_model,
    lock_name,
)
from airflow_mlops.registry.mlflow_registry import (
    DOES_NOT_EXIST,
    TAG_GATES,
    TAG_MODEL_SHA256,
    champion_version,
    fetch_trusted_version,
    get_version,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from airflow_mlops.security.trust import Trust

log = logging.getLogger(__name__)

# Names callers imported from here before the blessing, the audit trail and the alias lock moved
# to modules of their own (import them from there).
__all__ = [
    "Blessing",
    "TAG_BLESSING",
    "audit_entry",
    "audit_history",
    "is_lock_model",
    "lock_name",
    "record_audit",
]


# --- verification -------------------------------------------------------------------------------


def verify_registered(
    client: MlflowClient,
    model_name: str,
    version: str,
    trust: Trust | bytes,
    *,
    allowed_globals: Sequence[str] = (),
    purpose: str,
    require_attestation: bool = True,
) -> tuple[ModelVersion, Blessing | None]:
    """Download the registered artifact afresh: its signature, digest and scan must all verify,
    and its signed evaluation attestation must be for that digest (see
    :mod:`airflow_mlops.security.attestation`).

    :param require_attestation: a version without an evaluation attestation blocks (promotion);
        with False it is accepted without one (rollback to a version registered before
        attestations existed), but one that is there must verify.
    :returns: the version and the blessing its verified attestation carries (None: none).
    :raises PromotionBlockedError: naming what did not verify; nothing was changed.
    """
    from airflow_mlops.registry.mlflow_registry import EVALUATION_ATTESTATION, download_attestation
    from airflow_mlops.security.attestation import EVALUATION_PREDICATE, verify_envelope

    workdir = Path(tempfile.mkdtemp(prefix="mlops-verify-"))
    attested: Blessing | None = None
    try:
        _, mv = fetch_trusted_version(
            client, model_name, version, trust, workdir, allowed_globals=allowed_globals
        )
        path = download_attestation(client, mv, EVALUATION_ATTESTATION, workdir / "attestation")
        if path is None and require_attestation:
            raise SignatureVerificationError(
                f"it has no signed evaluation attestation ({EVALUATION_ATTESTATION} in run {mv.run_id}): "
                "the gates' verdict is trusted only from a statement signed with the pipeline's key; "
                "re-run the pipeline's evaluate, sign and register stages"
            )
        if path is not None:
            verified = verify_envelope(
                path.read_bytes(),
                trust,
                model_sha256=str((mv.tags or {}).get(TAG_MODEL_SHA256)),
                predicate_type=EVALUATION_PREDICATE,
                what="evaluation attestation",
            )
            attested = Blessing.from_dict(
                verified.predicate.get("blessing") or {}, where="the attested blessing"
            )
    except (SignatureVerificationError, UnsafeModelError) as exc:
        raise PromotionBlockedError(
            f"{purpose}: version {version} of {model_name!r} does not verify: {exc}"
        ) from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if attested is not None and (mv.tags or {}).get(TAG_BLESSING):
        tag = Blessing.of_version(mv)
        core = ("model_sha256", "passed", "compared", "champion_version")
        if any(getattr(tag, k) != getattr(attested, k) for k in core):
            raise PromotionBlockedError(
                f"{purpose}: the blessing tag of version {version} of {model_name!r} differs from its "
                f"signed attestation ({ {k: getattr(tag, k) for k in core} } vs "
                f"{ {k: getattr(attested, k) for k in core} }): the tag was edited; the attestation decides"
            )
    return mv, attested


def check_blessing(
    mv: ModelVersion, *, current_champion: str | None, champion_alias: str, blessing: Blessing | None = None
) -> Blessing:
    """The version's blessing (or the ``blessing`` a rollout gate hands in), checked against the
    registered digest and the current champion.

    :raises PromotionBlockedError: no blessing, a failed one, one for another digest, or one that
        compared with a champion that is no longer the champion.
    """
    where = f"version {mv.version} of {mv.name!r}"
    blessing = blessing or Blessing.of_version(mv)
    registered = (mv.tags or {}).get(TAG_MODEL_SHA256)
    if not blessing.passed:
        raise PromotionBlockedError(
            f"{where} was not promoted: its {blessing.evidence} gates did not all pass ({blessing.by or '?'})"
        )
    if blessing.model_sha256 != registered:
        raise PromotionBlockedError(
            f"{where} was not promoted: its {blessing.evidence} verdict is for model digest "
            f"{blessing.model_sha256}, but the registered model's digest is {registered}"
        )
    if blessing.compared and blessing.champion_version != current_champion:
        then = f"version {blessing.champion_version}" if blessing.champion_version else "no champion"
        now = f"version {current_champion}" if current_champion else "none"
        raise PromotionBlockedError(
            f"{where} was not promoted: its {blessing.evidence} gates compared it with {then} as "
            f"@{champion_alias}, but @{champion_alias} is now {now}. The evidence is stale; re-run "
            "the pipeline so the gates judge it against the current champion."
        )
    return blessing


# --- promotion ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromotionResult:
    model_name: str
    alias: str
    version: str
    previous_version: str | None
    signature_verified: bool
    key_fingerprint: str
    by: str = ""
    reason: str = ""
    approved_by: str | None = None
    traffic_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def previous_tag(alias: str) -> str:
    """The version tag that records which version ``alias`` pointed at before this one."""
    return f"mlops.{alias}.previous"


def rollback_request_tag(alias: str) -> str:
    """The version tag naming the rollback request that pointed ``alias`` back at this version."""
    return f"mlops.{alias}.rollback_request"


def traffic_tag(alias: str) -> str:
    """The registered-model tag that tells the serving layer ``alias``'s share of traffic."""
    return f"mlops.{alias}.traffic_share"


def promote_version(
    client: MlflowClient,
    *,
    model_name: str,
    version: str,
    alias: str,
    trust: Trust | bytes,
    gates_passed: bool = True,
    allowed_globals: Sequence[str] = (),
    champion_alias: str | None = None,
    request_id: str = "",
    by: str = "",
    reason: str = "",
    approved_by: str | None = None,
    traffic_share: float | None = None,
    blessing: Blessing | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> PromotionResult:
    """Point ``alias`` at ``version`` when its evidence holds; one atomic move, under the lock.

    Checked, in order, before anything changes: the gates passed (``gates_passed`` and the
    version's blessing for its exact digest), the registered artifact downloaded afresh verifies
    (signature, digest, scan), and -- under the alias lock -- the champion is still the one the
    blessing compared with. Then the previous version is recorded on the new one, the alias moves,
    and the audit trail is written. A retry of the same request that finds the alias already on
    ``version`` converges (it completes the record instead of moving twice).

    :param alias: the alias to move: the champion alias for a promotion, or a rollout alias
        (``shadow``, ``canary``) while the champion stays put.
    :param champion_alias: the champion alias the blessing's comparison refers to (default:
        ``alias``). For a rollout alias the champion is checked too, so a canary is never
        started against a champion it was not compared with.
    :param blessing: the evidence to check (default: the version's ``mlops.blessing`` tag); a
        rollout gate passes the verdict it reached on live data.
    :param traffic_share: recorded as ``mlops.<alias>.traffic_share`` on the registered model
        (a canary's share of requests, for the serving layer).
    :raises PromotionBlockedError: a check failed; the alias is unchanged.
    :raises PromotionConflictError: another request holds the alias lock; nothing changed.
    """
    from airflow_mlops.security.trust import as_trust

    champion_alias = champion_alias or alias
    what = f"version {version} of {model_name!r} was not promoted to @{alias}"
    if not gates_passed:
        raise PromotionBlockedError(f"{what}: not every gate passed")
    mv = get_version(client, model_name, version)
    if (mv.tags or {}).get(TAG_GATES) != "passed":
        raise PromotionBlockedError(
            f"{what}: it lacks the tag {TAG_GATES}=passed; only versions registered after passing "
            "every gate can be promoted"
        )
    if blessing is None:
        Blessing.of_version(mv)  # fail early, before the download, when there is none
    _, attested = verify_registered(
        client, model_name, version, trust, allowed_globals=allowed_globals, purpose=what
    )
    evidence = blessing or attested
    holder = request_id or f"{by or command_line_actor()} {now()}"
    with alias_lock(client, model_name, alias, holder=holder, lease_seconds=lease_seconds):
        mv = get_version(client, model_name, version)  # tags as they are now, under the lock
        current = champion_version(client, model_name, alias)
        current_version = str(current.version) if current else None
        champion = (
            current if champion_alias == alias else champion_version(client, model_name, champion_alias)
        )
        champion_now = str(champion.version) if champion else None
        tags = mv.tags or {}
        if current_version == str(version):  # an earlier try already moved the alias
            previous_version = tags.get(previous_tag(alias)) or None
            log.info("Alias %s of %s already points at version %s", alias, model_name, version)
        else:
            if attested is None or not attested.passed:
                raise PromotionBlockedError(
                    f"{what}: its signed evaluation attestation does not say it passed"
                )
            check_blessing(
                mv, current_champion=champion_now, champion_alias=champion_alias, blessing=evidence
            )
            previous_version = current_version
            # Recorded *before* the alias moves, so a champion always knows what it replaced.
            if previous_version is not None:
                client.set_model_version_tag(model_name, version, previous_tag(alias), previous_version)
            elif tags.get(previous_tag(alias)):
                client.delete_model_version_tag(model_name, version, previous_tag(alias))
            if blessing is not None:
                client.set_model_version_tag(
                    model_name, version, f"{TAG_BLESSING}.{alias}", blessing.to_tag()
                )
            client.set_registered_model_alias(model_name, alias, version)  # one atomic update
        if traffic_share is not None:
            client.set_registered_model_tag(model_name, traffic_tag(alias), f"{traffic_share:g}")
        client.set_model_version_tag(model_name, version, "mlops.promoted_alias", alias)
        # A retry whose earlier try moved the alias but lost the answer completes the record; a
        # request that finds nothing to move (the alias was put there and recorded) adds nothing.
        if current_version != str(version) or not last_move_is(
            client, model_name, alias, "promoted", version
        ):
            entry = audit_entry(
                "promoted",
                by=by or holder,
                reason=reason,
                alias=alias,
                to=str(version),
                **{"from": previous_version},
                approved_by=approved_by,
                traffic_share=traffic_share,
                request=holder,
            )
            record_audit(client, model_name, version, entry, key=f"promoted.{alias}")
    fingerprint = as_trust(trust).fingerprint
    log.info("Alias %s of %s now points at version %s (was %s)", alias, model_name, version, previous_version)
    return PromotionResult(
        model_name=model_name,
        alias=alias,
        version=str(version),
        previous_version=previous_version,
        signature_verified=True,
        key_fingerprint=fingerprint,
        by=by or holder,
        reason=reason,
        approved_by=approved_by,
        traffic_share=traffic_share,
    )


def remove_alias(
    client: MlflowClient,
    *,
    model_name: str,
    alias: str,
    expected_version: str,
    by: str,
    reason: str,
    request_id: str = "",
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> bool:
    """Take ``alias`` off ``expected_version`` (a rollout that ended), under the lock, audited.

    Returns False when the alias no longer points at ``expected_version`` (someone moved it:
    nothing is removed). The traffic-share tag goes with it.
    """
    from mlflow.exceptions import MlflowException

    holder = request_id or f"{by} {now()}"
    with alias_lock(client, model_name, alias, holder=holder, lease_seconds=lease_seconds):
        current = champion_version(client, model_name, alias)
        if current is None or str(current.version) != str(expected_version):
            return False
        client.delete_registered_model_alias(model_name, alias)
        try:
            client.delete_registered_model_tag(model_name, traffic_tag(alias))
        except MlflowException as exc:
            if exc.error_code != DOES_NOT_EXIST:
                raise
        entry = audit_entry("alias_removed", by=by, reason=reason, alias=alias, version=str(expected_version))
        record_audit(client, model_name, expected_version, entry, key=f"alias_removed.{alias}")
    return True


# --- rollback -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollbackResult:
    model_name: str
    alias: str
    version: str  # what the alias points at now
    rolled_back_from: str
    signature_verified: bool
    key_fingerprint: str
    reason: str
    by: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rollback_alias(
    client: MlflowClient,
    *,
    model_name: str,
    alias: str,
    trust: Trust | bytes,
    allowed_globals: Sequence[str] = (),
    expected_version: str | None = None,
    request_id: str | None = None,
    reason: str = "",
    by: str = "",
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> RollbackResult:
    """Point ``alias`` back at the version it replaced (recorded by :func:`promote_version`).

    The previous version is verified first, like a promotion: its signature and content digest
    on a fresh download, its scan, and its ``mlops.gates=passed`` tag. Under the alias lock the
    alias must still point at the version being rolled back from; it then moves in one registry
    call, so it points at the current or the previous version, never at nothing.

    :param expected_version: roll back only if the alias still points at this version.
    :param request_id: a stable id of this request (e.g. ``dag_id/run_id``): a retry of the same
        request that finds the rollback done returns it instead of rolling back once more.
    :raises PromotionBlockedError: no alias, no recorded previous version, the previous version
        does not verify, or the alias moved meanwhile; the alias is unchanged.
    :raises PromotionConflictError: another request holds the alias lock.
    """
    from airflow_mlops.security.trust import as_trust

    by = by or request_id or command_line_actor()
    current = champion_version(client, model_name, alias)
    if current is None:
        raise PromotionBlockedError(f"{model_name!r} has no @{alias} version: nothing to roll back")
    current_version = str(current.version)
    tags = current.tags or {}
    fingerprint = as_trust(trust).fingerprint
    if request_id and tags.get(rollback_request_tag(alias)) == request_id:
        log.info("Rollback %s of %s@%s was already done by an earlier try", request_id, model_name, alias)
        if not in_history(client, model_name, "rolled_back", current_version, request_id):
            entry = audit_entry(
                "rolled_back",
                by=by,
                reason=reason,
                alias=alias,
                to=current_version,
                **{"from": tags.get(f"mlops.{alias}.rolled_back_from", "")},
                request=request_id,
            )
            record_audit(client, model_name, current_version, entry, key=f"rolled_back.{alias}")
        return RollbackResult(
            model_name,
            alias,
            current_version,
            tags.get(f"mlops.{alias}.rolled_back_from", ""),
            True,
            fingerprint,
            reason,
            by,
        )
    if expected_version is not None and str(expected_version) != current_version:
        raise PromotionBlockedError(
            f"{model_name!r}@{alias} points at version {current_version}, not {expected_version}; "
            "nothing was rolled back"
        )
    target = tags.get(previous_tag(alias))
    if not target:
        raise PromotionBlockedError(
            f"version {current_version} of {model_name!r} (@{alias}) records no previous version "
            f"(tag {previous_tag(alias)}): it was the first {alias}, or was promoted before "
            "rollback existed. Promote the version you want explicitly instead."
        )
    mv = get_version(client, model_name, target)
    if (mv.tags or {}).get(TAG_GATES) != "passed":
        raise PromotionBlockedError(
            f"cannot roll {model_name!r}@{alias} back to version {target}: it lacks {TAG_GATES}=passed"
        )
    verify_registered(
        client,
        model_name,
        target,
        trust,
        allowed_globals=allowed_globals,
        purpose=f"cannot roll {model_name!r}@{alias} back to version {target} (the alias stays on {current_version})",
        require_attestation=False,  # a champion from before attestations existed may be restored
    )
    holder = request_id or f"{by} {now()}"
    with alias_lock(client, model_name, alias, holder=holder, lease_seconds=lease_seconds):
        again = champion_version(client, model_name, alias)
        if again is None or str(again.version) != current_version:
            raise PromotionBlockedError(
                f"{model_name!r}@{alias} moved from version {current_version} to "
                f"{again.version if again else 'nothing'} during the rollback; nothing was rolled back"
            )
        # The record first, then the one atomic move.
        client.set_model_version_tag(model_name, target, f"mlops.{alias}.rolled_back_from", current_version)
        if request_id:
            client.set_model_version_tag(model_name, target, rollback_request_tag(alias), request_id)
        if reason:
            client.set_model_version_tag(
                model_name, current_version, f"mlops.{alias}.rollback_reason", reason[:5000]
            )
        client.set_registered_model_alias(model_name, alias, target)
        entry = audit_entry(
            "rolled_back",
            by=by,
            reason=reason,
            alias=alias,
            to=str(target),
            **{"from": current_version},
            request=request_id or None,
        )
        record_audit(client, model_name, target, entry, key=f"rolled_back.{alias}")
    log.info(
        "Rolled %s@%s back from version %s to %s (%s)",
        model_name,
        alias,
        current_version,
        target,
        reason or "-",
    )
    return RollbackResult(model_name, alias, str(target), current_version, True, fingerprint, reason, by)
