"""What a file is and how each format is read: detection by content (then extension), and the
per-format readers the scanner calls. Nothing here loads a model or collects findings.

- the vocabulary of detection: extensions, magic bytes, the executable signatures;
- pickle streams (plain, concatenated, legacy ``torch.save``): walked by :mod:`.walker` and
  judged against :mod:`.policy` (:func:`judge_walk`, :func:`scan_pickle_stream`), joblib files
  with the raw array bytes after each ``NumpyArrayWrapper`` skipped exactly as ``joblib.load``
  reads them;
- safetensors (header only, :func:`check_safetensors`), ``.npy`` headers as numpy reads them
  (:func:`npy_dtype`), XGBoost's UBJSON (:func:`ubjson_problem`), and whether text or unknown
  bytes could still be read as a pickle.

Compressed streams and archive layouts are :mod:`.compression`; the per-file dispatch, archive
members and skops files are :mod:`.scanner`.
"""

from __future__ import annotations

import codecs
import importlib.util
import json
import struct
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from airflow_mlops.security.scanning import policy
from airflow_mlops.security.scanning.report import FindingKind
from airflow_mlops.security.scanning.walker import (
    TORCH_LEGACY_MAGIC,
    GlobalRef,
    PickleWalk,
    Source,
    walk_stream,
)

