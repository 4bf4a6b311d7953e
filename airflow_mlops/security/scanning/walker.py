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
from typing import IO, Any

from airflow_mlops.security.scanning import policy

_CHUNK = 1 << 20  # bytes read from the underlying stream at a time
_LOOKAHEAD = 256 << 10  # keep this much in the buffer before a fast-path match (a batch fits)
_MAX_LINE = 64 << 10  # text-opcode argument lines longer than this are refused
_MAX_KEPT_STRING = 256  # longer strings are placeholders (no import name is this long)
_MAX_KEPT_TUPLE = 32
_MAX_KEPT_DICT = 64
_MEMO_BUDGET = 1 << 20  # memo entries kept as values; later ones are placeholders
_MAX_STACK = 5_000_000
#: Opcodes walked per stream (all its pickles together): bounds the scan's time as the buffer bounds
#: its memory. Real models store arrays as byte payloads (skipped with ``seek``) and number lists
#: as runs (one regex match), so even a pickled vocabulary of millions of strings stays far below.
MAX_OPCODES = 100_000_000
_MAX_MARKS = 1 << 20  # open MARKs (nesting depth); a flood of MARK opcodes must not grow memory
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
    """An object the pickle did not create: an imported class, function or module (``GLOBAL``,
    ``STACK_GLOBAL``), or what a call returned when that may be a pre-existing shared object
    (``shared_call``: an enum member, numpy's ``True_``, a cached dtype ...).

    Setting state on one (``BUILD``) or mutating it (``SETITEM``, ``APPEND`` ...) changes it for
    the whole loading process, so the walker records it as a mutation.
    """

    __slots__ = ("dotted", "shared_call")

    def __init__(self, dotted: str, shared_call: bool = False) -> None:
        self.dotted = dotted
        self.shared_call = shared_call


class _Obj:
    """An object built by calling a tracked global (joblib wrappers and numpy dtypes).

    ``attrs`` is what a joblib wrapper's ``__dict__`` holds as far as the walker knows it exactly
    (``None``: it cannot be known, and a joblib read of it is refused); ``builds`` counts the
    ``BUILD`` opcodes applied to it.
    """

    __slots__ = ("args", "attrs", "builds", "cls", "state")

    def __init__(self, cls: str, args: object, attrs: dict[object, object] | None = None) -> None:
        self.cls = cls
        self.args = args
        self.attrs = attrs
        self.builds = 0
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


_WRAPPER = policy.JOBLIB_ARRAY_WRAPPER
_RECONSTRUCTOR = "copyreg._reconstructor"
_REBUILD_FROM_TYPE = "torch._tensor._rebuild_from_type_v2"
_MAX_SENSITIVE_MEMO = 4_000_000  # memo entries holding globals/tracked objects, kept past the budget


class LayoutError(PickleParseError):
    """The bytes a loader reads next cannot be decided exactly as the loader decides them."""


class _Refused(Exception):
    """A value the walker cannot interpret exactly the way the loader does."""


def _holds_wrapper(value: object) -> bool:
    """True for the joblib wrapper class itself or a (flat) tuple that holds it."""
    if isinstance(value, _Global):
        return value.dotted == _WRAPPER  # a shared_call result is labelled '...(...)', never the class
    if isinstance(value, tuple):
        return any(isinstance(v, _Global) and v.dotted == _WRAPPER for v in value)
    return False


def _restricted_in(value: object) -> str | None:
    """The :data:`~.policy.NEW_ONLY_GLOBALS` class ``value`` is, or a (flat) tuple holds."""
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if isinstance(item, _Global) and not item.shared_call and item.dotted in policy.NEW_ONLY_GLOBALS:
            return item.dotted
    return None


def _is_shared(value: object) -> bool:
    """True when ``value`` may be an object that exists outside this pickle (see :class:`_Global`)."""
    if isinstance(value, _Global):
        return True
    if isinstance(value, _Obj) and value.cls == "numpy.dtype":
        # numpy.dtype(code, align, copy=False) returns numpy's own cached dtype object
        args = value.args
        return not (isinstance(args, tuple) and len(args) >= 3 and args[2] is True)
    return False


