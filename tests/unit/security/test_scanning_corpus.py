"""A corpus of ordinary model files (must pass by default) and malicious ones (must be reported
for their payload: the offending ``module.name`` and the byte offset of its import)."""

from __future__ import annotations

import builtins
import collections
import datetime
import decimal
import fractions
import functools
import gzip
import importlib
import io
import marshal
import os
import pickle
import runpy
import subprocess
import uuid
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from airflow_mlops.security.scanning import Finding, ScanReport, scan_model_dir
from airflow_mlops.security.scanning.compression import Decompressed, compression_of

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
