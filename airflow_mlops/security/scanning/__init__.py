"""Model scanning: refuse any model file that could execute code when it is loaded.

The scanner never loads a model. It reads file contents and decides by *content* (magic bytes)
first and by file extension second, so renaming a pickle to ``weights.json`` does not hide it:

- **pickle streams** are walked opcode by opcode (:mod:`.walker`; nothing is unpickled). Every
  imported global (``GLOBAL``, ``STACK_GLOBAL``, ``INST``) must be on the built-in allowlist
  (:mod:`.policy`: the classes torch, numpy, scikit-learn, joblib and the standard library need
  to rebuild ordinary models) or in the caller's ``allowed_globals``. Globals that are dangerous
  in themselves (``os.system``, ``builtins.eval``, ``subprocess.*``, ``functools.partial``,
  ``pickle.loads`` ...) are refused even when the caller allowlists them.
- **joblib** files are walked the way ``joblib.load`` reads them: the raw array bytes after each
  ``NumpyArrayWrapper`` are skipped and the pickle after them is still walked; zlib, gzip, bz2,
  lzma and xz-compressed files are decompressed as a stream (bounded memory).
- **zip archives** (the ``torch.save`` format, ``.npz``) are opened and every pickle member
  (``*.pkl``, ``data.pkl`` or anything that starts like a pickle) and ``.npy`` member is checked.
- **.npy** files pass on their header when numeric; the pickle embedded in an object array is
  walked like any other (plain Python values pass, a payload is reported).
- **skops** files (a zip with ``schema.json``, ``skops.io.dump``) are read as skops reads them:
  the schema is walked node by node (strict JSON, bounded size and depth, only the node kinds and
  keys skops writes), every class, type and function it names must be on the skops allowlist
  (:mod:`.skops_policy`), and every member must be one the schema references, in that form
  (numeric ``.npy``, a scipy ``.npz``, raw bytes that are not a pickle). The loader then calls
  ``skops.io.load(path, trusted=trusted_skops_types(path))``.
- **safetensors** files are validated from their header alone (the data region is never read).
- **code** (``.py``, ``.so``, ``.sh``, executables ...) is refused unless ``trusted_code`` maps its
  relative path to its exact sha256 (this is how a pipeline ships its own pyfunc wrapper).
- **plain data** (``.json``, ``.yaml``, ``MLmodel``, ``.txt``, ``.md``, ``.csv``, other UTF-8 text)
  is fine once it parses; any other binary file is refused as unrecognised (fail closed).

Symlinks, special files and an empty model directory are findings too. Every finding about a
pickle names the offending ``module.name`` (:attr:`Finding.symbol`) and the byte offset of the
opcode (:attr:`Finding.offset`, counted in :attr:`Finding.stream`: the file, an archive member
or the decompressed stream).

Example::

    report = scan_model_dir("/models/churn/1", allowed_globals=["mypkg.features.Encoder"])
    report.ensure_safe()  # raises UnsafeModelError listing every finding and how to fix it
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from airflow_mlops.progress import Progress
from airflow_mlops.security.scanning.formats import Scanner
from airflow_mlops.security.scanning.policy import (
    BUILTIN_SAFE_GLOBALS,
    DANGEROUS_GLOBALS,
    DANGEROUS_MODULES,
    DANGEROUS_NAMES,
)
from airflow_mlops.security.scanning.report import FIX_HINTS, Finding, FindingKind, ScanReport
from airflow_mlops.security.scanning.skops_policy import trusted_skops_types

log = logging.getLogger(__name__)

__all__ = [
    "BUILTIN_SAFE_GLOBALS",
    "DANGEROUS_GLOBALS",
    "DANGEROUS_MODULES",
    "DANGEROUS_NAMES",
    "FIX_HINTS",
    "Finding",
    "FindingKind",
    "ScanReport",
    "scan_model_dir",
    "trusted_skops_types",
]


def scan_model_dir(
    path: str | os.PathLike[str],
    *,
    allowed_globals: Iterable[str] = (),
    trusted_code: Mapping[str, str] | None = None,
) -> ScanReport:
    """Scan a model directory (or a single model file) for anything that could run code on load.

    Nothing is loaded or unpickled. See the module docstring for what is checked.

    Args:
        path: the model directory (an MLflow model dir, a Hugging Face snapshot ...) or one file.
        allowed_globals: extra pickle globals to accept, as ``"module.name"`` (or ``"module.*"``
            for every name in a module). Dangerous globals (``os.system``, ``builtins.eval`` ...)
            are refused even when listed here.
        trusted_code: relative POSIX path -> sha256 hex of code files the pipeline ships on
            purpose (e.g. its MLflow pyfunc wrapper). Any other code file is a finding.

    Returns:
        A :class:`ScanReport`; call :meth:`ScanReport.ensure_safe` to fail on findings.
    """
    root = Path(path)
    if isinstance(allowed_globals, str):  # a single "module.name" rather than a list of them
        allowed_globals = [allowed_globals]
    allowed = frozenset(g.strip() for g in allowed_globals if g.strip())
    scanner = Scanner(allowed, trusted_code or {})
    if root.is_symlink() and not root.exists():
        scanner.add(".", FindingKind.SYMLINK, f"{root} is a broken symbolic link")
    elif root.is_file():
        scanner.scan_file(root, root.name)
    elif root.is_dir():
        progress = Progress(log, f"Scanning model {root}")
        for file_path, rel in scanner.walk(root, root):
            scanner.scan_file(file_path, rel)
            try:
                progress.advance(items=1, nbytes=file_path.stat().st_size)
            except OSError:
                progress.advance(items=1)
        progress.done()
    elif root.exists():
        scanner.add(".", FindingKind.SPECIAL_FILE, f"{root} is neither a file nor a directory")
    if scanner.files == 0 and not scanner.findings:
        what = "does not exist" if not root.exists() else "contains no files"
        scanner.add(".", FindingKind.NO_MODEL_FILES, f"model path {root} {what}")
    report = ScanReport(root=str(root), files_scanned=scanner.files, findings=tuple(scanner.findings))
    if report.ok:
        log.info("Model scan of %s passed: %s file(s), no findings", root, report.files_scanned)
    else:
        log.warning(
            "Model scan of %s found %s problem(s) in %s file(s): %s",
            root,
            len(report.findings),
            report.files_scanned,
            "; ".join(f"{f.path} [{f.kind}] {f.symbol or ''}" for f in report.findings[:20]),
        )
    return report
