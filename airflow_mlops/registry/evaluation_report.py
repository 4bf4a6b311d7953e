"""The evaluation stage's report as one self-contained HTML page, for a person to read.

:func:`score_curves` turns one model's holdout scores into what the page plots (ROC and
precision-recall curves downsampled to at most :data:`MAX_CURVE_POINTS` points, the score
histograms of positives and negatives, the confusion matrix at the operating threshold), so the
raw scores never travel further than the function that scored them. :func:`render_evaluation_report`
draws the page: the verdict, every gate (metric, measured value, threshold, result), the
candidate's metrics beside the champion's, the operating thresholds, the plots (inline SVG), and
the fairness and robustness details when those checks ran.

Like the drift report (:mod:`airflow_mlops.drift.html`, whose page pieces and SVG helpers this
module reuses) the page loads nothing and runs no script, and every string from the data (gate
names, reasons, slice labels, the caller's context) is escaped. numpy is imported inside the
functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MAX_CURVE_POINTS", "render_evaluation_report", "roc_points", "score_curves"]

#: A plotted curve keeps at most this many points (the first and last always among them).
MAX_CURVE_POINTS = 200
#: Bins of the score histograms, over [0, 1].
HISTOGRAM_BINS = 40

_COLORS = {"candidate": REFERENCE_COLOR, "champion": CURRENT_COLOR}
_PLOT = 300  # side of a square plot area, in px
_PAD = 40


# --- curves ----------------------------------------------------------------------------------


def _labels_scores(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    y = np.asarray(y_true).astype(np.int64)
    score = np.asarray(y_score, dtype=np.float64)
    if y.ndim != 1 or y.shape != score.shape:
        raise DataError(f"labels and scores must be 1-D and of one length, got {y.shape} and {score.shape}")
    if not np.isfinite(score).all():
        raise DataError(f"{int((~np.isfinite(score)).sum())} score(s) are NaN or infinite")
    return y, score


def _cumulative(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true positives, false positives, score) at each distinct score, from high to low (ties together)."""
    import numpy as np

    order = np.argsort(-score, kind="mergesort")
    sorted_score, sorted_y = score[order], y[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(sorted_score)), len(y) - 1]
    tps = np.cumsum(sorted_y)[last_of_run]
    fps = last_of_run + 1 - tps
    return tps, fps, sorted_score[last_of_run]


