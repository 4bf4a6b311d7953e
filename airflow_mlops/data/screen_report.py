"""A self-contained HTML report of a poisoning screen, for a person to read.

:func:`render_screen_report` shows, in one file with inline SVG (no scripts, no external
resources): the verdict, the task (binary, multiclass or regression) with the rows of each class
or the target's and the residuals' summary, the suspects per check (a check that did not run says
why), the dataset findings, the score distribution of each scoring check with its cut, and the
quarantined rows (the highest-scoring first) each beside its nearest accepted rows, so a reviewer
sees why a row stands out.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from airflow_mlops.data.poisoning import ScreenResult

# At most this many quarantined rows are shown with their neighbours, and this many neighbours.
MAX_ROWS_SHOWN = 25
NEIGHBOURS_SHOWN = 3
# Nearest clean rows are searched among at most this many accepted rows.
MAX_NEIGHBOUR_POOL = 20_000
_BINS = 40

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#f3f3f3}.fail{color:#b00020;font-weight:bold}.pass{color:#1b7f3b;font-weight:bold}
tr.suspect td{background:#fdecea}tr.neighbour td{color:#555}
"""


def render_screen_report(result: ScreenResult, *, target: str, features: Sequence[str]) -> str:
    """The HTML of the report of ``result`` (a complete document)."""
    s = result.summary
    verdict = "passed" if result.passed else "failed"
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Poisoning screen</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Poisoning screen</h1>",
        f"<p class='{'pass' if result.passed else 'fail'}'>The screen {verdict}.</p>",
        f"<p>{html.escape(result.message())}</p>",
        f"<p>Reference: {html.escape(str(s.get('reference')))}</p>",
        "<h2>Task</h2>",
        _task_section(s),
        "<h2>Suspects per check</h2>",
        _table(
            ["check", "status", "suspect rows"],
            [
                [name, detail.get("status", ""), detail.get("suspects", s["check_counts"].get(name, ""))]
                for name, detail in s["checks"].items()
            ]
            + [
                [name, "always", count]
                for name, count in s["check_counts"].items()
                if name in ("missing_label", "non_finite_target")
            ],
        ),
        "<h2>Dataset findings</h2>",
        "<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in s["dataset_findings"]) + "</ul>"
        if s["dataset_findings"]
        else "<p>None.</p>",
        "<h2>Score distributions</h2>",
    ]
    shown = False
    label_score = (
        "residual score (|residual - median| / robust residual scale; suspect above the cut)"
        if s.get("task") == "regression"
        else "label score (log-likelihood ratio of the given label; suspect below the cut)"
    )
    for check, label in (
        ("label_issues", label_score),
        ("out_of_distribution", "anomaly score (suspect above the cut)"),
    ):
        if check in result.scores:
            shown = True
            cut = result.scores.get(f"{check}_cut")
            parts.append(f"<h3>{check}</h3><p>{html.escape(label)}</p>")
            parts.append(_histogram_svg(result.scores[check], cut))
            how = s["checks"].get(check, {}).get("threshold")
            if how:  # how the cut was set (a class without a line had no suspect)
                parts.append(f"<p>Cut: {html.escape(str(how))}.</p>")
    if not shown:
        parts.append("<p>No scoring check ran.</p>")
    parts.append("<h2>Quarantined rows and their nearest accepted rows</h2>")
    parts.append(_neighbour_tables(result, target=target, features=list(features)))
    parts.append("<h2>Hashes</h2>")
    parts.append(_table(["frame", "sha256"], [[k, v] for k, v in s["hashes"].items() if k != "method"]))
    parts.append(f"<p>{html.escape(s['hashes']['method'])}</p>")
    parts.append(
        "<h2>Details</h2><pre>" + html.escape(json.dumps(s["checks"], indent=2, default=str)) + "</pre>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def _task_section(s: dict[str, Any]) -> str:
    """The task, and per class its rows (classification) or the target's and the residuals'
    summary (regression)."""
    task = s.get("task", "binary")
    if task != "regression":
        counts = s.get("class_counts") or {}
        rows = [
            [
                c,
                v["rows"],
                v["accepted"],
                v["quarantined"],
                v["quarantined"] / v["rows"] if v["rows"] else 0.0,
            ]
            for c, v in counts.items()
        ]
        return f"<p>Task: {html.escape(task)} ({len(counts)} classes among the labelled rows).</p>" + _table(
            ["class", "rows", "accepted", "quarantined", "share quarantined"], rows
        )
    out = ["<p>Task: regression.</p>"]
    target = s.get("target") or {}
    frames = [
        ("batch", "quantiles"),
        ("accepted", "accepted_quantiles"),
        ("reference", "reference_quantiles"),
    ]
    shown = [(name, target[key]) for name, key in frames if target.get(key)]
    if shown:
        qs = list(shown[0][1])
        out.append(f"<p>Target ({target.get('labelled_rows', 0)} rows with a finite target):</p>")
        out.append(_table(["rows", *qs], [[name, *(q.get(k, "") for k in qs)] for name, q in shown]))
    label = s["checks"].get("label_issues")
    if label is None:
        out.append("<p>Residuals: label_issues was not among the checks.</p>")
    elif label.get("status") != "ran":
        out.append(f"<p>Residuals: label_issues {html.escape(str(label.get('status')))}.</p>")
    else:
        items = [
            ["model", label.get("model_source")],
            ["residual median", label.get("residual_center")],
            ["robust residual scale (MAD / 0.6745)", label.get("residual_scale")],
            ["cut (score)", "none (no suspect)" if label.get("cut") is None else label.get("cut")],
            ["suspects", label.get("suspects")],
            *[[f"residual {k}", v] for k, v in (label.get("residual_quantiles") or {}).items()],
        ]
        out.append("<p>Residuals (target - out-of-sample prediction):</p>" + _table(["", "value"], items))
    return "".join(out)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f" class='{classes[i]}'" if i < len(classes) and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _histogram_svg(values: np.ndarray, cut: np.ndarray | None) -> str:
    """An inline SVG histogram of ``values`` with the cut(s) as red lines."""
    import numpy as np

    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return "<p>No scores.</p>"
    cuts = (
        sorted({round(float(c), 6) for c in np.asarray(cut, dtype=float) if np.isfinite(c)})
        if cut is not None
        else []
    )
    lo = min(float(finite.min()), *cuts) if cuts else float(finite.min())
    hi = max(float(finite.max()), *cuts) if cuts else float(finite.max())
    if hi <= lo:
        hi = lo + 1.0
    counts, edges = np.histogram(finite, bins=_BINS, range=(lo, hi))
    width, height, pad = 640, 180, 30
    scale = np.log1p(counts) / max(np.log1p(counts.max()), 1e-9)  # log counts: the tail is visible
    bar_w = (width - 2 * pad) / _BINS
    bars = "".join(
        f"<rect x='{pad + i * bar_w:.1f}' y='{height - pad - h * (height - 2 * pad):.1f}' "
        f"width='{bar_w - 1:.1f}' height='{h * (height - 2 * pad):.1f}' fill='#5b8def'>"
        f"<title>{edges[i]:.3g} .. {edges[i + 1]:.3g}: {c}</title></rect>"
        for i, (c, h) in enumerate(zip(counts, scale, strict=True))
    )

    def x_of(v: float) -> float:
        return pad + (v - lo) / (hi - lo) * (width - 2 * pad)

    lines = "".join(
        f"<line x1='{x_of(c):.1f}' x2='{x_of(c):.1f}' y1='{pad / 2}' y2='{height - pad}' stroke='#d62728' "
        f"stroke-width='2'><title>cut {c:.4g}</title></line>"
        for c in cuts
    )
    axis = (
        f"<text x='{pad}' y='{height - 8}' font-size='11'>{lo:.3g}</text>"
        f"<text x='{width - pad}' y='{height - 8}' font-size='11' text-anchor='end'>{hi:.3g}</text>"
        f"<text x='{width / 2}' y='{height - 8}' font-size='11' text-anchor='middle'>"
        f"{len(finite)} rows, log-scaled counts; red: cut(s) {', '.join(f'{c:.3g}' for c in cuts)}</text>"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img'>"
        f"{bars}{lines}{axis}</svg>"
    )


def _neighbour_tables(result: ScreenResult, *, target: str, features: list[str]) -> str:
    import numpy as np
    import pandas as pd
    from sklearn.neighbors import NearestNeighbors

    from airflow_mlops.data.poisoning import (
        REASONS_COLUMN,
        ROW_INDEX_COLUMN,
        SCORES_COLUMN,
        build_feature_matrix,
    )

    q = result.quarantined
    if not len(q):
        return "<p>No row was quarantined.</p>"
    shown = q.head(MAX_ROWS_SHOWN)
    pool = result.accepted
    if len(pool) > MAX_NEIGHBOUR_POOL:
        pool = pool.sample(n=MAX_NEIGHBOUR_POOL, random_state=0)
    columns = [*features, target]
    out = [f"<p>{len(shown)} of {len(q)} quarantined rows, each followed by its nearest accepted rows.</p>"]
    if not len(pool):
        out.append(
            _table(
                [ROW_INDEX_COLUMN, REASONS_COLUMN, *columns],
                shown[[ROW_INDEX_COLUMN, REASONS_COLUMN, *columns]].values.tolist(),
            )
        )
        return "".join(out)
    both = pd.concat([shown[features], pool[features]], ignore_index=True)
    x = build_feature_matrix(both, features)
    k = min(NEIGHBOURS_SHOWN, len(pool))
    _, idx = NearestNeighbors(n_neighbors=k).fit(x[len(shown) :]).kneighbors(x[: len(shown)])
    rows: list[list[Any]] = []
    classes: list[str] = []
    for i, (_, row) in enumerate(shown.iterrows()):
        rows.append(
            [f"#{row[ROW_INDEX_COLUMN]}", row[REASONS_COLUMN], row[SCORES_COLUMN], *row[columns].tolist()]
        )
        classes.append("suspect")
        for j in idx[i]:
            near = pool.iloc[int(j)]
            rows.append(["nearest accepted", "", "", *near[columns].tolist()])
            classes.append("neighbour")
    del np
    return "".join(out) + _table(["row", "reasons", "scores", *columns], rows, classes)
