"""Format handlers: decide what a file is by content (then extension) and check it.

- pickle streams (plain, concatenated, legacy ``torch.save``), walked by :mod:`.walker`;
- joblib files, plain or zlib/gzip/bz2/lzma/xz-compressed (decompressed as a stream), with the
  raw array bytes after each ``NumpyArrayWrapper`` skipped exactly as ``joblib.load`` reads them;
- zip archives (``torch.save``, ``.npz``): every pickle member and ``.npy`` member;
- ``.npy``: numeric arrays pass on their header; object arrays have their embedded pickle walked;
- skops files (a zip with ``schema.json``): the schema is walked as skops builds its tree
  (:mod:`.skops_schema`), every name it makes skops import is judged (:mod:`.skops_policy`), and
  every member must be one the schema references, in the form it references it;
- safetensors (header only), code files (sha256 against ``trusted_code``), JSON/YAML/text.
"""

from __future__ import annotations

import bz2
import codecs
import hashlib
import importlib.util
import json
import logging
import lzma
import mmap
import os
import stat
import struct
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

from airflow_mlops.security.scanning import policy, skops_schema
from airflow_mlops.security.scanning.report import Finding, FindingKind
from airflow_mlops.security.scanning.skops_policy import skops_name_problem
from airflow_mlops.security.scanning.walker import (
    TORCH_LEGACY_MAGIC,
    GlobalRef,
    PickleWalk,
    Source,
    walk_stream,
)

log = logging.getLogger(__name__)

