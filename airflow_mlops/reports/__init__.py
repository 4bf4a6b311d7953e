"""Every HTML report and the Models view render through this package.

- :mod:`~airflow_mlops.reports.page`: :func:`render_page`, the one jinja2 environment
  (autoescaping every value with :func:`~airflow_mlops.reports.text.escape`) and the page
  template every report extends (:mod:`~airflow_mlops.reports.templates`: ``page.html`` and the
  ``macros.html`` of tags, cells, tables, sections).
- :mod:`~airflow_mlops.reports.style`: the palette, the one stylesheet, and the
  Content-Security-Policy every page carries (no script, nothing loaded, the stylesheet allowed
  by its hash).
- :mod:`~airflow_mlops.reports.svg` and :mod:`~airflow_mlops.reports.figures`: SVG figures built
  from escaped text and formatted numbers (histograms, category bars, curves, confusion
  matrices, scatter plots).
- :mod:`~airflow_mlops.reports.text`: escaping and number formatting.

A domain package: standard library, jinja2 and markupsafe only (jinja2 is imported when a page is
rendered); no Airflow, no numpy. The reports themselves stay with their stages:
:mod:`airflow_mlops.drift.html`, :mod:`airflow_mlops.data.validation_report`,
:mod:`airflow_mlops.data.screen_report`, :mod:`airflow_mlops.registry.evaluation_report` and the
Models view's :mod:`airflow_mlops.ui.page`.
"""

from __future__ import annotations

from airflow_mlops.reports.page import render_page
from airflow_mlops.reports.style import CSP, STYLESHEET
from airflow_mlops.reports.text import escape, format_value

__all__ = ["CSP", "STYLESHEET", "escape", "format_value", "render_page"]