def _shared_label(value: object) -> str:
    if isinstance(value, _Global):
        return value.dotted
    return "numpy.dtype(..., copy=False), numpy's cached dtype"


def _sensitive(value: object) -> bool:
    """Memo values that must never be dropped for the memory budget (they decide findings)."""
    return isinstance(value, _Global | _Obj) or _holds_wrapper(value)


@dataclass
class GlobalRef:
    """One import a pickle makes."""

    module: str
    name: str
    opcode: str
    offset: int
    #: the protocol in force when the import ran (a later PROTO opcode changes it for what
    #: follows only): below 3 the unpickler renames Python 2 imports (``__builtin__`` ...)
    protocol: int = 0

    def resolved(self) -> tuple[str, str]:
        """(module, name) the unpickler really imports: Python 2 names renamed below protocol 3."""
        if self.protocol < 3:
            return map_py2_name(self.module, self.name)
        return self.module, self.name


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
    # (opcode, what it mutates, offset): state set on / items added to an object the pickle did not create
    mutations: list[tuple[str, str, int]] = field(default_factory=list)
    # the walk stopped because the bytes the loader reads next cannot be decided exactly
    layout_error: bool = False
    # (class, how it is used, offset): a policy.NEW_ONLY_GLOBALS class called or handed on
    restricted: list[tuple[str, str, int]] = field(default_factory=list)


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
        self.opcodes = 0  # opcodes walked in this stream (see MAX_OPCODES)
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


