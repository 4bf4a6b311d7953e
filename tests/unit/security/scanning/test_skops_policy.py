"""skops files: real ``skops.io.dump`` output passes the scan and loads through
``trusted_skops_types``; hostile schemas and members are refused by the scan and by the loader's
entry point (the corpus of hostile files is ``scan_bypass_corpus.skops_fixtures``)."""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scan_bypass_corpus import EVIL_PICKLE, npy_bytes, sk, sk_model, skops_bytes, skops_fixtures

from airflow_mlops.exceptions import UnsafeModelError
from airflow_mlops.security.scanning import (
    FindingKind,
    ScanReport,
    scan_model_dir,
    skops_schema,
    trusted_skops_types,
)
from airflow_mlops.security.scanning import scanner as scanning_scanner
from airflow_mlops.security.scanning.skops_allowlist import skops_name_problem

skops_io = pytest.importorskip("skops.io")
pytest.importorskip("sklearn")


def _failures(report: ScanReport) -> str:
    return "\n".join(f.format() for f in report.findings)


def _data() -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    frame["city"] = np.where(x[:, 2] > 0, "paris", "oslo")
    binary = (x[:, 0] > 0).astype(int)
    multi = binary + (x[:, 1] > 0)
    return frame, x, binary, multi


def _hist_gb() -> tuple[Any, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    _, x, binary, _ = _data()
    return HistGradientBoostingClassifier(max_iter=5).fit(x, binary), x


def _forest() -> tuple[Any, Any]:
    from sklearn.ensemble import RandomForestRegressor

    _, x, _, multi = _data()
    return RandomForestRegressor(n_estimators=4, random_state=0).fit(x, multi * 1.5), x


def _logistic_multiclass() -> tuple[Any, Any]:
    from sklearn.linear_model import LogisticRegression

    _, x, _, multi = _data()
    return LogisticRegression(max_iter=300).fit(x, multi), x


def _column_pipeline() -> tuple[Any, Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, _, binary, _ = _data()
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["a", "b", "c", "d"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    model = Pipeline([("pre", pre), ("gb", GradientBoostingClassifier(n_estimators=5))]).fit(frame, binary)
    return model, frame


def _xgboost_pipeline() -> tuple[Any, Any]:
    xgb = pytest.importorskip("xgboost")
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    _, x, binary, _ = _data()
    return Pipeline([("scale", StandardScaler()), ("xgb", xgb.XGBClassifier(n_estimators=5))]).fit(
        x, binary
    ), x


def _lightgbm_pipeline() -> tuple[Any, Any]:
    lgb = pytest.importorskip("lightgbm")
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    _, x, _, multi = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Pipeline(
            [("scale", StandardScaler()), ("lgb", lgb.LGBMRegressor(n_estimators=5, verbose=-1))]
        )
        return model.fit(x, multi * 1.5), x


MODELS: dict[str, Callable[[], tuple[Any, Any]]] = {
    "hist_gradient_boosting": _hist_gb,
    "random_forest_regressor": _forest,
    "logistic_regression_multiclass": _logistic_multiclass,
    "column_transformer_gradient_boosting": _column_pipeline,
    "pipeline_xgb_classifier": _xgboost_pipeline,
    "pipeline_lgbm_regressor": _lightgbm_pipeline,
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_skops_dumps_pass_and_load_through_trusted_skops_types(
    tmp_path: Path, name: str, compression: int
) -> None:
    model, x = MODELS[name]()
    path = tmp_path / "model.skops"
    skops_io.dump(model, path, compression=compression)

    report = scan_model_dir(tmp_path)
    trusted = trusted_skops_types(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = skops_io.load(path, trusted=trusted)

    assert report.ok, _failures(report)
    assert trusted == skops_io.get_untrusted_types(file=path)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x))


def test_a_model_directory_with_a_skops_file_and_its_config_passes(tmp_path: Path) -> None:
    model, _ = _logistic_multiclass()
    skops_io.dump(model, tmp_path / "model.skops")
    (tmp_path / "model_config.json").write_text(json.dumps({"flavor": "sklearn"}))

    report = scan_model_dir(tmp_path)

    assert report.ok, _failures(report)
    assert report.files_scanned == 2


_REFUSED = [fx for fx in skops_fixtures() if fx.verdict == "refuse"]


@pytest.fixture(scope="module")
def refused_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("skops_refused")
    for fx in _REFUSED:
        fx.write(root / fx.name)
    return root


@pytest.mark.parametrize("fixture", _REFUSED, ids=[fx.name for fx in _REFUSED])
def test_hostile_skops_files_are_refused_by_the_loader_entry_point(refused_files: Path, fixture: Any) -> None:
    path = refused_files / fixture.name

    assert not scan_model_dir(path).ok
    with pytest.raises(UnsafeModelError):
        trusted_skops_types(path)


@pytest.mark.parametrize(
    ("fixture", "name"),
    [
        ("skops_eval_key_type.skops", "builtins.eval"),
        ("skops_popen_constructor.skops", "subprocess.Popen"),
        ("skops_unlisted_class.skops", "logging.FileHandler"),
        ("skops_xgboost_booster_constructor.skops", "xgboost.core.Booster"),
    ],
)
def test_skops_itself_would_import_the_payload(refused_files: Path, fixture: str, name: str) -> None:
    # the corpus is real: skops reads these schemas and asks its caller to trust the payload; a
    # caller that trusted everything get_untrusted_types lists would load it
    assert name in skops_io.get_untrusted_types(file=refused_files / fixture)


def test_an_allowlisted_booster_that_skops_would_call_is_still_refused(refused_files: Path) -> None:
    path = refused_files / "skops_xgboost_booster_constructor.skops"

    assert skops_name_problem("xgboost.core.Booster") is None  # on the allowlist ...
    with pytest.raises(UnsafeModelError, match="restricted_global"):
        trusted_skops_types(path)  # ... but only as an ObjectNode


def test_every_type_skops_reports_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ = _logistic_multiclass()
    path = tmp_path / "model.skops"
    skops_io.dump(model, path)
    monkeypatch.setattr(skops_io, "get_untrusted_types", lambda **_: ["mypkg.Scaler", "builtins.eval"])

    with pytest.raises(UnsafeModelError) as refused:
        trusted_skops_types(path)
    with pytest.raises(UnsafeModelError, match=r"builtins\.eval"):
        trusted_skops_types(path, allowed_types=["mypkg.*", "builtins.eval"])

    assert "mypkg.Scaler" in str(refused.value) and "builtins.eval" in str(refused.value)


def test_a_function_off_the_allowlist_passes_once_the_caller_allows_it(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    _, x, binary, _ = _data()
    model = make_pipeline(FunctionTransformer(np.nan_to_num), LogisticRegression()).fit(x, binary)
    path = tmp_path / "model.skops"
    skops_io.dump(model, path)
    name = "numpy.nan_to_num"  # a numpy function, not a ufunc: off the list

    default = scan_model_dir(path)
    allowed = scan_model_dir(path, allowed_globals=[name])
    trusted = trusted_skops_types(path, allowed_types=[name])

    assert {f.symbol for f in default.findings} == {name}
    assert allowed.ok, _failures(allowed)
    assert name in trusted
    np.testing.assert_allclose(skops_io.load(path, trusted=trusted).predict(x), model.predict(x))


def test_feature_selection_score_functions_and_calibration_pass(tmp_path: Path) -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_selection import SelectKBest, chi2, f_classif
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    _, x, binary, _ = _data()
    model = make_pipeline(
        SelectKBest(f_classif, k=3), CalibratedClassifierCV(LogisticRegression(), cv=3)
    ).fit(x, binary)
    skops_io.dump(model, tmp_path / "model.skops")
    skops_io.dump(SelectKBest(chi2, k=2).fit(np.abs(x), binary), tmp_path / "chi2.skops")

    report = scan_model_dir(tmp_path)

    assert report.ok, _failures(report)
    loaded = skops_io.load(tmp_path / "model.skops", trusted=trusted_skops_types(tmp_path / "model.skops"))
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x))


def test_a_ufunc_passes_in_a_process_that_has_not_imported_numpy(tmp_path: Path) -> None:
    import subprocess
    import sys

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    _, x, _, _ = _data()
    skops_io.dump(
        make_pipeline(FunctionTransformer(np.log1p), StandardScaler()).fit(np.abs(x)), tmp_path / "m.skops"
    )
    code = (
        "import sys\n"
        "from airflow_mlops.security.scanning import scan_model_dir\n"
        "assert 'numpy' not in sys.modules\n"
        f"report = scan_model_dir({str(tmp_path / 'm.skops')!r})\n"
        "print([f.symbol for f in report.findings])\n"
    )

    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )

    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_files_that_are_not_skops_archives_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "arrays.npz", a=np.arange(3))
    np.save(tmp_path / "array.npy", np.arange(3))

    assert scan_model_dir(tmp_path / "arrays.npz").ok  # a plain npz is fine for the scanner ...
    for name in ("arrays.npz", "array.npy", "missing.skops"):
        with pytest.raises(UnsafeModelError):
            trusted_skops_types(tmp_path / name)  # ... but it is not a skops file
    with pytest.raises(UnsafeModelError):
        trusted_skops_types(tmp_path)


