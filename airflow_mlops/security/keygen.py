"""Write a model-signing key pair to files, and say how to hand it to Airflow.

``airflow-mlops keys generate`` uses this. The key pair is the one the ``key`` signing method
takes (:func:`~airflow_mlops.security.keys.generate_key_pair`: ECDSA P-256, the private key
PKCS#8 PEM, the public key SubjectPublicKeyInfo PEM).

The private key file is created with ``O_EXCL`` and mode 0600 in the same call, so it is never
readable by anyone else, not even for an instant; an existing file (or symbolic link) is never
written through. Replacing a pair (``force``) writes fresh 0600/0644 files beside the old ones and
renames them over them. A directory that does not exist is created with mode 0700.

:class:`ModelSigningHook <airflow_mlops.hooks.signing.ModelSigningHook>` reads the private key
inline from the connection's ``password``, so :func:`connection_instructions` prints commands
that read it from the file (``"$(cat FILE)"``), never the key itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from airflow_mlops.connections import SIGNING_CONN_ID, SIGNING_CONN_TYPE
from airflow_mlops.exceptions import MLOpsError

__all__ = [
    "GeneratedKeyPair",
    "KeyGenerationError",
    "check_conn_id",
    "directory_notes",
    "connection_instructions",
    "write_key_pair",
]

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
DIRECTORY_MODE = 0o700
#: What Airflow accepts as a connection id (``airflow.models.connection.RE_SANITIZE_CONN_ID``).
_CONN_ID = re.compile(r"^[\w#!()\-.:/\\]{1,250}$")
_SHELL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class KeyGenerationError(MLOpsError):
    """The key pair cannot be written where asked (a user error: the message says what to change)."""

    retryable = False


@dataclass(frozen=True)
class GeneratedKeyPair:
    """The files written and the public key's fingerprint (nothing secret: safe to print)."""

    private_key: Path
    public_key: Path
    fingerprint: str
    created_directory: bool = False
    replaced: bool = False  # ``force`` replaced an existing file of the pair


