"""Poisoning screens: ``screen_data`` vs cleanlab and IsolationForest, side by side in one run.

Two parts:

1. **Quality** (``--only quality``). Datasets that ship inside scikit-learn (``load_breast_cancer``,
   ``load_digits`` as a binary task, digit >= 5, and as 10 classes, ``load_wine``, ``load_iris``;
   nothing is downloaded) and synthetic ones (``make_classification`` balanced, and imbalanced
   with ~2 % positives; ``airflow_mlops.data.generate.generate_fraud_data``). Each is split,
   stratified, into a *reference* (clean, from the same distribution), a *batch* that is attacked
   and screened, and a clean *test* split that is never screened. The attacks:

   ``clean``
       nothing: every flag is a false positive (the per-class false-positive rate).
   ``random_5`` / ``random_10`` / ``random_20``
       that share of the batch relabelled to a uniformly drawn other class.
   ``class_conditional``
       20 % of the most frequent class relabelled as the second most frequent (at most as many
       rows as that class has: flipped rows never outnumber the genuine ones).
   ``hide_minority``
       30 % of the rarest class relabelled as the most frequent one.
   ``duplicates``
       3 % of the batch copied with another label and appended (the copies are the poison).
   ``out_of_distribution``
       3 % of the batch copied, three numeric features moved 6 to 10 reference standard
       deviations out, a random label, appended.

   Sides, all on the same batch: ``screen_data`` (checks ``duplicates``, ``label_issues``,
   ``out_of_distribution``, **given the reference**); cleanlab's
   ``cleanlab.filter.find_label_issues`` with ``pred_probs`` from
   ``sklearn.model_selection.cross_val_predict`` (5 folds) of a ``HistGradientBoostingClassifier``
   and of a ``StandardScaler`` + ``LogisticRegression`` (cleanlab takes no reference); and
   sklearn's ``IsolationForest`` (``contamination="auto"``) **fitted on the reference**. Per side:
   precision, recall and F1 against the injected rows, the false-positive rate on the rows that
   were not poisoned (per class), and the accuracy and balanced accuracy on the clean test split
   of the same model (``HistGradientBoostingClassifier(random_state=0)``) trained on the poisoned
   batch and on the rows the side accepted.

2. **Scale** (``--only scale``): 1,000,000 rows x 20 features (``make_classification``, 10 % random
   flips) screened with the same checks and a 50,000-row reference; wall time, against cleanlab
   (HGB ``cross_val_predict`` + ``find_label_issues``) and IsolationForest on the same rows.

cleanlab is AGPL-licensed and never a dependency of the package: the benchmark makes its own venv
(``benchmarks/.venv-cleanlab``, ``python -m venv`` + ``pip install cleanlab==CLEANLAB_VERSION ...``
with the numpy / scikit-learn / pandas versions of constraints.txt) and runs the peer there in a
subprocess (data in ``.npz`` files in a temporary folder, results back as JSON). When that venv
cannot be made the run fails. ``--peer-python`` names another interpreter that has cleanlab.

Usage::

    .venv/bin/python benchmarks/poisoning.py --out benchmarks/poisoning_results.json
    .venv/bin/python benchmarks/poisoning.py --only scale     # the 1M-row timing alone
    .venv/bin/python benchmarks/poisoning.py --only quality --tiny --skip-cleanlab  # smoke
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_mlops.data.generate import FEATURES, TARGET, generate_fraud_data  # noqa: E402
from airflow_mlops.data.poisoning import screen_data  # noqa: E402

CLEANLAB_VERSION = "2.9.0"
# The versions of constraints.txt, so that both sides fit the same models.
PEER_PINS = ("scikit-learn==1.9.1", "numpy==1.26.4", "pandas==2.3.3")
PEER_VENV = ROOT / "benchmarks" / ".venv-cleanlab"
FOLDS = 5
ROW_CHECKS = ["duplicates", "label_issues", "out_of_distribution"]
ATTACKS = (
    "clean",
    "random_5",
    "random_10",
    "random_20",
    "class_conditional",
    "hide_minority",
    "duplicates",
    "out_of_distribution",
)
SIDES = ("screen_data", "cleanlab (HGB)", "cleanlab (LR)", "IsolationForest")
# Targets of the issue.
TARGET_MEAN_F1 = 0.75
TARGET_CLEAN_FPR = 0.01
TARGET_SCALE_SECONDS = 60.0

# Runs in the peer's venv: cross_val_predict + find_label_issues, as a user would.
_PEER_CHILD = r"""
import json, sys, time
import numpy as np
import cleanlab
from cleanlab.filter import find_label_issues
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

