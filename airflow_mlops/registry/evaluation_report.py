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

Like the drift report (:mod:`airflow_mlops.drift.html`, whose page pieces and SVG helpers this
module reuses) the page loads nothing and runs no script, and every string from the data (gate
names, reasons, slice labels, the caller's context) is escaped. numpy is imported inside the
functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_mlops.drift.figures import (
    CURRENT_COLOR,
    DRIFT_COLOR,
    GRID_COLOR,
    MUTED_COLOR,
    REFERENCE_COLOR,
    _element,
    _placeholder,
    _svg,
    _text,
    escape,
    format_value,
)
from airflow_mlops.drift.html import _cell, _missing, _section, _table, _tag, html_page
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

__all__ = [
    "MAX_CURVE_POINTS",
    "MAX_MATRIX_CLASSES",
    "MAX_SCATTER_POINTS",
    "class_curves",
    "model_curves",
    "render_evaluation_report",
    "residual_curves",
    "roc_points",
    "score_curves",
]

_COLORS = {"candidate": REFERENCE_COLOR, "champion": CURRENT_COLOR}
_PLOT = 300  # side of a square plot area, in px
_PAD = 40


# --- figures ---------------------------------------------------------------------------------


def _frame(x_label: str, y_label: str) -> list[str]:
    """Axes from 0 to 1 on both sides, with a light grid every 0.25."""
    body: list[str] = []
    for i in range(5):
        v = i / 4
        x, y = _PAD + v * _PLOT, _PAD / 2 + (1 - v) * _PLOT
        body.append(_element("line", x1=x, y1=_PAD / 2, x2=x, y2=_PAD / 2 + _PLOT, stroke=GRID_COLOR))
        body.append(_element("line", x1=_PAD, y1=y, x2=_PAD + _PLOT, y2=y, stroke=GRID_COLOR))
        body.append(_text(x, _PAD / 2 + _PLOT + 14, f"{v:g}", text_anchor="middle", fill=MUTED_COLOR))
        body.append(_text(_PAD - 4, y + 4, f"{v:g}", text_anchor="end", fill=MUTED_COLOR))
    body.append(_text(_PAD + _PLOT / 2, _PAD / 2 + _PLOT + 30, x_label, text_anchor="middle"))
    body.append(
        _text(
            12,
            _PAD / 2 + _PLOT / 2,
            y_label,
            text_anchor="middle",
            transform=f"rotate(-90 12 {_PAD / 2 + _PLOT / 2:.1f})",
        )
    )
    return body


def _xy(x: float, y: float) -> str:
    return f"{_PAD + x * _PLOT:.1f},{_PAD / 2 + (1 - y) * _PLOT:.1f}"


def _curve_svg(
    label: str, x_label: str, y_label: str, curves: Sequence[tuple[str, str, list[float], list[float]]]
) -> str:
    """Lines ``(name, legend text, xs, ys)`` in the unit square (ROC also gets the chance diagonal)."""
    width, height = _PAD + _PLOT + 20, _PAD / 2 + _PLOT + 40 + 16 * len(curves)
    if not curves:
        return _placeholder(width, 80, label, "no curve: the holdout has a single class", "curve")
    body = _frame(x_label, y_label)
    if x_label.startswith("false positive"):
        body.append(
            _element(
                "polyline",
                points=f"{_xy(0, 0)} {_xy(1, 1)}",
                fill="none",
                stroke=MUTED_COLOR,
                stroke_dasharray="4 3",
            )
        )
    for i, (name, legend, xs, ys) in enumerate(curves):
        color = _COLORS.get(name, MUTED_COLOR)
        points = " ".join(_xy(x, y) for x, y in zip(xs, ys, strict=True))
        body.append(_element("polyline", legend, points=points, fill="none", stroke=color, stroke_width=2))
        y = _PAD / 2 + _PLOT + 50 + 16 * i
        body.append(_element("line", x1=_PAD, y1=y - 4, x2=_PAD + 14, y2=y - 4, stroke=color, stroke_width=2))
        body.append(_text(_PAD + 18, y, legend))
    return _svg(width, height, label, body, "curve")


def _histogram_svg(name: str, curves: Mapping[str, Any]) -> str:
    """Positives' and negatives' score distributions (each as a share of its class), and the threshold."""
    hist = curves["histogram"]
    edges, threshold = hist["edges"], float(curves["threshold"])
    width, height = _PAD + 2 * _PLOT + 20, _PAD / 2 + 180 + 56
    label = f"{name}: score distributions of positives and negatives"
    shares: dict[str, list[float]] = {}
    for cls in ("positives", "negatives"):
        total = sum(hist[cls])
        shares[cls] = [c / total if total else 0.0 for c in hist[cls]]
    top = max([*shares["positives"], *shares["negatives"], 1e-9])
    plot_w, plot_h, base = 2 * _PLOT, 180, _PAD / 2 + 180
    bin_w = plot_w / (len(edges) - 1)
    body = [_element("line", x1=_PAD, y1=base, x2=_PAD + plot_w, y2=base, stroke=MUTED_COLOR)]
    for cls, color, offset in (("negatives", REFERENCE_COLOR, 0.0), ("positives", CURRENT_COLOR, 0.5)):
        for i, share in enumerate(shares[cls]):
            h = share / top * plot_h
            count = hist[cls][i]
            body.append(
                _element(
                    "rect",
                    f"{cls} {edges[i]:.3g}..{edges[i + 1]:.3g}: {count} ({share:.1%})",
                    x=_PAD + (i + offset) * bin_w,
                    y=base - h,
                    width=max(bin_w / 2 - 0.5, 0.5),
                    height=h,
                    fill=color,
                    fill_opacity=0.8,
                )
            )
    tx = _PAD + min(max(threshold, 0.0), 1.0) * plot_w
    body.append(
        _element(
            "line",
            f"threshold {threshold:.4g}",
            x1=tx,
            y1=_PAD / 4,
            x2=tx,
            y2=base,
            stroke=DRIFT_COLOR,
            stroke_width=2,
        )
    )
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        body.append(_text(_PAD + v * plot_w, base + 14, f"{v:g}", text_anchor="middle", fill=MUTED_COLOR))
    body.append(
        _text(
            _PAD,
            base + 34,
            f"score; share of each class per bin (blue: negatives, orange: positives); red: threshold "
            f"{threshold:.4g}",
        )
    )
    return _svg(width, height, label, body, "histogram")


def _confusion_svg(name: str, curves: Mapping[str, Any]) -> str:
    """The 2x2 confusion matrix at the threshold, each cell shaded by its share of its actual class."""
    c = curves["confusion"]
    cell, left, top = 90, 110, 40
    label = f"{name}: confusion matrix at threshold {float(curves['threshold']):.4g}"
    body = [
        _text(left + cell, 14, "predicted", text_anchor="middle", font_weight="bold"),
        _text(left + cell / 2, top - 6, "positive", text_anchor="middle"),
        _text(left + 1.5 * cell, top - 6, "negative", text_anchor="middle"),
    ]
    rows = (
        ("actual positive", c["tp"], c["fn"], "TP", "FN"),
        ("actual negative", c["fp"], c["tn"], "FP", "TN"),
    )
    for r, (row_label, a, b, a_name, b_name) in enumerate(rows):
        y = top + r * cell
        body.append(_text(left - 6, y + cell / 2 + 4, row_label, text_anchor="end"))
        total = a + b
        for k, (count, cell_name) in enumerate(((a, a_name), (b, b_name))):
            share = count / total if total else 0.0
            correct = cell_name in ("TP", "TN")
            body.append(
                _element(
                    "rect",
                    f"{cell_name}: {count} ({share:.1%} of the {row_label[7:]}s)",
                    x=left + k * cell,
                    y=y,
                    width=cell - 2,
                    height=cell - 2,
                    fill=REFERENCE_COLOR if correct else DRIFT_COLOR,
                    fill_opacity=0.15 + 0.7 * share,
                )
            )
            body.append(
                _text(
                    left + k * cell + cell / 2,
                    y + cell / 2,
                    f"{cell_name} {count}",
                    text_anchor="middle",
                    font_weight="bold",
                )
            )
            body.append(
                _text(left + k * cell + cell / 2, y + cell / 2 + 16, f"{share:.1%}", text_anchor="middle")
            )
    return _svg(left + 2 * cell + 10, top + 2 * cell + 10, label, body, "confusion")


def _clip_label(text: str, width: int = 16) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _class_matrix_svg(name: str, curves: Mapping[str, Any]) -> str:
    """The multiclass confusion matrix: rows the actual class, columns the predicted one, each
    cell shaded by its share of its actual class (the diagonal, right, in blue)."""
    labels = [str(v) for v in curves["labels"]]
    matrix = curves["matrix"]
    size = len(labels)
    cell = max(22, min(56, 560 // max(size, 1)))
    left, top = 130, 110
    width, height = max(left + size * cell + 10, left + 340), top + size * cell + 30
    label = f"{name}: confusion matrix of the predicted class ({curves['classes']} classes)"
    body = [
        _text(left + size * cell / 2, 14, "predicted", text_anchor="middle", font_weight="bold"),
        _text(
            14,
            top + size * cell / 2,
            "actual",
            text_anchor="middle",
            font_weight="bold",
            transform=f"rotate(-90 14 {top + size * cell / 2:.1f})",
        ),
    ]
    for j, text in enumerate(labels):
        x = left + j * cell + cell / 2
        body.append(
            _text(
                x,
                top - 6,
                _clip_label(text),
                text,
                text_anchor="start",
                transform=f"rotate(-45 {x:.1f} {top - 6})",
            )
        )
    for i, actual in enumerate(labels):
        y = top + i * cell
        row = [int(v) for v in matrix[i]]
        total = sum(row)
        body.append(_text(left - 6, y + cell / 2 + 4, _clip_label(actual), actual, text_anchor="end"))
        for j, count in enumerate(row):
            share = count / total if total else 0.0
            body.append(
                _element(
                    "rect",
                    f"actual {actual}, predicted {labels[j]}: {count} ({share:.1%} of the actual {actual} rows)",
                    x=left + j * cell,
                    y=y,
                    width=cell - 2,
                    height=cell - 2,
                    fill=REFERENCE_COLOR if i == j else DRIFT_COLOR,
                    fill_opacity=(0.08 + 0.8 * share) if count else 0.03,
                )
            )
            if cell >= 30 and count:
                body.append(
                    _text(left + j * cell + cell / 2 - 1, y + cell / 2 + 3, str(count), text_anchor="middle")
                )
    body.append(
        _text(
            left,
            top + size * cell + 18,
            "share of each actual class per cell (blue: right, red: wrong)",
            fill=MUTED_COLOR,
        )
    )
    return _svg(width, height, label, body, "confusion")


def _class_table(curves: Mapping[str, Any]) -> str:
    rows = [
        (
            "",
            f"<td>{escape(c.get('class'))}</td>{_cell(c.get('rows'))}{_cell(c.get('predicted'))}"
            f"{_cell(c.get('recall'))}{_cell(c.get('precision'))}",
        )
        for c in curves.get("per_class") or []
    ]
    table = _table(["class", "rows", "predicted", "recall", "precision"], rows)
    folded = int(curves.get("folded") or 0)
    note = (
        _missing(
            f"{folded} less frequent class(es) are folded into {OTHER_CLASSES!r} in the matrix and not listed."
        )
        if folded
        else ""
    )
    return table + note


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    return [low + (high - low) * i / count for i in range(count + 1)]


def _residual_svg(name: str, curves: Mapping[str, Any]) -> str:
    """Residual (actual minus predicted) against the predicted value, with the zero line."""
    points = curves["points"]
    xs, ys = [float(v) for v in points["predicted"]], [float(v) for v in points["residual"]]
    label = f"{name}: residuals against the predicted value"
    width, height = _PAD + 2 * _PLOT + 50, _PAD / 2 + _PLOT + 50
    if not xs:
        return _placeholder(width, 80, label, "no rows", "scatter")
    x_low, x_high = min(xs), max(xs)
    if x_low == x_high:
        x_low, x_high = x_low - 0.5, x_high + 0.5
    reach = max(max(abs(v) for v in ys), 1e-12)
    y_low, y_high = -reach * 1.05, reach * 1.05
    plot_w, plot_h, x0, y0 = 2 * _PLOT, _PLOT, _PAD + 30, _PAD / 2

    def px(v: float) -> float:
        return x0 + (v - x_low) / (x_high - x_low) * plot_w

    def py(v: float) -> float:
        return y0 + (y_high - v) / (y_high - y_low) * plot_h

    body = [
        _text(
            12,
            y0 + plot_h / 2,
            "residual",
            text_anchor="middle",
            transform=f"rotate(-90 12 {y0 + plot_h / 2:.1f})",
        )
    ]
    for v in _ticks(x_low, x_high):
        body.append(_element("line", x1=px(v), y1=y0, x2=px(v), y2=y0 + plot_h, stroke=GRID_COLOR))
        body.append(_text(px(v), y0 + plot_h + 14, format_value(v), text_anchor="middle", fill=MUTED_COLOR))
    for v in _ticks(y_low, y_high):
        body.append(_element("line", x1=x0, y1=py(v), x2=x0 + plot_w, y2=py(v), stroke=GRID_COLOR))
        body.append(_text(x0 - 4, py(v) + 4, format_value(v), text_anchor="end", fill=MUTED_COLOR))
    body.append(
        _element(
            "line",
            "residual 0",
            x1=x0,
            y1=py(0.0),
            x2=x0 + plot_w,
            y2=py(0.0),
            stroke=DRIFT_COLOR,
            stroke_dasharray="4 3",
        )
    )
    color = _COLORS.get(name, MUTED_COLOR)
    for x, y in zip(xs, ys, strict=True):
        body.append(_element("circle", cx=px(x), cy=py(y), r=2.0, fill=color, fill_opacity=0.55))
    shown = f"{len(xs)} of {curves.get('rows')} rows" if len(xs) != curves.get("rows") else f"{len(xs)} rows"
    body.append(
        _text(
            x0 + plot_w / 2,
            y0 + plot_h + 32,
            f"predicted value ({shown}); residual = actual - predicted",
            text_anchor="middle",
        )
    )
    return _svg(width, height, label, body, "scatter")


def _residual_histogram_svg(name: str, curves: Mapping[str, Any]) -> str:
    """How the residuals of every holdout row are distributed."""
    hist = curves["histogram"]
    edges, counts = [float(e) for e in hist["edges"]], [int(c) for c in hist["counts"]]
    label = f"{name}: residual distribution"
    plot_w, plot_h = 2 * _PLOT, 160
    width, height = _PAD + plot_w + 50, _PAD / 2 + plot_h + 50
    base, x0 = _PAD / 2 + plot_h, _PAD + 30
    top = max([*counts, 1])
    low, high = edges[0], edges[-1]
    bin_w = plot_w / max(len(counts), 1)
    color = _COLORS.get(name, MUTED_COLOR)
    body = [_element("line", x1=x0, y1=base, x2=x0 + plot_w, y2=base, stroke=MUTED_COLOR)]
    for i, count in enumerate(counts):
        h = count / top * plot_h
        body.append(
            _element(
                "rect",
                f"residual {format_value(edges[i])}..{format_value(edges[i + 1])}: {count} rows",
                x=x0 + i * bin_w,
                y=base - h,
                width=max(bin_w - 1, 0.5),
                height=h,
                fill=color,
                fill_opacity=0.8,
            )
        )
    if low < 0 < high:
        zx = x0 + (0 - low) / (high - low) * plot_w
        body.append(
            _element(
                "line", "residual 0", x1=zx, y1=_PAD / 4, x2=zx, y2=base, stroke=DRIFT_COLOR, stroke_width=2
            )
        )
    for v in _ticks(low, high):
        body.append(
            _text(
                x0 + (v - low) / (high - low) * plot_w,
                base + 14,
                format_value(v),
                text_anchor="middle",
                fill=MUTED_COLOR,
            )
        )
    summary = curves.get("summary") or {}
    body.append(
        _text(
            x0,
            base + 34,
            f"residual (actual - predicted), rows per bin; mean {format_value(summary.get('mean'))}, "
            f"std {format_value(summary.get('std'))}, largest |residual| {format_value(summary.get('max_abs'))}",
        )
    )
    return _svg(width, height, label, body, "histogram")


# --- the page --------------------------------------------------------------------------------


def _banner(evaluation: Mapping[str, Any]) -> str:
    passed = bool(evaluation.get("passed"))
    gates = (evaluation.get("gates") or {}).get("gates") or []
    failed = [g for g in gates if not g.get("passed")]
    css, text = ("ok", "passed: the candidate may be promoted") if passed else ("drift", "blocked")
    items = "".join(f"<li><b>{escape(g.get('name'))}</b>: {escape(g.get('reason'))}</li>" for g in failed)
    head = f"all {len(gates)} gate(s) passed" if passed else f"{len(failed)} of {len(gates)} gate(s) failed"
    return (
        f'<div class="banner {css}"><div class="verdict">{escape(text)}</div>'
        f"<p>{escape(head)}; {escape(evaluation.get('note', ''))}. Holdout: "
        f"{escape(_holdout_text(evaluation))}.</p>"
        f"{f'<ul>{items}</ul>' if items else ''}</div>"
    )


def _task(evaluation: Mapping[str, Any]) -> str:
    """The evaluated task (an evaluation.json of an earlier release is binary)."""
    return str(evaluation.get("task") or "binary")


def _holdout_text(evaluation: Mapping[str, Any]) -> str:
    rows = f"{format_value(evaluation.get('holdout_rows'))} rows"
    task = _task(evaluation)
    if task == "binary":
        return f"{rows}, {format_value(evaluation.get('positive_rows'))} positive"
    if task == "multiclass":
        return f"{rows}, {len(evaluation.get('classes') or [])} classes"
    return rows


def _model_section(evaluation: Mapping[str, Any]) -> str:
    """What was evaluated: the task and each scored model's flavor, format and framework."""
    from airflow_mlops.tasks import describe

    task = _task(evaluation)
    model = evaluation.get("model") or {}
    positive = model.get("positive_label") if task == "binary" else None
    text = f"<p>Task: <b>{escape(describe(task, evaluation.get('classes'), positive))}</b>.</p>"
    rows = []
    for name, described in (("candidate", model), ("champion", evaluation.get("champion_model"))):
        if not described:
            continue
        framework = described.get("framework") or {}
        library = " ".join(str(v) for v in (framework.get("name"), framework.get("version")) if v)
        rows.append(
            (
                "",
                f"<td>{escape(name)}</td><td>{escape(described.get('task', ''))}</td>"
                f"<td>{escape(described.get('flavor', ''))}</td><td>{escape(described.get('format', ''))}</td>"
                f"<td>{escape(library)}</td><td>{escape(described.get('model_type', ''))}</td>",
            )
        )
    if rows:
        text += _table(["model", "task", "flavor", "format", "framework", "model type"], rows)
    else:
        text += _missing("The evaluation does not say which model flavor it scored (an earlier release).")
    if evaluation.get("champion_mismatch"):
        text += (
            f'<p class="fail">The champion cannot be compared with the candidate: '
            f"{escape(evaluation['champion_mismatch'])}.</p>"
        )
    return _section("model", "Model", text)


def _context(context: Mapping[str, str] | None) -> str:
    if not context:
        return ""
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in context.items())
    return f'<dl class="context">{rows}</dl>'


def _gates_section(evaluation: Mapping[str, Any]) -> str:
    gates = (evaluation.get("gates") or {}).get("gates") or []
    if not gates:
        return _section("gates", "Gates", _missing("No evaluation gates configured."))
    rows = [
        (
            "" if g.get("passed") else "failed",
            f"<td>{escape(g.get('name'))}</td><td>{escape(g.get('kind'))}</td>"
            f"<td>{escape(g.get('metric'))}</td>{_cell(g.get('value'))}{_cell(g.get('threshold'))}"
            f"<td>{_tag('passed', 'passed') if g.get('passed') else _tag('failed', 'FAILED')}</td>"
            f"<td>{escape(g.get('reason'))}</td>",
        )
        for g in gates
    ]
    headers = ["gate", "kind", "metric", "measured", "threshold", "result", "reason"]
    return _section("gates", "Gates", _table(headers, rows))


def _metrics_section(evaluation: Mapping[str, Any]) -> str:
    metrics = evaluation.get("metrics") or {}
    champion = evaluation.get("champion_metrics")
    version = evaluation.get("champion_version")
    headers = ["metric", "candidate"]
    if champion is not None:
        headers += [f"champion (version {version})", "candidate - champion"]
    headers.append("better")
    rows = []
    order = {name: i for i, name in enumerate(METRIC_NAMES)}
    for name in sorted(set(metrics) | set(champion or {}), key=lambda n: (order.get(n, len(order)), n)):
        cells = f"<td>{escape(name)}</td>{_cell(metrics.get(name))}"
        if champion is not None:
            a, b = metrics.get(name), champion.get(name)
            diff = a - b if isinstance(a, int | float) and isinstance(b, int | float) else None
            cells += f"{_cell(b)}{_cell(diff)}"
        info = METRICS.get(name)
        cells += f"<td>{escape('' if info is None else 'higher' if info.higher_is_better else 'lower')}</td>"
        rows.append(("", cells))
    note = "" if champion is not None else _missing("No champion was scored: the candidate's metrics alone.")
    return _section("metrics", "Metrics on the holdout", _table(headers, rows) + note)


def _thresholds_section(evaluation: Mapping[str, Any]) -> str:
    task = _task(evaluation)
    if task != "binary":
        how = (
            "the predicted class is the most probable one"
            if task == "multiclass"
            else "its predictions are values"
        )
        return _section(
            "thresholds",
            "Operating thresholds",
            _missing(
                f"None: an operating threshold applies to binary models; this is a {task} model ({how})."
            ),
        )
    rows = [
        (
            "",
            f"<td>candidate</td>{_cell(evaluation.get('threshold'))}"
            f"<td>{escape(_source(evaluation.get('threshold_source')))}</td>",
        )
    ]
    if evaluation.get("champion_threshold") is not None:
        rows.append(
            (
                "",
                f"<td>champion</td>{_cell(evaluation.get('champion_threshold'))}"
                f"<td>{escape(_source(evaluation.get('champion_threshold_source')))}</td>",
            )
        )
    text = (
        "<p>Each model is scored at its own operating threshold (positive where score &gt;= threshold).</p>"
    )
    return _section(
        "thresholds", "Operating thresholds", text + _table(["model", "threshold", "source"], rows)
    )


def _source(source: Any) -> str:
    if source == "model":
        return "stored with the model"
    if source == "fallback":
        return "the evaluation's fallback (the model stores none)"
    return str(source)


def _plots_section(curves: Mapping[str, Any] | None) -> str:
    if not curves:
        return _section("plots", "Plots", _missing("No scores were handed to the report: no plots."))
    named = [(n, curves[n]) for n in ("candidate", "champion") if curves.get(n)]
    task = next((str(c["task"]) for _, c in named if c.get("task")), "binary")
    if task == "multiclass":
        parts = []
        for name, c in named:
            parts.append(f"<h3>{escape(name)}</h3>")
            parts.append(
                f'<div class="feature-body"><figure>{_class_matrix_svg(name, c)}</figure>'
                f"<div>{_class_table(c)}</div></div>"
            )
        return _section("plots", "Plots", "".join(parts))
    if task == "regression":
        parts = []
        for name, c in named:
            parts.append(f"<h3>{escape(name)}</h3>")
            parts.append(
                f'<div class="feature-body"><figure>{_residual_svg(name, c)}</figure>'
                f"<figure>{_residual_histogram_svg(name, c)}</figure></div>"
            )
        return _section("plots", "Plots", "".join(parts))
    roc = [
        (n, f"{n} (AUC {c['roc']['auc']:.4f})", c["roc"]["fpr"], c["roc"]["tpr"])
        for n, c in named
        if c["roc"]
    ]
    pr = [
        (n, f"{n} (AP {c['pr']['average_precision']:.4f})", c["pr"]["recall"], c["pr"]["precision"])
        for n, c in named
        if c["pr"]
    ]
    parts = [
        '<div class="feature-body">',
        f"<figure>{_curve_svg('ROC curve', 'false positive rate', 'true positive rate', roc)}</figure>",
        f"<figure>{_curve_svg('Precision-recall curve', 'recall', 'precision', pr)}</figure>",
        "</div>",
    ]
    for name, c in named:
        parts.append(f"<h3>{escape(name)}</h3>")
        parts.append(
            f'<div class="feature-body"><figure>{_histogram_svg(name, c)}</figure>'
            f"<figure>{_confusion_svg(name, c)}</figure></div>"
        )
    return _section("plots", "Plots", "".join(parts))


def _fairness_section(fairness: Mapping[str, Any] | None) -> str:
    if not fairness:
        return ""
    if _task(fairness) == "binary":
        head = (
            f"<p>Scored at threshold {escape(format_value(fairness.get('threshold')))}; a slice needs "
            f"{escape(format_value(fairness.get('min_slice_rows')))} rows and "
            f"{escape(format_value(fairness.get('min_slice_positives')))} positives to count.</p>"
        )
    else:
        head = (
            f"<p>A {escape(_task(fairness))} model; a slice needs "
            f"{escape(format_value(fairness.get('min_slice_rows')))} rows to count.</p>"
        )
    parts = [head]
    for column in fairness.get("columns") or []:
        parts.append(f"<h3>by {escape(column.get('column'))}</h3>")
        if column.get("error"):
            parts.append(f'<p class="fail">{escape(column["error"])}</p>')
        slices = column.get("slices") or []
        metric_names = sorted({m for s in slices for m in (s.get("metrics") or {})})
        counts = [k for k in ("positives", "classes") if any(k in s for s in slices)]
        rows = [
            (
                "failed" if s.get("excluded") else "",
                f"<td>{escape(s.get('slice'))}</td>{_cell(s.get('rows'))}"
                + "".join(_cell(s.get(k)) for k in counts)
                + "".join(_cell((s.get("metrics") or {}).get(m)) for m in metric_names)
                + f"<td>{escape(_excluded(s.get('excluded')))}</td>",
            )
            for s in slices
        ]
        if rows:
            parts.append(_table(["slice", "rows", *counts, *metric_names, "excluded"], rows))
        if column.get("gaps"):
            parts.append(f"<pre>{escape(json.dumps(column['gaps'], indent=2, default=str))}</pre>")
    return _section("fairness", "Fairness", "".join(parts))


def _excluded(excluded: Any) -> str:
    if not excluded:
        return ""
    if isinstance(excluded, Mapping):
        return "; ".join(f"{k}: {v}" for k, v in excluded.items())
    if isinstance(excluded, list | tuple):
        return ", ".join(map(str, excluded))
    return str(excluded)


def _robustness_section(robustness: Mapping[str, Any] | None) -> str:
    if not robustness:
        return ""
    entries = robustness.get("perturbations") or []
    metric_names = sorted({m for e in entries for m in (e.get("metrics") or {})})
    rows = [
        (
            "failed" if e.get("error") else "",
            f"<td>{escape(e.get('perturbation'))}</td><td>{escape(', '.join(map(str, e.get('columns') or [])))}</td>"
            + "".join(
                f"{_cell((e.get('metrics') or {}).get(m))}{_cell((e.get('change') or {}).get(m))}"
                for m in metric_names
            )
            + f"<td>{escape(e.get('error') or '')}</td>",
        )
        for e in entries
    ]
    headers = ["perturbation", "columns"]
    for m in metric_names:
        headers += [m, f"{m} change"]
    content = _table([*headers, "error"], rows) if rows else _missing("No perturbation ran.")
    return _section("robustness", "Robustness", content)


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
    heading = title or "Evaluation report"
    return html_page(
        heading,
        [
            _banner(evaluation),
            _context(context),
            _model_section(evaluation),
            _gates_section(evaluation),
            _metrics_section(evaluation),
            _thresholds_section(evaluation),
            _plots_section(curves),
            _fairness_section(evaluation.get("fairness")),
            _robustness_section(evaluation.get("robustness")),
        ],
    )
