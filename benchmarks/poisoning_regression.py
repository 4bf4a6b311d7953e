"""Poisoning screens of a regression target: ``screen_data`` vs cleanlab and IsolationForest, at equal inputs, in two regimes.

The regression part of ``benchmarks/poisoning.py`` (whose helpers it imports: the peer's venv,
IsolationForest, the detection metrics, the data set record and the targets' constants).

Datasets that ship inside scikit-learn (nothing is downloaded): ``load_diabetes`` (442 rows),
``make_regression`` (12,000 rows, 20 features, 8 informative, noise 10), ``make_friedman1``
(10,000 rows, 10 features, 5 informative, noise 1) and a heavy-tailed one (``make_regression``,
10,000 rows, 10 features, 5 informative, plus Student-t noise with 3 degrees of freedom: clean
rows far out in the tails test the false positives), and, for the clean-data false positives only
(no attack is run on it), a lognormal target whose noise grows with its level (10,000 rows, 5
normal features, ``y = exp(1 + 0.8 x0 + 0.4 x1 + 0.5 e)``: prices, claims, durations). Each is split, stratified on deciles of the
target, into a *reference* (20 %: clean, from the same distribution), a *batch* (50 %) that is
attacked and screened, and a clean *test* split (30 %) that is never screened. The attacks:

``clean``
    nothing: every flag is a false positive.
``noise_5`` / ``noise_20``
    that share of the batch's targets replaced by a draw from the target's own marginal (another
    batch row's target, never one equal to the row's own): in range, hard to see.
``shift_10``
    10 % of the targets moved by 3 to 6 reference standard deviations of the target, random sign.
``duplicates``
    3 % of the batch copied with a target drawn from the marginal, appended (the copies are the
    poison).
``out_of_distribution``
    3 % of the batch copied, three features moved to 6 to 10 reference standard deviations from
    the reference's mean, a target drawn from the marginal, appended.

The sides: ``screen_data`` (``task="regression"``; checks ``duplicates``, ``label_issues``,
``out_of_distribution``; ``max_suspect_fraction=1.0``); cleanlab's regression API as a user calls
it, ``cleanlab.regression.learn.CleanLearning(model=HistGradientBoostingRegressor(random_state=0),
cv_n_folds=5, seed=0).find_label_issues(X, y)`` and its ``is_label_issue`` column
(``cleanlab (HGB)``); sklearn's ``IsolationForest`` (``contamination="auto"``). Every side sees
the very same attacked batches (same seeds) in two regimes, and within a regime every side gets
the same data (the equal-input rule):

``no_reference``
    the batch alone. ``screen_data(batch, reference=None)``; cleanlab: ``find_label_issues`` on
    the batch; IsolationForest fitted on the batch and scoring it.
``reference``
    the batch and the 20 % reference. ``screen_data(batch, reference=reference)``; cleanlab:
    ``find_label_issues`` on the reference rows + the batch rows (concatenated, reference first),
    only the batch rows' flags count; IsolationForest fitted on the reference, scoring the batch.

**Scale** (``--only scale``; both parts run by default): 1,000,000 rows x 20 features
(``make_regression``, 8 informative, noise 10), 10 % of the batch's targets swapped among
themselves, a 50,000-row clean reference; ``screen_data`` with every row check in both regimes,
timed, beside an IsolationForest fitted on the reference (the ratio of their seconds is printed).
The target: under 60 s in each regime (the classification part's).

Per regime, side, dataset and attack: precision, recall and F1 against the injected rows, the
false-positive rate on the rows that were not poisoned, and the test R² and RMSE (on the clean
test split) of ``HistGradientBoostingRegressor(random_state=0)`` trained on the whole poisoned
batch and on the batch rows the side accepted, and their change. A perfect screen (exactly the
poisoned rows dropped) is scored the same way: how often the downstream model's own variance
alone makes a screen look worse.

The targets, for ``screen_data`` in each regime (the constants of ``poisoning.py``): mean F1
(over the attacks, each the mean over the datasets) >= the best peer's mean F1 + 0.05; a
clean-data false-positive rate <= 1 % on every dataset; at most a tenth of the attacked cases
with a test R² worse than with no screen by more than :data:`TARGET_R2_DROP`.

cleanlab is AGPL-licensed and never a dependency of the package: it runs in the benchmark's own
venv (``benchmarks/.venv-cleanlab``, made by ``poisoning.py``'s ``ensure_peer_python``) in a
subprocess (data in ``.npz`` files in a temporary folder, results back as JSON). When that venv
cannot import ``cleanlab.regression`` the run fails. ``--peer-python`` names another interpreter
that has cleanlab; ``--skip-cleanlab`` (smoke only) leaves the peer out. ``--peer-cache FILE``
keeps the peer's flags and seconds in a JSON file, keyed by a hash of the very rows and targets it
was given (and of the peer's code): the peer does not change when the screen does, so a rerun on
the same batches reads them back instead of refitting (the results say how many were read back).
``--peer-from RESULTS.json`` takes the peer's per-case numbers (F1, FPR, downstream, seconds) from
an earlier run's results instead, for every case whose data set, attack, rows and poisoned rows
match (the batches are the same for the same seed; the peer is deterministic); it runs only on
the others.

Usage::

    .venv/bin/python benchmarks/poisoning_regression.py --out benchmarks/poisoning_regression_results.json
    .venv/bin/python benchmarks/poisoning_regression.py --regimes reference --attacks clean,noise_5
    .venv/bin/python benchmarks/poisoning_regression.py --tiny --skip-cleanlab  # smoke
    .venv/bin/python benchmarks/poisoning_regression.py --only scale  # the 1M x 20 timing alone
    .venv/bin/python benchmarks/poisoning_regression.py --peer-cache /tmp/cleanlab-flags.json --out ...
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_mlops.data.poisoning import screen_data  # noqa: E402


def _classification_benchmark() -> ModuleType:
    """``benchmarks/poisoning.py`` as a module (``benchmarks/`` is no package): loaded by path under
    the name the smoke tests give it, once."""
    name = "poisoning_benchmark"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "poisoning.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


pb = _classification_benchmark()

TARGET = "y"
FOLDS = pb.FOLDS
SHARES = pb.SHARES  # reference and batch; the test split is the rest (30 %)
STRATA = 10  # the splits are stratified on this many quantile bins of the target
ROW_CHECKS = pb.ROW_CHECKS
ATTACKS = ("clean", "noise_5", "noise_20", "shift_10", "duplicates", "out_of_distribution")
TINY_ATTACKS = ("clean", "shift_10")
# Data sets only the clean batch of is screened: their flags count in the clean FPR, not in the F1s.
CLEAN_ONLY = ("lognormal (clean only)",)
SIDES = ("screen_data", "cleanlab (HGB)", "IsolationForest")
PEERS = SIDES[1:]
REGIMES = pb.REGIMES
INPUTS = {
    "no_reference": {
        "screen_data": "the batch (reference=None, task='regression')",
        "cleanlab": "the batch: CleanLearning(HGB regressor, cv_n_folds=5).find_label_issues on it",
        "IsolationForest": "the batch: fitted on it, scores it",
    },
    "reference": {
        "screen_data": "the batch and the reference (reference=the reference split, task='regression')",
        "cleanlab": (
            "reference + batch rows: CleanLearning(HGB regressor, cv_n_folds=5).find_label_issues on"
            " all of them; only the batch rows' flags count"
        ),
        "IsolationForest": "the batch and the reference: fitted on the reference, scores the batch",
    },
}
SHORT = {
    "noise_5": "noise5",
    "noise_20": "noise20",
    "shift_10": "shift10",
    "duplicates": "dups",
    "out_of_distribution": "ood",
}
# The targets of poisoning.py, and the downstream one in R².
TARGET_F1_MARGIN = pb.TARGET_F1_MARGIN
TARGET_CLEAN_FPR = pb.TARGET_CLEAN_FPR
TARGET_WORSE_SHARE = pb.TARGET_WORSE_SHARE
TARGET_R2_DROP = 0.005  # a case is downstream worse when its test R² drops by more than this

# Runs in the peer's venv: CleanLearning.find_label_issues, as a user would.
_PEER_CHILD = r"""
import json, sys, time
import numpy as np
import cleanlab
from cleanlab.regression.learn import CleanLearning
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