def _walk(
    src: Source,
    *,
    joblib: bool,
    on_walk: Callable[[PickleWalk], None] | None = None,
    memo_init: dict[int, object] | None = None,
    protocol: int = 0,
) -> PickleWalk:
    """Walk one pickle (up to and including its STOP) from ``src``; see the module docstring.

    ``memo_init`` and ``protocol`` continue a pickle another walk started (the array bytes a
    plain ``pickle.load`` reads as opcodes after a joblib wrapper: its memo is still there).
    """
    walk = PickleWalk(start=src.offset, protocol=protocol)
    stack: list[object] = []
    marks: list[int] = []
    memo: dict[int, object] = dict(memo_init) if memo_init else {}
    memo_len = 0
    memo_kept = 0
    used_put = used_memoize = False
    table = _TABLE
    run_match = _NUMBER_RUN.match
    run_starts = _RUN_STARTS
    sensitive_kept = 0

    # the wrapper class reaches the stack only through a GLOBAL / STACK_GLOBAL of this walk (a
    # memo_init is only handed to pickle.load walks): until one imports it, escape() has nothing
    # to find, and the per-item check stays off the hot path
    watch_wrapper = False
    # the same for the classes that may only be created with cls.__new__ (policy.NEW_ONLY_GLOBALS)
    watch_restricted = bool(memo_init) and any(_restricted_in(v) for v in (memo_init or {}).values())

    def restrict(
        values: list[object] | tuple[object, ...], what: str, offset: int, *, tuples_only: bool = False
    ) -> None:
        """A NEW_ONLY_GLOBALS class handed to anything (an argument, an item, a state) is recorded:
        whatever receives it could call it with arguments, and its constructor opens files."""
        if not watch_restricted:
            return
        for value in values:
            if tuples_only and not isinstance(value, tuple):
                continue
            dotted = _restricted_in(value)
            if dotted is not None:
                walk.restricted.append((dotted, f"{what} receives it as a value", offset))

    def escape(
        values: list[object] | tuple[object, ...], what: str, offset: int, *, tuples_only: bool = False
    ) -> None:
        """joblib reads array bytes after a BUILD on any NumpyArrayWrapper *instance*: the class
        may only be called directly (or through copyreg._reconstructor), never handed elsewhere,
        or the walker could not tell which objects are wrappers. ``tuples_only``: ``values`` are
        the items of a tuple the walker keeps (a wrapper class directly in it stays tracked)."""
        restrict(values, what, offset, tuples_only=tuples_only)
        if not watch_wrapper:
            return
        if tuples_only:
            values = [v for v in values if isinstance(v, tuple)]
        if any(_holds_wrapper(v) for v in values):
            raise LayoutError(
                f"{what} receives the joblib NumpyArrayWrapper class as a value; joblib reads array "
                "bytes after any wrapper instance, so the scanner refuses a wrapper class used other "
                "than as a direct constructor",
                offset,
            )

    def mutate(target: object, opname: str, offset: int) -> None:
        if _is_shared(target):
            walk.mutations.append((opname, _shared_label(target), offset))

    def rebuild_from_type(func: object, args: object, opname: str, offset: int) -> None:
        """torch's ``_rebuild_from_type_v2(func, new_type, args, state)`` calls ``func(*args)`` and
        sets ``state`` on the result (``setattr`` or ``__setstate__``), whichever opcode calls it
        (REDUCE, OBJ, INST): the result must be an object the pickle creates."""
        if not (isinstance(func, _Global) and func.dotted == _REBUILD_FROM_TYPE):
            return
        if isinstance(args, tuple) and len(args) == 4 and isinstance(args[0], _Global):
            mutate(_call(args[0], args[2], "init"), opname, offset)
        else:
            walk.mutations.append(
                (
                    opname,
                    f"the result of {_REBUILD_FROM_TYPE}, whose function or arguments the scanner cannot see",
                    offset,
                )
            )

    def remember(idx: int, top: object, offset: int) -> None:
        nonlocal memo_kept, sensitive_kept
        if top is U:
            memo.pop(idx, None)
        elif memo_kept < _MEMO_BUDGET:
            if idx not in memo:
                memo_kept += 1
            memo[idx] = top
        elif _sensitive(top):
            sensitive_kept += 1
            if sensitive_kept > _MAX_SENSITIVE_MEMO:
                raise PickleParseError(
                    "the pickle memoizes more imported objects than the scanner tracks", offset
                )
            memo[idx] = top
        else:
            memo.pop(idx, None)

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
            if code in run_starts and not (stack and _is_shared(stack[-1])):
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
            src.opcodes += 1
            if src.opcodes > MAX_OPCODES or len(stack) > _MAX_STACK:
                raise PickleParseError(
                    f"the pickle has more than {MAX_OPCODES} opcodes or a stack of more than "
                    f"{_MAX_STACK} items, past the scanner's limits (a model stores its arrays as "
                    "byte payloads, which are not counted)",
                    op_offset,
                )

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
                if len(marks) >= _MAX_MARKS:
                    raise PickleParseError("the pickle opens more MARKs than the scanner tracks", op_offset)
                marks.append(len(stack))
            elif cat == _C_BUILD:
                state = stack.pop()
                target = stack[-1]
                walk.calls += 1
                escape((state,), "BUILD state", op_offset)
                mutate(target, name, op_offset)
                if isinstance(target, _Obj):
                    target.builds += 1
                    target.state = state
                    if target.cls == _WRAPPER:
                        _apply_wrapper_state(target, state)
                        if joblib:
                            _joblib_array(src, target, walk, op_offset, memo)
                            stack[-1] = U  # joblib replaces the wrapper with the array it read
            elif cat == _C_APPEND:
                value = stack.pop()
                if not stack:
                    raise PickleParseError("APPEND with an empty stack", op_offset)
                escape((value,), name, op_offset)
                mutate(stack[-1], name, op_offset)
            elif cat in (_C_APPENDS, _C_SETITEMS, _C_ADDITEMS):
                k = marks.pop()
                items = stack[k:]
                del stack[k:]
                if not stack:
                    raise PickleParseError(f"{name} with nothing to add to", op_offset)
                escape(items, name, op_offset)
                mutate(stack[-1], name, op_offset)
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
                remember(memo_len, stack[-1], op_offset)
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
                remember(idx, stack[-1], op_offset)
            elif cat == _C_STACK_GLOBAL:
                attr = stack.pop()
                module = stack.pop()
                if isinstance(module, str) and isinstance(attr, str):
                    walk.globals.append(GlobalRef(module, attr, name, op_offset, walk.protocol))
                    imported = _global_value(module, attr, walk.protocol)
                    watch_wrapper = watch_wrapper or (joblib and imported.dotted == _WRAPPER)
                    watch_restricted = watch_restricted or imported.dotted in policy.NEW_ONLY_GLOBALS
                    stack.append(imported)
                else:
                    walk.unresolved.append(op_offset)
                    stack.append(U)
            elif cat in (_C_GLOBAL, _C_INST):
                try:
                    module = src.line().decode("utf-8")
                    attr = src.line().decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise PickleParseError(f"{name} argument is not UTF-8", op_offset) from exc
                walk.globals.append(GlobalRef(module, attr, name, op_offset, walk.protocol))
                if cat == _C_INST:
                    k = marks.pop()
                    inst_args = tuple(stack[k:])
                    del stack[k:]
                    walk.calls += 1
                    escape(inst_args, name, op_offset)
                    how = "init" if inst_args else "new"  # pickle's _instantiate
                    klass = _global_value(module, attr, walk.protocol)
                    if how == "init" and klass.dotted in policy.NEW_ONLY_GLOBALS:
                        walk.restricted.append((klass.dotted, f"{name} calls it with arguments", op_offset))
                    rebuild_from_type(klass, inst_args, name, op_offset)
                    stack.append(_call(klass, inst_args, how))
                else:
                    imported = _global_value(module, attr, walk.protocol)
                    watch_wrapper = watch_wrapper or (joblib and imported.dotted == _WRAPPER)
                    watch_restricted = watch_restricted or imported.dotted in policy.NEW_ONLY_GLOBALS
                    stack.append(imported)
            elif cat == _C_REDUCE:
                args = stack.pop()
                func = stack.pop()
                walk.calls += 1
                reconstructor = isinstance(func, _Global) and func.dotted == _RECONSTRUCTOR
                called = _restricted_in(func) if not isinstance(func, tuple) else None
                if called is not None:
                    walk.restricted.append((called, f"{name} calls it with arguments", op_offset))
                if reconstructor and isinstance(args, tuple) and not any(_holds_wrapper(a) for a in args[1:]):
                    # copyreg._reconstructor(cls, object, state) is object.__new__(cls): no __init__
                    restrict(args[1:], name, op_offset)
                    if args and not isinstance(args[0], tuple) and _restricted_in(args[0]) is not None:
                        base = args[1] if len(args) == 3 else None
                        if not (isinstance(base, _Global) and base.dotted == "builtins.object"):
                            walk.restricted.append(
                                (
                                    str(_restricted_in(args[0])),
                                    f"{name} of copyreg._reconstructor with a base other than object "
                                    "(which runs the base's __init__)",
                                    op_offset,
                                )
                            )
                    elif args:
                        restrict(args[:1], name, op_offset, tuples_only=True)
                else:
                    escape((args,), name, op_offset)
                rebuild_from_type(func, args, name, op_offset)
                stack.append(_call(func, args, "init"))
            elif cat == _C_NEWOBJ:
                args = stack.pop()
                cls = stack.pop()
                walk.calls += 1
                escape((args,), name, op_offset)
                stack.append(_call(cls, args, "new"))  # cls.__new__(cls, *args): __init__ does not run
            elif cat == _C_NEWOBJ_EX:
                kwargs = stack.pop()
                args = stack.pop()
                cls = stack.pop()
                walk.calls += 1
                escape((args, kwargs), name, op_offset)
                stack.append(_call(cls, args, "new"))
            elif cat == _C_OBJ:
                k = marks.pop()
                items = stack[k:]
                del stack[k:]
                if not items:
                    raise PickleParseError("OBJ without a class", op_offset)
                walk.calls += 1
                escape(items[1:], name, op_offset)
                obj_args = tuple(items[1:])
                if obj_args and not isinstance(items[0], tuple) and _restricted_in(items[0]) is not None:
                    walk.restricted.append(
                        (str(_restricted_in(items[0])), f"{name} calls it with arguments", op_offset)
                    )
                rebuild_from_type(items[0], obj_args, name, op_offset)
                stack.append(_call(items[0], obj_args, "init" if obj_args else "new"))
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
                escape(items, name, op_offset, tuples_only=True)
                stack.append(tuple(items))
            elif cat in (_C_TUPLE, _C_LIST, _C_FROZENSET, _C_DICT):
                k = marks.pop()
                items = stack[k:]
                del stack[k:]
                if cat != _C_TUPLE or len(items) > _MAX_KEPT_TUPLE:
                    escape(items, name, op_offset)
                else:
                    escape(items, name, op_offset, tuples_only=True)
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
                escape((key, value), name, op_offset)
                mutate(stack[-1], name, op_offset)
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
                stack.append(U)  # a string id: torch's persistent_load refuses anything but a tuple
            elif cat == _C_BINPERSID:
                pid = stack.pop()
                escape((pid,), name, op_offset)
                stack.append(_persistent_result(pid))
            elif cat == _C_NOOP:
                if not stack:
                    raise PickleParseError("READONLY_BUFFER with an empty stack", op_offset)
            else:  # pragma: no cover - every category is handled above
                raise PickleParseError(f"unhandled opcode {name}", op_offset)
    except PickleParseError as exc:
        walk.error = str(exc)
        walk.error_offset = exc.offset
        walk.layout_error = isinstance(exc, LayoutError)
    except IndexError:
        walk.error = "an opcode needs more stack items (or a MARK) than the pickle pushed"
        walk.error_offset = src.offset
    except (struct.error, ValueError, OverflowError, MemoryError) as exc:
        walk.error = str(exc)
        walk.error_offset = src.offset
    walk.end = src.offset
    return walk


