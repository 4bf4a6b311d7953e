"""Small builders of SVG markup, safe by construction (standard library and markupsafe only).

Every figure of every report is made of these: an element's attributes are written from keyword
arguments (names checked, values escaped, floats rounded to 0.1 px), every piece of text goes
through :func:`~airflow_mlops.reports.text.escape`, and :func:`document` wraps the body into a
complete SVG document: it declares its namespace, has a ``<title>`` and an ``aria-label``, uses
presentation attributes rather than a stylesheet, and holds no script and no link. So it renders
the same inlined in a page (as :class:`markupsafe.Markup`, which the page template inserts as
is), written to a ``.svg`` file, or shown by MLflow's artifact viewer.

A builder never takes markup from a caller except the output of other builders (``body``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

from markupsafe import Markup

from airflow_mlops.reports.style import DRIFT_COLOR, FONT, GRID_COLOR, MUTED_COLOR, TEXT_COLOR
from airflow_mlops.reports.text import clip, escape

__all__ = [
    "SVG_NAMESPACE",
    "attrs",
    "document",
    "element",
    "group",
    "heading",
    "legend",
    "legend_width",
    "nice_ticks",
    "num",
    "placeholder",
    "range_ticks",
    "text",
]

SVG_NAMESPACE = "http://www.w3.org/2000/svg"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*\Z")


def num(value: float) -> str:
    """A coordinate: one decimal at most (``12``, ``12.5``); a non-finite value is drawn at 0."""
    if not math.isfinite(value):
        return "0"
    text_ = f"{value:.1f}"
    if text_ == "-0.0":
        return "0"
    return text_[:-2] if text_.endswith(".0") else text_


_COORDINATES = frozenset({"x", "y", "width", "height", "cx", "cy", "r", "x1", "x2", "y1", "y2"})


def attrs(values: Mapping[str, object]) -> str:
    """`` name="value"`` pairs: ``font_size`` is written ``font-size``, ``class_`` ``class``;
    None is left out, float coordinates are rounded to 0.1 px (:func:`num`), other floats
    (opacities, widths) to three significant digits; everything is escaped."""
    parts = []
    for key, value in values.items():
        if value is None:
            continue
        name = key.rstrip("_").replace("_", "-")
        if not _NAME.match(name):
            raise ValueError(f"not an SVG attribute name: {key!r}")
        if isinstance(value, float):
            shown = num(value) if name in _COORDINATES or not math.isfinite(value) else f"{value:.3g}"
        else:
            shown = str(value)
        parts.append(f' {name}="{escape(shown)}"')
    return "".join(parts)


def _tag(tag: str) -> str:
    if not _NAME.match(tag):
        raise ValueError(f"not an SVG element name: {tag!r}")
    return tag


def element(tag: str, tooltip: str | None = None, **values: object) -> str:
    """One element, empty or holding only its tooltip (a ``<title>``, shown on hover)."""
    tag = _tag(tag)
    if tooltip is None:
        return f"<{tag}{attrs(values)}/>"
    return f"<{tag}{attrs(values)}><title>{escape(tooltip)}</title></{tag}>"


def text(x: float, y: float, content: str, tooltip: str | None = None, **values: object) -> str:
    """A ``<text>`` at ``(x, y)`` showing ``content`` (escaped), with an optional tooltip."""
    inner = escape(content) if tooltip is None else f"<title>{escape(tooltip)}</title>{escape(content)}"
    return f"<text{attrs({'x': float(x), 'y': float(y), **values})}>{inner}</text>"


def group(children: Iterable[str], **values: object) -> str:
    """A ``<g>`` around ``children`` (markup made by these builders)."""
    return f"<g{attrs(values)}>{''.join(children)}</g>"


def document(width: float, height: float, label: str, body: Sequence[str], css_class: str) -> Markup:
    """A complete SVG document of ``body`` (builders' output), titled ``label``."""
    head = (
        f'<svg xmlns="{SVG_NAMESPACE}"{attrs({"class": css_class})}'
        f' width="{num(width)}" height="{num(height)}" viewBox="0 0 {num(width)} {num(height)}"'
        f"{attrs({'role': 'img', 'aria-label': label, 'font-family': FONT, 'font-size': 11})}"
        f' fill="{TEXT_COLOR}"><title>{escape(label)}</title>'
    )
    return Markup(head + "".join(body) + "</svg>")


def placeholder(width: float, height: float, label: str, message: str, css_class: str) -> Markup:
    """A framed box saying ``message``: the figure of data that has nothing to draw."""
    body = [
        element("rect", x=0.5, y=0.5, width=width - 1, height=height - 1, fill="#fafafa", stroke=GRID_COLOR),
        text(width / 2, height / 2, message, text_anchor="middle", fill=MUTED_COLOR),
    ]
    return document(width, height, label, body, css_class)


def heading(title: str, note: str, width: float, *, flagged: bool = False, chars: int = 34) -> list[str]:
    """A figure's first line: ``title`` in bold on the left (clipped, whole in its tooltip) and
    ``note`` on the right, red and bold when ``flagged``."""
    body = [text(8, 15, clip(title, chars), tooltip=title, font_weight="bold")]
    if note:
        body.append(
            text(
                width - 12,
                15,
                note,
                text_anchor="end",
                fill=DRIFT_COLOR if flagged else MUTED_COLOR,
                font_weight="bold" if flagged else None,
            )
        )
    return body


#: Legend swatches: a translucent box (an area), a solid box (bars), a line, a dot.
SWATCHES = ("area", "bars", "step", "line", "dot")


def legend(x: float, y: float, items: Sequence[tuple[str, str, str]]) -> list[str]:
    """``(label, colour, swatch)`` items in a row from ``(x, y)`` (the text baseline)."""
    body: list[str] = []
    for label, color, swatch in items:
        if swatch == "area":
            body.append(element("rect", x=x, y=y - 8, width=10, height=8, fill=color, fill_opacity=0.45))
        elif swatch == "bars":
            body.append(element("rect", x=x, y=y - 8, width=10, height=8, fill=color))
        elif swatch == "dot":
            body.append(element("circle", cx=x + 5, cy=y - 4, r=4, fill=color))
        else:
            body.append(element("line", x1=x, y1=y - 4, x2=x + 12, y2=y - 4, stroke=color, stroke_width=2))
        body.append(text(x + 15, y, label, fill=MUTED_COLOR))
        x += 15 + 6.2 * len(label) + 12
    return body


def legend_width(items: Sequence[tuple[str, str, str]]) -> float:
    """About how wide :func:`legend` draws ``items``."""
    return sum(15 + 6.2 * len(label) + 12 for label, _, _ in items) - 12


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``top`` (``[0, 1]`` when ``top`` is not positive)."""
    if not (top > 0 and math.isfinite(top)):
        return [0.0, 1.0]
    step = _nice_step(top / count)
    n = max(1, math.ceil(top / step - 1e-9))
    return [i * step for i in range(n + 1)]


def _nice_step(raw: float) -> float:
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1.0, 2.0, 2.5, 5.0, 10.0):
        if multiple * magnitude >= raw * (1 - 1e-9):
            return multiple * magnitude
    return magnitude * 10


def range_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round tick values inside ``[low, high]`` (about ``count`` steps; ``[low]`` for an empty range)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    step = _nice_step((high - low) / count)
    first = math.ceil(low / step - 1e-9)
    ticks = []
    i = first
    while i * step <= high + step * 1e-9:
        value = i * step
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        i += 1
    return ticks