def key_paths(out_dir: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """``(DIR/NAME.pem, DIR/NAME.pub.pem)``; ``name`` must be a plain file name."""
    if not name or name in (".", "..") or "/" in name or "\0" in name or os.sep in name:
        raise KeyGenerationError(
            f"--name {name!r} is not a plain file name; give a name such as 'signing_key' "
            "(the files are NAME.pem and NAME.pub.pem in --out)"
        )
    if name.startswith("-"):
        raise KeyGenerationError(f"--name {name!r} starts with '-'; choose a name that does not")
    directory = Path(os.path.abspath(out_dir))
    return directory / f"{name}.pem", directory / f"{name}.pub.pem"


def check_conn_id(conn_id: str) -> str:
    """``conn_id`` if Airflow accepts it as a connection id, else :class:`KeyGenerationError`."""
    if not _CONN_ID.match(conn_id):
        raise KeyGenerationError(
            f"--conn-id {conn_id!r} is not an Airflow connection id: use letters, digits and "
            "_ - . (for example mlops_signing)"
        )
    return conn_id


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _prepare_directory(directory: Path) -> bool:
    """Create ``directory`` (mode 0700) if missing; True when it was created."""
    if os.path.lexists(directory) and not directory.is_dir():
        raise KeyGenerationError(f"--out {directory} exists and is not a directory")
    if directory.is_dir():
        return False
    try:
        os.makedirs(directory, mode=DIRECTORY_MODE)  # the mode applies to the last component
    except FileExistsError:  # created meanwhile by someone else: use it only if it is a directory
        if not directory.is_dir():
            raise KeyGenerationError(f"--out {directory} exists and is not a directory") from None
        return False
    except OSError as exc:
        raise KeyGenerationError(
            f"cannot create the key directory {directory}: {_reason(exc)}; choose another --out"
        ) from None
    return True


def _refuse_existing(paths: tuple[Path, ...]) -> None:
    existing = [p for p in paths if os.path.lexists(p)]
    if existing:
        names = " and ".join(str(p) for p in existing)
        raise KeyGenerationError(
            f"{names} already exist{'s' if len(existing) == 1 else ''}; refusing to overwrite "
            "(a key in use would be lost): pass --force to replace the pair, or choose another "
            "--name or --out"
        )


def _create(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` at creation (``O_EXCL``: never an existing file or a link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)  # exactly ``mode``: the umask may only have narrowed it at creation
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


def _write_new(private_path: Path, private: bytes, public_path: Path, public: bytes) -> None:
    _create(private_path, private, PRIVATE_MODE)
    try:
        _create(public_path, public, PUBLIC_MODE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(private_path)  # no half pair is left behind
        raise


def _replace(private_path: Path, private: bytes, public_path: Path, public: bytes) -> None:
    for target in (private_path, public_path):
        if target.is_dir() and not target.is_symlink():
            raise KeyGenerationError(f"{target} is a directory; --force replaces files only")
    token = uuid.uuid4().hex
    tmp_private = private_path.with_name(f".{private_path.name}.{token}.tmp")
    tmp_public = public_path.with_name(f".{public_path.name}.{token}.tmp")
    try:
        _write_new(tmp_private, private, tmp_public, public)
        os.replace(tmp_private, private_path)  # replaces a symbolic link itself, never its target
        os.replace(tmp_public, public_path)
    finally:
        for tmp in (tmp_private, tmp_public):
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_key_pair(out_dir: str | os.PathLike[str], name: str, *, force: bool = False) -> GeneratedKeyPair:
    """Generate an ECDSA P-256 pair and write ``DIR/NAME.pem`` (0600) and ``DIR/NAME.pub.pem`` (0644).

    :param force: replace existing files; without it an existing file (or link) of either name
        is refused and nothing is written.
    :raises KeyGenerationError: the name is not a plain file name, the directory cannot be
        created or written, or a file exists and ``force`` is false.
    """
    from airflow_mlops.security.keys import generate_key_pair, public_key_fingerprint

    private_path, public_path = key_paths(out_dir, name)
    directory = private_path.parent
    created = _prepare_directory(directory)
    if not force:
        _refuse_existing((private_path, public_path))
    replaced = force and any(os.path.lexists(p) for p in (private_path, public_path))
    private, public = generate_key_pair()
    try:
        if force:
            _replace(private_path, private, public_path, public)
        else:
            _write_new(private_path, private, public_path, public)
    except FileExistsError as exc:  # appeared since the check: still never overwritten
        raise KeyGenerationError(
            f"{exc.filename or directory} already exists; refusing to overwrite: pass --force to "
            "replace the pair"
        ) from None
    except KeyGenerationError:
        raise
    except OSError as exc:
        where = exc.filename or directory
        raise KeyGenerationError(
            f"cannot write the key pair in {directory} ({where}: {_reason(exc)}); choose a "
            "directory you can write with --out"
        ) from None
    return GeneratedKeyPair(private_path, public_path, public_key_fingerprint(public), created, replaced)


def directory_notes(directory: Path) -> list[str]:
    """Notes on where the pair lies: a directory other users may write (they could replace the
    public key or delete the pair), or a git work tree (the private key must not be committed)."""
    notes = []
    try:
        mode = stat.S_IMODE(directory.stat().st_mode)
    except OSError:
        mode = 0
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
        notes.append(
            f"note: {directory} is writable by other users (mode {mode:04o}): they can replace the "
            "public key or delete the pair; keep keys in a directory only you can write"
        )
    repo = next((p for p in (directory, *directory.parents) if (p / ".git").exists()), None)
    if repo is not None:
        notes.append(
            f"note: {directory} is inside the git work tree {repo}: never commit the private key "
            "(add the directory to .gitignore, or keep keys outside the repository)"
        )
    return notes


def _env_name(conn_id: str) -> str:
    """The variable Airflow's environment secrets backend reads for ``conn_id``."""
    return "AIRFLOW_CONN_" + conn_id.upper()


def connection_instructions(pair: GeneratedKeyPair, conn_id: str) -> str:
    """What to run so the signing hook (and the verifiers) find the pair; never the private key."""
    private = shlex.quote(str(pair.private_key))
    public_path = shlex.quote(str(pair.public_key))
    public_pem = pair.public_key.read_text()
    conn = shlex.quote(conn_id)
    variable = _env_name(conn_id)
    signing_extra = json.dumps({"method": "key"})
    verify_extra = json.dumps({"method": "key", "public_key": public_pem})
    verify_json = json.dumps(
        {"conn_type": SIGNING_CONN_TYPE, "extra": {"method": "key", "public_key": public_pem}}
    )
    reader = (
        f'import json, sys; print(json.dumps({{"conn_type": "{SIGNING_CONN_TYPE}", '
        '"password": open(sys.argv[1]).read(), "extra": {"method": "key"}}))'
    )
    env_signing = f'"$(python3 -c {shlex.quote(reader)} {private})"'
    done = "written (the previous pair is replaced: update its connections)" if pair.replaced else "written"
    lines = [
        f"Signing key pair (ECDSA P-256) {done}:",
        f"  private key  {pair.private_key}  (mode 0600: secret; only the signing workers need it)",
        f"  public key   {pair.public_key}  (mode 0644: give it to whoever verifies)",
        f"  fingerprint  {pair.fingerprint}",
        "The fingerprint is the sha256 of the public key: verifiers report it, and model versions",
        "signed with this key carry it in the tag mlops.signing_key_fingerprint.",
        "",
        f"1. The signing connection {conn_id!r}, where the pipeline signs (the hook reads the private",
        "   key from the connection's password field; these commands read it from the file):",
        "",
        f"   airflow connections add {conn} --conn-type {SIGNING_CONN_TYPE} \\",
        f"       --conn-extra {shlex.quote(signing_extra)} \\",
        f'       --conn-password "$(cat {private})"',
        "",
    ]
    if _SHELL_NAME.match(variable):
        lines += [
            "   or, as an environment variable of the Airflow processes (JSON form):",
            "",
            f"   export {variable}={env_signing}",
        ]
    else:
        lines += [
            f"   ({variable} is not a shell variable name, so this connection id cannot be set with",
            "   export; use the command above or a secrets backend)",
        ]
    lines += [
        "",
        "2. A verify-only connection (serving, other clusters: no private key), same id:",
        "",
        f"   airflow connections add {conn} --conn-type {SIGNING_CONN_TYPE} \\",
        f"       --conn-extra {shlex.quote(verify_extra)}",
    ]
    if _SHELL_NAME.match(variable):
        lines += ["", f"   or: export {variable}={shlex.quote(verify_json)}"]
    lines += [
        "",
        "3. Verify or sign by hand with the files:",
        "",
        f"   airflow-mlops model verify MODEL_DIR --public-key {public_path}",
        f"   airflow-mlops model sign MODEL_DIR --private-key {private}",
    ]
    if conn_id != SIGNING_CONN_ID:
        lines += [
            "",
            "4. Point the pipeline spec at this connection:",
            "",
            "   security:",
            "     signing:",
            "       method: key",
            f"       connection: {json.dumps(conn_id)}",
        ]
    return "\n".join(lines) + "\n"
