"""Performance estimation without labels: ``airflow_mlops.drift.estimation`` vs NannyML's CBPE, same windows.

Synthetic tasks whose true ``P(label | features)`` is known, so every window's true metric is
computed with real labels drawn from it:

``binary``
    5 features, ``logit = 2 x0 - 1.5 x1 + x0 x2 + 0.8 sin(2 x3)``.
``multiclass``
    4 classes, 5 features, class logits linear in the features plus ``sin(2 x3)`` and ``x0 x2``
    terms.

A champion (``HistGradientBoostingClassifier(max_iter=60, random_state=0)``) is fitted on
``--train-rows`` reference rows. Its calibration is fitted on ``--validation-rows`` more rows
(:func:`airflow_mlops.training.calibration.fit_calibration`, what the trainer stores), and the
very same rows, labelled and scored, are NannyML's reference period (``CBPE.fit``): equal inputs.

Windows of ``--rows`` rows are drawn at covariate-shift levels ``--levels`` (``--windows`` per
level; level 0 is the reference distribution). A shift of level ``s`` moves mass to harder
regions: x0 and x1 shrink towards the decision boundary (standard deviation ``1 - 0.6 s``) and x2,
which the interaction term makes matter more, moves by ``+1.5 s``. Labels change only through
the features (covariate shift: ``P(label | features)`` stays as it was), which is what CBPE
assumes.

Per window and metric (binary: ROC AUC, accuracy, F1 at threshold 0.5; multiclass: one-vs-rest
ROC AUC, accuracy, macro F1) both sides give an estimate and an interval: ours is the central
95 % of ``--samples`` label draws from the calibrated probabilities; NannyML's is its confidence
band (estimate +- 3 sampling-error standard deviations, measured on the reference). Reported: the
mean absolute error of the estimate against the realised metric, the interval's coverage of the
realised metric, the mean interval width, and the realised drop from level 0 to the largest level
(what the estimate should track).

NannyML never enters the project's venv: it runs in ``benchmarks/.venv-nannyml`` (made here when
missing: ``python -m venv`` + ``pip install nannyml==NANNYML_VERSION statsmodels``) in a
subprocess; the windows go there as ``.npz`` and its estimates come back as JSON.
``--peer-python`` names another interpreter with NannyML; ``--skip-nannyml`` runs our side only
(the smoke test).

Usage::

    .venv/bin/python benchmarks/performance_estimation.py --out benchmarks/performance_estimation_results.json
    .venv/bin/python benchmarks/performance_estimation.py --tasks binary --windows 2 --rows 500 --skip-nannyml
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_mlops.drift.estimation import estimate_performance  # noqa: E402
from airflow_mlops.metrics import compute_metrics  # noqa: E402
from airflow_mlops.training.calibration import fit_calibration  # noqa: E402

NANNYML_VERSION = "0.13.1"
PEER_VENV = ROOT / "benchmarks" / ".venv-nannyml"
TASKS = ("binary", "multiclass")
LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
CLASSES = ("a", "b", "c", "d")
FEATURES = 5
CONFIDENCE = 0.95
THRESHOLD = 0.5
# Our metric name -> NannyML's, per task.
METRICS = {
    "binary": {"roc_auc": "roc_auc", "accuracy": "accuracy", "f1": "f1"},
    "multiclass": {"roc_auc_ovr": "roc_auc", "accuracy": "accuracy", "f1_macro": "f1"},
}

# Runs in NannyML's venv: CBPE fitted on the reference rows, estimated on the windows (one chunk each).
_PEER_CHILD = r"""
import json, sys, time, warnings
import numpy as np
import pandas as pd
import nannyml as nml

