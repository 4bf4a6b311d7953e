"""Allowed roots: the one check that a location read or written lies under a root the operator allows.

The operator of an Airflow deployment names the roots in ``AIRFLOW_MLOPS_ALLOWED_ROOTS``
(comma- or ``os.pathsep``-separated local directories and ``s3://bucket/prefix`` es); a folder's
``mlops-defaults.yaml`` may narrow them (see :func:`ensure_narrowing`). The spec loader checks
every location when a spec is parsed, for an early error; the run-time check of this module is
the guarantee: it runs on the path a task is about to read, after Jinja rendering.

What is checked, for a local location (a plain path or a ``file://`` URI):

* a ``file://`` URI is decoded as a URI (percent-encoding, ``file:///p`` or
  ``file://localhost/p``); a plain path is taken literally (``%2e%2e`` is a folder of that name);
* the path is made absolute (against ``base``, default the working directory: where a relative
  path would be opened) and resolved with every symbolic link followed
  (:func:`os.path.realpath`), so ``..`` segments, symlinked files and folders and symlink chains
  are judged by where they really lead;
* the resolved path must be a root or lie below one, segment by segment (``/data-evil`` is not
  under ``/data``); roots are resolved the same way.

The caller then opens the *resolved* path it got back, never the text it was given, and opens
it with :func:`open_resolved`: no symbolic link is followed on the way, and the file the
descriptor really names is compared with the path that was checked, so a folder or file swapped
for a link between the check and the open is refused, never read.

At run time (:func:`check_runtime`) every local root must be absolute: a relative root would be
resolved against whatever directory the worker happens to run in. An empty root is refused
everywhere (it would otherwise read as "no roots", which means no restriction).

An ``s3://`` URI must lie under an ``s3://`` root (bucket and prefix, segment by segment) and
its key may not hold empty, ``.`` or ``..`` segments; while roots are configured and none of them
is in S3, every S3 location is refused (roots that name only local folders allow no bucket). Any other scheme is refused while
roots are configured. No roots at all: nothing is restricted.

No Airflow import: domain code and the trainer may use it.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from io import BufferedReader
from urllib.parse import unquote, urlsplit

from airflow_mlops.exceptions import OutsideAllowedRootsError

ENV_VAR = "AIRFLOW_MLOPS_ALLOWED_ROOTS"
__all__ = [
    "ENV_VAR",
    "OutsideAllowedRootsError",
    "check_runtime",
    "ensure_narrowing",
    "ensure_within_roots",
    "local_path",
    "open_resolved",
    "open_resolved_dir",
    "resolve_local",
    "resolve_root",
    "roots_from_env",
]


def roots_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """The roots named by ``AIRFLOW_MLOPS_ALLOWED_ROOTS`` (comma- or ``os.pathsep``-separated), as given."""
    raw = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return [r.strip() for r in raw.replace(os.pathsep, ",").split(",") if r.strip()]


def is_s3(location: str) -> bool:
    return location.startswith("s3://")


def local_path(location: str) -> str | None:
    """The local path ``location`` names (not yet absolute or resolved), or None for ``s3://``.

    A ``file://`` URI is decoded (RFC 8089: ``file:///p`` or ``file://localhost/p``, percent-encoded);
    a plain path is taken literally, with ``~`` expanded.

    :raises OutsideAllowedRootsError: another scheme, a ``file://`` URI naming another host or
        carrying a query or fragment, or a path with a NUL byte.
    """
    if is_s3(location):
        return None
    if location.startswith("file:"):
        parts = urlsplit(location)
        if parts.netloc not in ("", "localhost") or not location.startswith("file://"):
            raise OutsideAllowedRootsError(
                f"{location!r} is not a local file URI: write file:///absolute/path (no host)"
            )
        if parts.query or parts.fragment:
            raise OutsideAllowedRootsError(
                f"{location!r} has a query or fragment; percent-encode '?' and '#' in file names"
            )
        path = unquote(parts.path)
    elif "://" in location:
        raise OutsideAllowedRootsError(
            f"{location!r} has an unsupported scheme: use a local path, file:///path or s3://bucket/key"
        )
    else:
        path = os.path.expanduser(location)
    if "\x00" in path:
        raise OutsideAllowedRootsError(f"{location!r} holds a NUL byte")
    return path


def resolve_local(location: str, base: str | os.PathLike[str] | None = None) -> str:
    """A local location made absolute (against ``base``, default the working directory) with every
    symbolic link and ``..`` resolved: the file the operating system would open."""
    path = local_path(location)
    if path is None:
        raise OutsideAllowedRootsError(f"{location!r} is not a local path")
    if not os.path.isabs(path):
        path = os.path.join(os.fspath(base) if base is not None else os.getcwd(), path)
    return os.path.realpath(path)


def resolve_root(root: str, base: str | os.PathLike[str] | None = None) -> str:
    """A root as the check compares it: ``s3://bucket/prefix`` without a trailing slash, or a
    resolved local directory."""
    if is_s3(root):
        return root.rstrip("/")
    return resolve_local(root, base)


def _s3_within(uri: str, root: str) -> bool:
    root = root.rstrip("/")
    return uri == root or uri.startswith(root + "/")


def _s3_clean(uri: str) -> bool:
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        return False
    segments = key.split("/") if key else []
    if segments and segments[-1] == "":
        segments = segments[:-1]  # a trailing slash names a prefix
    return all(s not in ("", ".", "..") for s in segments)


def path_within(path: str, root: str) -> bool:
    """Whether the resolved local ``path`` is ``root`` or below it (whole segments only)."""
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives, or a relative path against an absolute one
        return False


def _describe(roots: Sequence[str]) -> str:
    return ", ".join(roots) if roots else "(none)"


def ensure_within_roots(
    location: str | os.PathLike[str],
    roots: Iterable[str] | None,
    *,
    what: str = "data location",
    base: str | os.PathLike[str] | None = None,
) -> str:
    """The location to open: the resolved local path, or the ``s3://`` URI, once it is known to lie
    under one of ``roots`` (see the module docstring for the rules).

    ``roots`` empty or None: no restriction (the local path is still resolved). ``what`` names the
    location in the message (``"data.source"``, ``"the asset event's data"``).

    :raises OutsideAllowedRootsError: the location resolves outside every root; the message gives
        the location, where it resolved to and the allowed roots.
    """
    text = os.fspath(location)
    given = _given_roots(roots)
    if is_s3(text):
        if not given:
            return text  # no roots at all: nothing is restricted
        s3_roots = [resolve_root(r) for r in given if is_s3(r)]
        if not s3_roots:
            raise OutsideAllowedRootsError(
                f"{what} {text!r} is in S3, but the allowed roots name no s3:// location: "
                f"{_describe(given)}. Add the bucket and prefix (s3://bucket/prefix) to {ENV_VAR} or "
                "to the folder's allowed_roots"
            )
        if not _s3_clean(text):
            raise OutsideAllowedRootsError(
                f"{what} {text!r} has an empty, '.' or '..' segment in its key; allowed roots: "
                f"{_describe(s3_roots)}"
            )
        if any(_s3_within(text, r) for r in s3_roots):
            return text
        raise _outside(what, text, text, given)
    resolved = resolve_local(text, base)
    if not given:
        return resolved
    local_roots = [resolve_root(r, base) for r in given if not is_s3(r)]
    if any(path_within(resolved, r) for r in local_roots):
        return resolved
    raise _outside(what, text, resolved, given)


def _given_roots(roots: Iterable[str] | None) -> list[str]:
    """The roots as given; an empty or blank one is refused (it must not read as "no roots")."""
    given = [str(r) for r in roots or ()]
    if any(not r.strip() for r in given):
        raise OutsideAllowedRootsError(
            f"an allowed root is empty ({given!r}); name a directory or s3://bucket/prefix. An empty "
            f"root never means 'anywhere': leave {ENV_VAR} and allowed_roots unset for no restriction"
        )
    return given


def _outside(what: str, location: str, resolved: str, roots: Sequence[str]) -> OutsideAllowedRootsError:
    shown = location if resolved == location else f"{location!r} (resolved: {resolved})"
    return OutsideAllowedRootsError(
        f"{what} {shown} is outside the allowed roots: {_describe(roots)}. Put the data under one of "
        f"them, or have the Airflow operator widen {ENV_VAR} (a folder's mlops-defaults.yaml can "
        "only narrow it)"
    )


def ensure_narrowing(
    narrower: Sequence[str], wider: Sequence[str], *, base: str | os.PathLike[str] | None = None
) -> list[str]:
    """The roots of ``narrower`` that do not lie inside any root of ``wider`` (both resolved), so
    a folder's defaults file cannot widen the operator's roots. Empty: ``narrower`` only narrows."""
    wide = [resolve_root(r, base) for r in wider]
    bad = []
    for root in narrower:
        resolved = resolve_root(root, base)
        if is_s3(resolved):
            ok = any(is_s3(w) and _s3_within(resolved, w) for w in wide) and _s3_clean(resolved)
        else:
            ok = any(not is_s3(w) and path_within(resolved, w) for w in wide)
        if not ok:
            bad.append(root)
    return bad


def check_runtime(
    location: str | os.PathLike[str],
    roots: Iterable[str] | None,
    *,
    what: str = "data location",
    environ: Mapping[str, str] | None = None,
) -> str:
    """:func:`ensure_within_roots` against ``roots`` (a task's own, from its spec) and, when it is
    set where the task runs, against ``AIRFLOW_MLOPS_ALLOWED_ROOTS`` too: the stricter of both.
    ``roots`` None and no variable: not restricted. Returns the location to open."""
    env = roots_from_env(environ)
    own = _given_roots(roots) if roots is not None else None
    for source, given in (("the task's allowed_roots", own or []), (ENV_VAR, env)):
        for root in given:
            path = None if is_s3(root) else local_path(root)
            if path is not None and not os.path.isabs(path):
                raise OutsideAllowedRootsError(
                    f"allowed root {root!r} of {source} is a relative path: where a task runs it would "
                    "be resolved against the worker's working directory, which is not what anyone "
                    "allowed. Give an absolute directory"
                )
    resolved = ensure_within_roots(location, own, what=what)
    if env:
        ensure_within_roots(location, env, what=what)
    return resolved


def open_resolved(path: str | os.PathLike[str], *, what: str = "data file") -> BufferedReader:
    """Open for reading exactly ``path``, the resolved path a roots check returned, following no
    symbolic link: the last component is opened with ``O_NOFOLLOW``, and the file the descriptor
    names (``/proc/self/fd``; elsewhere device and inode of the path, re-resolved) must be ``path``
    itself, so a folder on the way swapped for a link after the check is refused.

    :raises FileNotFoundError: nothing at ``path``.
    :raises IsADirectoryError: ``path`` is a directory.
    :raises OutsideAllowedRootsError: a link is on the way (``path`` is not what it was checked
        as), or ``path`` is not a regular file (a FIFO, a device, a socket).
    """
    fd = _open_exact(os.fspath(path), what, directory=False)
    return BufferedReader(io.FileIO(fd, "rb"))


def open_resolved_dir(path: str | os.PathLike[str], *, what: str = "folder") -> int:
    """A descriptor of exactly the folder ``path`` (resolved, see :func:`open_resolved`), for
    :func:`os.scandir`; the caller closes it.

    :raises FileNotFoundError: nothing at ``path``.
    :raises NotADirectoryError: ``path`` is not a folder.
    :raises OutsideAllowedRootsError: a link is on the way.
    """
    return _open_exact(os.fspath(path), what, directory=True)


def _open_exact(target: str, what: str, *, directory: bool) -> int:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)  # a FIFO must not block
    if directory:
        flags |= getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(target, flags)
    except (FileNotFoundError, IsADirectoryError):
        raise
    except OSError:
        if os.path.islink(target):
            raise _swapped(what, target, "it is now a symbolic link") from None
        raise
    try:
        info = os.fstat(fd)
        if directory and not stat.S_ISDIR(info.st_mode):
            raise NotADirectoryError(target)
        if not directory and stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(target)
        if not directory and not stat.S_ISREG(info.st_mode):
            raise OutsideAllowedRootsError(
                f"{what} {target} is not a regular file (a FIFO, device or socket)"
            )
        actual = _fd_path(fd)
        if actual is not None:
            if actual != target:
                raise _swapped(what, target, f"the file opened is {actual}")
        elif os.path.realpath(target) != target or not os.path.samestat(info, os.stat(target)):
            raise _swapped(what, target, "a link is on its path")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _fd_path(fd: int) -> str | None:
    """The path the kernel gives for ``fd`` (Linux), or None where it cannot say."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _swapped(what: str, path: str, detail: str) -> OutsideAllowedRootsError:
    return OutsideAllowedRootsError(
        f"{what} {path} changed after it was checked against the allowed roots ({detail}); refusing "
        "to read it: a file or folder on its path was replaced by a symbolic link"
    )
