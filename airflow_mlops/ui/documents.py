"""What the Models view serves besides its pages: a model's pipeline, a version's ML-BOM, and the
reports a pipeline logged (to an MLflow run, or to the artifact store through a task's XCom) --
each read exactly as recorded, checked against its recorded sha256, and bounded in size; pure
domain code (no Airflow import).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import ArtifactError, RegistryLookupError
from airflow_mlops.ui.rows import short_error

if TYPE_CHECKING:
    from mlflow import MlflowClient


log = logging.getLogger(__name__)

# Run artifacts the view may serve (reports the pipeline logs), and their media types.
REPORT_ARTIFACTS: Mapping[str, str] = {
    "evaluation/evaluation.json": "application/json",
    "evaluation/evaluation_report.html": "text/html; charset=utf-8",
    "drift/drift_report.json": "application/json",
    "drift/drift_report.html": "text/html; charset=utf-8",
}


def model_pipeline(client: MlflowClient, model_name: str) -> str:
    """The pipeline that registered ``model_name`` (its ``mlops.pipeline`` tag).

    :raises RegistryLookupError: a lock model, a model no pipeline registered, or a lookup error.
    """
    from airflow_mlops.registry.locks import is_lock_model
    from airflow_mlops.registry.mlflow_registry import TAG_PIPELINE, lookup_failed

    if is_lock_model(model_name):
        raise RegistryLookupError(f"{model_name!r} is a promotion lock, not a model")
    try:
        model = client.get_registered_model(model_name)
    except Exception as exc:
        raise lookup_failed(f"reading registered model {model_name!r}", exc) from exc
    pipeline = (model.tags or {}).get(TAG_PIPELINE)
    if not pipeline:
        raise RegistryLookupError(f"registered model {model_name!r} was not registered by a pipeline")
    return str(pipeline)


def mlbom_document(client: MlflowClient, model_name: str, version: str) -> bytes:
    """The ML-BOM (``attestations/mlbom.cdx.json`` of the version's run), checked to be JSON.

    :raises RegistryLookupError: the version or its ML-BOM does not exist.
    :raises ArtifactError: the stored document is not a JSON object.
    """
    from airflow_mlops.exceptions import SignatureVerificationError
    from airflow_mlops.registry.mlflow_registry import MLBOM_FILE, download_attestation, get_version
    from airflow_mlops.security.trust import MAX_SIGNED_JSON_BYTES, load_signed_json, read_limited

    mv = get_version(client, model_name, version)
    with tempfile.TemporaryDirectory(prefix="mlops-ui-mlbom-") as tmp:
        path = download_attestation(client, mv, MLBOM_FILE, tmp)
        if path is None:
            raise RegistryLookupError(
                f"version {version} of {model_name!r} has no ML-BOM ({MLBOM_FILE} in run {mv.run_id})"
            )
        try:
            data = read_limited(path, MAX_SIGNED_JSON_BYTES, "ML-BOM", ArtifactError)
            parsed = load_signed_json(data, "ML-BOM")
        except (ArtifactError, SignatureVerificationError) as exc:
            raise ArtifactError(
                f"the ML-BOM of version {version} of {model_name!r} is not served: {short_error(exc, 300)}"
            ) from None
    if not isinstance(parsed, dict):
        raise ArtifactError(f"the ML-BOM of version {version} of {model_name!r} is not a JSON object")
    return data


def run_report(client: MlflowClient, run_id: str, path: str) -> tuple[bytes, str]:
    """A report the pipeline logged to an MLflow run (only :data:`REPORT_ARTIFACTS`), and its type,
    served only when its bytes have the sha256 the logging task recorded in the run's
    ``mlops.report_sha256/<path>`` tag (:func:`~airflow_mlops.registry.mlflow_registry.log_report`).

    :raises RegistryLookupError: not a report path, or the run has no such artifact.
    :raises ReportRefusedError: no digest was recorded, or the artifact is not a regular file.
    :raises ReportChangedError: the artifact's bytes differ from the recorded digest.
    """
    from airflow_mlops.registry.mlflow_registry import TAG_REPORT_SHA256, lookup_failed

    media_type = REPORT_ARTIFACTS.get(path)
    if media_type is None:
        raise RegistryLookupError(f"{path!r} is not a report the Models view serves")
    folder = path.rsplit("/", 1)[0]
    try:
        listed = {f.path for f in client.list_artifacts(run_id, folder)}
    except Exception as exc:
        raise lookup_failed(f"listing {folder}/ of run {run_id}", exc) from exc
    if path not in listed:
        raise RegistryLookupError(f"run {run_id} has no {path}")
    try:
        recorded = client.get_run(run_id).data.tags.get(TAG_REPORT_SHA256 + path)
    except Exception as exc:
        raise lookup_failed(f"reading run {run_id}", exc) from exc
    if not isinstance(recorded, str) or not _SHA256.fullmatch(recorded):
        raise ReportRefusedError(
            f"run {run_id} recorded no digest for {path} (a report logged before digests were "
            "recorded, or an interrupted upload): it is not served"
        )
    with tempfile.TemporaryDirectory(prefix="mlops-ui-report-") as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except Exception as exc:
            raise lookup_failed(f"downloading {path} of run {run_id}", exc) from exc
        local_path = Path(local)
        if local_path.is_symlink() or not local_path.is_file():
            raise ReportRefusedError(f"{path} of run {run_id} is not a regular file")
        if local_path.stat().st_size > MAX_REPORT_BYTES:
            raise ReportRefusedError(f"{path} of run {run_id} is larger than {MAX_REPORT_BYTES} bytes")
        data = local_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != recorded:
        raise ReportChangedError(
            f"{path} of run {run_id} no longer has the sha256 its task recorded: it was changed "
            "in the store after it was logged, and is not served"
        )
    return data, media_type


#: Stage reports the Models view serves from the artifact store (file names of the operators).
ARTIFACT_REPORTS = frozenset(
    {"validation_report.html", "screen_report.html", "evaluation_report.html", "drift_report.html"}
)
#: The XCom outputs of a task that may name its HTML report (``ArtifactRef`` dicts).
REPORT_OUTPUTS = ("html_report", "report")
#: The largest report served (a bigger file is refused, never read whole into memory).
MAX_REPORT_BYTES = 128 * 1024 * 1024
_SEGMENT = re.compile(r"^[A-Za-z0-9._=-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ReportRefusedError(LookupError):
    """The recorded report is not served: a link in its path, not a regular file, too big."""


class ReportChangedError(LookupError):
    """The report's bytes differ from the digest its task recorded."""


class ReportUnavailableError(LookupError):
    """The artifact store did not answer."""


def recorded_report(ref: Any) -> tuple[str, str]:
    """``(uri, sha256)`` of a task's recorded HTML report (an ``ArtifactRef`` dict from its XCom).

    :raises LookupError: the record is not a reference to an HTML report with a sha256.
    """
    if not isinstance(ref, Mapping):
        raise LookupError("the task recorded no HTML report")
    uri, sha256 = ref.get("uri"), ref.get("sha256")
    if not isinstance(uri, str) or not uri.endswith(".html"):
        raise LookupError("the task recorded no HTML report")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise LookupError("the task's record of its report has no sha256")
    return uri, sha256


def artifact_report(
    root: str,
    ref: Any,
    *,
    run_id: str | None = None,
    authorize: Callable[[str], bool] | None = None,
    s3_client: Any = None,
) -> tuple[str, bytes]:
    """``(pipeline, bytes)`` of the stage report a task recorded (``ref``: its ``ArtifactRef``).

    The digest checked is the one in ``ref`` -- the task's own record -- never one a caller
    supplies. Only the report files of :data:`ARTIFACT_REPORTS` at ``{pipeline}/{run}/{stage}/``
    under the artifact root are served (of ``run_id``'s folder when given). A local file is
    opened one path component at a time below the root without following links: a symbolic
    link anywhere below the root, a hard-linked file, or anything but a regular file is refused.

    ``authorize`` is called with the report's pipeline before anything is read; False raises
    :class:`PermissionError`. Messages never name the store's paths (they go to a web client).

    :raises LookupError: no such report recorded, or it is missing from the store.
    :raises ReportRefusedError: a link in the path, not a regular file, or too big.
    :raises ReportUnavailableError: the store did not answer.
    :raises ArtifactError: its content differs from the recorded digest.
    """
    from airflow_mlops.artifacts import ArtifactStore, safe_segment

    uri, sha256 = recorded_report(ref)
    store = ArtifactStore(root, s3_client=s3_client)
    base = store.uri_for("").rstrip("/")
    if uri.startswith("file://") and not store.is_s3:
        uri = uri[len("file://") :]
    if not uri.startswith(base + "/"):
        raise LookupError("the recorded report is not in this deployment's artifact store")
    parts = uri[len(base) + 1 :].split("/")
    if len(parts) != 4 or parts[-1] not in ARTIFACT_REPORTS or not all(_SEGMENT.fullmatch(p) for p in parts):
        raise LookupError("the recorded artifact is not a stage report")
    if any(p in (".", "..") for p in parts):
        raise LookupError("the recorded artifact is not a stage report")
    if run_id is not None and parts[1] != safe_segment(run_id):
        raise LookupError("the recorded report belongs to another run")
    if authorize is not None and not authorize(parts[0]):
        raise PermissionError(f"not authorized to read the reports of pipeline {parts[0]!r}")
    data = _read_s3(store, uri) if store.is_s3 else _read_local(store._local_root, parts)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ArtifactError(
            "the report in the artifact store differs from what its task recorded (sha256 mismatch); "
            "it is not served -- re-run the task to regenerate it"
        )
    return parts[0], data


def _read_local(root: Path, parts: Sequence[str]) -> bytes:
    """The file at ``root/parts...``, opened relative to directory descriptors, never via a link."""
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    directory = getattr(os, "O_DIRECTORY", 0)
    if not nofollow or not directory or os.open not in os.supports_dir_fd:
        raise ReportRefusedError("this platform cannot open files without following links")
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | nofollow
    try:
        fd = os.open(root, os.O_RDONLY | directory | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise LookupError("the artifact store is not readable here") from None
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                raise LookupError("the recorded report is missing from the artifact store") from None
            if stat.S_ISLNK(st.st_mode):
                raise ReportRefusedError("the report's path holds a symbolic link; links are not followed")
            if not last and not stat.S_ISDIR(st.st_mode):
                raise LookupError("the recorded report is missing from the artifact store")
            if last and not stat.S_ISREG(st.st_mode):
                raise ReportRefusedError("the recorded report is not a regular file")
            try:
                nxt = os.open(part, flags | (os.O_NONBLOCK if last else directory), dir_fd=fd)
            except FileNotFoundError:
                raise LookupError("the recorded report is missing from the artifact store") from None
            except OSError as exc:  # ELOOP: replaced by a link since the stat
                if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENOTDIR):
                    raise ReportRefusedError(
                        "the report's path holds a symbolic link; links are not followed"
                    ) from None
                raise LookupError("the recorded report is not readable") from None
            os.close(fd)
            fd = nxt
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReportRefusedError("the recorded report is not a regular file")
        if st.st_nlink != 1:
            raise ReportRefusedError("the recorded report is hard-linked; links are not followed")
        if st.st_size > MAX_REPORT_BYTES:
            raise ReportRefusedError(f"the recorded report is larger than {MAX_REPORT_BYTES} bytes")
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > MAX_REPORT_BYTES:
                raise ReportRefusedError(f"the recorded report is larger than {MAX_REPORT_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_s3(store: Any, uri: str) -> bytes:
    bucket, key = store._split_s3(uri)
    try:
        answer = store.s3.get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "404", "NotFound"):
            raise LookupError("the recorded report is missing from the artifact store") from None
        raise ReportUnavailableError(f"the artifact store did not answer ({type(exc).__name__})") from None
    if int(answer.get("ContentLength") or 0) > MAX_REPORT_BYTES:
        raise ReportRefusedError(f"the recorded report is larger than {MAX_REPORT_BYTES} bytes")
    data = answer["Body"].read(MAX_REPORT_BYTES + 1)
    if len(data) > MAX_REPORT_BYTES:
        raise ReportRefusedError(f"the recorded report is larger than {MAX_REPORT_BYTES} bytes")
    return bytes(data)
