"""The trainer's inputs: its config checked at the trainer's boundary, and the training table read.

A job's config can come from anywhere (``job.json`` is a file), so the trainer checks it here,
against the tables of :mod:`airflow_mlops.training.params` the spec's models are declared from:
the rules are written once. The config holds::

    {"target": "is_fraud", "features": ["amount", "merchant"], "positive_label": 1,
     "categorical": ["merchant"],           # optional; default: object/string/category columns
     "model": "mlp",                        # mlp | cnn (cnn: params.image_shape is required), or an
                                            # estimator (xgboost, lightgbm, a class path)
     "task": null,                          # binary | multiclass | regression; null: inferred
     "params": {"epochs": 20, "lr": 0.001, "batch_size": 512, "hidden_units": [64, 32],
                "dropout": 0.1, "weight_decay": 0.0, "class_weight": "balanced",
                "image_shape": null, "conv_channels": [16, 32]},
     "seed": 42, "device": "auto",          # auto | cpu | cuda
     "precision": "auto",                   # auto (bf16 autocast on a bf16 GPU) | fp32 | bf16
     "privacy": null,                       # or {"epsilon": 3, "delta": 1e-5, "max_grad_norm": 1,
                                            #     "noise_multiplier": null}: DP-SGD (Opacus)
     "validation_fraction": 0.1,            # optional; 0 trains on everything, keeps the last epoch
     "early_stopping_patience": null,       # optional; stop after this many epochs without progress
     "threshold": {"rule": "best_f1"},      # optional; the operating threshold's rule, chosen on
                                            # the validation split (see training/threshold.py)
     "watermark": null}                     # or the watermark's record (airflow_mlops.security.
                                            # watermark.WatermarkRecord, no key): the job then
                                            # carries its trigger rows, learned with the training rows
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import DataError, TrainingError
from airflow_mlops.tasks import TASKS
from airflow_mlops.training.params import (
    BUILTIN_MODELS,
    NETWORK_PARAMS,
    PRIVACY,
    RUN_SETTINGS,
    Setting,
    defaults,
)
from airflow_mlops.training.threshold import DEFAULT_RULE, check_rule

if TYPE_CHECKING:
    import pandas as pd

#: The defaults of the built-in networks' params (from :data:`params.NETWORK_PARAMS`).
DEFAULT_PARAMS: dict[str, Any] = defaults(NETWORK_PARAMS)
#: The defaults of ``privacy`` beside its required ``epsilon``.
PRIVACY_DEFAULTS: dict[str, Any] = defaults(PRIVACY)
CONFIG_KEYS = frozenset(
    {
        "model",
        "task",
        "privacy",
        "target",
        "features",
        "positive_label",
        "categorical",
        "params",
        "threshold",
        "watermark",
    }
    | set(RUN_SETTINGS)
)

Bad = Callable[[str, str], TrainingError]


def read_table(path: Path) -> pd.DataFrame:
    """The training table at ``path`` (``.csv``, else parquet); DataError if it cannot be read."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"training data file not found: {path}")
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow and pandas raise many types; all mean "unreadable"
        raise DataError(f"cannot read training data {path}: {type(exc).__name__}: {exc}") from exc


