"""Model flavors: every flavor x task round-trips through its safe format, and tampered configs are refused.

A model's predictions after ``load_predictor`` must equal its predictions before the save, with
the classes mapped to the right columns (string labels, a string positive label, an estimator's
own class order), ``predict`` giving the label texts. A config naming another flavor's weights,
an inconsistent class order, an unknown flavor or task, a network with the wrong number of
outputs, or a ``module_class`` naming something that is not a torch module is refused -- and the
named callable is never called.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import datasets

from airflow_mlops.exceptions import ArtifactError, MLOpsError, TrainingError, UnsafeModelError
from airflow_mlops.metrics import compute_metrics
from airflow_mlops.training import trainer
from airflow_mlops.training.flavors import CONFIG_FILE, WEIGHTS_FILES, load_predictor, save_model_dir
from airflow_mlops.training.job import TrainingJob, _run_entrypoint
from airflow_mlops.training.model import Preprocessor

ANIMALS = np.array(["cat", "dog", "bird"])


def _frame(loader: Any, columns: int | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    data = loader()
    x = data.data if columns is None else data.data[:, :columns]
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])]), data.target


def binary_frame() -> pd.DataFrame:
    df, target = _frame(datasets.load_breast_cancer, 8)
    return df.assign(y=np.where(target == 0, "malignant", "benign"))


def multiclass_frame() -> pd.DataFrame:
    df, target = _frame(datasets.load_wine)
    return df.assign(y=ANIMALS[target])


def regression_frame() -> pd.DataFrame:
    df, target = _frame(datasets.load_diabetes)
    return df.assign(y=target)


FRAMES = {"binary": binary_frame, "multiclass": multiclass_frame, "regression": regression_frame}

SKLEARN = {
    "binary": "sklearn.linear_model.LogisticRegression",
    "multiclass": "sklearn.linear_model.LogisticRegression",
    "regression": "sklearn.linear_model.Ridge",
}
HIST = {
    "binary": "sklearn.ensemble.HistGradientBoostingClassifier",
    "multiclass": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}
PARAMS = {
    "mlp": {"epochs": 3, "hidden_units": [16], "batch_size": 64},
    "xgboost": {"n_estimators": 15, "max_depth": 3},
    "lightgbm": {"n_estimators": 15, "min_child_samples": 5},
    "sklearn": {"max_iter": 2000},
    "hist": {"max_iter": 15},
}


def train_and_capture(
    monkeypatch: pytest.MonkeyPatch, df: pd.DataFrame, config: dict[str, Any], out: Path
) -> dict[str, Any]:
    """Train through the trainer, keeping the model object it hands to save_model_dir."""
    captured: dict[str, Any] = {}
    real = trainer.save_model_dir

    def spy(directory: Path, model: Any, **kwargs: Any) -> dict[str, Any]:
        captured.update(model=model, **kwargs)
        return real(directory, model, **kwargs)

    monkeypatch.setattr(trainer, "save_model_dir", spy)
    captured["metrics"] = trainer.train(df, {"target": "y", "device": "cpu", "seed": 3, **config}, out)
    return captured


def in_memory_output(model: Any, x: np.ndarray, task: str, scaling: dict[str, float] | None) -> np.ndarray:
    """The fitted model's own output, in its own column order (computed here, not by the loader)."""
    if isinstance(model, torch.nn.Module):
        model.eval()
        with torch.no_grad():
            out = model(torch.from_numpy(x)).double()
        if task == "binary":
            return torch.sigmoid(out).numpy()
        if task == "multiclass":
            return torch.softmax(out, dim=-1).numpy()
        values = out.numpy()
        return values if scaling is None else scaling["mean"] + scaling["std"] * values
    if task == "regression":
        return np.asarray(model.predict(x), dtype=np.float64)
    return np.asarray(model.predict_proba(x), dtype=np.float64)


def as_task_output(
    raw: np.ndarray, task: str, class_order: list[str], classes: list[str], positive: str
) -> Any:
    """The model's own columns re-ordered as a Predictor gives them (classes sorted; binary: positive)."""
    if task == "regression":
        return raw
    if task == "binary":
        return raw if raw.ndim == 1 else raw[:, class_order.index(positive)]
    return raw[:, [class_order.index(c) for c in classes]]


