"""The skops loader's entry point: :func:`trusted_skops_types`, the ``trusted`` list to load a
scanned skops file with (never ``trusted=True``).

The file is scanned first (:func:`~airflow_mlops.security.scanning.scanner.scan_model_dir`), then
every type skops' own ``get_untrusted_types`` reports is judged against the skops allowlist
(:mod:`.skops_allowlist`, whose names this module re-exports). The trainer loads a scikit-learn
model through this function, and so does every later stage.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

from airflow_mlops.exceptions import UnsafeModelError
from airflow_mlops.security.scanning.scanner import scan_model_dir
from airflow_mlops.security.scanning.skops_allowlist import SKOPS_SAFE_NAMES, skops_name_problem

__all__ = ["SKOPS_SAFE_NAMES", "skops_name_problem", "trusted_skops_types"]


def trusted_skops_types(path: str | os.PathLike[str], *, allowed_types: Iterable[str] = ()) -> list[str]:
    """The ``trusted`` list to load a scanned skops file with: ``skops.io.load(path, trusted=...)``.

    The file is scanned first (:func:`~airflow_mlops.security.scanning.scan_model_dir`: the schema
    and every member, every name against :data:`SKOPS_SAFE_NAMES`); then skops' own
    ``get_untrusted_types(file=path)`` is asked, and every type it reports is checked against the
    same allowlist. The list skops reported is returned, so skops trusts exactly what was checked
    (never ``trusted=True``).

    Args:
        path: the ``.skops`` file.
        allowed_types: extra names to accept (``"module.name"`` or ``"module.*"``), as the scan's
            ``allowed_globals``; names the denylist refuses stay refused.

    Returns:
        skops' ``get_untrusted_types`` result (sorted names), every one of them allowed.

    Raises:
        UnsafeModelError: the scan has findings, the file is not a skops archive, skops cannot
            read it, or skops reports a type the allowlist refuses (named in the message).
    """
    file = Path(path)
    if isinstance(allowed_types, str):
        allowed_types = [allowed_types]
    allowed = frozenset(t.strip() for t in allowed_types if t.strip())
    if not file.is_file() or file.is_symlink():
        raise UnsafeModelError(f"{file} is not a regular file; a skops model is one .skops file")
    scan_model_dir(file, allowed_globals=allowed).ensure_safe()
    try:
        with zipfile.ZipFile(file) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeModelError(f"{file} is not a skops file (not a zip archive): {exc}") from exc
    if "schema.json" not in names:
        raise UnsafeModelError(f"{file} is not a skops file: it has no schema.json")
    try:
        import skops.io
    except ImportError as exc:  # pragma: no cover - skops is a dependency of the skops flavor
        raise UnsafeModelError("skops is not installed; cannot load a .skops model") from exc
    try:
        untrusted = list(skops.io.get_untrusted_types(file=str(file)))
    except Exception as exc:  # skops refusing the file is a refusal, whatever its error type
        raise UnsafeModelError(f"skops cannot read the types of {file}: {type(exc).__name__}: {exc}") from exc
    refused = []
    for name in untrusted:
        problem = skops_name_problem(name, allowed) if isinstance(name, str) else None
        if not isinstance(name, str) or problem is not None:
            refused.append(f"{name!r}: {problem[1] if problem else 'not a type name'}")
    if refused:
        raise UnsafeModelError(
            f"skops reports type(s) in {file} that the scanner does not allow, so it was not loaded:\n  - "
            + "\n  - ".join(refused)
        )
    return untrusted
