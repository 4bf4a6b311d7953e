"""Model flavors: how a trained model of any supported library is stored, and loaded safely.

A trained model is a directory of ``model_config.json`` and one weights file in the safest
format its library has:

==========  =====================  ===================================================
flavor      weights file           what it holds
==========  =====================  ===================================================
torch       ``model.safetensors``  built-in ``mlp``/``cnn``, or your own ``nn.Module``
xgboost     ``model.ubj``          an XGBoost booster (UBJSON, no code)
lightgbm    ``model.txt``          a LightGBM booster (its text model, no code)
sklearn     ``model.skops``        any scikit-learn estimator or pipeline (skops; loaded
                                   with the types the scanner's allowlist trusts, never
                                   ``trusted=True``)
==========  =====================  ===================================================

``model_config.json`` (``format_version`` 2; version 1, the binary torch models of earlier
releases, is still read) says the flavor, the task (:mod:`airflow_mlops.tasks`), the target and
features, the classes, how input rows are prepared (the project's :class:`~airflow_mlops.
training.networks.Preprocessor`, or ``"input": "dataframe"`` for a pipeline that prepares its own),
the library and its version (for the ML-BOM), and the operating threshold of a binary model.

:func:`load_predictor` rebuilds any flavor into a :class:`Predictor`: DataFrame in, the task's
output out (:mod:`airflow_mlops.metrics`). Heavy libraries are imported only for the flavor being
loaded. No Airflow, no MLflow.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import ArtifactError, DataError, TrainingError
from airflow_mlops.labels import label_key
from airflow_mlops.security.scanning.model_formats import FORMATS  # serialisation format per flavor
from airflow_mlops.tasks import TASKS, sort_classes

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
CONFIG_FILE = "model_config.json"
FLAVORS = ("torch", "xgboost", "lightgbm", "sklearn")
WEIGHTS_FILES = {
    "torch": "model.safetensors",
    "xgboost": "model.ubj",
    "lightgbm": "model.txt",
    "sklearn": "model.skops",
}
_CLASS_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_XGB_OBJECTIVES = {"binary": ("binary:logistic",), "multiclass": ("multi:softprob",)}
_XGB_REGRESSION_PREFIXES = ("reg:", "count:")
#: LightGBM objectives (canonical names) whose output is the task's (class probabilities).
_LGB_OBJECTIVES = {"binary": ("binary", "cross_entropy"), "multiclass": ("multiclass", "multiclassova")}
_LGB_NOT_REGRESSION = frozenset(
    {
        "binary",
        "cross_entropy",
        "cross_entropy_lambda",
        "multiclass",
        "multiclassova",
        "lambdarank",
        "rank_xendcg",
    }
)
_PREDICT_CHUNK = 65536


# --- which flavor an object is -----------------------------------------------------------------


def _is_instance(obj: Any, module: str, names: Sequence[str]) -> bool:
    """isinstance against ``module.name`` classes, without importing a library not yet loaded."""
    loaded = sys.modules.get(module)
    if loaded is None:
        return False
    classes = tuple(c for c in (getattr(loaded, n, None) for n in names) if isinstance(c, type))
    return bool(classes) and isinstance(obj, classes)


def flavor_of(model: Any) -> str:
    """The flavor a fitted model object is stored as.

    :raises TrainingError: a model of a library the pipeline cannot store safely.
    """
    if _is_instance(model, "torch.nn", ("Module",)):
        return "torch"
    if _is_instance(model, "xgboost", ("Booster", "XGBModel")):
        return "xgboost"
    if _is_instance(model, "lightgbm", ("Booster", "LGBMModel")):
        return "lightgbm"
    if _is_instance(model, "sklearn.base", ("BaseEstimator",)):
        return "sklearn"
    raise TrainingError(
        f"cannot store a {type(model).__module__}.{type(model).__qualname__}: the pipeline stores torch "
        "modules, XGBoost and LightGBM models and scikit-learn estimators or pipelines (see docs/training.md)"
    )


def library_version(flavor: str) -> dict[str, str]:
    """``{"name": ..., "version": ...}`` of the library a flavor needs (the installed one)."""
    module = {"torch": "torch", "xgboost": "xgboost", "lightgbm": "lightgbm", "sklearn": "sklearn"}[flavor]
    name = {"sklearn": "scikit-learn"}.get(module, module)
    loaded = importlib.import_module(module)
    return {"name": name, "version": str(getattr(loaded, "__version__", "unknown"))}


# --- saving ------------------------------------------------------------------------------------


def save_model_dir(
    directory: str | Path,
    model: Any,
    *,
    task: str,
    target: str,
    features: Sequence[str],
    class_order: Sequence[Any] | None = None,
    positive_label: Any = None,
    preprocessor: Any = None,
    seed: int | None = None,
    training: Mapping[str, Any] | None = None,
    threshold_choice: Mapping[str, Any] | None = None,
    init_kwargs: Mapping[str, Any] | None = None,
    target_scaling: Mapping[str, float] | None = None,
    calibration: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``model`` (any flavor) and its ``model_config.json`` into the existing ``directory``.

    :param class_order: classification only: the label of each of the model's output columns, in
        the model's order (a scikit-learn classifier's ``classes_``; for the pipeline's own
        encodings, the canonical labels). Default: the model's ``classes_``.
    :param preprocessor: the fitted :class:`~airflow_mlops.training.networks.Preprocessor` that
        turns rows into the model's input matrix, or None when the model takes the feature
        columns as a DataFrame (a scikit-learn pipeline that prepares its own input).
    :param init_kwargs: your own torch module only: the JSON keyword arguments that rebuild it.
    :param target_scaling: a regression network trained on a standardised target:
        ``{"mean": m, "std": s}``; predictions are ``m + s * output``.
    :param calibration: what the monitor estimates the model's performance with when a window
        has no labels (:mod:`airflow_mlops.training.calibration`: the calibrators of a
        classifier's probabilities, or a regression's error model), fitted on validation rows;
        stored as ``calibration`` (JSON numbers only).
    :returns: the config written.
    :raises TrainingError: the model cannot be stored (an unknown library, a classifier without
        probabilities, a torch module defined in ``__main__``, ...).
    """
    if task not in TASKS:
        raise TrainingError(f"unknown task {task!r}; one of {', '.join(TASKS)}")
    directory = Path(directory)
    flavor = flavor_of(model)
    order = _class_order(model, task, class_order)
    config: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "flavor": flavor,
        "format": FORMATS[flavor],
        "framework": library_version(flavor),
        "task": task,
        "target": target,
        "features": [str(f) for f in features],
        "weights_file": WEIGHTS_FILES[flavor],
        "seed": seed,
        "training": dict(training or {}),
    }
    if task != "regression":
        config["class_order"] = order
        config["classes"] = sort_classes(order)
        if len(set(order)) != len(order):
            raise TrainingError(f"the model's classes {order} are not distinct once read as labels")
    if task == "binary":
        if positive_label is None or label_key(positive_label) not in order:
            raise TrainingError(
                f"the binary model's classes {order} do not include the positive label {positive_label!r}"
            )
        config["positive_label"] = positive_label
    if task == "multiclass" and len(order) < 3:
        raise TrainingError(f"a multiclass model needs three or more classes, this one has {order}")
    if preprocessor is not None:
        config["input"] = "matrix"
        config["preprocessing"] = preprocessor.to_dict()
        config["output_columns"] = preprocessor.output_names
        if list(preprocessor.features) != config["features"]:
            raise TrainingError("the preprocessor's features differ from the model's features")
    else:
        config["input"] = "dataframe"
    if target_scaling is not None:
        if task != "regression":
            raise TrainingError("target_scaling applies to regression models only")
        config["target_scaling"] = {
            "mean": float(target_scaling["mean"]),
            "std": float(target_scaling["std"]),
        }
    if threshold_choice is not None:
        if task != "binary":
            raise TrainingError("an operating threshold applies to binary models only")
        config["threshold"] = float(threshold_choice["value"])
        config["threshold_choice"] = dict(threshold_choice)
    if calibration is not None:
        from airflow_mlops.training.calibration import check_calibration

        checked = check_calibration(calibration)
        if checked["task"] != task:
            raise TrainingError(
                f"a calibration fitted for a {checked['task']} model cannot go with a {task} model"
            )
        config["calibration"] = checked

    writer = {
        "torch": _save_torch,
        "xgboost": _save_xgboost,
        "lightgbm": _save_lightgbm,
        "sklearn": _save_sklearn,
    }
    writer[flavor](directory, model, config, init_kwargs)
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, allow_nan=False) + "\n")
    return config


