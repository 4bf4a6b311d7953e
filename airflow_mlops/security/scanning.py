"""Model scanning: refuse any model file that could execute code when it is loaded.

The scanner never loads a model. It reads file contents and decides by *content* (magic bytes)
first and by file extension second, so renaming a pickle to ``weights.json`` does not hide it:

- **pickle streams** are walked opcode by opcode with :func:`pickletools.genops` (nothing is
  unpickled). Every imported global (``GLOBAL``, ``STACK_GLOBAL``, ``INST``) must be on a small
  built-in allowlist of tensor/array rebuild functions or in the caller's ``allowed_globals``.
  Globals that are dangerous in themselves (``os.system``, ``builtins.eval``, ``subprocess.*``,
  ``pickle.loads`` ...) are refused even when the caller allowlists them.
- **zip archives** (the ``torch.save`` format, ``.npz``) are opened and every pickle member
  (``*.pkl``, ``data.pkl`` or anything that starts like a pickle) is walked the same way.
- **safetensors** files are validated from their header alone (the data region is never read).
- **code** (``.py``, ``.so``, ``.sh``, executables ...) is refused unless ``trusted_code`` maps its
  relative path to its exact sha256 (this is how a pipeline ships its own pyfunc wrapper).
- **plain data** (``.json``, ``.yaml``, ``MLmodel``, ``.txt``, ``.md``, ``.csv``, other UTF-8 text)
  is fine once it parses; any other binary file is refused as unrecognised (fail closed).

Symlinks, special files and an empty model directory are findings too.

Example::

    report = scan_model_dir("/models/churn/1", allowed_globals=["sklearn.pipeline.Pipeline"])
    report.ensure_safe()  # raises UnsafeModelError listing every finding and how to fix it
"""

from __future__ import annotations

import ast
import codecs
import hashlib
import json
import logging
import os
import pickletools
import stat
import struct
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

import yaml

from airflow_mlops.exceptions import UnsafeModelError

log = logging.getLogger(__name__)

__all__ = ["BUILTIN_SAFE_GLOBALS", "FIX_HINTS", "Finding", "ScanReport", "scan_model_dir"]

# --- what a finding means and how to fix it -----------------------------------------------

#: kind -> how to fix it; shown by :meth:`ScanReport.ensure_safe` and in :meth:`ScanReport.to_dict`.
FIX_HINTS: dict[str, str] = {
    "dangerous_global": (
        "this pickle runs code on load and can never be allowlisted; save weights with safetensors "
        "(safetensors.torch.save_file / save_model) and rebuild the model object in code"
    ),
    "unknown_global": (
        "save weights with safetensors instead of pickle; if you trust this class, add "
        "'<module>.<name>' to the scan's allowed_globals"
    ),
    "unresolved_global": (
        "the pickle builds an import name at load time, which is a known scanner-evasion trick; "
        "re-save the model with safetensors"
    ),
    "extension_global": (
        "the pickle imports through the copyreg extension registry, which cannot be verified; "
        "re-save the model with safetensors"
    ),
    "invalid_pickle": "the file is not a well-formed pickle; re-export the model (prefer safetensors)",
    "object_array": "save arrays with a numeric dtype (np.save with allow_pickle=False) or with safetensors",
    "code": (
        "remove code from the model directory, or list its relative path and exact sha256 in "
        "trusted_code if your pipeline ships this file on purpose"
    ),
    "code_hash_mismatch": (
        "the file differs from the trusted version; restore the trusted file or update its sha256 "
        "in trusted_code after review"
    ),
    "invalid_safetensors": "re-export the weights with the safetensors library (safetensors.*.save_file)",
    "invalid_archive": "re-export the model; archives must be plain zip files without nested archives",
    "invalid_data_file": "fix the file so it parses (JSON must be valid JSON, YAML must pass yaml.safe_load)",
    "unrecognised_file": (
        "remove the file or convert it to a recognised format (safetensors weights, JSON/YAML/text "
        "metadata); unknown binaries are refused because they cannot be checked"
    ),
    "symlink": "replace the symlink with a regular file copy; links can point outside the model",
    "special_file": "remove the device, socket or FIFO from the model directory",
    "unreadable": "make the file readable by the worker, or remove it",
    "scan_error": "remove or re-export the file; files the scanner cannot check are refused",
    "no_model_files": "the model directory is empty or missing: check the path and that training wrote its output",
}


