"""The trainer: tabular data in, a model directory out.

:func:`train` is what every backend reaches through :mod:`airflow_mlops.training.job` (the one
command line, ``python -m airflow_mlops.training --job ...``), in a subprocess of the Airflow
worker, a Kubernetes pod or a Docker container that have neither Airflow nor MLflow. It imports
only the standard library, torch, numpy, pandas/pyarrow, safetensors and the trainer's modules:

- :mod:`~airflow_mlops.training.config`: the config (its keys are listed there) checked at the
  trainer's boundary against the tables of :mod:`~airflow_mlops.training.params`, which the
  spec's models are declared from;
- :mod:`~airflow_mlops.training.rows`: the encoded target and the validation split;
- :mod:`~airflow_mlops.training.network_fit` and :mod:`~airflow_mlops.training.loop`: the
  built-in networks (the epoch loop, bf16, DP-SGD);
- :mod:`~airflow_mlops.training.estimator_fit`: XGBoost, LightGBM and scikit-learn estimators.

Outputs in the output directory: the flavor's weights file, ``model_config.json`` (see
:func:`airflow_mlops.training.flavors.save_model_dir`; it holds the chosen ``threshold``) and
``metrics.json`` (with ``threshold``, ``val_precision`` and ``val_recall`` at it). They are written
into a temporary directory beside it and renamed into place, so a failed run leaves nothing
half-written. User errors (bad data, bad config) exit the command line with status 2 and one line
on stderr.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.exceptions import DataError, TrainingError, TrainingRejectedError
from airflow_mlops.metrics import PRIMARY_METRIC, compute_metrics
from airflow_mlops.tasks import describe as describe_task
from airflow_mlops.training.config import check_config, check_threshold_split
from airflow_mlops.training.estimator_fit import train_estimator
from airflow_mlops.training.flavors import save_model_dir
from airflow_mlops.training.network_fit import train_network
from airflow_mlops.training.params import BUILTIN_MODELS
from airflow_mlops.training.rows import encode_target, split_rows
from airflow_mlops.training.threshold import choose_threshold

log = logging.getLogger("airflow_mlops.training.trainer")

METRICS_FILE = "metrics.json"
EXIT_USER_ERROR = 2

# The names callers inside the training package used before the split (training/job.py reads the
# table through the trainer; tests/unit/data check the label rule through it).


def train(
    train_df: pd.DataFrame,
    config: Mapping[str, Any],
    output_dir: str | Path,
    triggers: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Train the configured model on ``train_df`` and write the model directory ``output_dir``.

    :param config: the trainer config (see :mod:`airflow_mlops.training.config`); unknown keys are
        rejected.
    :param triggers: the watermark's trigger rows (features and target), required exactly when the
        config has a ``watermark``: they are learned with the training rows, and the model
        directory gets the record (``watermark.json``, no key) and ``metrics.json`` the matches.
    :returns: the content of ``metrics.json``.
    :raises DataError: the data cannot be trained on (empty, no target, one class, non-numbers).
    :raises TrainingError: the config is invalid, CUDA was requested but is absent, or training
        diverged.
    """
    started = time.monotonic()
    cfg = check_config(config)
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise TrainingError(f"output path {output_dir} exists and is not a directory")

    if len(train_df) == 0:
        raise DataError("the training data is empty (0 rows)")
    columns = [str(c) for c in train_df.columns]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise DataError(
            f"the training data has more than one column named {', '.join(map(repr, duplicated))}"
        )
    if list(train_df.columns) != columns:  # columns are read by name (a CSV or parquet table's are text)
        train_df = train_df.set_axis(columns, axis=1)
    target = cfg["target"]
    if target not in columns:
        raise DataError(
            f"target column {target!r} not found in the training data; its columns are: "
            + ", ".join(columns[:30])
        )
    features = cfg["features"] or [c for c in columns if c != target]
    if target in features:
        raise DataError(f"the target column {target!r} must not be listed in features")
    data = encode_target(train_df[target], cfg, target)
    log.info("task: %s", describe_task(data.task, data.classes, cfg["positive_label"]))
    if data.task == "binary":
        check_threshold_split(cfg["threshold"], cfg["validation_fraction"])

    seed = cfg["seed"]
    rng = np.random.default_rng(seed)
    train_idx, val_idx = split_rows(data.y, data.task, cfg["validation_fraction"], rng)
    fit_df = train_df.iloc[train_idx]
    extra = _trigger_rows(cfg, triggers, data, target, features, len(train_idx))
    fit = train_network if cfg["model"] in BUILTIN_MODELS else train_estimator
    outcome = fit(cfg, data, fit_df, train_df.iloc[val_idx], train_idx, val_idx, features, extra)
    metrics = {
        **outcome.metrics,
        "task": data.task,
        "rows": len(data.y),
        "train_rows": len(train_idx),
        "validation_rows": len(val_idx),
        "model": cfg["model"],
        "seed": seed,
    }
    if data.task == "binary":
        metrics["positive_rows"] = int(data.y.sum())
    elif data.task == "multiclass":
        metrics["classes"] = len(data.classes)
    primary = PRIMARY_METRIC[data.task]
    threshold = None
    if data.task == "binary":
        threshold = choose_threshold(data.y[val_idx], outcome.val_output, cfg["threshold"])
        at_threshold = threshold["validation"] or {}
        metrics.update(
            threshold=threshold["value"],
            threshold_rule=threshold["rule"],
            val_precision=at_threshold.get("precision"),
            val_recall=at_threshold.get("recall"),
        )
    metrics[f"train_{primary}"] = _metric_or_none(
        data.task, primary, data.y[train_idx][outcome.train_sample], outcome.train_output
    )
    metrics[f"val_{primary}"] = (
        _metric_or_none(data.task, primary, data.y[val_idx], outcome.val_output) if len(val_idx) else None
    )
    if outcome.history is not None:
        metrics["history"] = outcome.history
    calibration = _calibration(data, outcome, train_df.iloc[val_idx], features, val_idx, seed)
    if calibration is not None:
        metrics["calibration"] = _calibration_summary(calibration)
    metrics["duration_seconds"] = round(time.monotonic() - started, 3)

    def write(directory: Path) -> None:
        save_model_dir(
            directory,
            outcome.model,
            task=data.task,
            target=target,
            features=features,
            class_order=data.class_order,
            positive_label=cfg["positive_label"] if data.task == "binary" else None,
            preprocessor=outcome.preprocessor,
            seed=seed,
            training=outcome.training,
            threshold_choice=threshold,
            target_scaling=outcome.target_scaling,
            calibration=calibration,
        )
        if cfg["watermark"] is not None:
            metrics.update(write_watermark(directory, cfg["watermark"], triggers))

    _publish(output_dir, write, metrics)
    log.info(
        "done in %.1fs: %s train %s %s, validation %s%s -> %s",
        metrics["duration_seconds"],
        cfg["model"],
        primary,
        _fmt_optional(metrics[f"train_{primary}"]),
        _fmt_optional(metrics[f"val_{primary}"]),
        f"; threshold {threshold['value']:.4g} ({threshold['rule']})" if threshold else "",
        output_dir,
    )
    return metrics