def _class_order(model: Any, task: str, given: Sequence[Any] | None) -> list[str]:
    if task == "regression":
        return []
    raw = given if given is not None else getattr(model, "classes_", None)
    if raw is None:
        raise TrainingError(
            f"cannot tell the classes of this {type(model).__name__}: pass class_order (the label of each "
            "output column) to save it"
        )
    return [label_key(c) for c in list(raw)]


def _save_torch(directory: Path, model: Any, config: dict[str, Any], init_kwargs: Any) -> None:
    import torch
    from safetensors.torch import save_file

    from airflow_mlops.training.networks import MODEL_TYPES

    builtin = type(model) in MODEL_TYPES.values()
    if builtin:
        config["model_type"] = model.model_type
        config["architecture"] = model.architecture()
        outputs = model.outputs
    else:
        cls = type(model)
        if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
            raise TrainingError(
                f"your torch module {cls.__qualname__} is defined in {cls.__module__}; define it in an "
                "importable module of your package so the model can be rebuilt where it is loaded"
            )
        if init_kwargs is None:
            raise TrainingError(
                f"saving your own torch module {cls.__qualname__} needs init_kwargs: the keyword "
                "arguments that rebuild it (JSON values), e.g. ctx.save(model, preprocessor, "
                "init_kwargs={'input_dim': 30})"
            )
        try:
            json.dumps(init_kwargs, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TrainingError(f"init_kwargs must be JSON values: {exc}") from exc
        config["model_type"] = "module"
        config["module_class"] = f"{cls.__module__}:{cls.__qualname__}"
        config["init_kwargs"] = dict(init_kwargs)
        outputs = None
    config["torch_version"] = torch.__version__
    if outputs is not None:
        expected = len(config["class_order"]) if config["task"] == "multiclass" else 1
        if outputs != expected:
            raise TrainingError(
                f"the network has {outputs} output(s); a {config['task']} model needs {expected}"
            )
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILES["torch"]))


