"""Artifact references and the artifact store.

Tasks exchange :class:`ArtifactRef` objects through XCom, never data. A ref names an artifact by
URI and pins its content by sha256, so every consumer checks that it reads exactly what the
producer wrote. Artifacts live under a per-run prefix ``{root}/{pipeline}/{run_id}/{stage}/...``.

A *directory* artifact (a model) is pinned by the sha256 of its manifest: the sorted list of
``<relative path> <sha256 of file>`` lines.

Stores: a local directory (``/path`` or ``file:///path``) or S3 (``s3://bucket/prefix``; boto3 is
imported lazily, endpoint and credentials come from the environment or an Airflow connection via
the hook). Writes are atomic: a file is written to a temporary name and renamed, so a failed task
never leaves a half-written artifact behind under its final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlops.digests import sha256_file
from airflow_mlops.exceptions import ArtifactError, ArtifactIntegrityError
from airflow_mlops.progress import Progress

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
DIRECTORY_MEDIA_TYPE = "inode/directory"


@dataclass(frozen=True)
class ArtifactRef:
    """A small, typed pointer to an artifact in the store; safe to put in XCom."""

    uri: str
    sha256: str
    size: int
    media_type: str
    producer: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | ArtifactRef) -> ArtifactRef:
        if isinstance(data, ArtifactRef):
            return data
        try:
            return cls(**data)
        except TypeError as exc:
            raise ArtifactError(
                f"not an artifact reference: {data!r} ({exc}); expected the output of an airflow-mlops task"
            ) from exc

    @property
    def is_directory(self) -> bool:
        return self.media_type == DIRECTORY_MEDIA_TYPE


def directory_manifest(path: str | os.PathLike[str]) -> list[tuple[str, str, int]]:
    """``(relative posix path, sha256, size)`` of every file below ``path``, sorted."""
    root = Path(path)
    rows = []
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rows.append((file.relative_to(root).as_posix(), sha256_file(file), file.stat().st_size))
    return rows


def sha256_directory(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Digest of a directory's manifest, and the total size of its files."""
    manifest = directory_manifest(path)
    return _manifest_digest(manifest), sum(size for _, _, size in manifest)


def _manifest_digest(manifest: list[tuple[str, str, int]]) -> str:
    text = "".join(f"{rel} {digest}\n" for rel, digest, _ in manifest)
    return hashlib.sha256(text.encode()).hexdigest()


_UNSAFE_SEGMENT = re.compile(r"[^A-Za-z0-9._=-]+")


def safe_segment(value: str) -> str:
    """Turn a run id such as ``manual__2026-01-01T00:00:00+00:00`` into a path segment."""
    cleaned = _UNSAFE_SEGMENT.sub("_", value).strip("._")
    if not cleaned:
        raise ArtifactError(f"cannot build a storage path segment from {value!r}")
    return cleaned


def _media_type(path: Path) -> str:
    return {
        ".parquet": "application/vnd.apache.parquet",
        ".csv": "text/csv",
        ".json": "application/json",
        ".safetensors": "application/vnd.safetensors",
        ".sig": "application/vnd.dev.sigstore.bundle+json",
        ".txt": "text/plain",
        ".html": "text/html",
    }.get(path.suffix, "application/octet-stream")


class LazyS3Client:
    """An ``s3`` client made on first use (:func:`default_s3_client`) unless one was given
    (``self._s3``)."""

    _s3: Any = None

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = default_s3_client()
        return self._s3