def _trigger_rows(
    cfg: Mapping[str, Any],
    triggers: pd.DataFrame | None,
    data: Any,
    target: str,
    features: list[str],
    train_rows: int,
) -> Any:
    """The watermark's trigger rows, repeated for training (None without a watermark)."""
    from airflow_mlops.security.watermark import repeats_for
    from airflow_mlops.training.rows import trigger_rows

    if cfg["watermark"] is None and triggers is None:
        return None
    if cfg["watermark"] is None or triggers is None:
        raise TrainingRejectedError(
            "the job has a watermark record but no trigger rows, or trigger rows but no record; "
            "it was not written by the training prepare step of this release"
        )
    if len(triggers) != cfg["watermark"]["trigger_rows"]:
        raise TrainingRejectedError(
            f"the job's trigger table has {len(triggers)} rows, its watermark record says "
            f"{cfg['watermark']['trigger_rows']}"
        )
    return trigger_rows(triggers, data, target, features, repeats_for(train_rows, len(triggers)))


def write_watermark(directory: Path, record: Mapping[str, Any], triggers: Any) -> dict[str, Any]:
    """Write ``watermark.json`` (the record: no key, no trigger rows) and measure the trained
    model on the trigger rows: the matches and the count a claim needs, for metrics.json."""
    from airflow_mlops.security.watermark import (
        RECORD_FILE,
        TriggerSet,
        WatermarkRecord,
        claim_threshold,
        count_matches,
    )
    from airflow_mlops.training.flavors import CONFIG_FILE, load_predictor

    wm = WatermarkRecord.from_dict(record)
    (directory / RECORD_FILE).write_text(wm.to_json())
    # The commitment (never the key) in model_config.json too: the ML-BOM names it from there.
    config_path = directory / CONFIG_FILE
    model_config = json.loads(config_path.read_text())
    model_config["watermark"] = {
        "scheme": wm.scheme,
        "identity": wm.identity,
        "commitment": wm.commitment,
        "trigger_rows": wm.trigger_rows,
    }
    config_path.write_text(json.dumps(model_config, indent=2, allow_nan=False) + "\n")
    target = wm.basis.target
    labels = triggers[target].to_numpy()
    if wm.basis.task != "regression":
        from airflow_mlops.labels import label_key

        labels = np.asarray([label_key(v) for v in labels], dtype=object)
    trigger_set = TriggerSet(triggers.reset_index(drop=True), labels, wm.basis)
    predicted = load_predictor(directory).predict(trigger_set.features())
    matches = count_matches(trigger_set, predicted)
    t, _ = claim_threshold(trigger_set.n, wm.p0, wm.alpha)
    if matches < t:
        log.warning(
            "watermark: the model matches %d of %d trigger rows, below the %d a claim needs; the "
            "promotion gate will block it (a model of too little capacity, or too few epochs)",
            matches,
            trigger_set.n,
            t,
        )
    else:
        log.info(
            "watermark: the model matches %d of %d trigger rows (a claim needs %d)", matches, trigger_set.n, t
        )
    return {"watermark_matches": matches, "watermark_trigger_rows": trigger_set.n, "watermark_t": t}