@dataclass(frozen=True)
class Finding:
    """One reason a model is unsafe to load.

    Attributes:
        path: path of the offending file relative to the scanned root, POSIX style (``"."`` for
            the root itself).
        kind: a short machine-readable category, one of :data:`FIX_HINTS`' keys.
        detail: what was found and why it is a risk.
    """

    path: str
    kind: str
    detail: str

    @property
    def fix(self) -> str:
        """How to fix this finding."""
        return FIX_HINTS.get(self.kind, "remove the file or re-export the model with safetensors")

    def to_dict(self) -> dict[str, str]:
        """A JSON-able representation (including the fix hint)."""
        return {"path": self.path, "kind": self.kind, "detail": self.detail, "fix": self.fix}

    def format(self) -> str:
        """One human-readable line (plus a fix line)."""
        return f"{self.path}: [{self.kind}] {self.detail}\n    fix: {self.fix}"


@dataclass(frozen=True)
class ScanReport:
    """The result of :func:`scan_model_dir`.

    Attributes:
        root: the scanned directory (or file), as given.
        files_scanned: number of regular files examined.
        findings: every problem found; empty means the model is safe to load.
    """

    root: str
    files_scanned: int
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when nothing unsafe was found."""
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able representation, suitable for XCom or an ML-BOM."""
        return {
            "root": self.root,
            "files_scanned": self.files_scanned,
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
        }

    def ensure_safe(self) -> None:
        """Raise :class:`UnsafeModelError` listing every finding, unless there are none."""
        if self.ok:
            return
        lines = "\n".join(f"  - {f.format()}" for f in self.findings)
        raise UnsafeModelError(
            f"model at {self.root} failed the security scan with {len(self.findings)} finding(s) "
            f"({self.files_scanned} file(s) scanned); it was not loaded:\n{lines}"
        )


# --- classification tables ----------------------------------------------------------------

_TORCH_STORAGES = [
    "Storage",
    "BoolStorage",
    "ByteStorage",
    "CharStorage",
    "ShortStorage",
    "IntStorage",
    "LongStorage",
    "HalfStorage",
    "FloatStorage",
    "DoubleStorage",
    "BFloat16Storage",
    "ComplexFloatStorage",
    "ComplexDoubleStorage",
    "QUInt8Storage",
    "QInt8Storage",
    "QInt32Storage",
    "QUInt4x2Storage",
    "QUInt2x4Storage",
    "UntypedStorage",
    "TypedStorage",
]
_TORCH_DTYPES = [
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "half",
    "float",
    "double",
    "complex32",
    "complex64",
    "complex128",
    "cfloat",
    "cdouble",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "short",
    "int",
    "long",
    "bool",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "quint8",
    "qint8",
    "qint32",
    "quint4x2",
]

#: Globals that only rebuild containers, tensors and arrays. Nothing here can run user code.
BUILTIN_SAFE_GLOBALS: frozenset[str] = frozenset(
    [
        "collections.OrderedDict",
        "collections.defaultdict",
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.complex",
        "builtins.bytearray",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "builtins.str",
        "builtins.bytes",
        "builtins.list",
        "builtins.tuple",
        "builtins.dict",
        "_codecs.encode",  # numpy arrays pickled with protocol 2 encode their bytes with it
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._tensor._rebuild_from_type_v2",
        "torch.Size",
        "torch.device",
        "torch.strided",
        "torch.contiguous_format",
        "torch.channels_last",
        "torch.preserve_format",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.core.numeric._frombuffer",  # protocol 5 arrays
        "numpy._core.numeric._frombuffer",
        "numpy.dtype",
        "numpy.ndarray",
    ]
    + [f"torch.{s}" for s in _TORCH_STORAGES]
    + [f"torch.storage.{s}" for s in ("UntypedStorage", "TypedStorage")]
    + [f"torch.{d}" for d in _TORCH_DTYPES]
)

#: Modules whose every member is refused, even when allowlisted (checked by dotted prefix).
DANGEROUS_MODULES: frozenset[str] = frozenset(
    [
        "os",
        "posix",
        "nt",
        "posixpath",
        "ntpath",
        "subprocess",
        "sys",
        "runpy",
        "importlib",
        "imp",
        "pkgutil",
        "pickle",
        "_pickle",
        "cPickle",
        "marshal",
        "dill",
        "cloudpickle",
        "joblib",
        "shelve",
        "pty",
        "socket",
        "shutil",
        "ctypes",
        "_ctypes",
        "code",
        "codeop",
        "pdb",
        "bdb",
        "webbrowser",
        "multiprocessing",
        "concurrent",
        "asyncio",
        "threading",
        "_thread",
        "signal",
        "http",
        "urllib",
        "urllib2",
        "requests",
        "httplib",
        "ftplib",
        "smtplib",
        "telnetlib",
        "xmlrpc",
        "tempfile",
        "types",
        "inspect",
        "__builtin__",
        "__builtins__",
        "_io",
        "io",
        "platform",
        "commands",
        "popen2",
        "timeit",
        "profile",
        "cProfile",
        "trace",
        "doctest",
        "idlelib",
        "lib2to3",
        "venv",
        "ensurepip",
        "pip",
        "setuptools",
        "distutils",
        "zipimport",
        "numpy.testing",
        "numpy.distutils",
        "numpy.f2py",
        "torch.hub",
        "torch.jit",
        "torch.package",
        "torch.serialization",
        "torch.ops",
        "torch._C",
        "torch.utils.cpp_extension",
        "torch.classes",
        "yaml",
        "gc",
        "sysconfig",
        "site",
    ]
)