jobs = json.load(open(sys.argv[1]))
out = {"cleanlab_version": cleanlab.__version__, "results": {}}
for number, job in enumerate(jobs, 1):
    data = np.load(job["npz"])
    x, y = data["x"], data["y"]
    start = time.perf_counter()
    # The thread policy of screen_data and of the downstream fits: one thread below 20,000 rows.
    with threadpool_limits(limits=1 if len(x) < 20_000 else None):
        model = CleanLearning(
            model=HistGradientBoostingRegressor(random_state=0), cv_n_folds=job["folds"], seed=0
        )
        issues = model.find_label_issues(x, y)
    seconds = time.perf_counter() - start
    mask = issues["is_label_issue"].to_numpy(dtype=bool)
    # Only the rows from the offset on count (the batch after the reference), numbered from there.
    flagged = np.flatnonzero(mask[job["offset"]:])
    out["results"][job["id"]] = {"flagged": flagged.tolist(), "seconds": seconds}
    print(f"  cleanlab {number}/{len(jobs)} {job['id']}: {seconds:.1f} s", file=sys.stderr, flush=True)
json.dump(out, open(sys.argv[2], "w"))
"""


# --- data ---------------------------------------------------------------------------------


def split(df: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Reference / batch / test (``SHARES``), stratified on :data:`STRATA` quantile bins of the target."""
    from sklearn.model_selection import train_test_split

    bins = pd.qcut(df[TARGET].rank(method="first"), q=STRATA, labels=False)
    ref, rest = train_test_split(df, train_size=SHARES[0], stratify=bins, random_state=seed)
    batch_share = SHARES[1] / (1 - SHARES[0])
    batch, test = train_test_split(
        rest, train_size=batch_share, stratify=bins.loc[rest.index], random_state=seed
    )
    return ref.reset_index(drop=True), batch.reset_index(drop=True), test.reset_index(drop=True)


def _frame(x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])]).assign(
        **{TARGET: y.astype("float64")}
    )


