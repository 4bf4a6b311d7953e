"""Byte-by-byte builders of scanner-bypass fixtures, each with the verdict the scanner must give.

Every fixture names the loader that would read it (``joblib``, ``pickle``, ``npy``, ``torch``, ``skops`` or
``none`` for non-pickle formats). The differential test scans each one; a file that passes is
loaded for real in a sandboxed subprocess that must see nothing run, and a refused file must
carry a reason. The classes of bypass covered:

- joblib arrays whose byte count the scanner and joblib/numpy would compute differently
  (dtype element sizes, unicode without state, wrappers without ``__init__`` and without the
  alignment attribute, object flags, repeated BUILDs, other construction routes), plain and
  zlib-compressed;
- .npy/.npz object arrays that do not spell ``'O'`` (``'object'``, structured fields), and
  npz members named like directories or with a bad CRC;
- class and module poisoning: BUILD / SETITEM / APPEND on globals reached directly, through the
  memo or DUP, and on shared objects returned by calls (enum members, numpy's cached dtypes);
- published picklescan / modelscan bypasses (CVE-2025-1716, CVE-2025-10155/10156/10157 and the
  picklescan GHSA list): dangerous callables outside the obvious modules, extension tricks;
- skops files whose schema makes ``skops.io.load`` import a dangerous or unlisted name (through
  every node kind that imports one), use an allowlisted booster other than as skops writes it,
  or whose members are not what the schema references (object arrays, pickles, extra members),
  and schemas skops and the scanner could read differently (repeated keys or members, other
  protocols, node kinds skops does not write, nesting past the limits, prepended bytes);
- loader-view disagreements: text files that run a payload before they stop parsing as a pickle,
  text read differently by joblib.load and pickle.load, joblib padding bytes that pickle.load
  reads as opcodes (with the memo of the pickle), zlib streams that are valid UTF-8, torch's
  legacy tar format, zips whose directory zipfile and torch's reader place differently, joblib's
  pre-0.10 "ZF" files, and a MARK flood that must not exhaust memory.
"""

from __future__ import annotations

import io
import json
import lzma
import pickle
import struct
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")


@dataclass(frozen=True)
class Fixture:
    """One file: its name, how to write it, who loads it, and the verdict the scanner must give."""

    name: str
    write: Callable[[Path], None]
    loader: str  # joblib | pickle | npy | torch | skops | none
    verdict: str  # "pass" | "refuse"
    kinds: frozenset[str] = field(default_factory=frozenset)  # refusal kinds accepted (empty: any)
    note: str = ""


# --- pickle byte helpers -------------------------------------------------------------------


def s4(text: str) -> bytes:
    """SHORT_BINUNICODE (protocol 4) or BINUNICODE."""
    raw = text.encode()
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def sglobal(module: str, name: str) -> bytes:
    return s4(module) + s4(name) + b"\x93"