#: Members of otherwise harmless modules that run code, read files, or re-enter a loader.
DANGEROUS_NAMES: frozenset[str] = frozenset(
    [
        "eval",
        "exec",
        "execfile",
        "compile",
        "getattr",
        "setattr",
        "delattr",
        "__import__",
        "open",
        "input",
        "breakpoint",
        "globals",
        "locals",
        "vars",
        "help",
        "exit",
        "quit",
        "apply",
        "reload",
        "system",
        "popen",
        "popen2",
        "popen3",
        "popen4",
        "spawnl",
        "spawnle",
        "spawnlp",
        "spawnlpe",
        "spawnv",
        "spawnve",
        "spawnvp",
        "spawnvpe",
        "execl",
        "execle",
        "execlp",
        "execlpe",
        "execv",
        "execve",
        "execvp",
        "execvpe",
        "fork",
        "forkpty",
        "load",
        "loads",
        "load_module",
        "import_module",
        "run_path",
        "run_module",
        "check_output",
        "check_call",
        "Popen",
        "attrgetter",
        "methodcaller",
    ]
)

_CODE_EXTENSIONS = frozenset(
    [
        ".py",
        ".pyc",
        ".pyo",
        ".pyd",
        ".pyw",
        ".pyx",
        ".pxd",
        ".so",
        ".dll",
        ".dylib",
        ".exe",
        ".com",
        ".bat",
        ".cmd",
        ".ps1",
        ".sh",
        ".bash",
        ".zsh",
        ".ksh",
        ".csh",
        ".fish",
        ".jar",
        ".class",
        ".wasm",
        ".elf",
        ".msi",
        ".vbs",
        ".js",
        ".mjs",
        ".pl",
        ".rb",
        ".lua",
    ]
)
_PICKLE_EXTENSIONS = frozenset([".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".p", ".sav"])
_JSON_EXTENSIONS = frozenset([".json"])
_YAML_EXTENSIONS = frozenset([".yaml", ".yml"])
_TEXT_EXTENSIONS = frozenset([".txt", ".md", ".csv", ".tsv", ".rst"])
_YAML_NAMES = frozenset(["MLmodel"])

_PICKLE_PROTO = 0x80
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"
_EXECUTABLE_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "an ELF executable or shared library"),
    (b"\xfe\xed\xfa\xce", "a Mach-O binary"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O binary"),
    (b"\xce\xfa\xed\xfe", "a Mach-O binary"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O binary"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal binary or Java class"),
    (b"\x00asm", "a WebAssembly module"),
)
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of a legacy (non-zip) torch.save file
_TORCH_LEGACY_PICKLES = 5  # magic, protocol, sys info, the object, storage keys; then raw data

_SAFETENSORS_DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}
_SAFETENSORS_MAX_HEADER = 100_000_000  # the safetensors library's own limit
_NPY_MAX_HEADER = 10_000  # numpy's own default max_header_size
_HEAD_SIZE = 16
_CHUNK = 1 << 20

# Pickle opcodes, by name, as pickletools reports them.
_STRING_OPS = frozenset(
    ["SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"]
)
_PUT_OPS = frozenset(["PUT", "BINPUT", "LONG_BINPUT"])
_GET_OPS = frozenset(["GET", "BINGET", "LONG_BINGET"])
_NEUTRAL_OPS = frozenset(["FRAME", "PROTO"])  # never touch the stack
_EXT_OPS = frozenset(["EXT1", "EXT2", "EXT4"])
_CALL_OPS = frozenset(["REDUCE", "BUILD", "OBJ", "NEWOBJ", "NEWOBJ_EX", "INST"])


class _Unknown:
    """Marker for a stack value the scanner cannot know statically."""

    def __repr__(self) -> str:
        return "<unknown>"


_UNKNOWN = _Unknown()


# --- pickle analysis -----------------------------------------------------------------------


class _BoundedReader:
    """A read-only view of a binary stream that never reads (or allocates) past ``limit`` bytes.

    ``pickletools`` trusts the length prefixes in a pickle; capping reads at the bytes that
    really remain keeps a forged 4 GiB length from allocating 4 GiB. It deliberately has no
    ``tell`` (``genops`` then skips per-opcode position lookups); :attr:`pos` tracks the offset.
    """

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self._raw = raw
        self.remaining = limit
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.remaining:
            n = self.remaining
        data = self._raw.read(n)
        self.remaining -= len(data)
        self.pos += len(data)
        return data

    def readline(self) -> bytes:
        data = self._raw.readline(self.remaining)
        self.remaining -= len(data)
        self.pos += len(data)
        return data