def _xgb_booster(model: Any) -> Any:
    return model.get_booster() if hasattr(model, "get_booster") else model


def _save_xgboost(directory: Path, model: Any, config: dict[str, Any], init_kwargs: Any) -> None:
    booster = _xgb_booster(model)
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    task = config["task"]
    allowed = _XGB_OBJECTIVES.get(task)
    if (allowed and objective not in allowed) or (
        task == "regression" and not objective.startswith(_XGB_REGRESSION_PREFIXES)
    ):
        raise TrainingError(
            f"an XGBoost {task} model must use objective "
            f"{' or '.join(allowed or ('reg:*', 'count:poisson'))}, not {objective!r}"
        )
    config["objective"] = objective
    best = getattr(model, "best_iteration", None)
    if best is not None and hasattr(model, "get_booster"):
        config["iteration_range"] = [0, int(best) + 1]
    booster.save_model(str(directory / WEIGHTS_FILES["xgboost"]))


def _save_lightgbm(directory: Path, model: Any, config: dict[str, Any], init_kwargs: Any) -> None:
    booster = model.booster_ if hasattr(model, "booster_") else model
    # The canonical name ("binary sigmoid:1" -> "binary"), whatever alias the params used.
    canonical = str(booster.dump_model(num_iteration=1)["objective"]).split(" ")[0]
    objective = str(booster.params.get("objective") or canonical)
    task = config["task"]
    allowed = _LGB_OBJECTIVES.get(task)
    if (allowed and canonical not in allowed) or (task == "regression" and canonical in _LGB_NOT_REGRESSION):
        raise TrainingError(
            f"a LightGBM {task} model must use objective "
            f"{' or '.join(allowed) if allowed else 'a regression objective'}, not {objective!r}"
            + (" (its outputs are not class probabilities)" if allowed else "")
        )
    config["objective"] = objective
    booster.save_model(
        str(directory / WEIGHTS_FILES["lightgbm"]), num_iteration=booster.best_iteration or None
    )


