"""Walk pickle streams opcode by opcode without executing them (nothing is unpickled).

The walker simulates the unpickler's stack and memo just far enough to know what each pickle
imports and calls: strings and small ints, tuples and dicts are kept as values, and every
other object is an opaque placeholder. That is enough to resolve ``STACK_GLOBAL`` operands
however they reach the stack (directly, through the memo, under popped values) and to read the
state of a joblib ``NumpyArrayWrapper`` (shape, dtype, order), whose raw array bytes joblib
writes straight into the stream after it.

Speed and memory: the stream is read through a bounded buffer (never more than a few MiB,
whatever the file size); byte payloads (``BINBYTES8`` of a 1 GiB array, long strings) are
skipped with ``seek`` when the stream allows it; and runs of number-only list batches
(``MARK BINFLOAT... APPENDS``, ``BININT APPEND``), which is what a pickled list of millions of
floats is made of, are skipped with one compiled regular expression instead of one Python step
per opcode. Those runs cannot import or call anything, and leave the stack as it was.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from airflow_mlops.security.scanning import policy

_CHUNK = 1 << 20  # bytes read from the underlying stream at a time
_LOOKAHEAD = 256 << 10  # keep this much in the buffer before a fast-path match (a batch fits)
_MAX_LINE = 64 << 10  # text-opcode argument lines longer than this are refused
_MAX_KEPT_STRING = 256  # longer strings are placeholders (no import name is this long)
_MAX_KEPT_TUPLE = 32
_MAX_KEPT_DICT = 64
_MEMO_BUDGET = 1 << 20  # memo entries kept as values; later ones are placeholders
_MAX_STACK = 5_000_000
_POLYGLOT_WINDOW = 64 << 10

#: The first pickle of a legacy (non-zip) ``torch.save`` file is this LONG1 magic number.
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class PickleParseError(Exception):
    """The stream is not a well-formed pickle; ``offset`` is where parsing stopped."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class _Unknown:
    """A stack value the walker does not track (any object, list, float, long string ...)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unknown>"


U = _Unknown()
_MARK_MODE_ERROR = "mixes PUT and MEMOIZE memo writes, which no pickler emits"


class _Global:
    __slots__ = ("dotted",)

    def __init__(self, dotted: str) -> None:
        self.dotted = dotted


class _Obj:
    """An object built by calling a tracked global (joblib wrappers and numpy dtypes)."""

    __slots__ = ("args", "cls", "state")

    def __init__(self, cls: str, args: object) -> None:
        self.cls = cls
        self.args = args
        self.state: object = None


class _Dict:
    __slots__ = ("items", "overflow")

    def __init__(self) -> None:
        self.items: dict[object, object] = {}
        self.overflow = False

    def set(self, key: object, value: object) -> None:
        keyable = isinstance(key, str | int) and not isinstance(key, bool)
        if keyable and (key in self.items or len(self.items) < _MAX_KEPT_DICT):
            self.items[key] = value
            return
        self.overflow = True


_TRACKED_CLASSES = frozenset(["numpy.dtype", policy.JOBLIB_ARRAY_WRAPPER])


@dataclass
class GlobalRef:
    """One import a pickle makes."""

    module: str
    name: str
    opcode: str
    offset: int


@dataclass
class ArrayRegion:
    """Raw array bytes joblib wrote after a ``NumpyArrayWrapper`` (skipped by the walk)."""

    offset: int
    nbytes: int
    shape: tuple[int, ...]
    dtype: str


@dataclass
class PickleWalk:
    """What one pickle stream imports and does."""

    start: int
    globals: list[GlobalRef] = field(default_factory=list)
    unresolved: list[int] = field(default_factory=list)  # offsets of unresolvable STACK_GLOBALs
    extension_refs: list[int] = field(default_factory=list)
    calls: int = 0
    protocol: int = 0
    first_long: int | None = None
    error: str | None = None
    error_offset: int | None = None
    end: int = 0
    arrays: list[ArrayRegion] = field(default_factory=list)
    nested: list[PickleWalk] = field(default_factory=list)  # joblib object arrays: nested pickles
    polyglot: list[PickleWalk] = field(default_factory=list)  # array bytes read as opcodes
    problems: list[tuple[str, int]] = field(default_factory=list)  # (detail, offset) invalid_pickle


class Source:
    """A bounded, buffered reader with absolute offsets.

    Never reads past ``limit`` bytes (a forged 4 GiB length cannot allocate 4 GiB), and skips
    large payloads with ``seek`` when the stream is seekable.
    """

    def __init__(
        self, raw: IO[bytes] | None, limit: int | None = None, *, base: int = 0, data: bytes = b""
    ) -> None:
        self.raw = raw
        self.remaining = limit  # bytes still unread in raw (None: until it ends)
        self.buf = data
        self.pos = 0
        self.base = base  # absolute offset of buf[0]
        self.exhausted = raw is None
        self.seekable = False
        if raw is not None:
            try:
                self.seekable = bool(raw.seekable())
            except (AttributeError, OSError, ValueError):
                self.seekable = False

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def available(self) -> int:
        return len(self.buf) - self.pos

    def at_end(self) -> bool:
        return self.available() == 0 and not self.fill(1)

    def fill(self, need: int) -> bool:
        """Make ``need`` bytes available from ``pos`` if the stream has them."""
        avail = len(self.buf) - self.pos
        if avail >= need:
            return True
        parts = [self.buf[self.pos :]]
        self.base += self.pos
        self.pos = 0
        while avail < need and not self.exhausted:
            want = max(_CHUNK, need - avail)
            if self.remaining is not None:
                want = min(want, self.remaining)
            data = self.raw.read(want) if want > 0 and self.raw is not None else b""
            if not data:
                self.exhausted = True
                break
            if self.remaining is not None:
                self.remaining -= len(data)
            parts.append(data)
            avail += len(data)
        self.buf = b"".join(parts)
        return avail >= need

    def take(self, n: int) -> bytes:
        """Exactly ``n`` bytes (``n`` is small), or raise :class:`PickleParseError`."""
        if not self.fill(n):
            raise PickleParseError(
                f"stream ended inside an opcode argument ({n} bytes expected)", self.offset
            )
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return data

    def line(self) -> bytes:
        """Up to and excluding the next newline."""
        start_offset = self.offset
        while True:
            idx = self.buf.find(b"\n", self.pos)
            if idx >= 0:
                data = self.buf[self.pos : idx]
                self.pos = idx + 1
                return data
            if self.available() > _MAX_LINE:
                raise PickleParseError("text opcode argument line is too long", start_offset)
            if not self.fill(self.available() + 1):
                raise PickleParseError("stream ended inside a text opcode argument", start_offset)

    def skip(self, n: int) -> bool:
        """Skip ``n`` bytes; False when the stream ends first."""
        avail = len(self.buf) - self.pos
        if n <= avail:
            self.pos += n
            return True
        n -= avail
        self.base += len(self.buf)
        self.buf = b""
        self.pos = 0
        if self.remaining is not None:
            if n > self.remaining:
                self.base += self.remaining
                self.remaining = 0
                self.exhausted = True
                return False
            if self.seekable and self.raw is not None:
                self.raw.seek(n, 1)
                self.remaining -= n
                self.base += n
                return True
        while n > 0:
            want = min(n, _CHUNK)
            if self.remaining is not None:
                want = min(want, self.remaining)
            data = self.raw.read(want) if want > 0 and self.raw is not None else b""
            if not data:
                self.exhausted = True
                return False
            if self.remaining is not None:
                self.remaining -= len(data)
            self.base += len(data)
            n -= len(data)
        return True

    def peek(self, n: int) -> bytes:
        """Up to ``n`` bytes from ``pos`` without consuming them."""
        self.fill(n)
        return self.buf[self.pos : self.pos + n]


# --- opcode table --------------------------------------------------------------------------

# categories
(
    _C_NONE_PUSH,  # pushes a value we do not track
    _C_MARK,
    _C_STOP,
    _C_POP,
    _C_POP_MARK,
    _C_DUP,
    _C_FIXED_PUSH,  # fixed-size argument, pushes an untracked value
    _C_INT,  # BININT*: fixed-size ints we track
    _C_NONE,
    _C_BOOL,
    _C_STR,  # length-prefixed strings
    _C_BYTES,  # length-prefixed payloads: skipped
    _C_LONG,  # LONG1/LONG4
    _C_TEXT_INT,
    _C_TEXT_FLOAT,
    _C_TEXT_LONG,
    _C_TEXT_STR,  # STRING (quoted)
    _C_TEXT_UNICODE,
    _C_GLOBAL,
    _C_INST,
    _C_STACK_GLOBAL,
    _C_REDUCE,
    _C_BUILD,
    _C_NEWOBJ,
    _C_NEWOBJ_EX,
    _C_OBJ,
    _C_APPEND,
    _C_APPENDS,
    _C_SETITEM,
    _C_SETITEMS,
    _C_LIST,
    _C_DICT,
    _C_TUPLE,
    _C_TUPLEN,
    _C_EMPTY_LIST,
    _C_EMPTY_DICT,
    _C_EMPTY_TUPLE,
    _C_EMPTY_SET,
    _C_ADDITEMS,
    _C_FROZENSET,
    _C_GET,
    _C_PUT,
    _C_MEMOIZE,
    _C_EXT,
    _C_PROTO,
    _C_FRAME,
    _C_PERSID,
    _C_BINPERSID,
    _C_NOOP,  # READONLY_BUFFER
) = range(49)

_OPS: dict[
    int, tuple[str, int, int]
] = {}  # byte -> (name, category, fixed argument size / length-prefix size)


def _op(code: bytes, name: str, category: int, size: int = 0) -> None:
    _OPS[code[0]] = (name, category, size)


_op(b"(", "MARK", _C_MARK)
_op(b".", "STOP", _C_STOP)
_op(b"0", "POP", _C_POP)
_op(b"1", "POP_MARK", _C_POP_MARK)
_op(b"2", "DUP", _C_DUP)
_op(b"F", "FLOAT", _C_TEXT_FLOAT)
_op(b"I", "INT", _C_TEXT_INT)
_op(b"J", "BININT", _C_INT, 4)
_op(b"K", "BININT1", _C_INT, 1)
_op(b"L", "LONG", _C_TEXT_LONG)
_op(b"M", "BININT2", _C_INT, 2)
_op(b"N", "NONE", _C_NONE)
_op(b"P", "PERSID", _C_PERSID)
_op(b"Q", "BINPERSID", _C_BINPERSID)
_op(b"R", "REDUCE", _C_REDUCE)
_op(b"S", "STRING", _C_TEXT_STR)
_op(b"T", "BINSTRING", _C_STR, 4)
_op(b"U", "SHORT_BINSTRING", _C_STR, 1)
_op(b"V", "UNICODE", _C_TEXT_UNICODE)
_op(b"X", "BINUNICODE", _C_STR, 4)
_op(b"a", "APPEND", _C_APPEND)
_op(b"b", "BUILD", _C_BUILD)
_op(b"c", "GLOBAL", _C_GLOBAL)
_op(b"d", "DICT", _C_DICT)
_op(b"}", "EMPTY_DICT", _C_EMPTY_DICT)
_op(b"e", "APPENDS", _C_APPENDS)
_op(b"g", "GET", _C_GET)
_op(b"h", "BINGET", _C_GET, 1)
_op(b"i", "INST", _C_INST)
_op(b"j", "LONG_BINGET", _C_GET, 4)
_op(b"l", "LIST", _C_LIST)
_op(b"]", "EMPTY_LIST", _C_EMPTY_LIST)
_op(b"o", "OBJ", _C_OBJ)
_op(b"p", "PUT", _C_PUT)
_op(b"q", "BINPUT", _C_PUT, 1)
_op(b"r", "LONG_BINPUT", _C_PUT, 4)
_op(b"s", "SETITEM", _C_SETITEM)
_op(b"t", "TUPLE", _C_TUPLE)
_op(b")", "EMPTY_TUPLE", _C_EMPTY_TUPLE)
_op(b"u", "SETITEMS", _C_SETITEMS)
_op(b"G", "BINFLOAT", _C_FIXED_PUSH, 8)
_op(b"\x80", "PROTO", _C_PROTO, 1)
_op(b"\x81", "NEWOBJ", _C_NEWOBJ)
_op(b"\x82", "EXT1", _C_EXT, 1)
_op(b"\x83", "EXT2", _C_EXT, 2)
_op(b"\x84", "EXT4", _C_EXT, 4)
_op(b"\x85", "TUPLE1", _C_TUPLEN, 1)
_op(b"\x86", "TUPLE2", _C_TUPLEN, 2)
_op(b"\x87", "TUPLE3", _C_TUPLEN, 3)
_op(b"\x88", "NEWTRUE", _C_BOOL, 1)
_op(b"\x89", "NEWFALSE", _C_BOOL, 0)
_op(b"\x8a", "LONG1", _C_LONG, 1)
_op(b"\x8b", "LONG4", _C_LONG, 4)
_op(b"B", "BINBYTES", _C_BYTES, 4)
_op(b"C", "SHORT_BINBYTES", _C_BYTES, 1)
_op(b"\x8c", "SHORT_BINUNICODE", _C_STR, 1)
_op(b"\x8d", "BINUNICODE8", _C_STR, 8)
_op(b"\x8e", "BINBYTES8", _C_BYTES, 8)
_op(b"\x8f", "EMPTY_SET", _C_EMPTY_SET)
_op(b"\x90", "ADDITEMS", _C_ADDITEMS)
_op(b"\x91", "FROZENSET", _C_FROZENSET)
_op(b"\x92", "NEWOBJ_EX", _C_NEWOBJ_EX)
_op(b"\x93", "STACK_GLOBAL", _C_STACK_GLOBAL)
_op(b"\x94", "MEMOIZE", _C_MEMOIZE)
_op(b"\x95", "FRAME", _C_FRAME, 8)
_op(b"\x96", "BYTEARRAY8", _C_BYTES, 8)
_op(b"\x97", "NEXT_BUFFER", _C_NONE_PUSH)
_op(b"\x98", "READONLY_BUFFER", _C_NOOP)

#: Opcode bytes a pickle loader accepts; any other byte ends ``pickle.load`` with an error.
VALID_OPCODES = frozenset(_OPS)
_TABLE: list[tuple[str, int, int] | None] = [_OPS.get(b) for b in range(256)]
_LEN_FORMATS = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}
_STRING_OPS_SIGNED = frozenset(["BINSTRING"])
_LATIN1_STRINGS = frozenset(["BINSTRING", "SHORT_BINSTRING"])

# A run of number-only list batches: "MARK (number | FRAME)* APPENDS" or "number APPEND".
# Each batch pushes numbers and appends them to the list below, so a run leaves the stack as it
# was, imports nothing and calls nothing; the walker skips it in one regex match.
_NUM = (
    rb"G.{8}|J.{4}|K.|M.{2}|N|\x88|\x89"
    rb"|\x8a(?:\x00|\x01.|\x02.{2}|\x03.{3}|\x04.{4}|\x05.{5}|\x06.{6}|\x07.{7}|\x08.{8})"
)
_NUMBER_RUN = re.compile(rb"(?:\((?:" + _NUM + rb"|\x95.{8})*e|(?:" + _NUM + rb")a)+", re.DOTALL)
_RUN_STARTS = frozenset(b"(GJKMN\x88\x89\x8a")


def _decode_text_int(data: bytes, offset: int) -> object:
    text = data.strip()
    if text == b"00":
        return False
    if text == b"01":
        return True
    try:
        return int(text.rstrip(b"L"), 0 if text.startswith(b"0x") else 10)
    except ValueError as exc:
        raise PickleParseError(f"bad integer argument {data[:40]!r}", offset) from exc


def _walk(src: Source, *, joblib: bool, on_walk: Callable[[PickleWalk], None] | None = None) -> PickleWalk:
    """Walk one pickle (up to and including its STOP) from ``src``; see the module docstring."""
    walk = PickleWalk(start=src.offset)
    stack: list[object] = []
    marks: list[int] = []
    memo: dict[int, object] = {}
    memo_len = 0
    memo_kept = 0
    used_put = used_memoize = False
    table = _TABLE
    run_match = _NUMBER_RUN.match
    run_starts = _RUN_STARTS
    try:
        while True:
            buf = src.buf
            pos = src.pos
            if len(buf) - pos < 64 and not src.exhausted:
                src.fill(_LOOKAHEAD)
                buf, pos = src.buf, src.pos
            if pos >= len(buf):
                raise PickleParseError("stream ended before the STOP opcode", src.offset)
            code = buf[pos]
            if code in run_starts:
                if len(buf) - pos < _LOOKAHEAD and not src.exhausted:
                    src.fill(_LOOKAHEAD)
                    buf, pos = src.buf, src.pos
                m = run_match(buf, pos)
                if m is not None:
                    src.pos = m.end()
                    continue
            entry = table[code]
            op_offset = src.base + pos
            if entry is None:
                raise PickleParseError(f"invalid opcode 0x{code:02x}", op_offset)
            name, cat, size = entry
            src.pos = pos + 1
            if len(stack) > _MAX_STACK:
                raise PickleParseError("the pickle stack grows past the scanner's limit", op_offset)

            if cat == _C_FIXED_PUSH:
                src.take(size)
                stack.append(U)
            elif cat == _C_INT:
                raw = src.take(size)
                stack.append(struct.unpack("<i" if size == 4 else _LEN_FORMATS[size], raw)[0])
            elif cat == _C_STR:
                raw_len = src.take(size)
                n = struct.unpack(_LEN_FORMATS[size], raw_len)[0]
                if name in _STRING_OPS_SIGNED and n >= 1 << 31:
                    raise PickleParseError(f"{name} has a negative length", op_offset)
                if n <= _MAX_KEPT_STRING:
                    data = src.take(n)
                    try:
                        value: object = data.decode("latin-1" if name in _LATIN1_STRINGS else "utf-8")
                    except UnicodeDecodeError as exc:
                        raise PickleParseError(f"{name} argument is not UTF-8", op_offset) from exc
                    stack.append(value)
                else:
                    if not src.skip(n):
                        raise PickleParseError(f"{name} argument runs past the end of the stream", op_offset)
                    stack.append(U)
            elif cat == _C_MARK:
                marks.append(len(stack))
            elif cat == _C_BUILD:
                state = stack.pop()
                target = stack[-1]
                walk.calls += 1
                if isinstance(target, _Obj):
                    target.state = state
                    if joblib and target.cls == policy.JOBLIB_ARRAY_WRAPPER:
                        _joblib_array(src, target, walk, op_offset)
                        stack[-1] = U  # joblib replaces the wrapper with the array it read
            elif cat == _C_APPEND:
                stack.pop()
                if not stack:
                    raise PickleParseError("APPEND with an empty stack", op_offset)
            elif cat in (_C_APPENDS, _C_SETITEMS, _C_ADDITEMS):
                k = marks.pop()
                items = stack[k:]
                del stack[k:]
                if not stack:
                    raise PickleParseError(f"{name} with nothing to add to", op_offset)
                if cat == _C_SETITEMS and isinstance(stack[-1], _Dict):
                    target_dict = stack[-1]
                    for i in range(0, len(items) - 1, 2):
                        target_dict.set(items[i], items[i + 1])
            elif cat == _C_MEMOIZE:
                if used_put:
                    raise PickleParseError(_MARK_MODE_ERROR, op_offset)
                used_memoize = True
                if not stack:
                    raise PickleParseError("MEMOIZE with an empty stack", op_offset)
                top = stack[-1]
                if top is not U and memo_kept < _MEMO_BUDGET:
                    memo[memo_len] = top
                    memo_kept += 1
                memo_len += 1
            elif cat == _C_GET:
                if size:
                    raw = src.take(size)
                    idx = struct.unpack(_LEN_FORMATS[size], raw)[0]
                else:
                    idx = int(_decode_text_int(src.line(), op_offset))  # type: ignore[call-overload]
                stack.append(memo.get(idx, U))
            elif cat == _C_PUT:
                if used_memoize:
                    raise PickleParseError(_MARK_MODE_ERROR, op_offset)
                used_put = True
                if size:
                    raw = src.take(size)
                    idx = struct.unpack(_LEN_FORMATS[size], raw)[0]
                else:
                    idx = int(_decode_text_int(src.line(), op_offset))  # type: ignore[call-overload]
                if not stack:
                    raise PickleParseError("PUT with an empty stack", op_offset)
                top = stack[-1]
                if top is not U and memo_kept < _MEMO_BUDGET:
                    if idx not in memo:
                        memo_kept += 1
                    memo[idx] = top
                else:
                    memo.pop(idx, None)
            elif cat == _C_STACK_GLOBAL:
                attr = stack.pop()
                module = stack.pop()
                if isinstance(module, str) and isinstance(attr, str):
                    walk.globals.append(GlobalRef(module, attr, name, op_offset))
                    stack.append(_global_value(module, attr, walk.protocol))
                else:
                    walk.unresolved.append(op_offset)
                    stack.append(U)
            elif cat in (_C_GLOBAL, _C_INST):
                try:
                    module = src.line().decode("utf-8")
                    attr = src.line().decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise PickleParseError(f"{name} argument is not UTF-8", op_offset) from exc
                walk.globals.append(GlobalRef(module, attr, name, op_offset))
                if cat == _C_INST:
                    k = marks.pop()
                    inst_args = tuple(stack[k:])
                    del stack[k:]
                    walk.calls += 1
                    stack.append(_call(_global_value(module, attr, walk.protocol), inst_args))
                else:
                    stack.append(_global_value(module, attr, walk.protocol))
            elif cat == _C_REDUCE:
                args = stack.pop()
                func = stack.pop()
                walk.calls += 1
                stack.append(_call(func, args))
            elif cat == _C_NEWOBJ:
                args = stack.pop()
                cls = stack.pop()
                walk.calls += 1
                stack.append(_call(cls, args))
            elif cat == _C_NEWOBJ_EX:
                stack.pop()
                args = stack.pop()
                cls = stack.pop()
                walk.calls += 1
                stack.append(_call(cls, args))
            elif cat == _C_OBJ:
                k = marks.pop()
                items = stack[k:]
                del stack[k:]
                if not items:
                    raise PickleParseError("OBJ without a class", op_offset)
                walk.calls += 1
                stack.append(_call(items[0], tuple(items[1:])))
            elif cat in (_C_EMPTY_LIST, _C_EMPTY_SET, _C_NONE_PUSH):
                stack.append(U)
            elif cat == _C_EMPTY_DICT:
                stack.append(_Dict())
            elif cat == _C_EMPTY_TUPLE:
                stack.append(())
            elif cat == _C_TUPLEN:
                if len(stack) < size:
                    raise PickleParseError(f"{name} with too few stack items", op_offset)
                items = stack[-size:]
                del stack[-size:]
                stack.append(tuple(items))
            elif cat in (_C_TUPLE, _C_LIST, _C_FROZENSET, _C_DICT):
                k = marks.pop()
                items = stack[k:]
                del stack[k:]
                if cat == _C_TUPLE:
                    stack.append(tuple(items) if len(items) <= _MAX_KEPT_TUPLE else U)
                elif cat == _C_DICT:
                    new_dict = _Dict()
                    for i in range(0, len(items) - 1, 2):
                        new_dict.set(items[i], items[i + 1])
                    stack.append(new_dict)
                else:
                    stack.append(U)
            elif cat == _C_SETITEM:
                value = stack.pop()
                key = stack.pop()
                if not stack:
                    raise PickleParseError("SETITEM with nothing to set", op_offset)
                if isinstance(stack[-1], _Dict):
                    stack[-1].set(key, value)
            elif cat == _C_NONE:
                stack.append(None)
            elif cat == _C_BOOL:
                stack.append(bool(size))
            elif cat == _C_BYTES:
                raw_len = src.take(size)
                n = struct.unpack(_LEN_FORMATS[size], raw_len)[0]
                if not src.skip(n):
                    raise PickleParseError(f"{name} payload runs past the end of the stream", op_offset)
                stack.append(U)
            elif cat == _C_LONG:
                raw_len = src.take(size)
                n = struct.unpack("<B" if size == 1 else "<i", raw_len)[0]
                if n < 0:
                    raise PickleParseError("LONG4 has a negative length", op_offset)
                if n <= 16:
                    long_value = int.from_bytes(src.take(n), "little", signed=True)
                    if walk.first_long is None:
                        walk.first_long = long_value
                    stack.append(long_value)
                else:
                    if not src.skip(n):
                        raise PickleParseError(f"{name} argument runs past the end of the stream", op_offset)
                    stack.append(U)
            elif cat == _C_POP:
                # the unpickler pops a value above the last MARK, or else the MARK itself
                if len(stack) > (marks[-1] if marks else 0):
                    stack.pop()
                elif marks:
                    marks.pop()
                else:
                    raise PickleParseError("POP with an empty stack", op_offset)
            elif cat == _C_POP_MARK:
                k = marks.pop()
                del stack[k:]
            elif cat == _C_DUP:
                stack.append(stack[-1])
            elif cat == _C_PROTO:
                walk.protocol = src.take(1)[0]
            elif cat == _C_FRAME:
                src.take(8)
            elif cat == _C_STOP:
                walk.end = src.offset
                if on_walk is not None:
                    on_walk(walk)
                return walk
            elif cat in (_C_TEXT_INT, _C_TEXT_LONG):
                stack.append(_decode_text_int(src.line(), op_offset))
            elif cat == _C_TEXT_FLOAT:
                line = src.line()
                try:
                    float(line)
                except ValueError as exc:
                    raise PickleParseError(f"bad float argument {line[:40]!r}", op_offset) from exc
                stack.append(U)
            elif cat == _C_TEXT_STR:
                line = src.line()
                if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
                    raise PickleParseError("STRING argument is not quoted", op_offset)
                text = line[1:-1]
                stack.append(
                    text.decode("latin-1") if b"\\" not in text and len(text) <= _MAX_KEPT_STRING else U
                )
            elif cat == _C_TEXT_UNICODE:
                line = src.line()
                try:
                    uni = line.decode("raw-unicode-escape")
                except UnicodeDecodeError as exc:
                    raise PickleParseError("UNICODE argument cannot be decoded", op_offset) from exc
                stack.append(uni if len(uni) <= _MAX_KEPT_STRING else U)
            elif cat == _C_EXT:
                src.take(size)
                walk.extension_refs.append(op_offset)
                stack.append(U)
            elif cat == _C_PERSID:
                src.line()
                stack.append(U)
            elif cat == _C_BINPERSID:
                stack.pop()
                stack.append(U)
            elif cat == _C_NOOP:
                if not stack:
                    raise PickleParseError("READONLY_BUFFER with an empty stack", op_offset)
            else:  # pragma: no cover - every category is handled above
                raise PickleParseError(f"unhandled opcode {name}", op_offset)
    except PickleParseError as exc:
        walk.error = str(exc)
        walk.error_offset = exc.offset
    except IndexError:
        walk.error = "an opcode needs more stack items (or a MARK) than the pickle pushed"
        walk.error_offset = src.offset
    except (struct.error, ValueError, OverflowError, MemoryError) as exc:
        walk.error = str(exc)
        walk.error_offset = src.offset
    walk.end = src.offset
    return walk


def _global_value(module: str, name: str, protocol: int) -> object:
    if protocol < 3:
        module, name = map_py2_name(module, name)
    dotted = f"{module}.{name}"
    return _Global(dotted) if dotted in _TRACKED_CLASSES else U


def _call(func: object, args: object) -> object:
    if isinstance(func, _Global):
        return _Obj(func.dotted, args)
    return U


def map_py2_name(module: str, name: str) -> tuple[str, str]:
    """Apply the protocol <3 import renames the unpickler applies (``__builtin__`` ...)."""
    import _compat_pickle

    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


# --- joblib --------------------------------------------------------------------------------

_WRAPPER_PARAMS = ("subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes")
_DTYPE_CODE = re.compile(r"[<>|=]?([a-zA-Z?])(\d*)")


def _wrapper_fields(obj: _Obj) -> dict[object, object] | None:
    """The wrapper's attributes: constructor arguments (when called with any), then its BUILD state."""
    fields: dict[object, object] = {}
    if isinstance(obj.args, tuple) and obj.args:
        fields = {"numpy_array_alignment_bytes": 16}  # the constructor's default
        fields.update(zip(_WRAPPER_PARAMS, obj.args, strict=False))
    elif obj.args != ():
        return None
    state = obj.state
    if isinstance(state, _Dict):
        if state.overflow:
            return None
        fields.update(state.items)
    elif state is not None:
        return None
    return fields