def check_round_trip(
    model_dir: Path, df: pd.DataFrame, before: np.ndarray, task: str, labels: set[str], positive: Any = None
) -> Any:
    predictor = load_predictor(model_dir)
    scores = predictor.predict_scores(df)
    np.testing.assert_allclose(scores, before, rtol=1e-5, atol=1e-6)
    assert predictor.task == task
    predicted = predictor.predict(df)
    if task == "regression":
        np.testing.assert_allclose(predicted, scores)
        assert predictor.classes == []
        return predictor
    assert set(predictor.classes) == labels
    assert predictor.classes == sorted(labels)
    if task == "binary":
        assert predictor.positive_label == positive
        negative = next(c for c in predictor.classes if c != positive)
        cut = predictor.threshold
        assert cut is not None
        assert predicted.tolist() == np.where(scores >= cut, positive, negative).tolist()
        np.testing.assert_allclose(predictor.predict_proba(df), scores)
    else:
        assert predicted.tolist() == np.asarray(predictor.classes)[scores.argmax(axis=1)].tolist()
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-4)
    assert set(predicted.tolist()) <= labels  # the label texts, not indices
    return predictor


# --- the trainer's models: every flavor x task --------------------------------------------------


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("model", ["mlp", "xgboost", "lightgbm", "sklearn", "hist"])
def test_every_trained_flavor_predicts_the_same_after_loading(
    model: str, task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    df = FRAMES[task]()
    name = {"sklearn": SKLEARN[task], "hist": HIST[task]}.get(model, model)
    params = dict(PARAMS[model])
    if model == "sklearn" and task == "regression":
        params = {"alpha": 0.5}
    config: dict[str, Any] = {"model": name, "params": params}
    if task == "binary":
        config["positive_label"] = "malignant"

    captured = train_and_capture(monkeypatch, df, config, tmp_path / "m")

    pre = captured["preprocessor"]
    raw = in_memory_output(captured["model"], pre.transform(df), task, captured.get("target_scaling"))
    order = captured["class_order"] or []
    before = as_task_output(raw, task, order, sorted(order), "malignant")
    labels = set(df["y"]) if task != "regression" else set()
    predictor = check_round_trip(tmp_path / "m", df, before, task, labels, positive="malignant")
    expected_flavor = {"mlp": "torch", "hist": "sklearn"}.get(model, model)
    assert predictor.flavor == expected_flavor
    assert (tmp_path / "m" / WEIGHTS_FILES[expected_flavor]).is_file()
    assert predictor.describe()["flavor"] == expected_flavor
    if model != "mlp" and task != "regression":
        # The classes land on the right columns: trained estimators get the training rows right.
        assert np.mean(predictor.predict(df) == df["y"].to_numpy()) > 0.85


@pytest.mark.parametrize("model", ["mlp", "xgboost", "lightgbm", "sklearn"])
def test_a_positive_label_that_sorts_first_maps_to_its_own_column(
    model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "benign" sorts before "malignant": the positive class is the model's column 1 but the
    first of the sorted classes."""
    df = binary_frame()
    name = SKLEARN["binary"] if model == "sklearn" else model
    config = {"model": name, "params": PARAMS[model], "positive_label": "benign"}

    captured = train_and_capture(monkeypatch, df, config, tmp_path / "m")

    assert captured["class_order"] == ["malignant", "benign"]
    raw = in_memory_output(captured["model"], captured["preprocessor"].transform(df), "binary", None)
    before = as_task_output(raw, "binary", captured["class_order"], ["benign", "malignant"], "benign")
    predictor = check_round_trip(tmp_path / "m", df, before, "binary", {"benign", "malignant"}, "benign")
    if model != "mlp":
        auc = compute_metrics("binary", df["y"].to_numpy() == "benign", predictor.predict_scores(df))[
            "roc_auc"
        ]
        assert auc > 0.9  # scores of the positive class, not of the other one


def test_the_cnn_round_trips_on_8x8_digits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    df, target = _frame(datasets.load_digits)
    df = df.assign(y=target)
    config = {
        "model": "cnn",
        "params": {
            "epochs": 2,
            "image_shape": [1, 8, 8],
            "conv_channels": [4],
            "hidden_units": [16],
            "batch_size": 128,
        },
    }

    captured = train_and_capture(monkeypatch, df, config, tmp_path / "m")

    raw = in_memory_output(captured["model"], captured["preprocessor"].transform(df), "multiclass", None)
    order = captured["class_order"]
    assert order == [str(d) for d in range(10)]
    predictor = check_round_trip(
        tmp_path / "m", df, as_task_output(raw, "multiclass", order, order, ""), "multiclass", set(order)
    )
    assert predictor.config["model_type"] == "cnn"


# --- fits of your own through FitContext --------------------------------------------------------


def run_fit(entrypoint: str, df: pd.DataFrame, out: Path, **config: Any) -> dict[str, Any]:
    options = config.pop("options", {})
    job = TrainingJob(
        store_root=str(out.parent),
        train=None,  # type: ignore[arg-type]  # _run_entrypoint reads the frame it is given
        model=entrypoint,
        config={"target": "y", "seed": 5, **config},
        output_key="model",
        options=options,
    )
    return _run_entrypoint(job, df, out)


@pytest.mark.parametrize(
    ("fit", "task"),
    [
        ("pipeline_on_labels", "binary"),
        ("pipeline_on_labels", "multiclass"),
        ("pipeline_on_labels", "regression"),
        ("torch_module", "binary"),
        ("torch_module", "multiclass"),
        ("torch_module", "regression"),
        ("lightgbm_on_labels", "binary"),
        ("lightgbm_on_labels", "multiclass"),
        ("xgboost_on_y", "binary"),
        ("xgboost_on_y", "multiclass"),
    ],
)
def test_your_own_fit_round_trips_with_its_classes(fit: str, task: str, tmp_path: Path, userpkg: Any) -> None:
    df = FRAMES[task]()
    config = {"positive_label": "malignant"} if task == "binary" else {}

    run_fit(f"userpkg.fits:{fit}", df, tmp_path / "m", **config)

    last = userpkg.fits.LAST
    model, ctx = last["model"], last["ctx"]
    if fit == "torch_module":
        raw = in_memory_output(model, last["preprocessor"].transform(df), task, last["scaling"])
        order = ctx._class_order
    else:
        raw = in_memory_output(model, ctx.x(df), task, None)
        saved = json.loads((tmp_path / "m" / CONFIG_FILE).read_text())
        order = saved.get("class_order", [])
        if hasattr(model, "classes_") and task != "regression":
            # A model fitted on the labels keeps them; one fitted on ctx.y gets the context's.
            keys = [str(c) for c in model.classes_]
            assert order == (keys if set(keys) == set(df["y"]) else ctx._class_order)
    before = as_task_output(raw, task, order, sorted(order), "malignant")
    labels = set(df["y"]) if task != "regression" else set()
    predictor = check_round_trip(tmp_path / "m", df, before, task, labels, positive="malignant")
    expected = {"pipeline_on_labels": "sklearn", "torch_module": "torch"}.get(fit, fit.split("_")[0])
    assert predictor.flavor == expected
    assert predictor.config["input"] == ("matrix" if fit == "torch_module" else "dataframe")
    if fit == "torch_module":
        assert predictor.config["module_class"] == "userpkg.nets:SmallNet"
        if task == "regression":
            assert set(predictor.config["target_scaling"]) == {"mean", "std"}
    if task != "regression" and fit != "torch_module":
        assert np.mean(predictor.predict(df) == df["y"].to_numpy()) > 0.85


# --- what a save refuses -------------------------------------------------------------------------


def _fitted(estimator: Any, df: pd.DataFrame, y: Any) -> tuple[Any, Preprocessor]:
    pre = Preprocessor.fit(df, [c for c in df.columns if c != "y"])
    return estimator.fit(pre.transform(df), y), pre


def _save(tmp_path: Path, model: Any, pre: Preprocessor | None, task: str, **kwargs: Any) -> dict[str, Any]:
    out = tmp_path / "saved"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    features = list(pre.features) if pre is not None else kwargs.pop("features")
    return save_model_dir(out, model, task=task, target="y", features=features, preprocessor=pre, **kwargs)


@pytest.mark.parametrize(
    ("estimator", "objective", "task", "words"),
    [
        ("LGBMClassifier", "regression", "binary", "must use objective binary or cross_entropy"),
        ("LGBMClassifier", "cross_entropy_lambda", "binary", "not class probabilities"),
        ("LGBMClassifier", "huber", "binary", "not 'huber'"),
        ("LGBMRegressor", "binary", "regression", "regression objective"),
        ("LGBMRegressor", "cross_entropy", "regression", "regression objective"),
    ],
)
def test_a_lightgbm_model_whose_outputs_are_not_the_tasks_is_refused(
    estimator: str, objective: str, task: str, words: str, tmp_path: Path
) -> None:
    import lightgbm

    df = binary_frame()
    y = (df.pop("y") == "malignant").astype(int)
    cls = getattr(lightgbm, estimator)
    model, pre = _fitted(cls(objective=objective, n_estimators=5, verbose=-1), df, y)
    extra: dict[str, Any] = {"class_order": ["0", "1"], "positive_label": 1} if task == "binary" else {}
    with pytest.raises(TrainingError, match="LightGBM") as info:
        _save(tmp_path, model, pre, task, **extra)
    assert words in str(info.value)
    assert not (tmp_path / "saved" / CONFIG_FILE).exists()


@pytest.mark.parametrize("objective", ["softmax", "multiclass", "multiclassova"])
def test_lightgbm_multiclass_objectives_and_their_aliases_round_trip(objective: str, tmp_path: Path) -> None:
    import lightgbm

    df = multiclass_frame()
    y = pd.Series(df.pop("y")).map({"bird": 0, "cat": 1, "dog": 2})
    model, pre = _fitted(lightgbm.LGBMClassifier(objective=objective, n_estimators=8, verbose=-1), df, y)

    config = _save(tmp_path, model, pre, "multiclass", class_order=["bird", "cat", "dog"])

    assert config["objective"] == objective
    before = model.predict_proba(pre.transform(df))
    scores = load_predictor(tmp_path / "saved").predict_scores(df)
    np.testing.assert_allclose(scores, before, rtol=1e-6)


@pytest.mark.parametrize("objective", ["reg:squarederror", "reg:absoluteerror", "count:poisson"])
def test_xgboost_regression_objectives_round_trip(objective: str, tmp_path: Path) -> None:
    import xgboost

    df = regression_frame()
    y = df.pop("y")
    model, pre = _fitted(xgboost.XGBRegressor(objective=objective, n_estimators=10, max_depth=3), df, y)

    config = _save(tmp_path, model, pre, "regression")

    assert config["objective"] == objective
    np.testing.assert_allclose(
        load_predictor(tmp_path / "saved").predict_scores(df), model.predict(pre.transform(df)), rtol=1e-5
    )


def test_an_xgboost_classifier_without_probabilities_is_refused(tmp_path: Path) -> None:
    import xgboost

    df = multiclass_frame()
    y = pd.Series(df.pop("y")).map({"bird": 0, "cat": 1, "dog": 2})
    model, pre = _fitted(xgboost.XGBClassifier(objective="multi:softmax", n_estimators=5), df, y)
    with pytest.raises(TrainingError, match="multi:softprob, not 'multi:softmax'"):
        _save(tmp_path, model, pre, "multiclass", class_order=["bird", "cat", "dog"])


def test_a_classifier_without_predict_proba_is_refused_with_the_calibration_hint(tmp_path: Path) -> None:
    from sklearn.svm import LinearSVC

    df = binary_frame()
    y = df.pop("y")
    model, pre = _fitted(LinearSVC(), df, y)
    with pytest.raises(TrainingError, match="CalibratedClassifierCV"):
        _save(tmp_path, model, pre, "binary", positive_label="malignant")


def test_what_a_save_refuses(tmp_path: Path, userpkg: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    df = multiclass_frame()
    labels = df.pop("y")
    model, pre = _fitted(LogisticRegression(max_iter=2000), df, labels)
    with pytest.raises(TrainingError, match="unknown task"):
        _save(tmp_path, model, pre, "ranking")
    with pytest.raises(TrainingError, match="positive label 'fish'"):
        two = _fitted(LogisticRegression(), df[labels != "bird"], labels[labels != "bird"])[0]
        _save(tmp_path, two, pre, "binary", positive_label="fish")
    with pytest.raises(TrainingError, match="three or more classes"):
        _save(tmp_path, two, pre, "multiclass")
    with pytest.raises(TrainingError, match="regression models only"):
        _save(tmp_path, model, pre, "multiclass", target_scaling={"mean": 0, "std": 1})
    with pytest.raises(TrainingError, match="binary models only"):
        _save(tmp_path, model, pre, "multiclass", threshold_choice={"value": 0.5, "rule": "fixed"})
    with pytest.raises(TrainingError, match=r"cannot store a builtins\.dict"):
        _save(tmp_path, {"weights": [1]}, pre, "regression")

    class LocalNet(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(TrainingError, match="importable module"):
        _save(tmp_path, LocalNet(), pre, "regression", init_kwargs={})
    with pytest.raises(TrainingError, match="needs init_kwargs"):
        _save(tmp_path, userpkg.nets.SmallNet(pre.output_dim), pre, "regression")
    with pytest.raises(TrainingError, match="JSON values"):
        _save(tmp_path, userpkg.nets.SmallNet(pre.output_dim), pre, "regression", init_kwargs={"x": object()})


# --- tampered model directories -----------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small model of each flavor (trained once for the tampering tests)."""
    import lightgbm
    import xgboost
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("flavors")
    built: dict[str, Path] = {}
    wine = multiclass_frame()
    y_wine = wine.pop("y").map({"bird": 0, "cat": 1, "dog": 2})
    cancer = binary_frame()
    y_cancer = (cancer.pop("y") == "malignant").astype(int)
    pre_wine = Preprocessor.fit(wine, list(wine.columns))
    pre_cancer = Preprocessor.fit(cancer, list(cancer.columns))
    for name, model, pre, task in (
        ("xgboost", xgboost.XGBClassifier(n_estimators=5), pre_wine, "multiclass"),
        ("lightgbm", lightgbm.LGBMClassifier(n_estimators=5, verbose=-1), pre_cancer, "binary"),
        ("sklearn", LogisticRegression(max_iter=2000), pre_wine, "multiclass"),
    ):
        x, y = (
            (pre_wine.transform(wine), y_wine)
            if pre is pre_wine
            else (pre_cancer.transform(cancer), y_cancer)
        )
        model.fit(x, y)
        out = root / name
        out.mkdir()
        extra: dict[str, Any] = (
            {"class_order": ["benign", "malignant"], "positive_label": "malignant"}
            if task == "binary"
            else {"class_order": ["bird", "cat", "dog"]}
        )
        save_model_dir(
            out, model, task=task, target="y", features=list(pre.features), preprocessor=pre, **extra
        )
    for task, frame in (("multiclass", multiclass_frame()), ("binary", binary_frame())):
        cfg = {"target": "y", "params": {"epochs": 1, "hidden_units": [8]}, "device": "cpu"}
        if task == "binary":
            cfg["positive_label"] = "malignant"
        trainer.train(frame, cfg, root / f"torch_{task}")
        built[f"torch_{task}"] = root / f"torch_{task}"
    built.update({name: root / name for name in ("xgboost", "lightgbm", "sklearn")})
    return built


def tampered(src: Path, dst: Path, **changes: Any) -> Path:
    """A copy of ``src`` with keys of model_config.json changed (None removes a key)."""
    shutil.copytree(src, dst)
    config = json.loads((dst / CONFIG_FILE).read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (dst / CONFIG_FILE).write_text(json.dumps(config))
    return dst


def test_the_untampered_models_load(models: dict[str, Path]) -> None:
    for name, path in models.items():
        frame = binary_frame() if name in ("lightgbm", "torch_binary") else multiclass_frame()
        assert np.isfinite(load_predictor(path).predict_scores(frame)).all(), name


@pytest.mark.parametrize(
    "module_class", ["subprocess:Popen", "os:system", "builtins:eval", "this:Zen", "antigravity:fly"]
)
def test_a_module_class_from_the_standard_library_is_refused_unimported_and_uncalled(
    module_class: str, models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    calls: list[Any] = []

    class Recorder:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            calls.append((args, kwargs))

    monkeypatch.setattr(subprocess, "Popen", Recorder)
    monkeypatch.setattr("os.system", lambda *a, **k: calls.append(a))
    marker = tmp_path / "pwned"
    imported_before = set(sys.modules)
    path = tampered(
        models["torch_binary"],
        tmp_path / "m",
        model_type="module",
        module_class=module_class,
        init_kwargs={"args": ["touch", str(marker)]},
    )

    with pytest.raises(ArtifactError, match="module_class"):
        load_predictor(path)

    assert calls == []
    assert not marker.exists()
    module = module_class.split(":")[0]
    assert module in imported_before or module not in sys.modules  # not even imported
    assert capsys.readouterr().out == ""  # `this` prints the Zen of Python when imported


@pytest.mark.parametrize("module_class", ["userpkg.sentinel:Trap", "userpkg.sentinel:make_module"])
def test_a_module_class_that_is_not_a_torch_module_is_refused_uncalled(
    module_class: str, models: dict[str, Path], tmp_path: Path, userpkg: Any
) -> None:
    import userpkg.sentinel

    userpkg.sentinel.CALLS.clear()
    path = tampered(
        models["torch_binary"], tmp_path / "m", model_type="module", module_class=module_class, init_kwargs={}
    )
    with pytest.raises(ArtifactError, match=r"not a torch\.nn\.Module subclass; refusing to call it"):
        load_predictor(path)
    assert userpkg.sentinel.CALLS == []


@pytest.mark.parametrize(
    ("module_class", "words"),
    [
        ("subprocess.Popen", "must be 'package.module:Class'"),
        ("userpkg.nets:Missing", "cannot import the model's torch module"),
        ("no_such_package_xyz:Net", "cannot import the model's torch module"),
        ("torch.nn:Linear", "does not match the architecture"),
        (["userpkg.nets:SmallNet"], "must be 'package.module:Class'"),
    ],
)
def test_a_module_class_that_cannot_be_rebuilt_is_refused(
    module_class: Any, words: str, models: dict[str, Path], tmp_path: Path, userpkg: Any
) -> None:
    path = tampered(
        models["torch_binary"],
        tmp_path / "m",
        model_type="module",
        module_class=module_class,
        init_kwargs={"in_features": 8, "out_features": 1},
    )
    with pytest.raises(ArtifactError) as info:
        load_predictor(path)
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("source", "flavor", "from_flavor"),
    [
        ("lightgbm", "lightgbm", "xgboost"),
        ("xgboost", "xgboost", "torch_multiclass"),
        ("torch_multiclass", "torch", "xgboost"),
        ("sklearn", "sklearn", "lightgbm"),
        ("xgboost", "xgboost", "lightgbm"),
    ],
)
def test_weights_of_another_flavor_are_refused(
    source: str, flavor: str, from_flavor: str, models: dict[str, Path], tmp_path: Path
) -> None:
    path = tampered(models[source], tmp_path / "m")
    other = models[from_flavor]
    other_file = other / WEIGHTS_FILES["torch" if from_flavor.startswith("torch") else from_flavor]
    shutil.copyfile(other_file, path / WEIGHTS_FILES[flavor])
    with pytest.raises((ArtifactError, UnsafeModelError)):
        load_predictor(path)


@pytest.mark.parametrize(
    ("source", "changes", "words"),
    [
        ("torch_binary", {"weights_file": "model.ubj"}, "weights are model.safetensors"),
        ("xgboost", {"weights_file": "model.safetensors"}, "weights are model.ubj"),
        ("torch_binary", {"flavor": "xgboost"}, "a xgboost model's weights are model.ubj"),
        ("torch_binary", {"flavor": "xgboost", "weights_file": "model.ubj"}, "model.ubj not found"),
        ("xgboost", {"flavor": "onnx"}, "unknown flavor 'onnx'"),
        ("xgboost", {"flavor": None}, "unknown flavor None"),
        ("xgboost", {"task": "ranking"}, "unknown task 'ranking'"),
        ("xgboost", {"format_version": 3}, "unsupported format_version 3"),
        ("xgboost", {"format_version": True}, "unsupported format_version True"),
        ("xgboost", {"classes": ["bird", "dog", "cat"]}, "classes and class_order disagree"),
        ("xgboost", {"class_order": ["bird", "bird", "dog"]}, "classes and class_order disagree"),
        ("xgboost", {"class_order": [0, 1, 2], "classes": [0, 1, 2]}, "class_order must list"),
        ("xgboost", {"class_order": None}, "class_order must list"),
        ("lightgbm", {"positive_label": "fish"}, "positive label is not one of the classes"),
        ("lightgbm", {"class_order": ["malignant"], "classes": ["malignant"]}, "class_order must list"),
        ("sklearn", {"features": []}, "features must be a non-empty list"),
        ("sklearn", {"input": "pickle"}, "input must be matrix or dataframe"),
        ("torch_binary", {"input": "dataframe"}, "takes the preprocessed matrix"),
        ("torch_binary", {"model_type": "transformer"}, "unsupported model_type 'transformer'"),
        ("torch_binary", {"architecture": None}, "malformed"),
        (
            "torch_binary",
            {"preprocessing": {"features": ["x"], "numeric": {}, "categorical": {}}},
            "malformed",
        ),
    ],
)
def test_a_tampered_config_is_refused_at_load(
    source: str, changes: dict[str, Any], words: str, models: dict[str, Path], tmp_path: Path
) -> None:
    path = tampered(models[source], tmp_path / "m", **changes)
    with pytest.raises(ArtifactError) as info:
        load_predictor(path)
    assert words in str(info.value)


def test_a_network_with_the_wrong_number_of_outputs_is_refused_at_load(
    models: dict[str, Path], tmp_path: Path
) -> None:
    # The three-class network read as a binary (or regression) model: one output expected.
    as_binary = tampered(
        models["torch_multiclass"],
        tmp_path / "b",
        task="binary",
        class_order=["bird", "cat"],
        classes=["bird", "cat"],
        positive_label="cat",
    )
    with pytest.raises(ArtifactError, match="the network has 3 output"):
        load_predictor(as_binary)
    as_regression = tampered(models["torch_multiclass"], tmp_path / "r", task="regression")
    with pytest.raises(ArtifactError, match="the network has 3 output"):
        load_predictor(as_regression)
    four = ["ant", "bird", "cat", "dog"]
    more_classes = tampered(models["torch_multiclass"], tmp_path / "m", class_order=four, classes=four)
    with pytest.raises(ArtifactError, match="a multiclass model has 4"):
        load_predictor(more_classes)


@pytest.mark.parametrize("source", ["xgboost", "sklearn"])
def test_more_classes_than_the_model_has_columns_are_refused(
    source: str, models: dict[str, Path], tmp_path: Path
) -> None:
    four = ["ant", "bird", "cat", "dog"]
    path = tampered(models[source], tmp_path / "m", class_order=four, classes=four)
    with pytest.raises(ArtifactError, match="3 class columns for 4 classes"):
        load_predictor(path).predict_scores(multiclass_frame())


def test_your_module_with_two_outputs_for_a_binary_task_is_refused_when_it_predicts(
    tmp_path: Path, userpkg: Any
) -> None:
    df = binary_frame()
    out = tmp_path / "m"
    run_fit(
        "userpkg.fits:two_column_net",
        df,
        out,
        positive_label="malignant",
        threshold={"rule": "fixed", "value": 0.5},
    )
    predictor = load_predictor(out)
    with pytest.raises(ArtifactError, match="one value per row expected"):
        predictor.predict_scores(df)


def test_a_missing_feature_column_is_named(models: dict[str, Path]) -> None:
    frame = multiclass_frame().drop(columns=["f3"])
    with pytest.raises(MLOpsError, match="f3"):
        load_predictor(models["sklearn"]).predict_scores(frame)