def _save_sklearn(directory: Path, model: Any, config: dict[str, Any], init_kwargs: Any) -> None:
    import skops.io as sio

    task = config["task"]
    if task != "regression" and not hasattr(model, "predict_proba"):
        raise TrainingError(
            f"{type(model).__name__} has no predict_proba: the gates and the monitor need class "
            "probabilities; wrap it in sklearn.calibration.CalibratedClassifierCV (or set "
            "probability=True for an SVC)"
        )
    config["estimator"] = f"{type(model).__module__}.{type(model).__qualname__}"
    path = directory / WEIGHTS_FILES["sklearn"]
    sio.dump(model, str(path))
    # Refuse now, not at the first load: a model holding a type the scanner's allowlists do not
    # trust (an estimator class of your own, a custom transformer) can never be loaded safely.
    from airflow_mlops.exceptions import UnsafeModelError
    from airflow_mlops.security.scanning.skops_policy import trusted_skops_types

    try:
        trusted_skops_types(path)
    except UnsafeModelError as exc:
        path.unlink(missing_ok=True)
        raise TrainingError(
            f"this scikit-learn model cannot be stored safely: {exc}. Models are loaded with the types of "
            "scikit-learn, XGBoost and LightGBM only (never by unpickling your code); build it from those "
            "(a Pipeline of their estimators and transformers), or train a torch module of your own"
        ) from exc


# --- loading -----------------------------------------------------------------------------------


class Predictor:
    """A loaded model of any flavor: DataFrame in, the task's output out."""

    def __init__(self, config: Mapping[str, Any], backend: Any, preprocessor: Any) -> None:
        self.config = dict(config)
        self.backend = backend
        self.preprocessor = preprocessor
        self.task: str = self.config["task"]
        self.flavor: str = self.config["flavor"]
        order = list(self.config.get("class_order") or [])
        self.classes: list[str] = list(self.config.get("classes") or [])
        # column j of the task output = column _columns[j] of the model's own output
        self._columns = [order.index(c) for c in self.classes] if self.classes else []
        self._positive = (
            order.index(label_key(self.config["positive_label"])) if self.task == "binary" else None
        )

    @property
    def features(self) -> list[str]:
        return list(self.config["features"])

    @property
    def positive_label(self) -> Any:
        return self.config.get("positive_label")

    @property
    def calibration(self) -> dict[str, Any] | None:
        """The stored calibration (:mod:`airflow_mlops.training.calibration`), or None (a model
        trained without validation rows, or before calibration was stored)."""
        value = self.config.get("calibration")
        return dict(value) if isinstance(value, Mapping) else None

    @property
    def threshold(self) -> float | None:
        value = self.config.get("threshold")
        return float(value) if value is not None else None

    def _inputs(self, df: pd.DataFrame) -> Any:
        if self.preprocessor is not None:
            return self.preprocessor.transform(df)
        missing = [c for c in self.features if c not in {str(x) for x in df.columns}]
        if missing:
            raise DataError(f"input data lacks feature column(s) {', '.join(repr(c) for c in missing)}")
        return df[self.features]

    def predict_scores(self, df: pd.DataFrame) -> np.ndarray:
        """The task's output for each row: binary, the positive class's probability (1-D);
        multiclass, class probabilities ``(rows, len(classes))``; regression, values (1-D).

        :raises DataError: a feature column is missing or unusable.
        """
        import numpy as np

        x = self._inputs(df)
        raw = np.asarray(self.backend.predict(x), dtype=np.float64)
        if len(raw) != len(df):
            raise ArtifactError(f"the model returned {len(raw)} prediction(s) for {len(df)} row(s)")
        if self.task == "regression":
            out = raw.reshape(len(df), -1)
            if out.shape[1] != 1:
                raise ArtifactError(f"a regression model must give one value per row, got {out.shape[1]}")
            values = out[:, 0]
            scaling = self.config.get("target_scaling")
            if scaling:
                values = scaling["mean"] + scaling["std"] * values
            return values
        probs = raw
        if probs.ndim == 1 or (probs.ndim == 2 and probs.shape[1] == 1):
            if self.task != "binary":
                raise ArtifactError("a multiclass model returned one score per row")
            p1 = probs.reshape(-1)
            return p1 if self._positive == 1 else 1.0 - p1
        if probs.shape[1] != len(self.config["class_order"]):
            raise ArtifactError(
                f"the model returned {probs.shape[1]} class columns for {len(self.config['class_order'])} classes"
            )
        if self.task == "binary":
            return probs[:, self._positive]
        return probs[:, self._columns]

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Class probabilities: binary, the positive class's (1-D); multiclass, ``(rows, classes)``."""
        if self.task == "regression":
            raise DataError("a regression model has no class probabilities; use predict_scores")
        return self.predict_scores(df)

    def predict(self, df: pd.DataFrame, *, threshold: float | None = None) -> np.ndarray:
        """Predicted labels (canonical label texts; binary at the model's threshold) or values."""
        import numpy as np

        scores = self.predict_scores(df)
        if self.task == "regression":
            return scores
        if self.task == "binary":
            cut = (
                threshold
                if threshold is not None
                else (self.threshold if self.threshold is not None else 0.5)
            )
            positive = label_key(self.config["positive_label"])
            negative = next(c for c in self.classes if c != positive)
            return np.where(scores >= cut, positive, negative).astype(object)
        return np.asarray(self.classes, dtype=object)[np.argmax(scores, axis=1)]

    def describe(self) -> dict[str, Any]:
        """Flavor, task, format and library: what the ML-BOM and the reports say of the model."""
        return {
            "flavor": self.flavor,
            "task": self.task,
            "format": self.config.get("format", FORMATS.get(self.flavor, "")),
            "framework": self.config.get("framework")
            or {"name": "torch", "version": self.config.get("torch_version")},
            "model_type": self.config.get("model_type") or self.config.get("estimator") or self.flavor,
            **({"classes": self.classes} if self.classes else {}),
        }