def _dtype_layout(dtype: object, depth: int = 0) -> tuple[int, bool, str] | None:
    """(itemsize, has objects, text) of a numpy dtype rebuilt in the pickle, when it is known.

    Structured dtypes (sklearn's tree nodes) count as holding objects when their flags say so
    *or* any field's dtype does, so both ways numpy might decide agree with the scan.
    """
    if depth > 8 or not isinstance(dtype, _Obj) or dtype.cls != "numpy.dtype":
        return None
    if not isinstance(dtype.args, tuple) or not dtype.args or not isinstance(dtype.args[0], str):
        return None
    code = dtype.args[0]
    m = _DTYPE_CODE.fullmatch(code)
    if m is None:
        return None
    kind, digits = m.group(1), m.group(2)
    state = dtype.state
    elsize = -1
    flags = 0
    names: object = None
    fields: object = None
    if isinstance(state, tuple) and len(state) >= 8:
        names, fields, elsize_v, flags_v = state[3], state[4], state[5], state[7]
        if not isinstance(elsize_v, int) or not isinstance(flags_v, int):
            return None
        elsize, flags = elsize_v, flags_v
    elif state is not None:
        return None
    has_object = kind == "O" or bool(flags & 1)
    if names is not None:
        if not isinstance(names, tuple) or not isinstance(fields, _Dict) or fields.overflow or elsize <= 0:
            return None
        for field_name in names:
            entry = fields.items.get(field_name)
            if not isinstance(entry, tuple) or not entry:
                return None
            sub = _dtype_layout(entry[0], depth + 1)
            if sub is None:
                return None
            has_object = has_object or sub[1]
    if elsize > 0:
        itemsize = elsize
    elif digits:
        itemsize = int(digits)
    elif kind in "?b":
        itemsize = 1
    else:
        return None
    return itemsize, has_object, code


