"""MLflow tracking and registry: runs, packaging, registration, verified download, promotion.

Pure domain code (no Airflow): functions take an ``mlflow.MlflowClient``. Identity is stable: a
training run is found again by its ``mlops.airflow_run`` tag, and a model version by its
``mlops.airflow_run`` and ``mlops.model_sha256`` tags, so a retried task reuses what its earlier
try made. Promotion moves the alias with one registry call, so the alias always points at the old
or the new version, never at nothing.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.artifacts import sha256_directory, sha256_file
from airflow_mlops.exceptions import PromotionBlockedError, RegistryError, SignatureVerificationError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

TAG_AIRFLOW_RUN = "mlops.airflow_run"
TAG_PIPELINE = "mlops.pipeline"
TAG_MODEL_SHA256 = "mlops.model_sha256"
TAG_SIGNATURE_SHA256 = "mlops.signature_sha256"
TAG_KEY_FINGERPRINT = "mlops.signing_key_fingerprint"
TAG_GATES = "mlops.gates"
TAG_DATA_SHA256 = "mlops.data_sha256"
MODEL_ARTIFACT_PATH = "model"
SIGNATURE_ARTIFACT_PATH = "signature"
SIGNATURE_FILE = "model.sig"
WRAPPER_FILE = "pyfunc_wrapper.py"
WEIGHTS_ARTIFACT = "weights"


def wrapper_path() -> Path:
    return Path(__file__).with_name(WRAPPER_FILE)


def trusted_code() -> dict[str, str]:
    """Code files the scanner accepts in a packaged model: our wrapper, by exact sha256."""
    return {WRAPPER_FILE: sha256_file(wrapper_path())}


def package_model(payload_dir: str | Path, out_dir: str | Path, *, pip_requirements: list[str]) -> Path:
    """Wrap a trainer's output (safetensors + config) as an MLflow pyfunc model directory."""
    import mlflow

    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    mlflow.pyfunc.save_model(
        path=str(out),
        python_model=str(wrapper_path()),
        artifacts={WEIGHTS_ARTIFACT: str(payload_dir)},
        pip_requirements=pip_requirements,
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
) -> RegisteredVersion:
    """Log the signed model and its signature to the run and create (or reuse) a model version."""
    sha, _ = sha256_directory(model_dir)
    existing = _find_version(client, model_name, airflow_run, sha)
    if existing is not None:
        log.info("Model version %s of %s already registered by an earlier try", existing.version, model_name)
        return RegisteredVersion(model_name, str(existing.version), str(existing.source), run_id, sha)
    try:
        client.get_registered_model(model_name)
    except Exception:
        client.create_registered_model(model_name, tags={TAG_PIPELINE: tags.get(TAG_PIPELINE, "")})
    client.log_artifacts(run_id, str(model_dir), MODEL_ARTIFACT_PATH)
    with tempfile.TemporaryDirectory() as staging:  # always stored as signature/model.sig
        canonical = Path(staging) / SIGNATURE_FILE
        shutil.copyfile(signature_path, canonical)
        client.log_artifact(run_id, str(canonical), SIGNATURE_ARTIFACT_PATH)
    run = client.get_run(run_id)
    source = f"{run.info.artifact_uri.rstrip('/')}/{MODEL_ARTIFACT_PATH}"
    all_tags = {
        **tags,
        TAG_AIRFLOW_RUN: airflow_run,
        TAG_MODEL_SHA256: sha,
        TAG_SIGNATURE_SHA256: sha256_file(signature_path),
    }
    mv = client.create_model_version(
        model_name, source=source, run_id=run_id, tags=all_tags, description=description or None
    )
    if str(mv.status) not in ("READY", "ModelVersionStatus.READY"):
        raise RegistryError(f"model version {mv.version} of {model_name} is {mv.status}, not READY")
    return RegisteredVersion(model_name, str(mv.version), source, run_id, sha)


