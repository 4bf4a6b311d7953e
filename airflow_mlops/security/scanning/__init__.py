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
  (:mod:`.skops_allowlist`), and every member must be one the schema references, in that form
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

The package only re-exports; its modules import each other one way: :mod:`.skops_policy` (the
loader's entry point) -> :mod:`.scanner` (the walk over a model directory, per-file dispatch,
archive members, skops files) -> :mod:`.formats` (detection, per-format readers),
:mod:`.compression` (compressed streams, archive layouts), :mod:`.skops_allowlist`,
:mod:`.skops_schema` -> :mod:`.walker` (pickle opcodes) -> :mod:`.policy` (allow- and denylists).

Example::

    report = scan_model_dir("/models/churn/1", allowed_globals=["mypkg.features.Encoder"])
    report.ensure_safe()  # raises UnsafeModelError listing every finding and how to fix it
"""

from __future__ import annotations

from airflow_mlops.security.scanning.policy import (
    BUILTIN_SAFE_GLOBALS,
    DANGEROUS_GLOBALS,
    DANGEROUS_MODULES,
    DANGEROUS_NAMES,
)
from airflow_mlops.security.scanning.report import FIX_HINTS, Finding, FindingKind, ScanReport
from airflow_mlops.security.scanning.scanner import scan_model_dir
from airflow_mlops.security.scanning.skops_policy import trusted_skops_types

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