jobs = json.load(open(sys.argv[1]))
out = {"cleanlab_version": cleanlab.__version__, "results": {}}
for job in jobs:
    data = np.load(job["npz"])
    x, y = data["x"], data["y"]
    if job["model"] == "hgb":
        model = HistGradientBoostingClassifier(random_state=0)
    else:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    start = time.perf_counter()
    cv = StratifiedKFold(n_splits=job["folds"], shuffle=True, random_state=0)
    # The thread policy of screen_data and of the downstream fits: one thread below 20,000 rows.
    with threadpool_limits(limits=1 if len(x) < 20_000 else None):
        pred_probs = cross_val_predict(model, x, y, cv=cv, method="predict_proba")
    issues = find_label_issues(labels=y, pred_probs=pred_probs)
    seconds = time.perf_counter() - start
    out["results"][job["id"]] = {"flagged": np.flatnonzero(issues).tolist(), "seconds": seconds}
json.dump(out, open(sys.argv[2], "w"))
"""


# --- data ---------------------------------------------------------------------------------


@dataclass
class Dataset:
    name: str
    reference: pd.DataFrame
    batch: pd.DataFrame
    test: pd.DataFrame
    features: list[str]
    categorical: dict[str, list[str]]  # column -> categories (one-hot for the peers)


def _split(df: pd.DataFrame, shares: tuple[float, float], seed: int) -> tuple[pd.DataFrame, ...]:
    """Stratified reference / batch / test split (``shares``: reference and batch)."""
    from sklearn.model_selection import train_test_split

    ref, rest = train_test_split(df, train_size=shares[0], stratify=df[TARGET], random_state=seed)
    batch_share = shares[1] / (1 - shares[0])
    batch, test = train_test_split(rest, train_size=batch_share, stratify=rest[TARGET], random_state=seed)
    return tuple(f.reset_index(drop=True) for f in (ref, batch, test))


def _frame(x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])]).assign(**{TARGET: y.astype("int64")})


def datasets(tiny: bool, seed: int) -> list[Dataset]:
    from sklearn import datasets as skd

    out: list[Dataset] = []

    def add(name: str, df: pd.DataFrame, shares: tuple[float, float] = (0.3, 0.4)) -> None:
        ref, batch, test = _split(df, shares, seed)
        feats = [c for c in df.columns if c != TARGET]
        out.append(Dataset(name, ref, batch, test, feats, {}))

    bc = skd.load_breast_cancer()
    add("breast_cancer", _frame(bc.data, bc.target))
    if not tiny:
        digits = skd.load_digits()
        add("digits (binary: >= 5)", _frame(digits.data, (digits.target >= 5).astype(int)))
        add("digits (10 classes)", _frame(digits.data, digits.target))
        wine = skd.load_wine()
        add("wine", _frame(wine.data, wine.target))
    iris = skd.load_iris()
    add("iris", _frame(iris.data, iris.target))

    if tiny:
        return out
    x, y = skd.make_classification(
        n_samples=12_000,
        n_features=20,
        n_informative=8,
        n_redundant=4,
        flip_y=0.0,
        class_sep=1.0,
        random_state=seed,
    )
    add("make_classification (balanced)", _frame(x, y), (1 / 3, 1 / 3))
    x, y = skd.make_classification(
        n_samples=30_000,
        n_features=20,
        n_informative=8,
        n_redundant=4,
        weights=[0.98],
        flip_y=0.0,
        class_sep=1.5,
        random_state=seed,
    )
    add("make_classification (2% positives)", _frame(x, y), (1 / 3, 1 / 3))
    rows = 10_000
    fraud = [generate_fraud_data(rows, seed=seed * 10 + k) for k in (1, 2, 3)]
    cats = {"country": sorted(fraud[0]["country"].unique())}
    out.append(Dataset("generate_fraud_data", fraud[0], fraud[1], fraud[2], list(FEATURES), cats))
    return out


def to_matrix(ds: Dataset, df: pd.DataFrame) -> np.ndarray:
    """Numeric matrix for the peers and the downstream model: categoricals one-hot encoded."""
    blocks = []
    for name in ds.features:
        if name in ds.categorical:
            cats = ds.categorical[name]
            blocks.append((df[name].to_numpy()[:, None] == np.array(cats)[None, :]).astype(float))
        else:
            blocks.append(df[name].to_numpy(dtype=float)[:, None])
    return np.hstack(blocks)


# --- attacks ------------------------------------------------------------------------------


def _other_class(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return (y + rng.integers(1, k, size=len(y))) % k


def attack(ds: Dataset, name: str, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The attacked batch and a mask of its poisoned rows."""
    rng = np.random.default_rng(seed)
    batch = ds.batch.copy()
    y = batch[TARGET].to_numpy().copy()
    k = int(max(ds.reference[TARGET].max(), y.max())) + 1
    n = len(batch)
    poison = np.zeros(n, dtype=bool)
    counts = np.bincount(y, minlength=k)
    order = np.argsort(-counts, kind="stable")
    if name == "clean":
        return batch, poison
    if name.startswith("random_"):
        rows = rng.choice(n, size=round(n * int(name.split("_")[1]) / 100), replace=False)
        y[rows] = _other_class(y[rows], k, rng)
        poison[rows] = True
    elif name == "class_conditional":
        src, dst = order[0], order[1]
        size = min(round(0.2 * counts[src]), counts[dst])
        rows = rng.choice(np.flatnonzero(y == src), size=size, replace=False)
        y[rows] = dst
        poison[rows] = True
    elif name == "hide_minority":
        src, dst = order[-1], order[0]
        rows = rng.choice(np.flatnonzero(y == src), size=max(1, round(0.3 * counts[src])), replace=False)
        y[rows] = dst
        poison[rows] = True
    elif name in ("duplicates", "out_of_distribution"):
        rows = rng.choice(n, size=max(2, round(0.03 * n)), replace=False)
        extra = batch.iloc[rows].copy()
        if name == "duplicates":
            extra[TARGET] = _other_class(y[rows], k, rng)
        else:
            numeric = [f for f in ds.features if f not in ds.categorical]
            extra[numeric] = extra[numeric].astype("float64")
            for i in range(len(extra)):
                for f in rng.choice(numeric, size=min(3, len(numeric)), replace=False):
                    sd = float(ds.reference[f].std()) or 1.0
                    shift = rng.uniform(6, 10) * sd * rng.choice([-1, 1])
                    col = extra.columns.get_loc(f)
                    extra.iloc[i, col] = float(ds.reference[f].mean()) + shift
            extra[TARGET] = rng.integers(0, k, size=len(extra))
        batch[TARGET] = y
        out = pd.concat([batch, extra], ignore_index=True)
        out[TARGET] = out[TARGET].astype("int64")
        return out, np.concatenate([poison, np.ones(len(extra), dtype=bool)])
    else:
        raise ValueError(f"unknown attack {name!r}")
    batch[TARGET] = y
    return batch, poison


