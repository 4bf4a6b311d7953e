"""Tests for airflow_mlops.security.scanning.walker: walking pickle opcodes without executing them.
What each import resolves to however its operands reach the stack, what cannot be resolved, the
calls and mutations seen, malformed and truncated streams, the bounded reader (:class:`Source`),
the scan's limits, and joblib's raw array bytes. Judging the walks is test_formats.py.

Payloads are bytes built opcode by opcode; they are only walked, never unpickled.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path

import pytest
from scan_bypass_corpus import (
    bint,
    computed_module_payload,
    dtype_bytes,
    os_system_payload,
    s4,
    sglobal,
    tglobal,
    tup,
    wrapper_newobj,
)

from airflow_mlops.security.scanning import scan_model_dir, walker
from airflow_mlops.security.scanning.walker import (
    TORCH_LEGACY_MAGIC,
    VALID_OPCODES,
    GlobalRef,
    PickleParseError,
    PickleWalk,
    Source,
    map_py2_name,
    walk_bytes,
    walk_stream,
)


def _imports(walk: PickleWalk) -> list[tuple[str, str, str]]:
    return [(g.module, g.name, g.opcode) for g in walk.globals]


# --- plain pickles -------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_pickle_of_plain_values_imports_and_calls_nothing(protocol: int) -> None:
    data = pickle.dumps(
        {"w": [1.5, 2.5], "n": "m", "t": (1, 2), "big": 10**30, "none": None}, protocol=protocol
    )
    walk = walk_bytes(data)
    assert walk.error is None and walk.globals == [] and walk.calls == 0
    assert walk.start == 0 and walk.end == len(data)
    assert walk.protocol == (protocol if protocol >= 2 else 0)  # protocols 0 and 1 have no PROTO


def test_the_opcode_table_is_the_standard_librarys() -> None:
    assert frozenset(ord(op.code) for op in pickletools.opcodes) == VALID_OPCODES


def test_base_shifts_every_offset() -> None:
    walk = walk_bytes(b"\x80\x04" + sglobal("os", "system") + b".", base=1000)
    assert walk.start == 1000 and walk.globals[0].offset == 1000 + 2 + len(s4("os") + s4("system"))
    assert walk.end == 1000 + 2 + len(sglobal("os", "system")) + 1


# --- what an import resolves to ------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "opcode"),
    [
        (b"\x80\x02" + tglobal("os", "system") + b".", "GLOBAL"),
        (b"(S'true'\nios\nsystem\n.", "INST"),
        (b"\x80\x04" + sglobal("os", "system") + b".", "STACK_GLOBAL"),
        # operands through the memo (MEMOIZE / BINGET), with the values popped meanwhile
        (
            b"\x80\x04" + s4("os") + b"\x94" + s4("system") + b"\x94" + b"0" + b"h\x00h\x01\x93.",
            "STACK_GLOBAL",
        ),
        # PUT / LONG_BINGET
        (
            b"\x80\x04"
            + s4("os")
            + b"r\x00\x00\x01\x00"
            + b"0"
            + b"j\x00\x00\x01\x00"
            + s4("system")
            + b"\x93.",
            "STACK_GLOBAL",
        ),
        # under a value POP_MARK removes
        (b"\x80\x04" + s4("os") + b"(" + s4("decoy") + b"1" + s4("system") + b"\x93.", "STACK_GLOBAL"),
        # DUP then POP
        (b"\x80\x04" + s4("os") + s4("system") + b"20\x93.", "STACK_GLOBAL"),
        # every string opcode a pickle may use for the operands
        (b"\x80\x04S'os'\nS'system'\n\x93.", "STACK_GLOBAL"),
        (b"Vos\nVsystem\n\x93.", "STACK_GLOBAL"),
        (b"\x80\x02U\x02osU\x06system\x93.", "STACK_GLOBAL"),
        (b"\x80\x02T\x02\x00\x00\x00osT\x06\x00\x00\x00system\x93.", "STACK_GLOBAL"),
        (b"\x80\x04\x8d\x02" + bytes(7) + b"os\x8d\x06" + bytes(7) + b"system\x93.", "STACK_GLOBAL"),
        # inside a FRAME
        (b"\x80\x04\x95\x0f" + bytes(7) + sglobal("os", "system") + b".", "STACK_GLOBAL"),
    ],
    ids=[
        "global",
        "inst",
        "stack_global",
        "memoize",
        "long_binput",
        "pop_mark",
        "dup",
        "string",
        "unicode",
        "short_binstring",
        "binstring",
        "binunicode8",
        "frame",
    ],
)
def test_os_system_is_resolved_however_its_operands_reach_the_stack(data: bytes, opcode: str) -> None:
    walk = walk_bytes(data)
    assert walk.error is None
    assert _imports(walk) == [("os", "system", opcode)]


def test_an_import_whose_module_is_computed_is_unresolved_at_its_offset() -> None:
    data = computed_module_payload()
    walk = walk_bytes(data)
    assert walk.unresolved == [len(data) - 2]
    assert ("builtins", "getattr", "STACK_GLOBAL") in _imports(walk) and walk.calls == 1


def test_a_bytes_module_name_is_unresolved_rather_than_guessed() -> None:
    walk = walk_bytes(b"\x80\x04C\x02osC\x06system\x93.")
    assert walk.globals == [] and len(walk.unresolved) == 1


def test_an_operand_from_a_memo_slot_never_written_is_unresolved() -> None:
    walk = walk_bytes(b"\x80\x04h\x05" + s4("system") + b"\x93.")
    assert walk.globals == [] and walk.unresolved == [2 + 2 + len(s4("system"))]


def test_an_extension_registry_import_is_recorded() -> None:
    for ext in (b"\x82\x01", b"\x83\x01\x00", b"\x84\x01\x00\x00\x00"):
        assert walk_bytes(b"\x80\x04" + ext + b".").extension_refs == [2]


def test_imports_below_protocol_3_resolve_to_their_python3_names() -> None:
    ref = walk_bytes(b"\x80\x02c__builtin__\neval\n.").globals[0]
    assert ref.protocol == 2 and ref.resolved() == ("builtins", "eval")
    # no PROTO at all is protocol 0: renamed too
    assert walk_bytes(b"c__builtin__\neval\n.").globals[0].resolved() == ("builtins", "eval")
    # protocol 3 and later: the unpickler imports the name as written
    ref3 = walk_bytes(b"\x80\x03c__builtin__\neval\n.").globals[0]
    assert ref3.resolved() == ("__builtin__", "eval")


def test_a_later_proto_opcode_changes_the_protocol_of_what_follows() -> None:
    ref = walk_bytes(b"\x80\x04\x80\x02c__builtin__\neval\n.").globals[0]
    assert ref.protocol == 2 and ref.resolved() == ("builtins", "eval")


def test_map_py2_name() -> None:
    assert map_py2_name("__builtin__", "eval") == ("builtins", "eval")
    assert map_py2_name("copy_reg", "_reconstructor") == ("copyreg", "_reconstructor")
    assert map_py2_name("UserDict", "UserDict") == ("collections", "UserDict")  # a name mapping
    assert map_py2_name("numpy", "dtype") == ("numpy", "dtype")
    assert GlobalRef("copy_reg", "x", "GLOBAL", 0, protocol=0).resolved() == ("copyreg", "x")


# --- calls, mutations, restricted uses -----------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        tup(s4("true")) + b"R",  # REDUCE
        b")\x81",  # NEWOBJ
        b")}\x92",  # NEWOBJ_EX
    ],
    ids=["reduce", "newobj", "newobj_ex"],
)
def test_call_opcodes_are_counted(call: bytes) -> None:
    walk = walk_bytes(b"\x80\x04" + sglobal("os", "system") + call + b".")
    assert walk.error is None and walk.calls == 1


def test_build_on_an_imported_class_is_a_mutation() -> None:
    data = b"\x80\x04" + sglobal("collections", "OrderedDict") + b"}" + s4("k") + s4("v") + b"sb."
    walk = walk_bytes(data)
    assert walk.mutations == [("BUILD", "collections.OrderedDict", len(data) - 2)]


def test_build_on_an_object_the_pickle_created_is_not_a_mutation() -> None:
    walk = walk_bytes(b"\x80\x04" + sglobal("collections", "OrderedDict") + b")\x81}b.")
    assert walk.mutations == [] and walk.calls >= 1


def test_a_new_only_class_called_with_arguments_is_restricted() -> None:
    called = b"\x80\x04" + sglobal("xgboost.core", "Booster") + tup(b"}", b"N", s4("/etc/passwd")) + b"R."
    walk = walk_bytes(called)
    assert walk.restricted == [("xgboost.core.Booster", "REDUCE calls it with arguments", len(called) - 2)]
    # as pickle writes it: cls.__new__(cls) then state
    assert walk_bytes(b"\x80\x04" + sglobal("xgboost.core", "Booster") + b")\x81}b.").restricted == []


# --- malformed streams ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "error", "offset"),
    [
        (b"", "stream ended before the STOP opcode", 0),
        (b"\x80\x04N", "stream ended before the STOP opcode", 3),
        (b"\x80\x04\xff.", "invalid opcode 0xff", 2),
        (b"\x80\x04X\xff\xff\xff\x7fab.", "", 2),  # a 2 GiB string length in a 9-byte stream
        (b"\x80\x04N\x85R.", "more stack items", 5),
        (b"cos\n", "stream ended inside a text opcode argument", 4),
    ],
    ids=["empty", "no-stop", "invalid-opcode", "forged-length", "stack-underflow", "cut-line"],
)
def test_malformed_pickles_stop_with_an_error_and_its_offset(data: bytes, error: str, offset: int) -> None:
    walk = walk_bytes(data)
    assert walk.error is not None and error in walk.error
    assert walk.error_offset == offset


def test_a_truncated_real_pickle_is_an_error_at_every_cut() -> None:
    data = pickle.dumps({"weights": [1.5] * 5, "name": "model"}, protocol=4)
    for cut in range(len(data)):
        walk = walk_bytes(data[:cut])
        assert walk.error is not None, cut
        assert walk.error_offset is not None and walk.error_offset <= cut


def test_a_pickle_of_more_opcodes_than_the_scanner_walks_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scan time is bounded like its memory: a flood of cheap opcodes (``N0`` pairs that no fast
    path skips) is refused once the stream passes the opcode limit, across concatenated pickles."""
    monkeypatch.setattr(walker, "MAX_OPCODES", 1_000)
    flood = tmp_path / "flood.pkl"
    flood.write_bytes(b"\x80\x04" + b"N0" * 600 + b"N.")
    report = scan_model_dir(flood)
    assert not report.ok and "opcodes" in report.findings[0].detail
    # the count is per stream: two pickles of 600 opcode pairs each are past it together
    split = tmp_path / "split.pkl"
    split.write_bytes((b"\x80\x04" + b"N0" * 300 + b"N.") * 2)
    assert not scan_model_dir(split).ok
    small = tmp_path / "small.pkl"
    small.write_bytes(pickle.dumps({"weights": [1.5, 2.5], "name": "m"}, protocol=4))
    assert scan_model_dir(small).ok