warnings.filterwarnings("ignore")
spec = json.loads(open(sys.argv[1]).read())
out = {"nannyml_version": nml.__version__, "tasks": {}}
for task, job in spec["tasks"].items():
    data = np.load(job["npz"], allow_pickle=False)
    classes = job["classes"]

    def frame(proba, y):
        if task == "binary":
            df = pd.DataFrame({"proba": proba, "y_pred": (proba >= job["threshold"]).astype(int)})
            if y is not None:
                df["y_true"] = y.astype(int)
            return df
        df = pd.DataFrame({f"proba_{c}": proba[:, j] for j, c in enumerate(classes)})
        df["y_pred"] = np.asarray(classes)[proba.argmax(axis=1)]
        if y is not None:
            df["y_true"] = np.asarray(classes)[y]
        return df

    reference = frame(data["reference_proba"], data["reference_y"])
    windows = frame(data["window_proba"], None)
    common = dict(y_pred="y_pred", y_true="y_true", metrics=list(job["metrics"]), chunk_size=job["rows"])
    if task == "binary":
        est = nml.CBPE(y_pred_proba="proba", problem_type="classification_binary", **common)
    else:
        est = nml.CBPE(
            y_pred_proba={c: f"proba_{c}" for c in classes}, problem_type="classification_multiclass", **common
        )
    start = time.perf_counter()
    est.fit(reference)
    result = est.estimate(windows).filter(period="analysis").to_df()
    seconds = time.perf_counter() - start
    per_metric = {}
    for m in job["metrics"]:
        per_metric[m] = {
            "estimate": result[(m, "value")].astype(float).tolist(),
            "low": result[(m, "lower_confidence_boundary")].astype(float).tolist(),
            "high": result[(m, "upper_confidence_boundary")].astype(float).tolist(),
        }
    out["tasks"][task] = {"metrics": per_metric, "seconds": seconds, "chunks": len(result)}
open(sys.argv[2], "w").write(json.dumps(out))
"""


# --- the synthetic tasks ---------------------------------------------------------------------------


def features(n: int, level: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows at shift ``level`` (see the module docstring)."""
    x = rng.normal(0.0, 1.0, (n, FEATURES))
    x[:, :2] *= 1.0 - 0.6 * level
    x[:, 2] += 1.5 * level
    return x