def _global_value(module: str, name: str, protocol: int) -> _Global:
    if protocol < 3:
        module, name = map_py2_name(module, name)
    return _Global(f"{module}.{name}")


_PERSISTENT_UNKNOWN = _Global(
    "an object torch's persistent_load returns for an id the scanner cannot read", True
)


def _persistent_result(pid: object) -> object:
    """What ``torch.load``'s ``persistent_load`` pushes for a BINPERSID id (plain ``pickle``,
    ``joblib`` and ``numpy`` refuse persistent ids). A ``('storage', ...)`` id is a storage the
    file itself holds; legacy ``torch.load`` returns ``data[0]`` of a ``('module', cls, file,
    source)`` id as it is -- the class itself, exactly as if the pickle had imported it, so state
    set on it changes the class for the whole process. An id whose kind cannot be read is treated
    as an object that exists outside the pickle."""
    if isinstance(pid, tuple) and pid:
        kind = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
        if kind == "storage":
            return U
        if kind == "module" and len(pid) >= 2:
            return pid[1]
    return _PERSISTENT_UNKNOWN


def _call(func: object, args: object, how: str) -> object:
    """What calling ``func`` pushes: ``how`` is ``"init"`` (``func(*args)``: REDUCE, INST/OBJ with
    arguments) or ``"new"`` (``cls.__new__(cls, *args)`` without ``__init__``: NEWOBJ, NEWOBJ_EX,
    INST/OBJ without arguments)."""
    if not isinstance(func, _Global) or func.shared_call:
        return U
    dotted = func.dotted
    if dotted == _WRAPPER:
        if how == "new":
            return _Obj(dotted, args, attrs={})  # no __init__: the instance has no attributes yet
        if isinstance(args, tuple) and 4 <= len(args) <= len(_WRAPPER_PARAMS):
            attrs: dict[object, object] = {"allow_mmap": False, "numpy_array_alignment_bytes": 16}
            attrs.update(zip(_WRAPPER_PARAMS, args, strict=False))
            return _Obj(dotted, args, attrs=attrs)
        return _Obj(dotted, args, attrs=None)
    if dotted == "numpy.dtype":
        return _Obj(dotted, args)
    if dotted == _RECONSTRUCTOR and isinstance(args, tuple) and len(args) == 3:
        cls, base = args[0], args[1]
        if isinstance(cls, _Global) and cls.dotted == _WRAPPER:
            plain = isinstance(base, _Global) and base.dotted == "builtins.object"
            return _Obj(_WRAPPER, args, attrs={} if plain else None)  # object.__new__(cls)
        if isinstance(base, _Global) and (
            base.dotted in policy.SHARED_RESULT_GLOBALS or base.dotted == "numpy.dtype"
        ):
            return _Global(f"{base.dotted}.__new__(...)", shared_call=True)
        return U
    if dotted in policy.SHARED_RESULT_GLOBALS:
        return _Global(f"{dotted}(...)", shared_call=True)
    return U


