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

The caller then opens the *resolved* path it got back, never the text it was given.

An ``s3://`` URI is checked only against ``s3://`` roots: when none is configured, S3 locations
are not restricted (the bucket's IAM policy is their boundary). With one, the URI must lie under
it and its key may not hold empty, ``.`` or ``..`` segments. Any other scheme is refused while
roots are configured. No roots at all: nothing is restricted.

No Airflow import: domain code and the trainer may use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
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
    given = [r for r in roots or () if r]
    if is_s3(text):
        s3_roots = [resolve_root(r) for r in given if is_s3(r)]
        if not s3_roots:
            return text  # no s3:// root: S3 is not restricted (documented policy)
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
    resolved = ensure_within_roots(location, roots, what=what)
    if env:
        ensure_within_roots(location, env, what=what)
    return resolved