def tglobal(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def bint(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)
    return b"J" + struct.pack("<i", value)


def tup(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def dct(**items: bytes) -> bytes:
    return b"}(" + b"".join(s4(k) + v for k, v in items.items()) + b"u"


def dtype_bytes(code: str, state: tuple[object, ...] | None = None, *, copy: bool = True) -> bytes:
    """numpy.dtype(code, False, copy) and, when given, BUILD(state) -- simple states only."""
    out = sglobal("numpy", "dtype") + tup(s4(code), b"\x89", b"\x88" if copy else b"\x89") + b"R"
    if state is not None:
        out += _value(state) + b"b"
    return out


def _value(v: object) -> bytes:
    if v is None:
        return b"N"
    if isinstance(v, bool):
        return b"\x88" if v else b"\x89"
    if isinstance(v, int):
        return bint(v) if v >= 0 else b"J" + struct.pack("<i", v)
    if isinstance(v, str):
        return s4(v)
    if isinstance(v, bytes):
        return v  # raw opcodes
    if isinstance(v, tuple):
        return tup(*(_value(i) for i in v))
    raise TypeError(v)


def os_system_payload(proto4: bool = True) -> bytes:
    """Pushes os.system('true') and calls it (no PROTO, no STOP)."""
    g = sglobal("os", "system") if proto4 else tglobal("os", "system")
    return g + tup(s4("true")) + b"R"


PAYLOAD_TAIL = b"0" + os_system_payload() + b"."  # POP the array, run the payload, STOP


def computed_module_payload() -> bytes:
    """A STACK_GLOBAL whose module is the result of a call (``getattr(object, "x")``): only
    executing the pickle could name the import."""
    return (
        b"\x80\x04"
        + sglobal("builtins", "getattr")
        + tup(sglobal("builtins", "object"), s4("x"))
        + b"R"
        + s4("y")
        + b"\x93."
    )


def wrapper_newobj(
    shape: bytes, dtype: bytes, *, alignment: bytes | None = b"K\x10", args: bytes = b")"
) -> bytes:
    """A wrapper as joblib writes it (NEWOBJ + dict state), optionally without the alignment key."""
    state = {"subclass": sglobal("numpy", "ndarray"), "shape": shape, "order": s4("C"), "dtype": dtype}
    state["allow_mmap"] = b"\x88"
    if alignment is not None:
        state["numpy_array_alignment_bytes"] = alignment
    return sglobal(*WRAPPER) + args + b"\x81" + dct(**state) + b"b"


def desync_region(scanner_skip: int, loader_skip: int, tail: bytes = PAYLOAD_TAIL) -> bytes:
    """Bytes after a wrapper's BUILD where the old scanner skipped ``scanner_skip`` bytes but the
    loader reads ``loader_skip``: the loader then runs ``tail`` while the scanner saw a harmless
    BINBYTES (or array data) and STOP."""
    if loader_skip > scanner_skip:
        filler = b"\x00" * scanner_skip
        hidden = loader_skip - scanner_skip - 5
        assert hidden >= 0
        length = hidden + len(tail)
        return filler + b"B" + struct.pack("<I", length) + b"\x00" * hidden + tail + b"."
    region = bytearray(b"\x00" * scanner_skip)
    region[loader_skip : loader_skip + len(tail)] = tail
    return bytes(region) + b"."


def _write(data: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(data)

    return write


def _joblib_variants(name: str, data: bytes, verdict: str, kinds: frozenset[str], note: str) -> list[Fixture]:
    return [
        Fixture(f"{name}.joblib", _write(data), "joblib", verdict, kinds, note),
        Fixture(
            f"{name}_zlib.joblib", _write(zlib.compress(data)), "joblib", verdict, kinds, note + " (zlib)"
        ),
    ]


LAYOUT = frozenset(["ambiguous_layout"])
POISON = frozenset(["global_mutation"])
DANGER = frozenset(["dangerous_global", "unknown_global"])


def joblib_fixtures() -> list[Fixture]:
    out: list[Fixture] = []
    n = 64
    # (a) a non-flexible dtype whose state claims another element size (numpy uses 8, not 1)
    f8_small = dtype_bytes("f8", (3, "<", None, None, None, 1, 1, 0))
    data = b"\x80\x04" + wrapper_newobj(tup(bint(n)), f8_small) + b"\x00" + desync_region(n * 1, n * 8)
    out += _joblib_variants("dtype_elsize_lies", data, "refuse", LAYOUT, "state elsize ignored by numpy")
    # (b) a unicode dtype without state: numpy counts 4 bytes a character
    u5 = dtype_bytes("U5")
    data = b"\x80\x04" + wrapper_newobj(tup(bint(n)), u5) + b"\x00" + desync_region(n * 5, n * 20)
    out += _joblib_variants(
        "unicode_without_state", data, "refuse", DANGER, "numpy counts 4 bytes a character"
    )
    # (c) NEWOBJ with constructor arguments and no alignment key: joblib reads no padding
    args = tup(sglobal("numpy", "ndarray"), tup(bint(n)), s4("C"), dtype_bytes("u1"))
    wrapper = sglobal(*WRAPPER) + args + b"\x81" + dct(shape=tup(bint(n)), dtype=dtype_bytes("u1")) + b"b"
    data = b"\x80\x04" + wrapper + desync_region(1 + 40 + n, n)
    data = bytearray(data)
    data[len(b"\x80\x04" + wrapper)] = 40  # the pad byte the old scanner read
    out += _joblib_variants(
        "newobj_args_no_alignment", bytes(data), "refuse", DANGER, "NEWOBJ skips __init__"
    )
    # object dtype whose flags say it holds no objects: numpy reads raw pointers (crash)
    o8_noflags = dtype_bytes("O8", (3, "|", None, None, None, -1, -1, 0))
    data = b"\x80\x04" + wrapper_newobj(tup(bint(2)), o8_noflags) + b"\x00" + b"\x41" * 16 + b"."
    out += _joblib_variants("object_dtype_flags_zero", data, "refuse", LAYOUT, "segfaults joblib.load")
    # a float dtype that claims to hold objects: joblib would unpickle what follows
    f8_obj = dtype_bytes("f8", (3, "<", None, None, None, -1, -1, 63))
    data = b"\x80\x04" + wrapper_newobj(tup(bint(2)), f8_obj) + b"\x00" + b"\x00" * 16 + b"."
    out += _joblib_variants("float_dtype_object_flags", data, "refuse", LAYOUT, "flags disagree with kind")
    # a dtype built with copy=False is numpy's cached one: setting its state poisons the process
    shared = dtype_bytes("f8", (3, "<", None, None, None, -1, -1, 0), copy=False)
    data = b"\x80\x04" + wrapper_newobj(tup(bint(2)), shared) + b"\x00" + b"\x00" * 16 + b"."
    out += _joblib_variants("dtype_copy_false", data, "refuse", LAYOUT | POISON, "cached dtype mutated")
    # (state, slotstate) pair: setattr path the scanner does not follow
    pair = b"N" + dct(shape=tup(bint(n)), dtype=dtype_bytes("u1"), numpy_array_alignment_bytes=b"N") + b"\x86"
    wrapper = sglobal(*WRAPPER) + b")\x81" + pair + b"b"
    data = b"\x80\x04" + wrapper + desync_region(1 + n, n)
    out += _joblib_variants("slotstate_pair", data, "refuse", LAYOUT, "slotstate")
    # wrapper class handed to torch's _rebuild_from_type_v2 (instance without a visible constructor)
    rebuild = (
        sglobal("torch._tensor", "_rebuild_from_type_v2")
        + tup(sglobal(*WRAPPER), sglobal(*WRAPPER), tup(b"N", tup(bint(n)), s4("C"), dtype_bytes("u1")), b"}")
        + b"R"
    )
    data = b"\x80\x04" + rebuild + b"}b" + desync_region(1 + n, n)
    out += _joblib_variants("wrapper_class_escapes", data, "refuse", LAYOUT, "class used as a value")
    # a benign REDUCE-built wrapper (constructor path: alignment defaults to 16, padding read)
    args = tup(sglobal("numpy", "ndarray"), tup(bint(4)), s4("C"), dtype_bytes("<i4"))
    data = b"\x80\x04" + sglobal(*WRAPPER) + args + b"R}b" + b"\x00" + struct.pack("<4i", 1, 2, 3, 4) + b"."
    out += _joblib_variants("reduce_wrapper_benign", data, "pass", frozenset(), "constructor route")
    # protocol 2 copyreg._reconstructor route, benign, without padding
    recon = (
        tglobal("copyreg", "_reconstructor")
        + tup(tglobal(*WRAPPER), tglobal("builtins", "object"), b"N")
        + b"R"
    )
    state = dct(
        subclass=tglobal("numpy", "ndarray"),
        shape=tup(bint(3)),
        dtype=dtype_bytes("u1"),
        order=s4("C"),
        numpy_array_alignment_bytes=b"N",
    )
    data = b"\x80\x02" + recon + state + b"b" + b"\xff\xfe\xfd" + b"."
    out += _joblib_variants("reconstructor_wrapper_benign", data, "pass", frozenset(), "protocol 2 route")
    # the same wrapper BUILT twice through the memo: joblib reads two arrays
    first = (
        sglobal(*WRAPPER)
        + b")\x81\x94"
        + dct(
            subclass=sglobal("numpy", "ndarray"),
            shape=tup(bint(2)),
            order=s4("C"),
            dtype=dtype_bytes("u1"),
            numpy_array_alignment_bytes=b"N",
        )
        + b"b"
    )
    data = b"\x80\x04" + first + b"\xffy" + b"h\x00}b" + b"\xffw" + b"\x86."
    out += _joblib_variants("wrapper_built_twice_benign", data, "pass", frozenset(), "memo GET + BUILD")
    data = b"\x80\x04" + first + b"xy" + b"0h\x00" + dct(shape=tup(bint(40))) + b"b" + desync_region(2, 40)
    out += _joblib_variants(
        "wrapper_built_twice_payload", data, "refuse", DANGER, "second read hides payload"
    )
    # flexible dtype with a state element size: numpy uses it, and so must the scanner
    s3 = dtype_bytes("S5", (3, "|", None, None, None, 3, 1, 0))
    data = b"\x80\x04" + wrapper_newobj(tup(bint(2)), s3, alignment=b"N") + b"\xffbcdef" + b"."
    out += _joblib_variants("bytes_dtype_state_size_benign", data, "pass", frozenset(), "S with elsize 3")
    # a state key named like a wrapper method replaces it on the instance: joblib calls
    # safe_get_numpy_array_alignment_bytes() -> dict() = {} (not None) and reads padding the
    # scanner, following the missing alignment attribute, did not skip
    for method, value in (
        ("safe_get_numpy_array_alignment_bytes", sglobal("builtins", "dict")),
        ("read", sglobal("builtins", "tuple")),
    ):
        state = {
            "subclass": sglobal("numpy", "ndarray"),
            "shape": tup(bint(n)),
            "order": s4("C"),
            "dtype": dtype_bytes("f8"),
            "allow_mmap": b"\x88",
            method: value,
        }
        wrapper = sglobal(*WRAPPER) + b")\x81" + dct(**state) + b"b"
        region = bytearray(desync_region(n * 8, 1 + 40 + n * 8))
        region[0] = 40  # the padding byte joblib reads
        out += _joblib_variants(
            f"wrapper_shadows_{method}",
            b"\x80\x04" + wrapper + bytes(region),
            "refuse",
            LAYOUT,
            f"instance attribute {method} replaces the wrapper's method",
        )
    return out


# --- numpy files ---------------------------------------------------------------------------


def npy_bytes(descr: str, shape: tuple[int, ...], body: bytes) -> bytes:
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': {shape!r}, }}".encode()
    header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


EVIL_PICKLE = b"\x80\x02" + os_system_payload(False) + b"."


def _zip(members: dict[str, bytes], *, bad_crc: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    raw = bytearray(buf.getvalue())
    if bad_crc is not None:
        with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
            info = zf.getinfo(bad_crc)
        crc = struct.pack("<I", info.CRC)
        raw[info.header_offset + 14 : info.header_offset + 18] = b"\x00\x00\x00\x00"
        pos = bytes(raw).rfind(crc)
        raw[pos : pos + 4] = b"\x00\x00\x00\x00"
    return bytes(raw)


def numpy_fixtures() -> list[Fixture]:
    out: list[Fixture] = []
    for label, descr in (
        ("object_word", "'object'"),
        ("object_field", "[('a', 'object')]"),
        ("object_O", "'|O'"),
    ):
        data = npy_bytes(descr, (1,), EVIL_PICKLE)
        out.append(
            Fixture(f"{label}.npy", _write(data), "npy", "refuse", DANGER, "object dtype spelled " + descr)
        )
    benign_obj = io.BytesIO()
    np.save(benign_obj, np.array([1, "a", None], dtype=object), allow_pickle=True)
    numeric = io.BytesIO()
    np.save(numeric, np.arange(5.0))
    out.append(
        Fixture(
            "benign.npz",
            _write(_zip({"a.npy": numeric.getvalue(), "o.npy": benign_obj.getvalue()})),
            "npy",
            "pass",
        )
    )
    for member in ("x.npy/", "x/", "dir/"):
        data = _zip({"a.npy": numeric.getvalue(), member: npy_bytes("'O'", (1,), EVIL_PICKLE)})
        out.append(
            Fixture(
                f"dir_member_{member.strip('/').replace('.', '_')}.npz", _write(data), "npy", "refuse", DANGER
            )
        )
    data = _zip({"a.npy": numeric.getvalue(), "b.npy": npy_bytes("'O'", (1,), EVIL_PICKLE)}, bad_crc="b.npy")
    out.append(Fixture("bad_crc.npz", _write(data), "npy", "refuse", frozenset(), "CVE-2025-10156"))
    data = _zip({"archive/data.pkl": EVIL_PICKLE}, bad_crc="archive/data.pkl")
    out.append(Fixture("bad_crc_torch.pt", _write(data), "none", "refuse", frozenset(), "CVE-2025-10156"))
    # a header numpy refuses is refused
    out.append(
        Fixture("bad_header.npy", _write(npy_bytes("'<f8', 'x': 1", (1,), b"\x00" * 8)), "none", "refuse")
    )
    # np.load(allow_pickle=True) lifts numpy's 10 kB header limit: the scanner reads past it
    big = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }" + b" " * 20000
    big += b" " * ((64 - (12 + len(big) + 1) % 64) % 64) + b"\n"
    data = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(big)) + big + EVIL_PICKLE
    out.append(Fixture("object_header_20k.npy", _write(data), "npy", "refuse", DANGER, "header > 10 kB"))
    for k, descr in enumerate(["'<O8'", "'O4'", "[('a', [('b', 'O')])]", "('O', (2,))", "u'|O'"]):
        out.append(
            Fixture(
                f"object_descr_{k}.npy",
                _write(npy_bytes(descr, (1,), EVIL_PICKLE)),
                "npy",
                "refuse",
                DANGER,
                f"descr {descr}",
            )
        )
    benign = io.BytesIO()
    np.save(benign, np.arange(3.0))
    for label, members in {
        "plain_first": {"a": benign.getvalue(), "a.npy": npy_bytes("'|O'", (1,), EVIL_PICKLE)},
        "npy_first": {"a.npy": npy_bytes("'|O'", (1,), EVIL_PICKLE), "a": benign.getvalue()},
    }.items():
        out.append(
            Fixture(
                f"npz_a_and_a_npy_{label}.npz",
                _write(_zip(members)),
                "npy",
                "refuse",
                DANGER,
                "files lists 'a' twice; every member is scanned",
            )
        )
    return out


# --- class and module poisoning ------------------------------------------------------------

PUREPATH = ("pathlib", "PurePath")


def poisoning_fixtures() -> list[Fixture]:
    out: list[Fixture] = []
    slot = b"N" + dct(is_relative_to=sglobal("builtins", "bool")) + b"\x86"
    routes = {
        "direct": sglobal(*PUREPATH) + slot + b"b",
        "memo": sglobal(*PUREPATH) + b"\x94" + b"0" + b"h\x00" + slot + b"b",
        "dup": sglobal(*PUREPATH) + b"2" + b"0" + slot + b"b",
        "put_get": tglobal(*PUREPATH) + b"q\x07" + b"0" + b"h\x07" + slot + b"b",
        "text_global": tglobal(*PUREPATH) + b"N" + dct(is_relative_to=tglobal("builtins", "bool")) + b"\x86b",
        "inside_tuple_then_memo": sglobal(*PUREPATH) + b"\x94\x85" + b"0h\x00" + slot + b"b",
    }
    for label, body in routes.items():
        data = b"\x80\x04" + body + b"."
        out.append(
            Fixture(f"poison_{label}.pkl", _write(data), "pickle", "refuse", POISON, "BUILD on a class")
        )
        out.append(Fixture(f"poison_{label}.joblib", _write(data), "joblib", "refuse", POISON))
    # SETITEM / SETITEMS / APPEND(S) on globals
    for label, body in {
        "setitem": sglobal("collections", "OrderedDict") + s4("k") + b"K\x01s",
        "setitems": sglobal("collections", "OrderedDict") + b"(" + s4("k") + b"K\x01u",
        "append": sglobal("builtins", "list") + b"K\x01a",
        "appends": sglobal("builtins", "list") + b"(K\x01e",
        "additems": sglobal("builtins", "set") + b"(K\x01\x90",
    }.items():
        out.append(
            Fixture(f"mutate_{label}.pkl", _write(b"\x80\x04" + body + b"."), "pickle", "refuse", POISON)
        )
    # shared objects returned by calls: an enum member, numpy's True_, numpy's cached float64
    for label, body in {
        "enum_member": sglobal("uuid", "SafeUUID") + tup(bint(0)) + b"R" + dct(_value_=bint(7)) + b"b",
        "numpy_true": sglobal("numpy", "bool_") + tup(bint(1)) + b"R" + tup(bint(1)) + b"b",
        "reconstructed_dtype": sglobal("copyreg", "_reconstructor")
        + tup(sglobal("numpy", "dtype"), sglobal("numpy", "dtype"), s4("f8"))
        + b"R"
        + _value((3, ">", None, None, None, -1, -1, 0))
        + b"b",
        "cached_dtype": dtype_bytes("f8", (3, ">", None, None, None, -1, -1, 0), copy=False),
    }.items():
        out.append(
            Fixture(f"shared_{label}.pkl", _write(b"\x80\x04" + body + b"."), "pickle", "refuse", POISON)
        )
    # torch's _rebuild_from_type_v2(func, new_type, args, state) sets state on func(*args),
    # whichever opcode calls it: REDUCE, OBJ, INST, or with its arguments built by a call
    rebuild = sglobal("torch._tensor", "_rebuild_from_type_v2")
    safe_uuid = sglobal("uuid", "SafeUUID")
    rebuild_args = (safe_uuid, safe_uuid, tup(bint(0)), dct(x=bint(1)))
    for label, body in {
        "reduce": rebuild + tup(*rebuild_args) + b"R",
        "obj": b"(" + rebuild + b"".join(rebuild_args) + b"o",
        "inst": b"(" + b"".join(rebuild_args) + b"itorch._tensor\n_rebuild_from_type_v2\n",
        "args_from_call": rebuild
        + sglobal("builtins", "tuple")
        + b"(]("
        + b"".join(rebuild_args)
        + b"etR"
        + b"R",
        "dtype_obj": b"("
        + rebuild
        + sglobal("numpy", "dtype")
        + sglobal("numpy", "dtype")
        + tup(s4("f8"))
        + _value((3, "<", None, None, None, 1, 1, 0))
        + b"o",
    }.items():
        out.append(
            Fixture(
                f"rebuild_from_type_{label}.pkl",
                _write(b"\x80\x04" + body + b"."),
                "pickle",
                "refuse",
                POISON,
                "torch sets the state on a shared object (an enum member, numpy's cached dtype)",
            )
        )
    # legacy torch.load: persistent_load returns data[0] of a ('module', cls, file, source) id,
    # the class itself; BUILD on it (or on an enum member its call returns) poisons the class
    legacy_header = (
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + pickle.dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {}}, protocol=2)
    )
    slot_state = tup(b"N", dct(is_relative_to=sglobal("builtins", "bool"))) + b"b"
    for label, body in {
        "class": tup(s4("module"), sglobal(*PUREPATH), b"N", b"N") + b"Q" + slot_state,
        "class_bytes_kind": tup(b"C\x06module", sglobal(*PUREPATH), b"N", b"N") + b"Q" + slot_state,
        "enum_member": tup(s4("module"), sglobal("uuid", "SafeUUID"), b"N", b"N")
        + b"Q"
        + tup(bint(0))
        + b"R"
        + dct(_value_=bint(7))
        + b"b",
        "unreadable_id": sglobal("builtins", "tuple")
        + b"(]("
        + s4("module")
        + sglobal(*PUREPATH)
        + b"NNetR"
        + b"Q"
        + slot_state,
    }.items():
        out.append(
            Fixture(
                f"persistent_id_{label}.pt",
                _write(legacy_header + b"\x80\x04" + body + b"." + pickle.dumps([], protocol=2)),
                "torch",
                "refuse",
                POISON,
                "legacy torch.load's persistent_load hands back the class",
            )
        )
    return out