@pytest.mark.parametrize("schema", [b"{not json", b'{"protocol": 1}', b"[]"])
def test_members_of_an_unreadable_schema_are_still_scanned_for_payloads(
    tmp_path: Path, schema: bytes
) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(
        skops_bytes(
            None, {"data.pkl": EVIL_PICKLE, "1.npy": npy_bytes("'|O'", (1,), EVIL_PICKLE)}, schema_text=schema
        )
    )

    report = scan_model_dir(path)

    kinds = [f.kind for f in report.findings]
    assert kinds[0] == FindingKind.INVALID_SKOPS
    assert kinds.count(FindingKind.DANGEROUS_GLOBAL) == 2, _failures(report)


def test_a_schema_over_the_size_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(skops_bytes(sk_model()))
    assert scan_model_dir(path).ok
    monkeypatch.setattr(skops_schema, "MAX_SCHEMA_BYTES", 100)

    report = scan_model_dir(path)

    assert [f.kind for f in report.findings] == [FindingKind.INVALID_SKOPS]
    assert "limit" in report.findings[0].detail


def test_a_member_that_inflates_past_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    array = io.BytesIO()
    np.save(array, np.zeros(200_000))
    schema = sk_model(coef_=sk("NdArrayNode", "numpy", "ndarray", type="numpy", file="1.npy"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("1.npy", array.getvalue())
        zf.writestr("schema.json", json.dumps(schema))
    path = tmp_path / "model.skops"
    path.write_bytes(buf.getvalue())
    assert scan_model_dir(path).ok
    monkeypatch.setattr(scanning_scanner, "_BOMB_FLOOR", 1000)
    monkeypatch.setattr(scanning_scanner, "_BOMB_RATIO", 100)

    report = scan_model_dir(path)

    assert [f.kind for f in report.findings] == [FindingKind.INVALID_SKOPS], _failures(report)
    assert "inflates" in report.findings[0].detail
