"""Inferred data expectations: same-distribution batches accepted, corrupted ones caught.

``airflow_mlops.data.validation.infer_expectations`` derives expectations from the reference
data set; the validate stage runs them on every batch with ``validate_dataframe`` (Great
Expectations). This benchmark runs exactly that code path on many random splits of datasets
that ship inside scikit-learn (nothing is downloaded) and of a larger synthetic one, and, side by
side in the same run, the rule that came before (min/max widened by 25 % of the range, every row
inside, no new null, no new category), reimplemented here as :func:`old_infer_expectations`.

Datasets: ``load_breast_cancer``, ``load_wine``, ``load_digits``, ``load_diabetes``,
``load_iris`` (features and target, as ``as_frame=True`` gives them) and ``synthetic``: 20,000
rows of ``make_classification`` (8 features) plus a skewed amount, a count, a column with 5 %
nulls, a country (8 levels), a merchant (a long tail of 600 levels, Zipf), a channel flag.

Splits: split ``i`` draws a reference of 50 % (even ``i``) or 30 % (odd ``i``) of the rows and a
disjoint batch of 10 to 30 % of the rows (uniform), both at random (seeded: ``--seed``).

* **False rejection**: the share of splits whose batch fails validation (all inferred
  expectations of every column, as the validate stage runs them).
* **Detection**: per corruption kind, the batch of the split with one random eligible column
  corrupted; detected when an expectation of that column fails (run on that column's
  expectations alone, which is what decides; the batch as a whole also fails when the clean
  batch did). Kinds:

  ``x100``             a numeric column times 100 (a unit change)
  ``all_null``         a column all nulls
  ``60%_null``         60 % of a column's rows null
  ``text``             a numeric column as text (``"12.5"``)
  ``missing``          a column dropped
  ``20%_far``          20 % of a numeric column's rows set 10 reference ranges above its max
  ``2%_far``           the same for 2 % of the rows
  ``5%_negated``       5 % of the non-zero values of a non-negative column negated (>= 1 row)
  ``5%_new_category``  5 % of a text column's rows set to a value the reference never had

  A column is eligible when the corruption changes its values (``x100`` not on an all-zero
  column); a kind with no eligible column on a dataset is ``n/a``.

Evaluation: Great Expectations takes ~1 s per batch of a few hundred expectations, too slow for
thousands of batches, so :func:`fast_verdicts` applies GX's semantics of the four expectation
kinds inference writes with pandas. The first ``--gx-splits`` splits of every dataset (default
4, clean and corrupted batches, both rules) run through ``validate_dataframe`` as well, and the
benchmark stops if a single verdict differs.

Usage::

    .venv/bin/python benchmarks/data_validation.py        # 200 splits per dataset, 2 processes
    .venv/bin/python benchmarks/data_validation.py --splits 5 --datasets iris wine   # smoke

Results go to ``benchmarks/data_validation_results.json`` (``--out``) and a table to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

KINDS = (
    "x100",
    "all_null",
    "60%_null",
    "text",
    "missing",
    "20%_far",
    "2%_far",
    "5%_negated",
    "5%_new_category",
)
RULES = ("old", "new")


# --- datasets --------------------------------------------------------------------------------


def _sklearn(loader: str) -> pd.DataFrame:
    import sklearn.datasets

    return getattr(sklearn.datasets, loader)(as_frame=True).frame


def synthetic(rows: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """``make_classification`` with skewed, count, nullable and categorical columns added."""
    from sklearn.datasets import make_classification

    rng = np.random.default_rng(seed)
    x, y = make_classification(rows, n_features=8, n_informative=5, random_state=seed)
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(8)])
    df["amount"] = np.round(rng.lognormal(3.0, 1.2, rows), 2)
    df["n_items"] = rng.poisson(2.0, rows)
    income = rng.normal(50_000, 15_000, rows)
    income[rng.random(rows) < 0.05] = np.nan
    df["income"] = income
    countries = np.array(["US", "GB", "DE", "FR", "BR", "NG", "IN", "JP"])
    share = 1 / np.arange(1, 9) ** 1.2
    df["country"] = rng.choice(countries, rows, p=share / share.sum())
    tail = 1 / np.arange(1, 601) ** 1.1
    df["merchant"] = np.char.add("m", rng.choice(600, rows, p=tail / tail.sum()).astype(str))
    df["online"] = rng.random(rows) < 0.3
    df["target"] = y
    return df


DATASETS: dict[str, Callable[[], pd.DataFrame]] = {
    "breast_cancer": lambda: _sklearn("load_breast_cancer"),
    "wine": lambda: _sklearn("load_wine"),
    "digits": lambda: _sklearn("load_digits"),
    "diabetes": lambda: _sklearn("load_diabetes"),
    "iris": lambda: _sklearn("load_iris"),
    "synthetic": synthetic,
}


# --- the rule before (reimplemented as it was) -----------------------------------------------


def old_infer_expectations(reference: pd.DataFrame, *, columns: list[str]) -> list[dict[str, dict[str, Any]]]:
    """The inference before: reference min/max widened by 25 % of the range (log1p scale for
    skewed non-negative columns), every row in range, no null if the reference had none, no value
    outside the reference's set."""
    out: list[dict[str, dict[str, Any]]] = []
    for name in columns:
        col = reference[name]
        out.append({"expect_column_to_exist": {"column": name}})
        if not col.isna().any():
            out.append({"expect_column_values_to_not_be_null": {"column": name}})
        values = col.dropna()
        if values.empty:
            continue
        is_bool = pd.api.types.is_bool_dtype(col.dtype)
        binary_int = pd.api.types.is_integer_dtype(col.dtype) and values.nunique() <= 2
        if pd.api.types.is_numeric_dtype(col.dtype) and not is_bool and not binary_int:
            bounds = _old_range(values.to_numpy(dtype="float64"), pd.api.types.is_integer_dtype(col.dtype))
            if bounds is not None:
                out.append(
                    {
                        "expect_column_values_to_be_between": {
                            "column": name,
                            "min_value": bounds[0],
                            "max_value": bounds[1],
                        }
                    }
                )
        else:
            distinct = pd.unique(values.to_numpy(dtype=object))
            if len(distinct) <= 1000:
                value_set = sorted((_plain(v) for v in distinct), key=lambda v: (type(v).__name__, str(v)))
                out.append({"expect_column_values_to_be_in_set": {"column": name, "value_set": value_set}})
    return out