# --- published bypasses --------------------------------------------------------------------

ADVISORY_CALLABLES: dict[str, tuple[str, str]] = {
    "CVE-2025-1716 pip.main": ("pip", "main"),
    "CVE-2025-10157 asyncio subprocess": ("asyncio.unix_events", "_UnixSubprocessTransport"),
    "CVE-2025-10157 _pickle internals": ("_pickle", "Unpickler"),
    "GHSA operator.attrgetter": ("operator", "attrgetter"),
    "GHSA _operator.attrgetter": ("_operator", "attrgetter"),
    "GHSA _operator.methodcaller": ("_operator", "methodcaller"),
    "GHSA torch.utils.bottleneck": ("torch.utils.bottleneck.__main__", "run_cprofile"),
    "GHSA torch._inductor": ("torch._inductor.codecache", "compile_file"),
    "GHSA torch._dynamo": ("torch._dynamo.guards", "GuardBuilder"),
    "GHSA numpy.f2py": ("numpy.f2py.crackfortran", "myeval"),
    "GHSA pydoc.locate": ("pydoc", "locate"),
    "GHSA builtins.__import__": ("builtins", "__import__"),
    "GHSA importlib via __builtin__": ("__builtin__", "__import__"),
    "GHSA idlelib": ("idlelib.pyshell", "ModifiedInterpreter"),
    "GHSA lib2to3": ("lib2to3.pgen2.pgen", "generate_grammar"),
    "GHSA code.InteractiveInterpreter": ("code", "InteractiveInterpreter"),
    "GHSA cProfile.run": ("cProfile", "run"),
    "GHSA profile.run": ("profile", "run"),
    "GHSA timeit.timeit": ("timeit", "timeit"),
    "GHSA venv.create": ("venv", "create"),
    "GHSA ensurepip": ("ensurepip", "_run_pip"),
    "GHSA distutils": ("distutils.file_util", "write_file"),
    "GHSA pty.spawn": ("pty", "spawn"),
    "GHSA runpy": ("runpy", "_run_code"),
    "GHSA ctypes": ("ctypes", "CDLL"),
    "GHSA shutil.rmtree": ("shutil", "rmtree"),
    "GHSA _posixsubprocess": ("_posixsubprocess", "fork_exec"),
    "GHSA doctest": ("doctest", "debug_script"),
    "GHSA trace": ("trace", "Trace"),
    "GHSA bdb": ("bdb", "Bdb"),
    "GHSA pdb": ("pdb", "Pdb"),
    "GHSA webbrowser": ("webbrowser", "open"),
    "GHSA _io.FileIO": ("_io", "FileIO"),
    "GHSA numpy.load": ("numpy", "load"),
    "GHSA torch.load": ("torch.serialization", "load"),
    "GHSA functools.partial": ("functools", "partial"),
    "GHSA builtins.getattr chain": ("builtins", "getattr"),
    "GHSA dotted getattr": ("builtins", "object.__subclasses__"),
    "GHSA ufunc reconstruct": ("numpy.core", "_ufunc_reconstruct"),
    "GHSA torch.jit": ("torch.jit", "load"),
    "GHSA torch.hub": ("torch.hub", "load"),
    "GHSA signal": ("signal", "pthread_kill"),
    "GHSA sys.modules": ("sys", "modules"),
    "GHSA os.environ": ("os", "environ"),
}