def datasets(tiny: bool, seed: int) -> list[Any]:
    """The data sets (``poisoning.Dataset`` records, no categorical features)."""
    from sklearn import datasets as skd

    out: list[Any] = []

    def add(name: str, df: pd.DataFrame) -> None:
        ref, batch, test = split(df, seed)
        out.append(pb.Dataset(name, ref, batch, test, [c for c in df.columns if c != TARGET], {}))

    diabetes = skd.load_diabetes()
    add("diabetes", _frame(diabetes.data, diabetes.target))
    if tiny:
        x, y = skd.make_regression(
            n_samples=1_500, n_features=8, n_informative=4, noise=10, random_state=seed
        )
        add("make_regression (small)", _frame(x, y))
        return out
    x, y = skd.make_regression(n_samples=12_000, n_features=20, n_informative=8, noise=10, random_state=seed)
    add("make_regression", _frame(x, y))
    x, y = skd.make_friedman1(n_samples=10_000, n_features=10, noise=1.0, random_state=seed)
    add("friedman1", _frame(x, y))
    x, y = skd.make_regression(
        n_samples=10_000, n_features=10, n_informative=5, noise=0.0, random_state=seed + 1
    )
    rng = np.random.default_rng(seed + 2)
    # Student-t noise (3 degrees of freedom, scale a fifth of the signal's spread): clean heavy tails.
    y = y + rng.standard_t(3, size=len(y)) * 0.2 * float(np.std(y))
    add("heavy-tailed (t3 noise)", _frame(x, y))
    # A skewed target whose noise grows with its level: one residual scale for all rows is wrong.
    rng = np.random.default_rng(seed + 3)
    x = rng.normal(size=(10_000, 5))
    y = np.exp(1.0 + 0.8 * x[:, 0] + 0.4 * x[:, 1] + 0.5 * rng.normal(size=len(x)))
    add(CLEAN_ONLY[0], _frame(x, y))
    return out


# --- attacks ------------------------------------------------------------------------------