def test_the_opcode_limit_stops_a_walk_and_counts_across_a_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(walker, "MAX_OPCODES", 1_000)
    walk = walk_bytes(b"\x80\x04" + b"N0" * 600 + b"N.")
    assert walk.error is not None and "more than 1000 opcodes" in walk.error
    assert walk.error_offset is not None and walk.error_offset <= 2 + 1001

    half = b"\x80\x04" + b"N0" * 300 + b"N."
    src = Source(io.BytesIO(half * 2), len(half) * 2)
    assert walk_stream(src).error is None
    assert "opcodes" in (walk_stream(src).error or "")  # the second pickle passes the limit


def test_number_runs_are_walked_without_counting_each_opcode(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pickled list of floats is one fast-path run, far below the opcode limit."""
    monkeypatch.setattr(walker, "MAX_OPCODES", 1_000)
    data = pickle.dumps([float(i) for i in range(50_000)], protocol=4)
    walk = walk_bytes(data)
    assert walk.error is None and walk.end == len(data)


def test_a_mark_flood_is_refused_not_grown_without_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(walker, "_MAX_MARKS", 1_000)  # the real limit is 1 Mi open MARKs
    assert walk_bytes(b"\x80\x04" + b"(" * 999 + b".").error is None
    walk = walk_bytes(b"\x80\x04" + b"(" * 1_010 + b".")
    assert walk.error == "the pickle opens more MARKs than the scanner tracks"


# --- legacy torch --------------------------------------------------------------------------


def test_the_first_long_of_a_legacy_torch_file_is_its_magic_number() -> None:
    assert walk_bytes(pickle.dumps(TORCH_LEGACY_MAGIC, protocol=2)).first_long == TORCH_LEGACY_MAGIC
    assert walk_bytes(pickle.dumps(12345, protocol=2)).first_long is None  # not a LONG opcode


# --- Source --------------------------------------------------------------------------------


class _Reads(io.BytesIO):
    def __init__(self, data: bytes, seekable: bool = True) -> None:
        super().__init__(data)
        self.asked: list[int] = []
        self._seekable = seekable

    def read(self, n: int | None = -1) -> bytes:
        self.asked.append(-1 if n is None else n)
        return super().read(n)

    def seekable(self) -> bool:
        return self._seekable


def test_source_never_reads_past_its_limit() -> None:
    raw = _Reads(b"abcdefghij")
    src = Source(raw, 4)
    assert src.take(2) == b"ab" and src.offset == 2
    assert not src.fill(3) and src.available() == 2
    with pytest.raises(PickleParseError, match=r"\(5 bytes expected\)") as err:
        src.take(5)
    assert err.value.offset == 2
    assert max(raw.asked) <= 4 and raw.tell() == 4


def test_source_skips_with_seek_when_it_can() -> None:
    raw = _Reads(bytes(100))
    src = Source(raw, 100, base=1000)
    assert src.skip(50) and src.offset == 1050
    assert raw.asked == []  # seeked, not read
    assert src.take(1) == b"\x00"
    assert not src.skip(60)  # past the limit
    assert src.at_end()


def test_source_skips_by_reading_an_unseekable_stream() -> None:
    raw = _Reads(bytes(100), seekable=False)
    src = Source(raw, None)
    assert src.skip(70) and src.offset == 70
    assert src.take(30) == bytes(30) and src.at_end()
    assert not src.skip(1)


def test_source_lines_and_peek() -> None:
    src = Source(None, data=b"ab\ncd")
    assert src.line() == b"ab" and src.offset == 3
    assert src.peek(5) == b"cd" and src.offset == 3  # peek does not consume
    with pytest.raises(PickleParseError, match="stream ended inside a text opcode argument"):
        src.line()


def test_a_text_argument_line_past_the_limit_is_refused() -> None:
    walk = walk_bytes(b"S'" + b"a" * (walker._MAX_LINE + 10))
    assert walk.error == "text opcode argument line is too long"


def test_a_large_byte_payload_is_skipped_not_held(tmp_path: Path) -> None:
    blob = bytes(8 << 20)
    data = pickle.dumps({"blob": blob}, protocol=4)
    raw = _Reads(data)
    walk = walk_stream(Source(raw, len(data)))
    assert walk.error is None and walk.end == len(data)
    assert sum(n for n in raw.asked if n > 0) < len(data)  # most of the blob was seeked over


# --- joblib --------------------------------------------------------------------------------


def _joblib(value: object) -> bytes:
    joblib = pytest.importorskip("joblib")
    buf = io.BytesIO()
    joblib.dump(value, buf)
    return buf.getvalue()


def _walk_joblib(data: bytes, joblib: bool = True) -> PickleWalk:
    return walk_stream(Source(io.BytesIO(data), len(data)), joblib=joblib)


def test_joblib_array_bytes_are_located_exactly() -> None:
    import numpy as np

    a, b = np.arange(100.0), np.ones((3, 4), dtype=np.int8, order="F")
    data = _joblib({"a": a, "b": b})
    walk = _walk_joblib(data)
    assert walk.error is None and walk.end == len(data)
    assert [(r.nbytes, r.shape, r.dtype) for r in walk.arrays] == [(800, (100,), "<f8"), (12, (3, 4), "|i1")]
    for region, array in zip(walk.arrays, (a, b), strict=True):
        assert data[region.offset : region.offset + region.nbytes] == array.tobytes(order="A")
    # pickle.load (joblib=False) reads the raw bytes as opcodes and fails
    assert _walk_joblib(data, joblib=False).error is not None


def test_array_bytes_that_pickle_load_reads_as_opcodes_are_walked_as_a_polyglot() -> None:
    """joblib skips the region; pickle.load runs it: the walk of the region shows the import."""
    region = os_system_payload() + b"0"
    data = (
        b"\x80\x04"
        + wrapper_newobj(tup(bint(len(region))), dtype_bytes("u1"), alignment=None)
        + region
        + b"."
    )
    walk = _walk_joblib(data)
    assert walk.error is None and [r.nbytes for r in walk.arrays] == [len(region)]
    assert ("os", "system") not in [(g.module, g.name) for g in walk.globals]
    [poly] = walk.polyglot
    assert poly.start == data.index(region)
    assert [(g.module, g.name) for g in poly.globals] == [("os", "system")]


def test_array_bytes_past_the_end_are_an_error() -> None:
    data = b"\x80\x04" + wrapper_newobj(tup(bint(64)), dtype_bytes("u1"), alignment=None) + bytes(10)
    walk = _walk_joblib(data)
    assert walk.error is not None and "runs past the end of the stream" in walk.error


def test_a_wrapper_whose_byte_count_cannot_be_decided_is_a_layout_error() -> None:
    data = b"\x80\x04" + wrapper_newobj(tup(bint(4)), dtype_bytes("zz")) + bytes(4) + b"."
    walk = _walk_joblib(data)
    assert walk.layout_error is True
    assert walk.error is not None and walk.error.startswith(
        "the bytes joblib reads after a NumpyArrayWrapper"
    )


def test_an_object_array_in_joblib_is_a_nested_pickle() -> None:
    import numpy as np

    data = _joblib({"a": np.array([1, "x", None], dtype=object)})
    walk = _walk_joblib(data)
    assert walk.error is None and len(walk.nested) == 1
    assert walk.nested[0].error is None and walk.nested[0].start > 0