def download_version(
    client: MlflowClient, model_name: str, version: str, dest: str | Path
) -> tuple[Path, Path, ModelVersion]:
    """Download exactly what was registered (the run's model artifact) and its signature."""
    import mlflow

    mv = client.get_model_version(model_name, version)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tracking_uri = client._tracking_client.tracking_uri
    model_dir = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=mv.source, dst_path=str(dest / "version"), tracking_uri=tracking_uri
        )
    )
    try:
        sig_dir = mlflow.artifacts.download_artifacts(
            run_id=mv.run_id,
            artifact_path=f"{SIGNATURE_ARTIFACT_PATH}/{SIGNATURE_FILE}",
            dst_path=str(dest / "signature"),
            tracking_uri=tracking_uri,
        )
    except Exception as exc:
        raise SignatureVerificationError(
            f"model version {version} of {model_name} has no signature artifact "
            f"({SIGNATURE_ARTIFACT_PATH}/{SIGNATURE_FILE} in run {mv.run_id}): {exc}. Unsigned models "
            "are never promoted or loaded; re-run the pipeline's sign and register stages."
        ) from None
    return model_dir, Path(sig_dir), mv


def fetch_verified_version(
    client: MlflowClient, model_name: str, version: str, public_key_pem: bytes, dest: str | Path
) -> tuple[Path, ModelVersion]:
    """Download a registered version and verify its signature and recorded digest; fail closed."""
    from airflow_mlops.security.signing import verify_model

    model_dir, sig_path, mv = download_version(client, model_name, version, dest)
    verify_model(model_dir, sig_path, public_key_pem)
    expected = (mv.tags or {}).get(TAG_MODEL_SHA256)
    actual, _ = sha256_directory(model_dir)
    if expected != actual:
        raise SignatureVerificationError(
            f"model version {version} of {model_name}: content digest {actual} differs from the "
            f"registered {TAG_MODEL_SHA256}={expected}"
        )
    return model_dir, mv


def champion_version(client: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    """The version the alias points at, or None when there is no champion yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        code = getattr(exc, "error_code", "")
        if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or "not found" in str(exc).lower():
            return None
        raise


@dataclass(frozen=True)
class PromotionResult:
    model_name: str
    alias: str
    version: str
    previous_version: str | None
    signature_verified: bool
    key_fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def promote_version(
    client: MlflowClient,
    *,
    model_name: str,
    version: str,
    alias: str,
    public_key_pem: bytes,
    gates_passed: bool,
) -> PromotionResult:
    """Point ``alias`` at ``version`` if every gate passed and its signature verifies now.

    The signature is checked on a fresh download of the registered artifact, not on the copy
    that was signed, so tampering in the registry's artifact store blocks promotion.
    """
    from airflow_mlops.security.signing import public_key_fingerprint

    if not gates_passed:
        raise PromotionBlockedError(
            f"version {version} of {model_name} was not promoted: not every gate passed"
        )
    mv = client.get_model_version(model_name, version)
    if (mv.tags or {}).get(TAG_GATES) != "passed":
        raise PromotionBlockedError(
            f"version {version} of {model_name} lacks the tag {TAG_GATES}=passed; only versions "
            "registered after passing every gate can be promoted"
        )
    workdir = Path(tempfile.mkdtemp(prefix="mlops-promote-"))
    try:
        fetch_verified_version(client, model_name, version, public_key_pem, workdir)
    except SignatureVerificationError as exc:
        raise PromotionBlockedError(
            f"version {version} of {model_name} was not promoted: its signature does not verify "
            f"({exc}). The alias {alias!r} is unchanged."
        ) from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    previous = champion_version(client, model_name, alias)
    client.set_registered_model_alias(model_name, alias, version)  # one atomic update
    fingerprint = public_key_fingerprint(public_key_pem)
    client.set_model_version_tag(model_name, version, "mlops.promoted_alias", alias)
    log.info(
        "Alias %s of %s now points at version %s (was %s)",
        alias,
        model_name,
        version,
        previous.version if previous else None,
    )
    return PromotionResult(
        model_name=model_name,
        alias=alias,
        version=str(version),
        previous_version=str(previous.version) if previous else None,
        signature_verified=True,
        key_fingerprint=fingerprint,
    )