def _marginal_draw(y: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each of ``rows``, the target of a random row of ``y`` whose target differs from the row's
    own (a draw from the marginal that always changes the target)."""
    donors = rng.integers(0, len(y), size=len(rows))
    for _ in range(1000):
        same = y[donors] == y[rows]
        if not same.any():
            return y[donors].copy()
        donors[same] = rng.integers(0, len(y), size=int(same.sum()))
    raise ValueError("the target is (nearly) constant: no other value to draw")


def attack(ds: Any, name: str, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The attacked batch and a mask of its poisoned rows."""
    rng = np.random.default_rng(seed)
    batch = ds.batch.copy()
    y = batch[TARGET].to_numpy(dtype=np.float64).copy()
    clean_y = y.copy()
    n = len(batch)
    poison = np.zeros(n, dtype=bool)
    sd = float(ds.reference[TARGET].std())
    if name == "clean":
        return batch, poison
    if name.startswith("noise_"):
        rows = rng.choice(n, size=round(n * int(name.split("_")[1]) / 100), replace=False)
        y[rows] = _marginal_draw(clean_y, rows, rng)
        poison[rows] = True
    elif name.startswith("shift_"):
        rows = rng.choice(n, size=round(n * int(name.split("_")[1]) / 100), replace=False)
        y[rows] += rng.uniform(3, 6, size=len(rows)) * sd * rng.choice([-1.0, 1.0], size=len(rows))
        poison[rows] = True
    elif name in ("duplicates", "out_of_distribution"):
        rows = rng.choice(n, size=max(2, round(0.03 * n)), replace=False)
        extra = batch.iloc[rows].copy()
        if name == "out_of_distribution":
            for i in range(len(extra)):
                for f in rng.choice(ds.features, size=min(3, len(ds.features)), replace=False):
                    f_sd = float(ds.reference[f].std()) or 1.0
                    shift = rng.uniform(6, 10) * f_sd * rng.choice([-1, 1])
                    extra.iloc[i, extra.columns.get_loc(f)] = float(ds.reference[f].mean()) + shift
        extra[TARGET] = _marginal_draw(clean_y, rows, rng)
        out = pd.concat([batch, extra], ignore_index=True)
        return out, np.concatenate([poison, np.ones(len(extra), dtype=bool)])
    else:
        raise ValueError(f"unknown attack {name!r}")
    batch[TARGET] = y
    return batch, poison


# --- sides --------------------------------------------------------------------------------


def run_ours(
    ds: Any, batch: pd.DataFrame, reference: pd.DataFrame | None
) -> tuple[np.ndarray, float, dict[str, np.ndarray]]:
    """``screen_data`` on the batch: the flags, the seconds, and the flags of each reason."""
    start = time.perf_counter()
    result = screen_data(
        batch,
        target=TARGET,
        features=ds.features,
        checks=ROW_CHECKS,
        max_suspect_fraction=1.0,
        reference=reference,
        task="regression",
    )
    seconds = time.perf_counter() - start
    q = result.quarantined
    flagged = np.zeros(len(batch), dtype=bool)
    flagged[q["_row_index"].to_numpy()] = True
    by_reason: dict[str, np.ndarray] = {}
    for index, reasons in zip(q["_row_index"].to_numpy(), q["_reasons"], strict=True):
        for reason in str(reasons).split(";"):
            by_reason.setdefault(reason, np.zeros(len(batch), dtype=bool))[index] = True
    return flagged, seconds, by_reason


def ensure_peer_python(peer_python: str | None) -> str:
    """``poisoning.py``'s peer interpreter, which must import cleanlab's regression API too; a peer
    that cannot fails the run."""
    python = pb.ensure_peer_python(peer_python)
    probe = [python, "-c", "import cleanlab.regression.learn"]
    done = subprocess.run(probe, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{python} cannot import cleanlab.regression.learn: {done.stderr[-1000:]}")
    return python


def run_cleanlab(
    python: str,
    jobs: list[dict[str, Any]],
    arrays: dict[str, tuple[np.ndarray, np.ndarray]],
    cache: Path | None = None,
) -> dict[str, Any]:
    """Run every job (``id``, ``data``, optional ``offset``: the flags of the rows before it are
    dropped, the others renumbered from it) in one peer subprocess; returns its JSON. With
    ``cache`` (a JSON file), a job whose rows, targets, offset and folds (and the peer's code) were
    run before is read back from it, the others run and are added to it (``cache_hits`` and
    ``cache_misses`` in the answer)."""
    keys = {job["id"]: _job_key(job, arrays) for job in jobs}
    stored: dict[str, Any] = json.loads(cache.read_text()) if cache is not None and cache.exists() else {}
    todo = [job for job in jobs if keys[job["id"]] not in stored.get("results", {})]
    answer: dict[str, Any] = {"results": {}}
    if todo:
        with tempfile.TemporaryDirectory(prefix="poison-regression-bench-") as tmp:
            work = Path(tmp)
            for key in dict.fromkeys(job["data"] for job in todo):
                x, y = arrays[key]
                np.savez(work / f"{key}.npz", x=x, y=y)
            spec = [
                {"offset": 0, **job, "npz": str(work / f"{job['data']}.npz"), "folds": FOLDS} for job in todo
            ]
            (work / "jobs.json").write_text(json.dumps(spec))
            (work / "child.py").write_text(_PEER_CHILD)
            subprocess.run(
                [python, str(work / "child.py"), str(work / "jobs.json"), str(work / "out.json")], check=True
            )
            answer = json.loads((work / "out.json").read_text())
    if cache is None:
        return answer
    if todo:
        if stored.get("cleanlab_version", answer["cleanlab_version"]) != answer["cleanlab_version"]:
            stored = {}  # another cleanlab: start afresh
        stored["cleanlab_version"] = answer["cleanlab_version"]
        results = stored.setdefault("results", {})
        for job in todo:
            results[keys[job["id"]]] = answer["results"][job["id"]]
        cache.write_text(json.dumps(stored))
    return {
        "cleanlab_version": stored["cleanlab_version"],
        "results": {job["id"]: stored["results"][keys[job["id"]]] for job in jobs},
        "cache_hits": len(jobs) - len(todo),
        "cache_misses": len(todo),
    }


def _job_key(job: dict[str, Any], arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """A hash of what the peer is given for ``job``: its rows and targets, the offset, the folds
    and the peer's code."""
    x, y = arrays[job["data"]]
    digest = hashlib.sha256()
    for part in (np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64)):
        digest.update(str(part.shape).encode())
        digest.update(part.tobytes())
    digest.update(f"{job.get('offset', 0)}|{FOLDS}|{_PEER_CHILD}".encode())
    return digest.hexdigest()


# --- metrics ------------------------------------------------------------------------------


def detection(flagged: np.ndarray, poison: np.ndarray) -> dict[str, Any]:
    """``poisoning.detection`` with one class (a regression has none): its FPR is the clean rows'."""
    d = pb.detection(flagged, poison, np.zeros(len(poison), dtype=np.int64))
    return {k: v for k, v in d.items() if k not in ("fpr_per_class", "max_class_fpr")} | {
        "fpr": d["max_class_fpr"]
    }


def downstream(
    x: np.ndarray, y: np.ndarray, keep: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> dict[str, float]:
    """The clean test split's R² and RMSE of ``HistGradientBoostingRegressor(random_state=0)``
    trained on the ``keep`` rows."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.metrics import mean_squared_error, r2_score
    from threadpoolctl import threadpool_limits

    # Small fits run faster on one thread (and do not spin on a busy machine).
    with threadpool_limits(limits=1 if keep.sum() < 20_000 else None, user_api="openmp"):
        pred = HistGradientBoostingRegressor(random_state=0).fit(x[keep], y[keep]).predict(x_test)
    return {
        "r2": float(r2_score(y_test, pred)),
        "rmse": float(np.sqrt(mean_squared_error(y_test, pred))),
        "rows": int(keep.sum()),
    }


# --- the run ------------------------------------------------------------------------------


def quality(
    tiny: bool,
    seed: int,
    peer_python: str | None,
    skip_cleanlab: bool,
    attacks: tuple[str, ...] = ATTACKS,
    regimes: tuple[str, ...] = REGIMES,
    peer_cache: Path | None = None,
    peer_from: Path | None = None,
) -> dict[str, Any]:
    # The peer first: a run that cannot have it fails before any work, it never skips it.
    python = None if skip_cleanlab else ensure_peer_python(peer_python)
    sets = datasets(tiny, seed)
    cases: list[dict[str, Any]] = []
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for d, ds in enumerate(sets):
        ref_x, ref_y = pb.to_matrix(ds, ds.reference), ds.reference[TARGET].to_numpy(dtype=np.float64)
        test_x, test_y = pb.to_matrix(ds, ds.test), ds.test[TARGET].to_numpy(dtype=np.float64)
        for a, name in enumerate(ATTACKS):
            if name not in attacks or (ds.name in CLEAN_ONLY and name != "clean"):
                continue
            # One attacked batch per dataset and attack: both regimes screen the very same rows.
            case_seed = seed * 1000 + d * 10 + a
            batch, poison = attack(ds, name, case_seed)
            x, y = pb.to_matrix(ds, batch), batch[TARGET].to_numpy(dtype=np.float64)
            key = f"d{d}a{a}"
            flags: dict[str, dict[str, np.ndarray]] = {}
            seconds: dict[str, dict[str, float]] = {}
            reasons: dict[str, dict[str, dict[str, int]]] = {}
            for regime in regimes:
                given = regime == "reference"
                ours, t_ours, by_reason = run_ours(ds, batch, ds.reference if given else None)
                forest, t_forest = pb.run_isolation_forest(ref_x if given else x, x)
                flags[regime] = {"screen_data": ours, "IsolationForest": forest}
                seconds[regime] = {"screen_data": t_ours, "IsolationForest": t_forest}
                # What each of the screen's checks flagged, and how many of those were poisoned.
                reasons[regime] = {
                    reason: {"flagged": int(m.sum()), "poisoned": int((m & poison).sum())}
                    for reason, m in sorted(by_reason.items())
                }
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
                    "flags": flags,
                    "seconds": seconds,
                    "screen_data_reasons": reasons,
                    "_data": (x, y, poison, test_x, test_y),
                }
            )
            times = ", ".join(f"{r} {seconds[r]['screen_data']:6.2f} s" for r in regimes)
            print(f"  {ds.name:28s} {name:20s} screen_data: {times}", flush=True)
    peer: dict[str, Any] = {}
    if skip_cleanlab:
        peer["cleanlab"] = "skipped (--skip-cleanlab: smoke mode only; a real run needs the peer)"
        print("cleanlab: " + peer["cleanlab"])
    else:
        assert python is not None
        stored = _stored_peer(peer_from, cases, regimes) if peer_from is not None else {}
        if peer_from is not None:
            peer["cleanlab_from_earlier_run"] = {
                "file": str(peer_from),
                "cases_read_back": len(stored),
                "note": "the peer's per-case numbers of the earlier run on the very same batches",
            }
        jobs = [
            {
                "id": f"{c['key']}-{regime}",
                "data": f"{c['key']}-{regime}",
                "offset": c["reference_rows"] if regime == "reference" else 0,
            }
            for c in cases
            for regime in regimes
            if (c["key"], regime) not in stored
        ]
        for (key, regime), side in stored.items():
            c = next(c for c in cases if c["key"] == key)
            c.setdefault("stored_sides", {}).setdefault(regime, {})["cleanlab (HGB)"] = side["side"]
            c["seconds"][regime]["cleanlab (HGB)"] = side["seconds"]
        print(f"cleanlab: {len(jobs)} jobs in {python}", flush=True)
        answer = run_cleanlab(python, jobs, arrays, peer_cache) if jobs else {"results": {}}
        peer["cleanlab_version"] = answer.get("cleanlab_version") or peer_version(peer_from)
        if peer_cache is not None:
            peer["cleanlab_flags_cache"] = {
                "file": str(peer_cache),
                "read_back": answer["cache_hits"],
                "run": answer["cache_misses"],
                "note": "flags and seconds of the jobs read back are those of the run that stored them",
            }
        for c in cases:
            for regime in regimes:
                if (c["key"], regime) in stored:
                    continue
                res = answer["results"][f"{c['key']}-{regime}"]
                mask = np.zeros(c["rows"], dtype=bool)
                mask[np.asarray(res["flagged"], dtype=np.int64)] = True
                c["flags"][regime]["cleanlab (HGB)"] = mask
                c["seconds"][regime]["cleanlab (HGB)"] = res["seconds"]
    return {**peer, "regimes": score(cases, regimes)}


def _stored_peer(
    path: Path, cases: list[dict[str, Any]], regimes: tuple[str, ...]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The peer's side of each case and regime in an earlier results file whose data set, attack,
    rows, reference rows and poisoned rows match this run's: ``{(key, regime): {side, seconds}}``."""
    earlier = json.loads(path.read_text())["quality"]["regimes"]
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for c in cases:
        poisoned = int(c["_data"][2].sum())
        for regime in regimes:
            for old in earlier.get(regime, {}).get("cases", []):
                side = old["sides"].get("cleanlab (HGB)")
                same = (old["dataset"], old["attack"], old["rows"], old["reference_rows"]) == (
                    c["dataset"],
                    c["attack"],
                    c["rows"],
                    c["reference_rows"],
                )
                if side is not None and same and side["poisoned"] == poisoned:
                    out[(c["key"], regime)] = {"side": side, "seconds": old["seconds"]["cleanlab (HGB)"]}
    return out


def peer_version(path: Path | None) -> str | None:
    """The cleanlab version an earlier results file recorded."""
    return None if path is None else json.loads(path.read_text())["quality"].get("cleanlab_version")


def score(cases: list[dict[str, Any]], regimes: tuple[str, ...]) -> dict[str, Any]:
    """Per regime: every side's detection metrics and downstream R² / RMSE on each case (the flags
    in ``flags``, the arrays in ``_data``, which this pops), and the summary."""
    per_regime: dict[str, list[dict[str, Any]]] = {regime: [] for regime in regimes}
    for c in cases:
        x, y, poison, test_x, test_y = c.pop("_data")
        fits: dict[bytes, dict[str, float]] = {}
        data = (x, y, test_x, test_y)
        poisoned = _downstream_once(fits, data, np.ones(len(y), dtype=bool))
        # The noise floor of the downstream target: a perfect screen drops exactly the poisoned rows.
        perfect = _downstream_once(fits, data, ~poison)
        common = {
            k: v
            for k, v in c.items()
            if k not in ("key", "flags", "seconds", "screen_data_reasons", "stored_sides")
        }
        for regime in regimes:
            sides = {}
            for side in SIDES:
                mask = c["flags"][regime].get(side)
                if mask is None:
                    earlier = c.get("stored_sides", {}).get(regime, {}).get(side)
                    if earlier is not None:  # the peer's numbers of an earlier run on these batches
                        sides[side] = earlier
                    continue
                screened = _downstream_once(fits, data, ~mask)
                sides[side] = {
                    **detection(mask, poison),
                    "downstream": screened,
                    "r2_change": screened["r2"] - poisoned["r2"],
                    "rmse_change": screened["rmse"] - poisoned["rmse"],
                }
            per_regime[regime].append(
                {
                    **common,
                    "seconds": c["seconds"][regime],
                    "screen_data_reasons": c["screen_data_reasons"][regime],
                    "downstream_poisoned": poisoned,
                    "downstream_perfect_screen": perfect,
                    "perfect_screen_r2_change": perfect["r2"] - poisoned["r2"],
                    "sides": sides,
                }
            )
    return {
        regime: {"inputs": INPUTS[regime], "cases": cs, "summary": summarise(cs)}
        for regime, cs in per_regime.items()
    }


def _downstream_once(
    fits: dict[bytes, dict[str, float]], data: tuple[np.ndarray, ...], keep: np.ndarray
) -> dict[str, float]:
    """``downstream`` of ``data`` (x, y, x_test, y_test) trained on the ``keep`` rows, remembered in
    ``fits``: the model is deterministic, the same accepted rows (often: both regimes) fit once."""
    mark = np.packbits(keep).tobytes()
    if mark not in fits:
        x, y, x_test, y_test = data
        fits[mark] = downstream(x, y, keep, x_test, y_test)
    return fits[mark]


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _worse(cases: list[dict[str, Any]], change: Any) -> list[dict[str, Any]]:
    """The cases whose ``change(case)`` (test R², screened minus poisoned) is below
    ``-TARGET_R2_DROP``: downstream worse than no screen."""
    return [
        {"dataset": c["dataset"], "attack": c["attack"], "r2_change": value}
        for c in cases
        if (value := change(c)) < -TARGET_R2_DROP
    ]


def summarise(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Per side (one regime's cases): mean F1 / precision / recall per attack, mean F1 overall, the
    same per dataset and attack, the clean FPR per dataset and the worst, the attacked cases whose
    test R² is worse than with no screen; then the perfect screen, the best peer, the F1 ratios
    and the targets."""
    sides = [side for side in SIDES if any(side in c["sides"] for c in cases)]
    families = [a for a in ATTACKS if a != "clean"]
    out: dict[str, Any] = {}
    for side in sides:
        mine = [c for c in cases if side in c["sides"]]
        attacked = [c for c in mine if c["attack"] != "clean"]
        per_attack: dict[str, dict[str, float]] = {"f1": {}, "precision": {}, "recall": {}}
        for fam in families:
            those = [c["sides"][side] for c in attacked if c["attack"] == fam]
            if those:
                for metric, values in per_attack.items():
                    values[fam] = _mean([s[metric] for s in those])
        per_dataset: dict[str, dict[str, dict[str, float]]] = {"f1": {}, "precision": {}, "recall": {}}
        for c in attacked:
            for metric, by_dataset in per_dataset.items():
                by_dataset.setdefault(c["dataset"], {})[c["attack"]] = c["sides"][side][metric]
        clean_fpr = {c["dataset"]: c["sides"][side]["fpr"] for c in mine if c["attack"] == "clean"}
        worst_fpr = max(((v, name) for name, v in clean_fpr.items()), default=(0.0, ""))
        worse = _worse(attacked, lambda c, side=side: c["sides"][side]["r2_change"])
        out[side] = {
            "mean_f1_per_attack": per_attack["f1"],
            "mean_precision_per_attack": per_attack["precision"],
            "mean_recall_per_attack": per_attack["recall"],
            "mean_f1": _mean(list(per_attack["f1"].values())),
            "f1_per_dataset": per_dataset["f1"],
            "precision_per_dataset": per_dataset["precision"],
            "recall_per_dataset": per_dataset["recall"],
            "max_clean_fpr": worst_fpr[0],
            "max_clean_fpr_dataset": worst_fpr[1],
            "clean_fpr_per_dataset": clean_fpr,
            "downstream_worse": worse,
            "downstream_worse_cases": len(worse),
            "downstream_attacked_cases": len(attacked),
            "downstream_worse_share": len(worse) / len(attacked) if attacked else 0.0,
            "mean_r2_change": _mean([c["sides"][side]["r2_change"] for c in attacked]),
            "mean_rmse_change": _mean([c["sides"][side]["rmse_change"] for c in attacked]),
            "clean_mean_r2_change": _mean(
                [c["sides"][side]["r2_change"] for c in mine if c["attack"] == "clean"]
            ),
            "seconds_total": float(sum(c["seconds"].get(side, 0.0) for c in mine)),
        }
    attacked = [c for c in cases if c["attack"] != "clean"]
    perfect_worse = _worse(attacked, lambda c: c["perfect_screen_r2_change"])
    out["perfect_screen"] = {
        "downstream_worse": perfect_worse,
        "downstream_worse_cases": len(perfect_worse),
        "downstream_worse_share": len(perfect_worse) / len(attacked) if attacked else 0.0,
        "mean_r2_change": _mean([c["perfect_screen_r2_change"] for c in attacked]),
    }
    ours = out.get("screen_data")
    peers = [side for side in PEERS if side in out]
    if ours and peers:
        out["targets"] = {
            "mean_f1_vs_best_peer": pb.mean_f1_target(out, peers),
            "clean_fpr": {
                "target": f"<= {TARGET_CLEAN_FPR} (worst dataset)",
                "value": ours["max_clean_fpr"],
                "dataset": ours["max_clean_fpr_dataset"],
                "met": bool(ours["max_clean_fpr"] <= TARGET_CLEAN_FPR),
            },
            "downstream_worse_share": {
                "target": (
                    f"<= {TARGET_WORSE_SHARE} of the attacked cases with a test R² worse than no"
                    f" screen by > {TARGET_R2_DROP}"
                ),
                "value": ours["downstream_worse_share"],
                "cases": ours["downstream_worse_cases"],
                "attacked_cases": ours["downstream_attacked_cases"],
                "perfect_screen_share": out["perfect_screen"]["downstream_worse_share"],
                "met": bool(ours["downstream_worse_share"] <= TARGET_WORSE_SHARE),
            },
        }
    return out


# --- printing -----------------------------------------------------------------------------


def _row(label: str, cells: list[str]) -> str:
    return f"  {label:26s}" + "".join(f"{cell:>18s}" for cell in cells)


def print_regime(regime: str, r: dict[str, Any]) -> None:
    s = r["summary"]
    sides = [side for side in SIDES if side in s]
    print(f"\nRegime {regime}:")
    for side, given in r["inputs"].items():
        print(f"  {side} gets {given}")
    print("\n  Mean F1 per attack (over datasets), then precision / recall:")
    print(_row("attack", sides))
    fams = [a for a in ATTACKS if a != "clean" and a in s[sides[0]]["mean_f1_per_attack"]]
    for fam in fams:
        print(_row(fam, [f"{s[side]['mean_f1_per_attack'][fam]:.3f}" for side in sides]))
    print(_row("mean F1", [f"{s[side]['mean_f1']:.3f}" for side in sides]))
    for fam in fams:
        print(
            _row(
                f"{fam} P / R",
                [
                    f"{s[side]['mean_precision_per_attack'][fam]:.3f} / {s[side]['mean_recall_per_attack'][fam]:.3f}"
                    for side in sides
                ],
            )
        )
    print(_row("max clean FPR (dataset)", [f"{s[side]['max_clean_fpr']:.4f}" for side in sides]))
    print("  downstream (test R² of HGB trained on the kept rows vs on every row):")
    print(
        _row(
            f"  worse by > {TARGET_R2_DROP} R²", [f"{s[side]['downstream_worse_cases']:d}" for side in sides]
        )
    )
    print(_row("  share of attacked cases", [f"{s[side]['downstream_worse_share']:.3f}" for side in sides]))
    print(_row("  mean R² change", [f"{s[side]['mean_r2_change']:+.4f}" for side in sides]))
    print(_row("  mean RMSE change", [f"{s[side]['mean_rmse_change']:+.4f}" for side in sides]))
    print(_row("  mean R² change (clean)", [f"{s[side]['clean_mean_r2_change']:+.4f}" for side in sides]))
    p = s["perfect_screen"]
    print(
        f"    a perfect screen (exactly the poisoned rows dropped): mean R² change {p['mean_r2_change']:+.4f},"
        f" worse by > {TARGET_R2_DROP} in {p['downstream_worse_cases']} cases ({p['downstream_worse_share']:.3f})"
    )
    print(_row("seconds (all cases)", [f"{s[side]['seconds_total']:.1f}" for side in sides]))
    names = [c["dataset"] for c in r["cases"]]
    for side in sides:
        print_per_dataset(side, s[side], names)
    if "targets" not in s:
        return
    print()
    for side, ratio in s["mean_f1_ratio_screen_data_over"].items():
        print(f"  ratio, mean F1 screen_data / {side}: {ratio:.2f}x")
    for name, t in s["targets"].items():
        print(f"  target {name}: {t['value']:.4g} (target {t['target']}): {'met' if t['met'] else 'MISSED'}")


def print_per_dataset(side: str, s: dict[str, Any], names: list[str]) -> None:
    """Rows: datasets; columns: the attacks' F1, then the dataset's clean FPR."""
    fams = [a for a in ATTACKS if a in s["mean_f1_per_attack"]]
    print(f"\n  {side}: F1 per dataset and attack, clean FPR")
    print(f"    {'dataset':28s}" + "".join(f"{SHORT[a]:>9s}" for a in fams) + f"{'clean FPR':>11s}")
    for name in dict.fromkeys(names):
        f1 = s["f1_per_dataset"].get(name, {})
        fpr = s["clean_fpr_per_dataset"].get(name)
        cells = "".join(f"{f1[a]:9.3f}" if a in f1 else f"{'-':>9s}" for a in fams)
        print(f"    {name:28s}{cells}" + (f"{fpr:11.4f}" if fpr is not None else f"{'-':>11s}"))


def machine() -> dict[str, Any]:
    """The machine and the code: python, cpus, platform, load average, date, HEAD's commit and
    whether the product's poisoning package differs from it."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)

    head = git("rev-parse", "HEAD")
    product = git("status", "--porcelain", "--", "airflow_mlops/data/poisoning")
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
        "date": dt.date.today().isoformat(),
        "git_commit": head.stdout.strip() if head.returncode == 0 else None,
        "product_poisoning_package_differs_from_commit": bool(product.stdout.strip())
        if product.returncode == 0
        else None,
    }


def scale(rows: int, features: int, seed: int, regimes: tuple[str, ...] = REGIMES) -> dict[str, Any]:
    """The screen's time on ``rows`` x ``features`` (``make_regression``: 8 informative features,
    noise 10; 10 % of the batch's targets swapped among themselves; a reference of at most
    50,000 clean rows), every row check, both regimes, beside IsolationForest fitted on the
    reference on the same rows. cleanlab's regression API is not run at this size (a 5-fold
    ``CleanLearning`` with its own residual model per fold on a million rows is a run of its own)."""
    from sklearn.datasets import make_regression

    ref_rows = min(50_000, rows // 5)
    x, y = make_regression(
        n_samples=rows + ref_rows,
        n_features=features,
        n_informative=min(8, features),
        noise=10,
        random_state=seed,
    )
    names = [f"f{i}" for i in range(features)]
    rng = np.random.default_rng(seed)
    yb = y[:rows].copy()
    swapped = rng.choice(rows, size=rows // 10, replace=False)
    yb[swapped] = yb[rng.permutation(swapped)]
    poison = np.zeros(rows, dtype=bool)
    poison[swapped] = yb[swapped] != y[:rows][swapped]
    batch = pd.DataFrame(x[:rows], columns=names).assign(**{TARGET: yb})
    ref = pd.DataFrame(x[rows:], columns=names).assign(**{TARGET: y[rows:]})
    out: dict[str, Any] = {
        "rows": rows,
        "features": features,
        "reference_rows": ref_rows,
        "sides": {},
        "targets": {},
    }
    seconds: dict[str, float] = {}
    for regime in regimes:
        reference = ref if regime == "reference" else None
        flagged, seconds[regime] = pb.timed_screen(batch, names, reference, TARGET, task="regression")
        out["sides"][f"screen_data [{regime}]"] = {
            "seconds": seconds[regime],
            **_brief(detection(flagged, poison)),
        }
        out["targets"][regime] = pb.scale_target(seconds[regime])
    forest, t_forest = pb.run_isolation_forest(ref[names].to_numpy(), batch[names].to_numpy())
    out["sides"]["IsolationForest [reference]"] = {"seconds": t_forest, **_brief(detection(forest, poison))}
    out["ratio_screen_data_over_isolation_forest"] = {regime: t / t_forest for regime, t in seconds.items()}
    return out


def _brief(d: dict[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in ("flagged", "precision", "recall", "f1", "fpr")}


def print_scale(sc: dict[str, Any]) -> None:
    print(
        f"\nScale, {sc['rows']} rows x {sc['features']} features (10 % of the targets swapped), "
        f"reference {sc['reference_rows']}:"
    )
    for side, r in sc["sides"].items():
        print(
            f"  {side:34s} {r['seconds']:7.2f} s   precision {r['precision']:.3f} recall {r['recall']:.3f} "
            f"F1 {r['f1']:.3f} clean FPR {r['fpr']:.4f}"
        )
    for regime, ratio in sc["ratio_screen_data_over_isolation_forest"].items():
        print(f"  ratio, seconds screen_data [{regime}] / IsolationForest: {ratio:.1f}x")
    for regime, t in sc["targets"].items():
        print(f"  target {t['seconds']} s [{regime}]: {'met' if t['met'] else 'MISSED'}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tiny", action="store_true", help=f"diabetes and one small synthetic set, attacks {TINY_ATTACKS}"
    )
    parser.add_argument("--attacks", help="comma-separated subset of the attacks (default: all; --tiny: two)")
    parser.add_argument("--regimes", default=",".join(REGIMES), help="comma-separated subset of the regimes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peer-python", help="an interpreter with cleanlab (default: benchmarks/.venv-cleanlab)"
    )
    parser.add_argument("--skip-cleanlab", action="store_true", help="smoke mode only: no cleanlab side")
    parser.add_argument(
        "--peer-from",
        type=Path,
        help="an earlier results JSON: the peer's numbers of the cases it holds are read from it",
    )
    parser.add_argument(
        "--peer-cache",
        type=Path,
        help="a JSON file of the peer's flags: read back what it holds, add the rest",
    )
    parser.add_argument("--only", choices=("quality", "scale"), help="run one part only")
    parser.add_argument("--scale-rows", type=int, default=1_000_000)
    parser.add_argument("--scale-features", type=int, default=20)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    default_attacks = TINY_ATTACKS if args.tiny else ATTACKS
    attacks = pb._choices(parser, args.attacks or ",".join(default_attacks), ATTACKS, "attack")
    regimes = pb._choices(parser, args.regimes, REGIMES, "regime")

    start = time.perf_counter()
    results: dict[str, Any] = {"machine": machine()}
    print("Regression poisoning screens:")
    if args.only in (None, "quality"):
        q = results["quality"] = quality(
            args.tiny,
            args.seed,
            args.peer_python,
            args.skip_cleanlab,
            attacks,
            regimes,
            args.peer_cache,
            args.peer_from,
        )
        for regime, r in q["regimes"].items():
            print_regime(regime, r)
    if args.only in (None, "scale"):
        results["scale"] = scale(args.scale_rows, args.scale_features, args.seed, regimes)
        print_scale(results["scale"])
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["wall_seconds"] = time.perf_counter() - start
    print(f"\nwall time {results['wall_seconds']:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    return results


if __name__ == "__main__":
    main()