def map_py2_name(module: str, name: str) -> tuple[str, str]:
    """Apply the protocol <3 import renames the unpickler applies (``__builtin__`` ...)."""
    import _compat_pickle

    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


# --- joblib --------------------------------------------------------------------------------

_WRAPPER_PARAMS = ("subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes")
_DTYPE_CODE = re.compile(r"[<>|=]?[a-zA-Z?]\d{0,9}")
_ENDIANS = frozenset(["<", ">", "|", "="])
_MAX_DTYPE_DEPTH = 8


def _apply_wrapper_state(obj: _Obj, state: object) -> None:
    """Apply a BUILD state to a wrapper's known attributes exactly as ``pickle``'s load_build does.

    The wrapper has no ``__setstate__``, so a truthy dict state is merged into its ``__dict__``;
    a ``(state, slotstate)`` pair, any other mapping or an untracked value makes it unknown.
    """
    if obj.attrs is None or state is None:
        return
    if isinstance(state, _Dict) and not state.overflow:
        obj.attrs.update(state.items)
    elif isinstance(state, tuple | int | str) and not state:
        return  # falsy: load_build sets nothing
    else:
        obj.attrs = None


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _numpy_dtype(value: object, depth: int = 0) -> object:
    """The ``numpy.dtype`` the unpickler would build from ``value``, or raise :class:`_Refused`.

    Mirrors numpy's ``dtype.__reduce__``/``__setstate__``: the type code decides the kind (and,
    for all but the flexible kinds S, U and V, the item size: numpy ignores a state's element
    size for them, so one that disagrees is refused); numpy takes the flags -- whether the
    dtype holds objects -- from the state verbatim, so they must equal the flags of the dtype
    that numpy's own constructor builds from the same layout. Anything else is refused.
    """
    import numpy as np

    if depth > _MAX_DTYPE_DEPTH:
        raise _Refused("the dtype nests too deeply")
    if not isinstance(value, _Obj) or value.cls != "numpy.dtype":
        raise _Refused("the dtype is not a numpy.dtype rebuilt from a type code")
    args = value.args
    if not (isinstance(args, tuple) and len(args) == 3 and isinstance(args[0], str)):
        raise _Refused(f"numpy.dtype is called with arguments {_show(args)}, not (code, align, copy)")
    code = args[0]
    if args[1] is not False or args[2] is not True or not _DTYPE_CODE.fullmatch(code):
        raise _Refused(f"numpy.dtype{_show(args)} is not how numpy pickles a dtype")
    try:
        base = np.dtype(code)
    except (TypeError, ValueError) as exc:
        raise _Refused(f"numpy refuses the dtype code {code!r}: {exc}") from None
    if value.builds == 0:
        return base
    if value.builds > 1:
        raise _Refused("the dtype's state is set more than once (numpy merges them)")
    state = value.state
    if not isinstance(state, tuple) or (len(state), state[0] if state else None) not in ((8, 3), (9, 4)):
        raise _Refused(f"dtype state {_show(state)} is not a version 3 or 4 numpy dtype state")
    endian, subarray, names, fields, elsize, alignment, flags = state[1:8]
    if endian not in _ENDIANS or not (_int(elsize) and _int(alignment) and _int(flags)):
        raise _Refused(f"dtype state {_show(state)} has malformed fields")
    if not -128 <= flags <= 255:
        raise _Refused(f"dtype flags {flags} do not fit numpy's flag byte")
    if len(state) == 9 and state[8] is not None and base.kind not in "mM":
        raise _Refused("dtype state carries metadata for a non-datetime dtype")
    kind = base.kind
    if kind != "V" and (subarray is not None or names is not None or fields is not None):
        raise _Refused(f"dtype {code!r} of kind {kind!r} has fields or a subarray in its state")
    result: Any
    if kind not in "SUV":
        if elsize not in (-1, base.itemsize) or alignment not in (-1, base.alignment):
            raise _Refused(
                f"dtype {code!r} state claims element size {elsize} (alignment {alignment}); numpy "
                f"ignores it and uses {base.itemsize}"
            )
        result = base
    elif kind == "S" or kind == "U":
        if elsize < 0 or (kind == "U" and elsize % 4):
            raise _Refused(f"dtype {code!r} state has element size {elsize}")
        result = np.dtype(f"{kind}{elsize if kind == 'S' else elsize // 4}")
    elif subarray is not None:
        if (
            names is not None
            or fields is not None
            or not (isinstance(subarray, tuple) and len(subarray) == 2)
        ):
            raise _Refused("dtype state has a malformed subarray")
        sub_shape = subarray[1]
        if not (isinstance(sub_shape, tuple) and all(_int(d) and 0 <= d < 1 << 31 for d in sub_shape)):
            raise _Refused(f"dtype subarray shape {_show(sub_shape)} is not a tuple of sizes")
        result = _build(lambda: np.dtype((_numpy_dtype(subarray[0], depth + 1), sub_shape)))
    elif names is not None:
        if not (
            isinstance(names, tuple)
            and all(isinstance(n, str) for n in names)
            and len(set(names)) == len(names)
        ):
            raise _Refused("dtype field names are not a tuple of distinct strings")
        if not isinstance(fields, _Dict) or fields.overflow or set(fields.items) != set(names):
            raise _Refused("dtype fields do not match its names (titles are not supported)")
        formats, offsets = [], []
        for field_name in names:
            entry = fields.items[field_name]
            if not (isinstance(entry, tuple) and len(entry) == 2 and _int(entry[1]) and entry[1] >= 0):
                raise _Refused(f"dtype field {field_name!r} is not (dtype, offset)")
            formats.append(_numpy_dtype(entry[0], depth + 1))
            offsets.append(entry[1])
        spec = {"names": list(names), "formats": formats, "offsets": offsets, "itemsize": elsize}
        result = _build(lambda: np.dtype(spec, align=bool(flags & 0x80)))  # type: ignore[call-overload]
    else:
        if fields is not None:
            raise _Refused("dtype state has fields without names")
        result = _build(lambda: np.dtype(f"V{elsize}"))
    if kind in "SUV" and (elsize != result.itemsize or alignment != result.alignment):
        raise _Refused(
            f"dtype {code!r} state (element size {elsize}, alignment {alignment}) disagrees with "
            f"its layout ({result.itemsize}, {result.alignment})"
        )
    if flags % 256 != result.flags % 256:
        raise _Refused(
            f"dtype {code!r} state has flags {flags}, but numpy builds this layout with flags "
            f"{result.flags} (whether it holds Python objects would disagree)"
        )
    return result