K = FindingKind
CODE_EXTENSIONS = frozenset(
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
PICKLE_EXTENSIONS = frozenset([".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".p", ".sav"])
JSON_EXTENSIONS = frozenset([".json"])
YAML_EXTENSIONS = frozenset([".yaml", ".yml"])
UBJSON_EXTENSIONS = frozenset([".ubj", ".ubjson"])
TEXT_EXTENSIONS = frozenset([".txt", ".md", ".csv", ".tsv", ".rst"])
YAML_NAMES = frozenset(["MLmodel"])

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
NPY_MAGIC = b"\x93NUMPY"

EXECUTABLE_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "an ELF executable or shared library"),
    (b"\xfe\xed\xfa\xce", "a Mach-O binary"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O binary"),
    (b"\xce\xfa\xed\xfe", "a Mach-O binary"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O binary"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal binary or Java class"),
    (b"\x00asm", "a WebAssembly module"),
)
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
_NPY_MAX_HEADER = 1 << 20  # numpy ignores its 10 kB limit with allow_pickle=True; the scanner bounds it
HEAD_SIZE = 16
READ_CHUNK = 1 << 20

JOBLIB_EXTENSIONS = frozenset([".joblib", ".z", ".gz", ".bz2", ".lzma", ".xz", ".pkl.z"])
_PICKLE_PROTO = 0x80


@dataclass(frozen=True)
class Hit:
    """A finding before it is tied to a file."""

    kind: FindingKind
    detail: str
    symbol: str | None = None
    offset: int | None = None


# --- judging one pickle walk ---------------------------------------------------------------


def _allowed(dotted: str, module: str, name: str, allowed: frozenset[str]) -> bool:
    """Whether the import is on an allowlist. A dotted name is attribute traversal (from protocol 4
    the unpickler resolves ``Outer.Inner`` with ``getattr`` step by step), which can leave the module
    through any module it imported (``mypkg`` + ``ctypes.CDLL``): only an exact entry allows it, never
    a ``mypkg.*`` wildcard."""
    if "." in name:
        return dotted in policy.BUILTIN_SAFE_GLOBALS or dotted in allowed
    return policy.is_allowed(dotted, module, allowed)


def judge_walk(walk: PickleWalk, where: str, allowed: frozenset[str], stream: str) -> list[Hit]:
    """Turn one pickle's walk (and its nested/polyglot walks) into findings."""
    out: list[Hit] = []
    seen: dict[str, int] = {}
    for ref in walk.globals:
        module, name = ref.resolved()
        dotted = f"{module}.{name}"
        if dotted in seen:
            continue
        seen[dotted] = ref.offset
        shown = (
            dotted if (module, name) == (ref.module, ref.name) else f"{ref.module}.{ref.name} (= {dotted})"
        )
        at = f" at byte {ref.offset} of the {stream}"
        if dotted in policy.BUILTIN_SAFE_GLOBALS:
            continue  # the curated allowlist is reviewed against the denylist (see policy.py)
        if policy.is_dangerous(module, name):  # the name the unpickler really imports
            extra = (
                " (it is in allowed_globals, but dangerous globals are always refused)"
                if policy.is_allowed(dotted, module, allowed)
                else ""
            )
            out.append(
                Hit(
                    K.DANGEROUS_GLOBAL,
                    f"{where}imports {shown} via {ref.opcode}{at}, which can run arbitrary code when "
                    f"the file is loaded{extra}",
                    dotted,
                    ref.offset,
                )
            )
        elif not _allowed(dotted, module, name, allowed):
            out.append(
                Hit(
                    K.UNKNOWN_GLOBAL,
                    f"{where}imports {shown} via {ref.opcode}{at}; unpickling calls it with data from "
                    "the file, and it is not on the allowlist",
                    dotted,
                    ref.offset,
                )
            )
    if walk.unresolved:
        out.append(
            Hit(
                K.UNRESOLVED_GLOBAL,
                f"{where}has {len(walk.unresolved)} STACK_GLOBAL import(s) whose module/name cannot be "
                f"determined without executing the pickle (first at byte {walk.unresolved[0]} of the {stream})",
                None,
                walk.unresolved[0],
            )
        )
    if walk.extension_refs:
        out.append(
            Hit(
                K.EXTENSION_GLOBAL,
                f"{where}has {len(walk.extension_refs)} EXT import(s) through the copyreg extension "
                f"registry (first at byte {walk.extension_refs[0]} of the {stream})",
                None,
                walk.extension_refs[0],
            )
        )
    for nested in walk.nested:
        out.extend(
            judge_walk(
                nested,
                f"{where}(nested pickle of a joblib object array at byte {nested.start}) ",
                allowed,
                stream,
            )
        )
    for poly in walk.polyglot:
        label = f"{where}(array bytes at byte {poly.start}, which pickle.load would read as opcodes: "
        hits = judge_walk(poly, label, allowed, stream)
        if not hits:
            hits = [
                Hit(
                    K.INVALID_PICKLE,
                    f"{label}they parse as pickle opcodes, so the file means different things to "
                    "joblib.load and pickle.load) ",
                    None,
                    poly.start,
                )
            ]
        out.extend(hits)
    for opname, target, offset in walk.mutations:
        out.append(
            Hit(
                K.GLOBAL_MUTATION,
                f"{where}{opname} at byte {offset} of the {stream} sets state on or adds items to "
                f"{target}, an object the pickle did not create; loading would change it for the "
                "whole process (class or module poisoning)",
                target if not target.startswith("numpy.dtype(") else "numpy.dtype",
                offset,
            )
        )
    restricted_seen: set[str] = set()
    for dotted, how, offset in walk.restricted:
        if dotted in restricted_seen:
            continue
        restricted_seen.add(dotted)
        out.append(
            Hit(
                K.RESTRICTED_GLOBAL,
                f"{where}uses {dotted} other than as pickle writes it: {how} at byte {offset} of the "
                f"{stream} (only cls.__new__ then __setstate__ is allowed; its constructor loads the "
                "model file its arguments name)",
                dotted,
                offset,
            )
        )
    if walk.calls and not walk.globals and not walk.unresolved and not walk.extension_refs:
        out.append(
            Hit(
                K.INVALID_PICKLE,
                f"{where}has call opcodes (REDUCE/BUILD/OBJ) but imports no callable",
                None,
                walk.start,
            )
        )
    if walk.error:
        out.append(
            Hit(
                K.AMBIGUOUS_LAYOUT if walk.layout_error else K.INVALID_PICKLE,
                f"{where}cannot be parsed as a pickle: {walk.error} (near byte {walk.error_offset} of the {stream})",
                None,
                walk.error_offset,
            )
        )
    return out


def scan_pickle_stream(
    raw: IO[bytes] | None,
    size: int | None,
    where: str,
    allowed: frozenset[str],
    *,
    stream: str = "file",
    joblib: bool = True,
    base: int = 0,
    text: bool = False,
) -> list[Hit]:
    """Scan every pickle in a stream.

    Pickles may be concatenated (legacy ``torch.save`` files hold five, then raw storage bytes;
    ``pickle.dump`` may have been called twice). Any bytes after a pickle must themselves be a
    well-formed pickle, except the storage bytes after the fifth pickle of a legacy torch file.
    ``joblib`` walks the stream the way ``joblib.load`` reads it (the raw array bytes after each
    ``NumpyArrayWrapper`` are skipped); without a wrapper it is the same as ``pickle.load``.
    ``text``: the stream is a text file that may merely start like a pickle; imports of modules
    that cannot exist are not findings (see :func:`_importable`).
    """
    src = Source(raw, size, base=base)
    findings: list[Hit] = []
    count = 0
    legacy_torch = False
    while True:
        walk = walk_stream(src, joblib=joblib)
        if text:
            walk = _drop_unimportable(walk)
        count += 1
        label = where if count == 1 else f"{where}(pickle #{count} at byte {walk.start}) "
        findings.extend(judge_walk(walk, label, allowed, stream))
        if walk.error or src.at_end():
            return findings
        if count == 1 and walk.first_long == TORCH_LEGACY_MAGIC:
            legacy_torch = True
        if legacy_torch and count >= _TORCH_LEGACY_PICKLES:
            return findings  # the rest of a legacy torch file is raw storage bytes, never unpickled


def check_safetensors(fh: IO[bytes], size: int) -> list[str]:
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


def has_pickle_magic(head: bytes) -> bool:
    """True when ``head`` starts with the PROTO opcode of pickle protocol 2 to 5."""
    return len(head) >= 2 and head[0] == _PICKLE_PROTO and 2 <= head[1] <= 5


def looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= size - 8 and head[8:9] == b"{"


class _BoundedReader:
    """Counts what numpy's header reader consumes and refuses any single read over ``cap`` bytes
    (a forged 4 GiB header length must not be allocated)."""

    def __init__(self, raw: IO[bytes], cap: int) -> None:
        self.raw = raw
        self.cap = cap
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self.cap:
            raise ValueError(f"the header asks for {n} bytes, more than the scanner's {self.cap}-byte limit")
        data = self.raw.read(n)
        self.count += len(data)
        return data


def npy_dtype(fh: IO[bytes]) -> tuple[Any, int, str | None]:
    """(dtype, bytes read, problem) of a ``.npy`` stream at its start, decided by numpy itself.

    ``numpy.load`` reads the magic, then the header with ``numpy.lib.format``'s reader, and
    unpickles the rest of the stream when ``dtype.hasobject``; the scanner calls the same
    functions (only the header size is bounded), so it cannot disagree with the loader about
    whether an array holds objects (``'O'``, ``'object'``, a structured field of objects ...).
    """
    from numpy.lib import format as npformat

    read_header = getattr(npformat, "_read_array_header", None)
    check_version = getattr(npformat, "_check_version", None)
    if read_header is None or check_version is None:  # pragma: no cover - numpy moved its reader: fail closed
        raise RuntimeError("numpy.lib.format._read_array_header is missing; the .npy check needs it")
    reader = _BoundedReader(fh, _NPY_MAX_HEADER)
    try:
        version = npformat.read_magic(reader)
        check_version(version)
        _shape, _fortran, dtype = read_header(reader, version, max_header_size=_NPY_MAX_HEADER)
    except (
        ValueError,
        TypeError,
        SyntaxError,
        UnicodeDecodeError,
        RecursionError,
        MemoryError,
        OverflowError,
        KeyError,
        tokenize.TokenError,  # numpy tokenizes version 1/2 headers: an unclosed bracket
    ) as exc:
        return None, reader.count, f"numpy refuses the .npy header: {exc}".replace("\n", " ")
    return dtype, reader.count, None


_UBJ_FIXED = {
    ord("i"): 1,
    ord("U"): 1,
    ord("I"): 2,
    ord("l"): 4,
    ord("L"): 8,
    ord("d"): 4,
    ord("D"): 8,
    ord("C"): 1,
    ord("Z"): 0,
    ord("T"): 0,
    ord("F"): 0,
}
_UBJ_INT_FORMATS = {ord("i"): ">b", ord("U"): ">B", ord("I"): ">h", ord("l"): ">i", ord("L"): ">q"}
_UBJ_MAX_DEPTH = 128


class _UbjError(ValueError):
    pass


def ubjson_problem(buf: Any) -> str | None:
    """Why ``buf`` is not one well-formed UBJSON value (draft 12, as XGBoost writes it), or None.

    Iterative and bounded: nesting is limited, every count is checked against the bytes left,
    typed numeric arrays are skipped in one step, strings must be UTF-8, and the value must end
    exactly at the end of the file. Nothing is built from the data.
    """
    n = len(buf)
    pos = 0

    def need(k: int) -> None:
        if k < 0 or pos + k > n:
            raise _UbjError(f"truncated: {k} bytes needed at byte {pos} of {n}")

    def integer(marker: int) -> int:
        nonlocal pos
        fmt = _UBJ_INT_FORMATS.get(marker)
        if fmt is None:
            raise _UbjError(f"expected an integer length marker at byte {pos - 1}, got {bytes([marker])!r}")
        size = struct.calcsize(fmt)
        need(size)
        value = struct.unpack(fmt, buf[pos : pos + size])[0]
        pos += size
        return int(value)

    def length() -> int:
        nonlocal pos
        need(1)
        marker = buf[pos]
        pos += 1
        value = integer(marker)
        if value < 0:
            raise _UbjError(f"negative length at byte {pos}")
        return value

    def string() -> None:
        nonlocal pos
        size = length()
        need(size)
        try:
            bytes(buf[pos : pos + size]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _UbjError(f"string at byte {pos} is not UTF-8") from exc
        pos += size

    def scalar(marker: int) -> None:
        nonlocal pos
        if marker in _UBJ_FIXED:
            need(_UBJ_FIXED[marker])
            pos += _UBJ_FIXED[marker]
        elif marker in (ord("S"), ord("H")):
            string()
        else:
            raise _UbjError(f"unknown marker {bytes([marker])!r} at byte {pos - 1}")

    # frames: [is_object, remaining count (None: until the closing marker), element type or None]
    stack: list[list[Any]] = []

    def open_container(marker: int) -> None:
        nonlocal pos
        if len(stack) >= _UBJ_MAX_DEPTH:
            raise _UbjError(f"nesting deeper than {_UBJ_MAX_DEPTH} at byte {pos}")
        typ = None
        count = None
        if pos < n and buf[pos] == ord("$"):
            need(2)
            typ = buf[pos + 1]
            pos += 2
            if typ not in _UBJ_FIXED and typ not in (ord("S"), ord("H")):
                raise _UbjError(f"unsupported container element type {bytes([typ])!r} at byte {pos - 1}")
            if pos >= n or buf[pos] != ord("#"):
                raise _UbjError(f"typed container without a count at byte {pos}")
        if pos < n and buf[pos] == ord("#"):
            pos += 1
            count = length()
            if count > n - pos:
                raise _UbjError(f"container count {count} exceeds the {n - pos} bytes left")
        is_object = marker == ord("{")
        if typ is not None and not is_object and typ in _UBJ_FIXED and count is not None:
            need(count * _UBJ_FIXED[typ])
            pos += count * _UBJ_FIXED[typ]  # typed numeric array: skipped in one step
            return
        stack.append([is_object, count, typ])

    try:
        need(1)
        first = buf[0]
        pos = 1
        if first not in (ord("{"), ord("[")):
            raise _UbjError("the top-level value is not an object or array")
        open_container(first)
        while stack:
            frame = stack[-1]
            is_object, remaining, typ = frame
            if remaining is None:
                need(1)
                closer = ord("}") if is_object else ord("]")
                if buf[pos] == closer:
                    pos += 1
                    stack.pop()
                    continue
            elif remaining == 0:
                stack.pop()
                continue
            else:
                frame[1] = remaining - 1
            if is_object:
                string()
            if typ is not None:
                scalar(typ)
                continue
            need(1)
            marker = buf[pos]
            pos += 1
            if marker in (ord("{"), ord("[")):
                open_container(marker)
            else:
                scalar(marker)
        if pos != n:
            raise _UbjError(f"{n - pos} trailing bytes after the top-level value")
    except _UbjError as exc:
        return str(exc)
    return None


def _importable(module: str) -> bool:
    """Whether importing ``module`` could succeed, decided without importing anything.

    Used only for text files that merely start like a pickle (``classes.txt`` holding
    ``cat\ndog\n`` reads as ``GLOBAL at.dog``): the unpickler's import of a module that does not
    exist fails before anything runs. A name that is not a dotted identifier never imports; for the
    rest the top-level package is looked up with ``importlib.util.find_spec`` (which runs no module
    code for a top-level name). When in doubt it answers True (the import is reported).
    """
    parts = module.split(".")
    if not all(part.isidentifier() for part in parts):
        return False
    top = parts[0]
    if top in sys.modules or top in sys.builtin_module_names:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError, AttributeError):
        return True


def _drop_unimportable(walk: PickleWalk) -> PickleWalk:
    """``walk`` without the imports of modules that cannot exist (see :func:`_importable`)."""

    def keep(ref: GlobalRef) -> bool:
        module, name = ref.resolved()
        return policy.is_dangerous(module, name) or _importable(module)

    walk.globals = [ref for ref in walk.globals if keep(ref)]
    walk.nested = [_drop_unimportable(n) for n in walk.nested]
    walk.polyglot = [_drop_unimportable(n) for n in walk.polyglot]
    return walk


def is_utf8_text(path: Path) -> bool:
    """True when the whole file decodes as UTF-8 and holds no NUL byte (streamed)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(READ_CHUNK), b""):
                if b"\x00" in chunk:
                    return False
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def starts_like_pickle(path: Path, size: int) -> bool:
    """True when a binary file of no known format parses as a pickle, or imports or calls anything
    before it stops parsing (the unpickler runs opcodes as it reads them), read by ``pickle.load``
    or by ``joblib.load``."""
    for joblib in (False, True):
        with path.open("rb") as fh:
            walk = walk_stream(Source(fh, size), joblib=joblib)
        if walk.error is None or walk.globals or walk.unresolved or walk.extension_refs or walk.calls:
            return True
    return False


def is_utf8_bytes(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data)
    except UnicodeDecodeError:
        return False
    return True
