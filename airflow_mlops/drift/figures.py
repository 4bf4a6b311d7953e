"""The figures of a drift report, as small self-contained SVG documents.

The same functions draw the plots inlined in :func:`airflow_mlops.drift.html.render_html` and the
files that :func:`write_figures` writes for MLflow (whose artifact viewer previews ``.svg`` files
as images, like ``.png``). They are drawn with the shared builders of
:mod:`airflow_mlops.reports` (:mod:`~airflow_mlops.reports.svg`,
:mod:`~airflow_mlops.reports.figures`): every SVG is a complete XML document on its own, uses
presentation attributes rather than a stylesheet, holds no script and no link, and every string
from data (feature names, categories, test names) is escaped, so a hostile category such as
``<script>`` is shown as text and never parsed as markup.

Figures:

* :func:`distribution_svg`: reference against current distribution of one feature -- an overlaid
  histogram for numeric features (reference as a filled area, current as a step line; the bins are
  the reference's quantiles, drawn equal-width, so the reference is about flat and drift shows as
  the current line leaving it), grouped horizontal bars for categorical ones
  (:func:`airflow_mlops.reports.figures.distribution_svg`, after checking the report's histogram).
* :func:`statistics_svg`: one panel per test, a bar per feature against the test's threshold.
  Distances are drawn as they are; p-value tests as ``-log10(adjusted p)`` against
  ``-log10(alpha)``, so in every panel "the bar passes the marker" means drift.
* :func:`history_svg`: the share of drifted features per window, then a small line chart per
  feature of its main statistic (see :func:`main_test`) over the windows.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_mlops.drift.report import DriftReport, FeatureDrift, TestResult
from airflow_mlops.exceptions import DriftInputError
from airflow_mlops.reports import figures as report_figures
from airflow_mlops.reports.figures import DISTRIBUTION_WIDTH, MAX_CATEGORIES
from airflow_mlops.reports.style import (
    ALARM_COLOR,
    CURRENT_COLOR,
    DRIFT_COLOR,
    GRID_COLOR,
    MUTED_COLOR,
    NEUTRAL_COLOR,
    OK_COLOR,
    REFERENCE_COLOR,
    TEXT_COLOR,
)
from airflow_mlops.reports.svg import document, element, group, nice_ticks, num, placeholder, text
from airflow_mlops.reports.text import axis_number, clip, escape, format_value, percent, short_time

__all__ = [
    "ALARM_COLOR",
    "CURRENT_COLOR",
    "DRIFT_COLOR",
    "GRID_COLOR",
    "MAX_CATEGORIES",
    "MAX_THRESHOLD_MULTIPLE",
    "MUTED_COLOR",
    "NEUTRAL_COLOR",
    "OK_COLOR",
    "REFERENCE_COLOR",
    "TEXT_COLOR",
    "coerce_history",
    "distribution_svg",
    "drift_share",
    "escape",
    "feature_distribution_svg",
    "format_value",
    "history_svg",
    "main_test",
    "prediction_classes_svg",
    "prediction_svg",
    "statistics_svg",
    "verdict",
    "write_figures",
]

log = logging.getLogger(__name__)

#: Bars of the statistics chart stop at this multiple of the largest threshold (the label still
#: gives the exact value), so one extreme feature does not flatten every other bar.
MAX_THRESHOLD_MULTIPLE = 10.0

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


# --- report helpers shared with the HTML page ------------------------------------------------


def verdict(report: DriftReport) -> tuple[str, str]:
    """``(css class, label)`` of a report's verdict: the data-quality alarm wins over drift."""
    if report.quality_failed:
        return "alarm", "data-quality alarm"
    if report.drifted:
        return "drift", "drift"
    return "ok", "no drift"


def drift_share(report: DriftReport) -> float | None:
    """Share of features whose univariate verdict is drift (None when no feature was tested)."""
    if not report.features:
        return None
    return len(report.drifted_features) / len(report.features)


def main_test(feature: FeatureDrift) -> TestResult | None:
    """The test whose statistic stands for ``feature`` in the history chart.

    The first distance test (PSI, Wasserstein, Jensen-Shannon) when the feature has one:
    distances keep their meaning across windows of different sizes, while p-values of large
    windows all fall to about zero. Otherwise the first test that ran; None when none did.
    """
    for test in feature.tests:
        if test.p_value is None:
            return test
    return feature.tests[0] if feature.tests else None


