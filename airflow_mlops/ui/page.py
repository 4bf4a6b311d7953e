"""Server-side HTML of the Models view (Jinja2, autoescaped: everything read from the registry --
model names, aliases, tags, metric names, error messages -- is escaped; URL parts are quoted;
error text is shown with server paths and credentials redacted)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_mlops.ui.rows import Check, ModelView

if TYPE_CHECKING:
    from jinja2 import Template

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5rem;
       color: #1f2933; background: #ffffff; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem 0; }
p.lead { color: #52606d; margin: 0 0 1.2rem 0; }
section.model { border: 1px solid #d9e2ec; border-radius: 8px; padding: 1rem; margin-bottom: 1.2rem; }
section.model h2 { font-size: 1.2rem; margin: 0 0 .4rem 0; }
.meta { color: #52606d; font-size: .9rem; margin-bottom: .6rem; }
.drift { padding: .4rem .6rem; border-radius: 6px; background: #f0f4f8; margin-bottom: .6rem; }
.drift.drifted, .drift.alarm { background: #fde8e8; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; vertical-align: top; border-bottom: 1px solid #e4e7eb; padding: .4rem .5rem; }
th { background: #f5f7fa; }
.alias { display: inline-block; background: #2563eb; color: #fff; border-radius: 10px;
         padding: 0 .5rem; margin: 0 .2rem .2rem 0; font-size: .8rem; }
.check { display: inline-block; border-radius: 4px; padding: 0 .35rem; margin-bottom: .2rem; }
.check.ok { background: #d1fae5; color: #065f46; }
.check.failed { background: #fee2e2; color: #991b1b; font-weight: 600; }
.check.error { background: #fef3c7; color: #92400e; }
.check.unchecked { background: #e5e7eb; color: #374151; }
ul.plain { list-style: none; margin: 0; padding: 0; }
.errors { color: #991b1b; }
code { font-size: .8rem; }
"""

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Models - airflow-mlops</title>
<style>{{ style }}</style>
</head>
<body>
<h1>Models</h1>
<p class="lead">Each pipeline's registered model versions: aliases, evaluation metrics, gate results
(from the signed evaluation attestation), signature and scan (checked now, on a fresh download of the
registered artifact, for the versions an alias points at), ML-BOM and the last drift result.</p>
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
  {% if m.errors %}<ul class="errors">{% for e in m.errors %}<li>{{ e|clean }}</li>{% endfor %}</ul>{% endif %}
  <table>
    <thead><tr><th>Version</th><th>Aliases</th><th>Metrics</th><th>Gates</th><th>Signature &amp; scan</th><th>ML-BOM</th><th>Registered</th></tr></thead>
    <tbody>
    {% for v in m.versions %}
    <tr class="version" id="version-{{ m.name }}-{{ v.version }}" data-version="{{ v.version }}" data-aliases="{{ v.aliases|join(' ') }}">
      <td class="number">v{{ v.version }}</td>
      <td class="aliases">{% for a in v.aliases %}<span class="alias">@{{ a }}</span>{% endfor %}</td>
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
</body>
</html>
"""

_CHECK_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Check {{ name }} v{{ version }}</title>
<style>{{ style }}</style></head>
<body>
<h1>{{ name }} v{{ version }}</h1>
<p class="lead">Checked now: a fresh download of the registered artifact.</p>
<p><span class="check signature {{ signature.state }}">signature: {{ signature.label }}</span> {{ signature.detail|clean }}</p>
<p><span class="check scan {{ scan.state }}">scan: {{ scan.label }}</span> {{ scan.detail|clean }}</p>
<p><a href="{{ base }}/#model-{{ name|q }}">back to the Models view</a></p>
</body></html>
"""


def _q(value: Any) -> str:
    return quote(str(value), safe="")


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.4g}"


def _clean(value: Any) -> str:
    """Error text for the page: server paths and credentials redacted (escaped after, as all)."""
    from airflow_mlops.redaction import redact_paths

    return redact_paths(value)


@cache
def _env() -> Any:
    from jinja2 import Environment

    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["q"] = _q
    env.filters["num"] = _num
    env.filters["clean"] = _clean
    return env


def _template(source: str) -> Template:
    return _env().from_string(source)


def render_models(models: Sequence[ModelView], *, base: str) -> str:
    """The Models page; ``base`` is the URL prefix the app is mounted at (e.g. ``/mlops/models``)."""
    return _template(_TEMPLATE).render(models=models, base=base.rstrip("/"), style=_STYLE)


def render_check(name: str, version: str, signature: Check, scan: Check, *, base: str) -> str:
    """The result page of an on-demand check of one version."""
    return _template(_CHECK_TEMPLATE).render(
        name=name, version=version, signature=signature, scan=scan, base=base.rstrip("/"), style=_STYLE
    )
