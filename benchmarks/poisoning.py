"""Poisoning screens: ``screen_data`` vs cleanlab and IsolationForest, at equal inputs, in two regimes.

Two parts:

1. **Quality** (``--only quality``). Datasets that ship inside scikit-learn (``load_breast_cancer``,
   ``load_digits`` as a binary task, digit >= 5, and as 10 classes, ``load_wine``, ``load_iris``;
   nothing is downloaded) and synthetic ones (``make_classification`` balanced, 12,000 rows, and
   imbalanced with ~2 % positives, 30,000 rows; ``airflow_mlops.data.generate.generate_fraud_data``,
   50,000 rows). Each is split, stratified, into a *reference* (20 %: clean, from the same
   distribution), a *batch* (50 %) that is attacked and screened, and a clean *test* split (30 %)
   that is never screened. The attacks:

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

   The sides: ``screen_data`` (checks ``duplicates``, ``label_issues``, ``out_of_distribution``);
   cleanlab's ``cleanlab.filter.find_label_issues`` with ``pred_probs`` from
   ``sklearn.model_selection.cross_val_predict`` (5 stratified folds) of a
   ``HistGradientBoostingClassifier`` (``cleanlab (HGB)``) and of a ``StandardScaler`` +
   ``LogisticRegression`` (``cleanlab (LR)``); sklearn's ``IsolationForest``
   (``contamination="auto"``). Every side sees the very same attacked batches (same seeds) in two
   regimes, and within a regime every side gets the same data (the equal-input rule):

   ``no_reference``
       the batch alone. ``screen_data(batch, reference=None)``; cleanlab: ``cross_val_predict``
       on the batch, ``find_label_issues`` on the batch; IsolationForest fitted on the batch and
       scoring it.
   ``reference``
       the batch and the 20 % reference. ``screen_data(batch, reference=reference)``; cleanlab:
       ``cross_val_predict`` on the reference rows + the batch rows (concatenated, reference
       first), ``find_label_issues`` on all of them, and only the batch rows' flags count;
       IsolationForest fitted on the reference, scoring the batch.

   Per regime, side, dataset and attack: precision, recall and F1 against the injected rows, the
   false-positive rate on the rows that were not poisoned (per class), and the accuracy and
   balanced accuracy on the clean test split of the same model
   (``HistGradientBoostingClassifier(random_state=0)``) trained on the whole poisoned batch and
   on the batch rows the side accepted; the accuracy change is also counted in test rows
   (accuracy change x test rows: the change in rightly predicted test rows). One fit moves by a
   few test rows when a few training rows change, poisoned or not (a perfect screen, exactly the
   poisoned rows dropped, is worse than none in a tenth of the cases), so the downstream target
   is judged on a steadier measure: the mean of ``DOWNSTREAM_FITS`` fits (``random_state`` 0 to
   4), each on the kept rows of its own random 80 % of the batch rows, the same subsets for the
   poisoned batch, the perfect screen and every side of a case. Both measures are reported, each
   with the perfect screen's share beside it.

   The targets, for ``screen_data`` in each regime: mean F1 (over the attacks, each the mean over
   the datasets) >= the best peer's mean F1 + 0.05 (the best peer: the peer side, IsolationForest
   included, with the highest mean F1 in that regime); a clean-data false-positive rate <= 1 % in
   every class of every dataset; at most a tenth of the attacked cases with a downstream accuracy
   (the mean of the repeated fits) worse than with no screen by more than one test row.

   ``--sets overlapping`` runs the same part on ``make_classification`` with classes that overlap
   (its defaults: two informative features and 1 % of labels flipped by the generator; class_sep
   0.5; three classes), 10,000 rows each, results under ``quality_overlapping``: a clean batch
   there holds many rows that look like another class, which a screen with no baseline takes.

2. **Scale** (``--only scale``): 1,000,000 rows x 20 features (``make_classification``, 10 % random
   flips) screened with the same checks in both regimes (a 50,000-row reference; none), each
   under 60 s; against cleanlab (HGB ``cross_val_predict`` + ``find_label_issues`` on the batch)
   and IsolationForest (fitted on the reference) on the same rows.

cleanlab is AGPL-licensed and never a dependency of the package: the benchmark makes its own venv
(``benchmarks/.venv-cleanlab``, ``python -m venv`` + ``pip install cleanlab==CLEANLAB_VERSION ...``
with the numpy / scikit-learn / pandas versions of constraints.txt) and runs the peer there in a
subprocess (data in ``.npz`` files in a temporary folder, results back as JSON). When that venv
cannot be made the run fails. ``--peer-python`` names another interpreter that has cleanlab.

Usage::

    .venv/bin/python benchmarks/poisoning.py --out benchmarks/poisoning_results.json
    .venv/bin/python benchmarks/poisoning.py --only scale     # the 1M-row timing alone
    .venv/bin/python benchmarks/poisoning.py --only quality --regimes reference  # one regime
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
SHARES = (0.2, 0.5)  # reference and batch; the test split is the rest (30 %)
# --sets overlapping: make_classification's defaults (two informative features, 1 % of labels
# flipped by the generator) and two harder variants: classes that overlap.
OVERLAPPING: dict[str, dict[str, Any]] = {
    "make_classification (defaults)": {},
    "make_classification (class_sep 0.5)": {"class_sep": 0.5},
    "make_classification (3 classes)": {"n_classes": 3, "n_informative": 3},
}
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
PEERS = SIDES[1:]
REGIMES = ("no_reference", "reference")
# The equal-input rule: what every side is given in each regime (written into the results).
INPUTS = {
    "no_reference": {
        "screen_data": "the batch (reference=None)",
        "cleanlab": "the batch: cross_val_predict (5 folds) and find_label_issues on it",
        "IsolationForest": "the batch: fitted on it, scores it",
    },
    "reference": {
        "screen_data": "the batch and the reference (reference=the reference split)",
        "cleanlab": (
            "reference + batch rows: cross_val_predict (5 folds) and find_label_issues on all of"
            " them; only the batch rows' flags count"
        ),
        "IsolationForest": "the batch and the reference: fitted on the reference, scores the batch",
    },
}
# Short column names of the attacks in the per-dataset tables.
SHORT = {
    "random_5": "rand5",
    "random_10": "rand10",
    "random_20": "rand20",
    "class_conditional": "cls_cond",
    "hide_minority": "hide_min",
    "duplicates": "dups",
    "out_of_distribution": "ood",
}
# Targets of the issue, for screen_data in each regime.
TARGET_F1_MARGIN = 0.05  # mean F1 >= the best peer's mean F1 + this
TARGET_CLEAN_FPR = 0.01  # the clean-data false-positive rate of every class
TARGET_WORSE_SHARE = 0.10  # attacked cases downstream worse than no screen by > 1 test row
# The steadier downstream measure: the mean over this many fits, each on its own random share of
# the batch rows (the same shares for every side of a case).
DOWNSTREAM_FITS = 5
DOWNSTREAM_SUBSAMPLE = 0.8
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
    # Only the rows from the offset on count (the batch after the reference), numbered from there.
    flagged = np.flatnonzero(issues[job["offset"]:])
    out["results"][job["id"]] = {"flagged": flagged.tolist(), "seconds": seconds}
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


def datasets(tiny: bool, seed: int, sets: str = "main") -> list[Dataset]:
    """The data sets: ``main`` (the bundled sets and separable synthetic ones), or ``overlapping``
    (make_classification with classes that overlap: a clean batch holds many rows that look like
    another class, the case where a screen without a baseline takes genuine rows)."""
    from sklearn import datasets as skd

    out: list[Dataset] = []

    def add(name: str, df: pd.DataFrame, categorical: dict[str, list[str]] | None = None) -> None:
        ref, batch, test = _split(df, SHARES, seed)
        feats = [c for c in df.columns if c != TARGET]
        out.append(Dataset(name, ref, batch, test, feats, categorical or {}))

    if sets == "overlapping":
        for name, kwargs in OVERLAPPING.items():
            x, y = skd.make_classification(n_samples=2_000 if tiny else 10_000, random_state=seed, **kwargs)
            add(name, _frame(x, y))
        return out

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
    add("make_classification (balanced)", _frame(x, y))
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
    add("make_classification (2% positives)", _frame(x, y))
    fraud = generate_fraud_data(50_000, seed=seed * 10 + 1)[[*FEATURES, TARGET]]
    add("generate_fraud_data", fraud, {"country": sorted(fraud["country"].unique())})
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


def run_ours(ds: Dataset, batch: pd.DataFrame, reference: pd.DataFrame | None) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    result = screen_data(
        _float_features(batch, ds),
        target=TARGET,
        features=ds.features,
        checks=ROW_CHECKS,
        max_suspect_fraction=1.0,
        reference=None if reference is None else _float_features(reference, ds),
        # a multiclass set is screened as such (a binary pipeline refuses a third class)
        positive_label=1 if ds.reference[TARGET].nunique() <= 2 else None,
    )
    seconds = time.perf_counter() - start
    flagged = np.zeros(len(batch), dtype=bool)
    flagged[result.quarantined["_row_index"].to_numpy()] = True
    return flagged, seconds


def run_isolation_forest(fit_x: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Fit on ``fit_x`` (the reference, or the batch itself), flag the outliers of ``x``."""
    from sklearn.ensemble import IsolationForest

    start = time.perf_counter()
    # max_samples: sklearn's default (256), capped at the fitted rows.
    forest = IsolationForest(max_samples=min(256, len(fit_x)), contamination="auto", random_state=0)
    forest.fit(fit_x)
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
    """Run every job (``id``, ``data``, ``model``, optional ``offset``: the flags of the rows before
    it are dropped, the others renumbered from it) in one peer subprocess; returns its JSON."""
    with tempfile.TemporaryDirectory(prefix="poison-bench-") as tmp:
        work = Path(tmp)
        for key, (x, y) in arrays.items():
            np.savez(work / f"{key}.npz", x=x, y=y)
        spec = [{"offset": 0, **job, "npz": str(work / f"{job['data']}.npz"), "folds": FOLDS} for job in jobs]
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
    x: np.ndarray,
    y: np.ndarray,
    keep: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    subsets: list[np.ndarray] | None = None,
) -> dict[str, Any]:
    """The clean test split's accuracy of ``HistGradientBoostingClassifier`` trained on the
    ``keep`` rows: one fit on all of them (``random_state=0``), and, given ``subsets`` (row masks
    shared by every side of a case), the mean over one fit per subset (``random_state`` its
    number) on the kept rows of that subset: the steadier measure, whose differences between two
    sides do not hang on a few rows' luck in one fit."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from threadpoolctl import threadpool_limits

    def fit(rows: np.ndarray, seed: int) -> np.ndarray:
        # Small fits run faster on one thread (and do not spin on a busy machine).
        with threadpool_limits(limits=1 if rows.sum() < 20_000 else None, user_api="openmp"):
            return HistGradientBoostingClassifier(random_state=seed).fit(x[rows], y[rows]).predict(x_test)

    pred = fit(keep, 0)
    out: dict[str, Any] = {
        "accuracy": float(accuracy_score(y_test, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_test, pred)),
        "correct_test_rows": int((pred == y_test).sum()),
    }
    if subsets:
        correct = [int((fit(keep & sub, r) == y_test).sum()) for r, sub in enumerate(subsets)]
        out["correct_test_rows_per_fit"] = correct
        out["mean_correct_test_rows"] = float(np.mean(correct))
    return out


def downstream_subsets(rows: int, seed: int) -> list[np.ndarray]:
    """``DOWNSTREAM_FITS`` random row masks (each row in with ``DOWNSTREAM_SUBSAMPLE``), one set per
    case: the poisoned batch, the perfect screen and every side are fitted on the same subsets."""
    rng = np.random.default_rng(seed)
    return [rng.random(rows) < DOWNSTREAM_SUBSAMPLE for _ in range(DOWNSTREAM_FITS)]


# --- parts --------------------------------------------------------------------------------


def quality(
    tiny: bool,
    seed: int,
    peer_python: str | None,
    skip_cleanlab: bool,
    attacks: tuple[str, ...] = ATTACKS,
    regimes: tuple[str, ...] = REGIMES,
    sets: str = "main",
) -> dict[str, Any]:
    # The peer first: a run that cannot have it fails before any work, it never skips it.
    python = None if skip_cleanlab else ensure_peer_python(peer_python)
    data_sets = datasets(tiny, seed, sets)
    cases: list[dict[str, Any]] = []
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for d, ds in enumerate(data_sets):
        ref_x, ref_y = to_matrix(ds, ds.reference), ds.reference[TARGET].to_numpy()
        test_x, test_y = to_matrix(ds, ds.test), ds.test[TARGET].to_numpy()
        for a, name in enumerate(ATTACKS):
            if name not in attacks:
                continue
            # One attacked batch per dataset and attack: both regimes screen the very same rows.
            case_seed = seed * 1000 + d * 10 + a
            batch, poison = attack(ds, name, case_seed)
            x, y = to_matrix(ds, batch), batch[TARGET].to_numpy()
            key = f"d{d}a{a}"
            # The true class of each row (the poisoned rows of a flip attack had another).
            y_true = y.copy()
            y_true[: len(ds.batch)][poison[: len(ds.batch)]] = ds.batch[TARGET].to_numpy()[
                poison[: len(ds.batch)]
            ]
            flags: dict[str, dict[str, np.ndarray]] = {}
            seconds: dict[str, dict[str, float]] = {}
            for regime in regimes:
                given = regime == "reference"
                ours, t_ours = run_ours(ds, batch, ds.reference if given else None)
                forest, t_forest = run_isolation_forest(ref_x if given else x, x)
                flags[regime] = {"screen_data": ours, "IsolationForest": forest}
                seconds[regime] = {"screen_data": t_ours, "IsolationForest": t_forest}
                # cleanlab's rows: the batch, or the reference rows first and then the batch.
                arrays[f"{key}-{regime}"] = (
                    (np.vstack([ref_x, x]), np.concatenate([ref_y, y])) if given else (x, y)
                )
            cases.append(
                {
                    "key": key,
                    "dataset": ds.name,
                    "attack": name,
                    "rows": len(batch),
                    "reference_rows": len(ref_x),
                    "test_rows": len(test_y),
                    "classes": len(np.unique(ds.reference[TARGET])),
                    "flags": flags,
                    "seconds": seconds,
                    "_data": (x, y, poison, y_true, test_x, test_y, case_seed),
                }
            )
            times = ", ".join(f"{r} {seconds[r]['screen_data']:6.2f} s" for r in regimes)
            print(f"  {ds.name:36s} {name:20s} screen_data: {times}", flush=True)
    peer: dict[str, Any] = {}
    if skip_cleanlab:
        peer["cleanlab"] = "skipped (--skip-cleanlab: smoke mode only; a real run needs the peer)"
        print("cleanlab: " + peer["cleanlab"])
    else:
        assert python is not None
        jobs = [
            {
                "id": f"{c['key']}-{regime}:{m}",
                "data": f"{c['key']}-{regime}",
                "model": m,
                "offset": c["reference_rows"] if regime == "reference" else 0,
            }
            for c in cases
            for regime in regimes
            for m in ("hgb", "lr")
        ]
        print(f"cleanlab: {len(jobs)} jobs in {python}", flush=True)
        answer = run_cleanlab(python, jobs, arrays)
        peer["cleanlab_version"] = answer["cleanlab_version"]
        for c in cases:
            for regime in regimes:
                for m, side in (("hgb", "cleanlab (HGB)"), ("lr", "cleanlab (LR)")):
                    res = answer["results"][f"{c['key']}-{regime}:{m}"]
                    mask = np.zeros(c["rows"], dtype=bool)
                    mask[np.asarray(res["flagged"], dtype=np.int64)] = True
                    c["flags"][regime][side] = mask
                    c["seconds"][regime][side] = res["seconds"]
    return {**peer, "regimes": score(cases, regimes)}


def score(cases: list[dict[str, Any]], regimes: tuple[str, ...]) -> dict[str, Any]:
    """Per regime: every side's detection metrics and downstream accuracy on each case (the flags
    in ``flags``, the arrays in ``_data``, which this pops), and the summary."""
    per_regime: dict[str, list[dict[str, Any]]] = {regime: [] for regime in regimes}
    for c in cases:
        x, y, poison, y_true, test_x, test_y, case_seed = c.pop("_data")
        data = (x, y, test_x, test_y, downstream_subsets(len(y), case_seed))
        fits: dict[bytes, dict[str, Any]] = {}
        poisoned = _downstream_once(fits, data, np.ones(len(y), dtype=bool))
        # The noise floor of the downstream target: a perfect screen drops exactly the poisoned rows.
        perfect = _downstream_once(fits, data, ~poison)
        common = {k: v for k, v in c.items() if k not in ("key", "flags", "seconds")}
        for regime in regimes:
            sides = {}
            for side in SIDES:
                mask = c["flags"][regime].get(side)
                if mask is None:
                    continue
                screened = _downstream_once(fits, data, ~mask)
                sides[side] = {
                    **detection(mask, poison, y_true),
                    "downstream": screened,
                    # accuracy change x test rows: rightly predicted test rows won (or lost)
                    "accuracy_change_test_rows": screened["correct_test_rows"]
                    - poisoned["correct_test_rows"],
                    # the same over the repeated fits: their mean change
                    "mean_accuracy_change_test_rows": screened["mean_correct_test_rows"]
                    - poisoned["mean_correct_test_rows"],
                }
            per_regime[regime].append(
                {
                    **common,
                    "seconds": c["seconds"][regime],
                    "downstream_poisoned": poisoned,
                    "downstream_perfect_screen": perfect,
                    "sides": sides,
                }
            )
    return {
        regime: {"inputs": INPUTS[regime], "cases": cs, "summary": summarise(cs)}
        for regime, cs in per_regime.items()
    }


def _downstream_once(
    fits: dict[bytes, dict[str, Any]], data: tuple[Any, ...], keep: np.ndarray
) -> dict[str, Any]:
    """``downstream`` of ``data`` (x, y, x_test, y_test, subsets) trained on the ``keep`` rows,
    remembered in ``fits``: the model is deterministic, the same accepted rows (often: both
    regimes) fit once."""
    mark = np.packbits(keep).tobytes()
    if mark not in fits:
        x, y, x_test, y_test, subsets = data
        fits[mark] = downstream(x, y, keep, x_test, y_test, subsets)
    return fits[mark]


def mean_f1_target(out: dict[str, Any], peers: list[str]) -> dict[str, Any]:
    """The mean-F1 target of ``out["screen_data"]`` against the best of ``peers`` (the highest
    mean F1; a NaN, no attacked case, ranks last); sets ``out["best_peer"]`` and the F1 ratios."""
    ours = out["screen_data"]
    best = max(peers, key=lambda side: np.nan_to_num(out[side]["mean_f1"], nan=-np.inf))
    bar = out[best]["mean_f1"] + TARGET_F1_MARGIN
    out["best_peer"] = best
    out["mean_f1_ratio_screen_data_over"] = {
        side: ours["mean_f1"] / out[side]["mean_f1"] if out[side]["mean_f1"] else float("inf")
        for side in peers
    }
    return {
        "target": f">= {best} {out[best]['mean_f1']:.3f} + {TARGET_F1_MARGIN} = {bar:.3f}",
        "value": ours["mean_f1"],
        "best_peer": best,
        "met": bool(ours["mean_f1"] >= bar),
    }


def _worse(cases: list[dict[str, Any]], change: Any) -> list[dict[str, Any]]:
    """The cases whose ``change(case)`` (test rows predicted right, screened minus poisoned) is
    below -1: downstream worse than no screen by more than one test row."""
    return [
        {"dataset": c["dataset"], "attack": c["attack"], "test_rows": value}
        for c in cases
        if (value := change(c)) < -1
    ]


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def summarise(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Per side (one regime's cases): mean F1 per attack and overall, F1 per dataset and attack,
    the worst clean-class FPR (overall and per dataset), the attacked cases downstream worse than
    no screen by more than one test row; then the best peer, the F1 ratios and the targets."""
    sides = [side for side in SIDES if any(side in c["sides"] for c in cases)]
    families = [a for a in ATTACKS if a != "clean"]
    out: dict[str, Any] = {}
    for side in sides:
        mine = [c for c in cases if side in c["sides"]]
        attacked = [c for c in mine if c["attack"] != "clean"]
        per_family = {}
        for fam in families:
            f1s = [c["sides"][side]["f1"] for c in attacked if c["attack"] == fam]
            if f1s:
                per_family[fam] = _mean(f1s)
        f1_per_dataset: dict[str, dict[str, float]] = {}
        for c in attacked:
            f1_per_dataset.setdefault(c["dataset"], {})[c["attack"]] = c["sides"][side]["f1"]
        clean_fpr = {c["dataset"]: c["sides"][side]["max_class_fpr"] for c in mine if c["attack"] == "clean"}
        worst_fpr = max(((v, name) for name, v in clean_fpr.items()), default=(0.0, ""))
        # Worse by more than one test row: more than one test row fewer predicted right, in the one
        # fit on all kept rows and in the mean of the repeated fits.
        worse = _worse(attacked, lambda c, side=side: c["sides"][side]["accuracy_change_test_rows"])
        worse_mean = _worse(attacked, lambda c, side=side: c["sides"][side]["mean_accuracy_change_test_rows"])
        out[side] = {
            "mean_f1_per_attack": per_family,
            "mean_f1": _mean(list(per_family.values())),
            "f1_per_dataset": f1_per_dataset,
            "max_clean_fpr_of_a_class": worst_fpr[0],
            "max_clean_fpr_dataset": worst_fpr[1],
            "max_clean_fpr_per_dataset": clean_fpr,
            "downstream_worse_by_more_than_one_test_row": worse,
            "downstream_worse_cases": len(worse),
            "downstream_attacked_cases": len(attacked),
            "downstream_worse_share": len(worse) / len(attacked) if attacked else 0.0,
            "mean_of_fits_downstream_worse_by_more_than_one_test_row": worse_mean,
            "mean_of_fits_downstream_worse_cases": len(worse_mean),
            "mean_of_fits_downstream_worse_share": len(worse_mean) / len(attacked) if attacked else 0.0,
            "mean_accuracy_change_test_rows": _mean(
                [c["sides"][side]["accuracy_change_test_rows"] for c in attacked]
            ),
            "mean_of_fits_mean_accuracy_change_test_rows": _mean(
                [c["sides"][side]["mean_accuracy_change_test_rows"] for c in attacked]
            ),
            "mean_balanced_accuracy_gain": _mean(
                [
                    c["sides"][side]["downstream"]["balanced_accuracy"]
                    - c["downstream_poisoned"]["balanced_accuracy"]
                    for c in attacked
                ]
            ),
            "seconds_total": float(sum(c["seconds"].get(side, 0.0) for c in mine)),
        }
    # A perfect screen (exactly the poisoned rows dropped) against the same target: how often the
    # downstream model's own variance alone makes it worse by more than one test row.
    attacked = [c for c in cases if c["attack"] != "clean" and "downstream_perfect_screen" in c]
    perfect_worse = _worse(
        attacked,
        lambda c: (
            c["downstream_perfect_screen"]["correct_test_rows"]
            - c["downstream_poisoned"]["correct_test_rows"]
        ),
    )
    perfect_worse_mean = _worse(
        attacked,
        lambda c: (
            c["downstream_perfect_screen"]["mean_correct_test_rows"]
            - c["downstream_poisoned"]["mean_correct_test_rows"]
        ),
    )
    out["perfect_screen"] = {
        "downstream_worse_by_more_than_one_test_row": perfect_worse,
        "downstream_worse_cases": len(perfect_worse),
        "downstream_worse_share": len(perfect_worse) / len(attacked) if attacked else 0.0,
        "mean_of_fits_downstream_worse_by_more_than_one_test_row": perfect_worse_mean,
        "mean_of_fits_downstream_worse_cases": len(perfect_worse_mean),
        "mean_of_fits_downstream_worse_share": len(perfect_worse_mean) / len(attacked) if attacked else 0.0,
    }
    ours = out.get("screen_data")
    peers = [side for side in PEERS if side in out]
    if ours and peers:
        out["targets"] = {
            "mean_f1_vs_best_peer": mean_f1_target(out, peers),
            "clean_fpr_per_class": {
                "target": f"<= {TARGET_CLEAN_FPR} (worst class of any dataset)",
                "value": ours["max_clean_fpr_of_a_class"],
                "met": ours["max_clean_fpr_of_a_class"] <= TARGET_CLEAN_FPR,
            },
            # The target's measure: the mean over the repeated fits (a perfect screen's share under
            # it is the floor any screen can reach).
            "downstream_worse_share": {
                "target": (
                    f"<= {TARGET_WORSE_SHARE} of the attacked cases worse by > 1 test row"
                    f" (mean of {DOWNSTREAM_FITS} fits on {DOWNSTREAM_SUBSAMPLE:.0%} subsets)"
                ),
                "value": ours["mean_of_fits_downstream_worse_share"],
                "cases": ours["mean_of_fits_downstream_worse_cases"],
                "attacked_cases": ours["downstream_attacked_cases"],
                "perfect_screen_share": out["perfect_screen"]["mean_of_fits_downstream_worse_share"],
                "met": ours["mean_of_fits_downstream_worse_share"] <= TARGET_WORSE_SHARE,
            },
            # The same on one fit on all kept rows: reported beside it, with its own floor.
            "downstream_worse_share_one_fit": {
                "target": f"<= {TARGET_WORSE_SHARE} of the attacked cases worse by > 1 test row (one fit)",
                "value": ours["downstream_worse_share"],
                "cases": ours["downstream_worse_cases"],
                "attacked_cases": ours["downstream_attacked_cases"],
                "perfect_screen_share": out["perfect_screen"]["downstream_worse_share"],
                "met": ours["downstream_worse_share"] <= TARGET_WORSE_SHARE,
            },
        }
    return out