@dataclass
class _PickleScan:
    """What one pickle stream imports and does."""

    globals: list[tuple[str, str, str]] = field(default_factory=list)  # (module, name, opcode)
    unresolved: int = 0
    extension_refs: int = 0
    calls: int = 0
    protocol: int = 0
    first_long: int | None = None
    error: str | None = None


def _as_int(arg: object) -> int:
    """An opcode's integer argument (-1 if pickletools gave something else)."""
    return arg if isinstance(arg, int) else -1


def _walk_pickle(reader: _BoundedReader) -> _PickleScan:
    """Walk one pickle stream (up to and including its STOP) without executing it.

    The stack is not simulated in full; for ``STACK_GLOBAL`` the scanner only trusts operands it
    can prove: the two opcodes just before it (ignoring memo writes and framing, which do not
    touch the stack) must each push a known string, directly or through the memo.
    """
    scan = _PickleScan()
    memo: dict[int, object] = {}
    recent: list[object] = []  # values pushed by the last stack-changing opcodes (last two kept)
    try:
        for opcode, arg, _pos in pickletools.genops(cast(IO[bytes], reader)):
            name = opcode.name
            if name in _NEUTRAL_OPS:
                if name == "PROTO":
                    scan.protocol = _as_int(arg)
                continue
            if name in _PUT_OPS:
                memo[_as_int(arg)] = recent[-1] if recent else _UNKNOWN
                continue
            if name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else _UNKNOWN
                continue
            pushed: object = _UNKNOWN
            if name in _STRING_OPS:
                pushed = arg if isinstance(arg, str) else _UNKNOWN
            elif name in _GET_OPS:
                pushed = memo.get(_as_int(arg), _UNKNOWN)
            elif name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                scan.globals.append((module, attr, name))
            elif name == "STACK_GLOBAL":
                if len(recent) >= 2 and isinstance(recent[-2], str) and isinstance(recent[-1], str):
                    scan.globals.append((recent[-2], recent[-1], name))
                else:
                    scan.unresolved += 1
            elif name in _EXT_OPS:
                scan.extension_refs += 1
            elif name in ("LONG1", "LONG4") and scan.first_long is None:
                scan.first_long = _as_int(arg)
            elif name == "STOP":
                return scan
            if name in _CALL_OPS:
                scan.calls += 1
            recent = [*recent[-1:], pushed]
    except (ValueError, TypeError, EOFError, MemoryError, OverflowError, struct.error) as exc:
        scan.error = f"{exc} (near byte {reader.pos})"
        return scan
    scan.error = "stream ended before the STOP opcode"  # genops raises on this; kept for safety
    return scan


def _map_py2_name(module: str, name: str) -> tuple[str, str]:
    """Apply the protocol <3 import renames that the unpickler applies (``__builtin__`` ...)."""
    import _compat_pickle

    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _is_dangerous(module: str, name: str) -> bool:
    dotted = f"{module}.{name}"
    for candidate in (module, dotted):
        parts = candidate.split(".")
        if any(".".join(parts[:i]) in DANGEROUS_MODULES for i in range(1, len(parts) + 1)):
            return True
    components = name.split(".")
    if any(c in DANGEROUS_NAMES for c in components):
        return True
    # attribute traversal such as "OrderedDict.__init__.__globals__"
    return any(c.startswith("__") and c.endswith("__") for c in components)


def _is_allowed(dotted: str, module: str, allowed: frozenset[str]) -> bool:
    if dotted in BUILTIN_SAFE_GLOBALS or dotted in allowed:
        return True
    parts = module.split(".")
    return any(".".join(parts[:i]) + ".*" in allowed for i in range(1, len(parts) + 1))