def comparison_problem(candidate: Any, champion: Any, *, same_classes: bool = True) -> str | None:
    """Why two loaded models (:class:`Predictor`) cannot be judged on the same rows, or None:
    another task, another positive class (binary), or -- with ``same_classes`` (metrics held
    against each other) -- other classes (multiclass)."""
    from airflow_mlops.tasks import describe

    if champion.task != candidate.task:
        return f"the champion is a {champion.task} model, the candidate {candidate.task}"
    if same_classes and candidate.task == "multiclass" and list(champion.classes) != list(candidate.classes):
        return (
            f"the champion predicts other classes than the candidate: champion "
            f"{describe('multiclass', champion.classes)}, candidate {describe('multiclass', candidate.classes)}"
        )
    if candidate.task == "binary" and label_key(champion.positive_label) != label_key(
        candidate.positive_label
    ):
        return (
            f"the champion scores positive class {champion.positive_label!r}, the candidate "
            f"{candidate.positive_label!r}"
        )
    return None


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """``model_config.json`` of ``model_dir``, upgraded to format version 2 in memory.

    :raises ArtifactError: missing, malformed, or of an unknown format version, flavor or task.
    """
    model_dir = Path(model_dir)
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        raise ArtifactError(f"{path} not found: {model_dir} is not a model trained by airflow-mlops")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ArtifactError(f"{path} must hold a JSON object")
    version = config.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise ArtifactError(
            f"{path}: unsupported format_version {version!r}; this version of airflow-mlops reads "
            f"format_version {', '.join(map(str, READABLE_VERSIONS))}: retrain the model or upgrade airflow-mlops"
        )
    if version == 1:  # the binary torch models of earlier releases
        positive = label_key(config.get("positive_label", 1))
        negative = "0" if positive != "0" else "1"
        config = {
            **config,
            "flavor": "torch",
            "format": "safetensors",
            "task": "binary",
            "input": "matrix",
            "class_order": [negative, positive],
            "classes": sort_classes([negative, positive]),
        }
    flavor, task = config.get("flavor"), config.get("task")
    if flavor not in FLAVORS:
        raise ArtifactError(f"{path}: unknown flavor {flavor!r}; one of {', '.join(FLAVORS)}")
    if task not in TASKS:
        raise ArtifactError(f"{path}: unknown task {task!r}; one of {', '.join(TASKS)}")
    if config.get("weights_file", WEIGHTS_FILES[flavor]) != WEIGHTS_FILES[flavor]:
        raise ArtifactError(f"{path}: a {flavor} model's weights are {WEIGHTS_FILES[flavor]}")
    if task != "regression":
        order = config.get("class_order")
        if not isinstance(order, list) or len(order) < 2 or not all(isinstance(c, str) for c in order):
            raise ArtifactError(f"{path}: class_order must list the label of each output column")
        if len(set(order)) != len(order) or sort_classes(order) != config.get("classes"):
            raise ArtifactError(f"{path}: classes and class_order disagree")
        if task == "binary" and label_key(config.get("positive_label")) not in order:
            raise ArtifactError(f"{path}: the positive label is not one of the classes")
    features = config.get("features")
    if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
        raise ArtifactError(f"{path}: features must be a non-empty list of column names")
    if config.get("input") not in ("matrix", "dataframe"):
        raise ArtifactError(f"{path}: input must be matrix or dataframe")
    return config