# --- sides --------------------------------------------------------------------------------


def _float_features(df: pd.DataFrame, ds: Dataset) -> pd.DataFrame:
    """The OOD attack writes floats into integer columns: keep the frame's kinds consistent."""
    out = df.copy()
    for f in ds.features:
        if f not in ds.categorical:
            out[f] = out[f].astype("float64")
    return out


def run_ours(ds: Dataset, batch: pd.DataFrame) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    result = screen_data(
        _float_features(batch, ds),
        target=TARGET,
        features=ds.features,
        checks=ROW_CHECKS,
        max_suspect_fraction=1.0,
        reference=_float_features(ds.reference, ds),
        # a multiclass set is screened as such (a binary pipeline refuses a third class)
        positive_label=1 if ds.reference[TARGET].nunique() <= 2 else None,
    )
    seconds = time.perf_counter() - start
    flagged = np.zeros(len(batch), dtype=bool)
    flagged[result.quarantined["_row_index"].to_numpy()] = True
    return flagged, seconds


def run_isolation_forest(ref_x: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    from sklearn.ensemble import IsolationForest

    start = time.perf_counter()
    # max_samples: sklearn's default (256), capped at the reference's size.
    forest = IsolationForest(max_samples=min(256, len(ref_x)), contamination="auto", random_state=0)
    forest.fit(ref_x)
    flagged = forest.predict(x) == -1
    return flagged, time.perf_counter() - start


def ensure_peer_python(peer_python: str | None) -> str:
    """The interpreter that runs cleanlab: ``peer_python``, or the benchmark's own venv (made
    here when missing). Raises when it cannot be made: the real run never skips the peer."""
    if peer_python:
        probe = [peer_python, "-c", "import cleanlab.filter"]
        done = subprocess.run(probe, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"--peer-python {peer_python} cannot import cleanlab: {done.stderr[-1000:]}")
        return peer_python
    python = PEER_VENV / "bin" / "python"
    probe = [str(python), "-c", f"import cleanlab; assert cleanlab.__version__ == {CLEANLAB_VERSION!r}"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return str(python)
    print(f"making {PEER_VENV} with cleanlab=={CLEANLAB_VERSION} (AGPL: never a package dependency)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
    install = [str(python), "-m", "pip", "install", "-q", f"cleanlab=={CLEANLAB_VERSION}", *PEER_PINS]
    done = subprocess.run(install, capture_output=True, text=True)
    if done.returncode != 0 or subprocess.run(probe, capture_output=True).returncode != 0:
        raise RuntimeError(
            f"could not install cleanlab=={CLEANLAB_VERSION} into {PEER_VENV}: {done.stderr[-2000:]}"
        )
    return str(python)


def run_cleanlab(
    python: str, jobs: list[dict[str, Any]], arrays: dict[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, Any]:
    """Run every job (``id``, ``model``) in one peer subprocess; returns its JSON."""
    with tempfile.TemporaryDirectory(prefix="poison-bench-") as tmp:
        work = Path(tmp)
        for key, (x, y) in arrays.items():
            np.savez(work / f"{key}.npz", x=x, y=y)
        spec = [{**job, "npz": str(work / f"{job['data']}.npz"), "folds": FOLDS} for job in jobs]
        (work / "jobs.json").write_text(json.dumps(spec))
        (work / "child.py").write_text(_PEER_CHILD)
        subprocess.run(
            [python, str(work / "child.py"), str(work / "jobs.json"), str(work / "out.json")], check=True
        )
        return json.loads((work / "out.json").read_text())


# --- metrics ------------------------------------------------------------------------------


def detection(flagged: np.ndarray, poison: np.ndarray, y_true: np.ndarray) -> dict[str, Any]:
    tp = int((flagged & poison).sum())
    fp = int((flagged & ~poison).sum())
    fn = int((~flagged & poison).sum())
    precision = tp / (tp + fp) if tp + fp else (1.0 if not poison.any() else 0.0)
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    clean = ~poison
    fpr = {
        str(c): float(flagged[clean & (y_true == c)].mean())
        for c in np.unique(y_true[clean])
        if (clean & (y_true == c)).any()
    }
    return {
        "flagged": int(flagged.sum()),
        "poisoned": int(poison.sum()),
        "precision": precision,
        "recall": recall,
        "f1": f1 if poison.any() else float("nan"),
        "fpr_per_class": fpr,
        "max_class_fpr": max(fpr.values()) if fpr else 0.0,
    }


def downstream(
    x: np.ndarray, y: np.ndarray, keep: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> dict[str, float]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from threadpoolctl import threadpool_limits

    # Small fits run faster on one thread (and do not spin on a busy machine).
    with threadpool_limits(limits=1 if keep.sum() < 20_000 else None, user_api="openmp"):
        model = HistGradientBoostingClassifier(random_state=0).fit(x[keep], y[keep])
        pred = model.predict(x_test)
    return {
        "accuracy": float(accuracy_score(y_test, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_test, pred)),
    }


# --- parts --------------------------------------------------------------------------------


def quality(
    tiny: bool, seed: int, peer_python: str | None, skip_cleanlab: bool, attacks: tuple[str, ...] = ATTACKS
) -> dict[str, Any]:
    # The peer first: a run that cannot have it fails before any work, it never skips it.
    python = None if skip_cleanlab else ensure_peer_python(peer_python)
    sets = datasets(tiny, seed)
    cases: list[dict[str, Any]] = []
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for d, ds in enumerate(sets):
        ref_x = to_matrix(ds, ds.reference)
        test_x, test_y = to_matrix(ds, ds.test), ds.test[TARGET].to_numpy()
        for a, name in enumerate(ATTACKS):
            if name not in attacks:
                continue
            batch, poison = attack(ds, name, seed * 1000 + d * 10 + a)
            x, y = to_matrix(ds, batch), batch[TARGET].to_numpy()
            key = f"d{d}a{a}"
            arrays[key] = (x, y)
            # The true class of each row (the poisoned rows of a flip attack had another).
            y_true = y.copy()
            y_true[: len(ds.batch)][poison[: len(ds.batch)]] = ds.batch[TARGET].to_numpy()[
                poison[: len(ds.batch)]
            ]
            ours, t_ours = run_ours(ds, batch)
            forest, t_forest = run_isolation_forest(ref_x, x)
            cases.append(
                {
                    "key": key,
                    "dataset": ds.name,
                    "attack": name,
                    "rows": len(batch),
                    "test_rows": len(test_y),
                    "test_min_class_rows": int(np.bincount(test_y).min()),
                    "classes": len(np.unique(ds.reference[TARGET])),
                    "flags": {"screen_data": ours, "IsolationForest": forest},
                    "seconds": {"screen_data": t_ours, "IsolationForest": t_forest},
                    "_data": (x, y, poison, y_true, test_x, test_y),
                }
            )
            print(f"  {ds.name:36s} {name:20s} screen_data {t_ours:6.2f} s", flush=True)
    peer: dict[str, Any] = {}
    if skip_cleanlab:
        peer["cleanlab"] = "skipped (--skip-cleanlab: smoke mode only; a real run needs the peer)"
        print("cleanlab: " + peer["cleanlab"])
    else:
        assert python is not None
        jobs = [{"id": f"{c['key']}:{m}", "data": c["key"], "model": m} for c in cases for m in ("hgb", "lr")]
        print(f"cleanlab: {len(jobs)} jobs in {python}", flush=True)
        answer = run_cleanlab(python, jobs, arrays)
        peer["cleanlab_version"] = answer["cleanlab_version"]
        for c in cases:
            n = c["rows"]
            for m, side in (("hgb", "cleanlab (HGB)"), ("lr", "cleanlab (LR)")):
                res = answer["results"][f"{c['key']}:{m}"]
                mask = np.zeros(n, dtype=bool)
                mask[np.asarray(res["flagged"], dtype=np.int64)] = True
                c["flags"][side] = mask
                c["seconds"][side] = res["seconds"]
    results = []
    for c in cases:
        x, y, poison, y_true, test_x, test_y = c.pop("_data")
        flags = c.pop("flags")
        entry = {
            **{k: v for k, v in c.items() if k != "key"},
            "downstream_poisoned": downstream(x, y, np.ones(len(y), dtype=bool), test_x, test_y),
            "sides": {},
        }
        for side, mask in flags.items():
            entry["sides"][side] = {
                **detection(mask, poison, y_true),
                "downstream": downstream(x, y, ~mask, test_x, test_y),
            }
        results.append(entry)
    return {
        "reference_given_to": ["screen_data", "IsolationForest"],
        **peer,
        "cases": results,
        "summary": summarise(results),
    }


def summarise(cases: list[dict[str, Any]]) -> dict[str, Any]:
    sides = sorted({s for c in cases for s in c["sides"]}, key=lambda s: SIDES.index(s))
    out: dict[str, Any] = {}
    families = [a for a in ATTACKS if a != "clean"]
    for side in sides:
        per_family = {}
        for fam in families:
            f1s = [c["sides"][side]["f1"] for c in cases if c["attack"] == fam and side in c["sides"]]
            if f1s:
                per_family[fam] = float(np.mean(f1s))
        clean = [c for c in cases if c["attack"] == "clean" and side in c["sides"]]
        worst_fpr = max(((c["sides"][side]["max_class_fpr"], c["dataset"]) for c in clean), default=(0.0, ""))
        worse = []
        for c in cases:
            if side not in c["sides"] or c["attack"] == "clean":
                continue
            d_acc = c["sides"][side]["downstream"]["accuracy"] - c["downstream_poisoned"]["accuracy"]
            d_bal = (
                c["sides"][side]["downstream"]["balanced_accuracy"]
                - c["downstream_poisoned"]["balanced_accuracy"]
            )
            if d_acc < -1e-12 or d_bal < -1e-12:  # float noise of equal scores is not worse
                # One test row more or less right moves accuracy by 1 / rows, balanced accuracy by
                # 1 / (classes x rows of the class): a drop within that is one row of noise.
                row_acc = 1 / c["test_rows"] + 1e-12
                row_bal = 1 / (c["classes"] * c["test_min_class_rows"]) + 1e-12
                worse.append(
                    {
                        "dataset": c["dataset"],
                        "attack": c["attack"],
                        "accuracy": d_acc,
                        "balanced_accuracy": d_bal,
                        "beyond_one_test_row": bool(d_acc < -row_acc or d_bal < -row_bal),
                    }
                )
        gains = [
            c["sides"][side]["downstream"]["balanced_accuracy"]
            - c["downstream_poisoned"]["balanced_accuracy"]
            for c in cases
            if side in c["sides"] and c["attack"] != "clean"
        ]
        out[side] = {
            "mean_f1_per_attack": per_family,
            "mean_f1": float(np.mean(list(per_family.values()))) if per_family else float("nan"),
            "max_clean_fpr_of_a_class": worst_fpr[0],
            "max_clean_fpr_dataset": worst_fpr[1],
            "downstream_worse_cases": worse,
            "mean_balanced_accuracy_gain": float(np.mean(gains)) if gains else float("nan"),
            "seconds_total": float(sum(c["seconds"].get(side, 0.0) for c in cases)),
        }
    ours = out.get("screen_data")
    if ours:
        out["targets"] = {
            "mean_f1": {
                "target": f">= {TARGET_MEAN_F1}",
                "value": ours["mean_f1"],
                "met": ours["mean_f1"] >= TARGET_MEAN_F1,
            },
            "clean_fpr_per_class": {
                "target": f"<= {TARGET_CLEAN_FPR}",
                "value": ours["max_clean_fpr_of_a_class"],
                "met": ours["max_clean_fpr_of_a_class"] <= TARGET_CLEAN_FPR,
            },
            "never_worse_downstream": {
                "target": "0 cases",
                "value": len(ours["downstream_worse_cases"]),
                "met": not ours["downstream_worse_cases"],
                "cases_worse_by_more_than_one_test_row": sum(
                    w["beyond_one_test_row"] for w in ours["downstream_worse_cases"]
                ),
            },
        }
    return out


def scale(
    rows: int, features: int, peer_python: str | None, skip_cleanlab: bool, seed: int
) -> dict[str, Any]:
    from sklearn.datasets import make_classification

    python = None if skip_cleanlab else ensure_peer_python(peer_python)
    ref_rows = min(50_000, rows // 5)
    x, y = make_classification(
        n_samples=rows + ref_rows, n_features=features, n_informative=10, n_redundant=4, random_state=seed
    )
    names = [f"f{i}" for i in range(features)]
    rng = np.random.default_rng(seed)
    yb = y[:rows].copy()
    flips = rng.choice(rows, size=rows // 10, replace=False)
    yb[flips] = 1 - yb[flips]
    batch = pd.DataFrame(x[:rows], columns=names).assign(**{TARGET: yb})
    ref = pd.DataFrame(x[rows:], columns=names).assign(**{TARGET: y[rows:]})
    poison = np.zeros(rows, dtype=bool)
    poison[flips] = True
    out: dict[str, Any] = {"rows": rows, "features": features, "reference_rows": ref_rows, "sides": {}}

    start = time.perf_counter()
    result = screen_data(
        batch, target=TARGET, features=names, checks=ROW_CHECKS, max_suspect_fraction=1.0, reference=ref
    )
    t_ours = time.perf_counter() - start
    flagged = np.zeros(rows, dtype=bool)
    flagged[result.quarantined["_row_index"].to_numpy()] = True
    out["sides"]["screen_data"] = {"seconds": t_ours, **_brief(detection(flagged, poison, y[:rows]))}
    forest, t_forest = run_isolation_forest(ref[names].to_numpy(), batch[names].to_numpy())
    out["sides"]["IsolationForest"] = {"seconds": t_forest, **_brief(detection(forest, poison, y[:rows]))}
    if skip_cleanlab:
        out["cleanlab"] = "skipped (--skip-cleanlab)"
    else:
        assert python is not None
        answer = run_cleanlab(
            python, [{"id": "hgb", "data": "scale", "model": "hgb"}], {"scale": (batch[names].to_numpy(), yb)}
        )
        res = answer["results"]["hgb"]
        mask = np.zeros(rows, dtype=bool)
        mask[np.asarray(res["flagged"], dtype=np.int64)] = True
        out["sides"]["cleanlab (HGB)"] = {
            "seconds": res["seconds"],
            **_brief(detection(mask, poison, y[:rows])),
        }
        out["ratio_cleanlab_hgb_over_screen_data"] = res["seconds"] / t_ours
    out["target"] = {
        "seconds": f"< {TARGET_SCALE_SECONDS}",
        "value": t_ours,
        "met": t_ours < TARGET_SCALE_SECONDS,
    }
    return out


def _brief(d: dict[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in ("flagged", "precision", "recall", "f1", "max_class_fpr")}


# --- printing -----------------------------------------------------------------------------


def print_quality(q: dict[str, Any]) -> None:
    s = q["summary"]
    sides = [side for side in SIDES if side in s]
    print("\nMean F1 per attack (over datasets):")
    print(f"  {'attack':22s}" + "".join(f"{side:>18s}" for side in sides))
    for fam in [a for a in ATTACKS if a != "clean"]:
        if fam in s["screen_data"]["mean_f1_per_attack"]:
            print(f"  {fam:22s}" + "".join(f"{s[side]['mean_f1_per_attack'][fam]:18.3f}" for side in sides))
    print(f"  {'mean':22s}" + "".join(f"{s[side]['mean_f1']:18.3f}" for side in sides))
    print(
        f"  {'max clean FPR (class)':22s}"
        + "".join(f"{s[side]['max_clean_fpr_of_a_class']:18.3f}" for side in sides)
    )
    print(
        f"  {'downstream worse':22s}"
        + "".join(f"{len(s[side]['downstream_worse_cases']):18d}" for side in sides)
    )
    print(
        f"  {'  by > 1 test row':22s}"
        + "".join(
            f"{sum(w['beyond_one_test_row'] for w in s[side]['downstream_worse_cases']):18d}"
            for side in sides
        )
    )
    print(
        f"  {'mean bal. acc. gain':22s}"
        + "".join(f"{s[side]['mean_balanced_accuracy_gain']:18.4f}" for side in sides)
    )
    print(f"  {'seconds (all cases)':22s}" + "".join(f"{s[side]['seconds_total']:18.1f}" for side in sides))
    ours = s["screen_data"]
    for side in sides[1:]:
        ratio = ours["mean_f1"] / s[side]["mean_f1"] if s[side]["mean_f1"] else float("inf")
        print(f"  ratio, mean F1 screen_data / {side}: {ratio:.2f}x")
    for name, t in s["targets"].items():
        print(f"  target {name}: {t['value']:.4g} (target {t['target']}): {'met' if t['met'] else 'MISSED'}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("quality", "scale"), help="run one part only")
    parser.add_argument("--tiny", action="store_true", help="two small data sets only (smoke test)")
    parser.add_argument("--scale-rows", type=int, default=1_000_000)
    parser.add_argument("--scale-features", type=int, default=20)
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated subset of the attacks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peer-python", help="an interpreter with cleanlab (default: make benchmarks/.venv-cleanlab)"
    )
    parser.add_argument("--skip-cleanlab", action="store_true", help="smoke mode only: no cleanlab side")
    parser.add_argument("--out", type=Path, help="write the results as JSON here (merged into what is there)")
    args = parser.parse_args(argv)
    unknown = set(args.attacks.split(",")) - set(ATTACKS)
    if unknown:
        parser.error(f"unknown attack(s) {sorted(unknown)}: use any of {list(ATTACKS)}")

    results: dict[str, Any] = {}
    if args.out and args.out.exists():
        results = json.loads(args.out.read_text())  # --only keeps the other part's results
    results["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
        "date": dt.date.today().isoformat(),
    }
    if args.only in (None, "quality"):
        print("Quality:")
        q = results["quality"] = quality(
            args.tiny, args.seed, args.peer_python, args.skip_cleanlab, tuple(args.attacks.split(","))
        )
        print_quality(q)
    if args.only in (None, "scale"):
        sc = results["scale"] = scale(
            args.scale_rows, args.scale_features, args.peer_python, args.skip_cleanlab, args.seed
        )
        print(
            f"\nScale, {sc['rows']} rows x {sc['features']} features (10% flips), reference {sc['reference_rows']}:"
        )
        for side, v in sc["sides"].items():
            print(
                f"  {side:20s} {v['seconds']:8.2f} s   precision {v['precision']:.3f} recall {v['recall']:.3f} F1 {v['f1']:.3f}"
            )
        if "ratio_cleanlab_hgb_over_screen_data" in sc:
            print(
                f"  ratio of seconds, cleanlab (HGB) / screen_data: {sc['ratio_cleanlab_hgb_over_screen_data']:.2f}x"
            )
        print(f"  target < {TARGET_SCALE_SECONDS:g} s: {'met' if sc['target']['met'] else 'MISSED'}")
    results["machine"]["load_average_at_end"] = os.getloadavg()
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    return results


if __name__ == "__main__":
    main()