K = FindingKind
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
_UBJSON_EXTENSIONS = frozenset([".ubj", ".ubjson"])
_TEXT_EXTENSIONS = frozenset([".txt", ".md", ".csv", ".tsv", ".rst"])
_YAML_NAMES = frozenset(["MLmodel"])

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"
_LZ4_PREFIX = b"\x04\x22\x4d\x18"  # joblib's lz4 compressor prefix (LZ4 frame magic)
_EXECUTABLE_MAGICS: tuple[tuple[bytes, str], ...] = (
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
_HEAD_SIZE = 16
_CHUNK = 1 << 20

_SKOPS_SUFFIX = ".skops"
#: scipy.sparse.save_npz's members (a SparseMatrixNode's .npz inside a skops file)
_SPARSE_NPZ_MEMBERS = frozenset(
    f"{n}.npy"
    for n in ("data", "indices", "indptr", "format", "shape", "offsets", "row", "col", "coords", "_is_array")
)
#: a compressed skops member may inflate at most this much (when it inflates past _BOMB_FLOOR):
#: skops reads every member it references into memory
_BOMB_RATIO = 1000
_BOMB_FLOOR = 64 << 20

_ZFILE_PREFIX = b"ZF"  # joblib < 0.10 compressed format: "ZF", 19-byte hex length, zlib data
_JOBLIB_EXTENSIONS = frozenset([".joblib", ".z", ".gz", ".bz2", ".lzma", ".xz", ".pkl.z"])
_PICKLE_PROTO = 0x80


@dataclass(frozen=True)
class Hit:
    """A finding before it is tied to a file."""

    kind: FindingKind
    detail: str
    symbol: str | None = None
    offset: int | None = None


# --- judging one pickle walk ---------------------------------------------------------------


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
        elif not policy.is_allowed(dotted, module, allowed):
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


# --- compressed streams (joblib compress=...) ----------------------------------------------

_DECOMPRESS_CHUNK = 1 << 20


class Decompressed:
    """A read-only stream of the decompressed bytes of a zlib/gzip/bz2/lzma/xz file.

    Memory is bounded: at most about one chunk of input and ``n`` bytes of output are held.
    Concatenated streams are all decompressed (as joblib and gzip do).
    """

    def __init__(self, raw: IO[bytes], fmt: str) -> None:
        self._raw = raw
        self._fmt = fmt
        self._pending = b""  # decompressed bytes not yet returned
        self._dec: Any = self._new()
        self._input_done = False
        self._feed = b""
        self.compressed_offset = 0

    def _new(self) -> Any:
        if self._fmt == "zlib":
            return zlib.decompressobj(15)
        if self._fmt == "gzip":
            return zlib.decompressobj(31)
        if self._fmt == "bz2":
            return bz2.BZ2Decompressor()
        return lzma.LZMADecompressor(format=lzma.FORMAT_AUTO)

    def seekable(self) -> bool:
        return False

    def _produce(self, max_length: int) -> bytes:
        """Up to ``max_length`` more decompressed bytes (b"" at the end of the last stream)."""
        while True:
            if self._dec.eof:
                leftover = self._dec.unused_data or self._read_input()
                if not leftover.strip(b"\x00"):
                    self._input_done = True  # end of input (gzip allows zero padding)
                    return b""
                self._dec = self._new()
                self._feed = leftover
            feed, self._feed = self._feed, b""
            if not feed and self._fmt in ("zlib", "gzip"):
                feed = self._dec.unconsumed_tail
            if not feed:
                out = self._dec.decompress(b"", max_length)
                if out:
                    return bytes(out)
                if self._dec.eof:
                    continue
                feed = self._read_input()
                if not feed:
                    raise EOFError(f"{self._fmt} stream ends before its end marker (truncated)")
            out = self._dec.decompress(feed, max_length)
            if out:
                return bytes(out)

    def _read_input(self) -> bytes:
        data = self._raw.read(_DECOMPRESS_CHUNK)
        self.compressed_offset += len(data)
        return data

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = _DECOMPRESS_CHUNK
        parts = []
        have = 0
        if self._pending:
            parts.append(self._pending[:n])
            have = len(parts[0])
            self._pending = self._pending[n:]
        while have < n and not self._input_done:
            data = self._produce(n - have)
            if not data:
                break
            parts.append(data)
            have += len(data)
        return b"".join(parts)


def compression_of(head: bytes) -> str | None:
    """The compression format a file's first bytes announce (joblib's own detection order)."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and len(head) > 3 and head[3:4].isdigit():
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x5d\x00"):
        # joblib's prefix: lzma.LZMAFile then reads the .lzma header, whatever dictionary size
        # the next bytes give (4096 is 5d 00 10 00 00)
        return "lzma"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    return None


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


def _npy_dtype(fh: IO[bytes]) -> tuple[Any, int, str | None]:
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


def _is_tar(path: Path) -> bool:
    """True when ``tarfile`` opens the file as ``torch.load`` does for its legacy tar format
    (a valid first header block is enough; the extension plays no part)."""
    try:
        with path.open("rb") as fh, tarfile.open(fileobj=fh, mode="r:", format=tarfile.PAX_FORMAT):
            return True
    except (tarfile.TarError, OSError, ValueError, EOFError, UnicodeDecodeError):
        return False


def _is_joblib_zfile(head: bytes) -> bool:
    """True when ``joblib.load`` would read the file in its pre-0.10 "ZF" format: it checks only the
    two-byte prefix, then parses the next 19 bytes as a hexadecimal length."""
    return head.startswith(_ZFILE_PREFIX)


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


def _starts_like_pickle(path: Path, size: int) -> bool:
    """True when a binary file of no known format parses as a pickle, or imports or calls anything
    before it stops parsing (the unpickler runs opcodes as it reads them), read by ``pickle.load``
    or by ``joblib.load``."""
    for joblib in (False, True):
        with path.open("rb") as fh:
            walk = walk_stream(Source(fh, size), joblib=joblib)
        if walk.error is None or walk.globals or walk.unresolved or walk.extension_refs or walk.calls:
            return True
    return False


def _decompresses(path: Path, fmt: str) -> bool:
    """True when a file whose first bytes announce ``fmt`` really starts a stream of that format
    (a zlib stream of stored blocks can be valid UTF-8 text, and joblib.load decompresses it)."""
    with path.open("rb") as fh:
        try:
            return bool(Decompressed(fh, fmt).read(1))
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError):
            return False


# --- per-file dispatch ---------------------------------------------------------------------


class Scanner:
    """Holds the scan options and collects findings."""

    def __init__(self, allowed: frozenset[str], trusted_code: Mapping[str, str]) -> None:
        self.allowed = allowed
        self.trusted_code = {str(PurePosixPath(k)): v.lower() for k, v in trusted_code.items()}
        self.findings: list[Finding] = []
        self.files = 0

    def add(
        self,
        rel: str,
        kind: FindingKind,
        detail: str,
        *,
        symbol: str | None = None,
        offset: int | None = None,
        stream: str | None = None,
    ) -> None:
        self.findings.append(
            Finding(
                path=rel,
                kind=kind,
                detail=detail,
                symbol=symbol,
                offset=offset,
                stream=stream if offset is not None else None,
            )
        )

    def add_hits(self, rel: str, hits: list[Hit], stream: str, *, polyglot: bool = False) -> None:
        for hit in hits:
            if polyglot and hit.kind == K.INVALID_PICKLE:
                continue
            self.add(rel, hit.kind, hit.detail, symbol=hit.symbol, offset=hit.offset, stream=stream)

    def walk(self, root: Path, top: Path) -> Iterator[tuple[Path, str]]:
        """Yield (path, relative posix path) of regular files; report links and special files."""
        try:
            entries = sorted(os.scandir(top), key=lambda e: e.name)
        except OSError as exc:
            self.add(_rel(top, root), K.UNREADABLE, f"cannot list directory: {exc.strerror or exc}")
            return
        for entry in entries:
            path = Path(entry.path)
            rel = _rel(path, root)
            if entry.is_symlink():
                target = os.readlink(entry.path)
                self.add(rel, K.SYMLINK, f"symbolic link to {target!r}; a link can point outside the model")
            elif entry.is_dir(follow_symlinks=False):
                yield from self.walk(root, path)
            elif entry.is_file(follow_symlinks=False):
                yield path, rel
            else:
                self.add(rel, K.SPECIAL_FILE, "not a regular file (device, socket or FIFO)")

    def scan_file(self, path: Path, rel: str) -> None:
        """Classify one regular file by content, then by extension, and check it."""
        self.files += 1
        suffix = path.suffix.lower()
        try:
            size = path.stat().st_size
            with path.open("rb") as fh:
                head = fh.read(_HEAD_SIZE)
        except OSError as exc:
            self.add(rel, K.UNREADABLE, f"cannot read file: {exc.strerror or exc}")
            return
        try:
            self._dispatch(path, rel, suffix, head, size)
        except OSError as exc:
            self.add(rel, K.UNREADABLE, f"cannot read file: {exc.strerror or exc}")
        except Exception as exc:  # fail closed: a file the scanner cannot check is not safe
            log.exception("Model scan could not check %s", path)
            self.add(rel, K.SCAN_ERROR, f"the scanner could not check this file: {type(exc).__name__}: {exc}")

    def _dispatch(self, path: Path, rel: str, suffix: str, head: bytes, size: int) -> None:
        code_reason = self._code_reason(path, suffix, head)
        if code_reason:
            self._check_code(path, rel, code_reason)
            return
        pickle_magic = _has_pickle_magic(head)
        compression = compression_of(head)
        if suffix == _SKOPS_SUFFIX and not head.startswith(_ZIP_MAGICS):
            self.add(rel, K.INVALID_SKOPS, "a .skops file must be a zip archive, which skops.io.dump writes")
        if not head.startswith(_ZIP_MAGICS) and _is_tar(path):
            # torch.load tries tarfile before pickle on every non-zip file and unpickles members
            self.add(
                rel,
                K.INVALID_ARCHIVE,
                "tar archive: torch.load reads it as its legacy tar format and unpickles its "
                "'storages', 'tensors' and 'pickle' members; tar archives are not scanned",
            )
        elif _is_joblib_zfile(head):
            self.add(
                rel,
                K.INVALID_COMPRESSED,
                "starts with joblib's pre-0.10 'ZF' prefix: joblib.load would decompress and unpickle "
                "it in its legacy format (which also reads sibling .npy files); re-save the model",
            )
        elif head.startswith(_LZ4_PREFIX):
            self.add(
                rel,
                K.INVALID_COMPRESSED,
                "starts with the LZ4 frame magic: joblib.load decompresses and unpickles it when the "
                "lz4 package is installed, and the scanner cannot decompress LZ4; re-save the model "
                "uncompressed or with zlib/gzip/bz2/lzma/xz",
            )
        elif head.startswith(_ZIP_MAGICS):
            self._scan_zip(path, rel)
        elif suffix == ".safetensors" or _looks_like_safetensors(head, size):
            self._check_safetensors_file(path, rel, suffix, size, pickle_magic=pickle_magic)
        elif pickle_magic:
            self._scan_pickle_file(path, rel, size)
        elif head.startswith(_NPY_MAGIC):
            with path.open("rb") as fh:
                self._check_npy(fh, rel, "file", size)
        elif compression and (
            suffix in _PICKLE_EXTENSIONS | _JOBLIB_EXTENSIONS
            or not _is_utf8_text(path)
            or _decompresses(path, compression)
        ):
            self._scan_compressed(path, rel, compression)
        elif suffix in _UBJSON_EXTENSIONS:
            self._check_ubjson(path, rel, size)
        elif suffix in _PICKLE_EXTENSIONS:
            # protocol 0/1 pickles have no magic; the extension says a loader will unpickle it
            self._scan_pickle_file(path, rel, size)
        elif suffix in _JSON_EXTENSIONS:
            self._check_json(path, rel)
        elif suffix in _YAML_EXTENSIONS or path.name in _YAML_NAMES:
            self._check_yaml(path, rel)
        elif suffix in _TEXT_EXTENSIONS or _is_utf8_text(path):
            self._check_text(path, rel, size)
        elif size and _starts_like_pickle(path, size):
            self._scan_pickle_file(path, rel, size)
        else:
            self.add(rel, K.UNRECOGNISED_FILE, f"binary file of {size} bytes in no recognised format")

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
            self.add(rel, K.INVALID_SAFETENSORS, problem)
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
            self.add(rel, K.CODE, f"{reason}: executable code in a model can run when the model is loaded")
            return
        actual = _sha256_file(path)
        if actual != expected:
            self.add(
                rel,
                K.CODE_HASH_MISMATCH,
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
        modes = (True, False) if polyglot else (True,)
        for joblib in modes:  # joblib.load and pickle.load read array bytes differently
            with path.open("rb") as fh:
                hits = scan_pickle_stream(fh, size, where, self.allowed, joblib=joblib, text=polyglot)
            self.add_hits(rel, hits, "file", polyglot=polyglot)
            if polyglot and any(h.kind != K.INVALID_PICKLE for h in hits):
                return

    def _scan_compressed(self, path: Path, rel: str, fmt: str) -> None:
        """A compressed file (joblib ``compress=``): decompress as a stream and check the content."""
        stream = f"{fmt}-decompressed stream"
        with path.open("rb") as fh:
            dec = Decompressed(fh, fmt)
            try:
                head = dec.read(_HEAD_SIZE)
            except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
                self.add(rel, K.INVALID_COMPRESSED, f"{fmt} stream cannot be decompressed: {exc}")
                return
            if not head:
                self.add(rel, K.INVALID_COMPRESSED, f"{fmt} stream decompresses to nothing")
                return
            replay = cast(IO[bytes], _Replay(head, dec))
            try:
                if head.startswith(_NPY_MAGIC):
                    self._check_npy(replay, rel, stream, None)
                    return
                text = not _has_pickle_magic(head) and _is_utf8_bytes(head)
                hits = scan_pickle_stream(
                    replay, None, f"{fmt}-compressed pickle ", self.allowed, stream=stream, text=text
                )
            except (zlib.error, EOFError, lzma.LZMAError, ValueError) as exc:
                self.add(
                    rel,
                    K.INVALID_COMPRESSED,
                    f"{fmt} stream is corrupt or truncated after byte {dec.compressed_offset} of the file: {exc}",
                )
                return
        # compressed text (a .csv.gz) is fine unless it is also a pickle that imports something
        self.add_hits(rel, hits, stream, polyglot=text)

    def _check_npy(self, fh: IO[bytes], rel: str, stream: str, size: int | None, where: str = "") -> None:
        """A ``.npy``: numeric arrays pass on their header; an object array's pickle is walked."""
        dtype, used, problem = _npy_dtype(fh)
        if problem or dtype is None:
            self.add(rel, K.UNRECOGNISED_FILE, where + (problem or "not a valid .npy file"))
            return
        if not dtype.hasobject:
            return
        # numpy.load(allow_pickle=True) unpickles the rest of the file with pickle.load
        label = f"{where}object array (dtype {dtype.descr!r}), whose pickle "
        hits = scan_pickle_stream(
            fh,
            None if size is None else size - used,
            label,
            self.allowed,
            stream=stream,
            joblib=False,
            base=used,
        )
        self.add_hits(rel, hits, stream)

    def _scan_zip(self, path: Path, rel: str) -> None:
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
            self.add(rel, K.INVALID_ARCHIVE, f"zip archive cannot be read: {exc}")
            return
        with zf:
            problem = _zip_directory_problem(zf)
            if problem:
                self.add(rel, K.INVALID_ARCHIVE, problem)
                return
            infos = zf.infolist()
            names = [i.filename for i in infos]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                self.add(rel, K.INVALID_ARCHIVE, f"archive repeats member name(s) {dupes}")
            if skops_schema.SCHEMA_NAME in names or path.suffix.lower() == _SKOPS_SUFFIX:
                self._scan_skops(zf, infos, rel)
                return
            for info in infos:
                self._scan_zip_member(zf, info, rel)

    def _member_is_plain(self, info: zipfile.ZipInfo, rel: str, where: str) -> bool:
        """Report an unsafe path, encryption, a link or a code file; False when the member cannot
        (or must not) be read further."""
        name = info.filename
        member_path = PurePosixPath(name)
        if member_path.is_absolute() or ".." in member_path.parts or "\\" in name:
            self.add(rel, K.INVALID_ARCHIVE, f"{where}has an unsafe path (absolute or '..')")
        if info.flag_bits & 0x1:
            self.add(rel, K.INVALID_ARCHIVE, f"{where}is encrypted and cannot be scanned")
            return False
        if stat.S_ISLNK(info.external_attr >> 16):
            self.add(rel, K.SYMLINK, f"{where}is a symbolic link")
            return False
        suffix = member_path.suffix.lower()
        if suffix in _CODE_EXTENSIONS:
            self.add(rel, K.CODE, f"{where}is a '{suffix}' file: executable code inside the archive")
            return False
        return True

    def _scan_zip_member(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str) -> None:
        name = info.filename
        where = f"member {name!r} "
        stream = f"member {name!r}"
        if info.is_dir() and info.file_size == 0:
            return  # np.load reads a member by any name, including one ending in '/', so only empty ones are skipped
        if not self._member_is_plain(info, rel, where):
            return
        suffix = PurePosixPath(name).suffix.lower()
        try:
            with zf.open(info) as fh:
                head = fh.read(_HEAD_SIZE)
            # torch.load unpickles data.pkl only; raw storages ("data/0") may start with 0x80 by chance
            is_pickle = suffix in (".pkl", ".pickle") or (
                _has_pickle_magic(head) and suffix in _PICKLE_EXTENSIONS
            )
            if is_pickle:
                with zf.open(info) as fh:
                    hits = scan_pickle_stream(fh, info.file_size, where, self.allowed, stream=stream)
                self.add_hits(rel, hits, stream)
            elif head.startswith(_NPY_MAGIC):
                with zf.open(info) as fh:
                    self._check_npy(fh, rel, stream, info.file_size, where=where)
            elif head.startswith(_ZIP_MAGICS):
                self.add(rel, K.INVALID_ARCHIVE, f"{where}is a nested archive, which is not scanned")
            else:
                for magic, what in _EXECUTABLE_MAGICS:
                    if head.startswith(magic):
                        self.add(rel, K.CODE, f"{where}is {what}")
                        break
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, ValueError) as exc:
            self.add(rel, K.INVALID_ARCHIVE, f"{where}cannot be read: {exc}")

    # --- skops ---------------------------------------------------------------------------

    def _scan_skops(self, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], rel: str) -> None:
        """A skops archive: the schema as skops reads it, every name it imports, every member."""
        schema_infos = [i for i in infos if i.filename == skops_schema.SCHEMA_NAME]
        if not schema_infos:
            self.add(rel, K.INVALID_SKOPS, "a .skops archive without schema.json (skops.io.dump writes one)")
            for info in infos:
                self._scan_zip_member(zf, info, rel)
            return
        schema_info = schema_infos[-1]  # zipfile (and so skops) reads the last of repeated names
        schema = self._read_skops_schema(zf, schema_info, rel)
        if schema is None:
            return
        for problem in schema.problems[:50]:
            self.add(rel, K.INVALID_SKOPS, f"schema.json {problem}")
        if len(schema.problems) > 50:
            self.add(rel, K.INVALID_SKOPS, f"schema.json has {len(schema.problems) - 50} more problem(s)")
        self._judge_skops_names(schema, rel)
        if not schema.nodes:  # the schema did not parse: check the members for what they are
            for info in infos:
                if info.filename != skops_schema.SCHEMA_NAME:
                    self._scan_zip_member(zf, info, rel)
            return
        present = set()
        for info in infos:
            name = info.filename
            present.add(name)
            where = f"member {name!r} "
            if not self._member_is_plain(info, rel, where) or name == skops_schema.SCHEMA_NAME:
                continue
            kinds = schema.members.get(name)
            if not kinds:
                self.add(
                    rel,
                    K.INVALID_SKOPS,
                    f"{where}is not referenced by schema.json: skops never reads it, so it is not part of "
                    "the model (another loader handed the archive might)",
                )
                continue
            if self._skops_member_inflates(info, rel, where):
                continue
            try:
                for kind in sorted(kinds):
                    self._check_skops_member(zf, info, kind, rel, where)
            except (
                zipfile.BadZipFile,
                zipfile.LargeZipFile,
                NotImplementedError,
                EOFError,
                ValueError,
            ) as exc:
                self.add(rel, K.INVALID_ARCHIVE, f"{where}cannot be read: {exc}")
        for name in sorted(set(schema.members) - present):
            self.add(rel, K.INVALID_SKOPS, f"schema.json references member {name!r}, which the archive lacks")

    def _read_skops_schema(
        self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str
    ) -> skops_schema.SkopsSchema | None:
        if not self._member_is_plain(info, rel, "member 'schema.json' "):
            return None
        if info.file_size > skops_schema.MAX_SCHEMA_BYTES:
            self.add(
                rel,
                K.INVALID_SKOPS,
                f"schema.json is {info.file_size} bytes, over the scanner's {skops_schema.MAX_SCHEMA_BYTES}-byte limit",
            )
            return None
        try:
            with zf.open(info) as fh:
                raw = fh.read(skops_schema.MAX_SCHEMA_BYTES + 1)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, ValueError) as exc:
            self.add(rel, K.INVALID_ARCHIVE, f"member 'schema.json' cannot be read: {exc}")
            return None
        return skops_schema.read_schema(raw)

    def _judge_skops_names(self, schema: skops_schema.SkopsSchema, rel: str) -> None:
        """One finding per refused name (where it first appears, and how often)."""
        first: dict[tuple[str, bool], tuple[skops_schema.SkopsRef, int]] = {}
        not_object: dict[str, skops_schema.SkopsRef] = {}  # a use other than ObjectNode, by name
        for ref in schema.refs:
            key = (ref.dotted, ref.builtin_ok)
            seen = first.get(key)
            first[key] = (seen[0], seen[1] + 1) if seen else (ref, 1)
            if ref.loader != "ObjectNode":
                not_object.setdefault(ref.dotted, ref)
        for (dotted, builtin_ok), (ref, count) in first.items():
            times = f" ({count} nodes)" if count > 1 else ""
            problem = skops_name_problem(dotted, self.allowed, builtin=builtin_ok)
            if problem is not None:
                kind, reason = problem
                self.add(
                    rel,
                    kind,
                    f"schema.json at {ref.where}: a {ref.loader}{times} makes skops import {dotted}: {reason}",
                    symbol=dotted,
                )
            elif dotted in policy.NEW_ONLY_GLOBALS and dotted in not_object:
                other = not_object[dotted]
                self.add(
                    rel,
                    K.RESTRICTED_GLOBAL,
                    f"schema.json at {other.where}: a {other.loader} uses {dotted}, which skops may only "
                    "rebuild as an ObjectNode (cls.__new__, then its saved state); other nodes call it or "
                    "hand it on, and its constructor loads the model file its arguments name",
                    symbol=dotted,
                )

    def _skops_member_inflates(self, info: zipfile.ZipInfo, rel: str, where: str) -> bool:
        if info.compress_type == zipfile.ZIP_STORED or info.file_size <= _BOMB_FLOOR:
            return False
        if info.file_size <= _BOMB_RATIO * max(info.compress_size, 1):
            return False
        self.add(
            rel,
            K.INVALID_SKOPS,
            f"{where}inflates from {info.compress_size} to {info.file_size} bytes (over {_BOMB_RATIO}:1); "
            "skops reads every member into memory",
        )
        return True

    def _check_skops_member(
        self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, kind: str, rel: str, where: str
    ) -> None:
        stream = f"member {info.filename!r}"
        if kind == "npy":
            with zf.open(info) as fh:
                dtype, _used, problem = _npy_dtype(fh)
            if problem or dtype is None:
                self.add(
                    rel,
                    K.INVALID_SKOPS,
                    f"{where}is referenced as a numpy array but {problem or 'is not a .npy'}",
                )
            elif dtype.hasobject:
                self.add(
                    rel,
                    K.OBJECT_ARRAY,
                    f"{where}is an object array (dtype {dtype.descr!r}); skops keeps object arrays in the "
                    "schema and never writes one as a member",
                )
                with zf.open(info) as fh:
                    self._check_npy(fh, rel, stream, info.file_size, where=where)
        elif kind == "npz":
            self._check_skops_sparse(zf, info, rel, where)
        else:  # "bytes" or "xgboost_booster": raw bytes skops hands to the object that holds them
            with zf.open(info) as fh:
                head = fh.read(_HEAD_SIZE)
            if _has_pickle_magic(head) or head.startswith(_ZIP_MAGICS):
                what = "a pickle" if _has_pickle_magic(head) else "a zip archive"
                self.add(
                    rel,
                    K.INVALID_SKOPS,
                    f"{where}is {what}; skops never writes one as raw bytes, so only something that "
                    "unpickles or opens it would use it",
                )
            with zf.open(info) as fh:
                hits = scan_pickle_stream(
                    fh,
                    info.file_size,
                    f"{where}(raw bytes, read as a pickle) ",
                    self.allowed,
                    stream=stream,
                    text=True,
                )
            self.add_hits(rel, hits, stream, polyglot=not _has_pickle_magic(head))
            if kind == "xgboost_booster":
                data = zf.read(info)
                problem = ubjson_problem(data) if data else "empty"
                if problem:
                    self.add(
                        rel,
                        K.INVALID_SKOPS,
                        f"{where}holds an XGBoost booster's state but is not the UBJSON XGBoost writes: {problem}",
                    )

    def _check_skops_sparse(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str, where: str) -> None:
        """A SparseMatrixNode's member: what scipy.sparse.save_npz writes (numeric .npy arrays only)."""
        with zf.open(info) as fh:
            try:
                inner = zipfile.ZipFile(fh)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
                self.add(
                    rel, K.INVALID_SKOPS, f"{where}is referenced as a sparse matrix but is not a .npz: {exc}"
                )
                return
            with inner:
                problem = _zip_directory_problem(inner)
                if problem:
                    self.add(rel, K.INVALID_SKOPS, f"{where}(a .npz): {problem}")
                    return
                names = inner.namelist()
                unknown = sorted(set(names) - _SPARSE_NPZ_MEMBERS)
                dupes = sorted({n for n in names if names.count(n) > 1})
                if unknown or dupes or "format.npy" not in names:
                    self.add(
                        rel,
                        K.INVALID_SKOPS,
                        f"{where}is not what scipy.sparse.save_npz writes (members {sorted(names)})",
                    )
                    return
                for sub in inner.infolist():
                    sub_where = f"{where}(.npz member {sub.filename!r}) "
                    if not self._member_is_plain(sub, rel, sub_where) or self._skops_member_inflates(
                        sub, rel, sub_where
                    ):
                        continue
                    with inner.open(sub) as sub_fh:
                        dtype, _used, npy_problem = _npy_dtype(sub_fh)
                    if npy_problem or dtype is None:
                        self.add(rel, K.INVALID_SKOPS, f"{sub_where}{npy_problem or 'is not a .npy'}")
                    elif dtype.hasobject:
                        self.add(
                            rel, K.OBJECT_ARRAY, f"{sub_where}is an object array (dtype {dtype.descr!r})"
                        )

    def _check_json(self, path: Path, rel: str) -> None:
        try:
            with path.open("rb") as fh:
                json.load(fh)
        except (ValueError, RecursionError) as exc:
            self.add(rel, K.INVALID_DATA_FILE, f"not valid JSON: {exc}")

    def _check_ubjson(self, path: Path, rel: str, size: int) -> None:
        """XGBoost's native UBJSON model: validated structurally (bounded, nothing is decoded to code)."""
        problem: str | None = "empty file"
        if size:
            with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                problem = ubjson_problem(buf)
        if problem:
            self.add(rel, K.INVALID_DATA_FILE, f"not valid UBJSON: {problem}")
            return
        self._check_text_is_not_pickle(path, rel)

    def _check_yaml(self, path: Path, rel: str) -> None:
        import yaml  # only for YAML files (the trainer image, which loads through this package, has no PyYAML)

        try:
            with path.open("rb") as fh:
                yaml.safe_load(fh)
        except (yaml.YAMLError, ValueError, RecursionError) as exc:
            self.add(rel, K.INVALID_DATA_FILE, f"not valid YAML (yaml.safe_load): {exc}".replace("\n", " "))
            return
        self._check_text_is_not_pickle(path, rel)

    def _check_text(self, path: Path, rel: str, size: int) -> None:
        if size:
            self._check_text_is_not_pickle(path, rel)

    def _check_text_is_not_pickle(self, path: Path, rel: str) -> None:
        """Text can still be a protocol 0 pickle (``cos\\nsystem\\n...``). The unpickler runs each
        opcode as it reads it, so what a text file imports *before* it stops parsing as a pickle
        is reported, whether or not a complete pickle follows (read both as ``pickle.load`` and as
        ``joblib.load`` read it)."""
        size = path.stat().st_size
        if size:
            self._scan_pickle_file(path, rel, size, where="text file read as a pickle ", polyglot=True)


