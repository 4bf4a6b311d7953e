"""The figures of every report, as self-contained SVG documents (standard library only).

One drawer per kind of figure, whatever the report:

* :func:`histogram_svg`: series over shared bins -- translucent areas, step lines or bars side by
  side -- on equal-width bins (quantile bins) or a value axis, shares, counts or log-scaled
  counts, with vertical markers (thresholds, cuts, zero). The drift and validation
  distributions, the evaluation's score and residual histograms and the screen's score
  histograms are all this one function.
* :func:`category_bars_svg`: grouped horizontal bars per category (the largest
  :data:`MAX_CATEGORIES`, the rest summed into one bar).
* :func:`distribution_svg`: reference against current distribution of one column, numeric
  (:func:`histogram_svg`) or categorical (:func:`category_bars_svg`), from the histogram mapping
  the drift and validation reports record.
* :func:`curves_svg`: lines in the unit square (ROC and precision-recall curves).
* :func:`confusion_matrix_svg`: a confusion matrix of any size, each cell shaded by its share
  of its actual class.
* :func:`scatter_svg`: points against a value axis with a zero line (residuals).

Each returns a :class:`markupsafe.Markup` SVG document (:func:`airflow_mlops.reports.svg.document`);
every string from data is escaped and clipped, every number formatted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from airflow_mlops.reports.style import (
    CURRENT_COLOR,
    DRIFT_COLOR,
    GRID_COLOR,
    MUTED_COLOR,
    REFERENCE_COLOR,
    TEXT_COLOR,
)
from airflow_mlops.reports.svg import (
    document,
    element,
    group,
    heading,
    legend,
    legend_width,
    nice_ticks,
    num,
    placeholder,
    range_ticks,
    text,
)
from airflow_mlops.reports.text import axis_number, clip, format_value, percent

__all__ = [
    "DISTRIBUTION_WIDTH",
    "MAX_CATEGORIES",
    "Line",
    "Marker",
    "Series",
    "category_bars_svg",
    "confusion_matrix_svg",
    "curves_svg",
    "distribution_svg",
    "histogram_svg",
    "scatter_svg",
]

#: A categorical plot shows at most this many categories (the largest); the rest become one bar.
MAX_CATEGORIES = 40
#: The width of a distribution figure (two fit side by side with a table on a page).
DISTRIBUTION_WIDTH = 380


@dataclass(frozen=True)
class Series:
    """One series of a histogram or of category bars.

    :ivar values: one per bin or category; NaN (or None) where there is no value.
    :ivar style: ``area`` (a translucent filled outline), ``step`` (an outline) or ``bars``.
    :ivar tooltips: one text per bin for the hover tooltip (default: label and value).
    """

    label: str
    values: Sequence[float | None]
    color: str
    style: str = "bars"
    tooltips: Sequence[str] | None = None

    def floats(self) -> list[float]:
        return [math.nan if v is None else float(v) for v in self.values]


@dataclass(frozen=True)
class Marker:
    """A vertical line across a histogram at ``x`` (a threshold, a cut, zero)."""

    x: float
    label: str
    color: str = DRIFT_COLOR
    dashed: bool = False


@dataclass(frozen=True)
class Line:
    """One curve of :func:`curves_svg`: ``legend`` is its text in the legend and its tooltip."""

    legend: str
    xs: Sequence[float]
    ys: Sequence[float]
    color: str


# --- histograms ------------------------------------------------------------------------------


def _step_path(values: Sequence[float], x_of_bin: Callable[[int], float], y_of: Any, base: float) -> str:
    """The outline of a histogram as one path: a run of finite bins, closed down to ``base``."""
    path: list[str] = []
    open_run = False
    for i, value in enumerate(values):
        if not math.isfinite(value):
            if open_run:
                path.append(f"V{num(base)}")
                open_run = False
            continue
        if not open_run:
            path.append(f"M{num(x_of_bin(i))} {num(base)}")
            open_run = True
        path.append(f"V{num(y_of(value))}H{num(x_of_bin(i + 1))}")
    if open_run:
        path.append(f"V{num(base)}")
    return "".join(path)


def _share_tip(value: float) -> str:
    return percent(value, 0.001) if math.isfinite(value) else "n/a"


def _count_tip(value: float) -> str:
    return format_value(int(value)) if math.isfinite(value) else "n/a"


def histogram_svg(
    edges: Sequence[float],
    series: Sequence[Series],
    *,
    label: str,
    title: str = "",
    note: str = "",
    flagged: bool = False,
    markers: Sequence[Marker] = (),
    equal_width: bool = False,
    y_scale: str = "share",
    caption: str = "",
    width: float = DISTRIBUTION_WIDTH,
    height: float = 196,
    css_class: str = "distribution",
) -> Markup:
    """Series over the bins ``edges`` (n+1 edges, n values per series).

    :param equal_width: draw every bin equally wide (bins cut at quantiles), labelled by their
        edges; else the x axis is the value, from the first edge to the last.
    :param y_scale: ``share`` (values are shares, ticks in percent), ``count``, or ``log``
        (counts on a log scale, so a thin tail stays visible).
    :param title: the figure's first line, with ``note`` on its right (red when ``flagged``).
    :param markers: vertical lines, e.g. a threshold (clamped into the drawn range).
    """
    n = len(edges) - 1
    if n < 1 or any(len(s.values) != n for s in series):
        return placeholder(width, 60, label, f"{clip(title or label, 40)}: no bins", css_class)
    values = [s.floats() for s in series]
    log = y_scale == "log"
    left, right, bottom = 46.0, 12.0, 38.0 if caption else 24.0
    top = 40.0 if title or len(series) > 1 else 16.0
    plot_w, plot_h = width - left - right, height - top - bottom
    base = top + plot_h
    finite = [v for vs in values for v in vs if math.isfinite(v)]
    peak = max(finite, default=0.0)
    if log:
        top_count = max(peak, 1.0)
        y_max = math.log1p(top_count)
        ticks = [10.0**k for k in range(int(math.log10(top_count)) + 1)]  # 1, 10, 100, ...
        step = 1.0
    else:
        ticks = nice_ticks(peak)
        y_max = ticks[-1]
        step = ticks[1] - ticks[0]
    lo, hi = float(edges[0]), float(edges[-1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        equal_width = True
    bin_w = plot_w / n

    def x_of(value: float) -> float:
        return left + (min(max(value, lo), hi) - lo) / (hi - lo) * plot_w

    def x_of_bin(i: int) -> float:
        return left + i * bin_w if equal_width else x_of(float(edges[i]))

    def y_of(value: float) -> float:
        shown = math.log1p(max(value, 0.0)) if log else max(0.0, min(value, y_max))
        return base - shown / y_max * plot_h

    def tick_label(t: float) -> str:
        if y_scale == "share":
            return percent(t, step)
        return f"{t:.0f}" if t == int(t) and abs(t) < 1e6 else axis_number(t)

    def x_at(value: float) -> float:
        """Where ``value`` lies on the x axis (within its bin, on equal-width bins)."""
        if not equal_width:
            return x_of(value)
        for i in range(n):
            a, b = float(edges[i]), float(edges[i + 1])
            if value <= b or i == n - 1:
                share = 0.0 if b <= a else min(max((value - a) / (b - a), 0.0), 1.0)
                return x_of_bin(i) + share * bin_w
        return x_of_bin(n)

    body = heading(title, note, width, flagged=flagged) if title else []
    if len(series) > 1 or title:
        items = [(s.label, s.color, s.style) for s in series]
        body += legend(width - right - legend_width(items), 31, items)
    grid = "".join(f"M{num(left)} {num(y_of(t))}H{num(left + plot_w)}" for t in ticks)
    body.append(element("path", d=grid, stroke=GRID_COLOR))
    labels = "".join(text(left - 4, y_of(t) + 3.5, tick_label(t)) for t in ticks)
    body.append(group([labels], fill=MUTED_COLOR, text_anchor="end"))
    bar_series = [i for i, s in enumerate(series) if s.style == "bars"]
    for k, (s, vs) in enumerate(zip(series, values, strict=True)):
        if s.style == "bars":
            slot = bar_series.index(k)
            share = bin_w / len(bar_series) if equal_width else None
            bars = []
            for i, v in enumerate(vs):
                if not math.isfinite(v) or v <= 0:
                    continue
                x0, x1 = x_of_bin(i), x_of_bin(i + 1)
                w = (x1 - x0) / len(bar_series) if share is None else share
                bars.append(
                    element(
                        "rect",
                        x=x0 + slot * w,
                        y=y_of(v),
                        width=max(w - (1.0 if w > 3 else 0.0), 0.5),
                        height=base - y_of(v),
                    )
                )
            body.append(group(bars, fill=s.color, fill_opacity=0.85 if len(bar_series) > 1 else None))
        else:
            path = _step_path(vs, x_of_bin, y_of, base)
            if not path:
                continue
            if s.style == "area":
                body.append(element("path", d=path, fill=s.color, fill_opacity=0.45))
            else:
                body.append(element("path", d=path, fill="none", stroke=s.color, stroke_width=1.8))
    missing = [s.label for s, vs in zip(series, values, strict=True) if not any(map(math.isfinite, vs))]
    if missing:
        body.append(
            text(
                left + plot_w / 2,
                top + plot_h / 2,
                f"{' and '.join(missing)}: no values",
                text_anchor="middle",
                fill=MUTED_COLOR,
            )
        )
    for marker in markers:
        mx = x_at(marker.x)
        body.append(
            element(
                "line",
                marker.label,
                x1=mx,
                y1=top - 6,
                x2=mx,
                y2=base,
                stroke=marker.color,
                stroke_width=2,
                stroke_dasharray="4 3" if marker.dashed else None,
            )
        )
    # one invisible column per bin, whose tooltip gives the bin and every series' value there
    tip_of = _share_tip if y_scale == "share" else _count_tip
    hover = []
    for i in range(n):
        parts = [
            s.tooltips[i] if s.tooltips is not None else f"{s.label} {tip_of(vs[i])}"
            for s, vs in zip(series, values, strict=True)
        ]
        x0, x1 = x_of_bin(i), x_of_bin(i + 1)
        tip = f"[{format_value(float(edges[i]))}, {format_value(float(edges[i + 1]))}) " + ", ".join(parts)
        hover.append(
            element("path", tip, d=f"M{num(x0)} {num(top)}h{num(max(x1 - x0, 0.5))}v{num(plot_h)}H{num(x0)}z")
        )
    body.append(group(hover, fill="#000", fill_opacity=0))
    body.append(element("line", x1=left, y1=base, x2=left + plot_w, y2=base, stroke=MUTED_COLOR))
    if equal_width:
        count = min(6, n + 1)
        shown = sorted({round(j * n / (count - 1)) for j in range(count)}) if count > 1 else [0]
        positions = [(x_of_bin(j), axis_number(float(edges[j])), j) for j in shown]
        anchors = {0: "start", n: "end"}
    else:
        ticks_x = range_ticks(lo, hi) if hi > lo else [lo]
        if len(ticks_x) < 2:
            ticks_x = [lo, hi]
        positions = [(x_of(t), axis_number(t), i) for i, t in enumerate(ticks_x)]
        anchors = {}
    positions = _spaced(positions, anchors, positions[-1][2]) if positions else positions
    marks = "".join(f"M{num(x)} {num(base)}v3" for x, _, _ in positions)
    body.append(element("path", d=marks, stroke=MUTED_COLOR))
    edge_labels = [
        text(x, base + 14, shown_text, text_anchor=anchors.get(j, "middle")) for x, shown_text, j in positions
    ]
    body.append(group(edge_labels, fill=MUTED_COLOR))
    if caption:
        body.append(
            text(left + plot_w / 2, height - 6, caption, text_anchor="middle", fill=MUTED_COLOR, font_size=10)
        )
    return document(width, height, label, body, css_class)


def _spaced(
    positions: list[tuple[float, str, int]], anchors: Mapping[int, str], last: int
) -> list[tuple[float, str, int]]:
    """The tick labels that do not overlap (about 6 px a character), the last one kept first."""

    def extent(x: float, label: str, j: int) -> tuple[float, float]:
        w = 6.0 * len(label) + 4
        anchor = anchors.get(j, "middle")
        return (x, x + w) if anchor == "start" else (x - w, x) if anchor == "end" else (x - w / 2, x + w / 2)

    kept: list[tuple[float, str, int]] = []
    for position in positions:
        if kept and extent(*kept[-1])[1] > extent(*position)[0]:
            if position[2] != last or len(kept) == 1:
                continue
            kept.pop()  # the last edge wins over the one before it
        kept.append(position)
    return kept


# --- categories ------------------------------------------------------------------------------


def category_bars_svg(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    label: str,
    title: str = "",
    note: str = "",
    flagged: bool = False,
    width: float = DISTRIBUTION_WIDTH,
    max_categories: int = MAX_CATEGORIES,
    css_class: str = "distribution",
) -> Markup:
    """Grouped horizontal bars: one row per category, one bar per series (shares).

    With more than ``max_categories`` categories the largest are shown and the rest summed into
    one ``(other N)`` bar. A series styled ``area`` is drawn translucent.
    """
    if not categories or any(len(s.values) != len(categories) for s in series):
        return placeholder(width, 60, label, f"{clip(title or label, 40)}: no categories", css_class)
    rows = [(str(c), [s.floats()[i] for s in series]) for i, c in enumerate(categories)]
    note_line = ""
    if len(rows) > max_categories:

        def size(row: tuple[str, list[float]]) -> float:
            return max((v for v in row[1] if math.isfinite(v)), default=-1.0)

        keep = set(sorted(range(len(rows)), key=lambda i: size(rows[i]), reverse=True)[:max_categories])
        rest = [rows[i] for i in range(len(rows)) if i not in keep]
        rows = [rows[i] for i in range(len(rows)) if i in keep]
        rows.append(
            (
                f"(other {len(rest)})",
                [math.fsum(r[1][k] for r in rest if math.isfinite(r[1][k])) for k in range(len(series))],
            )
        )
        note_line = f"{len(rest)} smaller categories summed into the last bar"
    left, right, top = 128.0, 14.0, 40.0 if title or len(series) > 1 else 12.0
    row_h = 20.0
    plot_w = width - left - right
    plot_h = row_h * len(rows)
    height = top + plot_h + (36 if note_line else 24)
    finite = [v for _, vs in rows for v in vs if math.isfinite(v)]
    ticks = nice_ticks(max(finite, default=0.0))
    x_max = ticks[-1]
    step = ticks[1] - ticks[0]
    base = top + plot_h
    bar_h = 14.0 / max(len(series), 1)

    def x_of(value: float) -> float:
        return left + max(0.0, min(value, x_max)) / x_max * plot_w

    body = heading(title, note, width, flagged=flagged) if title else []
    if len(series) > 1 or title:
        items = [(s.label, s.color, "area" if s.style == "area" else "bars") for s in series]
        body += legend(width - right - legend_width(items), 31, items)
    grid = "".join(f"M{num(x_of(t))} {num(top)}V{num(base)}" for t in ticks)
    body.append(element("path", d=grid, stroke=GRID_COLOR))
    tick_labels = [text(x_of(t), base + 13, percent(t, step)) for t in ticks]
    body.append(group(tick_labels, fill=MUTED_COLOR, text_anchor="middle"))
    names: list[str] = []
    bars: list[list[str]] = [[] for _ in series]
    hover: list[str] = []
    for i, (category, vs) in enumerate(rows):
        y = top + i * row_h
        names.append(text(left - 5, y + 13.5, clip(category, 20)))
        for k, v in enumerate(vs):
            if math.isfinite(v):
                bars[k].append(
                    element("rect", x=left, y=y + 3 + k * bar_h, width=x_of(v) - left, height=bar_h)
                )
        shares = ", ".join(f"{s.label} {_share_tip(v)}" for s, v in zip(series, vs, strict=True))
        hover.append(element("rect", f"{category}: {shares}", x=0, y=y, width=width, height=row_h))
    body.append(group(names, text_anchor="end"))
    for s, shapes in zip(series, bars, strict=True):
        body.append(group(shapes, fill=s.color, fill_opacity=0.45 if s.style == "area" else None))
    body.append(group(hover, fill="#000", fill_opacity=0))
    body.append(element("line", x1=left, y1=top, x2=left, y2=base, stroke=MUTED_COLOR))
    if note_line:
        body.append(text(left, height - 6, note_line, fill=MUTED_COLOR, font_size=10))
    return document(width, height, label, body, css_class)


def _shares(values: Any, what: str, owner: str) -> list[float]:
    if not isinstance(values, list | tuple):
        raise ValueError(
            f"histogram {what} of {owner} is a {type(values).__name__}, expected a list of numbers"
        )
    out = []
    for value in values:
        try:
            out.append(math.nan if value is None else float(value))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"histogram {what} of {owner} holds {value!r}, not a number") from exc
    return out


def distribution_svg(
    name: str,
    histogram: Mapping[str, Any],
    *,
    note: str = "",
    flagged: bool = False,
    caption: str = "bins: the reference's quantiles, drawn equal-width",
    reference: str = "reference",
    current: str = "current",
) -> Markup:
    """Reference against current distribution of one column (or of a model's output).

    ``histogram`` is ``{"edges", "reference", "current"}`` (numeric: n+1 edges, n shares each,
    bins drawn equal-width) or ``{"categories", "reference", "current"}`` (a share per
    category); a share may be None (that side lacks the column). An empty mapping draws a "no
    histogram recorded" placeholder. ``reference`` and ``current`` name the two sides.

    :raises ValueError: another shape, or lists of mismatched lengths.
    """
    label = f"{name}: {reference} vs {current} distribution"
    if not histogram:
        return placeholder(
            DISTRIBUTION_WIDTH, 60, label, f"{clip(name, 40)}: no histogram recorded", "distribution"
        )
    owner = f"feature {name!r}"
    ref = _shares(histogram.get("reference"), "reference", owner)
    cur = _shares(histogram.get("current"), "current", owner)
    if "edges" in histogram:
        edges = _shares(histogram.get("edges"), "edges", owner)
        if len(edges) != len(ref) + 1 or len(cur) != len(ref):
            raise ValueError(
                f"histogram of {owner} has {len(edges)} edges, {len(ref)} reference and "
                f"{len(cur)} current proportions; expected n+1 edges and n proportions each"
            )
        return histogram_svg(
            edges,
            [Series(reference, ref, REFERENCE_COLOR, "area"), Series(current, cur, CURRENT_COLOR, "step")],
            label=label,
            title=name,
            note=note,
            flagged=flagged,
            equal_width=True,
            caption=caption,
        )
    if "categories" in histogram:
        categories = histogram.get("categories")
        if not isinstance(categories, list | tuple):
            raise ValueError(
                f"histogram categories of {owner} is a {type(categories).__name__}, expected a list"
            )
        if not len(categories) == len(ref) == len(cur):
            raise ValueError(
                f"histogram of {owner} has {len(categories)} categories, {len(ref)} reference "
                f"and {len(cur)} current proportions; expected one proportion per category each"
            )
        return category_bars_svg(
            [str(c) for c in categories],
            [Series(reference, ref, REFERENCE_COLOR, "area"), Series(current, cur, CURRENT_COLOR, "bars")],
            label=label,
            title=name,
            note=note,
            flagged=flagged,
        )
    raise ValueError(
        f"histogram of {owner} has keys {sorted(str(k) for k in histogram)}; expected "
        f"edges/reference/current (numeric) or categories/reference/current (categorical)"
    )


# --- curves, matrices, points ----------------------------------------------------------------

_PLOT = 300.0  # side of the unit square, in px
_PAD = 40.0


def curves_svg(
    lines: Sequence[Line],
    *,
    label: str,
    x_label: str,
    y_label: str,
    diagonal: bool = False,
    empty: str = "no curve",
) -> Markup:
    """Lines in the unit square with a light grid every 0.25 and a legend below; ``diagonal``
    adds the dashed chance line (ROC). No line: a placeholder saying ``empty``."""
    width, height = _PAD + _PLOT + 20, _PAD / 2 + _PLOT + 40 + 16 * len(lines)
    if not lines:
        return placeholder(width, 80, label, empty, "curve")

    def xy(x: float, y: float) -> str:
        return f"{num(_PAD + x * _PLOT)},{num(_PAD / 2 + (1 - y) * _PLOT)}"

    body: list[str] = []
    for i in range(5):
        v = i / 4
        x, y = _PAD + v * _PLOT, _PAD / 2 + (1 - v) * _PLOT
        body.append(element("line", x1=x, y1=_PAD / 2, x2=x, y2=_PAD / 2 + _PLOT, stroke=GRID_COLOR))
        body.append(element("line", x1=_PAD, y1=y, x2=_PAD + _PLOT, y2=y, stroke=GRID_COLOR))
        body.append(text(x, _PAD / 2 + _PLOT + 14, f"{v:g}", text_anchor="middle", fill=MUTED_COLOR))
        body.append(text(_PAD - 4, y + 4, f"{v:g}", text_anchor="end", fill=MUTED_COLOR))
    body.append(text(_PAD + _PLOT / 2, _PAD / 2 + _PLOT + 30, x_label, text_anchor="middle"))
    middle = _PAD / 2 + _PLOT / 2
    body.append(text(12, middle, y_label, text_anchor="middle", transform=f"rotate(-90 12 {num(middle)})"))
    if diagonal:
        body.append(
            element(
                "polyline",
                points=f"{xy(0, 0)} {xy(1, 1)}",
                fill="none",
                stroke=MUTED_COLOR,
                stroke_dasharray="4 3",
            )
        )
    for i, line in enumerate(lines):
        points = " ".join(
            xy(x, y)
            for x, y in zip(line.xs, line.ys, strict=True)
            if math.isfinite(float(x)) and math.isfinite(float(y))
        )
        body.append(
            element("polyline", line.legend, points=points, fill="none", stroke=line.color, stroke_width=2)
        )
        y = _PAD / 2 + _PLOT + 50 + 16 * i
        body.append(
            element("line", x1=_PAD, y1=y - 4, x2=_PAD + 14, y2=y - 4, stroke=line.color, stroke_width=2)
        )
        body.append(text(_PAD + 18, y, line.legend))
    return document(width, height, label, body, "curve")


def confusion_matrix_svg(
    labels: Sequence[str],
    matrix: Sequence[Sequence[int]],
    *,
    label: str,
    cell_names: Sequence[Sequence[str]] | None = None,
    caption: str = "share of each actual class per cell (blue: right, red: wrong)",
) -> Markup:
    """A confusion matrix: rows the actual class, columns the predicted one, each cell shaded by
    its share of its actual class (the diagonal, right, in blue; the rest in red).

    ``cell_names`` name the cells (``TP``, ``FN``, ...): shown before the count and in the tooltip.
    Cells show their count when there is room, and their share too when there is more.
    """
    size = len(labels)
    if not size or len(matrix) != size:
        return placeholder(360, 60, label, "no classes", "confusion")
    cell = float(max(22, min(90, 560 // size)))
    tilt = cell < 6.5 * max(len(clip(str(v), 16)) for v in labels) + 8
    left = 14 + 6.5 * max(len(clip(str(v), 16)) for v in labels) + 12
    top = 110.0 if tilt else 46.0
    width = max(left + size * cell + 10, left + 340)
    height = top + size * cell + 30
    body = [
        text(left + size * cell / 2, 14, "predicted", text_anchor="middle", font_weight="bold"),
        text(
            14,
            top + size * cell / 2,
            "actual",
            text_anchor="middle",
            font_weight="bold",
            transform=f"rotate(-90 14 {num(top + size * cell / 2)})",
        ),
    ]
    for j, name in enumerate(labels):
        x = left + j * cell + cell / 2
        if tilt:
            body.append(
                text(
                    x,
                    top - 6,
                    clip(str(name), 16),
                    str(name),
                    text_anchor="start",
                    transform=f"rotate(-45 {num(x)} {num(top - 6)})",
                )
            )
        else:
            body.append(text(x, top - 6, clip(str(name), 16), str(name), text_anchor="middle"))
    for i, actual in enumerate(labels):
        y = top + i * cell
        row = [int(v) for v in matrix[i]]
        total = sum(row)
        body.append(text(left - 6, y + cell / 2 + 4, clip(str(actual), 16), str(actual), text_anchor="end"))
        for j, count in enumerate(row):
            share = count / total if total else 0.0
            name = cell_names[i][j] if cell_names is not None else ""
            what = f"{name}: " if name else f"actual {actual}, predicted {labels[j]}: "
            body.append(
                element(
                    "rect",
                    f"{what}{count} ({share:.1%} of the actual {actual} rows)",
                    x=left + j * cell,
                    y=y,
                    width=cell - 2,
                    height=cell - 2,
                    fill=REFERENCE_COLOR if i == j else DRIFT_COLOR,
                    fill_opacity=(0.12 + 0.75 * share) if count else 0.03,
                )
            )
            cx = left + j * cell + cell / 2 - 1
            shown = f"{name} {count}" if name else str(count)
            if cell >= 60:
                body.append(text(cx, y + cell / 2 - 2, shown, text_anchor="middle", font_weight="bold"))
                body.append(text(cx, y + cell / 2 + 14, f"{share:.1%}", text_anchor="middle"))
            elif cell >= 30 and (count or name):
                body.append(text(cx, y + cell / 2 + 3, shown, text_anchor="middle"))
    body.append(text(left, top + size * cell + 18, caption, fill=MUTED_COLOR))
    return document(width, height, label, body, "confusion")


def scatter_svg(
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    label: str,
    x_label: str,
    y_label: str,
    color: str = REFERENCE_COLOR,
    zero_line: str = "",
) -> Markup:
    """Points ``(x, y)`` with grids on both value axes; ``zero_line`` (its tooltip) draws y = 0
    dashed in red, and the y axis is symmetric around it."""
    width, height = _PAD + 2 * _PLOT + 50, _PAD / 2 + _PLOT + 50
    points = [
        (float(x), float(y)) for x, y in zip(xs, ys, strict=True) if math.isfinite(x) and math.isfinite(y)
    ]
    if not points:
        return placeholder(width, 80, label, "no rows", "scatter")
    x_low, x_high = min(p[0] for p in points), max(p[0] for p in points)
    if x_low == x_high:
        x_low, x_high = x_low - 0.5, x_high + 0.5
    if zero_line:
        reach = max(max(abs(p[1]) for p in points), 1e-12) * 1.05
        y_low, y_high = -reach, reach
    else:
        y_low, y_high = min(p[1] for p in points), max(p[1] for p in points)
        if y_low == y_high:
            y_low, y_high = y_low - 0.5, y_high + 0.5
    plot_w, plot_h, x0, y0 = 2 * _PLOT, _PLOT, _PAD + 30, _PAD / 2

    def px(v: float) -> float:
        return x0 + (v - x_low) / (x_high - x_low) * plot_w

    def py(v: float) -> float:
        return y0 + (y_high - v) / (y_high - y_low) * plot_h

    body = [
        text(
            12,
            y0 + plot_h / 2,
            y_label,
            text_anchor="middle",
            transform=f"rotate(-90 12 {num(y0 + plot_h / 2)})",
        )
    ]
    for v in range_ticks(x_low, x_high):
        body.append(element("line", x1=px(v), y1=y0, x2=px(v), y2=y0 + plot_h, stroke=GRID_COLOR))
        body.append(text(px(v), y0 + plot_h + 14, axis_number(v), text_anchor="middle", fill=MUTED_COLOR))
    for v in range_ticks(y_low, y_high):
        body.append(element("line", x1=x0, y1=py(v), x2=x0 + plot_w, y2=py(v), stroke=GRID_COLOR))
        body.append(text(x0 - 4, py(v) + 4, axis_number(v), text_anchor="end", fill=MUTED_COLOR))
    body.append(element("rect", x=x0, y=y0, width=plot_w, height=plot_h, fill="none", stroke=GRID_COLOR))
    if zero_line:
        body.append(
            element(
                "line",
                zero_line,
                x1=x0,
                y1=py(0.0),
                x2=x0 + plot_w,
                y2=py(0.0),
                stroke=DRIFT_COLOR,
                stroke_dasharray="4 3",
            )
        )
    dots = [element("circle", cx=px(x), cy=py(y), r=2.0) for x, y in points]
    body.append(group(dots, fill=color, fill_opacity=0.55))
    body.append(text(x0 + plot_w / 2, y0 + plot_h + 32, x_label, text_anchor="middle", fill=TEXT_COLOR))
    return document(width, height, label, body, "scatter")