def advisory_fixtures() -> list[Fixture]:
    out: list[Fixture] = []
    for i, (label, (module, name)) in enumerate(ADVISORY_CALLABLES.items()):
        for proto, g in ((4, sglobal(module, name)), (0, tglobal(module, name))):
            head = b"\x80\x04" if proto == 4 else b""
            data = head + g + tup(s4("true")) + b"R."
            out.append(
                Fixture(f"advisory_{i:02d}_p{proto}.pkl", _write(data), "pickle", "refuse", DANGER, label)
            )
    # CVE-2025-10155: the same payload under extensions a scanner might treat as non-pickle
    evil0 = tglobal("os", "system") + b"(S'true'\ntR."
    evil4 = b"\x80\x04" + os_system_payload() + b"."
    for name, data in {
        "ext_model.bin": evil0,
        "ext_model.pt": evil0,
        "ext_weights.npy": evil0,
        "ext_weights.safetensors": evil4,
        "ext_model.json": evil4,
        "ext_model.ubj": evil4,
        "ext_model.txt": evil0,
        "ext_noext": evil4,
    }.items():
        out.append(Fixture(name, _write(data), "pickle", "refuse", frozenset(), "CVE-2025-10155"))
    # a pickle renamed .npy is still unpickled by np.load(allow_pickle=True)
    out.append(
        Fixture("ext_pickle_as.npy", _write(evil4), "npy", "refuse", DANGER, "np.load falls back to pickle")
    )
    return out


# --- loader-view disagreements -------------------------------------------------------------

P0_PAYLOAD = b"cos\nsystem\n(S'true'\ntR"  # protocol 0: import and call os.system, no STOP
ARCHIVE = frozenset(["invalid_archive"])


