"""A self-contained HTML report of a poisoning screen, for a person to read.

:func:`render_screen_report` shows, in one page rendered through :mod:`airflow_mlops.reports`
(inline SVG, no scripts, no external resources, a Content-Security-Policy that says so, every
string from the data escaped): the verdict, the task (binary, multiclass or regression) with the
rows of each class or the target's and the residuals' summary, the suspects per check (a check
that did not run says why), the dataset findings, the score distribution of each scoring check
with its cut, and the quarantined rows (the highest-scoring first) each beside its nearest
accepted rows, so a reviewer sees why a row stands out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.reports import render_page
from airflow_mlops.reports.figures import Marker, Series, histogram_svg
from airflow_mlops.reports.style import REFERENCE_COLOR

if TYPE_CHECKING:
    import numpy as np
    from markupsafe import Markup

    from airflow_mlops.data.poisoning import ScreenResult

# At most this many quarantined rows are shown with their neighbours, and this many neighbours.
MAX_ROWS_SHOWN = 25
NEIGHBOURS_SHOWN = 3
# Nearest clean rows are searched among at most this many accepted rows.
MAX_NEIGHBOUR_POOL = 20_000
_BINS = 40

# The screen's tables keep their markup of old (plain cells, single-quoted row classes): tests
# and readers of the page find rows by it.
_TEMPLATE = """{% extends "page.html" %}
{% import "macros.html" as m %}
{% macro grid(headers, rows, css="", classes=()) %}<table{% if css %} class="{{ css }}"{% endif %}><thead><tr>{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>{% for row in rows %}<tr{% if loop.index0 < classes|length and classes[loop.index0] %} class='{{ classes[loop.index0] }}'{% endif %}>{% for value in row %}<td>{{ value|cell }}</td>{% endfor %}</tr>{% endfor %}</tbody></table>{% endmacro %}
{% block content %}
<div class="banner {{ 'ok' if passed else 'failed' }}"><div class="verdict">The screen {{ 'passed' if passed else 'failed' }}.</div><p>{{ message }}</p></div>
{{ m.context(context) }}
{{ m.nav(nav) }}
{% call m.section("task", "Task") %}
{% for paragraph, table in task %}<p>{{ paragraph }}</p>{% if table %}{{ grid(table[0], table[1]) }}{% endif %}
{% endfor %}
{% endcall %}
{% call m.section("checks", "Suspects per check") %}{{ grid(["check", "status", "suspect rows"], checks) }}{% endcall %}
{% call m.section("findings", "Dataset findings") %}
{% if findings %}<ul>{% for f in findings %}<li>{{ f }}</li>{% endfor %}</ul>{% else %}<p>None.</p>{% endif %}
{% endcall %}
{% call m.section("scores", "Score distributions") %}
{% for check, label, figure, how in scores %}
<h3>{{ check }}</h3><p>{{ label }}</p>
{% if figure %}{{ m.figure(figure) }}{% else %}<p>No scores.</p>{% endif %}
{% if how %}<p>Cut: {{ how }}.</p>{% endif %}
{% else %}<p>No scoring check ran.</p>
{% endfor %}
{% endcall %}
{% call m.section("quarantine", "Quarantined rows and their nearest accepted rows") %}
<p>{{ neighbours.text }}</p>
{% if neighbours.headers %}{{ grid(neighbours.headers, neighbours.rows, "quarantine", neighbours.classes) }}{% endif %}
{% endcall %}
{% call m.section("hashes", "Hashes") %}
{{ grid(["frame", "sha256"], hashes) }}
<p>{{ hash_method }}</p>
{% endcall %}
{% call m.section("details", "Details") %}<pre>{{ details }}</pre>{% endcall %}
{% endblock %}
"""

_NAV = (
    ("task", "Task"),
    ("checks", "Checks"),
    ("findings", "Dataset findings"),
    ("scores", "Score distributions"),
    ("quarantine", "Quarantined rows"),
    ("hashes", "Hashes"),
    ("details", "Details"),
)


def render_screen_report(result: ScreenResult, *, target: str, features: Sequence[str]) -> str:
    """The HTML of the report of ``result`` (a complete document)."""
    s = result.summary
    label_score = (
        "residual score (|residual - median| / robust residual scale; suspect above the cut)"
        if s.get("task") == "regression"
        else "label score (log-likelihood ratio of the given label; suspect below the cut)"
    )
    scores = []
    for check, label in (
        ("label_issues", label_score),
        ("out_of_distribution", "anomaly score (suspect above the cut)"),
    ):
        if check in result.scores:
            figure = _histogram_svg(check, result.scores[check], result.scores.get(f"{check}_cut"))
            how = s["checks"].get(check, {}).get("threshold")  # how the cut was set
            scores.append((check, label, figure, str(how) if how else ""))
    checks = [
        [name, detail.get("status", ""), detail.get("suspects", s["check_counts"].get(name, ""))]
        for name, detail in s["checks"].items()
    ] + [
        [name, "always", count]
        for name, count in s["check_counts"].items()
        if name in ("missing_label", "non_finite_target")
    ]
    return render_page(
        _TEMPLATE,
        title="Poisoning screen",
        filters={"cell": _cell},
        passed=result.passed,
        message=result.message(),
        context={"reference": str(s.get("reference")), "target": target},
        nav=_NAV,
        task=_task_section(s),
        checks=checks,
        findings=s["dataset_findings"],
        scores=scores,
        neighbours=_neighbour_rows(result, target=target, features=list(features)),
        hashes=[[k, v] for k, v in s["hashes"].items() if k != "method"],
        hash_method=s["hashes"]["method"],
        details=json.dumps(s["checks"], indent=2, default=str),
    )


Table = tuple[list[str], list[list[Any]]]


def _task_section(s: dict[str, Any]) -> list[tuple[str, Table | None]]:
    """The task, and per class its rows (classification) or the target's and the residuals'
    summary (regression): ``(paragraph, (headers, rows) or None)`` each."""
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
        return [
            (
                f"Task: {task} ({len(counts)} classes among the labelled rows).",
                (["class", "rows", "accepted", "quarantined", "share quarantined"], rows),
            )
        ]
    out: list[tuple[str, Table | None]] = [("Task: regression.", None)]
    target = s.get("target") or {}
    frames = [
        ("batch", "quantiles"),
        ("accepted", "accepted_quantiles"),
        ("reference", "reference_quantiles"),
    ]
    shown = [(name, target[key]) for name, key in frames if target.get(key)]
    if shown:
        qs = list(shown[0][1])
        out.append(
            (
                f"Target ({target.get('labelled_rows', 0)} rows with a finite target):",
                (["rows", *qs], [[name, *(q.get(k, "") for k in qs)] for name, q in shown]),
            )
        )
    label = s["checks"].get("label_issues")
    if label is None:
        out.append(("Residuals: label_issues was not among the checks.", None))
    elif label.get("status") != "ran":
        out.append((f"Residuals: label_issues {label.get('status')}.", None))
    else:
        items = [
            ["model", label.get("model_source")],
            ["residual median", label.get("residual_center")],
            ["robust residual scale (MAD / 0.6745)", label.get("residual_scale")],
            ["cut (score)", "none (no suspect)" if label.get("cut") is None else label.get("cut")],
            ["suspects", label.get("suspects")],
            *[[f"residual {k}", v] for k, v in (label.get("residual_quantiles") or {}).items()],
        ]
        out.append(("Residuals (target - out-of-sample prediction):", (["", "value"], items)))
    return out


def _histogram_svg(check: str, values: np.ndarray, cut: np.ndarray | None) -> Markup | None:
    """The distribution of a check's scores (log-scaled counts) with its cut(s); None without scores."""
    import numpy as np

    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return None
    cuts = (
        sorted({round(float(c), 6) for c in np.asarray(cut, dtype=float).ravel() if np.isfinite(c)})
        if cut is not None
        else []
    )
    lo = min(float(finite.min()), *cuts) if cuts else float(finite.min())
    hi = max(float(finite.max()), *cuts) if cuts else float(finite.max())
    if hi <= lo:
        hi = lo + 1.0
    counts, edges = np.histogram(finite, bins=_BINS, range=(lo, hi))
    caption = f"{len(finite)} rows, log-scaled counts"
    if cuts:
        caption += f"; red: cut(s) {', '.join(f'{c:.3g}' for c in cuts)}"
    return histogram_svg(
        [float(e) for e in edges],
        [Series("rows", [int(c) for c in counts], REFERENCE_COLOR, "bars")],
        label=f"{check}: score distribution",
        y_scale="log",
        markers=[Marker(c, f"cut {c:.4g}") for c in cuts],
        caption=caption,
        width=640,
        height=200,
        css_class="histogram",
    )


def _cell(value: Any) -> str:
    """A table cell's text: floats to four significant digits, anything else as it is."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (so that it is formatted as one)."""
    return value.item() if type(value).__module__ == "numpy" and hasattr(value, "item") else value


def _neighbour_rows(result: ScreenResult, *, target: str, features: list[str]) -> dict[str, Any]:
    """The quarantined rows shown, each followed by its nearest accepted rows: ``text``,
    ``headers``, ``rows`` and their ``classes`` (``suspect`` or ``neighbour``)."""
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
        return {"text": "No row was quarantined.", "headers": None, "rows": [], "classes": []}
    shown = q.head(MAX_ROWS_SHOWN)
    pool = result.accepted
    if len(pool) > MAX_NEIGHBOUR_POOL:
        pool = pool.sample(n=MAX_NEIGHBOUR_POOL, random_state=0)
    columns = [*features, target]
    text = f"{len(shown)} of {len(q)} quarantined rows, each followed by its nearest accepted rows."
    if not len(pool):
        headers = [ROW_INDEX_COLUMN, REASONS_COLUMN, *columns]
        alone = [[_plain(v) for v in row] for row in shown[headers].values.tolist()]
        return {"text": text, "headers": headers, "rows": alone, "classes": ["suspect"] * len(alone)}
    both = pd.concat([shown[features], pool[features]], ignore_index=True)
    x = build_feature_matrix(both, features)
    k = min(NEIGHBOURS_SHOWN, len(pool))
    _, idx = NearestNeighbors(n_neighbors=k).fit(x[len(shown) :]).kneighbors(x[: len(shown)])
    rows: list[list[Any]] = []
    classes: list[str] = []
    for i, (_, row) in enumerate(shown.iterrows()):
        rows.append(
            [
                f"#{row[ROW_INDEX_COLUMN]}",
                row[REASONS_COLUMN],
                row[SCORES_COLUMN],
                *(_plain(v) for v in row[columns].tolist()),
            ]
        )
        classes.append("suspect")
        for j in idx[i]:
            near = pool.iloc[int(j)]
            rows.append(["nearest accepted", "", "", *(_plain(v) for v in near[columns].tolist())])
            classes.append("neighbour")
    return {"text": text, "headers": ["row", "reasons", "scores", *columns], "rows": rows, "classes": classes}