def true_proba(task: str, x: np.ndarray) -> np.ndarray:
    """The true ``P(label | x)``: the positive class's (binary) or every class's (multiclass)."""
    if task == "binary":
        logit = 2 * x[:, 0] - 1.5 * x[:, 1] + x[:, 0] * x[:, 2] + 0.8 * np.sin(2 * x[:, 3])
        return 1 / (1 + np.exp(-logit))
    w = np.array(
        [
            [1.5, -1.0, 0.0, 0.5, 0.0],
            [-1.0, 1.5, 0.5, 0.0, 0.0],
            [0.0, 0.0, 1.0, -1.0, 0.5],
            [-0.5, -0.5, -0.5, 0.5, -0.5],
        ]
    )
    logits = x @ w.T
    logits[:, 0] += np.sin(2 * x[:, 3])
    logits[:, 1] += 0.5 * x[:, 0] * x[:, 2]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def labels(task: str, p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if task == "binary":
        return (rng.random(len(p)) < p).astype(np.int64)
    u = rng.random((len(p), 1))
    return np.minimum((u > np.cumsum(p, axis=1)).sum(axis=1), p.shape[1] - 1)


def draw(task: str, n: int, level: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = features(n, level, rng)
    return x, labels(task, true_proba(task, x), rng)


def champion(task: str, train_rows: int, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(seed)
    x, y = draw(task, train_rows, 0.0, rng)
    return HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(x, y)


def output(task: str, model: Any, x: np.ndarray) -> np.ndarray:
    proba = model.predict_proba(x)
    return proba[:, 1] if task == "binary" else proba


# --- one task, both sides ---------------------------------------------------------------------------


def run_task(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """The windows of one task, our estimates on them, and what NannyML needs to estimate them."""
    rng = np.random.default_rng(args.seed + (0 if task == "binary" else 1000))
    model = champion(task, args.train_rows, args.seed)
    x_val, y_val = draw(task, args.validation_rows, 0.0, rng)
    val_out = output(task, model, x_val)
    labels_ = ["1"] if task == "binary" else list(CLASSES)
    calibration = fit_calibration(task, y_val, val_out, labels_, seed=args.seed)
    methods = [c["method"] for c in calibration["calibrators"]]
    windows, outs = [], []
    seconds = 0.0
    for level in args.levels:
        for w in range(args.windows):
            x, y = draw(task, args.rows, level, rng)
            out = output(task, model, x)
            start = time.perf_counter()
            est = estimate_performance(
                calibration,
                out,
                task=task,
                classes=list(CLASSES) if task == "multiclass" else None,
                threshold=THRESHOLD,
                confidence=CONFIDENCE,
                samples=args.samples,
                seed=args.seed + w,
            )
            seconds += time.perf_counter() - start
            realised = compute_metrics(task, y, out, threshold=THRESHOLD, names=list(METRICS[task]))
            windows.append(
                {
                    "level": level,
                    "window": w,
                    "realised": {m: float(realised[m]) for m in METRICS[task]},
                    "ours": {
                        m: {"estimate": e.estimate, "low": e.low, "high": e.high}
                        for m in METRICS[task]
                        for e in [est.get(m)]
                    },
                }
            )
            outs.append(out)
    return {
        "task": task,
        "calibration_methods": methods,
        "validation_rows": args.validation_rows,
        "windows": windows,
        "ours_seconds": seconds,
        "_peer_inputs": {
            "reference_proba": val_out,
            "reference_y": y_val,
            "window_proba": np.concatenate(outs),
        },
    }


def ensure_peer_python(peer_python: str | None) -> str:
    """The interpreter that runs NannyML: ``peer_python``, or the benchmark's own venv (made here
    when missing). Raises when it cannot be made: the real run never skips the peer."""
    if peer_python:
        done = subprocess.run([peer_python, "-c", "import nannyml"], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"--peer-python {peer_python} cannot import nannyml: {done.stderr[-1000:]}")
        return peer_python
    python = PEER_VENV / "bin" / "python"
    probe = [str(python), "-c", f"import nannyml; assert nannyml.__version__ == {NANNYML_VERSION!r}"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return str(python)
    print(f"making {PEER_VENV} with nannyml=={NANNYML_VERSION} (never a package dependency)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
    # statsmodels: nannyml imports it but does not declare it.
    install = [str(python), "-m", "pip", "install", "-q", f"nannyml=={NANNYML_VERSION}", "statsmodels"]
    done = subprocess.run(install, capture_output=True, text=True)
    if done.returncode != 0 or subprocess.run(probe, capture_output=True).returncode != 0:
        raise RuntimeError(
            f"could not install nannyml=={NANNYML_VERSION} into {PEER_VENV}: {done.stderr[-2000:]}"
        )
    return str(python)


def run_nannyml(python: str, tasks: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    """NannyML's CBPE on every task's windows, in one subprocess; its JSON."""
    with tempfile.TemporaryDirectory(prefix="estimation-bench-") as tmp:
        work = Path(tmp)
        spec: dict[str, Any] = {"tasks": {}}
        for t in tasks:
            npz = work / f"{t['task']}.npz"
            np.savez(npz, **t["_peer_inputs"])
            spec["tasks"][t["task"]] = {
                "npz": str(npz),
                "classes": list(CLASSES),
                "metrics": sorted(set(METRICS[t["task"]].values())),
                "rows": rows,
                "threshold": THRESHOLD,
            }
        (work / "jobs.json").write_text(json.dumps(spec))
        (work / "child.py").write_text(_PEER_CHILD)
        # NannyML sends usage statistics unless told not to; the run stays offline.
        env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
        subprocess.run(
            [python, str(work / "child.py"), str(work / "jobs.json"), str(work / "out.json")],
            check=True,
            env=env,
        )
        return json.loads((work / "out.json").read_text())


def attach_peer(task: dict[str, Any], peer: dict[str, Any]) -> None:
    """Put NannyML's estimate of each window beside ours (its chunks are the windows, in order)."""
    result = peer["tasks"][task["task"]]
    if result["chunks"] != len(task["windows"]):
        raise RuntimeError(f"NannyML made {result['chunks']} chunks of {len(task['windows'])} windows")
    for i, window in enumerate(task["windows"]):
        window["nannyml"] = {
            ours: {k: result["metrics"][theirs][k][i] for k in ("estimate", "low", "high")}
            for ours, theirs in METRICS[task["task"]].items()
        }
    task["nannyml_seconds"] = result["seconds"]


def summarise(task: dict[str, Any], sides: list[str]) -> dict[str, Any]:
    """Per side and metric: MAE of the estimate, interval coverage and width; per level, the mean
    realised metric and each side's mean estimate."""
    windows = task["windows"]
    out: dict[str, Any] = {}
    for metric in METRICS[task["task"]]:
        realised = np.array([w["realised"][metric] for w in windows])
        row: dict[str, Any] = {}
        for side in sides:
            est = np.array([w[side][metric]["estimate"] for w in windows], dtype=float)
            low = np.array([w[side][metric]["low"] for w in windows], dtype=float)
            high = np.array([w[side][metric]["high"] for w in windows], dtype=float)
            # NannyML clips its band at the metric's range; a missing bound counts as not covering.
            covered = (low <= realised) & (realised <= high)
            row[side] = {
                "mae": float(np.mean(np.abs(est - realised))),
                "max_abs_error": float(np.max(np.abs(est - realised))),
                "coverage": float(np.mean(covered)),
                "mean_width": float(np.nanmean(high - low)),
            }
        levels = sorted({w["level"] for w in windows})
        row["per_level"] = {
            str(level): {
                "realised": float(np.mean([w["realised"][metric] for w in windows if w["level"] == level])),
                **{
                    side: float(
                        np.mean([w[side][metric]["estimate"] for w in windows if w["level"] == level])
                    )
                    for side in sides
                },
            }
            for level in levels
        }
        first, last = row["per_level"][str(levels[0])], row["per_level"][str(levels[-1])]
        row["realised_drop"] = first["realised"] - last["realised"]
        for side in sides:
            row[f"{side}_estimated_drop"] = first[side] - last[side]
        out[metric] = row
    return out


def report(task: dict[str, Any], sides: list[str]) -> None:
    s = task["summary"]
    print(
        f"\n{task['task']}: {len(task['windows'])} windows of {task['rows']} rows at levels "
        f"{', '.join(str(v) for v in task['levels'])}; calibration {', '.join(task['calibration_methods'])}"
    )
    head = f"  {'metric':<12} {'realised drop':>13}"
    for side in sides:
        head += f" | {side + ' MAE':>13} {'coverage':>8} {'width':>7} {'est. drop':>9}"
    print(head)
    for metric, row in s.items():
        line = f"  {metric:<12} {row['realised_drop']:>13.4f}"
        for side in sides:
            r = row[side]
            line += f" | {r['mae']:>13.4f} {r['coverage']:>8.2f} {r['mean_width']:>7.4f} {row[side + '_estimated_drop']:>9.4f}"
        print(line)
    if "nannyml" in sides:
        for metric, row in s.items():
            ratio = row["nannyml"]["mae"] / row["ours"]["mae"] if row["ours"]["mae"] > 0 else float("nan")
            print(f"  ratio, MAE nannyml / ours, {metric}: {ratio:.2f}")
    print(
        f"  seconds: ours {task['ours_seconds']:.2f}"
        + (f", nannyml {task['nannyml_seconds']:.2f} (fit + estimate)" if "nannyml_seconds" in task else "")
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tasks", default=",".join(TASKS), help="comma-separated subset of binary,multiclass"
    )
    parser.add_argument("--levels", default=",".join(str(v) for v in LEVELS), help="shift levels in [0, 1]")
    parser.add_argument("--windows", type=int, default=10, help="windows per level")
    parser.add_argument("--rows", type=int, default=5000, help="rows per window")
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--validation-rows", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=200, help="label draws of our interval")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peer-python", help="an interpreter with nannyml (default: make benchmarks/.venv-nannyml)"
    )
    parser.add_argument("--skip-nannyml", action="store_true", help="our side only (smoke test)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
    args.levels = [float(v) for v in args.levels.split(",")]

    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": os.getloadavg(),
            "date": dt.date.today().isoformat(),
        },
        "settings": {
            "levels": args.levels,
            "windows_per_level": args.windows,
            "rows": args.rows,
            "train_rows": args.train_rows,
            "validation_rows": args.validation_rows,
            "samples": args.samples,
            "confidence": CONFIDENCE,
            "threshold": THRESHOLD,
            "seed": args.seed,
        },
        "tasks": {},
    }
    runs = [run_task(task, args) for task in tasks]
    sides = ["ours"]
    if not args.skip_nannyml:
        peer = run_nannyml(ensure_peer_python(args.peer_python), runs, args.rows)
        results["nannyml_version"] = peer["nannyml_version"]
        for run in runs:
            attach_peer(run, peer)
        sides.append("nannyml")
    for run in runs:
        run.pop("_peer_inputs")
        run.update(rows=args.rows, levels=args.levels)
        run["summary"] = summarise(run, sides)
        report(run, sides)
        results["tasks"][run["task"]] = run
    results["seconds"] = round(time.perf_counter() - started, 1)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nresults written to {args.out}")
    return results


if __name__ == "__main__":
    main()
