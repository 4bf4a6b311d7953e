"""Server-side HTML of the Models view, rendered through :mod:`airflow_mlops.reports` (the shared
page, stylesheet and Content-Security-Policy; Jinja2, autoescaped: everything read from the
registry -- model names, aliases, tags, metric names, error messages -- is escaped; URL parts are
quoted; error text is shown with server paths and credentials redacted)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_mlops.reports import render_page
from airflow_mlops.ui.rows import Check, ModelView

_TEMPLATE = """{% extends "page.html" %}
{% block title %}Models - airflow-mlops{% endblock %}
{% block body_class %} class="models"{% endblock %}
{% block lead %}
<p class="lead">Each pipeline's registered model versions: aliases, why each was trained (the drift or
new-data event that started its run, or its schedule), evaluation metrics, gate results
(from the signed evaluation attestation), signature and scan (checked now, on a fresh download of the
registered artifact, for the versions an alias points at), ML-BOM and the last drift result.</p>
{% endblock %}
{% block footer %}{% endblock %}
{% block content %}
{% if not models %}<p id="no-models">No pipeline has registered a model yet (or you may not read its DAGs).</p>{% endif %}
{% for m in models %}
<section class="model" id="model-{{ m.name }}" data-model="{{ m.name }}">
  <h2>{{ m.name }}</h2>
  <div class="meta">pipeline <code>{{ m.pipeline }}</code>
    {%- if m.aliases %} &middot; aliases:
      {% for alias, version in m.aliases|dictsort %}<span class="alias">@{{ alias }} &rarr; v{{ version }}</span>{% endfor %}
    {%- endif %}</div>
  {% if m.drift %}
  <div class="drift {{ 'drifted' if m.drift.verdict == 'drift' else ('alarm' if m.drift.verdict != 'no drift' else '') }}">
    last drift result: <strong class="drift-verdict">{{ m.drift.verdict }}</strong>
    {%- if m.drift.drift_share is not none %} &middot; drift share {{ '%.0f'|format(m.drift.drift_share * 100) }}%{% endif %}
    {%- if m.drift.drifted_features is not none %} &middot; {{ m.drift.drifted_features }} drifted feature(s){% endif %}
    &middot; version {{ m.drift.model_version or '?' }} &middot; {{ m.drift.at }}
    {%- if m.drift.has_html %} &middot; <a class="drift-report" href="{{ base }}/runs/{{ m.drift.run_id|q }}/report/drift/drift_report.html">report</a>{% endif %}
  </div>
  {% else %}
  <div class="drift">last drift result: <strong class="drift-verdict">no monitor run yet</strong></div>
  {% endif %}
  {% if m.suppressed %}{% set s = m.suppressed %}
  <details class="suppressed" id="suppressed-{{ m.name }}" data-suppressed="{{ s.total }}">
    <summary>suppressed triggers: {% if s.error %}<strong>{{ s.error|clean }}</strong>{% else %}<strong class="suppressed-total">{{ s.total }}</strong> in the last 30 days
      {%- for code, n in s.by_code.items() %} &middot; <span class="suppressed-code" data-code="{{ code }}">{{ code }} {{ n }}</span>{% endfor %}
      {%- if s.last_retrain %} &middot; last retrain {{ s.last_retrain.at }} ({{ s.last_retrain.trigger }}){% endif %}{% endif %}</summary>
    {% if s.latest %}<ul class="plain">{% for e in s.latest %}<li class="suppressed-event" data-code="{{ e.code }}">{{ e.timestamp }} {{ e.kind }}: {{ e.reason|clean }} <small>(run {{ e.run_id }})</small></li>{% endfor %}</ul>{% endif %}
  </details>
  {% endif %}
  {% if m.errors %}<ul class="errors">{% for e in m.errors %}<li>{{ e|clean }}</li>{% endfor %}</ul>{% endif %}
  <table>
    <thead><tr><th>Version</th><th>Aliases</th><th>Why trained</th><th>Metrics</th><th>Gates</th><th>Signature &amp; scan</th><th>ML-BOM</th><th>Registered</th></tr></thead>
    <tbody>
    {% for v in m.versions %}
    <tr class="version" id="version-{{ m.name }}-{{ v.version }}" data-version="{{ v.version }}" data-aliases="{{ v.aliases|join(' ') }}">
      <td class="number">v{{ v.version }}</td>
      <td class="aliases">{% for a in v.aliases %}<span class="alias">@{{ a }}</span>{% endfor %}</td>
      <td class="retrain">{% if v.retrain %}<span class="retrain-reason" data-retrain-kind="{{ v.retrain.kind }}" title="{{ v.retrain.source }}">{{ v.retrain.label }}</span>{% if v.retrain.source != 'attested' %} <small class="retrain-source">({{ v.retrain.source }})</small>{% endif %}{% else %}<span class="retrain-reason" data-retrain-kind="">not recorded</span>{% endif %}</td>
      <td class="metrics"><ul class="plain">{% for k, x in v.metrics|dictsort %}<li><span class="metric" data-metric="{{ k }}">{{ k }}: {{ '%.4f'|format(x) }}</span></li>{% endfor %}</ul></td>
      <td class="gates">
        <span class="check {{ 'ok' if v.gates_passed is sameas true else ('failed' if v.gates_passed is sameas false else 'unchecked') }}">gates: {{ 'passed' if v.gates_passed is sameas true else ('FAILED' if v.gates_passed is sameas false else 'unknown') }}</span>
        <div class="gates-source">{{ v.gates_source|clean }}</div>
        {% if v.gates %}<ul class="plain">{% for g in v.gates %}<li class="gate">{{ '&#10003;'|safe if g.passed else '&#10007;'|safe }} {{ g.name }}{% if g.value is not none %}: {{ g.value|num }}{% endif %}{% if g.threshold is not none %} (threshold {{ g.threshold|num }}){% endif %}</li>{% endfor %}</ul>{% endif %}
      </td>
      <td class="security">
        <span class="check signature {{ v.signature.state }}" title="{{ v.signature.detail|clean }}">signature: {{ v.signature.label }}</span><br>
        <span class="check scan {{ v.scan.state }}" title="{{ v.scan.detail|clean }}">scan: {{ v.scan.label }}</span>
        {% if v.signature.state != 'ok' %}<div>{% if v.signature.state != 'unchecked' %}<small>{{ v.signature.detail|clean }}</small><br>{% endif %}<a class="check-now" href="{{ base }}/{{ m.name|q }}/versions/{{ v.version|q }}/check">check now</a></div>{% endif %}
      </td>
      <td class="mlbom">{% if v.has_mlbom %}<a class="mlbom" href="{{ base }}/{{ m.name|q }}/versions/{{ v.version|q }}/mlbom.cdx.json" download>mlbom.cdx.json</a>{% else %}none{% endif %}</td>
      <td class="created">{{ v.created }}<br><code title="model sha256">{{ v.model_sha256[:12] }}</code></td>
    </tr>
    {% endfor %}
    </tbody>
  </table>
