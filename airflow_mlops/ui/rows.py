"""What the Models view shows, read from MLflow: pure domain code (no Airflow import).

:func:`collect_models` returns one :class:`ModelView` per registered model that a pipeline made
(the ``mlops.pipeline`` tag; the transient alias-lock models are hidden), each with its recent
versions and every version an alias points at:

- **aliases** (``champion``, ``challenger``, ``canary``, ...) from the registered model;
- **metrics**: the ``eval_*`` metrics the evaluate stage logged to the version's training run;
- **gates**: from the version's signed evaluation attestation, verified with the pipeline's
  public key (``attested``). Without a key, or without an attestation, only the blessing tag is
  shown and marked as not verified; an attestation that does not verify shows as failed;
- **signature and scan**: checked *on demand* -- a fresh download of exactly what was
  registered, its signature and content digest verified, every file scanned (the same steps as
  promotion). The page checks the versions an alias points at; the others show "not checked"
  and a link that checks them. Results are cached per process for :data:`CHECK_TTL_SECONDS`,
  keyed on the version's recorded digests and the key, so a re-registered artifact or a new
  key is checked afresh. Nothing is shown as verified that was not verified: an error reads as
  "not verified" with the reason;
- **why it was trained** (``retrain``): the retrain reason (:mod:`airflow_mlops.retrain.reason`:
  "feature X drifted in window W", "batch B landed", "scheduled run", "manual run") from the
  verified evaluation attestation (``attested``); without one, from the version's
  ``mlops.retrain.*`` tags, marked as not verified;
- **ML-BOM**: whether the run holds ``attestations/mlbom.cdx.json`` (:func:`mlbom_document`
  serves it);
- **last drift result**: the newest finished monitor run of the model (``mlops.kind=monitor``
  and ``mlops.model_name`` run tags; its ``drifted``/``drift_share`` metrics, ``mlops.drift`` tag).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.drift.history import (
    MONITOR_RUN_KIND,
    TAG_DRIFT,
    TAG_KIND,
    TAG_MODEL_NAME,
    TAG_MODEL_VERSION,
)
from airflow_mlops.exceptions import RegistryLookupError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from airflow_mlops.security.trust import Trust
    from airflow_mlops.ui.suppressed import SuppressedTriggers

log = logging.getLogger(__name__)

CHECK_TTL_SECONDS = 300.0
DEFAULT_MAX_VERSIONS = 10

OK = "ok"
FAILED = "failed"
ERROR = "error"
UNCHECKED = "unchecked"


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``state`` is ok / failed / error / unchecked; ``label`` is what the
    page prints (``verified``, ``clean``, ``FAILED``, ``not verified``, ``not checked``)."""

    state: str
    label: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == OK


NOT_CHECKED = Check(UNCHECKED, "not checked", "open the version's check link to verify it now")


@dataclass(frozen=True)
class Gate:
    name: str
    metric: str | None
    value: Any
    threshold: Any
    passed: bool | None


@dataclass(frozen=True)
class Retrain:
    """Why a version was trained: ``kind`` (drift, new_data, asset, schedule, manual, backfill,
    other), the sentence, and where it was read (``attested`` or ``tag (not verified...)``)."""

    kind: str
    summary: str
    source: str

    @property
    def label(self) -> str:
        """What the row prints: "retrained because feature X drifted in window W", "scheduled run"."""
        if self.kind in ("drift", "new_data", "asset"):
            return f"retrained because {self.summary}"
        return self.summary


@dataclass(frozen=True)
class VersionRow:
    model_name: str
    version: str
    aliases: tuple[str, ...]
    created: str
    run_id: str
    model_sha256: str
    metrics: Mapping[str, float]
    gates_passed: bool | None
    gates_source: str  # "attested", "tag (not verified)", "attestation FAILED: ...", "none"
    gates: tuple[Gate, ...]
    signature: Check
    scan: Check
    has_mlbom: bool
    key_fingerprint: str = ""
    retrain: Retrain | None = None


@dataclass(frozen=True)
class DriftResult:
    run_id: str
    at: str
    verdict: str  # "drift", "no drift" or "data-quality alarm"
    drift_share: float | None
    drifted_features: int | None
    model_version: str
    has_html: bool


