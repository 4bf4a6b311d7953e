"""Tests for airflow_mlops.security.scanning.formats: judging pickle walks, scanning pickle streams
(concatenated, legacy torch, joblib arrays, text that starts like a pickle), the safetensors
header check, ``.npy`` headers as numpy reads them, XGBoost's UBJSON, and the content sniffers.

Every malicious payload is built as bytes (or pickled from an object whose ``__reduce__`` names
the callable) and only scanned: nothing here unpickles or loads it.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from scan_bypass_corpus import (
    EVIL_PICKLE,
    computed_module_payload,
    npy_bytes,
    os_system_payload,
    s4,
    sglobal,
    tglobal,
    tup,
)

from airflow_mlops.security.scanning.formats import (
    Hit,
    check_safetensors,
    has_pickle_magic,
    is_utf8_bytes,
    is_utf8_text,
    judge_walk,
    looks_like_safetensors,
    npy_dtype,
    scan_pickle_stream,
    starts_like_pickle,
    ubjson_problem,
)
from airflow_mlops.security.scanning.report import FindingKind
from airflow_mlops.security.scanning.walker import TORCH_LEGACY_MAGIC, GlobalRef, PickleWalk, walk_bytes
from tests.unit.security.scanning.payloads import _SystemCall

K = FindingKind
NONE: frozenset[str] = frozenset()


def _scan(data: bytes, allowed: frozenset[str] = NONE, **kwargs: object) -> list[Hit]:
    return scan_pickle_stream(io.BytesIO(data), len(data), "model.pkl: ", allowed, **kwargs)  # type: ignore[arg-type]


def _kinds(hits: list[Hit]) -> list[str]:
    return [h.kind for h in hits]


# --- scan_pickle_stream / judge_walk: pickles ------------------------------------------------


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_pickle_of_plain_values_has_no_findings(protocol: int) -> None:
    data = pickle.dumps({"weights": [1.5, -2.0], "name": "m", "shape": (2, 3), "ok": True}, protocol=protocol)
    assert _scan(data) == []


@pytest.mark.parametrize(
    ("data", "opcode", "offset"),
    [
        (b"\x80\x02" + os_system_payload(proto4=False) + b".", "GLOBAL", 2),
        (b"\x80\x04" + os_system_payload() + b".", "STACK_GLOBAL", 2 + len(s4("os") + s4("system"))),
        (b"(S'true'\nios\nsystem\n.", "INST", len(b"(S'true'\n")),
        (b"\x80\x02(" + tglobal("os", "system") + b"S'true'\no.", "GLOBAL", 3),
    ],
    ids=["global", "stack_global", "inst", "obj"],
)
def test_os_system_is_a_dangerous_global_at_the_byte_it_is_imported(
    data: bytes, opcode: str, offset: int
) -> None:
    hits = _scan(data)
    assert [(h.kind, h.symbol, h.offset) for h in hits] == [(K.DANGEROUS_GLOBAL, "os.system", offset)]
    assert hits[0].detail.startswith(
        f"model.pkl: imports os.system via {opcode} at byte {offset} of the file"
    )


def test_a_pickled_reduce_payload_is_refused() -> None:
    data = pickle.dumps(_SystemCall("true"), protocol=4)  # pickling runs nothing
    hits = _scan(data)
    assert [h.kind for h in hits] == [K.DANGEROUS_GLOBAL]
    assert hits[0].symbol in ("posix.system", "nt.system", "os.system")


def test_a_dangerous_global_stays_refused_even_when_allowed() -> None:
    hits = _scan(EVIL_PICKLE, frozenset(["os.system", "os.*"]))
    assert _kinds(hits) == [K.DANGEROUS_GLOBAL]
    assert "dangerous globals are always refused" in hits[0].detail


def test_an_unknown_global_is_reported_until_allowed_by_name_or_module_wildcard() -> None:
    data = b"\x80\x04" + sglobal("mypkg.models", "Net") + b")\x81."
    hits = _scan(data)
    assert [(h.kind, h.symbol) for h in hits] == [(K.UNKNOWN_GLOBAL, "mypkg.models.Net")]
    assert "not on the allowlist" in hits[0].detail
    assert _scan(data, frozenset(["mypkg.models.Net"])) == []
    assert _scan(data, frozenset(["mypkg.*"])) == []
    assert _kinds(_scan(data, frozenset(["otherpkg.*", "mypkg.models.Other"]))) == [K.UNKNOWN_GLOBAL]


@pytest.mark.parametrize("name", ["ctypes.CDLL", "shutil.rmtree", "pd.read_pickle", "os.remove"])
def test_a_module_wildcard_never_allows_attribute_traversal_out_of_the_module(name: str) -> None:
    """From protocol 4 the unpickler resolves a dotted name with getattr step by step, so with
    ``mypkg.*`` allowed, ``mypkg`` + ``ctypes.CDLL`` would load ``ctypes.CDLL`` through the module
    ``mypkg`` imported (a library load: code execution). Only an exact entry allows a dotted name."""
    data = b"\x80\x04" + sglobal("mypkg", name) + tup(s4("/tmp/x")) + b"R."
    hits = _scan(data, frozenset(["mypkg.*"]))
    assert [(h.kind, h.symbol) for h in hits] == [(K.UNKNOWN_GLOBAL, f"mypkg.{name}")]
    assert _scan(data, frozenset([f"mypkg.{name}"])) == []  # the caller can still allow it by name


def test_a_nested_class_under_a_module_wildcard_needs_its_exact_name() -> None:
    data = b"\x80\x04" + sglobal("mypkg.models", "Net.Config") + b")\x81."
    assert _kinds(_scan(data, frozenset(["mypkg.*"]))) == [K.UNKNOWN_GLOBAL]
    assert _scan(data, frozenset(["mypkg.models.Net.Config"])) == []
    assert _scan(b"\x80\x04" + sglobal("mypkg.models", "Net") + b")\x81.", frozenset(["mypkg.*"])) == []


def test_a_builtin_allowlisted_global_has_no_finding() -> None:
    data = b"\x80\x04" + sglobal("collections", "OrderedDict") + b")R."
    assert _scan(data) == []


def test_python2_names_are_judged_as_the_unpickler_renames_them() -> None:
    """Below protocol 3 ``__builtin__.eval`` is imported as ``builtins.eval``: the finding names both."""
    hits = _scan(b"\x80\x02c__builtin__\neval\n(S'1'\ntR.")
    assert [(h.kind, h.symbol) for h in hits] == [(K.DANGEROUS_GLOBAL, "builtins.eval")]
    assert "__builtin__.eval (= builtins.eval)" in hits[0].detail


def test_a_global_imported_twice_is_reported_once() -> None:
    data = b"\x80\x04" + sglobal("os", "system") + b"0" + sglobal("os", "system") + b"."
    assert _kinds(_scan(data)) == [K.DANGEROUS_GLOBAL]


def test_an_import_that_needs_execution_to_name_is_unresolved() -> None:
    # STACK_GLOBAL of (getattr(object, "x"), "y"): the module is the result of a call
    data = computed_module_payload()
    hits = _scan(data)
    assert K.UNRESOLVED_GLOBAL in _kinds(hits)
    unresolved = next(h for h in hits if h.kind == K.UNRESOLVED_GLOBAL)
    assert unresolved.offset == len(data) - 2 and "1 STACK_GLOBAL import(s)" in unresolved.detail


def test_an_import_through_the_copyreg_extension_registry_is_reported() -> None:
    hits = _scan(b"\x80\x04\x82\x01.")  # EXT1 1
    assert [(h.kind, h.offset) for h in hits] == [(K.EXTENSION_GLOBAL, 2)]


def test_state_set_on_an_imported_class_is_global_mutation() -> None:
    data = b"\x80\x04" + sglobal("collections", "OrderedDict") + b"}" + s4("x") + s4("y") + b"sb."
    hits = _scan(data)
    assert [(h.kind, h.symbol) for h in hits] == [(K.GLOBAL_MUTATION, "collections.OrderedDict")]
    assert "BUILD" in hits[0].detail and "class or module poisoning" in hits[0].detail


def test_an_xgboost_booster_called_with_arguments_is_restricted() -> None:
    """Its constructor loads the model file its arguments name; only ``cls.__new__`` then state is allowed."""
    data = b"\x80\x04" + sglobal("xgboost.core", "Booster") + tup(b"}", b"N", s4("/etc/passwd")) + b"R."
    hits = _scan(data)
    assert [(h.kind, h.symbol) for h in hits] == [(K.RESTRICTED_GLOBAL, "xgboost.core.Booster")]
    assert "cls.__new__ then __setstate__" in hits[0].detail


def test_call_opcodes_without_any_import_are_an_invalid_pickle() -> None:
    hits = _scan(b"\x80\x04N)R.")
    assert [(h.kind, h.offset) for h in hits] == [(K.INVALID_PICKLE, 0)]
    assert "imports no callable" in hits[0].detail


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "stream ended before the STOP opcode"),
        (pickle.dumps({"a": "b" * 50}, protocol=4)[:-5], "stream ended inside an opcode argument"),
        (b"\x80\x04" + sglobal("os", "system")[:-1], "stream ended before the STOP opcode"),
        (b"\x80\x04\xff.", "invalid opcode 0xff"),
        (b"\x80\x04N\x85R.", "more stack items"),
    ],
    ids=["empty", "truncated-argument", "no-stop", "bad-opcode", "stack-underflow"],
)
def test_malformed_pickles_are_a_finding_not_a_crash(data: bytes, reason: str) -> None:
    hits = _scan(data)
    assert hits and hits[-1].kind == K.INVALID_PICKLE
    assert "cannot be parsed as a pickle" in hits[-1].detail and reason in hits[-1].detail
    assert hits[-1].offset is not None and 0 <= hits[-1].offset <= len(data)


def test_a_payload_in_a_second_concatenated_pickle_is_found() -> None:
    first = pickle.dumps([1, 2], protocol=4)
    hits = _scan(first + EVIL_PICKLE)
    assert [(h.kind, h.symbol) for h in hits] == [(K.DANGEROUS_GLOBAL, "os.system")]
    assert f"(pickle #2 at byte {len(first)})" in hits[0].detail
    assert hits[0].offset == len(first) + 2


def test_bytes_after_a_pickle_must_be_a_pickle_too() -> None:
    first = pickle.dumps(1, protocol=4)
    hits = _scan(first + b"\xff\xfe")
    assert [(h.kind, h.offset) for h in hits] == [(K.INVALID_PICKLE, len(first))]


def _legacy_torch(fourth: bytes | None = None, tail: bytes = b"\xff\xfe raw storage bytes") -> bytes:
    parts = [pickle.dumps(v, protocol=2) for v in (TORCH_LEGACY_MAGIC, 1001, {"little_endian": True})]
    parts.append(fourth if fourth is not None else pickle.dumps({"w": 1}, protocol=2))
    parts.append(pickle.dumps(["0"], protocol=2))
    return b"".join(parts) + tail


def test_the_raw_storage_after_five_legacy_torch_pickles_is_not_read_as_pickles() -> None:
    assert _scan(_legacy_torch()) == []
    # the same layout without the magic number: the trailing bytes must parse, and do not
    plain = _legacy_torch().replace(pickle.dumps(TORCH_LEGACY_MAGIC, protocol=2), pickle.dumps(5, protocol=2))
    assert _kinds(_scan(plain)) == [K.INVALID_PICKLE]


def test_a_payload_in_a_legacy_torch_pickle_is_found() -> None:
    hits = _scan(_legacy_torch(fourth=EVIL_PICKLE))
    assert [(h.kind, h.symbol) for h in hits] == [(K.DANGEROUS_GLOBAL, "os.system")]
    assert "(pickle #4 at byte" in hits[0].detail


def test_the_stream_name_and_base_offset_appear_in_findings() -> None:
    hits = scan_pickle_stream(
        io.BytesIO(EVIL_PICKLE), len(EVIL_PICKLE), "m.pt: ", NONE, stream="data.pkl member", base=1000
    )
    assert hits[0].offset == 1002 and "at byte 1002 of the data.pkl member" in hits[0].detail
    assert hits[0].detail.startswith("m.pt: imports")


def test_the_size_bounds_what_is_read_from_the_stream() -> None:
    """Bytes past ``size`` (the member's end) are not part of the pickle."""
    data = pickle.dumps(1, protocol=4)
    hits = scan_pickle_stream(io.BytesIO(data + EVIL_PICKLE), len(data), "", NONE)
    assert hits == []


# --- joblib --------------------------------------------------------------------------------


def _joblib_bytes(value: object) -> bytes:
    joblib = pytest.importorskip("joblib")
    buf = io.BytesIO()
    joblib.dump(value, buf)
    return buf.getvalue()


def test_joblib_array_bytes_are_skipped_as_joblib_reads_them() -> None:
    data = _joblib_bytes({"a": np.arange(1000.0), "b": np.ones((3, 4), dtype=np.int8)})
    assert _scan(data) == []
    # pickle.load would read the raw array bytes as opcodes
    assert _kinds(_scan(data, joblib=False)) == [K.INVALID_PICKLE]


def test_a_payload_after_joblib_array_bytes_is_found() -> None:
    data = _joblib_bytes({"a": np.arange(1000.0), "z": _SystemCall("true")})
    hits = _scan(data)
    assert [h.kind for h in hits] == [K.DANGEROUS_GLOBAL]
    assert hits[0].offset is not None and hits[0].offset > 8000  # after the 8000 array bytes


def test_a_payload_in_a_joblib_object_array_is_found_in_its_nested_pickle() -> None:
    data = _joblib_bytes({"a": np.array([1, _SystemCall("true")], dtype=object)})
    hits = _scan(data)
    assert [h.kind for h in hits] == [K.DANGEROUS_GLOBAL]
    assert "(nested pickle of a joblib object array at byte" in hits[0].detail


def test_judge_walk_reports_nested_and_polyglot_walks() -> None:
    evil = walk_bytes(EVIL_PICKLE, base=500)
    inert = walk_bytes(b"\x80\x04N.", base=900)
    walk = PickleWalk(start=0, nested=[evil], polyglot=[inert])

    hits = judge_walk(walk, "f: ", NONE, "file")

    assert [(h.kind, h.offset) for h in hits] == [(K.DANGEROUS_GLOBAL, 502), (K.INVALID_PICKLE, 900)]
    assert "(nested pickle of a joblib object array at byte 500)" in hits[0].detail
    assert "joblib.load and pickle.load" in hits[1].detail  # array bytes that parse as opcodes


def test_judge_walk_of_a_clean_walk_is_empty_and_a_layout_error_is_ambiguous() -> None:
    assert judge_walk(PickleWalk(start=0), "", NONE, "file") == []
    broken = PickleWalk(start=0, error="cannot locate", error_offset=7, layout_error=True)
    assert [(h.kind, h.offset) for h in judge_walk(broken, "", NONE, "file")] == [(K.AMBIGUOUS_LAYOUT, 7)]


def test_judge_walk_reports_a_dangerous_global_whatever_the_allowlist() -> None:
    walk = PickleWalk(start=0, globals=[GlobalRef("subprocess", "Popen", "GLOBAL", 3, protocol=4)])
    assert _kinds(judge_walk(walk, "", frozenset(["subprocess.*"]), "file")) == [K.DANGEROUS_GLOBAL]


# --- text that starts like a pickle ------------------------------------------------------------


def test_text_whose_import_cannot_exist_is_not_a_finding() -> None:
    """``classes.txt`` holding ``cat\\ndog\\n`` reads as GLOBAL at.dog; no module ``at`` exists."""
    data = b"cat\ndog\n."
    assert _scan(data, text=True) == []
    assert [(h.kind, h.symbol) for h in _scan(data)] == [(K.UNKNOWN_GLOBAL, "at.dog")]  # not text: reported


def test_text_importing_a_dangerous_or_existing_module_is_still_reported() -> None:
    assert [h.symbol for h in _scan(b"cos\nsystem\n.", text=True)] == ["os.system"]
    # json exists: an import of it is reported even in a text file
    assert [(h.kind, h.symbol) for h in _scan(b"cjson\nJSONDecoder\n.", text=True)] == [
        (K.UNKNOWN_GLOBAL, "json.JSONDecoder")
    ]
    # not a dotted identifier: the import can never succeed
    assert _scan(b"cnot a module\nx\n.", text=True) == []


# --- safetensors ---------------------------------------------------------------------------


def _st(header: object, data: bytes = b"") -> bytes:
    raw = header.encode() if isinstance(header, str) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _check(blob: bytes) -> list[str]:
    return check_safetensors(io.BytesIO(blob), len(blob))


def _f32(name: str, n: int, begin: int) -> dict[str, object]:
    return {name: {"dtype": "F32", "shape": [n], "data_offsets": [begin, begin + 4 * n]}}


def test_a_real_safetensors_file_is_valid_and_recognised() -> None:
    from safetensors.numpy import save

    blob = save({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(2, dtype=np.int8)})
    assert _check(blob) == []
    assert looks_like_safetensors(blob[:16], len(blob))


def test_a_hand_built_header_with_metadata_is_valid() -> None:
    blob = _st({"__metadata__": {"format": "np"}, **_f32("a", 2, 0), **_f32("b", 1, 8)}, b"\x00" * 12)
    assert _check(blob) == []


@pytest.mark.parametrize(
    ("blob", "problem"),
    [
        (b"\x01\x02", "too short for the 8-byte header length"),
        (struct.pack("<Q", 10**9) + b"{}", "exceeds the 100000000-byte limit"),
        (struct.pack("<Q", 50) + b"{}", "runs past the end of the 10-byte file"),
        (struct.pack("<Q", 2) + b"\xff\xfe", "not valid UTF-8 JSON"),
        (_st("[1]"), "must be a JSON object, got list"),
        (_st('{"a": {}, "a": {}}'), "repeats key(s) ['a']"),
        (_st({"__metadata__": {"k": 1}}), "__metadata__ must map strings to strings"),
        (_st({"t": "x"}), "entry must be an object"),
        (_st({"t": {"dtype": "PICKLE", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8), "unknown dtype"),
        (_st({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8), "non-negative"),
        (
            _st({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, True]}}, b"\0" * 8),
            "two non-negative",
        ),
        (_st(_f32("t", 4, 0), b"\0" * 8), "fall outside the 8-byte data region"),
        (_st({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8), "needs 12 bytes"),
        (_st({**_f32("t", 2, 0), **_f32("u", 2, 4)}, b"\0" * 12), "overlap another tensor"),
        (_st(_f32("t", 2, 4), b"\0" * 12), "unexplained gap of 4 bytes"),
        (_st(_f32("t", 2, 0), b"\0" * 8 + EVIL_PICKLE), "trailing bytes after the last tensor"),
    ],
    ids=[
        "short",
        "huge-header",
        "header-past-end",
        "not-utf8",
        "not-object",
        "repeated-key",
        "metadata",
        "entry",
        "dtype",
        "shape",
        "bool-offset",
        "outside",
        "size",
        "overlap",
        "gap",
        "trailing",
    ],
)
def test_safetensors_header_problems(blob: bytes, problem: str) -> None:
    problems = _check(blob)
    assert any(problem in p for p in problems), problems


def test_a_safetensors_header_check_reads_only_the_header() -> None:
    blob = _st(_f32("t", 2, 0), b"\x00" * 8)
    fh = io.BytesIO(blob)
    assert check_safetensors(fh, len(blob)) == []
    assert fh.tell() == len(blob) - 8  # the 8 data bytes were never read


def test_looks_like_safetensors_needs_a_plausible_length_and_a_brace() -> None:
    blob = _st({})
    assert looks_like_safetensors(blob[:16], len(blob))
    assert not looks_like_safetensors(blob[:8], len(blob))  # too short to tell
    assert not looks_like_safetensors(struct.pack("<Q", 1000) + b"{", 20)  # length past the end
    assert not looks_like_safetensors(EVIL_PICKLE[:16], 100)


# --- content sniffers ----------------------------------------------------------------------


def test_has_pickle_magic_is_the_proto_opcode_of_protocols_2_to_5() -> None:
    for protocol in range(2, 6):
        assert has_pickle_magic(bytes([0x80, protocol]))
    for head in (b"\x80\x01", b"\x80\x06", b"\x80", b"", b"(dp0"):
        assert not has_pickle_magic(head)


def test_is_utf8_text_streams_the_whole_file(tmp_path: Path) -> None:
    cases = {
        "a.txt": "héllo\n".encode(),
        "empty.txt": b"",
        "nul.bin": b"ab\x00c",
        "bad.bin": b"\xff\xfe",
        "cut.txt": "é".encode()[:1],  # a truncated multi-byte character at the end of the file
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    assert {n: is_utf8_text(tmp_path / n) for n in cases} == {
        "a.txt": True,
        "empty.txt": True,
        "nul.bin": False,
        "bad.bin": False,
        "cut.txt": False,
    }


def test_is_utf8_bytes_accepts_a_head_cut_inside_a_character() -> None:
    assert is_utf8_bytes("é".encode()[:1])  # a head: the character may continue after it
    assert is_utf8_bytes("naïve".encode())
    assert not is_utf8_bytes(b"a\x00b") and not is_utf8_bytes(b"\xff")


def test_starts_like_pickle(tmp_path: Path) -> None:
    cases = {
        "pickle.bin": pickle.dumps([1, 2], protocol=4),
        "imports_then_garbage.bin": b"cos\nsystem\n(S'x'\ntR" + b"\xff" * 5,
        "random.bin": b"\xff\xfe\xfd",
        "zeros.bin": b"\x00\x01\x02",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    assert {n: starts_like_pickle(tmp_path / n, len(d)) for n, d in cases.items()} == {
        "pickle.bin": True,
        "imports_then_garbage.bin": True,  # the unpickler runs os.system before it hits the garbage
        "random.bin": False,
        "zeros.bin": False,
    }


# --- .npy headers --------------------------------------------------------------------------


def _np_save(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def test_npy_dtype_reads_what_numpy_wrote() -> None:
    data = _np_save(np.arange(3.0))
    dtype, used, problem = npy_dtype(io.BytesIO(data))
    assert problem is None and dtype == np.dtype("float64") and not dtype.hasobject
    assert used == len(data) - 24  # the header only: the 3 float64 values are not read


@pytest.mark.parametrize(
    "data",
    [
        _np_save(np.array([1, "a", None], dtype=object)),
        npy_bytes("'object'", (1,), b""),
        npy_bytes("[('a', 'O')]", (1,), b""),
        npy_bytes("[('a', '<f8'), ('b', [('c', '|O')])]", (1,), b""),
    ],
    ids=["O", "object", "structured", "nested-structured"],
)
def test_npy_dtype_sees_objects_however_the_header_spells_them(data: bytes) -> None:
    dtype, _used, problem = npy_dtype(io.BytesIO(data))
    assert problem is None and dtype.hasobject


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"NOTNPY", "reading magic string"),
        (b"\x93NUMPY\x09\x00\x10\x00", "format version"),
        (b"\x93NUMPY\x01\x00\xff\xff{", "expected 65535 bytes"),
        (b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 30) + b"{", "more than the scanner's"),
        (npy_bytes("'<f8'", (1,), b"")[:-20], "expected"),
        (npy_bytes("__import__('os')", (1,), b""), ""),
        (b"\x93NUMPY\x01\x00" + struct.pack("<H", 20) + b"{'descr': __import__", ""),
    ],
    ids=["magic", "version", "truncated", "forged-length", "cut-header", "call", "unclosed-bracket"],
)
def test_npy_headers_numpy_refuses_are_a_problem_not_a_crash(data: bytes, reason: str) -> None:
    dtype, used, problem = npy_dtype(io.BytesIO(data))
    assert dtype is None and problem is not None
    assert problem.startswith("numpy refuses the .npy header: ") and reason in problem
    assert "\n" not in problem and used <= len(data)


# --- UBJSON --------------------------------------------------------------------------------


def test_an_xgboost_ubjson_model_is_well_formed_and_any_cut_or_extra_byte_is_not() -> None:
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(x, label=(x[:, 0] > 0).astype(int)), 2)
    raw = bytes(booster.save_raw("ubj"))

    assert ubjson_problem(raw) is None
    assert ubjson_problem(memoryview(raw)) is None
    assert "truncated" in (ubjson_problem(raw[:-1]) or "")
    assert ubjson_problem(raw + b"Z") == "1 trailing bytes after the top-level value"


@pytest.mark.parametrize(
    "value",
    [b"{}", b"[]", b"{i\x01aZ}", b"[$i#i\x03\x01\x02\x03", b"[SU\x02ab]", b"[{U\x01kT}[]]", b"[#U\x02TF"],
)
def test_well_formed_ubjson(value: bytes) -> None:
    assert ubjson_problem(value) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (b"", "truncated"),
        (b"i\x01", "not an object or array"),
        (b"[$i#i\x05\x01\x02", "container count 5 exceeds the 2 bytes left"),
        (b"[#i\x7f", "container count 127 exceeds"),
        (b"[" * 200, "nesting deeper than 128"),
        (b"{i\x02\xff\xfeZ}", "is not UTF-8"),
        (b"[Q]", "unknown marker b'Q'"),
        (b"[$Q#i\x01Z", "unsupported container element type"),
        (b"[$i]", "typed container without a count"),
        (b"[#i\xffZ", "negative length"),
        (b"[I\x00]", "truncated"),
        (b"[SU\xff" + b"a" * 4 + b"]", "truncated"),
    ],
)
def test_malformed_ubjson_is_described(value: bytes, problem: str) -> None:
    assert problem in (ubjson_problem(value) or "")