def coerce_history(history: Sequence[DriftReport | Mapping[str, Any]]) -> list[DriftReport]:
    """Earlier reports, oldest first, as :class:`DriftReport`; ``to_dict()`` mappings are rebuilt.

    :raises DriftInputError: an entry is neither a report nor a mapping that rebuilds into one.
    """
    if isinstance(history, str | bytes | Mapping):
        raise DriftInputError(
            f"history must be a sequence of earlier drift reports (oldest first), got a "
            f"{type(history).__name__}; pass a list of DriftReport objects or their to_dict() output"
        )
    reports: list[DriftReport] = []
    for index, entry in enumerate(history):
        if isinstance(entry, DriftReport):
            reports.append(entry)
        elif isinstance(entry, Mapping):
            try:
                reports.append(DriftReport.from_dict(entry))
            except (KeyError, TypeError, ValueError) as exc:
                raise DriftInputError(
                    f"history entry {index} is not a drift report ({type(exc).__name__}: {exc}); "
                    f"pass DriftReport objects or the unchanged output of DriftReport.to_dict()"
                ) from exc
        else:
            raise DriftInputError(
                f"history entry {index} is a {type(entry).__name__}, not a drift report; pass "
                f"DriftReport objects or the unchanged output of DriftReport.to_dict()"
            )
    return reports


# --- distributions ---------------------------------------------------------------------------


def _floats(values: Any, what: str, owner: str) -> list[float]:
    if not isinstance(values, list | tuple):
        raise DriftInputError(
            f"histogram {what} of {owner} is a {type(values).__name__}, expected a list of numbers; "
            f"the report was not produced by detect_drift or was edited"
        )
    out = []
    for value in values:
        if value is None:
            out.append(math.nan)
            continue
        try:
            out.append(float(value))
        except (TypeError, ValueError) as exc:
            raise DriftInputError(
                f"histogram {what} of {owner} holds {value!r}, not a number; the report was not "
                f"produced by detect_drift or was edited"
            ) from exc
    return out


def _checked(name: str, histogram: Mapping[str, Any]) -> dict[str, Any]:
    """The histogram of a report as plain lists of floats, or :class:`DriftInputError`."""
    owner = f"feature {name!r}"
    reference = _floats(histogram.get("reference"), "reference", owner)
    current = _floats(histogram.get("current"), "current", owner)
    if "edges" in histogram:
        edges = _floats(histogram.get("edges"), "edges", owner)
        if len(edges) != len(reference) + 1 or len(current) != len(reference):
            raise DriftInputError(
                f"histogram of {owner} has {len(edges)} edges, {len(reference)} reference and "
                f"{len(current)} current proportions; expected n+1 edges and n proportions each"
            )
        return {"edges": edges, "reference": reference, "current": current}
    categories = histogram.get("categories")
    if not isinstance(categories, list | tuple):
        raise DriftInputError(
            f"histogram categories of {owner} is a {type(categories).__name__}, expected a list"
        )
    if not len(categories) == len(reference) == len(current):
        raise DriftInputError(
            f"histogram of {owner} has {len(categories)} categories, {len(reference)} reference "
            f"and {len(current)} current proportions; expected one proportion per category each"
        )
    return {"categories": [str(c) for c in categories], "reference": reference, "current": current}


def distribution_svg(
    name: str,
    kind: str,
    histogram: Mapping[str, Any],
    *,
    drifted: bool = False,
    caption: str = "bins: the reference's quantiles, drawn equal-width",
) -> str:
    """Reference against current distribution of one feature (or of the champion's scores).

    ``histogram`` is :attr:`FeatureDrift.histogram`: ``{"edges", "reference", "current"}`` for
    numeric data, ``{"categories", "reference", "current"}`` for categorical data. An empty
    mapping draws a "no histogram" placeholder. ``caption`` goes under a numeric histogram.

    :raises DriftInputError: the histogram has another shape or lists of mismatched lengths.
    """
    if histogram and "edges" not in histogram and "categories" not in histogram:
        raise DriftInputError(
            f"histogram of feature {name!r} has keys {sorted(str(k) for k in histogram)}; expected "
            f"edges/reference/current (numeric) or categories/reference/current (categorical)"
        )
    return report_figures.distribution_svg(
        name,
        _checked(name, histogram) if histogram else {},
        note=f"{kind} \u00b7 {'DRIFT' if drifted else 'ok'}",
        flagged=drifted,
        caption=caption,
    )