def _joblib_array(src: Source, wrapper: _Obj, walk: PickleWalk, op_offset: int) -> None:
    """Consume what joblib wrote after a wrapper's BUILD: array bytes, or a nested pickle."""
    fields = _wrapper_fields(wrapper)
    if fields is None:
        walk.problems.append(("joblib NumpyArrayWrapper state cannot be read statically", op_offset))
        raise PickleParseError("cannot locate the array data after a joblib NumpyArrayWrapper", op_offset)
    shape = fields.get("shape")
    layout = _dtype_layout(fields.get("dtype"))
    if (
        not isinstance(shape, tuple)
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        or layout is None
    ):
        raise PickleParseError(
            "joblib NumpyArrayWrapper has a shape or dtype the scanner cannot read, so the array "
            "bytes after it cannot be located",
            op_offset,
        )
    itemsize, has_object, code = layout
    if has_object:
        nested = _walk(src, joblib=False)
        walk.nested.append(nested)
        if nested.error:
            raise PickleParseError(
                f"nested pickle of a joblib object array: {nested.error}",
                nested.error_offset if nested.error_offset is not None else src.offset,
            )
        return
    start = src.offset
    alignment = fields.get("numpy_array_alignment_bytes")
    count = 1
    for d in shape:
        count *= d
    nbytes = count * itemsize
    head = src.peek(1)
    if alignment is not None:
        if not head:
            raise PickleParseError("joblib array padding is missing", start)
        padding = head[0]
        if not src.skip(1 + padding):
            raise PickleParseError("joblib array padding runs past the end of the stream", start)
    if nbytes and alignment is None and head and head[0] in VALID_OPCODES:
        # a plain pickle.load would read these array bytes as opcodes: check what they would do
        window = src.peek(min(nbytes, _POLYGLOT_WINDOW))
        poly = _walk(Source(None, base=src.offset, data=window), joblib=False)
        benign_stop = poly.error is not None and poly.error.startswith(
            ("invalid opcode", "bad ", "text opcode")
        )
        if poly.globals or poly.unresolved or poly.extension_refs or not (benign_stop or poly.error is None):
            walk.polyglot.append(poly)
    data_offset = src.offset
    if not src.skip(nbytes):
        raise PickleParseError(
            f"joblib array of shape {shape} and dtype {code!r} ({nbytes} bytes) runs past the end of the stream",
            data_offset,
        )
    walk.arrays.append(ArrayRegion(data_offset, nbytes, shape, code))


def walk_stream(src: Source, *, joblib: bool = False) -> PickleWalk:
    """Walk one pickle from ``src`` (joblib mode skips the array bytes after each wrapper)."""
    return _walk(src, joblib=joblib)


def walk_bytes(data: bytes, *, base: int = 0) -> PickleWalk:
    """Walk one pickle held in memory (for small pickles and tests)."""
    return _walk(Source(None, base=base, data=data), joblib=False)


__all__ = [
    "TORCH_LEGACY_MAGIC",
    "VALID_OPCODES",
    "ArrayRegion",
    "GlobalRef",
    "PickleParseError",
    "PickleWalk",
    "Source",
    "map_py2_name",
    "walk_bytes",
    "walk_stream",
]
