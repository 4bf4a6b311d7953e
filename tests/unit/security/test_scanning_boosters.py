"""XGBoost and LightGBM models: pickles/joblib files of fitted estimators and boosters pass, their
native files (UBJSON, JSON, LightGBM text) pass, and the boosters cannot be used to open files or
smuggle a payload."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scan_bypass_corpus import dct, s4, sglobal, tglobal, tup

from airflow_mlops.security.scanning import FindingKind, ScanReport, policy, scan_model_dir

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


def test_the_allowlist_holds_what_the_pickles_import_and_nothing_the_denylist_refuses() -> None:
    from airflow_mlops.security.scanning.lightgbm_globals import LIGHTGBM_GLOBALS
    from airflow_mlops.security.scanning.xgboost_globals import XGBOOST_GLOBALS

    for name in (
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
        "xgboost.sklearn.XGBRanker",
    ):
        assert name in XGBOOST_GLOBALS
    for name in (
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
    ):
        assert name in LIGHTGBM_GLOBALS
    for name in XGBOOST_GLOBALS | LIGHTGBM_GLOBALS:
        assert name in policy.BUILTIN_SAFE_GLOBALS
        assert not policy.is_dangerous(*name.rsplit(".", 1))
    assert policy.NEW_ONLY_GLOBALS <= XGBOOST_GLOBALS | LIGHTGBM_GLOBALS


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