def _calibration(
    data: Any, outcome: Any, val_df: pd.DataFrame, features: list[str], val_idx: np.ndarray, seed: int
) -> dict[str, Any] | None:
    """The calibration the monitor estimates performance with (:mod:`airflow_mlops.training.
    calibration`), fitted on the validation rows; None without any."""
    from airflow_mlops.training.calibration import fit_calibration, fit_error_model

    if len(val_idx) == 0:
        log.info("no validation rows: no calibration is stored, the monitor cannot estimate performance")
        return None
    y_val = data.y[val_idx]
    if data.task == "regression":
        return fit_error_model(y_val, outcome.val_output, val_df, features)
    labels = [data.class_order[1]] if data.task == "binary" else list(data.class_order)
    return fit_calibration(data.task, y_val, outcome.val_output, labels, seed=seed)


def _calibration_summary(calibration: Mapping[str, Any]) -> str:
    """``platt`` or ``isotonic x3, identity x1`` (metrics.json; the log)."""
    if calibration["kind"] == "dle":
        return "dle"
    methods = [c["method"] for c in calibration["calibrators"]]
    counts = {m: methods.count(m) for m in dict.fromkeys(methods)}
    return methods[0] if len(methods) == 1 else ", ".join(f"{m} x{n}" for m, n in counts.items())


def _metric_or_none(task: str, name: str, y: np.ndarray, output: np.ndarray) -> float | None:
    if len(y) == 0:
        return None
    value = compute_metrics(task, y, output, names=[name])[name]
    return value if math.isfinite(value) else None


# --- output -------------------------------------------------------------------------------------


def _publish(output_dir: Path, write: Callable[[Path], None], metrics: dict[str, Any]) -> None:
    """Write the model (``write``) and ``metrics.json`` into a temp dir beside ``output_dir``,
    then rename it into place."""
    parent = output_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=parent))
    try:
        write(tmp)
        (tmp / METRICS_FILE).write_text(json.dumps(_json_safe(metrics), indent=2, allow_nan=False) + "\n")
        if output_dir.exists():
            # A retried task replaces its earlier output; the old tree is moved aside first so
            # the directory always holds either the old or the new model, complete.
            old = parent / f".{output_dir.name}.old-{uuid.uuid4().hex}"
            os.replace(output_dir, old)
            os.replace(tmp, output_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _fmt_optional(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def run_and_exit(entry: Callable[[], int]) -> None:
    """Run ``entry`` (a command line's ``main``) and leave with its status, skipping the
    interpreter's native teardown.

    With torch and pyarrow loaded, the C++ destructors of their thread pools at interpreter exit
    now and then abort the process ("terminate called without an active exception", SIGABRT),
    which turns a clean exit status into -6. Everything the trainer writes is closed by then, so
    it flushes its streams and logs and leaves with ``os._exit``.
    """
    import traceback

    try:
        status = entry()
    except SystemExit as exc:  # argparse: --help, usage errors
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        status = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


#: The name before it was public.