def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the config and fill in defaults. Raises TrainingError naming the bad key."""
    if not isinstance(config, Mapping):
        raise TrainingError("the trainer config must be a JSON object")
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise TrainingError(
            f"unknown trainer config key(s): {', '.join(unknown)}; known keys: {', '.join(sorted(CONFIG_KEYS))}"
        )

    def bad(key: str, expected: str) -> TrainingError:
        node: Any = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        return TrainingError(f"trainer config: {key} must be {expected}, got {node!r}")

    common = _common_config(config, bad)
    raw_params = config.get("params") or {}
    if not isinstance(raw_params, Mapping):
        raise bad("params", "an object")
    model = config.get("model", "mlp")
    if not isinstance(model, str) or not model:
        raise bad("model", "mlp, cnn, xgboost, lightgbm or the import path of an estimator class")
    task = config.get("task")
    if task is not None and task not in TASKS:
        raise bad("task", f"one of {', '.join(TASKS)} or null (inferred from the target)")
    if model not in BUILTIN_MODELS:
        return check_estimator_config(config, model, task, dict(raw_params), common)
    unknown = sorted(set(raw_params) - set(NETWORK_PARAMS))
    if unknown:
        raise TrainingError(
            f"unknown trainer params: {', '.join(unknown)}; known: {', '.join(sorted(NETWORK_PARAMS))}"
        )
    params = {**DEFAULT_PARAMS, **raw_params}
    _check_table(NETWORK_PARAMS, params, "params.", bad)
    if model == "cnn" and params["image_shape"] is None:
        raise bad("params.image_shape", "set for model cnn: [channels, height, width]")
    precision = _setting(config, "precision", bad)
    privacy = check_privacy(config.get("privacy"), bad)
    if privacy is not None and common["early_stopping_patience"] is not None:
        raise TrainingError(
            "trainer config: early_stopping_patience cannot be combined with privacy (DP-SGD keeps the "
            "last epoch: choosing an epoch by validation loss would spend privacy unaccounted)"
        )
    return {
        **common,
        "model": model,
        "task": task,
        "precision": precision,
        "privacy": privacy,
        "params": params,
    }


def _check_table(table: Mapping[str, Setting], values: Mapping[str, Any], prefix: str, bad: Bad) -> None:
    for name, setting in table.items():
        if not setting.accepts(values.get(name)):
            raise bad(prefix + name, setting.describe())


def _setting(config: Mapping[str, Any], name: str, bad: Bad) -> Any:
    """``config[name]`` (or its default) checked against :data:`params.RUN_SETTINGS`."""
    setting = RUN_SETTINGS[name]
    value = config.get(name, setting.default)
    if not setting.accepts(value):
        raise bad(name, setting.describe())
    return value


def _common_config(config: Mapping[str, Any], bad: Bad) -> dict[str, Any]:
    """The keys every model reads (target, features, labels, seed, split, device)."""
    target = config.get("target")
    if not isinstance(target, str) or not target:
        raise bad("target", "the name of the label column")
    features = config.get("features")
    if features is not None and (
        not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features)
    ):
        raise bad("features", "a non-empty list of column names (or null for every column but the target)")
    categorical = config.get("categorical")
    if categorical is not None and (
        not isinstance(categorical, list) or not all(isinstance(c, str) for c in categorical)
    ):
        raise bad("categorical", "a list of column names (or null to infer)")
    positive_label = config.get("positive_label", 1)
    if not isinstance(positive_label, (int, str, bool)):
        raise bad("positive_label", "an integer, string or boolean label value")
    seed = _setting(config, "seed", bad)
    fraction = _setting(config, "validation_fraction", bad)
    patience = _setting(config, "early_stopping_patience", bad)
    device = _setting(config, "device", bad)
    threshold = check_rule(
        DEFAULT_RULE if config.get("threshold") is None else config["threshold"],
        where="trainer config: threshold",
    )
    if config.get("task") == "binary":  # else checked once the target tells the task
        check_threshold_split(threshold, fraction)
    return {
        "watermark": check_watermark(config.get("watermark")),
        "target": target,
        "features": list(features) if features else None,
        "categorical": list(categorical) if categorical is not None else None,
        "positive_label": positive_label,
        "seed": seed,
        "validation_fraction": float(fraction),
        "early_stopping_patience": patience,
        "threshold": threshold,
        "device": device,
    }


def check_threshold_split(threshold: Mapping[str, Any], fraction: float) -> None:
    """A binary model's threshold rule needs validation rows to choose on."""
    if fraction == 0 and threshold["rule"] != "fixed":
        raise TrainingError(
            f"trainer config: threshold rule {threshold['rule']} chooses the threshold on the validation "
            "split, but validation_fraction is 0; keep a validation split or use a fixed threshold "
            "(evaluation.threshold: <number> in the spec)"
        )


def check_estimator_config(
    config: Mapping[str, Any], model: str, task: str | None, params: dict[str, Any], common: dict[str, Any]
) -> dict[str, Any]:
    """The config of an estimator model (xgboost, lightgbm, a scikit-learn class): its params go
    to the estimator's constructor, which checks them when the estimator is built."""
    from airflow_mlops.training.estimators import check_model_name

    check_model_name(model)
    for key in ("privacy",):
        if config.get(key) is not None:
            raise TrainingError(f"trainer config: {key} applies to the built-in torch models, not {model}")
    return {
        **common,
        "model": model,
        "task": task,
        "params": params,
        "privacy": None,
        "precision": config.get("precision", RUN_SETTINGS["precision"].default),
    }


def check_privacy(raw: Any, bad: Bad) -> dict[str, Any] | None:
    """``privacy`` (DP-SGD) checked against :data:`params.PRIVACY`, its defaults filled in."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise bad("privacy", "an object with epsilon (and optionally delta, max_grad_norm, noise_multiplier)")
    unknown = sorted(set(raw) - set(PRIVACY))
    if unknown:
        raise TrainingError(
            f"unknown trainer privacy key(s): {', '.join(unknown)}; known: {', '.join(PRIVACY)}"
        )
    privacy = {**PRIVACY_DEFAULTS, **raw}
    _check_table(PRIVACY, privacy, "privacy.", bad)
    return {k: float(v) if v is not None else None for k, v in privacy.items()}


def check_watermark(raw: Any) -> dict[str, Any] | None:
    """``watermark``: None, or a watermark record (no key; checked by its own reader)."""
    if raw is None:
        return None
    from airflow_mlops.security.watermark import WatermarkRecord

    try:
        return WatermarkRecord.from_dict(raw, where="trainer config: watermark").to_dict()
    except DataError as exc:
        raise TrainingError(str(exc)) from exc