def feature_distribution_svg(feature: FeatureDrift) -> str:
    """:func:`distribution_svg` of one feature of a report."""
    return distribution_svg(feature.name, feature.kind, feature.histogram, drifted=feature.drifted)


# --- statistics ------------------------------------------------------------------------------


def _score(test: TestResult) -> tuple[float, float, str]:
    """``(bar value, threshold, label)``: distances as they are, p-values as ``-log10``."""
    if test.p_value is None:
        return test.statistic, test.threshold, format_value(test.statistic)
    p = test.adjusted_p_value if test.adjusted_p_value is not None else test.p_value
    prefix = "adj p=" if test.adjusted_p_value is not None else "p="
    alpha = test.threshold
    threshold = -math.log10(alpha) if 0 < alpha < 1 else math.nan
    if math.isnan(p):
        return math.nan, threshold, f"{prefix}NaN"
    value = math.inf if p <= 0 else -math.log10(min(p, 1.0))
    return value, threshold, prefix + format_value(p)


def _test_caption(test_name: str, tests: Sequence[TestResult]) -> str:
    if tests and tests[0].p_value is not None:
        adjusted = any(t.adjusted_p_value is not None for t in tests)
        what = "adjusted p-value" if adjusted else "p-value"
        return f"{test_name}: -log10({what}); drift right of the marker (p < alpha)"
    return f"{test_name}: statistic; drift at or right of the marker (threshold)"


def statistics_svg(features: Sequence[FeatureDrift]) -> str:
    """One panel per test, one bar per feature (largest first) against the test's threshold."""
    label = "drift statistic per feature against its threshold"
    panels: dict[str, list[tuple[FeatureDrift, TestResult]]] = {}
    for feature in features:
        for test in feature.tests:
            panels.setdefault(test.test, []).append((feature, test))
    width = 660
    if not panels:
        return placeholder(width, 60, label, "no feature was tested", "statistics")
    left, value_w, right = 170.0, 96.0, 10.0
    plot_w = width - left - value_w - right
    row_h, header_h, gap = 15.0, 44.0, 16.0
    body: list[str] = []
    y0 = 6.0
    for test_name, entries in panels.items():
        scored = [(f, t, *_score(t)) for f, t in entries]
        scored.sort(key=lambda e: (math.isnan(e[2]), -e[2] if not math.isnan(e[2]) else 0.0))
        finite = [s for _, _, s, _, _ in scored if math.isfinite(s)]
        thresholds = [th for _, _, _, th, _ in scored if math.isfinite(th)]
        top_value = max(finite + thresholds, default=0.0)
        if thresholds and max(thresholds) > 0:
            top_value = min(top_value, max(thresholds) * MAX_THRESHOLD_MULTIPLE)
        ticks = nice_ticks(top_value)
        x_max = ticks[-1]

        def x_of(value: float, x_max: float = x_max) -> float:
            return left + max(0.0, min(value, x_max)) / x_max * plot_w

        panel: list[str] = [
            text(8, y0 + 14, _test_caption(test_name, [t for _, t in entries]), font_weight="bold")
        ]
        top = y0 + header_h
        bottom = top + row_h * len(scored)
        grid = "".join(f"M{num(x_of(t))} {num(top - 4)}V{num(bottom)}" for t in ticks)
        panel.append(element("path", d=grid, stroke=GRID_COLOR))
        tick_labels = [text(x_of(t), top - 8, axis_number(t)) for t in ticks]
        panel.append(group(tick_labels, fill=MUTED_COLOR, text_anchor="middle"))
        names, bars, marks, value_labels = [], [], [], []
        for i, (feature, test, value, threshold, value_label) in enumerate(scored):
            y = top + i * row_h
            verdict_word = "DRIFT" if test.drifted else "ok"
            tip = f"{feature.name}: {test.test} {value_label}, threshold {format_value(test.threshold)} ({verdict_word})"
            color = DRIFT_COLOR if test.drifted else None
            if math.isnan(value):  # no bar to hover: the name carries the tooltip
                names.append(text(left - 6, y + 11, clip(feature.name, 24), tooltip=tip, fill=color))
            else:
                names.append(text(left - 6, y + 11, clip(feature.name, 24), fill=color))
                bars.append(
                    element(
                        "rect",
                        tip,
                        x=left,
                        y=y + 2,
                        width=max(x_of(value) - left, 0.0),
                        height=row_h - 4,
                        fill=color,
                    )
                )
            if math.isfinite(threshold):
                marks.append(f"M{num(x_of(threshold))} {num(y)}v{num(row_h)}")
            clipped = math.isinf(value) or (math.isfinite(value) and value > x_max)
            shown = ("\u00bb " if clipped else "") + ("n/a" if math.isnan(value) else value_label)
            value_labels.append(text(left + plot_w + 6, y + 11, shown))
        panel.append(group(names, text_anchor="end"))
        panel.append(group(bars, fill=REFERENCE_COLOR))
        if marks:
            panel.append(element("path", d="".join(marks), stroke=TEXT_COLOR, stroke_width=2))
        panel.append(group(value_labels, fill=MUTED_COLOR))
        panel.append(element("line", x1=left, y1=top - 4, x2=left, y2=bottom, stroke=MUTED_COLOR))
        body.append(group(panel, class_="panel", data_test=test_name))
        y0 = bottom + gap
    return document(width, y0, label, body, "statistics")