def _judge_pickle(scan: _PickleScan, where: str, allowed: frozenset[str]) -> list[tuple[str, str]]:
    """Turn one pickle's walk into ``(kind, detail)`` findings."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for raw_module, raw_name, opcode in scan.globals:
        module, name = (raw_module, raw_name)
        if scan.protocol < 3:
            module, name = _map_py2_name(raw_module, raw_name)
        dotted = f"{module}.{name}"
        if dotted in seen:
            continue
        seen.add(dotted)
        shown = (
            dotted if (module, name) == (raw_module, raw_name) else f"{raw_module}.{raw_name} (= {dotted})"
        )
        if _is_dangerous(module, name):  # the name the unpickler really imports
            extra = (
                " (it is in allowed_globals, but dangerous globals are always refused)"
                if dotted in allowed
                else ""
            )
            out.append(
                (
                    "dangerous_global",
                    f"{where}imports {shown} via {opcode}, which can run arbitrary code when the file is loaded{extra}",
                )
            )
        elif not _is_allowed(dotted, module, allowed):
            out.append(
                (
                    "unknown_global",
                    f"{where}imports {shown} via {opcode}; unpickling calls it with data from the file, "
                    "and it is not on the allowlist",
                )
            )
    if scan.unresolved:
        out.append(
            (
                "unresolved_global",
                f"{where}has {scan.unresolved} STACK_GLOBAL import(s) whose module/name cannot be "
                "determined without executing the pickle",
            )
        )
    if scan.extension_refs:
        out.append(
            (
                "extension_global",
                f"{where}has {scan.extension_refs} EXT import(s) through the copyreg extension registry",
            )
        )
    if scan.calls and not scan.globals and not scan.unresolved and not scan.extension_refs:
        out.append(("invalid_pickle", f"{where}has call opcodes (REDUCE/BUILD/OBJ) but imports no callable"))
    if scan.error:
        out.append(("invalid_pickle", f"{where}cannot be parsed as a pickle: {scan.error}"))
    return out


def _scan_pickle_stream(
    raw: IO[bytes], size: int, where: str, allowed: frozenset[str]
) -> list[tuple[str, str]]:
    """Scan every pickle in a stream and return ``(kind, detail)`` findings.

    Pickles may be concatenated (legacy ``torch.save`` files hold five, then raw storage bytes;
    ``pickle.dump`` may have been called twice). Any bytes after a pickle must themselves be a
    well-formed pickle, except the storage bytes after the fifth pickle of a legacy torch file.
    """
    reader = _BoundedReader(raw, size)
    findings: list[tuple[str, str]] = []
    count = 0
    legacy_torch = False
    while True:
        start = reader.pos
        scan = _walk_pickle(reader)
        count += 1
        label = where if count == 1 else f"{where}(pickle #{count} at byte {start}) "
        findings.extend(_judge_pickle(scan, label, allowed))
        if scan.error or reader.remaining <= 0:
            return findings
        if count == 1 and scan.first_long == _TORCH_LEGACY_MAGIC:
            legacy_torch = True
        if legacy_torch and count >= _TORCH_LEGACY_PICKLES:
            return findings  # the rest of a legacy torch file is raw storage bytes, never unpickled


# --- other formats -------------------------------------------------------------------------


def _check_safetensors(fh: IO[bytes], size: int) -> list[str]:
    """Validate a safetensors header; returns problems (empty when valid). Reads the header only."""
    if size < 8:
        return [f"file is {size} bytes, too short for the 8-byte header length"]
    (header_len,) = struct.unpack("<Q", fh.read(8))
    if header_len > _SAFETENSORS_MAX_HEADER:
        return [f"header length {header_len} exceeds the {_SAFETENSORS_MAX_HEADER}-byte limit"]
    if 8 + header_len > size:
        return [f"header length {header_len} runs past the end of the {size}-byte file"]
    raw_header = fh.read(header_len)
    duplicates: list[str] = []

    def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        duplicates.extend(k for k in set(keys) if keys.count(k) > 1)
        return dict(pairs)

    try:
        header = json.loads(raw_header.decode("utf-8"), object_pairs_hook=_pairs)
    except (UnicodeDecodeError, ValueError) as exc:
        return [f"header is not valid UTF-8 JSON: {exc}"]
    if not isinstance(header, dict):
        return [f"header must be a JSON object, got {type(header).__name__}"]
    problems: list[str] = []
    if duplicates:
        problems.append(f"header repeats key(s) {sorted(set(duplicates))} (ambiguous between parsers)")
    data_len = size - 8 - header_len
    spans: list[tuple[int, int, str]] = []
    for key, info in header.items():
        if key == "__metadata__":
            if not isinstance(info, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in info.items()
            ):
                problems.append("__metadata__ must map strings to strings")
            continue
        if not isinstance(info, dict):
            problems.append(f"tensor {key!r}: entry must be an object")
            continue
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in _SAFETENSORS_DTYPE_BITS:
            problems.append(f"tensor {key!r}: unknown dtype {dtype!r}")
            continue
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            problems.append(f"tensor {key!r}: shape must be a list of non-negative integers, got {shape!r}")
            continue
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
        ):
            problems.append(
                f"tensor {key!r}: data_offsets must be two non-negative integers, got {offsets!r}"
            )
            continue
        begin, end = offsets
        if begin > end or end > data_len:
            problems.append(
                f"tensor {key!r}: data_offsets [{begin}, {end}] fall outside the {data_len}-byte data region"
            )
            continue
        numel = 1
        for d in shape:
            numel *= d
        bits = numel * _SAFETENSORS_DTYPE_BITS[dtype]
        if bits % 8 or bits // 8 != end - begin:
            problems.append(
                f"tensor {key!r}: {dtype} shape {shape} needs {bits / 8:g} bytes but data_offsets span {end - begin}"
            )
            continue
        spans.append((begin, end, key))
    spans.sort()
    cursor = 0
    for begin, end, key in spans:
        if begin < cursor:
            problems.append(f"tensor {key!r}: data_offsets [{begin}, {end}] overlap another tensor")
        elif begin > cursor:
            problems.append(f"tensor {key!r}: unexplained gap of {begin - cursor} bytes before its data")
        cursor = max(cursor, end)
    if not problems and cursor != data_len:
        problems.append(
            f"{data_len - cursor} trailing bytes after the last tensor are not described by the header"
        )
    return problems


def _has_pickle_magic(head: bytes) -> bool:
    """True when ``head`` starts with the PROTO opcode of pickle protocol 2 to 5."""
    return len(head) >= 2 and head[0] == _PICKLE_PROTO and 2 <= head[1] <= 5


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _check_npy(fh: IO[bytes]) -> tuple[str, str] | None:
    """Check a ``.npy`` header; object arrays are pickles in disguise."""
    head = fh.read(8)
    if len(head) < 8 or not head.startswith(_NPY_MAGIC):
        return ("unrecognised_file", "not a valid .npy file")
    major = head[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", fh.read(2))
    elif major in (2, 3):
        (hlen,) = struct.unpack("<I", fh.read(4))
    else:
        return ("unrecognised_file", f"unsupported .npy format version {major}")
    if hlen > _NPY_MAX_HEADER:
        return (
            "unrecognised_file",
            f".npy header of {hlen} bytes exceeds numpy's {_NPY_MAX_HEADER}-byte limit",
        )
    try:
        text = fh.read(hlen).decode("utf-8" if major == 3 else "latin-1")
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, UnicodeDecodeError, RecursionError, MemoryError) as exc:
        return ("unrecognised_file", f".npy header cannot be parsed: {exc}")
    if not isinstance(header, dict) or "descr" not in header:
        return ("unrecognised_file", ".npy header has no 'descr'")
    if _descr_has_object(header["descr"]):
        return (
            "object_array",
            f"array dtype {header['descr']!r} holds Python objects, which load through pickle",
        )
    return None


def _descr_has_object(descr: object) -> bool:
    if isinstance(descr, str):
        return "O" in descr
    if isinstance(descr, list | tuple):
        return any(_descr_has_object(d) for d in descr)
    return True  # unknown structure: fail closed


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_utf8_text(path: Path) -> bool:
    """True when the whole file decodes as UTF-8 and holds no NUL byte (streamed)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                if b"\x00" in chunk:
                    return False
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _parses_as_complete_pickle(path: Path, size: int) -> bool:
    """True when the file is one well-formed pickle (used to catch protocol 0/1 pickles)."""
    with path.open("rb") as fh:
        reader = _BoundedReader(fh, size)
        scan = _walk_pickle(reader)
    return scan.error is None


