"""MLflow tracking and registry: runs, packaging, registration, verified download, promotion.

Pure domain code (no Airflow): functions take an ``mlflow.MlflowClient``. Identity is stable: a
training run is found again by its ``mlops.airflow_run`` tag, and a model version by its
``mlops.airflow_run`` and ``mlops.model_sha256`` tags, so a retried task reuses what its earlier
try made. Promotion, rollback and the audit trail are in :mod:`airflow_mlops.registry.promotion`.

Fail closed: only MLflow's exact ``RESOURCE_DOES_NOT_EXIST`` answer (or a successful answer that
lacks the thing, e.g. a model without the alias) means "absent". Any other error -- a proxy's
HTML 404, a 500, a refused permission -- raises :class:`~airflow_mlops.exceptions.RegistryError`
(transient: network, 5xx; retried) or :class:`~airflow_mlops.exceptions.RegistryLookupError`
(final), naming the lookup that failed, so the gate that needed the answer blocks.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.artifacts import sha256_directory
from airflow_mlops.digests import sha256_file
from airflow_mlops.exceptions import (
    RegistryError,
    RegistryLookupError,
    SignatureVerificationError,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from airflow_mlops.security.trust import Trust

log = logging.getLogger(__name__)

# MLflow's exact answer for "this model / alias / version / run / artifact does not exist".
DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
# HTTP statuses worth a retry (the ones MLflow's own client retries on).
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_MAX_DETAIL = 400

TAG_AIRFLOW_RUN = "mlops.airflow_run"
TAG_PIPELINE = "mlops.pipeline"
TAG_MODEL_SHA256 = "mlops.model_sha256"
TAG_SIGNATURE_SHA256 = "mlops.signature_sha256"
TAG_KEY_FINGERPRINT = "mlops.signing_key_fingerprint"
TAG_GATES = "mlops.gates"
TAG_DATA_SHA256 = "mlops.data_sha256"
# The ArtifactRef (JSON) of the accepted rows a version was trained on: the monitor's reference.
TAG_TRAINING_DATA = "mlops.training_data"
MODEL_ARTIFACT_PATH = "model"
SIGNATURE_ARTIFACT_PATH = "signature"
SIGNATURE_FILE = "model.sig"
# Signed in-toto statements about the model (DSSE envelopes), logged beside it in the run.
ATTESTATION_ARTIFACT_PATH = "attestations"
EVALUATION_ATTESTATION = "evaluation.intoto.json"
MLBOM_ATTESTATION = "mlbom.intoto.json"
MLBOM_FILE = "mlbom.cdx.json"
TAG_ATTESTATION_SHA256 = "mlops.attestation_sha256"
#: Prefix of the run tags recording the sha256 of each report logged to a run (the tag's suffix
#: is the artifact path); the Models view serves a run's report only when its bytes match.
TAG_REPORT_SHA256 = "mlops.report_sha256/"
WRAPPER_FILE = "pyfunc_model.py"
WEIGHTS_ARTIFACT = "weights"
#: The wrapper of earlier releases (binary torch models), still trusted by its exact sha256 so
#: that versions registered before stay loadable and promotable.
LEGACY_WRAPPER_FILE = "pyfunc_wrapper.py"
LEGACY_WRAPPER_SHA256 = "4144905fbe2fb062710f35aa101c6c4db30b34764cbe7798cb70a7aba6f5d6cb"
#: What a served model of each flavor needs besides airflow-mlops (its wrapper imports it), in
#: the model's ``requirements.txt`` (MLflow adds itself); see :func:`serving_requirements`.
SERVING_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "torch": ("torch", "safetensors", "numpy", "pandas"),
    "xgboost": ("xgboost", "numpy", "pandas"),
    "lightgbm": ("lightgbm", "numpy", "pandas"),
    "sklearn": ("scikit-learn", "skops", "numpy", "pandas"),
}
#: The ``params`` a served model takes (MLflow passes only the ones its signature declares).
PREDICT_PARAMS = {"output": "probabilities"}


def wrapper_path() -> Path:
    return Path(__file__).with_name(WRAPPER_FILE)


def trusted_code() -> dict[str, str]:
    """Code files the scanner accepts in a packaged model: our wrappers, by exact sha256."""
    return {WRAPPER_FILE: sha256_file(wrapper_path()), LEGACY_WRAPPER_FILE: LEGACY_WRAPPER_SHA256}


def serving_requirements(config: Mapping[str, Any]) -> list[str]:
    """The packages a served model needs, from its ``model_config.json``: the library it was
    trained with at the version it records (``framework``), then the flavor's other packages at
    the versions installed here (unpinned when one is not installed: the packaging worker need
    not have the trainer image's libraries). A local build label such as ``+cpu`` is dropped.

    :raises RegistryError: an unknown flavor.
    """
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import InvalidVersion, Version

    flavor = config.get("flavor")
    if flavor not in SERVING_REQUIREMENTS:
        raise RegistryError(f"unknown model flavor {flavor!r}; one of {', '.join(SERVING_REQUIREMENTS)}")
    framework = config.get("framework") or {}
    recorded = {str(framework.get("name")): framework.get("version")}
    if flavor == "torch" and config.get("torch_version"):  # format 1 models record only this
        recorded.setdefault("torch", config["torch_version"])

    def release(value: Any) -> str | None:
        text = str(value).split("+", 1)[0] if value else ""
        try:
            Version(text)
        except InvalidVersion:  # "unknown", or anything pip would refuse
            return None
        return text

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    pinned = []
    for name in SERVING_REQUIREMENTS[flavor]:
        pin = release(recorded.get(name)) or release(installed(name))
        pinned.append(f"{name}=={pin}" if pin else name)
    return pinned


def package_model(
    payload_dir: str | Path, out_dir: str | Path, *, pip_requirements: Sequence[str] | None = None
) -> Path:
    """Wrap a trainer's output (``model_config.json`` and its weights) as an MLflow pyfunc model
    directory (see :mod:`airflow_mlops.registry.pyfunc_model` for what it predicts).

    :param pip_requirements: default: the model's :func:`serving_requirements`.
    :raises ArtifactError: ``payload_dir`` holds no readable ``model_config.json``.
    """
    import mlflow
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec

    from airflow_mlops.training.flavors import read_config

    config = read_config(payload_dir)
    requirements = list(pip_requirements) if pip_requirements is not None else serving_requirements(config)
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    mlflow.pyfunc.save_model(
        path=str(out),
        python_model=str(wrapper_path()),
        artifacts={WEIGHTS_ARTIFACT: str(payload_dir)},
        pip_requirements=requirements,
        signature=ModelSignature(
            params=ParamSchema([ParamSpec(k, "string", v) for k, v in PREDICT_PARAMS.items()])
        ),
    )
    return out


def weights_dir(model_dir: str | Path) -> Path:
    """Where the trainer's files live inside a packaged model directory (as its MLmodel says)."""
    import yaml

    root = Path(model_dir)
    try:
        mlmodel = yaml.safe_load((root / "MLmodel").read_text())
        relative = mlmodel["flavors"]["python_function"]["artifacts"][WEIGHTS_ARTIFACT]["path"]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise RegistryError(f"{root} is not a model packaged by airflow-mlops (MLmodel: {exc})") from None
    path = (root / relative).resolve()
    if root.resolve() not in path.parents:
        raise RegistryError(f"{root}/MLmodel points its weights outside the model directory: {relative}")
    return path


# --- registry answers ---------------------------------------------------------------------------


def _does_not_exist(exc: BaseException) -> bool:
    """True only for MLflow's exact "does not exist" answer (never a substring of a message)."""
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException) and exc.error_code == DOES_NOT_EXIST