def _text_wrapper() -> bytes:
    """A protocol 0 joblib wrapper (OBJ without arguments, dict state, no alignment) of 1 byte."""
    dtype = b"cnumpy\ndtype\n(S'u1'\nI00\nI01\ntR"
    return (
        b"(cjoblib.numpy_pickle\nNumpyArrayWrapper\no(dS'shape'\n(I1\ntsS'dtype'\n"
        + dtype
        + b"sS'numpy_array_alignment_bytes'\nNsS'order'\nS'C'\nsS'subclass'\ncnumpy\nndarray\n"
        + b"sS'allow_mmap'\nI00\nsb"
    )


def _zlib_stored_utf8(payload: bytes) -> bytes:
    """A zlib stream of one stored deflate block whose every byte is valid UTF-8 (no NUL)."""
    for extra in range(100_000):
        body = payload.ljust(0x4020, b" ") + str(extra).encode()  # LEN needs 0x40 <= hi byte
        size = len(body)
        lo, hi = size & 0xFF, size >> 8
        if not (0x20 <= lo <= 0x3D and 0x40 <= hi <= 0x7F):
            continue  # LEN ascii, NLEN a two-byte UTF-8 sequence
        raw = b"\x78\x01\x01" + bytes([lo, hi, lo ^ 0xFF, hi ^ 0xFF]) + body
        raw += struct.pack(">I", zlib.adler32(body))
        if b"\x00" not in raw:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
            return raw
    raise AssertionError("no UTF-8 zlib stream found")


def _torch_tar(pickle_member: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for member, payload in (("storages", b"K\x00."), ("tensors", b"K\x00."), ("pickle", pickle_member)):
            info = tarfile.TarInfo(member)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def _two_directory_zip() -> bytes:
    """zipfile reads the benign data.pkl (it shifts offsets by the 'prepended' bytes it infers);
    torch's reader follows the end record to the first directory and the payload."""
    evil = EVIL_PICKLE
    good = b"\x80\x02C" + bytes([len(evil) - 6]) + b"\x00" * (len(evil) - 6) + b"0."
    assert len(good) == len(evil)

    def parts(members: dict[str, bytes]) -> tuple[bytes, bytes, bytes]:
        raw = _zip(members)
        end = raw.rfind(b"PK\x05\x06")
        size_cd, off_cd = struct.unpack("<II", raw[end + 12 : end + 20])
        return raw[:off_cd], raw[off_cd : off_cd + size_cd], raw[end:]

    evil_local, evil_cd, _ = parts({"archive/data.pkl": evil, "archive/version": b"3\n"})
    good_local, good_cd, good_end = parts({"archive/data.pkl": good, "archive/version": b"3\n"})
    end = bytearray(good_end)
    struct.pack_into("<II", end, 12, len(good_cd), len(evil_local))
    return evil_local + evil_cd + good_local + good_cd + bytes(end)


def _relocate_cd(cd: bytes, delta: int) -> bytes:
    """A central directory whose member offsets are moved by ``delta`` bytes."""
    out = bytearray(cd)
    pos = 0
    while pos < len(out):
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", out, pos + 28)
        (offset,) = struct.unpack_from("<I", out, pos + 42)
        struct.pack_into("<I", out, pos + 42, offset + delta)
        pos += 46 + name_len + extra_len + comment_len
    return bytes(out)


def _zip64_locator_zip(*, to_evil: bool) -> bytes:
    """A torch-style zip with zip64 end records (torch.save always writes them) and two central
    directories: zipfile reads the zip64 record right before the locator (the benign one), torch's
    reader (miniz) follows the locator's offset, here to the payload's directory."""
    evil = EVIL_PICKLE
    good = b"\x80\x02}q\x00."

    def parts(members: dict[str, bytes]) -> tuple[bytes, bytes, int]:
        raw = _zip(members)
        end = raw.rfind(b"PK\x05\x06")
        size_cd, off_cd = struct.unpack("<II", raw[end + 12 : end + 20])
        return raw[:off_cd], raw[off_cd : off_cd + size_cd], len(members)

    def zip64_end(count: int, size: int, offset: int) -> bytes:
        return b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 0x31E, 45, 0, 0, count, count, size, offset)

    good_local, good_cd, n_good = parts({"archive/data.pkl": good, "archive/version": b"3\n"})
    evil_local, evil_cd, n_evil = parts({"archive/data.pkl": evil, "archive/version": b"3\n"})
    body = good_local + evil_local
    evil_cd_at = len(body)
    body += _relocate_cd(evil_cd, len(good_local))
    evil_end_at = len(body)
    body += zip64_end(n_evil, len(evil_cd), evil_cd_at)
    good_cd_at = len(body)
    body += good_cd
    good_end_at = len(body)
    body += zip64_end(n_good, len(good_cd), good_cd_at)
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, evil_end_at if to_evil else good_end_at, 1)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, n_good, n_good, len(good_cd), good_cd_at, 0)
    return body + locator + end


def _zip64_extensible_zip() -> bytes:
    """The zip64 end record claims extensible data: zipfile still reads 56 bytes before the locator."""
    raw = bytearray(_zip64_locator_zip(to_evil=False))
    at = raw.rfind(b"PK\x06\x06")
    struct.pack_into("<Q", raw, at + 4, 60)
    return bytes(raw)


def _comment_end_record_zip(*, evil_inner: bool, trailing: bytes) -> bytes:
    """The first end record's comment holds a directory and a second end record (the one both
    zipfile and torch's reader use: the last)."""

    def parts(members: dict[str, bytes]) -> tuple[bytes, bytes]:
        raw = _zip(members)
        end = raw.rfind(b"PK\x05\x06")
        size_cd, off_cd = struct.unpack("<II", raw[end + 12 : end + 20])
        return raw[:off_cd], raw[off_cd : off_cd + size_cd]

    def end(size: int, offset: int, comment: int) -> bytes:
        return b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 2, 2, size, offset, comment)

    good_local, good_cd = parts({"archive/data.pkl": b"\x80\x02}q\x00.", "archive/version": b"3\n"})
    evil_local, evil_cd = parts({"archive/data.pkl": EVIL_PICKLE, "archive/version": b"3\n"})
    outer_cd, inner_cd = (good_cd, _relocate_cd(evil_cd, len(good_local)))
    if not evil_inner:
        outer_cd, inner_cd = inner_cd, outer_cd
    body = good_local + evil_local
    outer_at = len(body)
    body += outer_cd
    inner_at = len(body) + 22
    comment = inner_cd + end(len(inner_cd), inner_at, 0) + trailing
    return body + end(len(outer_cd), outer_at, len(comment)) + comment