_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_END = b"PK\x06\x06"
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_END_SIZE = 56  # without extensible data, which is what zipfile assumes


def _zip_directory_problem(zf: zipfile.ZipFile) -> str | None:
    """Why Python's zipfile and torch's reader (miniz) could read different central directories.

    Both find the same end record (the last one). Python's zipfile then assumes the zip64 end
    record sits right before the zip64 locator and adds any gap between the directory and the end
    records to every member offset (prepended bytes); miniz follows the locator's offset to the
    zip64 record and takes member offsets as written. Only a layout where the two agree passes:
    no shift, and a locator that points exactly where zipfile reads the zip64 record.
    """
    end_record = getattr(zipfile, "_EndRecData", None)
    start_dir = getattr(zf, "start_dir", None)
    if end_record is None or not isinstance(start_dir, int) or zf.fp is None:  # pragma: no cover
        raise RuntimeError("zipfile internals changed; the zip layout check needs _EndRecData")
    endrec = end_record(zf.fp)
    if not endrec:  # pragma: no cover - ZipFile opened it, so the record exists
        raise zipfile.BadZipFile("no end of central directory record")
    shift = int(start_dir - endrec[zipfile._ECD_OFFSET])  # type: ignore[attr-defined]
    if shift:
        return (
            f"the central directory is {shift} bytes away from where the end record puts it "
            "(prepended bytes or a second directory): Python's zipfile and torch.load would "
            "read different members"
        )
    location = int(endrec[zipfile._ECD_LOCATION])  # type: ignore[attr-defined]
    if location < _ZIP64_LOCATOR_SIZE:
        return None
    zf.fp.seek(location - _ZIP64_LOCATOR_SIZE)
    locator = zf.fp.read(_ZIP64_LOCATOR_SIZE)
    if not locator.startswith(_ZIP64_LOCATOR):
        return None  # neither reader looks for a zip64 record
    _sig, _disk, record_at, _disks = struct.unpack("<4sIQI", locator)
    expected = location - _ZIP64_LOCATOR_SIZE - _ZIP64_END_SIZE
    if record_at != expected:
        return (
            f"the zip64 locator points at byte {record_at} for the zip64 end record, but Python's "
            f"zipfile reads it at byte {expected}: torch.load (which follows the locator) and "
            "zipfile would read different central directories"
        )
    zf.fp.seek(expected)
    record = zf.fp.read(12)
    if not record.startswith(_ZIP64_END) or struct.unpack("<Q", record[4:12])[0] != _ZIP64_END_SIZE - 12:
        return (
            f"the zip64 end record at byte {expected} is missing or carries extensible data: "
            "Python's zipfile and torch.load would place the central directory differently"
        )
    return None


class _Replay:
    """A stream that first returns ``head`` (already read), then the rest of ``raw``."""

    def __init__(self, head: bytes, raw: Decompressed) -> None:
        self._head = head
        self._raw = raw

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                n = len(self._head) + _DECOMPRESS_CHUNK
            out, self._head = self._head[:n], self._head[n:]
            if len(out) < n:
                out += self._raw.read(n - len(out))
            return out
        return self._raw.read(n)


def _is_utf8_bytes(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data)
    except UnicodeDecodeError:
        return False
    return True


def _rel(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return rel or "."