@dataclass(frozen=True)
class ModelView:
    name: str
    pipeline: str
    aliases: Mapping[str, str]
    versions: tuple[VersionRow, ...]
    drift: DriftResult | None
    errors: tuple[str, ...] = field(default_factory=tuple)
    #: What the retrain gate held back (``schedule.policy``); None without a retrain ledger.
    suppressed: SuppressedTriggers | None = None


# --- checks on demand ----------------------------------------------------------------------------


class CheckCache:
    """Signature/scan outcomes by ``(model, version, digests, key)``, kept ``ttl`` seconds."""

    def __init__(self, ttl: float = CHECK_TTL_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, ...], tuple[float, tuple[Check, Check]]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> tuple[Check, Check] | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or hit[0] < time.monotonic():
                self._entries.pop(key, None)
                return None
            return hit[1]

    def put(self, key: tuple[str, ...], value: tuple[Check, Check]) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + self.ttl, value)


def _cache_key(mv: ModelVersion, public_key_pem: Trust | bytes) -> tuple[str, ...]:
    from airflow_mlops.registry.mlflow_registry import TAG_MODEL_SHA256, TAG_SIGNATURE_SHA256
    from airflow_mlops.security.trust import as_trust

    tags = mv.tags or {}
    return (
        str(mv.name),
        str(mv.version),
        str(mv.source),
        str(tags.get(TAG_MODEL_SHA256, "")),
        str(tags.get(TAG_SIGNATURE_SHA256, "")),
        as_trust(public_key_pem).fingerprint,
    )


def check_version(
    client: MlflowClient,
    model_name: str,
    version: str,
    public_key_pem: Trust | bytes | None,
    *,
    allowed_globals: Sequence[str] = (),
    cache: CheckCache | None = None,
) -> tuple[Check, Check]:
    """Verify one registered version now: ``(signature, scan)``.

    A fresh download of the registered artifact; its signature and recorded content digest
    verified (:func:`~airflow_mlops.registry.mlflow_registry.fetch_verified_version`), then every
    file scanned. Any failure to decide reads as not verified, with the reason."""
    from airflow_mlops.registry.mlflow_registry import fetch_verified_version, trusted_code
    from airflow_mlops.security.scanning import scan_model_dir

    if not public_key_pem:
        reason = "no public key configured for the Models view (the signing connection has none)"
        return Check(ERROR, "not verified", reason), Check(UNCHECKED, "not checked", reason)
    key: tuple[str, ...] | None = None
    if cache is not None:
        try:
            key = _cache_key(client.get_model_version(model_name, version), public_key_pem)
        except Exception as exc:  # the registry's answer decides nothing: not verified
            return Check(
                ERROR, "not verified", f"reading the version failed: {short_error(exc)}"
            ), NOT_CHECKED
        hit = cache.get(key)
        if hit is not None:
            return hit
    workdir = Path(tempfile.mkdtemp(prefix="mlops-ui-check-"))
    try:
        try:
            model_dir, _ = fetch_verified_version(client, model_name, version, public_key_pem, workdir)
        except Exception as exc:
            from airflow_mlops.exceptions import SignatureVerificationError

            state = FAILED if isinstance(exc, SignatureVerificationError) else ERROR
            label = "FAILED" if state == FAILED else "not verified"
            result = (
                Check(state, label, short_error(exc)),
                Check(UNCHECKED, "not checked", "not scanned: the signature did not verify"),
            )
        else:
            try:
                report = scan_model_dir(
                    model_dir, allowed_globals=allowed_globals, trusted_code=trusted_code()
                )
            except Exception as exc:
                scan = Check(ERROR, "not scanned", short_error(exc))
            else:
                if report.findings:
                    listed = "; ".join(
                        f"{f.path} [{f.kind}] {f.symbol or ''}".strip() for f in report.findings[:5]
                    )
                    scan = Check(FAILED, "UNSAFE", f"{len(report.findings)} finding(s): {listed}")
                else:
                    scan = Check(OK, "clean", f"{report.files_scanned} file(s), no findings")
            result = (Check(OK, "verified", "signature and content digest verified"), scan)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if key is not None and cache is not None and result[0].state != ERROR:
        cache.put(key, result)  # errors (a registry that was down) are retried on the next view
    return result