# --- history ---------------------------------------------------------------------------------

_VERDICT_COLORS = {"alarm": ALARM_COLOR, "drift": DRIFT_COLOR, "ok": OK_COLOR}


def history_svg(windows: Sequence[DriftReport]) -> str:
    """The share of drifted features per window, then one small line chart per feature.

    ``windows`` are the reports oldest first, the current one last. Each feature's chart shows
    its :func:`main_test` (chosen on the newest window that has the feature) in every window that
    ran it, with the threshold as a dashed line; a window without the feature leaves a gap.
    """
    label = "drift history over the recent windows"
    width = 720
    if not windows:
        return placeholder(width, 60, label, "no windows", "history")
    n = len(windows)
    body: list[str] = []
    # -- share of drifted features per window
    left, right, top, plot_h = 46.0, 16.0, 28.0, 90.0
    plot_w = width - left - right

    def x_of(i: int, left: float = left, plot_w: float = plot_w) -> float:
        return left + (plot_w / 2 if n == 1 else i * plot_w / (n - 1))

    base = top + plot_h
    body.append(text(8, 16, f"share of drifted features, {n} window(s), oldest first", font_weight="bold"))
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = base - tick * plot_h
        body.append(element("line", x1=left, y1=y, x2=left + plot_w, y2=y, stroke=GRID_COLOR))
        body.append(text(left - 4, y + 3.5, percent(tick), text_anchor="end", fill=MUTED_COLOR))
    points = []
    circles = []
    for i, report in enumerate(windows):
        share = drift_share(report)
        css, word = verdict(report)
        tip = (
            f"window {i + 1} ({report.created_at}): {word}, "
            f"{len(report.drifted_features)} of {len(report.features)} features drifted"
        )
        y = base - (share if share is not None else 0.0) * plot_h
        if share is not None:
            points.append(f"{num(x_of(i))},{num(y)}")
        circles.append(element("circle", tip, cx=x_of(i), cy=y, r=4, fill=_VERDICT_COLORS[css]))
    if len(points) > 1:
        body.append(
            element("polyline", points=" ".join(points), fill="none", stroke=NEUTRAL_COLOR, stroke_width=1.5)
        )
    body.append(group(circles, class_="windows"))
    labels = min(n, 12)
    shown = sorted({round(j * (n - 1) / (labels - 1)) for j in range(labels)}) if labels > 1 else [0]
    for i in shown:
        body.append(text(x_of(i), base + 13, str(i + 1), text_anchor="middle", fill=MUTED_COLOR))
    body.append(text(left, base + 27, short_time(windows[0].created_at), fill=MUTED_COLOR, font_size=10))
    if n > 1:
        body.append(
            text(
                left + plot_w,
                base + 27,
                short_time(windows[-1].created_at),
                text_anchor="end",
                fill=MUTED_COLOR,
                font_size=10,
            )
        )
    legend_x = left + plot_w - 250
    for j, (css, word) in enumerate(
        (("ok", "no drift"), ("drift", "drift"), ("alarm", "data-quality alarm"))
    ):
        x = legend_x + j * 70
        body.append(element("circle", cx=x, cy=12, r=4, fill=_VERDICT_COLORS[css]))
        body.append(text(x + 7, 15.5, word, fill=MUTED_COLOR))
    # -- one small chart per feature
    names: list[str] = []
    seen: set[str] = set()
    for report in (windows[-1], *windows[:-1]):
        for feature in report.features:
            if feature.name not in seen:
                seen.add(feature.name)
                names.append(feature.name)
    columns, cell_w, cell_h = 4, width / 4, 86.0
    grid_top = base + 44
    if names:
        body.append(
            text(
                8,
                grid_top + 4,
                "main statistic per feature over the windows (dashed: threshold)",
                font_weight="bold",
            )
        )
    for k, name in enumerate(names):
        cx0 = (k % columns) * cell_w
        cy0 = grid_top + 12 + (k // columns) * cell_h
        body.append(_feature_history(name, windows, cx0, cy0, cell_w, cell_h))
    rows = math.ceil(len(names) / columns)
    height = grid_top + 12 + rows * cell_h + 6 if names else base + 36
    return document(width, height, label, body, "history")


def _feature_history(
    name: str, windows: Sequence[DriftReport], x0: float, y0: float, cell_w: float, cell_h: float
) -> str:
    per_window = [next((f for f in report.features if f.name == name), None) for report in windows]
    newest = next(f for f in reversed(per_window) if f is not None)
    chosen = main_test(newest)
    test_name = chosen.test if chosen is not None else None
    # per window: (bar value, threshold, drifted, value label) or None (feature or test absent, NaN)
    values: list[tuple[float, float, bool, str] | None] = []
    for feature in per_window:
        test = feature.test(test_name) if feature is not None and test_name is not None else None
        if test is None:
            values.append(None)
            continue
        value, threshold, value_label = _score(test)
        values.append(None if math.isnan(value) else (value, threshold, test.drifted, value_label))
    drifted_now = bool(per_window[-1] is not None and per_window[-1].drifted)
    parts = [
        element(
            "rect",
            x=x0 + 4,
            y=y0,
            width=cell_w - 8,
            height=cell_h - 8,
            fill="#fbfbfc",
            stroke=DRIFT_COLOR if drifted_now else GRID_COLOR,
        ),
        text(
            x0 + 9,
            y0 + 13,
            clip(name, 22),
            tooltip=name,
            font_weight="bold",
            fill=DRIFT_COLOR if drifted_now else TEXT_COLOR,
        ),
        text(
            x0 + cell_w - 9,
            y0 + 13,
            test_name or "no test",
            text_anchor="end",
            fill=MUTED_COLOR,
            font_size=10,
        ),
    ]
    left, right, top, bottom = x0 + 12, x0 + cell_w - 12, y0 + 22, y0 + cell_h - 24
    present = [v for v in values if v is not None]
    thresholds = [v[1] for v in present if math.isfinite(v[1])]
    finite = [v[0] for v in present if math.isfinite(v[0])]
    top_value = max(finite + thresholds, default=0.0)
    if thresholds and max(thresholds) > 0:
        top_value = min(top_value, max(thresholds) * MAX_THRESHOLD_MULTIPLE)
    y_max = top_value * 1.08 if top_value > 0 else 1.0
    n = len(windows)

    def x_of(i: int) -> float:
        return (left + right) / 2 if n == 1 else left + i * (right - left) / (n - 1)

    def y_of(value: float) -> float:
        return bottom - max(0.0, min(value, y_max)) / y_max * (bottom - top)

    if thresholds:
        ty = y_of(thresholds[-1])
        parts.append(
            element(
                "path",
                d=f"M{num(left)} {num(ty)}H{num(right)}",
                stroke=DRIFT_COLOR,
                stroke_dasharray="3 2",
                stroke_opacity=0.7,
            )
        )
    parts.append(element("path", d=f"M{num(left)} {num(bottom)}H{num(right)}", stroke=GRID_COLOR))
    line: list[str] = []
    circles = []
    pen_down = False
    for i, entry in enumerate(values):
        if entry is None:
            pen_down = False
            continue
        value, _, drifted, value_label = entry
        x, y = x_of(i), y_of(value)
        line.append(f"{'L' if pen_down else 'M'}{num(x)} {num(y)}")
        pen_down = True
        # "#3: 0.12": the window number is the one of the chart above and of the history table
        tip = f"#{i + 1}: {value_label}{' DRIFT' if drifted else ''}"
        circles.append(element("circle", tip, cx=x, cy=y, r=2.8, fill=DRIFT_COLOR if drifted else None))
    if any(segment.startswith("L") for segment in line):  # a lone point draws no line
        parts.append(element("path", d="".join(line), fill="none", stroke=NEUTRAL_COLOR, stroke_width=1.3))
    parts.append(group(circles, fill=REFERENCE_COLOR))
    if values[-1] is not None:
        footer = f"this window: {values[-1][3]}"
        if math.isfinite(values[-1][1]) and chosen is not None:
            footer += f" \u00b7 threshold {format_value(chosen.threshold)}"
    elif present:
        footer = "not measured in this window"
    else:
        footer = ""
        parts.append(
            text((left + right) / 2, (top + bottom) / 2, "no values", text_anchor="middle", fill=MUTED_COLOR)
        )
    if footer:
        parts.append(text(x0 + 9, y0 + cell_h - 12, footer, fill=MUTED_COLOR, font_size=9))
    return group(parts, class_="feature", data_feature=name)


# --- files for MLflow ------------------------------------------------------------------------

_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


def _file_name(index: int, width: int, name: str) -> str:
    slug = _UNSAFE_FILE_CHARS.sub("_", name).strip("._")[:60] or "feature"
    return f"{index:0{width}d}_{slug}.svg"


def write_figures(
    report: DriftReport,
    out_dir: str | Path,
    *,
    history: Sequence[DriftReport | Mapping[str, Any]] = (),
) -> list[Path]:
    """Write the report's figures as SVG files under ``out_dir`` and return their paths.

    Layout (for ``MlflowClient.log_artifacts(run_id, out_dir, "drift/figures")``)::

        distributions/000_<feature>.svg   one per feature, in report order (the index keeps
                                          names that only differ in unsafe characters apart)
        prediction.svg                    the champion's score distribution (with prediction drift)
        prediction_classes.svg            a binary champion's predicted classes' shares (idem)
        statistics.svg                    the statistic of every test per feature, with thresholds
        history.svg                       ``history`` (oldest first) plus this report

    ``statistics.svg`` and ``history.svg`` are left out when the report tested no feature.
    Existing files of the same names are replaced; pass a fresh directory to log only these.

    :raises DriftInputError: a histogram or a history entry is malformed.
    """
    windows = [*coerce_history(history), report]
    out = Path(out_dir)
    figures: dict[Path, str] = {}
    width = max(3, len(str(max(len(report.features) - 1, 0))))
    for index, feature in enumerate(report.features):
        path = out / "distributions" / _file_name(index, width, feature.name)
        figures[path] = feature_distribution_svg(feature)
    if report.prediction is not None:
        figures[out / "prediction.svg"] = prediction_svg(report)
        if report.prediction.class_histogram:
            figures[out / "prediction_classes.svg"] = prediction_classes_svg(report)
    if report.features:
        figures[out / "statistics.svg"] = statistics_svg(report.features)
        figures[out / "history.svg"] = history_svg(windows)
    for path, svg in figures.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_XML_DECLARATION + str(svg), encoding="utf-8")  # str: Markup + text escapes
    log.info("Wrote %s drift figures under %s", len(figures), out)
    return list(figures)


def prediction_svg(report: DriftReport) -> str:
    """The champion's output, reference against current (a placeholder without one): the
    positive-class scores (binary), the predicted classes' shares (multiclass) or the predicted
    values (regression)."""
    prediction = report.prediction
    if prediction is None:
        return placeholder(
            DISTRIBUTION_WIDTH, 60, "prediction scores", "no prediction drift in this report", "distribution"
        )
    histogram = prediction.histogram
    kind = "categorical" if "categories" in histogram else "numeric"
    name = {"multiclass": "predicted classes", "regression": "predicted values"}.get(
        prediction.task, "prediction scores"
    )
    return distribution_svg(
        name, kind, histogram, drifted=prediction.drifted, caption="bins drawn equal-width"
    )


def prediction_classes_svg(report: DriftReport) -> str:
    """A binary champion's predicted classes' shares, reference against current ("" when the
    report has none: multiclass shares are :func:`prediction_svg` itself)."""
    prediction = report.prediction
    if prediction is None or not prediction.class_histogram:
        return ""
    drifted = any(t.drifted for t in prediction.class_tests)
    return distribution_svg("predicted classes", "categorical", prediction.class_histogram, drifted=drifted)