def lookup_failed(what: str, exc: BaseException) -> RegistryError:
    """The error for a registry call that failed with anything but "does not exist".

    Transient failures (network, timeouts, 408/429/5xx) give a retryable
    :class:`RegistryError`; every other answer a final :class:`RegistryLookupError`.
    """
    from mlflow.exceptions import MlflowException

    detail = " ".join(str(exc).split())
    if len(detail) > _MAX_DETAIL:
        detail = detail[:_MAX_DETAIL] + "..."
    if isinstance(exc, MlflowException):
        # MLflow maps a non-JSON answer's HTTP status to a code (404 -> ENDPOINT_NOT_FOUND) and
        # a network error to INTERNAL_ERROR; the code's HTTP status says whether to retry.
        answer = str(exc.error_code)
        transient = int(exc.get_http_status_code()) in _TRANSIENT_STATUS
    else:
        answer = type(exc).__name__
        transient = isinstance(exc, OSError)  # connection refused/reset, timeouts
    if transient:
        return RegistryError(
            f"{what} failed with {answer}: {detail}. The registry is unreachable or failing; the "
            "task retries, and nothing that depends on this answer passes until it succeeds."
        )
    return RegistryLookupError(
        f"{what} failed with {answer}, which is not MLflow's {DOES_NOT_EXIST} answer: {detail}. "
        "Check the MLflow connection's URL (is a proxy answering instead of the server?), its "
        "credentials and permissions; nothing that depends on this answer passes."
    )