def short_error(exc: BaseException | str, limit: int = 500) -> str:
    """An error for the page: one line, bounded, server paths and credentials redacted (the page
    goes to a web client; the details are in the api-server log)."""
    from airflow_mlops.redaction import redact_paths

    text = " ".join(redact_paths(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


# --- gates from the signed evaluation attestation -----------------------------------------------


def _gates(
    client: MlflowClient, mv: ModelVersion, public_key_pem: Trust | bytes | None, workdir: Path
) -> tuple[bool | None, str, tuple[Gate, ...], Any]:
    """``(passed, source, gates, retrain reason)``: from the verified attestation, else the
    blessing tag (and no reason: only a verified attestation's reason is returned)."""
    from airflow_mlops.registry.blessing import TAG_BLESSING
    from airflow_mlops.registry.mlflow_registry import (
        EVALUATION_ATTESTATION,
        TAG_GATES,
        TAG_MODEL_SHA256,
        download_attestation,
    )
    from airflow_mlops.security.attestation import EVALUATION_PREDICATE, verify_envelope

    tags = mv.tags or {}
    tag_passed: bool | None = None
    raw = tags.get(TAG_BLESSING)
    if raw:
        try:
            value = json.loads(raw).get("passed")
            tag_passed = value if isinstance(value, bool) else None
        except (json.JSONDecodeError, AttributeError):
            tag_passed = None
    elif tags.get(TAG_GATES) in ("passed", "failed"):
        tag_passed = tags[TAG_GATES] == "passed"
    if not public_key_pem:
        return tag_passed, "tag (not verified: no public key)", (), None
    try:
        path = download_attestation(client, mv, EVALUATION_ATTESTATION, workdir / "evaluation")
    except Exception as exc:
        return None, f"attestation not readable: {short_error(exc, 200)}", (), None
    if path is None:
        return tag_passed, "tag (not verified: no attestation)", (), None
    try:
        verified = verify_envelope(
            path.read_bytes(),
            public_key_pem,
            model_sha256=str(tags.get(TAG_MODEL_SHA256)),
            predicate_type=EVALUATION_PREDICATE,
            what="evaluation attestation",
        )
    except Exception as exc:
        return False, f"attestation FAILED: {short_error(exc, 300)}", (), None
    predicate = verified.predicate
    blessing = predicate.get("blessing") or {}
    passed = blessing.get("passed") if isinstance(blessing, Mapping) else None
    gates = tuple(
        Gate(
            name=str(g.get("name") or g.get("metric") or "?"),
            metric=None if g.get("metric") is None else str(g.get("metric")),
            value=g.get("value"),
            threshold=g.get("threshold"),
            passed=g.get("passed") if isinstance(g.get("passed"), bool) else None,
        )
        for g in (predicate.get("gates") or [])
        if isinstance(g, Mapping)
    )
    passed = passed if isinstance(passed, bool) else None
    return passed, "attested", gates, predicate.get("retrain_reason")


def retrain_of(tags: Mapping[str, Any], attested: Any, source: str) -> Retrain | None:
    """Why the version was trained: the verified attestation's reason (``attested``, when
    ``source`` is ``attested``), else the ``mlops.retrain.*`` tags, marked as not verified."""
    from airflow_mlops.retrain.reason import describe, parse_reason_tags

    if source == "attested" and isinstance(attested, Mapping) and attested.get("kind"):
        reason, where = attested, "attested"
    else:
        parsed = parse_reason_tags(tags)
        if parsed is None:
            return None
        reason, where = parsed, "tag (not verified)"
    summary = reason.get("summary")
    return Retrain(
        kind=str(reason.get("kind")),
        summary=(summary if isinstance(summary, str) and summary else describe(reason))[:500],
        source=where,
    )


# --- the rows ------------------------------------------------------------------------------------


def _iso(millis: Any) -> str:
    if not millis:
        return ""
    return dt.datetime.fromtimestamp(int(millis) / 1000, dt.UTC).isoformat(timespec="seconds")


def _registered_models(client: MlflowClient) -> list[Any]:
    from airflow_mlops.registry.locks import is_lock_model

    models: list[Any] = []
    token: str | None = None
    while True:
        page = client.search_registered_models(max_results=100, page_token=token)
        models.extend(m for m in page if not is_lock_model(str(m.name)))
        token = page.token
        if not token:
            return models


def _quoted(name: str) -> str:
    if "'" in name:
        raise RegistryLookupError(f"model name {name!r} contains a quote; it cannot be searched for")
    return name


def _run_facts(client: MlflowClient, run_id: str) -> tuple[dict[str, float], str | None, set[str]]:
    """``(eval metrics, experiment id, attestation file names)`` of a training run."""
    from airflow_mlops.registry.mlflow_registry import ATTESTATION_ARTIFACT_PATH

    run = client.get_run(run_id)
    metrics = {k[len("eval_") :]: float(v) for k, v in run.data.metrics.items() if k.startswith("eval_")}
    listed = {
        Path(f.path).name for f in client.list_artifacts(run_id, ATTESTATION_ARTIFACT_PATH) if not f.is_dir
    }
    return metrics, str(run.info.experiment_id), listed


def last_drift(client: MlflowClient, model_name: str, experiment_ids: Sequence[str]) -> DriftResult | None:
    """The newest finished monitor run of ``model_name`` in these experiments, or None."""
    if not experiment_ids:
        return None
    runs = client.search_runs(
        list(experiment_ids),
        filter_string=(
            f"tags.`{TAG_KIND}` = '{MONITOR_RUN_KIND}' and tags.`{TAG_MODEL_NAME}` = "
            f"'{_quoted(model_name)}' and attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    run = runs[0]
    metrics, tags = run.data.metrics, run.data.tags
    if metrics.get("quality_failed"):
        verdict = "data-quality alarm"
    elif tags.get(TAG_DRIFT) == "drift" or metrics.get("drifted"):
        verdict = "drift"
    else:
        verdict = "no drift"
    listed = {f.path for f in client.list_artifacts(run.info.run_id, "drift")}
    return DriftResult(
        run_id=str(run.info.run_id),
        at=_iso(run.info.end_time or run.info.start_time),
        verdict=verdict,
        drift_share=metrics.get("drift_share"),
        drifted_features=None
        if metrics.get("drifted_features") is None
        else int(metrics["drifted_features"]),
        model_version=str(tags.get(TAG_MODEL_VERSION, "")),
        has_html="drift/drift_report.html" in listed,
    )


def version_row(
    client: MlflowClient,
    mv: ModelVersion,
    *,
    aliases: Sequence[str],
    public_key_pem: Trust | bytes | None,
    check: bool,
    cache: CheckCache | None = None,
    allowed_globals: Sequence[str] = (),
) -> tuple[VersionRow, str | None]:
    """One version's row, and the experiment id of its run (for the drift lookup)."""
    from airflow_mlops.registry.mlflow_registry import MLBOM_FILE, TAG_KEY_FINGERPRINT, TAG_MODEL_SHA256

    metrics: dict[str, float] = {}
    experiment: str | None = None
    attachments: set[str] = set()
    if mv.run_id:
        metrics, experiment, attachments = _run_facts(client, str(mv.run_id))
    workdir = Path(tempfile.mkdtemp(prefix="mlops-ui-"))
    try:
        passed, source, gates, attested_reason = _gates(client, mv, public_key_pem, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if check:
        signature, scan = check_version(
            client,
            str(mv.name),
            str(mv.version),
            public_key_pem,
            cache=cache,
            allowed_globals=allowed_globals,
        )
    else:
        signature, scan = NOT_CHECKED, NOT_CHECKED
    tags = mv.tags or {}
    row = VersionRow(
        model_name=str(mv.name),
        version=str(mv.version),
        aliases=tuple(sorted(aliases)),
        created=_iso(mv.creation_timestamp),
        run_id=str(mv.run_id or ""),
        model_sha256=str(tags.get(TAG_MODEL_SHA256, "")),
        metrics=metrics,
        gates_passed=passed,
        gates_source=source,
        gates=gates,
        signature=signature,
        scan=scan,
        has_mlbom=MLBOM_FILE in attachments,
        key_fingerprint=str(tags.get(TAG_KEY_FINGERPRINT, "")),
        retrain=retrain_of(tags, attested_reason, source),
    )
    return row, experiment


def collect_models(
    client: MlflowClient,
    *,
    public_key_pem: Trust | bytes | None = None,
    include: Callable[[str], bool] | None = None,
    verify: str = "aliased",
    max_versions: int = DEFAULT_MAX_VERSIONS,
    cache: CheckCache | None = None,
    allowed_globals: Sequence[str] = (),
) -> list[ModelView]:
    """The Models view: every pipeline's registered model with its versions (newest first).

    :param include: called with a pipeline name; False hides its models (the caller's
        permission check). Default: every pipeline.
    :param verify: which versions to check the signature and scan of now: ``aliased`` (those
        an alias points at), ``all`` or ``none``.
    :param max_versions: how many of the newest versions to list (aliased ones always are).
    :raises RegistryError: listing the registered models failed (one model's failure is
        reported in its :attr:`ModelView.errors` instead, the others still show).
    """
    from airflow_mlops.registry.mlflow_registry import TAG_PIPELINE, lookup_failed

    if verify not in ("aliased", "all", "none"):
        raise ValueError(f"verify must be 'aliased', 'all' or 'none', got {verify!r}")
    try:
        models = _registered_models(client)
    except Exception as exc:
        raise lookup_failed("listing the registered models for the Models view", exc) from exc
    views = []
    for model in sorted(models, key=lambda m: str(m.name)):
        pipeline = (model.tags or {}).get(TAG_PIPELINE)
        if not pipeline or (include is not None and not include(str(pipeline))):
            continue
        views.append(
            _model_view(
                client, model, str(pipeline), public_key_pem, verify, max_versions, cache, allowed_globals
            )
        )
    return views


def _model_view(
    client: MlflowClient,
    model: Any,
    pipeline: str,
    public_key_pem: Trust | bytes | None,
    verify: str,
    max_versions: int,
    cache: CheckCache | None,
    allowed_globals: Sequence[str],
) -> ModelView:
    name = str(model.name)
    aliases = {str(a): str(v) for a, v in (model.aliases or {}).items()}
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    errors: list[str] = []
    try:
        newest = list(
            client.search_model_versions(
                f"name = '{_quoted(name)}'", max_results=max_versions, order_by=["version_number DESC"]
            )
        )
    except Exception as exc:
        return ModelView(
            name, pipeline, aliases, (), None, (f"listing the versions failed: {short_error(exc)}",)
        )
    listed = {str(mv.version) for mv in newest}
    for version in sorted(set(by_version) - listed, key=_version_number, reverse=True):
        try:
            newest.append(client.get_model_version(name, version))
        except Exception as exc:
            errors.append(f"version {version} (@{', @'.join(by_version[version])}): {short_error(exc)}")
    rows: list[VersionRow] = []
    experiments: set[str] = set()
    for mv in sorted(newest, key=lambda m: _version_number(str(m.version)), reverse=True):
        version_aliases = by_version.get(str(mv.version), [])
        check = verify == "all" or (verify == "aliased" and bool(version_aliases))
        try:
            row, experiment = version_row(
                client,
                mv,
                aliases=version_aliases,
                public_key_pem=public_key_pem,
                check=check,
                cache=cache,
                allowed_globals=allowed_globals,
            )
        except Exception as exc:
            errors.append(f"version {mv.version}: {short_error(exc)}")
            continue
        rows.append(row)
        if experiment:
            experiments.add(experiment)
    drift = None
    try:
        drift = last_drift(client, name, sorted(experiments))
    except Exception as exc:
        errors.append(f"reading the last drift result failed: {short_error(exc)}")
    return ModelView(name, pipeline, aliases, tuple(rows), drift, tuple(errors))


def _version_number(version: str) -> int:
    try:
        return int(version)
    except ValueError:
        return -1