def loader_view_fixtures() -> list[Fixture]:
    out: list[Fixture] = []
    for name in ("nostop.txt", "nostop.yaml", "nostop.csv", "nostop_noext"):
        data = P0_PAYLOAD + b"Z and then some text\n"
        out.append(
            Fixture(
                f"text_{name}",
                _write(data),
                "pickle",
                "refuse",
                DANGER,
                "payload runs before the parse error",
            )
        )
    out.append(
        Fixture(
            "text_joblib_view.txt",
            _write(_text_wrapper() + b"." + b"0" + P0_PAYLOAD + b"."),
            "joblib",
            "refuse",
            DANGER | LAYOUT,
            "pickle.load stops at the array byte, joblib.load skips it",
        )
    )
    out.append(
        Fixture(
            "text_joblib_view_invalid.txt",
            _write(_text_wrapper() + b"Z" + b"0" + P0_PAYLOAD + b"."),
            "joblib",
            "refuse",
            DANGER | LAYOUT,
            "pickle.load fails at the array byte",
        )
    )
    out.append(
        Fixture(
            "text_imports_real_module.txt",
            _write(b"cantigravity\nx\n"),
            "pickle",
            "refuse",
            DANGER,
            "import side effect",
        )
    )
    # joblib padding byte that pickle.load reads as GLOBAL: the padding holds os.system
    padding = b"os\nsystem\n(S'true'\ntR."
    data = (
        b"\x80\x04"
        + wrapper_newobj(tup(bint(1)), dtype_bytes("u1"))
        + b"c"
        + padding.ljust(0x63, b"\x00")
        + b"\x07."
    )
    out += [
        Fixture(
            "pad_byte_opcode.joblib", _write(data), "joblib", "refuse", DANGER, "pickle.load reads padding"
        )
    ]
    # array bytes that pickle.load reads as a BUILD onto a class memoized before the wrapper
    poly = b"h\x00" + b"N" + dct(is_relative_to=bint(1)) + b"\x86" + b"b."
    data = (
        b"\x80\x04"
        + sglobal(*PUREPATH)
        + b"\x94"
        + b"0"
        + wrapper_newobj(tup(bint(len(poly))), dtype_bytes("u1"), alignment=b"N")
        + poly
        + b"0N."
    )
    out.append(
        Fixture(
            "array_bytes_poison_memo.joblib",
            _write(data),
            "joblib",
            "refuse",
            POISON,
            "memo reaches the array bytes",
        )
    )
    out.append(
        Fixture(
            "zlib_utf8.csv",
            _write(_zlib_stored_utf8(P0_PAYLOAD + b".")),
            "joblib",
            "refuse",
            DANGER,
            "stored zlib block is UTF-8",
        )
    )
    out.append(
        Fixture("zlib_utf8.txt", _write(_zlib_stored_utf8(P0_PAYLOAD + b".")), "joblib", "refuse", DANGER)
    )
    for name in ("legacy_tar.pt", "legacy_tar.csv", "legacy_tar_noext"):
        out.append(
            Fixture(name, _write(_torch_tar(EVIL_PICKLE)), "torch", "refuse", ARCHIVE, "torch legacy tar")
        )
    out.append(
        Fixture(
            "two_directories.pt", _write(_two_directory_zip()), "torch", "refuse", ARCHIVE, "zipfile vs miniz"
        )
    )
    zf = zlib.compress(EVIL_PICKLE)
    out.append(
        Fixture(
            "zfile.txt",
            _write(b"ZF" + f"0x{len(EVIL_PICKLE):x}".ljust(19).encode() + zf),
            "joblib",
            "refuse",
            frozenset(["invalid_compressed"]),
            "joblib < 0.10 format",
        )
    )
    out.append(
        Fixture(
            "mark_flood.pkl",
            _write(b"\x80\x04" + b"(" * (1 << 20) + b"(."),
            "none",
            "refuse",
            frozenset(["invalid_pickle"]),
            "bounded memory",
        )
    )
    import gzip

    out.append(
        Fixture(
            "text_nostop.csv.gz",
            _write(gzip.compress(P0_PAYLOAD + b"ZZ")),
            "joblib",
            "refuse",
            DANGER,
            "gzip text",
        )
    )
    out.append(Fixture("benign_classes.csv.gz", _write(gzip.compress(b"cat\ndog\n")), "none", "pass"))
    # benign text that merely starts like a pickle: imports of modules that cannot exist
    for name, text in {
        "classes.txt": b"cat\ndog\nbird\n",
        "labels.csv": b"class\nlabel\n",
        "conda.yaml": b"channels:\n- conda-forge\ndependencies:\n- python=3.11\n",
        "requirements.txt": b"cloudpickle==3.0\nnumpy\n",
    }.items():
        out.append(Fixture(f"benign_{name}", _write(text), "none", "pass"))
    # zip64: torch.save always writes zip64 end records; miniz follows the locator's offset,
    # zipfile reads the record right before the locator
    out.append(
        Fixture(
            "zip64_locator_benign.pt",
            _write(_zip64_locator_zip(to_evil=False)),
            "torch",
            "pass",
            note="two directories, the locator points where zipfile reads",
        )
    )
    out.append(
        Fixture(
            "zip64_locator_elsewhere.pt",
            _write(_zip64_locator_zip(to_evil=True)),
            "torch",
            "refuse",
            frozenset(["invalid_archive"]),
            "torch follows the zip64 locator to the payload's directory",
        )
    )
    out.append(
        Fixture(
            "zip64_extensible.pt",
            _write(_zip64_extensible_zip()),
            "torch",
            "refuse",
            frozenset(["invalid_archive"]),
            "zip64 record size disagrees with where zipfile reads it",
        )
    )
    for trailing in (b"", b"X"):
        out.append(
            Fixture(
                f"comment_end_record_benign_{len(trailing)}.pt",
                _write(_comment_end_record_zip(evil_inner=False, trailing=trailing)),
                "torch",
                "pass",
                note="both readers take the last end record",
            )
        )
        out.append(
            Fixture(
                f"comment_end_record_evil_{len(trailing)}.pt",
                _write(_comment_end_record_zip(evil_inner=True, trailing=trailing)),
                "torch",
                "refuse",
                DANGER,
                "the last end record leads to the payload",
            )
        )
    # a compression method zipfile cannot read (torch's reader cannot either)
    raw = bytearray(_zip({"archive/data.pkl": b"\x80\x02}q\x00.", "archive/version": b"3\n"}))
    struct.pack_into("<H", raw, raw.index(b"PK\x01\x02") + 10, 99)
    out.append(Fixture("unsupported_method.pt", _write(bytes(raw)), "torch", "refuse", ARCHIVE, "method 99"))
    # joblib decides compression by prefix alone: ']\x00' is lzma whatever the dictionary size
    # that follows (4096 gives 5d 00 10 ...), and lz4 when the lz4 package is installed
    for dict_size in (4096, 1 << 16):
        packed = lzma.compress(
            b"\x80\x04" + os_system_payload() + b".",
            format=lzma.FORMAT_ALONE,
            filters=[{"id": lzma.FILTER_LZMA1, "dict_size": dict_size}],
        )
        for ext in ("txt", "joblib", "dat"):
            out.append(
                Fixture(
                    f"lzma_dict_{dict_size}.{ext}",
                    _write(packed),
                    "joblib",
                    "refuse",
                    DANGER,
                    "lzma header with another dictionary size",
                )
            )
    out.append(
        Fixture(
            "lz4_prefix.joblib",
            _write(b"\x04\x22\x4d\x18" + b"\x00" * 16),
            "joblib",
            "refuse",
            frozenset(["invalid_compressed"]),
            "LZ4 frame: joblib decompresses it when lz4 is installed",
        )
    )
    # a PROTO opcode changes the protocol for what follows only: Python 2 renames apply to the
    # imports made while it is below 3 (judged per import, not by the last PROTO)
    out.append(
        Fixture(
            "proto_switch_py2_import.pkl",
            _write(b"\x80\x02c__builtin__\nset\n)R0\x80\x04N."),
            "pickle",
            "pass",
            note="__builtin__.set read under protocol 2 is builtins.set",
        )
    )
    out.append(
        Fixture(
            "proto_switch_py2_import.txt",
            _write(b"K\xc2\x80\x02" + b"0" + b"ccommands\ngetoutput\n(S'true'\ntR" + b"0K\xc2\x80\x04."),
            "pickle",
            "refuse",
            DANGER,
            "UTF-8 text whose BININT1 argument hides a PROTO 2; commands is subprocess under protocol 2",
        )
    )
    return out


