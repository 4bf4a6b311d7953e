"""Render a report page: one jinja2 environment, autoescaping, the page template and macros.

:func:`render_page` renders a report's template (which extends ``page.html``) with the page's
policy and stylesheet. Autoescaping is on and every ``{{ ... }}`` goes through
:func:`~airflow_mlops.reports.text.escape` (the environment's ``finalize``), the escape of the
SVG figures too; only :class:`markupsafe.Markup` passes unescaped: the figures of
:mod:`airflow_mlops.reports.figures`, the macros' output and the stylesheet. A report never marks
a string from data as safe.

Filters: ``num`` (:func:`~airflow_mlops.reports.text.format_value`), ``pct`` (a share as a
percentage), ``q`` (a URL path segment, quoted). Test: ``numeric`` (an int or float, not a bool).
Undefined names are errors (``StrictUndefined``), so a typo in a template fails its tests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from markupsafe import Markup

from airflow_mlops.reports.style import CSP, STYLESHEET
from airflow_mlops.reports.templates import MACROS, PAGE
from airflow_mlops.reports.text import escape, format_value

if TYPE_CHECKING:
    from jinja2 import Environment, Template

__all__ = ["environment", "render_page"]


def _finalize(value: Any) -> Any:
    """Every printed value: markup as it is, anything else as escaped text."""
    if hasattr(value, "__html__"):
        return value
    return Markup(escape(value))


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _pct(value: Any, digits: int = 0) -> str:
    if not _numeric(value):
        return format_value(value)
    return f"{value * 100:.{digits}f}%"


def _quote(value: Any) -> str:
    return quote(str(value), safe="")


FilterItems = tuple[tuple[str, Callable[..., Any]], ...]


@functools.cache
def _environment(filters: FilterItems) -> Environment:
    from jinja2 import DictLoader, Environment, StrictUndefined

    env = Environment(
        loader=DictLoader({"page.html": PAGE, "macros.html": MACROS}),
        autoescape=True,
        finalize=_finalize,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=format_value, pct=_pct, q=_quote)
    env.filters.update(dict(filters))
    env.tests["numeric"] = _numeric
    env.globals.update(csp=CSP, stylesheet=Markup(STYLESHEET))
    return env


def environment(filters: Mapping[str, Callable[..., Any]] | None = None) -> Environment:
    """The reports' jinja2 environment, with extra ``filters`` (one environment per set)."""
    return _environment(tuple(sorted((filters or {}).items())))


@functools.lru_cache(maxsize=64)
def _template(source: str, filters: FilterItems) -> Template:
    return _environment(filters).from_string(source)


def render_page(
    source: str, /, *, title: str, filters: Mapping[str, Callable[..., Any]] | None = None, **context: Any
) -> str:
    """The page of the template ``source`` (which extends ``page.html``), as one HTML document.

    :param title: the page's ``<title>`` and ``<h1>``.
    :param filters: extra filters the template uses (e.g. the Models view's redaction).
    :param context: the template's variables; strings are data and are escaped wherever shown.
    """
    rendered = _template(source, tuple(sorted((filters or {}).items()))).render(title=title, **context)
    return rendered if rendered.endswith("\n") else rendered + "\n"
