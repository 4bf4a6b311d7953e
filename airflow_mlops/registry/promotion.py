"""Moving aliases on evidence: blessings, the alias lock, promotion, rollback and the audit trail.

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

import datetime as dt
import getpass
import json
import logging
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import (
    PromotionBlockedError,
    PromotionConflictError,
    SignatureVerificationError,
    UnsafeModelError,
)
from airflow_mlops.registry.mlflow_registry import (
    DOES_NOT_EXIST,
    TAG_GATES,
    TAG_MODEL_SHA256,
    champion_version,
    fetch_trusted_version,
    get_version,
    lookup_failed,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from airflow_mlops.security.trust import Trust

log = logging.getLogger(__name__)

TAG_BLESSING = "mlops.blessing"
TAG_HISTORY = "mlops.audit.history"
TAG_LOCK_HOLDER = "mlops.lock.holder"
TAG_LOCK_EXPIRES = "mlops.lock.expires"
TAG_LOCK_ACQUIRED = "mlops.lock.acquired"
LOCK_MARKER = ".mlops-lock."
HISTORY_LIMIT = 50
# The lock is held only around a few registry calls (verification happens before it is taken).
DEFAULT_LEASE_SECONDS = 300.0
_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --- blessing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blessing:
    """The gates' verdict for one exact model digest.

    :param compared: whether champion comparisons were configured. When they were,
        ``champion_version`` is the champion the candidate was held against (None: there was none
        yet, the first-model rule applied) and promotion requires the champion to be unchanged.
    :param evidence: where the verdict came from: ``evaluation`` (the train DAG's gates) or
        ``rollout`` (a shadow/canary gate on live data).
    """

    model_sha256: str
    passed: bool
    compared: bool
    champion_version: str | None
    report: Mapping[str, Any] | None = None
    by: str = ""
    at: str = field(default_factory=_now)
    evidence: str = "evaluation"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "report": dict(self.report) if self.report else None}

    def to_tag(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "blessing") -> Blessing:
        try:
            sha = data["model_sha256"]
            passed = data["passed"]
            compared = data["compared"]
            champion = data.get("champion_version")
        except (KeyError, TypeError) as exc:
            raise PromotionBlockedError(
                f"{where} is malformed (missing {exc}); it cannot be trusted"
            ) from None
        if (
            not isinstance(sha, str)
            or len(sha) != 64
            or not isinstance(passed, bool)
            or not isinstance(compared, bool)
        ):
            raise PromotionBlockedError(f"{where} is malformed ({dict(data)!r}); it cannot be trusted")
        return cls(
            model_sha256=sha,
            passed=passed,
            compared=compared,
            champion_version=None if champion in (None, "") else str(champion),
            report=data.get("report") or None,
            by=str(data.get("by") or ""),
            at=str(data.get("at") or ""),
            evidence=str(data.get("evidence") or "evaluation"),
        )

    @classmethod
    def of_version(cls, mv: ModelVersion) -> Blessing:
        """The blessing recorded on a model version; its absence blocks."""
        where = f"version {mv.version} of {mv.name!r}"
        raw = (mv.tags or {}).get(TAG_BLESSING)
        if not raw:
            raise PromotionBlockedError(
                f"{where} carries no blessing (tag {TAG_BLESSING}): it was not registered by a "
                "pipeline whose gates judged this exact model, so it is never promoted"
            )
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PromotionBlockedError(f"{where}: its {TAG_BLESSING} tag is not JSON ({exc})") from None
        return cls.from_dict(data, where=f"the blessing of {where}")


# --- audit trail --------------------------------------------------------------------------------


def command_line_actor() -> str:
    """Who runs a command by hand: ``cli:<user>@<host>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def audit_entry(action: str, *, by: str, reason: str = "", **fields: Any) -> dict[str, Any]:
    """One audit record: what (``action`` and ``fields``), who (``by``), when (UTC), why."""
    return {"action": action, "at": _now(), "by": by, "reason": reason[:2000], **fields}


def record_audit(
    client: MlflowClient,
    model_name: str,
    version: str | None,
    entry: Mapping[str, Any],
    *,
    key: str,
    history: bool = True,
) -> None:
    """Write ``entry`` as the version tag ``mlops.audit.<key>`` (when a version is given), append
    it to the registered model's history (``history``), and log it.

    The history is read, extended and written back: alias moves do it under their alias lock.
    (Moves of two *different* aliases at the same instant could still lose one history entry;
    the version tags, written first, keep both.)"""
    text = json.dumps(dict(entry), sort_keys=True, default=str)
    if version is not None:
        client.set_model_version_tag(model_name, str(version), f"mlops.audit.{key}", text)
    if not history:
        log.info("audit %s %s v%s: %s", model_name, entry.get("action"), version, text)
        return
    entries = audit_history(client, model_name, strict=False)
    entries = [*entries, {**dict(entry), "version": None if version is None else str(version)}]
    client.set_registered_model_tag(
        model_name, TAG_HISTORY, json.dumps(entries[-HISTORY_LIMIT:], sort_keys=True, default=str)
    )
    log.info("audit %s %s v%s: %s", model_name, entry.get("action"), version, text)


def _in_history(client: MlflowClient, model_name: str, action: str, version: str, request: str) -> bool:
    """Whether the history already records ``action`` on ``version`` by ``request`` (a retry)."""
    return any(
        e.get("action") == action and e.get("version") == str(version) and e.get("request") == request
        for e in audit_history(client, model_name, strict=False)
    )


def _last_move_is(client: MlflowClient, model_name: str, alias: str, action: str, version: str) -> bool:
    """Whether the history's last entry about ``alias`` is ``action`` to ``version``."""
    moves = [e for e in audit_history(client, model_name, strict=False) if e.get("alias") == alias]
    return bool(moves) and moves[-1].get("action") == action and moves[-1].get("version") == str(version)


def audit_history(client: MlflowClient, model_name: str, *, strict: bool = True) -> list[dict[str, Any]]:
    """The registered model's audit history, oldest first.

    :param strict: a history tag that is not JSON raises (``json.JSONDecodeError``); with False it
        reads as empty (the writers start it afresh rather than fail the move they record).
    """
    model = client.get_registered_model(model_name)
    raw = (model.tags or {}).get(TAG_HISTORY) or "[]"
    try:
        history = json.loads(raw)
    except json.JSONDecodeError:
        if strict:
            raise
        return []
    return [dict(e) for e in history if isinstance(e, dict)] if isinstance(history, list) else []


# --- the alias lock -----------------------------------------------------------------------------


def lock_name(model_name: str, alias: str) -> str:
    return f"{model_name}{LOCK_MARKER}{alias}"


def is_lock_model(name: str) -> bool:
    """True for the transient lock entries (hide them from model listings)."""
    return LOCK_MARKER in name


@contextmanager
def alias_lock(
    client: MlflowClient,
    model_name: str,
    alias: str,
    *,
    holder: str,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> Iterator[None]:
    """Hold the lock on ``model_name@alias`` for the block (see the module docstring).

    :param holder: a stable id of this request (``dag_id/run_id`` or the command line's user and
        time): the same request retried after a crash re-enters its lock.
    :raises PromotionConflictError: another request holds an unexpired lock (final: the other
        promotion decides; re-run this one after it, against the new champion).
    :raises RegistryError: the registry failed while taking the lock (transient: retried).
    """
    from mlflow.exceptions import MlflowException

    name = lock_name(model_name, alias)
    where = f"the promotion lock of {model_name!r}@{alias}"
    for _ in range(3):
        expires = time.time() + lease_seconds
        tags = {TAG_LOCK_HOLDER: holder, TAG_LOCK_EXPIRES: f"{expires:.3f}", TAG_LOCK_ACQUIRED: _now()}
        try:
            client.create_registered_model(
                name,
                tags=tags,
                description=f"Transient lock: {holder} is moving @{alias} of {model_name}. Do not edit.",
            )
            break
        except MlflowException as exc:
            if exc.error_code != _ALREADY_EXISTS:
                raise lookup_failed(f"taking {where}", exc) from exc
        except OSError as exc:
            raise lookup_failed(f"taking {where}", exc) from exc
        try:
            current = client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == DOES_NOT_EXIST:
                continue  # released meanwhile: try again
            raise lookup_failed(f"reading {where}", exc) from exc
        current_tags = current.tags or {}
        other = current_tags.get(TAG_LOCK_HOLDER, "?")
        if other == holder:
            log.info("Re-entering %s held by this request (%s)", where, holder)
            client.set_registered_model_tag(name, TAG_LOCK_EXPIRES, f"{expires:.3f}")
            break
        try:
            other_expires = float(current_tags.get(TAG_LOCK_EXPIRES, "0"))
        except ValueError:
            other_expires = 0.0
        if other_expires < time.time():
            log.warning("Taking over %s: its holder %s let the lease expire", where, other)
            _delete_lock(client, name)
            continue
        raise PromotionConflictError(
            f"another request is moving {model_name!r}@{alias}: {other} holds the lock since "
            f"{current_tags.get(TAG_LOCK_ACQUIRED, '?')} (lease until "
            f"{dt.datetime.fromtimestamp(other_expires, dt.UTC).isoformat(timespec='seconds')}). "
            "Nothing was changed; re-run after it, so the gates judge the candidate against the "
            "champion it leaves."
        )
    else:
        raise PromotionConflictError(f"could not take {where}: it changed hands repeatedly")
    try:
        yield
    finally:
        try:
            current = client.get_registered_model(name)
            if (current.tags or {}).get(TAG_LOCK_HOLDER) == holder:
                _delete_lock(client, name)
        except Exception as exc:  # the lease expires on its own; never mask the block's outcome
            log.warning("Could not release %s (%s); its lease expires on its own", where, exc)


def _delete_lock(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != DOES_NOT_EXIST:
            raise lookup_failed(f"releasing lock {name!r}", exc) from exc


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
    holder = request_id or f"{by or command_line_actor()} {_now()}"
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
        if current_version != str(version) or not _last_move_is(
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

    holder = request_id or f"{by} {_now()}"
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
        if not _in_history(client, model_name, "rolled_back", current_version, request_id):
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
    holder = request_id or f"{by} {_now()}"
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