def _old_range(values: np.ndarray, integer: bool) -> tuple[float, float] | None:
    lo, hi = float(values.min()), float(values.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    std = float(values.std())
    skew = float(((values - values.mean()) ** 3).mean() / std**3) if std > 0 else 0.0
    if lo >= 0 and skew > 1.0:
        llo, lhi = math.log1p(lo), math.log1p(hi)
        margin = 0.25 * (lhi - llo)
        low, high = float(np.expm1(llo - margin)), float(np.expm1(lhi + margin))
    else:
        margin = 0.25 * (hi - lo)
        low, high = lo - margin, hi + margin
    if lo >= 0:
        low = max(low, 0.0)
    if integer:
        return math.floor(low), math.ceil(high)
    return low, high


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# --- corruptions -----------------------------------------------------------------------------


def _numeric(df: pd.DataFrame, name: str) -> bool:
    dtype = df[name].dtype
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def corrupt(
    kind: str, batch: pd.DataFrame, reference: pd.DataFrame, rng: np.random.Generator
) -> tuple[pd.DataFrame, str] | None:
    """``batch`` with one random eligible column corrupted, and that column; None if none is."""
    eligible: list[str] = []
    for name in map(str, batch.columns):
        col, ref = batch[name], reference[name].dropna()
        values = col.dropna()
        if kind in ("all_null", "60%_null", "missing"):
            eligible.append(name)
        elif kind in ("x100", "text", "20%_far", "2%_far"):
            if _numeric(batch, name) and not (kind == "x100" and (values == 0).all()):
                eligible.append(name)
        elif kind == "5%_negated":
            if _numeric(batch, name) and len(ref) and ref.min() >= 0 and (values != 0).any():
                eligible.append(name)
        elif kind == "5%_new_category" and (
            pd.api.types.is_object_dtype(col.dtype) or pd.api.types.is_string_dtype(col.dtype)
        ):
            eligible.append(name)
    if not eligible:
        return None
    name = str(rng.choice(eligible))
    out = batch.copy()
    rows = len(out)

    def some(share: float, among: np.ndarray | None = None) -> np.ndarray:
        pool = np.arange(rows) if among is None else among
        return rng.choice(pool, max(1, round(share * len(pool))), replace=False)

    col = out[name]
    if kind == "x100":
        out[name] = col * 100
    elif kind == "all_null":
        out[name] = pd.Series([None] * rows, index=out.index, dtype=object if col.dtype == object else float)
    elif kind == "60%_null":
        out[name] = col.astype(object if col.dtype == object else float)
        out.iloc[some(0.6), out.columns.get_loc(name)] = None if col.dtype == object else np.nan
    elif kind == "text":
        out[name] = col.map(lambda v: f"{v}")
    elif kind == "missing":
        out = out.drop(columns=[name])
    elif kind in ("20%_far", "2%_far"):
        ref = reference[name].dropna()
        far = float(ref.max()) + 10 * max(float(ref.max() - ref.min()), 1.0)
        out[name] = col.astype(float)
        out.iloc[some(0.2 if kind == "20%_far" else 0.02), out.columns.get_loc(name)] = far
    elif kind == "5%_negated":
        nonzero = np.flatnonzero(col.to_numpy() != 0)
        out[name] = col.astype(float)
        at = some(0.05, nonzero)
        out.iloc[at, out.columns.get_loc(name)] = -col.to_numpy(dtype=float)[at]
    elif kind == "5%_new_category":
        out.iloc[some(0.05), out.columns.get_loc(name)] = "<unseen>"
    return out, name


# --- one split -------------------------------------------------------------------------------


def split(df: pd.DataFrame, i: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng([seed, i])
    order = rng.permutation(len(df))
    n_ref = round((0.5 if i % 2 == 0 else 0.3) * len(df))
    n_batch = round(rng.uniform(0.1, 0.3) * len(df))
    return df.iloc[order[:n_ref]], df.iloc[order[n_ref : n_ref + n_batch]]


def _column(item: dict[str, dict[str, Any]]) -> Any:
    ((_, kwargs),) = item.items()
    return kwargs.get("column")


def fast_verdicts(df: pd.DataFrame, expectations: list[dict[str, dict[str, Any]]]) -> list[bool]:
    """What ``validate_dataframe`` decides for each expectation, without GX.

    Only the four kinds inference writes, with GX's semantics: ``mostly`` (default 1) against
    the share of the considered rows that meet the expectation (all rows for the null check, the
    non-null ones otherwise; vacuously met when there are none); a range on a non-numeric column
    is an evaluation error, so a failure. The splits run through GX (``--gx-splits``) check that
    this agrees with the product, expectation by expectation.
    """
    out: list[bool] = []
    for item in expectations:
        ((name, kwargs),) = item.items()
        column = kwargs["column"]
        if column not in df.columns:
            out.append(False)
            continue
        col = df[column]
        if name == "expect_column_to_exist":
            out.append(True)
            continue
        if name == "expect_column_values_to_not_be_null":
            considered, unexpected = len(col), int(col.isna().sum())
        else:
            values = col.dropna()
            considered = len(values)
            if name == "expect_column_values_to_be_between":
                if considered and not _numeric(df, column):
                    out.append(False)
                    continue
                low, high = kwargs.get("min_value"), kwargs.get("max_value")
                inside = np.ones(considered, dtype=bool)
                if low is not None:
                    inside &= values.to_numpy() >= low
                if high is not None:
                    inside &= values.to_numpy() <= high
                unexpected = int((~inside).sum())
            elif name == "expect_column_values_to_be_in_set":
                unexpected = int((~values.isin(kwargs["value_set"])).sum())
            else:
                raise ValueError(f"no fast evaluation of {name}")
        if considered == 0:
            out.append(True)
            continue
        out.append((considered - unexpected) / considered >= kwargs.get("mostly", 1.0))
    return out


def _verdicts(df: pd.DataFrame, expectations: list[dict[str, dict[str, Any]]], gx: bool) -> list[bool]:
    """Per-expectation verdicts; with ``gx`` from ``validate_dataframe``, checked against
    :func:`fast_verdicts` (a disagreement stops the benchmark)."""
    fast = fast_verdicts(df, expectations)
    if gx:
        from airflow_mlops.data.validation import validate_dataframe

        real = [r.success for r in validate_dataframe(df, expectations).results]
        if real != fast:
            wrong = [e for e, a, b in zip(expectations, real, fast, strict=True) if a != b]
            raise AssertionError(f"the fast evaluation disagrees with GX on {wrong}")
        return real
    return fast


def run_split(task: tuple[str, int, int, bool]) -> dict[str, Any]:
    """Validate split ``i`` of ``dataset``, clean and corrupted, under both rules."""
    import logging

    logging.disable(logging.WARNING)  # validate_dataframe logs every failed batch
    from airflow_mlops.data.validation import infer_expectations

    dataset, i, seed, gx = task
    df = _frame(dataset)
    reference, batch = split(df, i, seed)
    columns = [str(c) for c in df.columns]
    out: dict[str, Any] = {
        "dataset": dataset,
        "split": i,
        "gx": gx,
        "reference_rows": len(reference),
        "batch_rows": len(batch),
    }
    started = time.perf_counter()
    expectations = {
        "old": old_infer_expectations(reference, columns=columns),
        "new": infer_expectations(reference, columns=columns),
    }
    out["infer_s"] = time.perf_counter() - started
    for rule in RULES:
        verdicts = _verdicts(batch, expectations[rule], gx)
        out[f"{rule}_clean_pass"] = all(verdicts)
        out[f"{rule}_clean_failed"] = sorted(
            {str(_column(e)) for e, ok in zip(expectations[rule], verdicts, strict=True) if not ok}
        )
    rng = np.random.default_rng([seed, i, 1])
    for kind in KINDS:
        made = corrupt(kind, batch, reference, rng)
        if made is None:
            continue
        bad, name = made
        out[f"{kind}_column"] = name
        for rule in RULES:
            mine = [e for e in expectations[rule] if _column(e) == name]
            out[f"{rule}_{kind}_caught"] = not all(_verdicts(bad, mine, gx))
    out["seconds"] = time.perf_counter() - started
    return out


_FRAMES: dict[str, pd.DataFrame] = {}


def _frame(dataset: str) -> pd.DataFrame:
    if dataset not in _FRAMES:
        _FRAMES[dataset] = DATASETS[dataset]()
    return _FRAMES[dataset]


# --- the table -------------------------------------------------------------------------------


def _upper(failures: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate."""
    from scipy import stats

    return 1.0 if failures >= trials else float(stats.beta.ppf(confidence, failures + 1, trials - failures))


def summarise(rows: list[dict[str, Any]], datasets: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for dataset in datasets:
        mine = [r for r in rows if r["dataset"] == dataset]
        entry: dict[str, Any] = {
            "splits": len(mine),
            "rows": len(_frame(dataset)),
            "columns": _frame(dataset).shape[1],
            "reference_rows": sorted({r["reference_rows"] for r in mine}),
            "batch_rows": [min(r["batch_rows"] for r in mine), max(r["batch_rows"] for r in mine)],
        }
        entry["infer_seconds_mean"] = round(sum(r["infer_s"] for r in mine) / len(mine), 3)
        for rule in RULES:
            failures = sum(not r[f"{rule}_clean_pass"] for r in mine)
            entry[f"{rule}_false_rejections"] = failures
            entry[f"{rule}_false_rejection"] = failures / len(mine)
            entry[f"{rule}_false_rejection_upper95"] = _upper(failures, len(mine))
            for kind in KINDS:
                done = [r[f"{rule}_{kind}_caught"] for r in mine if f"{rule}_{kind}_caught" in r]
                entry[f"{rule}_{kind}_detection"] = sum(done) / len(done) if done else None
                for size in entry["reference_rows"]:
                    some = [
                        r[f"{rule}_{kind}_caught"]
                        for r in mine
                        if f"{rule}_{kind}_caught" in r and r["reference_rows"] == size
                    ]
                    entry[f"{rule}_{kind}_detection_at_{size}"] = sum(some) / len(some) if some else None
        summary[dataset] = entry
    return summary


def _pct(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.0f}%" if value in (0, 1) or value >= 0.1 else f"{100 * value:.1f}%"


def tables(summary: dict[str, Any]) -> str:
    """False rejection per dataset, detection per kind (old / new), new detection per reference size."""
    lines = [
        "| dataset | rows x cols | reference rows | batch rows | false rejection, old rule | "
        "false rejection, new rule (95 % upper bound) |",
        "|---|---|---|---|---|---|",
    ]
    for dataset, e in summary.items():
        lines.append(
            f"| {dataset} | {e['rows']} x {e['columns']} | {' / '.join(map(str, e['reference_rows']))} | "
            f"{e['batch_rows'][0]}-{e['batch_rows'][1]} | {e['old_false_rejections']}/{e['splits']} = "
            f"{_pct(e['old_false_rejection'])} | **{e['new_false_rejections']}/{e['splits']} = "
            f"{_pct(e['new_false_rejection'])}** (<= {_pct(e['new_false_rejection_upper95'])}) |"
        )
    lines += ["", "Detection, old / new rule:", ""]
    lines.append("| corruption | " + " | ".join(summary) + " |")
    lines.append("|---|" + "---|" * len(summary))
    for kind in KINDS:
        cells = [
            f"{_pct(e[f'old_{kind}_detection'])} / {_pct(e[f'new_{kind}_detection'])}"
            for e in summary.values()
        ]
        lines.append(f"| `{kind}` | " + " | ".join(cells) + " |")
    lines += ["", "Detection of the new rule by reference size (rows), where it is not 100 %:", ""]
    lines.append("| corruption | " + " | ".join(summary) + " |")
    lines.append("|---|" + "---|" * len(summary))
    for kind in KINDS:
        if all(e[f"new_{kind}_detection"] in (None, 1) for e in summary.values()):
            continue
        cells = []
        for e in summary.values():
            parts = [
                f"{_pct(e[f'new_{kind}_detection_at_{size}'])} at {size}"
                for size in e["reference_rows"]
                if e[f"new_{kind}_detection_at_{size}"] is not None
            ]
            cells.append(", ".join(parts) or "n/a")
        lines.append(f"| `{kind}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--splits", type=int, default=200)
    parser.add_argument(
        "--gx-splits",
        type=int,
        default=4,
        help="the first N splits of each dataset also run through validate_dataframe (GX)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--processes", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("data_validation_results.json"))
    args = parser.parse_args(argv)

    tasks = [(d, i, args.seed, i < args.gx_splits) for d in args.datasets for i in range(args.splits)]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.processes) as pool:
        rows = list(pool.map(run_split, tasks))
    wall = time.perf_counter() - started
    summary = summarise(rows, args.datasets)
    print(tables(summary))
    print(f"\n{len(tasks)} splits in {wall:.0f} s on {args.processes} process(es)")
    for dataset in args.datasets:
        for rule in RULES:
            failed = [r for r in rows if r["dataset"] == dataset and not r[f"{rule}_clean_pass"]]
            if failed and rule == "new":
                print(
                    f"{dataset} {rule}: clean batches failed on", [r[f"{rule}_clean_failed"] for r in failed]
                )
    args.out.write_text(
        json.dumps(
            {
                "date": dt.date.today().isoformat(),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s)",
                "python": platform.python_version(),
                "splits": args.splits,
                "seed": args.seed,
                "seconds": round(wall, 1),
                "gx_checked_splits": sum(r["gx"] for r in rows),
                "summary": summary,
                # the clean batches a rule failed, and on which columns
                "clean_failures": {
                    rule: [
                        [r["dataset"], r["split"], r[f"{rule}_clean_failed"]]
                        for r in rows
                        if not r[f"{rule}_clean_pass"]
                    ]
                    for rule in RULES
                },
            },
            indent=1,
            default=str,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