# --- skops files ----------------------------------------------------------------------------

SKOPS = frozenset(["invalid_skops"])
SKOPS_RESTRICTED = frozenset(["restricted_global"])


def sk(loader: str, module: str, cls: str, **fields: object) -> dict[str, object]:
    """One skops node."""
    return {"__class__": cls, "__module__": module, "__loader__": loader, **fields}


def sk_json(value: object) -> dict[str, object]:
    return sk("JsonNode", "builtins", "str", content=json.dumps(value), is_json=True)


def sk_tuple(*items: dict[str, object]) -> dict[str, object]:
    return sk("TupleNode", "builtins", "tuple", content=list(items))


def sk_dict(
    content: dict[str, dict[str, object]], key_type: tuple[str, str] = ("builtins", "str")
) -> dict[str, object]:
    key_types = sk("ListNode", "builtins", "list", content=[sk("TypeNode", *key_type)] * len(content))
    return sk("DictNode", "builtins", "dict", content=content, key_types=key_types)


def sk_model(**attrs: dict[str, object]) -> dict[str, object]:
    """A LogisticRegression ObjectNode (the root) whose attributes include ``attrs``."""
    content = sk_dict({"C": sk_json(1.0), **attrs})
    root = sk("ObjectNode", "sklearn.linear_model._logistic", "LogisticRegression", content=content)
    return {**root, "protocol": 2, "_skops_version": "0.16.0"}


def skops_bytes(
    schema: object, members: dict[str, bytes] | None = None, *, schema_text: bytes | None = None
) -> bytes:
    raw = schema_text if schema_text is not None else json.dumps(schema).encode()
    return _zip({**(members or {}), "schema.json": raw})


def _skops_dump(build: Callable[[], object]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import skops.io

        skops.io.dump(build(), path)

    return write


def _sklearn_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    x = np.column_stack([rng.normal(size=120), rng.normal(size=120), rng.integers(0, 3, 120)])
    return x, (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1)


def _skops_models() -> dict[str, Callable[[], object]]:
    def logreg() -> object:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=300).fit(*_sklearn_data())

    def pipeline() -> object:
        from sklearn.compose import ColumnTransformer
        from sklearn.ensemble import GradientBoostingClassifier
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        pre = ColumnTransformer(
            [("num", StandardScaler(), [0, 1]), ("cat", OneHotEncoder(handle_unknown="ignore"), [2])]
        )
        return Pipeline([("pre", pre), ("gb", GradientBoostingClassifier(n_estimators=3))]).fit(
            *_sklearn_data()
        )

    def hist_gb() -> object:
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=3).fit(*_sklearn_data())

    def forest() -> object:
        from sklearn.ensemble import RandomForestRegressor

        x, y = _sklearn_data()
        return RandomForestRegressor(n_estimators=3, random_state=0).fit(x, y * 1.5)

    def ufunc_and_sparse() -> object:
        import scipy.sparse
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer
        from sklearn.svm import SVC

        x, y = _sklearn_data()
        log = make_pipeline(FunctionTransformer(np.log1p), SVC()).fit(np.abs(x), y)
        return {"log": log, "svc": SVC().fit(scipy.sparse.csr_matrix(x), y)}

    return {
        "logreg": logreg,
        "pipeline": pipeline,
        "hist_gb": hist_gb,
        "forest": forest,
        "ufunc_and_sparse": ufunc_and_sparse,
    }


