"""The evaluation stage's report as one self-contained HTML page, for a person to read.

:func:`model_curves` turns one model's holdout output into what the page plots, by task, so the
raw outputs never travel further than the function that scored them:

- binary (:func:`score_curves`): ROC and precision-recall curves downsampled to at most
  :data:`MAX_CURVE_POINTS` points, the score histograms of positives and negatives, the
  confusion matrix at the operating threshold;
- multiclass (:func:`class_curves`): the confusion matrix of the predicted (most probable) class
  (at most :data:`MAX_MATRIX_CLASSES` classes: the most frequent, the others folded into one),
  and each class's rows, recall and precision;
- regression (:func:`residual_curves`): residuals (actual minus predicted) against the predicted
  value (at most :data:`MAX_SCATTER_POINTS` points) and their histogram.

:func:`render_evaluation_report` draws the page: the verdict, the model (task, flavor, framework),
every gate (metric, measured value, threshold, result), the candidate's metrics beside the
champion's, the operating thresholds (binary), the plots (inline SVG), and the fairness and
robustness details when those checks ran.

The curves are computed in :mod:`airflow_mlops.metrics` (re-exported here); the page is rendered
through :mod:`airflow_mlops.reports` like every report: it loads nothing and runs no script, and
every string from the data (gate names, reasons, slice labels, class labels, the caller's
context) is escaped by the template or the figure builders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow_mlops.exceptions import DataError
from airflow_mlops.metrics import (
    MAX_CURVE_POINTS,
    MAX_MATRIX_CLASSES,
    MAX_SCATTER_POINTS,
    METRIC_NAMES,
    METRICS,
    OTHER_CLASSES,
    class_curves,
    model_curves,
    residual_curves,
    roc_points,
    score_curves,
)
from airflow_mlops.reports import format_value, render_page
from airflow_mlops.reports.figures import (
    Line,
    Marker,
    Series,
    confusion_matrix_svg,
    curves_svg,
    histogram_svg,
    scatter_svg,
)
from airflow_mlops.reports.style import CURRENT_COLOR, MUTED_COLOR, REFERENCE_COLOR

__all__ = [
    "MAX_CURVE_POINTS",
    "MAX_MATRIX_CLASSES",
    "MAX_SCATTER_POINTS",
    "OTHER_CLASSES",
    "class_curves",
    "model_curves",
    "render_evaluation_report",
    "residual_curves",
    "roc_points",
    "score_curves",
]

_COLORS = {"candidate": REFERENCE_COLOR, "champion": CURRENT_COLOR}

_TEMPLATE = """{% extends "page.html" %}
{% import "macros.html" as m %}
{% macro class_table(t) %}
{% call m.table(["class", "rows", "predicted", "recall", "precision"]) %}
{% for c in t.per_class %}<tr><td>{{ c["class"] }}</td>{{ m.cell(c.rows) }}{{ m.cell(c.predicted) }}{{ m.cell(c.recall) }}{{ m.cell(c.precision) }}</tr>{% endfor %}
{% endcall %}
{% if t.folded %}{{ m.missing("%d less frequent class(es) are folded into %r in the matrix and not listed." % (t.folded, other)) }}{% endif %}
{% endmacro %}
{% block content %}
<div class="banner {{ 'ok' if passed else 'drift' }}"><div class="verdict">{{ 'passed: the candidate may be promoted' if passed else 'blocked' }}</div>
<p>{{ gates_line }}; {{ note }}. Holdout: {{ holdout }}.</p>
{% if failed_gates %}<ul>{% for g in failed_gates %}<li><b>{{ g.name }}</b>: {{ g.reason }}</li>{% endfor %}</ul>{% endif %}
</div>
{{ m.context(context) }}
{{ m.nav(nav) }}
{% call m.section("model", "Model") %}
<p>Task: <b>{{ task_text }}</b>.</p>
{% if models %}
{% call m.table(["model", "task", "flavor", "format", "framework", "model type"]) %}
{% for name, d, library in models %}<tr><td>{{ name }}</td><td>{{ d.task or "" }}</td><td>{{ d.flavor or "" }}</td><td>{{ d.format or "" }}</td><td>{{ library }}</td><td>{{ d.model_type or "" }}</td></tr>{% endfor %}
{% endcall %}
{% else %}{{ m.missing("The evaluation does not say which model flavor it scored (an earlier release).") }}{% endif %}
{% if mismatch %}<p class="fail">The champion cannot be compared with the candidate: {{ mismatch }}.</p>{% endif %}
{% endcall %}
{% call m.section("gates", "Gates") %}
{% if gates %}
{% call m.table(["gate", "kind", "metric", "measured", "threshold", "result", "reason"]) %}
{% for g in gates %}{{ m.tr("" if g.passed else "failed") }}<td>{{ g.name }}</td><td>{{ g.kind }}</td><td>{{ g.metric }}</td>{{ m.cell(g.value) }}{{ m.cell(g.threshold) }}<td>{{ m.passed(g.passed) }}</td><td>{{ g.reason }}</td></tr>
{% endfor %}
{% endcall %}
{% else %}{{ m.missing("No evaluation gates configured.") }}{% endif %}
{% endcall %}
{% call m.section("metrics", "Metrics on the holdout") %}
{% call m.table(metric_headers) %}
{% for row in metric_rows %}<tr><td>{{ row[0] }}</td>{% for v in row[1:-1] %}{{ m.cell(v) }}{% endfor %}<td>{{ row[-1] }}</td></tr>
{% endfor %}
{% endcall %}
{% if not has_champion %}{{ m.missing("No champion was scored: the candidate's metrics alone.") }}{% endif %}
{% endcall %}
{% call m.section("thresholds", "Operating thresholds") %}
{% if thresholds is none %}{{ m.missing(no_threshold) }}{% else %}
<p>Each model is scored at its own operating threshold (positive where score &gt;= threshold).</p>
{% call m.table(["model", "threshold", "source"]) %}
{% for name, value, source in thresholds %}<tr><td>{{ name }}</td>{{ m.cell(value) }}<td>{{ source }}</td></tr>{% endfor %}
{% endcall %}
{% endif %}
{% endcall %}
{% call m.section("plots", "Plots") %}
{% if plots is none %}{{ m.missing("No scores were handed to the report: no plots.") }}{% else %}
{% if plots.shared %}<div class="feature-body">{% for svg in plots.shared %}{{ m.figure(svg) }}{% endfor %}</div>{% endif %}
{% for name, figures, table in plots.models %}
<h3>{{ name }}</h3>
<div class="feature-body">{% for svg in figures %}{{ m.figure(svg) }}{% endfor %}{% if table %}<div>{{ class_table(table) }}</div>{% endif %}</div>
{% endfor %}
{% endif %}
{% endcall %}
{% if fairness %}
{% call m.section("fairness", "Fairness") %}
<p>{{ fairness.head }}</p>
{% for column in fairness.columns %}
<h3>by {{ column.column }}</h3>
{% if column.error %}<p class="fail">{{ column.error }}</p>{% endif %}
{% if column.rows %}
{% call m.table(["slice", "rows"] + column.counts + column.metrics + ["excluded"]) %}
{% for s in column.rows %}{{ m.tr("failed" if s.excluded else "") }}<td>{{ s.slice }}</td>{% for v in s["values"] %}{{ m.cell(v) }}{% endfor %}<td>{{ s.excluded }}</td></tr>
{% endfor %}
{% endcall %}
{% endif %}
{% if column.gaps %}<pre>{{ column.gaps }}</pre>{% endif %}
{% endfor %}
{% endcall %}
{% endif %}
{% if robustness %}
{% call m.section("robustness", "Robustness") %}
{% if robustness.rows %}
{% call m.table(robustness.headers) %}
{% for r in robustness.rows %}{{ m.tr("failed" if r.error else "") }}<td>{{ r.perturbation }}</td><td>{{ r.columns }}</td>{% for v in r["values"] %}{{ m.cell(v) }}{% endfor %}<td>{{ r.error }}</td></tr>
{% endfor %}
{% endcall %}
{% else %}{{ m.missing("No perturbation ran.") }}{% endif %}
{% endcall %}
{% endif %}
{% endblock %}
"""

_NAV = (
    ("model", "Model"),
    ("gates", "Gates"),
    ("metrics", "Metrics"),
    ("thresholds", "Thresholds"),
    ("plots", "Plots"),
)


def render_evaluation_report(
    evaluation: Any,
    *,
    curves: Mapping[str, Any] | None = None,
    title: str = "",
    context: Mapping[str, str] | None = None,
) -> str:
    """The evaluation as one self-contained HTML document.

    :param evaluation: an :class:`~airflow_mlops.registry.evaluation.EvaluationReport` or its
        ``to_dict()`` output (``evaluation.json``).
    :param curves: ``{"candidate": score_curves(...), "champion": ...}``; defaults to the
        report's own ``curves``; without any the page says so instead of plotting.
    :param title: the page title (default: "Evaluation report").
    :param context: lines shown under the verdict (pipeline, model digest, run), escaped.
    """
    if hasattr(evaluation, "to_dict"):
        if curves is None:
            curves = getattr(evaluation, "curves", None)
        evaluation = evaluation.to_dict()
    if not isinstance(evaluation, Mapping):
        raise DataError(
            f"render_evaluation_report needs an EvaluationReport or its to_dict() output, got a "
            f"{type(evaluation).__name__}"
        )
    from airflow_mlops.tasks import describe

    task = _task(evaluation)
    gates = (evaluation.get("gates") or {}).get("gates") or []
    failed = [g for g in gates if not g.get("passed")]
    passed = bool(evaluation.get("passed"))
    model = evaluation.get("model") or {}
    fairness = evaluation.get("fairness")
    robustness = evaluation.get("robustness")
    nav = list(_NAV) + [
        (k, k.capitalize()) for k, v in (("fairness", fairness), ("robustness", robustness)) if v
    ]
    return render_page(
        _TEMPLATE,
        title=title or "Evaluation report",
        passed=passed,
        gates_line=f"all {len(gates)} gate(s) passed"
        if passed
        else f"{len(failed)} of {len(gates)} gate(s) failed",
        note=evaluation.get("note", ""),
        holdout=_holdout_text(evaluation),
        failed_gates=[_gate(g) for g in failed],
        context=dict(context or {}),
        nav=nav,
        task_text=describe(
            task, evaluation.get("classes"), model.get("positive_label") if task == "binary" else None
        ),
        models=_models(evaluation),
        mismatch=evaluation.get("champion_mismatch"),
        gates=[_gate(g) for g in gates],
        has_champion=evaluation.get("champion_metrics") is not None,
        metric_headers=_metric_headers(evaluation),
        metric_rows=_metric_rows(evaluation),
        thresholds=_thresholds(evaluation),
        no_threshold=_no_threshold(task),
        plots=_plots(curves) if curves else None,
        fairness=_fairness(fairness) if fairness else None,
        robustness=_robustness(robustness) if robustness else None,
        other=OTHER_CLASSES,
    )


# --- what the template shows ------------------------------------------------------------------


def _task(evaluation: Mapping[str, Any]) -> str:
    """The evaluated task (an evaluation.json of an earlier release is binary)."""
    return str(evaluation.get("task") or "binary")


def _gate(gate: Mapping[str, Any]) -> dict[str, Any]:
    """A gate of ``evaluation.json`` with every field the page shows (None where it is missing)."""
    fields = ("name", "kind", "metric", "value", "threshold", "reason")
    return {**{k: gate.get(k) for k in fields}, "passed": bool(gate.get("passed"))}


def _holdout_text(evaluation: Mapping[str, Any]) -> str:
    rows = f"{format_value(evaluation.get('holdout_rows'))} rows"
    task = _task(evaluation)
    if task == "binary":
        return f"{rows}, {format_value(evaluation.get('positive_rows'))} positive"
    if task == "multiclass":
        return f"{rows}, {len(evaluation.get('classes') or [])} classes"
    return rows


def _models(evaluation: Mapping[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """``(candidate or champion, its description, its framework)`` of each scored model described."""
    out: list[tuple[str, dict[str, Any], str]] = []
    for name, described in (
        ("candidate", evaluation.get("model")),
        ("champion", evaluation.get("champion_model")),
    ):
        if not described:
            continue
        framework = described.get("framework") or {}
        library = " ".join(str(v) for v in (framework.get("name"), framework.get("version")) if v)
        fields = {k: described.get(k) for k in ("task", "flavor", "format", "model_type")}
        out.append((name, fields, library))
    return out


def _metric_headers(evaluation: Mapping[str, Any]) -> list[str]:
    headers = ["metric", "candidate"]
    if evaluation.get("champion_metrics") is not None:
        headers += [f"champion (version {evaluation.get('champion_version')})", "candidate - champion"]
    return [*headers, "better"]


def _metric_rows(evaluation: Mapping[str, Any]) -> list[list[Any]]:
    """Per metric: name, candidate, (champion, difference,) and which direction is better."""
    metrics = evaluation.get("metrics") or {}
    champion = evaluation.get("champion_metrics")
    order = {name: i for i, name in enumerate(METRIC_NAMES)}
    rows = []
    for name in sorted(set(metrics) | set(champion or {}), key=lambda n: (order.get(n, len(order)), n)):
        row: list[Any] = [name, metrics.get(name)]
        if champion is not None:
            a, b = metrics.get(name), champion.get(name)
            row += [b, a - b if isinstance(a, int | float) and isinstance(b, int | float) else None]
        info = METRICS.get(name)
        row.append("" if info is None else "higher" if info.higher_is_better else "lower")
        rows.append(row)
    return rows


def _source(source: Any) -> str:
    if source == "model":
        return "stored with the model"
    if source == "fallback":
        return "the evaluation's fallback (the model stores none)"
    return str(source)


def _thresholds(evaluation: Mapping[str, Any]) -> list[tuple[str, Any, str]] | None:
    if _task(evaluation) != "binary":
        return None
    rows = [("candidate", evaluation.get("threshold"), _source(evaluation.get("threshold_source")))]
    if evaluation.get("champion_threshold") is not None:
        rows.append(
            (
                "champion",
                evaluation.get("champion_threshold"),
                _source(evaluation.get("champion_threshold_source")),
            )
        )
    return rows


def _no_threshold(task: str) -> str:
    how = (
        "the predicted class is the most probable one"
        if task == "multiclass"
        else "its predictions are values"
    )
    return f"None: an operating threshold applies to binary models; this is a {task} model ({how})."


def _plots(curves: Mapping[str, Any]) -> dict[str, Any]:
    """The figures: ``shared`` (ROC and PR of every model, binary) and per model its own."""
    named = [(n, curves[n]) for n in ("candidate", "champion") if curves.get(n)]
    task = next((str(c["task"]) for _, c in named if c.get("task")), "binary")
    if task == "multiclass":
        return {"shared": [], "models": [(n, [_class_matrix_svg(n, c)], c) for n, c in named]}
    if task == "regression":
        return {
            "shared": [],
            "models": [(n, [_residual_svg(n, c), _residual_histogram_svg(n, c)], None) for n, c in named],
        }
    roc = [
        Line(
            f"{n} (AUC {c['roc']['auc']:.4f})", c["roc"]["fpr"], c["roc"]["tpr"], _COLORS.get(n, MUTED_COLOR)
        )
        for n, c in named
        if c["roc"]
    ]
    pr = [
        Line(
            f"{n} (AP {c['pr']['average_precision']:.4f})",
            c["pr"]["recall"],
            c["pr"]["precision"],
            _COLORS.get(n, MUTED_COLOR),
        )
        for n, c in named
        if c["pr"]
    ]
    single = "no curve: the holdout has a single class"
    shared = [
        curves_svg(
            roc,
            label="ROC curve",
            x_label="false positive rate",
            y_label="true positive rate",
            diagonal=True,
            empty=single,
        ),
        curves_svg(pr, label="Precision-recall curve", x_label="recall", y_label="precision", empty=single),
    ]
    return {
        "shared": shared,
        "models": [(n, [_score_histogram_svg(n, c), _confusion_svg(n, c)], None) for n, c in named],
    }


def _score_histogram_svg(name: str, curves: Mapping[str, Any]) -> str:
    """Positives' and negatives' score distributions (each as a share of its class), and the threshold."""
    hist = curves["histogram"]
    threshold = float(curves["threshold"])
    series = []
    for cls, color in (("negatives", REFERENCE_COLOR), ("positives", CURRENT_COLOR)):
        counts = [int(c) for c in hist[cls]]
        total = sum(counts)
        shares = [c / total if total else 0.0 for c in counts]
        tips = [f"{cls} {c} ({share:.1%})" for c, share in zip(counts, shares, strict=True)]
        series.append(Series(cls, shares, color, "bars", tips))
    return histogram_svg(
        hist["edges"],
        series,
        label=f"{name}: score distributions of positives and negatives",
        markers=[Marker(threshold, f"threshold {threshold:.4g}")],
        caption=f"score; share of each class per bin; red: threshold {threshold:.4g}",
        width=680,
        height=256,
        css_class="histogram",
    )


def _confusion_svg(name: str, curves: Mapping[str, Any]) -> str:
    """The 2x2 confusion matrix at the threshold."""
    c = curves["confusion"]
    return confusion_matrix_svg(
        ["positive", "negative"],
        [[c["tp"], c["fn"]], [c["fp"], c["tn"]]],
        label=f"{name}: confusion matrix at threshold {float(curves['threshold']):.4g}",
        cell_names=[["TP", "FN"], ["FP", "TN"]],
    )


def _class_matrix_svg(name: str, curves: Mapping[str, Any]) -> str:
    """The multiclass confusion matrix of the predicted class."""
    return confusion_matrix_svg(
        [str(v) for v in curves["labels"]],
        curves["matrix"],
        label=f"{name}: confusion matrix of the predicted class ({curves['classes']} classes)",
    )


def _residual_svg(name: str, curves: Mapping[str, Any]) -> str:
    """Residual (actual minus predicted) against the predicted value, with the zero line."""
    points = curves["points"]
    xs = [float(v) for v in points["predicted"]]
    shown = f"{len(xs)} of {curves.get('rows')} rows" if len(xs) != curves.get("rows") else f"{len(xs)} rows"
    return scatter_svg(
        xs,
        [float(v) for v in points["residual"]],
        label=f"{name}: residuals against the predicted value",
        x_label=f"predicted value ({shown}); residual = actual - predicted",
        y_label="residual",
        color=_COLORS.get(name, MUTED_COLOR),
        zero_line="residual 0",
    )


def _residual_histogram_svg(name: str, curves: Mapping[str, Any]) -> str:
    """How the residuals of every holdout row are distributed."""
    hist = curves["histogram"]
    edges = [float(e) for e in hist["edges"]]
    summary = curves.get("summary") or {}
    return histogram_svg(
        edges,
        [Series("rows", [int(c) for c in hist["counts"]], _COLORS.get(name, MUTED_COLOR), "bars")],
        label=f"{name}: residual distribution",
        y_scale="count",
        markers=[Marker(0.0, "residual 0")] if edges[0] < 0 < edges[-1] else [],
        caption=f"residual (actual - predicted), rows per bin; mean {format_value(summary.get('mean'))}, "
        f"std {format_value(summary.get('std'))}, largest |residual| {format_value(summary.get('max_abs'))}",
        width=730,
        height=230,
        css_class="histogram",
    )


def _fairness(fairness: Mapping[str, Any]) -> dict[str, Any]:
    if _task(fairness) == "binary":
        head = (
            f"Scored at threshold {format_value(fairness.get('threshold'))}; a slice needs "
            f"{format_value(fairness.get('min_slice_rows'))} rows and "
            f"{format_value(fairness.get('min_slice_positives'))} positives to count."
        )
    else:
        head = f"A {_task(fairness)} model; a slice needs {format_value(fairness.get('min_slice_rows'))} rows to count."
    columns = []
    for column in fairness.get("columns") or []:
        slices = column.get("slices") or []
        metric_names = sorted({m for s in slices for m in (s.get("metrics") or {})})
        counts = [k for k in ("positives", "classes") if any(k in s for s in slices)]
        rows = [
            {
                "slice": s.get("slice"),
                "values": [s.get("rows"), *(s.get(k) for k in counts)]
                + [(s.get("metrics") or {}).get(m) for m in metric_names],
                "excluded": _excluded(s.get("excluded")),
            }
            for s in slices
        ]
        gaps = column.get("gaps")
        columns.append(
            {
                "column": column.get("column"),
                "error": column.get("error"),
                "counts": counts,
                "metrics": metric_names,
                "rows": rows,
                "gaps": json.dumps(gaps, indent=2, default=str) if gaps else "",
            }
        )
    return {"head": head, "columns": columns}


def _excluded(excluded: Any) -> str:
    if not excluded:
        return ""
    if isinstance(excluded, Mapping):
        return "; ".join(f"{k}: {v}" for k, v in excluded.items())
    if isinstance(excluded, list | tuple):
        return ", ".join(map(str, excluded))
    return str(excluded)


def _robustness(robustness: Mapping[str, Any]) -> dict[str, Any]:
    entries = robustness.get("perturbations") or []
    metric_names = sorted({m for e in entries for m in (e.get("metrics") or {})})
    headers = ["perturbation", "columns"]
    for m in metric_names:
        headers += [m, f"{m} change"]
    rows = [
        {
            "perturbation": e.get("perturbation"),
            "columns": ", ".join(map(str, e.get("columns") or [])),
            "values": [
                v
                for m in metric_names
                for v in ((e.get("metrics") or {}).get(m), (e.get("change") or {}).get(m))
            ],
            "error": e.get("error") or "",
        }
        for e in entries
    ]
    return {"headers": [*headers, "error"], "rows": rows}