# --- tracking ---------------------------------------------------------------------------------


def ensure_experiment(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return str(experiment.experiment_id)
    return str(client.create_experiment(name))


def start_or_resume_run(
    client: MlflowClient, *, experiment: str, pipeline: str, airflow_run: str, run_name: str
) -> str:
    """The MLflow run for this Airflow run: found by tag if an earlier try made it, else new."""
    experiment_id = ensure_experiment(client, experiment)
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{TAG_AIRFLOW_RUN}` = '{airflow_run}'", max_results=1
    )
    if found:
        run_id = str(found[0].info.run_id)
        log.info("Resuming MLflow run %s for %s", run_id, airflow_run)
        if found[0].info.status != "RUNNING":
            client.update_run(run_id, status="RUNNING")
        return run_id
    run = client.create_run(
        experiment_id, run_name=run_name, tags={TAG_AIRFLOW_RUN: airflow_run, TAG_PIPELINE: pipeline}
    )
    return str(run.info.run_id)


def log_run_data(
    client: MlflowClient,
    run_id: str,
    *,
    params: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    import time

    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    existing = client.get_run(run_id).data.params
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items() if v == v],
        params=[Param(k, str(v)[:6000]) for k, v in (params or {}).items() if k not in existing],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
    )


def log_report(client: MlflowClient, run_id: str, data: bytes, artifact_path: str) -> None:
    """Log one report (``data``, to ``artifact_path`` such as ``drift/drift_report.html``) to a
    run and record its sha256 in the run tag ``mlops.report_sha256/<artifact_path>``.

    The tag is set after the upload, so a report whose upload was interrupted has no record and
    is never served (the Models view refuses a report without a recorded digest).
    """
    import hashlib

    folder, _, name = artifact_path.rpartition("/")
    with tempfile.TemporaryDirectory(prefix="mlops-report-") as tmp:
        local = Path(tmp) / name
        local.write_bytes(data)
        client.log_artifact(run_id, str(local), folder or None)
    client.set_tag(run_id, TAG_REPORT_SHA256 + artifact_path, hashlib.sha256(data).hexdigest())


# --- registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisteredVersion:
    model_name: str
    version: str
    source: str
    run_id: str
    model_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _find_version(client: MlflowClient, name: str, airflow_run: str, sha: str) -> ModelVersion | None:
    for mv in client.search_model_versions(f"name = '{name}'"):
        tags = mv.tags or {}
        if tags.get(TAG_AIRFLOW_RUN) == airflow_run and tags.get(TAG_MODEL_SHA256) == sha:
            return mv
    return None


def _ensure_registered_model(client: MlflowClient, model_name: str, *, pipeline: str) -> None:
    """Create the registered model when (and only when) MLflow says it does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
        return
    except MlflowException as exc:
        if not _does_not_exist(exc):
            raise lookup_failed(
                f"looking up registered model {model_name!r} before registering", exc
            ) from exc
    except OSError as exc:
        raise lookup_failed(f"looking up registered model {model_name!r} before registering", exc) from exc
    try:
        client.create_registered_model(model_name, tags={TAG_PIPELINE: pipeline})
        log.info("Created registered model %s", model_name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # a concurrent try created it: fine
            raise lookup_failed(f"creating registered model {model_name!r}", exc) from exc


def register_version(
    client: MlflowClient,
    *,
    model_name: str,
    run_id: str,
    model_dir: str | Path,
    signature_path: str | Path,
    airflow_run: str,
    tags: dict[str, str],
    description: str = "",
    attachments: Mapping[str, str | Path] | None = None,
) -> RegisteredVersion:
    """Log the signed model and its signature to the run and create (or reuse) a model version.

    :param attachments: ``{file name: local path}`` logged under ``attestations/`` of the run
        (the signed evaluation attestation, the ML-BOM and its attestation); the evaluation
        attestation's sha256 is tagged on the version (``mlops.attestation_sha256``)."""
    sha, _ = sha256_directory(model_dir)
    existing = _find_version(client, model_name, airflow_run, sha)
    if existing is not None:
        log.info("Model version %s of %s already registered by an earlier try", existing.version, model_name)
        return RegisteredVersion(model_name, str(existing.version), str(existing.source), run_id, sha)
    _ensure_registered_model(client, model_name, pipeline=tags.get(TAG_PIPELINE, ""))
    client.log_artifacts(run_id, str(model_dir), MODEL_ARTIFACT_PATH)
    with tempfile.TemporaryDirectory() as staging:  # always stored as signature/model.sig
        canonical = Path(staging) / SIGNATURE_FILE
        shutil.copyfile(signature_path, canonical)
        client.log_artifact(run_id, str(canonical), SIGNATURE_ARTIFACT_PATH)
        for name, path in (attachments or {}).items():
            staged = Path(staging) / name
            shutil.copyfile(path, staged)
            client.log_artifact(run_id, str(staged), ATTESTATION_ARTIFACT_PATH)
    run = client.get_run(run_id)
    source = f"{run.info.artifact_uri.rstrip('/')}/{MODEL_ARTIFACT_PATH}"
    all_tags = {
        **tags,
        TAG_AIRFLOW_RUN: airflow_run,
        TAG_MODEL_SHA256: sha,
        TAG_SIGNATURE_SHA256: sha256_file(signature_path),
    }
    if attachments and EVALUATION_ATTESTATION in attachments:
        all_tags[TAG_ATTESTATION_SHA256] = sha256_file(attachments[EVALUATION_ATTESTATION])
    mv = client.create_model_version(
        model_name, source=source, run_id=run_id, tags=all_tags, description=description or None
    )
    if str(mv.status) not in ("READY", "ModelVersionStatus.READY"):
        raise RegistryError(f"model version {mv.version} of {model_name} is {mv.status}, not READY")
    return RegisteredVersion(model_name, str(mv.version), source, run_id, sha)


def get_version(client: MlflowClient, model_name: str, version: str) -> ModelVersion:
    """The model version; its absence and any other failure are errors that say which."""
    from mlflow.exceptions import MlflowException

    where = f"model version {version} of {model_name!r}"
    try:
        return client.get_model_version(model_name, version)
    except (MlflowException, OSError) as exc:
        if _does_not_exist(exc):
            raise RegistryLookupError(
                f"{where} does not exist in the registry ({exc}); check the model name and version"
            ) from exc
        raise lookup_failed(f"looking up {where}", exc) from exc


def download_version(
    client: MlflowClient, model_name: str, version: str, dest: str | Path
) -> tuple[Path, Path, ModelVersion]:
    """Download exactly what was registered (the run's model artifact) and its signature."""
    import mlflow
    from mlflow.exceptions import MlflowException

    where = f"model version {version} of {model_name!r}"
    mv = get_version(client, model_name, version)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tracking_uri = client._tracking_client.tracking_uri
    try:
        model_dir = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=mv.source, dst_path=str(dest / "version"), tracking_uri=tracking_uri
            )
        )
    except (MlflowException, OSError) as exc:
        raise lookup_failed(f"downloading {where} from {mv.source}", exc) from exc
    # Not ``runs:/`` URIs: MLflow's runs artifact repository turns *any* download error into
    # RESOURCE_DOES_NOT_EXIST. Listing the run's signature folder answers exactly.
    sig_rel = f"{SIGNATURE_ARTIFACT_PATH}/{SIGNATURE_FILE}"
    unsigned = (
        f"{where} has no signature artifact ({sig_rel} in run {mv.run_id}). Unsigned models are "
        "never promoted or loaded; re-run the pipeline's sign and register stages."
    )
    if not mv.run_id:
        raise SignatureVerificationError(f"{unsigned} (the version records no run)")
    try:
        run = client.get_run(mv.run_id)
        listed = {f.path for f in client.list_artifacts(mv.run_id, SIGNATURE_ARTIFACT_PATH)}
    except (MlflowException, OSError) as exc:
        if _does_not_exist(exc):
            raise SignatureVerificationError(f"{unsigned} (the run: {exc})") from exc
        raise lookup_failed(f"looking up the signature of {where} in run {mv.run_id}", exc) from exc
    if sig_rel not in listed:
        raise SignatureVerificationError(unsigned)
    try:
        sig_path = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{run.info.artifact_uri.rstrip('/')}/{sig_rel}",
            dst_path=str(dest / "signature"),
            tracking_uri=tracking_uri,
        )
    except (MlflowException, OSError) as exc:
        raise lookup_failed(f"downloading the signature of {where} ({sig_rel})", exc) from exc
    return model_dir, Path(sig_path), mv


def download_attestation(client: MlflowClient, mv: ModelVersion, name: str, dest: str | Path) -> Path | None:
    """Download ``attestations/<name>`` of the version's run; None when the run has none (an
    exact listing, never a download error read as absence)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    where = f"the attestation {name} of version {mv.version} of {mv.name!r}"
    rel = f"{ATTESTATION_ARTIFACT_PATH}/{name}"
    if not mv.run_id:
        return None
    try:
        run = client.get_run(mv.run_id)
        listed = {f.path for f in client.list_artifacts(mv.run_id, ATTESTATION_ARTIFACT_PATH)}
    except (MlflowException, OSError) as exc:
        if _does_not_exist(exc):
            return None
        raise lookup_failed(f"looking up {where}", exc) from exc
    if rel not in listed:
        return None
    try:
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{run.info.artifact_uri.rstrip('/')}/{rel}",
                dst_path=str(Path(dest)),
                tracking_uri=client._tracking_client.tracking_uri,
            )
        )
    except (MlflowException, OSError) as exc:
        raise lookup_failed(f"downloading {where}", exc) from exc


def fetch_verified_version(
    client: MlflowClient, model_name: str, version: str, trust: Trust | bytes, dest: str | Path
) -> tuple[Path, ModelVersion]:
    """Download a registered version and verify its signature and recorded digest; fail closed."""
    from airflow_mlops.security.signing import verify_model

    model_dir, sig_path, mv = download_version(client, model_name, version, dest)
    verify_model(model_dir, sig_path, trust)
    expected = (mv.tags or {}).get(TAG_MODEL_SHA256)
    actual, _ = sha256_directory(model_dir)
    if expected != actual:
        raise SignatureVerificationError(
            f"model version {version} of {model_name}: content digest {actual} differs from the "
            f"registered {TAG_MODEL_SHA256}={expected}"
        )
    return model_dir, mv


def champion_version(
    client: MlflowClient, model_name: str, alias: str, *, pipeline: str | None = None
) -> ModelVersion | None:
    """The version ``alias`` points at, or None when there is no champion yet; fails closed.

    None only for an exact "absent" answer:

    - the registered model exists and has no such alias (MLflow answers the model, without it);
    - the registered model does not exist (MLflow's ``RESOURCE_DOES_NOT_EXIST``) *and* no other
      registered model carries this ``pipeline``'s tag, i.e. the pipeline never registered one.
      Without ``pipeline`` a missing model cannot be told from a misspelt name, so it raises.

    :raises RegistryLookupError: the model is missing but ``pipeline`` registered others (a
        misspelt or renamed model name?), or no ``pipeline`` was given; a lookup got a final
        answer other than "does not exist" (a proxy's 404 page, 403, ...).
    :raises RegistryError: a lookup failed transiently (network, 5xx); retryable.
    """
    from mlflow.exceptions import MlflowException

    where = f"{model_name!r}@{alias}"
    try:
        model = client.get_registered_model(model_name)
    except (MlflowException, OSError) as exc:
        if not _does_not_exist(exc):
            raise lookup_failed(
                f"champion lookup {where}: reading registered model {model_name!r}", exc
            ) from exc
        _ensure_never_registered(client, model_name, alias, pipeline)
        return None
    if alias not in (model.aliases or {}):
        log.info("Registered model %s has no alias %s: no champion yet", model_name, alias)
        return None
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except (MlflowException, OSError) as exc:
        # The model has the alias, so no answer here can mean "no champion".
        raise lookup_failed(f"champion lookup {where}: reading the version the alias points at", exc) from exc


def _ensure_never_registered(client: MlflowClient, model_name: str, alias: str, pipeline: str | None) -> None:
    """Return when ``pipeline`` never registered a model; else raise the misspelt-name error."""
    from mlflow.exceptions import MlflowException

    if not pipeline:
        raise RegistryLookupError(
            f"champion lookup {model_name!r}@{alias}: registered model {model_name!r} does not exist, "
            "and without the pipeline name a first model cannot be told from a misspelt name. "
            "Pass pipeline=..., or create the registered model in MLflow to start it on purpose."
        )
    if "'" in pipeline:
        raise RegistryLookupError(f"pipeline name {pipeline!r} contains a quote; it cannot be searched for")
    try:
        tagged = client.search_registered_models(
            filter_string=f"tags.`{TAG_PIPELINE}` = '{pipeline}'", max_results=20
        )
    except (MlflowException, OSError) as exc:
        raise lookup_failed(
            f"champion lookup {model_name!r}@{alias}: searching the models of pipeline {pipeline!r}", exc
        ) from exc
    others = sorted(str(m.name) for m in tagged if m.name != model_name)
    if others:
        raise RegistryLookupError(
            f"champion lookup {model_name!r}@{alias}: registered model {model_name!r} does not exist, "
            f"but pipeline {pipeline!r} registered {', '.join(others)}. Is the model name misspelt? "
            "Fix it in the spec; to start a new model on purpose, create the registered model "
            f"{model_name!r} in MLflow first (it then has no champion and the first-model rule applies)."
        )
    log.info(
        "Registered model %s does not exist and pipeline %s never registered one: no champion yet",
        model_name,
        pipeline,
    )


def fetch_trusted_champion(
    client: MlflowClient,
    model_name: str,
    alias: str,
    trust: Trust | bytes,
    dest: str | Path,
    *,
    allowed_globals: Sequence[str] = (),
    pipeline: str | None = None,
) -> tuple[str, Path] | None:
    """The champion, downloaded, signature-verified and scanned, ready to load; None if none yet.

    :param pipeline: the pipeline name; lets a registered model that does not exist yet count as
        "first model" (see :func:`champion_version`). Without it a missing model raises.
    :returns: ``(version, model_dir)``, or None when there is no champion (see
        :func:`champion_version` for exactly when).
    :raises SignatureVerificationError: the champion is unsigned or its signature/digest does not
        verify. :raises UnsafeModelError: the scan found content that could run code on load.
    :raises RegistryError: a lookup failed (see :func:`champion_version`).
    """
    champion = champion_version(client, model_name, alias, pipeline=pipeline)
    if champion is None:
        return None
    version = str(champion.version)
    try:
        model_dir, _ = fetch_trusted_version(
            client, model_name, version, trust, dest, allowed_globals=allowed_globals
        )
    except SignatureVerificationError as exc:
        raise SignatureVerificationError(
            f"champion {model_name!r}@{alias} (version {version}) cannot be trusted: {exc}"
        ) from exc
    log.info("Champion %s@%s is version %s: signature verified, scan clean", model_name, alias, version)
    return version, model_dir


def fetch_trusted_version(
    client: MlflowClient,
    model_name: str,
    version: str,
    trust: Trust | bytes,
    dest: str | Path,
    *,
    allowed_globals: Sequence[str] = (),
) -> tuple[Path, ModelVersion]:
    """The one verify-before-load step of every stage that loads or promotes a registered model
    (evaluation's champion, the monitor's batch inference, the rollout gate, promotion, rollback):
    a fresh download of exactly what was registered, its signature and content digest verified
    (a failure names the file that differs, or the extra or missing file), then every file scanned.

    :raises SignatureVerificationError: unsigned, or the signature or digest does not verify.
    :raises UnsafeModelError: the scan found content that could run code on load.
    """
    from airflow_mlops.security.scanning import scan_model_dir

    model_dir, mv = fetch_verified_version(client, model_name, version, trust, dest)
    scan_model_dir(model_dir, allowed_globals=allowed_globals, trusted_code=trusted_code()).ensure_safe()
    return model_dir, mv