# --- per-file dispatch ---------------------------------------------------------------------


class _Scanner:
    """Holds the scan options and collects findings."""

    def __init__(self, allowed: frozenset[str], trusted_code: Mapping[str, str]) -> None:
        self.allowed = allowed
        self.trusted_code = {str(PurePosixPath(k)): v.lower() for k, v in trusted_code.items()}
        self.findings: list[Finding] = []
        self.files = 0

    def add(self, rel: str, kind: str, detail: str) -> None:
        self.findings.append(Finding(path=rel, kind=kind, detail=detail))

    def walk(self, root: Path, top: Path) -> Iterator[tuple[Path, str]]:
        """Yield (path, relative posix path) of regular files; report links and special files."""
        try:
            entries = sorted(os.scandir(top), key=lambda e: e.name)
        except OSError as exc:
            self.add(_rel(top, root), "unreadable", f"cannot list directory: {exc.strerror or exc}")
            return
        for entry in entries:
            path = Path(entry.path)
            rel = _rel(path, root)
            if entry.is_symlink():
                target = os.readlink(entry.path)
                self.add(rel, "symlink", f"symbolic link to {target!r}; a link can point outside the model")
            elif entry.is_dir(follow_symlinks=False):
                yield from self.walk(root, path)
            elif entry.is_file(follow_symlinks=False):
                yield path, rel
            else:
                self.add(rel, "special_file", "not a regular file (device, socket or FIFO)")

    def scan_file(self, path: Path, rel: str) -> None:
        """Classify one regular file by content, then by extension, and check it."""
        self.files += 1
        suffix = path.suffix.lower()
        try:
            size = path.stat().st_size
            with path.open("rb") as fh:
                head = fh.read(_HEAD_SIZE)
        except OSError as exc:
            self.add(rel, "unreadable", f"cannot read file: {exc.strerror or exc}")
            return
        try:
            self._dispatch(path, rel, suffix, head, size)
        except OSError as exc:
            self.add(rel, "unreadable", f"cannot read file: {exc.strerror or exc}")
        except Exception as exc:  # fail closed: a file the scanner cannot check is not safe
            log.exception("Model scan could not check %s", path)
            self.add(rel, "scan_error", f"the scanner could not check this file: {type(exc).__name__}: {exc}")

    def _dispatch(self, path: Path, rel: str, suffix: str, head: bytes, size: int) -> None:
        code_reason = self._code_reason(path, suffix, head)
        if code_reason:
            self._check_code(path, rel, code_reason)
            return
        pickle_magic = _has_pickle_magic(head)
        if head.startswith(_ZIP_MAGICS):
            self._scan_zip(path, rel)
        elif suffix == ".safetensors" or _looks_like_safetensors(head, size):
            self._check_safetensors_file(path, rel, suffix, size, pickle_magic=pickle_magic)
        elif pickle_magic:
            self._scan_pickle_file(path, rel, size)
        elif head.startswith(_NPY_MAGIC):
            with path.open("rb") as fh:
                problem = _check_npy(fh)
            if problem:
                self.add(rel, *problem)
        elif suffix in _PICKLE_EXTENSIONS:
            # protocol 0/1 pickles have no magic; the extension says a loader will unpickle it
            self._scan_pickle_file(path, rel, size)
        elif suffix in _JSON_EXTENSIONS:
            self._check_json(path, rel)
        elif suffix in _YAML_EXTENSIONS or path.name in _YAML_NAMES:
            self._check_yaml(path, rel)
        elif suffix in _TEXT_EXTENSIONS or _is_utf8_text(path):
            self._check_text(path, rel, size)
        elif size and _parses_as_complete_pickle(path, size):
            self._scan_pickle_file(path, rel, size)
        else:
            self.add(rel, "unrecognised_file", f"binary file of {size} bytes in no recognised format")

    def _check_safetensors_file(
        self, path: Path, rel: str, suffix: str, size: int, *, pickle_magic: bool
    ) -> None:
        with path.open("rb") as fh:
            problems = _check_safetensors(fh, size)
        if problems and pickle_magic and suffix != ".safetensors":
            # a pickle whose first bytes merely look like a safetensors header length
            self._scan_pickle_file(path, rel, size)
            return
        for problem in problems:
            self.add(rel, "invalid_safetensors", problem)
        if pickle_magic or suffix in _PICKLE_EXTENSIONS:
            # a torch.load("model.bin") would unpickle it: make sure it is not a pickle polyglot
            self._scan_pickle_file(path, rel, size, where="file, read as a pickle, ", polyglot=True)

    def _code_reason(self, path: Path, suffix: str, head: bytes) -> str | None:
        if suffix in _CODE_EXTENSIONS:
            return f"'{suffix}' file"
        for magic, what in _EXECUTABLE_MAGICS:
            if head.startswith(magic):
                return what
        text_like = (
            suffix in _JSON_EXTENSIONS | _YAML_EXTENSIONS | _TEXT_EXTENSIONS or path.name in _YAML_NAMES
        )
        if not text_like and head.startswith(b"MZ"):
            return "a Windows (PE) executable or DLL"
        if not text_like and head.startswith(b"#!"):
            return "a script with a #! interpreter line"
        return None

    def _check_code(self, path: Path, rel: str, reason: str) -> None:
        expected = self.trusted_code.get(rel)
        if expected is None:
            self.add(rel, "code", f"{reason}: executable code in a model can run when the model is loaded")
            return
        actual = _sha256_file(path)
        if actual != expected:
            self.add(
                rel,
                "code_hash_mismatch",
                f"{reason} listed in trusted_code, but its sha256 is {actual}, not the trusted {expected}",
            )

    def _scan_pickle_file(
        self, path: Path, rel: str, size: int, *, where: str = "pickle ", polyglot: bool = False
    ) -> None:
        """Walk a pickle file. With ``polyglot``, only report what a pickle loader would import.

        ``polyglot`` is for files that are valid in another format (safetensors, text) but could
        still be handed to a pickle loader: parse errors are expected there and are not findings,
        while any import seen before the parse error still is (the unpickler runs opcodes as it
        reads them).
        """
        with path.open("rb") as fh:
            results = _scan_pickle_stream(fh, size, where, self.allowed)
        for kind, detail in results:
            if not (polyglot and kind == "invalid_pickle"):
                self.add(rel, kind, detail)

    def _scan_zip(self, path: Path, rel: str) -> None:
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
            self.add(rel, "invalid_archive", f"zip archive cannot be read: {exc}")
            return
        with zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                self.add(rel, "invalid_archive", f"archive repeats member name(s) {dupes}")
            for info in infos:
                self._scan_zip_member(zf, info, rel)

    def _scan_zip_member(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str) -> None:
        name = info.filename
        where = f"member {name!r} "
        if info.is_dir():
            return
        member_path = PurePosixPath(name)
        if member_path.is_absolute() or ".." in member_path.parts or "\\" in name:
            self.add(rel, "invalid_archive", f"{where}has an unsafe path (absolute or '..')")
        if info.flag_bits & 0x1:
            self.add(rel, "invalid_archive", f"{where}is encrypted and cannot be scanned")
            return
        if stat.S_ISLNK(info.external_attr >> 16):
            self.add(rel, "symlink", f"{where}is a symbolic link")
            return
        suffix = member_path.suffix.lower()
        if suffix in _CODE_EXTENSIONS:
            self.add(rel, "code", f"{where}is a '{suffix}' file: executable code inside the archive")
            return
        try:
            with zf.open(info) as fh:
                head = fh.read(_HEAD_SIZE)
            # torch.load unpickles data.pkl only; raw storages ("data/0") may start with 0x80 by chance
            is_pickle = suffix in (".pkl", ".pickle") or (
                _has_pickle_magic(head) and suffix in _PICKLE_EXTENSIONS
            )
            if is_pickle:
                with zf.open(info) as fh:
                    for kind, detail in _scan_pickle_stream(fh, info.file_size, where, self.allowed):
                        self.add(rel, kind, detail)
            elif head.startswith(_NPY_MAGIC):
                with zf.open(info) as fh:
                    problem = _check_npy(fh)
                if problem:
                    self.add(rel, problem[0], where + problem[1])
            elif head.startswith(_ZIP_MAGICS):
                self.add(rel, "invalid_archive", f"{where}is a nested archive, which is not scanned")
            else:
                for magic, what in _EXECUTABLE_MAGICS:
                    if head.startswith(magic):
                        self.add(rel, "code", f"{where}is {what}")
                        break
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, ValueError) as exc:
            self.add(rel, "invalid_archive", f"{where}cannot be read: {exc}")

    def _check_json(self, path: Path, rel: str) -> None:
        try:
            with path.open("rb") as fh:
                json.load(fh)
        except (ValueError, RecursionError) as exc:
            self.add(rel, "invalid_data_file", f"not valid JSON: {exc}")

    def _check_yaml(self, path: Path, rel: str) -> None:
        try:
            with path.open("rb") as fh:
                yaml.safe_load(fh)
        except (yaml.YAMLError, ValueError, RecursionError) as exc:
            self.add(rel, "invalid_data_file", f"not valid YAML (yaml.safe_load): {exc}".replace("\n", " "))
            return
        self._check_text_is_not_pickle(path, rel)

    def _check_text(self, path: Path, rel: str, size: int) -> None:
        if size:
            self._check_text_is_not_pickle(path, rel)

    def _check_text_is_not_pickle(self, path: Path, rel: str) -> None:
        """Text can still be a protocol 0 pickle (``cos\\nsystem\\n...``): walk it if it is one."""
        size = path.stat().st_size
        if size and _parses_as_complete_pickle(path, size):
            self._scan_pickle_file(path, rel, size, where="text file that is a pickle ", polyglot=True)


def _rel(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return rel or "."


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
    scanner = _Scanner(allowed, trusted_code or {})
    if root.is_symlink() and not root.exists():
        scanner.add(".", "symlink", f"{root} is a broken symbolic link")
    elif root.is_file():
        scanner.scan_file(root, root.name)
    elif root.is_dir():
        for file_path, rel in scanner.walk(root, root):
            scanner.scan_file(file_path, rel)
    elif root.exists():
        scanner.add(".", "special_file", f"{root} is neither a file nor a directory")
    if scanner.files == 0 and not scanner.findings:
        what = "does not exist" if not root.exists() else "contains no files"
        scanner.add(".", "no_model_files", f"model path {root} {what}")
    report = ScanReport(root=str(root), files_scanned=scanner.files, findings=tuple(scanner.findings))
    if report.ok:
        log.info("Model scan of %s passed: %s file(s), no findings", root, report.files_scanned)
    else:
        log.warning(
            "Model scan of %s found %s problem(s) in %s file(s): %s",
            root,
            len(report.findings),
            report.files_scanned,
            "; ".join(f"{f.path} [{f.kind}]" for f in report.findings[:20]),
        )
    return report