class ArtifactStore(LazyS3Client):
    """Stores files and directories under a root URI and hands back :class:`ArtifactRef` s."""

    def __init__(self, root: str, *, s3_client: Any = None) -> None:
        if not root:
            raise ArtifactError("artifact store root is empty; set `artifacts.root` in the spec")
        self.root = root.rstrip("/")
        self.is_s3 = self.root.startswith("s3://")
        self._s3 = s3_client
        if not self.is_s3:
            # Decoded as the allowed-roots check decodes it (file:// URIs percent-decoded), so
            # the folder written is the folder that was checked.
            self._local_root = Path(_resolve_local(self.root))

    # -- addressing ---------------------------------------------------------------------------

    def uri_for(self, *parts: str) -> str:
        clean = "/".join(p.strip("/") for p in parts if p)
        if self.is_s3:
            return f"{self.root}/{clean}"
        return str(self._local_root / clean)

    def contains(self, uri: str) -> bool:
        """Whether ``uri`` names something inside this store: an ``s3://`` URI under an S3 root, or
        a local path (``file://`` URIs decoded) that resolves, symbolic links followed, below a
        local root. For refs that come from outside the run (an asset event's ``data_refs``)."""
        return self.locate(uri) is not None

    def locate(self, uri: str) -> str | None:
        """What to read for ``uri`` when it lies inside this store (see :meth:`contains`): the
        resolved local path or the ``s3://`` URI; None when it lies outside."""
        from airflow_mlops.allowed_roots import OutsideAllowedRootsError, ensure_within_roots

        if self.is_s3 != uri.startswith("s3://"):
            return None
        root = self.root if self.is_s3 else str(self._local_root)
        try:
            return ensure_within_roots(uri, [root], what="artifact")
        except OutsideAllowedRootsError:
            return None

    @staticmethod
    def run_prefix(pipeline: str, run_id: str, stage: str) -> str:
        return "/".join([safe_segment(pipeline), safe_segment(run_id), safe_segment(stage)])

    @staticmethod
    def _split_s3(uri: str) -> tuple[str, str]:
        return split_s3_uri(uri)

    # -- writing ------------------------------------------------------------------------------

    def put_file(
        self, src: str | os.PathLike[str], key: str, *, producer: str = "", **metadata: Any
    ) -> ArtifactRef:
        """Copy a local file into the store at ``key`` (relative to the root)."""
        src_path = Path(src)
        if not src_path.is_file():
            raise ArtifactError(f"cannot store {src_path}: not a file")
        digest = sha256_file(src_path)
        uri = self.uri_for(key)
        if self.is_s3:
            bucket, obj = self._split_s3(uri)
            self.s3.upload_file(str(src_path), bucket, obj, ExtraArgs={"Metadata": {"sha256": digest}})
        else:
            dest = Path(uri)
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
            os.close(fd)
            try:
                shutil.copyfile(src_path, tmp)
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return ArtifactRef(
            uri=uri,
            sha256=digest,
            size=src_path.stat().st_size,
            media_type=_media_type(src_path),
            producer=producer,
            metadata=dict(metadata),
        )

    def put_directory(
        self, src: str | os.PathLike[str], key: str, *, producer: str = "", **metadata: Any
    ) -> ArtifactRef:
        """Copy a local directory into the store at ``key``; the ref pins its manifest digest."""
        src_path = Path(src)
        if not src_path.is_dir():
            raise ArtifactError(f"cannot store {src_path}: not a directory")
        manifest = directory_manifest(src_path)
        digest, size = _manifest_digest(manifest), sum(n for _, _, n in manifest)
        uri = self.uri_for(key)
        progress = Progress(
            log, f"Storing {src_path.name} -> {uri}", total_items=len(manifest), total_bytes=size
        )
        if self.is_s3:
            bucket, prefix = self._split_s3(uri)
            for rel, _, nbytes in manifest:
                self.s3.upload_file(str(src_path / rel), bucket, f"{prefix}/{rel}")
                progress.advance(items=1, nbytes=nbytes)
        else:
            dest = Path(uri)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"))
            try:
                shutil.copytree(src_path, tmp, dirs_exist_ok=True)
                if dest.exists():  # a retried task replaces what its earlier try left
                    shutil.rmtree(dest)
                os.replace(tmp, dest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            progress.advance(items=len(manifest), nbytes=size)
        progress.done()
        return ArtifactRef(
            uri=uri,
            sha256=digest,
            size=size,
            media_type=DIRECTORY_MEDIA_TYPE,
            producer=producer,
            metadata=dict(metadata),
        )

    # -- reading ------------------------------------------------------------------------------

    def fetch(
        self,
        ref: ArtifactRef | dict[str, Any],
        dest_dir: str | os.PathLike[str],
        *,
        source: str | None = None,
    ) -> Path:
        """Bring an artifact to ``dest_dir`` and check its sha256; returns the local path.

        A local artifact is read from its resolved path (``source`` when the caller checked it
        against the allowed roots, else the ref's URI decoded and resolved here), following no
        symbolic link: a directory artifact holding a link, or anything but files and folders, is
        refused (:class:`ArtifactIntegrityError`) before any of it is copied.
        """
        ref = ArtifactRef.from_dict(ref)
        dest_root = Path(dest_dir)
        dest_root.mkdir(parents=True, exist_ok=True)
        name = ref.uri.rstrip("/").rsplit("/", 1)[-1]
        target = dest_root / name
        if ref.uri.startswith("s3://"):
            bucket, key = self._split_s3(ref.uri)
            if ref.is_directory:
                progress = Progress(log, f"Fetching {ref.uri}", total_bytes=ref.size or None)
                paginator = self.s3.get_paginator("list_objects_v2")
                for page in paginator.paginate(Bucket=bucket, Prefix=key + "/"):
                    for obj in page.get("Contents", []):
                        rel = obj["Key"][len(key) + 1 :]
                        if any(part in ("", ".", "..") for part in rel.split("/")):
                            # S3 keys may hold `..`: written below the scratch folder, such a key
                            # would land outside it. A directory artifact never holds one.
                            raise ArtifactIntegrityError(
                                f"artifact {ref.uri} holds the object {obj['Key']!r}, whose key has an "
                                "empty, '.' or '..' segment; refusing to write it outside the fetch folder"
                            )
                        (target / rel).parent.mkdir(parents=True, exist_ok=True)
                        self.s3.download_file(bucket, obj["Key"], str(target / rel))
                        progress.advance(items=1, nbytes=int(obj.get("Size") or 0))
                progress.done()
            else:
                self.s3.download_file(bucket, key, str(target))
        else:
            resolved = source if source is not None else _resolve_local(ref.uri)
            if not os.path.lexists(resolved):
                raise ArtifactError(
                    f"artifact {ref.uri} (from task {ref.producer or '?'}) does not exist; "
                    "was the artifact store cleaned, or does this worker see another filesystem?"
                )
            if ref.is_directory:
                _copy_tree_no_links(resolved, target, ref)
            else:
                _copy_file_no_links(resolved, target, ref)
        verify_local(target, ref)
        return target


def _resolve_local(uri: str) -> str:
    """A local store location (a path or ``file://`` URI) as the allowed-roots check resolves it."""
    from airflow_mlops.allowed_roots import OutsideAllowedRootsError, resolve_local

    try:
        return resolve_local(uri)
    except OutsideAllowedRootsError as exc:
        raise ArtifactError(f"not a local artifact location: {exc}") from None


def _copy_file_no_links(source: str, target: Path, ref: ArtifactRef) -> None:
    from airflow_mlops.allowed_roots import open_resolved

    try:
        fh = open_resolved(source, what=f"artifact {ref.uri}")
    except IsADirectoryError:
        raise ArtifactIntegrityError(
            f"artifact {ref.uri} is a directory; its reference names a file"
        ) from None
    with fh, open(target, "wb") as out:
        shutil.copyfileobj(fh, out, _CHUNK)


def _copy_tree_no_links(source: str, target: Path, ref: ArtifactRef) -> None:
    """Copy a directory artifact file by file; a symbolic link (or a FIFO, device...) inside it is
    refused, never followed: a link in a model folder could lead anywhere on the worker."""
    if os.path.islink(source) or not os.path.isdir(source):
        raise ArtifactIntegrityError(f"artifact {ref.uri} is not a directory; its reference names one")
    folders: list[str] = []
    files: list[str] = []
    for folder, dir_names, file_names in os.walk(source, followlinks=False):
        for name in [*dir_names, *file_names]:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                raise ArtifactIntegrityError(
                    f"artifact {ref.uri} holds a symbolic link ({os.path.relpath(path, source)}); "
                    "refusing to follow it: a directory artifact holds files and folders only"
                )
        folders += [os.path.join(folder, d) for d in dir_names]
        files += [os.path.join(folder, f) for f in file_names]
    target.mkdir(parents=True, exist_ok=True)
    for path in folders:
        (target / os.path.relpath(path, source)).mkdir(parents=True, exist_ok=True)
    for path in files:
        _copy_file_no_links(path, target / os.path.relpath(path, source), ref)


def verify_local(path: str | os.PathLike[str], ref: ArtifactRef | dict[str, Any]) -> None:
    """Raise :class:`ArtifactIntegrityError` unless ``path`` holds exactly what ``ref`` pins."""
    ref = ArtifactRef.from_dict(ref)
    p = Path(path)
    actual = sha256_directory(p)[0] if ref.is_directory else sha256_file(p)
    if actual != ref.sha256:
        raise ArtifactIntegrityError(
            f"artifact {ref.uri} changed after task {ref.producer or '?'} wrote it: sha256 is "
            f"{actual}, the reference pins {ref.sha256}. Refusing to use it; re-run the "
            "producing task."
        )


def default_artifact_root() -> str:
    """The deployment's artifact root: ``$AIRFLOW_MLOPS_ARTIFACT_ROOT``, else
    ``$AIRFLOW_HOME/mlops-artifacts`` (``~/airflow`` when ``AIRFLOW_HOME`` is unset)."""
    root = os.environ.get("AIRFLOW_MLOPS_ARTIFACT_ROOT")
    if root:
        return root
    return str(Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "mlops-artifacts")


# --- small state documents written by compare-and-swap (the new-data watermark, the retrain
# ledger): :class:`VersionedDocument`, the S3 error codes it reads, the local file's lock and
# atomic write.

#: S3 error codes of a conditional write that lost the race (``If-Match`` / ``If-None-Match``).
S3_CONFLICT_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
#: S3 error codes of an object that does not exist.
S3_MISSING_CODES = frozenset({"NoSuchKey", "404"})
#: S3 error codes of an object or its bucket that does not exist: a data file to read is not there
#: either way (``download_file`` reports a HEAD 404 as ``"404"``). A state document's read keeps to
#: :data:`S3_MISSING_CODES`: a missing bucket is an error there, not an empty document.
S3_ABSENT_CODES = S3_MISSING_CODES | {"NoSuchBucket", "NotFound"}


def default_s3_client() -> Any:
    """A boto3 S3 client for the environment's endpoint and credentials (boto3 imported lazily)."""
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``."""
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def s3_error_code(exc: BaseException) -> str | None:
    """The ``Error.Code`` of a botocore ``ClientError`` (None for any other exception)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error")
        code = error.get("Code") if isinstance(error, dict) else None
        return str(code) if code not in (None, "") else None
    return None


@contextlib.contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``lock_path`` (created if missing) for the ``with`` block."""
    import fcntl

    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def atomic_write_bytes(path: Path, body: bytes) -> None:
    """Write ``body`` to ``path`` whole or not at all: a temporary file beside it, fsynced, then
    renamed over it, and the directory fsynced (a crash leaves the old or the new file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class VersionConflict(Exception):
    """A compare-and-swap write found the document changed since it was read."""


class VersionedDocument(LazyS3Client):
    """One small state document (a local path or an ``s3://`` URI), read with a version token and
    written only if it is still that version (compare-and-swap).

    ``read`` returns the body and its version (the sha256 of the local file, the S3 ETag), or
    ``(None, None)`` when nothing is stored. ``write`` replaces a local file atomically under an
    ``flock`` after checking its version, or puts the S3 object conditionally (``If-Match``, or
    ``If-None-Match: *`` for the first write); a lost race raises :class:`VersionConflict`, any
    other failure propagates as it is (the caller names the document in its own error).
    """

    def __init__(self, uri: str, *, s3_client: Any = None) -> None:
        self.uri = uri
        self.is_s3 = uri.startswith("s3://")
        self._s3 = s3_client

    def read(self) -> tuple[bytes | None, str | None]:
        if self.is_s3:
            bucket, key = split_s3_uri(self.uri)
            try:
                response = self.s3.get_object(Bucket=bucket, Key=key)
            except Exception as exc:
                if s3_error_code(exc) in S3_MISSING_CODES:
                    return None, None
                raise
            return response["Body"].read(), str(response["ETag"]).strip('"')
        try:
            raw = Path(self.uri).read_bytes()
        except FileNotFoundError:
            return None, None
        return raw, hashlib.sha256(raw).hexdigest()

    def write(self, body: bytes, *, expected_version: str | None) -> str:
        """Store ``body`` if the stored version is still ``expected_version``; the new version."""
        if self.is_s3:
            bucket, key = split_s3_uri(self.uri)
            condition = {"IfMatch": expected_version} if expected_version else {"IfNoneMatch": "*"}
            try:
                response = self.s3.put_object(
                    Bucket=bucket, Key=key, Body=body, ContentType="application/json", **condition
                )
            except Exception as exc:
                if s3_error_code(exc) in S3_CONFLICT_CODES:
                    raise VersionConflict(self.uri) from exc
                raise
            return str(response["ETag"]).strip('"')
        path = Path(self.uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(path.with_name(f".{path.name}.lock")):
            try:
                current: str | None = sha256_file(path)
            except FileNotFoundError:
                current = None
            if current != expected_version:
                raise VersionConflict(self.uri)
            atomic_write_bytes(path, body)
        return hashlib.sha256(body).hexdigest()