def _build(make: Callable[[], object]) -> Any:
    try:
        return make()
    except (TypeError, ValueError, OverflowError, MemoryError) as exc:
        raise _Refused(f"numpy refuses this dtype layout: {exc}") from None


def _show(value: object, limit: int = 120) -> str:
    def plain(v: object) -> object:
        if isinstance(v, tuple):
            return tuple(plain(i) for i in v)
        if isinstance(v, _Dict):
            return {k: plain(i) for k, i in v.items.items()}
        if isinstance(v, _Obj):
            return f"<{v.cls} object>"
        if isinstance(v, _Global):
            return f"<{v.dotted}>"
        return v

    text = repr(plain(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


_JOBLIB_REFUSAL = "the bytes joblib reads after a NumpyArrayWrapper cannot be located exactly: "


def _joblib_array(
    src: Source, wrapper: _Obj, walk: PickleWalk, op_offset: int, memo: dict[int, object]
) -> None:
    """Consume what ``NumpyArrayWrapper.read`` reads after the wrapper's BUILD, decided exactly as
    joblib decides it (padding only when the instance has a non-None
    ``numpy_array_alignment_bytes``; ``dtype.hasobject`` and ``dtype.itemsize`` as numpy computes
    them); anything the scanner cannot decide exactly is refused (:class:`LayoutError`)."""
    attrs = wrapper.attrs
    if attrs is None:
        raise LayoutError(
            _JOBLIB_REFUSAL + "the wrapper is built or given a state in a way the scanner cannot "
            "follow (only joblib's own NEWOBJ + dict state, constructor calls and "
            "copyreg._reconstructor are understood)",
            op_offset,
        )
    extra = sorted(repr(k) for k in attrs if k not in _WRAPPER_PARAMS)
    if extra:
        # joblib calls the wrapper's methods (read, read_array, safe_get_numpy_array_alignment_bytes
        # ...) through the instance: a state key of that name replaces the method with whatever
        # the pickle puts there, and joblib then reads a different number of bytes
        raise LayoutError(
            _JOBLIB_REFUSAL + f"its state sets attribute(s) {', '.join(extra)[:200]} that joblib never "
            "writes; an attribute named like one of the wrapper's methods replaces it",
            op_offset,
        )
    shape = attrs.get("shape")
    if not isinstance(shape, tuple) or not all(_int(d) and d >= 0 for d in shape):
        raise LayoutError(_JOBLIB_REFUSAL + f"its shape {_show(shape)} is not a tuple of sizes", op_offset)
    try:
        dtype: Any = _numpy_dtype(attrs.get("dtype"))
    except _Refused as exc:
        raise LayoutError(_JOBLIB_REFUSAL + str(exc), op_offset) from None
    count = 1
    for d in shape:
        count *= d
    if count >= 1 << 63:
        raise LayoutError(
            _JOBLIB_REFUSAL + f"shape {shape} overflows joblib's int64 element count", op_offset
        )
    code = dtype.str
    if dtype.hasobject:
        if attrs.get("allow_mmap", False) is not False:
            raise LayoutError(_JOBLIB_REFUSAL + "an object array that allows memory mapping", op_offset)
        nested = _walk(src, joblib=False)
        walk.nested.append(nested)
        if nested.error:
            raise PickleParseError(
                f"nested pickle of a joblib object array: {nested.error}",
                nested.error_offset if nested.error_offset is not None else src.offset,
            )
        return
    if dtype.itemsize == 0:
        raise LayoutError(_JOBLIB_REFUSAL + f"dtype {code!r} has no item size", op_offset)
    alignment = attrs.get("numpy_array_alignment_bytes")  # joblib: getattr(..., None)
    if isinstance(alignment, _Unknown):
        raise LayoutError(
            _JOBLIB_REFUSAL + "whether numpy_array_alignment_bytes is None (padding) is unknown", op_offset
        )
    start = src.offset
    nbytes = count * dtype.itemsize
    head = src.peek(1)
    if head and head[0] in VALID_OPCODES and (nbytes or alignment is not None):
        # a plain pickle.load (or torch.load of a legacy file) reads what joblib skips -- the
        # padding byte and padding, then the array bytes -- as opcodes of the same pickle, with
        # the same memo: check what they would do
        window = src.peek(min(nbytes + 256, _POLYGLOT_WINDOW))
        poly = _walk(
            Source(None, base=src.offset, data=window), joblib=False, memo_init=memo, protocol=walk.protocol
        )
        benign_stop = poly.error is not None and poly.error.startswith(
            ("invalid opcode", "bad ", "text opcode")
        )
        if (
            poly.globals
            or poly.unresolved
            or poly.extension_refs
            or poly.mutations
            or poly.calls
            or not (benign_stop or poly.error is None)
        ):
            walk.polyglot.append(poly)
    if alignment is not None:
        if not head:
            raise PickleParseError("joblib array padding is missing", start)
        padding = head[0]
        if not src.skip(1 + padding):
            raise PickleParseError("joblib array padding runs past the end of the stream", start)
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