def load_predictor(model_dir: str | Path, *, device: str = "cpu") -> Predictor:
    """Rebuild a trained model of any flavor from ``model_dir``.

    Nothing is unpickled: safetensors, XGBoost's UBJSON, LightGBM's text model, or skops with
    only the types the scanner's allowlist trusts.

    :raises ArtifactError: a file is missing or malformed, the format is unknown, or the weights
        do not match the config.
    """
    model_dir = Path(model_dir)
    config = read_config(model_dir)
    flavor = config["flavor"]
    weights = model_dir / WEIGHTS_FILES[flavor]
    if not weights.is_file():
        raise ArtifactError(f"{weights} not found: the {flavor} model's weights are missing")
    preprocessor = None
    if config["input"] == "matrix":
        from airflow_mlops.training.networks import Preprocessor

        try:
            preprocessor = Preprocessor.from_dict(config["preprocessing"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ArtifactError(f"{model_dir / CONFIG_FILE}: preprocessing is malformed: {exc}") from exc
        if list(preprocessor.features) != config["features"]:
            raise ArtifactError(f"{model_dir / CONFIG_FILE}: preprocessing features differ from features")
    loader = {
        "torch": _TorchBackend,
        "xgboost": _XGBoostBackend,
        "lightgbm": _LightGBMBackend,
        "sklearn": _SklearnBackend,
    }
    backend = loader[flavor](weights, config, preprocessor, device)
    return Predictor(config, backend, preprocessor)


class _TorchBackend:
    def __init__(self, weights: Path, config: Mapping[str, Any], preprocessor: Any, device: str) -> None:
        import torch
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from airflow_mlops.training.networks import MODEL_TYPES

        where = weights.parent / CONFIG_FILE
        model_type = config.get("model_type")
        if preprocessor is None:
            raise ArtifactError(f"{where}: a torch model takes the preprocessed matrix (input: matrix)")
        try:
            if model_type == "module":
                network = _build_user_module(config)
            elif model_type in MODEL_TYPES:
                network = MODEL_TYPES[model_type].from_architecture(config["architecture"])
            else:
                raise ArtifactError(
                    f"{where}: unsupported model_type {model_type!r}; this version of airflow-mlops reads "
                    f"{', '.join([*MODEL_TYPES, 'module'])}"
                )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ArtifactError(f"{where} is malformed: {type(exc).__name__}: {exc}") from exc
        outputs = getattr(network, "outputs", None) if model_type != "module" else None
        expected = len(config["class_order"]) if config["task"] == "multiclass" else 1
        if outputs is not None and outputs != expected:
            raise ArtifactError(
                f"{where}: the network has {outputs} output(s); a {config['task']} model has {expected}"
            )
        input_dim = getattr(network, "input_dim", None)
        if input_dim is not None and preprocessor.output_dim != input_dim:
            raise ArtifactError(
                f"{where}: the preprocessing yields {preprocessor.output_dim} columns but the network "
                f"expects {input_dim}"
            )
        try:
            state = load_file(str(weights), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ArtifactError(f"{weights} is not a readable safetensors file: {exc}") from exc
        if model_type != "module":
            bad = sorted(k for k, v in state.items() if v.dtype != torch.float32)
            if bad:
                raise ArtifactError(f"{weights}: tensors {', '.join(bad)} are not float32")
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ArtifactError(f"{weights} does not match the architecture in {where}: {exc}") from exc
        self.device = torch.device(device)
        self.model = network.to(self.device).eval()
        self.task = config["task"]

    def predict(self, x: np.ndarray) -> np.ndarray:
        import numpy as np
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(x), _PREDICT_CHUNK):
                batch = torch.from_numpy(np.ascontiguousarray(x[start : start + _PREDICT_CHUNK])).to(
                    self.device
                )
                out = self.model(batch).float()
                if self.task != "multiclass" and out.numel() != len(batch):
                    raise ArtifactError(
                        f"the {self.task} network gave {tuple(out.shape)} for {len(batch)} row(s): one value per row expected"
                    )
                if self.task == "binary":
                    out = torch.sigmoid(out.reshape(len(batch)))
                elif self.task == "multiclass":
                    out = torch.softmax(out, dim=-1)
                chunks.append(out.to("cpu", torch.float64).numpy())
        if not chunks:
            return np.zeros((0,), dtype=np.float64)
        return np.concatenate(chunks)


def _build_user_module(config: Mapping[str, Any]) -> Any:
    """Your own torch module, rebuilt from ``module_class`` and ``init_kwargs``.

    The class is imported by its path and must be a ``torch.nn.Module`` subclass before anything
    is called: a config naming any other callable is refused unrun.
    """
    import torch

    path = config.get("module_class")
    if not isinstance(path, str) or not _CLASS_PATH.match(path):
        raise ArtifactError(f"module_class must be 'package.module:Class', got {path!r}")
    module_name, _, qualname = path.partition(":")
    if module_name.split(".")[0] in sys.stdlib_module_names:
        # Importing runs a module's code: a standard-library module never defines your network, and
        # some act on import (antigravity, this, idlelib.idle).
        raise ArtifactError(f"module_class {path} names a standard-library module; refusing to import it")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ArtifactError(
            f"cannot import the model's torch module {path}: {exc}; install the package that defines it "
            "where the model is loaded (see training.python_path in docs/training.md)"
        ) from exc
    if not (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
        raise ArtifactError(f"module_class {path} is not a torch.nn.Module subclass; refusing to call it")
    kwargs = config.get("init_kwargs")
    if not isinstance(kwargs, dict):
        raise ArtifactError("init_kwargs must be a JSON object")
    try:
        return obj(**kwargs)
    except Exception as exc:  # the user's constructor: any error means the config does not fit it
        raise ArtifactError(
            f"cannot rebuild {path} from init_kwargs {kwargs}: {type(exc).__name__}: {exc}"
        ) from exc


class _XGBoostBackend:
    def __init__(self, weights: Path, config: Mapping[str, Any], preprocessor: Any, device: str) -> None:
        import xgboost as xgb

        self.booster = xgb.Booster()
        try:
            self.booster.load_model(str(weights))
        except xgb.core.XGBoostError as exc:
            raise ArtifactError(f"{weights} is not a readable XGBoost model: {exc}") from exc
        self.booster.set_param({"nthread": 0})
        rng = config.get("iteration_range")
        self.iteration_range = tuple(int(i) for i in rng) if rng else (0, 0)
        self.dataframe = config["input"] == "dataframe"

    def predict(self, x: Any) -> np.ndarray:
        import xgboost as xgb

        matrix = (
            xgb.DMatrix(x, enable_categorical=self.dataframe)
            if self.dataframe
            else xgb.DMatrix(x, missing=float("nan"))
        )
        return self.booster.predict(matrix, iteration_range=self.iteration_range)


class _LightGBMBackend:
    def __init__(self, weights: Path, config: Mapping[str, Any], preprocessor: Any, device: str) -> None:
        import lightgbm as lgb

        try:
            self.booster = lgb.Booster(model_file=str(weights))
        except lgb.basic.LightGBMError as exc:
            raise ArtifactError(f"{weights} is not a readable LightGBM model: {exc}") from exc

    def predict(self, x: Any) -> np.ndarray:
        import numpy as np

        return np.asarray(self.booster.predict(x))


class _SklearnBackend:
    def __init__(self, weights: Path, config: Mapping[str, Any], preprocessor: Any, device: str) -> None:
        import skops.io as sio

        from airflow_mlops.security.scanning.skops_policy import trusted_skops_types

        trusted = trusted_skops_types(weights)
        try:
            self.model = sio.load(str(weights), trusted=trusted)
        except Exception as exc:  # skops raises many types for a malformed file
            raise ArtifactError(
                f"{weights} is not a readable skops model: {type(exc).__name__}: {exc}"
            ) from exc
        self.task = config["task"]
        if self.task != "regression" and not hasattr(self.model, "predict_proba"):
            raise ArtifactError(f"{weights}: the classifier has no predict_proba")

    def predict(self, x: Any) -> np.ndarray:
        if self.task == "regression":
            return self.model.predict(x)
        return self.model.predict_proba(x)


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