</section>
{% endfor %}
{% endblock %}
"""

_CHECK_TEMPLATE = """{% extends "page.html" %}
{% block title %}Check {{ name }} v{{ version }}{% endblock %}
{% block body_class %} class="models"{% endblock %}
{% block lead %}<p class="lead">Checked now: a fresh download of the registered artifact.</p>{% endblock %}
{% block footer %}{% endblock %}
{% block content %}
<p><span class="check signature {{ signature.state }}">signature: {{ signature.label }}</span> {{ signature.detail|clean }}</p>
<p><span class="check scan {{ scan.state }}">scan: {{ scan.label }}</span> {{ scan.detail|clean }}</p>
<p><a href="{{ base }}/#model-{{ name|q }}">back to the Models view</a></p>
{% endblock %}
"""


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.4g}"


def _clean(value: Any) -> str:
    """Error text for the page: server paths and credentials redacted (escaped after, as all)."""
    from airflow_mlops.redaction import redact_paths

    return redact_paths(value)


_FILTERS = {"num": _num, "clean": _clean}


def render_models(models: Sequence[ModelView], *, base: str) -> str:
    """The Models page; ``base`` is the URL prefix the app is mounted at (e.g. ``/mlops/models``)."""
    return render_page(_TEMPLATE, title="Models", filters=_FILTERS, models=models, base=base.rstrip("/"))


def render_check(name: str, version: str, signature: Check, scan: Check, *, base: str) -> str:
    """The result page of an on-demand check of one version."""
    return render_page(
        _CHECK_TEMPLATE,
        title=f"{name} v{version}",
        filters=_FILTERS,
        name=name,
        version=version,
        signature=signature,
        scan=scan,
        base=base.rstrip("/"),
    )