def skops_fixtures() -> list[Fixture]:
    out = [
        Fixture(f"benign_{name}.skops", _skops_dump(build), "skops", "pass", note="skops.io.dump")
        for name, build in _skops_models().items()
    ]

    def refuse(name: str, data: bytes, kinds: frozenset[str], note: str) -> None:
        out.append(Fixture(f"skops_{name}.skops", _write(data), "skops", "refuse", kinds, note))

    os_system = ("posix", "system")
    payloads = {
        # DictNode keys are rebuilt by calling their key type on the key text: eval(key)
        "eval_key_type": sk_model(
            x=sk_dict({"__import__('os').system('true')": sk_json(1)}, ("builtins", "eval"))
        ),
        "os_system_constructor": sk_model(
            x=sk("ConstructorFromReduceNode", *os_system, content=sk_tuple(sk_json("true")))
        ),
        "os_system_function": sk_model(x=sk("FunctionNode", "os", "system")),
        "popen_constructor": sk_model(
            x=sk("ConstructorFromReduceNode", "subprocess", "Popen", content=sk_tuple(sk_json("true")))
        ),
        "attrgetter": sk_model(
            x=sk("OperatorFuncNode", "operator", "attrgetter", attrs=sk_tuple(sk_json("__class__")))
        ),
        "numpy_load_function": sk_model(x=sk("FunctionNode", "numpy", "load")),
        "eval_as_list_type": sk_model(x=sk("ListNode", "builtins", "eval", content=[sk_json("1")])),
        "partial": sk_model(
            x=sk(
                "PartialNode",
                "functools",
                "partial",
                content={
                    "func": sk("FunctionNode", "builtins", "print"),
                    "args": sk_tuple(),
                    "kwds": sk_dict({}),
                    "namespace": sk_json(None),
                },
            )
        ),
        "bit_generator_name": sk_model(
            x=sk(
                "RandomGeneratorNode",
                "numpy.random._generator",
                "Generator",
                content={
                    "bit_generator": sk_dict({"bit_generator": sk_json("seed")}),
                    "seed_seq": sk_dict({}),
                },
            )
        ),
    }
    for name, schema in payloads.items():
        refuse(name, skops_bytes(schema), DANGER, "a skops node that imports a dangerous or unlisted name")
    unlisted = {
        # logging.FileHandler(path) creates the file; it is on no allowlist
        "unlisted_class": sk_model(
            x=sk("ConstructorFromReduceNode", "logging", "FileHandler", content=sk_tuple(sk_json("/tmp/x")))
        ),
        "unlisted_object": sk_model(x=sk("ObjectNode", "logging", "FileHandler", content=sk_dict({}))),
        "method_node": sk_model(
            x=sk(
                "MethodNode",
                "sklearn.linear_model._logistic",
                "LogisticRegression",
                content={
                    "func": "fit",
                    "obj": sk("ObjectNode", "sklearn.linear_model._logistic", "LogisticRegression"),
                },
            )
        ),
    }
    for name, schema in unlisted.items():
        refuse(name, skops_bytes(schema), DANGER, "a skops node that imports an unlisted name")
    # allowlisted boosters, but only as an ObjectNode: Booster(None, None, path) loads that file
    for module in ("xgboost.core", "lightgbm.basic"):
        schema = sk_model(
            x=sk(
                "ConstructorFromReduceNode",
                module,
                "Booster",
                content=sk_tuple(sk_json(None), sk_json(None), sk_json("/etc/passwd")),
            )
        )
        refuse(
            f"{module.split('.')[0]}_booster_constructor",
            skops_bytes(schema),
            SKOPS_RESTRICTED,
            "booster called",
        )
        schema = sk_model(x=sk("TypeNode", module, "Booster"))
        refuse(
            f"{module.split('.')[0]}_booster_type", skops_bytes(schema), SKOPS_RESTRICTED, "booster handed on"
        )
    # members that are not what the schema references
    array = sk("NdArrayNode", "numpy", "ndarray", type="numpy", file="1.npy")
    numeric = io.BytesIO()
    np.save(numeric, np.arange(3.0))
    object_npy = npy_bytes("'|O'", (1,), EVIL_PICKLE)
    refuse(
        "object_npy_member",
        skops_bytes(sk_model(coef_=array), {"1.npy": object_npy}),
        frozenset(["object_array"]),
        "an object array member (its pickle holds a payload)",
    )
    refuse(
        "pickle_bytes_member",
        skops_bytes(sk_model(x=sk("BytesNode", "builtins", "bytes", file="1.bin")), {"1.bin": EVIL_PICKLE}),
        SKOPS,
        "a BytesNode member that is a pickle",
    )
    refuse(
        "unreferenced_pickle_member",
        skops_bytes(sk_model(coef_=array), {"1.npy": numeric.getvalue(), "data.pkl": EVIL_PICKLE}),
        SKOPS,
        "a member the schema does not reference",
    )
    refuse("missing_member", skops_bytes(sk_model(coef_=array)), SKOPS, "a referenced member is missing")
    refuse(
        "array_member_is_pickle",
        skops_bytes(sk_model(coef_=array), {"1.npy": EVIL_PICKLE}),
        SKOPS,
        "an array member that is a pickle",
    )
    booster = sk(
        "ObjectNode",
        "xgboost.core",
        "Booster",
        content=sk_dict({"handle": sk("BytearrayNode", "builtins", "bytearray", file="b.bin")}),
    )
    refuse(
        "xgboost_handle_not_ubjson",
        skops_bytes(sk_model(x=booster), {"b.bin": b"binf" + b"\x00" * 64}),
        SKOPS,
        "XGBoost booster bytes that are not UBJSON",
    )
    sparse = sk("SparseMatrixNode", "scipy.sparse._csr", "csr_matrix", type="scipy", file="m.npz")
    refuse(
        "sparse_object_member",
        skops_bytes(
            sk_model(x=sparse),
            {
                "m.npz": _zip(
                    {"format.npy": npy_bytes("'<U3'", (), "csr".encode("utf-32-le")), "data.npy": object_npy}
                )
            },
        ),
        frozenset(["object_array"]),
        "a sparse matrix .npz with an object array",
    )
    # schemas read differently, or past the limits
    deep: dict[str, object] = sk_json(1)
    for _ in range(400):
        deep = sk("ListNode", "builtins", "list", content=[deep])
    refuse("deep_schema", skops_bytes(sk_model(x=deep)), SKOPS, "nested past the depth limit")
    refuse(
        "very_deep_schema",
        skops_bytes(None, schema_text=b"[" * 100_000 + b"]" * 100_000),
        SKOPS,
        "nested past the JSON parser",
    )
    refuse(
        "duplicate_json_key",
        skops_bytes(
            None,
            schema_text=json.dumps(sk_model()).encode()[:-1]
            + b', "__module__": "os", "__class__": "system", "__loader__": "FunctionNode"}',
        ),
        SKOPS,
        "json.loads keeps the last of repeated keys",
    )
    refuse(
        "protocol_1", skops_bytes({**sk_model(), "protocol": 1}), SKOPS, "an older protocol's node classes"
    )
    refuse(
        "cached_node",
        skops_bytes(sk_model(x=sk("CachedNode", "builtins", "str", __id__=1))),
        SKOPS,
        "a node kind skops does not write",
    )
    refuse(
        "extra_key",
        skops_bytes(sk_model(x={**sk_json(1), "file": "x.npy"})),
        SKOPS,
        "a key the node kind does not have",
    )
    refuse(
        "utf16_schema",
        skops_bytes(None, schema_text=json.dumps(sk_model()).encode("utf-16")),
        SKOPS,
        "json.loads guesses the encoding of bytes",
    )
    benign_schema = json.dumps(sk_model()).encode()
    evil_schema = json.dumps(sk_model(x=sk("FunctionNode", "os", "system"))).encode()
    two = io.BytesIO()
    with zipfile.ZipFile(two, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the repeated name
        zf.writestr("schema.json", benign_schema)
        zf.writestr("schema.json", evil_schema)
    refuse("duplicate_schema_member", two.getvalue(), ARCHIVE, "zipfile reads the last of repeated names")
    # a benign skops archive prepended to a hostile one: the file starts like the benign archive,
    # zipfile (and so skops) reads the directory of the last one, shifted by the prepended bytes
    refuse(
        "prepended_archive",
        skops_bytes(sk_model()) + skops_bytes(sk_model(x=sk("FunctionNode", "os", "system"))),
        ARCHIVE,
        "bytes before the archive shift every member offset",
    )
    refuse("not_a_zip", EVIL_PICKLE, SKOPS, "a .skops file that is a pickle")
    return out


# --- benign models that must keep passing ---------------------------------------------------


def benign_fixtures() -> list[Fixture]:
    out: list[Fixture] = []

    def sklearn_model() -> object:
        from sklearn.ensemble import RandomForestClassifier

        rng = np.random.default_rng(0)
        x = rng.normal(size=(60, 3))
        return RandomForestClassifier(n_estimators=3, random_state=0).fit(x, (x[:, 0] > 0).astype(int))

    def joblib_dump(compress: object) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            import joblib

            joblib.dump(
                {"model": sklearn_model(), "s": np.array(["ab", "c"]), "b": np.array([b"x"])},
                path,
                compress=compress,
            )

        return write

    out.append(Fixture("benign_forest.joblib", joblib_dump(0), "joblib", "pass"))
    out.append(Fixture("benign_forest_zlib.joblib", joblib_dump(3), "joblib", "pass"))
    out.append(
        Fixture(
            "benign_forest.pkl",
            lambda p: p.write_bytes(pickle.dumps(sklearn_model(), protocol=2)),
            "pickle",
            "pass",
        )
    )

    def torch_state(path: Path) -> None:
        import torch

        torch.save(torch.nn.Linear(3, 2).state_dict(), path)

    out.append(Fixture("benign_state.pt", torch_state, "torch", "pass"))

    def xgb_model(path: Path) -> None:
        import xgboost as xgb

        x = np.random.default_rng(1).random((50, 3))
        booster = xgb.train({"max_depth": 2}, xgb.DMatrix(x, label=(x[:, 0] > 0.5).astype(int)), 3)
        booster.save_model(str(path))

    def lgb_model(path: Path) -> None:
        import lightgbm as lgb

        x = np.random.default_rng(2).random((80, 3))
        ds = lgb.Dataset(x, label=(x[:, 0] > 0.5).astype(int))
        lgb.train({"verbose": -1, "num_leaves": 4}, ds, 3).save_model(str(path))

    out.append(Fixture("benign_xgb.ubj", xgb_model, "none", "pass", note="XGBoost native UBJSON"))
    out.append(Fixture("benign_xgb.json", xgb_model, "none", "pass"))
    out.append(Fixture("benign_lgb.txt", lgb_model, "none", "pass", note="LightGBM text"))
    out.append(Fixture("benign_lgb.model", lgb_model, "none", "pass", note="LightGBM text, other extension"))
    return out


def all_fixtures() -> list[Fixture]:
    return (
        joblib_fixtures()
        + numpy_fixtures()
        + poisoning_fixtures()
        + advisory_fixtures()
        + loader_view_fixtures()
        + skops_fixtures()
        + benign_fixtures()
    )