def scale(
    rows: int,
    features: int,
    peer_python: str | None,
    skip_cleanlab: bool,
    seed: int,
    regimes: tuple[str, ...] = REGIMES,
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
    out: dict[str, Any] = {
        "rows": rows,
        "features": features,
        "reference_rows": ref_rows,
        "sides": {},
        "targets": {},
    }

    screen_seconds = {}
    for regime in regimes:
        flagged, t_ours = timed_screen(batch, names, ref if regime == "reference" else None)
        screen_seconds[regime] = t_ours
        out["sides"][f"screen_data [{regime}]"] = {
            "seconds": t_ours,
            **_brief(detection(flagged, poison, y[:rows])),
        }
        out["targets"][regime] = scale_target(t_ours)
    forest, t_forest = run_isolation_forest(ref[names].to_numpy(), batch[names].to_numpy())
    out["sides"]["IsolationForest [reference]"] = {
        "seconds": t_forest,
        **_brief(detection(forest, poison, y[:rows])),
    }
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
        out["sides"]["cleanlab (HGB) [no_reference]"] = {
            "seconds": res["seconds"],
            **_brief(detection(mask, poison, y[:rows])),
        }
        out["ratio_cleanlab_hgb_over_screen_data"] = {
            regime: res["seconds"] / t for regime, t in screen_seconds.items()
        }
    return out


def _brief(d: dict[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in ("flagged", "precision", "recall", "f1", "max_class_fpr")}


def timed_screen(
    batch: pd.DataFrame, names: list[str], reference: pd.DataFrame | None, target: str = TARGET, **kwargs: Any
) -> tuple[np.ndarray, float]:
    """The scale part's screen of ``batch`` (every row check, nothing held back by the suspect
    fraction): the flagged rows and the seconds it took. ``kwargs`` go to ``screen_data``."""
    start = time.perf_counter()
    result = screen_data(
        batch,
        target=target,
        features=names,
        checks=ROW_CHECKS,
        max_suspect_fraction=1.0,
        reference=reference,
        **kwargs,
    )
    seconds = time.perf_counter() - start
    flagged = np.zeros(len(batch), dtype=bool)
    flagged[result.quarantined["_row_index"].to_numpy()] = True
    return flagged, seconds


def scale_target(seconds: float) -> dict[str, Any]:
    return {"seconds": f"< {TARGET_SCALE_SECONDS}", "value": seconds, "met": seconds < TARGET_SCALE_SECONDS}


# --- printing -----------------------------------------------------------------------------


def _row(label: str, cells: list[str]) -> str:
    return f"  {label:26s}" + "".join(f"{cell:>18s}" for cell in cells)


def print_regime(regime: str, r: dict[str, Any]) -> None:
    s = r["summary"]
    sides = [side for side in SIDES if side in s]
    print(f"\nRegime {regime}:")
    for side, given in r["inputs"].items():
        print(f"  {side} gets {given}")
    print("\n  Mean F1 per attack (over datasets):")
    print(_row("attack", sides))
    for fam in [a for a in ATTACKS if a != "clean"]:
        if fam in s["screen_data"]["mean_f1_per_attack"]:
            print(_row(fam, [f"{s[side]['mean_f1_per_attack'][fam]:.3f}" for side in sides]))
    print(_row("mean", [f"{s[side]['mean_f1']:.3f}" for side in sides]))
    print(_row("max clean FPR (class)", [f"{s[side]['max_clean_fpr_of_a_class']:.3f}" for side in sides]))
    for label, prefix in (("one fit", ""), (f"mean of {DOWNSTREAM_FITS} fits", "mean_of_fits_")):
        print(f"  downstream, {label}:")
        print(
            _row(
                "  worse by > 1 test row",
                [f"{s[side][prefix + 'downstream_worse_cases']:d}" for side in sides],
            )
        )
        print(
            _row(
                "  share of attacked cases",
                [f"{s[side][prefix + 'downstream_worse_share']:.3f}" for side in sides],
            )
        )
        change = prefix + "mean_accuracy_change_test_rows"
        print(_row("  mean change (test rows)", [f"{s[side][change]:.2f}" for side in sides]))
        if "perfect_screen" in s:
            p = s["perfect_screen"]
            print(
                f"    a perfect screen (exactly the poisoned rows dropped) is worse by > 1 row in"
                f" {p[prefix + 'downstream_worse_cases']} cases ({p[prefix + 'downstream_worse_share']:.3f}):"
                " the downstream model's own variance"
            )
    print(_row("mean bal. acc. gain", [f"{s[side]['mean_balanced_accuracy_gain']:.4f}" for side in sides]))
    print(_row("seconds (all cases)", [f"{s[side]['seconds_total']:.1f}" for side in sides]))
    if "targets" not in s:
        return
    for side in ("screen_data", s["best_peer"]):
        print_per_dataset(side, s[side], [c["dataset"] for c in r["cases"]])
    print()
    for side, ratio in s["mean_f1_ratio_screen_data_over"].items():
        print(f"  ratio, mean F1 screen_data / {side}: {ratio:.2f}x")
    for name, t in s["targets"].items():
        print(f"  target {name}: {t['value']:.4g} (target {t['target']}): {'met' if t['met'] else 'MISSED'}")


def print_per_dataset(side: str, s: dict[str, Any], names: list[str]) -> None:
    """Rows: datasets; columns: the attacks' F1, then the dataset's worst clean-class FPR."""
    fams = [a for a in ATTACKS if a in s["mean_f1_per_attack"]]
    print(f"\n  {side}: F1 per dataset and attack, worst clean-class FPR")
    print(f"    {'dataset':36s}" + "".join(f"{SHORT[a]:>9s}" for a in fams) + f"{'clean FPR':>11s}")
    for name in dict.fromkeys(names):
        f1 = s["f1_per_dataset"].get(name, {})
        fpr = s["max_clean_fpr_per_dataset"].get(name)
        cells = "".join(f"{f1[a]:9.3f}" if a in f1 else f"{'-':>9s}" for a in fams)
        print(f"    {name:36s}{cells}" + (f"{fpr:11.3f}" if fpr is not None else f"{'-':>11s}"))


def _choices(
    parser: argparse.ArgumentParser, text: str, known: tuple[str, ...], what: str
) -> tuple[str, ...]:
    chosen = tuple(text.split(","))
    unknown = set(chosen) - set(known)
    if unknown:
        parser.error(f"unknown {what}(s) {sorted(unknown)}: use any of {list(known)}")
    return chosen


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("quality", "scale"), help="run one part only")
    parser.add_argument("--tiny", action="store_true", help="two small data sets only (smoke test)")
    parser.add_argument("--scale-rows", type=int, default=1_000_000)
    parser.add_argument("--scale-features", type=int, default=20)
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated subset of the attacks")
    parser.add_argument("--regimes", default=",".join(REGIMES), help="comma-separated subset of the regimes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sets",
        choices=("main", "overlapping"),
        default="main",
        help="the quality part's data sets; overlapping: classes that overlap (results under quality_overlapping)",
    )
    parser.add_argument(
        "--peer-python", help="an interpreter with cleanlab (default: make benchmarks/.venv-cleanlab)"
    )
    parser.add_argument("--skip-cleanlab", action="store_true", help="smoke mode only: no cleanlab side")
    parser.add_argument("--out", type=Path, help="write the results as JSON here (merged into what is there)")
    args = parser.parse_args(argv)
    attacks = _choices(parser, args.attacks, ATTACKS, "attack")
    regimes = _choices(parser, args.regimes, REGIMES, "regime")

    results: dict[str, Any] = {}
    if args.out and args.out.exists():
        results = json.loads(args.out.read_text())  # --only keeps the other part's results
    # The overlapping sets' machine beside their results: the main run's record stays as it is.
    machine = "machine" if args.sets == "main" or args.only == "scale" else f"machine_{args.sets}"
    results[machine] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
        "date": dt.date.today().isoformat(),
    }
    if args.only in (None, "quality"):
        print("Quality:")
        key = "quality" if args.sets == "main" else f"quality_{args.sets}"
        q = results[key] = quality(
            args.tiny, args.seed, args.peer_python, args.skip_cleanlab, attacks, regimes, args.sets
        )
        for regime, r in q["regimes"].items():
            print_regime(regime, r)
    if args.only in (None, "scale"):
        sc = results["scale"] = scale(
            args.scale_rows, args.scale_features, args.peer_python, args.skip_cleanlab, args.seed, regimes
        )
        print(
            f"\nScale, {sc['rows']} rows x {sc['features']} features (10% flips), reference {sc['reference_rows']}:"
        )
        for side, v in sc["sides"].items():
            print(
                f"  {side:30s} {v['seconds']:8.2f} s   precision {v['precision']:.3f} recall {v['recall']:.3f} F1 {v['f1']:.3f}"
            )
        for regime, ratio in sc.get("ratio_cleanlab_hgb_over_screen_data", {}).items():
            print(f"  ratio of seconds, cleanlab (HGB) / screen_data [{regime}]: {ratio:.2f}x")
        for regime, t in sc["targets"].items():
            print(f"  target < {TARGET_SCALE_SECONDS:g} s [{regime}]: {'met' if t['met'] else 'MISSED'}")
    results[machine]["load_average_at_end"] = os.getloadavg()
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    return results


if __name__ == "__main__":
    main()
