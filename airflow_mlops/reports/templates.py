"""The page template and the macros every report uses (jinja2 source, kept in Python so that
the package needs no package data).

``page.html`` is the one page: the charset, the Content-Security-Policy, the title, the one
stylesheet, a header (``<h1>`` and the ``lead`` block), the ``content`` block and a footer. A
report's template extends it and imports ``macros.html``::

    {% extends "page.html" %}
    {% import "macros.html" as m %}
    {% block content %}{% call m.section("gates", "Gates") %}...{% endcall %}{% endblock %}

Blocks: ``title`` (the ``<title>``, default ``title``), ``body_class``, ``header``, ``lead``,
``content``, ``footer``.
"""

from __future__ import annotations

__all__ = ["MACROS", "PAGE"]

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="airflow-mlops">
<title>{% block title %}{{ title }}{% endblock %}</title>
<style>{{ stylesheet }}</style>
</head>
<body{% block body_class %}{% endblock %}>
{% block header %}
<header><h1>{{ title }}</h1>{% block lead %}{% endblock %}</header>
{% endblock %}
{% block content %}{% endblock %}
{% block footer %}
<footer class="muted"><p>Written by airflow-mlops. Self-contained: no scripts, no external resources.</p></footer>
{% endblock %}
</body></html>
"""

# Each macro is one line: what it writes has no whitespace of its own (tests and browsers alike
# see ``<td class="num">1</td><td>...`` exactly).
MACROS = """
{% macro tag(css, text) %}<span class="tag {{ css }}">{{ text }}</span>{% endmacro %}
{% macro verdict(drifted) %}{% if drifted %}{{ tag("drift", "DRIFT") }}{% else %}{{ tag("ok", "ok") }}{% endif %}{% endmacro %}
{% macro passed(ok, yes="passed", no="FAILED") %}{% if ok %}{{ tag("passed", yes) }}{% else %}{{ tag("failed", no) }}{% endif %}{% endmacro %}
{% macro cell(value, css="") %}{% set classes = (css ~ (" num" if value is numeric else "")).strip() %}<td{% if classes %} class="{{ classes }}"{% endif %}>{{ value|num }}</td>{% endmacro %}
{% macro tr(css="") %}<tr{% if css %} class="{{ css }}"{% endif %}>{% endmacro %}
{% macro table(headers=none, css="") %}<table{% if css %} class="{{ css }}"{% endif %}>{% if headers is not none %}<thead><tr>{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>{% endif %}<tbody>{{ caller() }}</tbody></table>{% endmacro %}
{% macro data_table(headers, rows, css="", classes=()) %}{% call table(headers, css) %}{% for row in rows %}{{ tr(classes[loop.index0] if loop.index0 < classes|length else "") }}{% for value in row %}{{ cell(value) }}{% endfor %}</tr>{% endfor %}{% endcall %}{% endmacro %}
{% macro section(anchor, title) %}<section id="{{ anchor }}"><h2>{{ title }}</h2>{{ caller() }}</section>{% endmacro %}
{% macro missing(text) %}<p class="muted">{{ text }}</p>{% endmacro %}
{% macro context(lines) %}{% if lines %}<dl class="context">{% for key, value in lines.items() %}<dt>{{ key }}</dt><dd>{{ value }}</dd>{% endfor %}</dl>{% endif %}{% endmacro %}
{% macro nav(links) %}<nav>{% for anchor, text in links %}<a href="#{{ anchor }}">{{ text }}</a>{% endfor %}</nav>{% endmacro %}
{% macro figure(svg) %}<figure>{{ svg }}</figure>{% endmacro %}
"""