def roc_points(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The full ROC curve: ``(fpr, tpr, thresholds)`` at every distinct score, from (0, 0) to (1, 1).

    The first point is (0, 0) with threshold ``inf``, as ``sklearn.metrics.roc_curve(...,
    drop_intermediate=False)`` returns it.

    :raises DataError: mismatched inputs, non-finite scores, or a single class (no curve).
    """
    import numpy as np

    y, score = _labels_scores(y_true, y_score)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise DataError("the ROC curve needs both classes in the holdout")
    tps, fps, thresholds = _cumulative(y, score)
    fpr = np.r_[0.0, fps / (len(y) - n_pos)]
    tpr = np.r_[0.0, tps / n_pos]
    return fpr, tpr, np.r_[np.inf, thresholds]


def _downsample(xs: np.ndarray, ys: np.ndarray, max_points: int) -> tuple[list[float], list[float]]:
    """At most ``max_points`` evenly spaced points of the curve, its first and last among them."""
    import numpy as np

    if len(xs) > max_points:
        keep = np.unique(np.round(np.linspace(0, len(xs) - 1, max_points)).astype(np.int64))
        xs, ys = xs[keep], ys[keep]
    return [float(x) for x in xs], [float(v) for v in ys]


def score_curves(
    y_true: Any, y_score: Any, *, threshold: float, max_points: int = MAX_CURVE_POINTS
) -> dict[str, Any]:
    """What the report plots of one model's holdout scores (JSON-safe, bounded in size).

    ``roc`` (``fpr``, ``tpr`` and the ``auc`` of the full curve), ``pr`` (``recall``,
    ``precision`` and the ``average_precision`` of the full curve; the curve starts at recall 0,
    precision 1 as scikit-learn's does), each downsampled to at most ``max_points`` points (None
    with a single class); ``histogram`` (``edges`` over [0, 1] and the counts of ``positives``
    and ``negatives``); ``confusion`` (``tp``, ``fp``, ``fn``, ``tn`` predicting positive where
    ``score >= threshold``); ``threshold``; ``rows``.

    :raises DataError: mismatched inputs or non-finite scores.
    """
    import numpy as np

    if max_points < 2:
        raise ValueError(f"max_points must be at least 2 (the curve's ends), got {max_points}")
    y, score = _labels_scores(y_true, y_score)
    positive = y == 1
    n_pos = int(positive.sum())
    roc: dict[str, Any] | None = None
    pr: dict[str, Any] | None = None
    if 0 < n_pos < len(y):
        fpr, tpr, _ = roc_points(y, score)
        fpr_s, tpr_s = _downsample(fpr, tpr, max_points)
        roc = {
            "fpr": fpr_s,
            "tpr": tpr_s,
            "auc": float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)),
            "points": len(fpr),
        }
        tps, fps, _ = _cumulative(y, score)
        recall = np.r_[0.0, tps / n_pos]
        precision = np.r_[1.0, tps / (tps + fps)]
        average_precision = float(np.sum(np.diff(recall) * precision[1:]))
        recall_s, precision_s = _downsample(recall, precision, max_points)
        pr = {
            "recall": recall_s,
            "precision": precision_s,
            "average_precision": average_precision,
            "points": len(recall),
        }
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    clipped = np.clip(score, 0.0, 1.0)
    predicted = score >= threshold
    return {
        "threshold": float(threshold),
        "rows": len(y),
        "roc": roc,
        "pr": pr,
        "histogram": {
            "edges": [float(e) for e in edges],
            "positives": [int(c) for c in np.histogram(clipped[positive], bins=edges)[0]],
            "negatives": [int(c) for c in np.histogram(clipped[~positive], bins=edges)[0]],
        },
        "confusion": {
            "tp": int(np.sum(predicted & positive)),
            "fp": int(np.sum(predicted & ~positive)),
            "fn": int(np.sum(~predicted & positive)),
            "tn": int(np.sum(~predicted & ~positive)),
        },
    }


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
        f"{escape(format_value(evaluation.get('holdout_rows')))} rows, "
        f"{escape(format_value(evaluation.get('positive_rows')))} positive.</p>"
        f"{f'<ul>{items}</ul>' if items else ''}</div>"
    )


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
    rows = []
    for name in sorted(set(metrics) | set(champion or {})):
        cells = f"<td>{escape(name)}</td>{_cell(metrics.get(name))}"
        if champion is not None:
            a, b = metrics.get(name), champion.get(name)
            diff = a - b if isinstance(a, int | float) and isinstance(b, int | float) else None
            cells += f"{_cell(b)}{_cell(diff)}"
        rows.append(("", cells))
    note = "" if champion is not None else _missing("No champion was scored: the candidate's metrics alone.")
    return _section("metrics", "Metrics on the holdout", _table(headers, rows) + note)


def _thresholds_section(evaluation: Mapping[str, Any]) -> str:
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
    parts = [
        f"<p>Scored at threshold {escape(format_value(fairness.get('threshold')))}; a slice needs "
        f"{escape(format_value(fairness.get('min_slice_rows')))} rows and "
        f"{escape(format_value(fairness.get('min_slice_positives')))} positives to count.</p>"
    ]
    for column in fairness.get("columns") or []:
        parts.append(f"<h3>by {escape(column.get('column'))}</h3>")
        if column.get("error"):
            parts.append(f'<p class="fail">{escape(column["error"])}</p>')
        slices = column.get("slices") or []
        metric_names = sorted({m for s in slices for m in (s.get("metrics") or {})})
        rows = [
            (
                "failed" if s.get("excluded") else "",
                f"<td>{escape(s.get('slice'))}</td>{_cell(s.get('rows'))}{_cell(s.get('positives'))}"
                + "".join(_cell((s.get("metrics") or {}).get(m)) for m in metric_names)
                + f"<td>{escape(_excluded(s.get('excluded')))}</td>",
            )
            for s in slices
        ]
        if rows:
            parts.append(_table(["slice", "rows", "positives", *metric_names, "excluded"], rows))
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
            _gates_section(evaluation),
            _metrics_section(evaluation),
            _thresholds_section(evaluation),
            _plots_section(curves),
            _fairness_section(evaluation.get("fairness")),
            _robustness_section(evaluation.get("robustness")),
        ],
    )
