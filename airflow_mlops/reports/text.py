"""Text for reports: escaping and the formatting of numbers (standard library only).

Every string from data that goes into a report's markup -- HTML or SVG -- passes through
:func:`escape`: characters XML 1.0 cannot hold are replaced, then ``& < > " '`` are escaped. The
page template's autoescaping calls it too (:mod:`airflow_mlops.reports.page`), so the HTML and
the inline SVG of a page escape alike, and an inline SVG stays well-formed XML whatever the data.
"""

from __future__ import annotations

import html
import math
import re
from datetime import datetime

__all__ = ["axis_number", "clip", "escape", "format_value", "percent", "short_time", "xml_text"]

# XML 1.0 allows TAB, LF, CR and these ranges; anything else (NUL, ESC, lone surrogates) cannot
# be written even as a character reference, so it is replaced.
_XML_INVALID = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    """``str(value)`` with the characters XML 1.0 cannot represent replaced by U+FFFD."""
    return _XML_INVALID.sub("\ufffd", str(value))


def escape(value: object) -> str:
    """``value`` as text safe inside XML/HTML content and quoted attributes.

    Characters XML 1.0 cannot represent are replaced by U+FFFD, then ``& < > " '`` are escaped.
    """
    return html.escape(xml_text(value), quote=True)


def format_value(value: object) -> str:
    """A number as a short, readable string (None as an en dash, NaN as ``NaN``, inf as ``∞``)."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, float):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "\u221e" if value > 0 else "-\u221e"
    if value == 0:
        return "0"
    if abs(value) < 1e-3 or abs(value) >= 1e5:
        return f"{value:.3g}"
    return f"{value:.4g}"


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis when it was cut."""
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def short_time(created_at: str) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM`` (other text clipped to 16 characters)."""
    try:
        moment = datetime.fromisoformat(created_at)
    except ValueError:
        return clip(created_at, 16)
    return moment.strftime("%Y-%m-%d %H:%M")


def percent(value: float, step: float = 0.01) -> str:
    """``value`` as a percentage with as many decimals as ``step`` (a tick step) needs, up to 3."""
    decimals = 0
    while decimals < 3 and abs(round(step * 100, decimals) - step * 100) > 1e-9:
        decimals += 1
    return f"{value * 100:.{decimals}f}%"


def axis_number(value: float) -> str:
    """A tick label: at most three significant digits."""
    if value == 0:
        return "0"
    if abs(value) < 1e-3 or abs(value) >= 1e4:
        return f"{value:.2g}"
    return f"{value:.3g}"
