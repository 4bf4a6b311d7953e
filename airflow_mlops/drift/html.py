"""The drift report as one self-contained HTML page.

:func:`render_html` returns a single HTML document rendered through the shared page of
:mod:`airflow_mlops.reports`: its stylesheet is inline, its plots are inline SVG drawn by
:mod:`airflow_mlops.drift.figures`, and it loads nothing (no script, font, image or stylesheet from
anywhere), so it reads the same opened from the artifact store, downloaded, or shown in MLflow's
artifact viewer. A ``Content-Security-Policy`` meta tag forbids scripts and every fetch as a second
line of defence; the first is that every string from the data (feature and category names,
reasons, the caller's context) is escaped by the template.

The page, top to bottom: the verdict (data-quality alarm, drift or no drift) with its reasons, the
caller's context lines, an overview table (with the rule that made each drifted feature drift:
its tests, or its share of values beyond the reference's range) and the statistics chart, one
block per feature (its tests, drifted ones highlighted, and its reference/current distribution;
drifted features are open, the others folded), the multivariate (MMD) test, the data-quality
checks (failed first; an out-of-range check counted as drift says so), prediction drift with the
histogram of the champion's output (scores, predicted classes or values, by task; a binary
model's predicted classes' shares beside its scores), the
performance checks, the history of the recent windows, and the settings the detector ran with.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_mlops.drift.figures import (
    coerce_history,
    drift_share,
    feature_distribution_svg,
    history_svg,
    main_test,
    prediction_classes_svg,
    prediction_svg,
    statistics_svg,
    verdict,
)
from airflow_mlops.drift.report import DriftReport, FeatureDrift, QualityCheck, TestResult
from airflow_mlops.exceptions import DriftInputError
from airflow_mlops.reports import format_value, render_page

__all__ = ["render_html"]

_NAV = (
    ("features", "Features"),
    ("multivariate", "Multivariate"),
    ("quality", "Data quality"),
    ("prediction", "Prediction drift"),
    ("performance", "Performance"),
    ("estimated", "Estimated performance"),
    ("history", "History"),
    ("settings", "Settings"),
)

_TEMPLATE = """{% extends "page.html" %}
{% import "macros.html" as m %}
{% macro tests_table(tests) %}
{% if tests %}
{% call m.table(["Test", "Statistic", "p-value", "Adjusted p", "Threshold", "Verdict", "How"], "tests") %}
{% for t in tests %}{{ m.tr("drifted" if t.drifted else "") }}<td>{{ t.test }}</td>{{ m.cell(t.statistic) }}{{ m.cell(t.p_value) }}{{ m.cell(t.adjusted_p_value) }}{{ m.cell(t.threshold) }}<td>{{ m.verdict(t.drifted) }}</td><td>{{ t.detail }}</td></tr>{% endfor %}
{% endcall %}
{% else %}{{ m.missing("No test ran.") }}{% endif %}
{% endmacro %}
{% block lead %}<p class="muted">{{ meta|join(" \u00b7 ") }}</p>{% endblock %}
{% block content %}
<section class="banner {{ banner_css }}" id="verdict"><div class="verdict">{{ banner_words }}</div>
{% if reasons %}<ul class="reasons">{% for r in reasons %}<li>{{ r }}</li>{% endfor %}</ul>{% else %}{{ m.missing("No test fired.") }}{% endif %}
</section>
{{ m.context(context) }}
{{ m.nav(nav) }}
{% call m.section("features", "Features") %}
{% if not features %}{{ m.missing("No feature was tested in this report.") }}{% else %}
<p>{{ share_text }}; kinds: {{ kinds }}. Dataset drift by the share rule: {{ m.verdict(dataset_drift) }}</p>
{% call m.table(["Feature", "Kind", "Main test", "Value", "Threshold", "Tests", "Beyond range", "Verdict", "Rule"], "overview") %}
{% for f in features %}{{ m.tr("drifted" if f.drifted else "") }}<td><a href="#f-{{ loop.index0 }}">{{ f.name }}</a></td><td>{{ f.kind }}</td><td>{{ f.test }}</td><td class="num">{{ f.value }}</td><td class="num">{{ f.threshold }}</td><td>{{ f.tests|length }}</td><td class="num">{{ f.beyond }}</td><td>{{ m.verdict(f.drifted) }}</td><td>{{ f.rules }}</td></tr>
{% endfor %}
{% endcall %}
<h3>Statistic per feature and test</h3>{{ m.figure(statistics) }}
<h3>Per feature</h3>
{% for f in features %}
<details class="feature{{ ' drifted' if f.drifted else '' }}" id="f-{{ loop.index0 }}"{{ ' open' if f.drifted else '' }}><summary>{{ f.name }} <span class="muted">{{ f.kind }}</span> {{ m.verdict(f.drifted) }}</summary>
{% if f.drifted %}<p>Drifted by rule: {{ f.rules }} \u2013 {{ f.explanation }}</p>{% endif %}
{% if f.out_of_range %}<p class="muted">{{ f.out_of_range }}</p>{% endif %}
<div class="feature-body"><div>{{ tests_table(f.tests) }}</div>{{ m.figure(f.figure) }}</div></details>
{% endfor %}
{% endif %}
{% endcall %}
{% call m.section("multivariate", "Multivariate drift") %}
{% if mv is none %}{{ m.missing("No multivariate test in this report.") }}{% else %}
{% call m.table(none, "multivariate") %}
{% for key, value in mv_rows %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>{% endfor %}
{{ m.tr("drifted" if mv.drifted else "") }}<th>Verdict</th><td>{{ m.verdict(mv.drifted) }}</td></tr>
{% endcall %}
{% endif %}
{% endcall %}
{% call m.section("quality", "Data quality") %}
{% if not quality %}{{ m.missing("No data-quality check in this report.") }}{% else %}
<p>{{ quality_passed }} of {{ quality|length }} checks passed; {{ alarms }} data-quality alarm(s).{{ " A failed check marked DRIFT counts as drift of its column (out_of_range: drift), not as an alarm." if quality_as_drift else "" }}</p>
{% call m.table(["Check", "Column", "Reference", "Current", "Threshold", "Result", "Message"], "quality") %}
{% for q, css, word in quality %}{{ m.tr("" if q.passed else "failed") }}<td>{{ q.check }}</td><td>{% if q.column is none %}<em>table</em>{% else %}{{ q.column }}{% endif %}</td>{{ m.cell(q.reference) }}{{ m.cell(q.current) }}{{ m.cell(q.threshold) }}<td>{{ m.tag(css, word) }}</td><td>{{ q.message }}</td></tr>
{% endfor %}
{% endcall %}
{% endif %}
{% endcall %}
{% call m.section("prediction", "Prediction drift") %}
{% if prediction is none %}{{ m.missing("No prediction drift check in this report.") }}{% else %}
<p>The champion's output ({{ prediction.subject }}, {{ prediction.task }} model): {{ prediction.reference_rows }} reference rows, {{ prediction.current_rows }} current rows. {{ m.verdict(prediction.drifted) }}</p>
<div class="feature-body"><div>{{ tests_table(prediction.tests) }}</div>{{ m.figure(prediction_figure) }}</div>
{% if prediction.class_tests %}<h3>Predicted classes</h3>
<p>{{ prediction.class_subject|capitalize }}: drift when the chi-squared test is significant (the distances are shown beside it). {{ m.verdict(prediction.class_drifted) }}</p>
<div class="feature-body"><div>{{ tests_table(prediction.class_tests) }}</div>{{ m.figure(prediction_classes_figure) }}</div>{% endif %}
{% endif %}
{% endcall %}
{% call m.section("performance", "Performance") %}
{% if not performance %}{{ m.missing("No performance check in this report (no labels or no metrics).") }}{% else %}
{% call m.table(["Metric", "Expected", "Current", "Drop", "Max drop", "Verdict"], "performance") %}
{% for p in performance %}{{ m.tr("drifted" if p.drifted else "") }}<td>{{ p.metric }}</td>{{ m.cell(p.expected) }}{{ m.cell(p.current) }}{{ m.cell(p.drop) }}{{ m.cell(p.max_drop) }}<td>{{ m.verdict(p.drifted) }}</td></tr>
{% endfor %}
{% endcall %}
{{ m.missing("Drop: how much worse the live value is, in the metric's units (positive = worse).") }}
{% endif %}
{% endcall %}
{% call m.section("estimated", "Estimated performance") %}
{% if estimated is none %}{{ m.missing("No estimate in this report (the champion has no stored calibration).") }}{% else %}
<p>The champion's metrics estimated from its calibrated scores ({{ estimated.method }}, {{ estimated.rows }} rows; {{ estimated.interval }}){{ "; realised on the window's labels beside them" if estimated.labelled else "; the window has no labels" }}.</p>
{% call m.table(["Metric", "Estimate", "Interval low", "Interval high", "Realised", "Recorded", "Estimated drop"], "estimated") %}
{% for e in estimated.metrics %}<tr><td>{{ e.metric }}</td>{{ m.cell(e.estimate) }}{{ m.cell(e.low) }}{{ m.cell(e.high) }}{{ m.cell(e.realised) }}{{ m.cell(e.reference) }}{{ m.cell(e.drop) }}</tr>
{% endfor %}
{% endcall %}
{{ m.missing("Recorded: the champion's evaluation; estimated drop: how much worse the estimate is (positive = worse).") }}
{% endif %}
{% endcall %}
{% call m.section("history", "History") %}
<p>{{ windows|length }} window(s), oldest first; the last one is this report.</p>
{% call m.table(["#", "Window (created)", "Verdict", "Drifted features", "Share", "Current rows"], "history") %}
{% for w in windows %}{{ m.tr("drifted" if w.css != "ok" else "") }}<td class="num">{{ loop.index }}</td><td>{{ w.created_at }}{{ " (this report)" if loop.last else "" }}</td><td>{{ m.tag(w.css, w.word) }}</td><td class="num">{{ w.drifted }} of {{ w.features }}</td><td class="num">{{ w.share }}</td><td class="num">{{ w.current_rows }}</td></tr>
{% endfor %}
{% endcall %}
{{ m.figure(history_figure) }}
{% endcall %}
{% call m.section("settings", "Settings") %}
{% if not settings %}{{ m.missing("No settings recorded.") }}{% else %}
<details><summary>Detector settings</summary>
{% call m.table(["Setting", "Value"], "settings") %}
{% for key, value in settings %}<tr><td>{{ key }}</td><td>{{ value }}</td></tr>{% endfor %}
{% endcall %}
</details>
{% endif %}
{% endcall %}
{% endblock %}
"""


def render_html(
    report: DriftReport,
    *,
    history: Sequence[DriftReport | Mapping[str, Any]] = (),
    title: str = "",
    context: Mapping[str, str] | None = None,
) -> str:
    """The drift report as one self-contained HTML document.

    :param report: the report of the current window.
    :param history: earlier reports of recent windows, oldest first, as :class:`DriftReport`
        objects or their ``to_dict()`` output; the history section shows them and ``report``.
    :param title: the page title (default: "Drift report").
    :param context: lines shown under the verdict, e.g. ``{"pipeline": ..., "window": ...,
        "model": ..., "MLflow run": ...}``; keys and values are shown as text (escaped).
    :raises DriftInputError: a history entry or a histogram is malformed.
    """
    if not isinstance(report, DriftReport):
        raise DriftInputError(
            f"render_html needs a DriftReport, got a {type(report).__name__}; rebuild a stored report "
            f"with DriftReport.from_dict(...)"
        )
    windows = [*coerce_history(history), report]
    css, _ = verdict(report)
    quality = sorted(report.quality, key=lambda q: q.passed)  # failed first, stable otherwise
    failed = sum(1 for q in report.quality if not q.passed)
    alarms = sum(1 for q in report.quality if q.alarm)
    mv = report.multivariate
    return render_page(
        _TEMPLATE,
        title=title or "Drift report",
        meta=[
            f"created {report.created_at}",
            f"reference rows {report.reference_rows}",
            f"current rows {report.current_rows}",
            _share_text(report),
        ],
        banner_css=css,
        banner_words=_verdict_words(report),
        reasons=report.reasons,
        context=dict(context or {}),
        nav=_NAV,
        features=[_feature_row(f) for f in report.features],
        share_text=_share_text(report),
        kinds=", ".join(sorted({f.kind for f in report.features})),
        dataset_drift=report.dataset_drift,
        statistics=statistics_svg(report.features) if report.features else "",
        mv=mv,
        mv_rows=_multivariate_rows(report),
        quality=[(q, *_quality_status(q)) for q in quality],
        quality_passed=len(report.quality) - failed,
        alarms=alarms,
        quality_as_drift=failed > alarms,
        prediction=report.prediction,
        prediction_figure=prediction_svg(report) if report.prediction is not None else "",
        prediction_classes_figure=prediction_classes_svg(report),
        performance=report.performance,
        estimated=_estimated(report.estimated_performance),
        windows=[_window_row(w) for w in windows],
        history_figure=history_svg(windows),
        settings=_settings_rows(report.settings),
    )


# --- what the template shows ------------------------------------------------------------------


def _estimated(estimate: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The estimated-performance section's data (None: no estimate)."""
    if not estimate:
        return None
    metrics = list(estimate.get("metrics") or ())
    method = {"cbpe": "CBPE", "dle": "direct loss estimation"}.get(str(estimate.get("method")), "?")
    samples = int(estimate.get("samples") or 0)
    how = f"{samples} label draws" if samples else "normal approximation"
    return {
        "method": method,
        "rows": estimate.get("rows"),
        "interval": f"{float(estimate.get('confidence') or 0):.0%} interval from {how}",
        "labelled": any(m.get("realised") is not None for m in metrics),
        "metrics": metrics,
    }


def _share_text(report: DriftReport) -> str:
    share = drift_share(report)
    if share is None:
        return "no feature tested"
    return f"{len(report.drifted_features)} of {len(report.features)} features drifted ({share:.0%})"


def _verdict_words(report: DriftReport) -> str:
    if report.quality_failed:
        words = "Data-quality alarm: the live window looks broken"
        return words + " (drift was detected too)" if report.drifted else words
    return "Drift detected" if report.drifted else "No drift"


def _test_label(test: TestResult | None) -> tuple[str, str, str]:
    """(test name, value, threshold) of the overview table."""
    if test is None:
        return "\u2013", "\u2013", "\u2013"
    if test.p_value is not None:
        p = test.adjusted_p_value if test.adjusted_p_value is not None else test.p_value
        word = "adj p" if test.adjusted_p_value is not None else "p"
        return test.test, f"{word} {format_value(p)}", f"alpha {format_value(test.threshold)}"
    return test.test, format_value(test.statistic), format_value(test.threshold)


def _overview_label(feature: FeatureDrift) -> tuple[str, str, str]:
    """The overview's test, value and threshold: a categorical feature's chi-squared test (what
    decides it) with its first distance beside it; otherwise the main test."""
    chi2 = feature.test("chi2") if feature.kind == "categorical" else None
    if chi2 is None:
        return _test_label(main_test(feature))
    test, value, threshold = _test_label(chi2)
    distance = next((t for t in feature.tests if t.p_value is None), None)
    if distance is None:
        return test, value, threshold
    name, d_value, d_threshold = _test_label(distance)
    return f"{test} + {name}", f"{value}; {d_value}", f"{threshold}; {d_threshold}"


_RULE_WORDS = {"tests": "tests (significant and large)", "out_of_range": "beyond the reference's range"}


def _rules_text(feature: FeatureDrift) -> str:
    """Which rule made the feature drift ("" when it did not)."""
    words = dict(_RULE_WORDS)
    if feature.kind == "categorical" and feature.test("chi2") is not None:
        words["tests"] = "tests (significant)"
    return " + ".join(words.get(r, r) for r in feature.rules)


def _feature_row(feature: FeatureDrift) -> dict[str, Any]:
    test, value, threshold = _overview_label(feature)
    oor = feature.out_of_range
    return {
        "name": feature.name,
        "kind": feature.kind,
        "drifted": feature.drifted,
        "test": test,
        "value": value,
        "threshold": threshold,
        "tests": feature.tests,
        "beyond": "\u2013" if oor is None else format_value(oor.share),
        "rules": _rules_text(feature),
        "explanation": feature.explain(),
        "out_of_range": "" if oor is None else f"{oor.describe()} (limit {format_value(oor.threshold)})",
        "figure": feature_distribution_svg(feature),
    }


def _multivariate_rows(report: DriftReport) -> list[tuple[str, str]]:
    mv = report.multivariate
    if mv is None:
        return []
    return [
        ("Test", mv.test),
        ("Statistic (MMD\u00b2)", format_value(mv.statistic)),
        ("p-value", format_value(mv.p_value)),
        ("alpha", format_value(mv.threshold)),
        ("Permutations", format_value(mv.permutations)),
        ("Rows used", f"{mv.reference_rows} reference, {mv.current_rows} current"),
        ("Kernel bandwidth", format_value(mv.bandwidth)),
        ("Device", mv.device),
        (f"Features ({len(mv.features)})", ", ".join(mv.features) or "\u2013"),
    ]


def _quality_status(check: QualityCheck) -> tuple[str, str]:
    """``(tag class, word)`` of a data-quality check's result."""
    if check.passed:
        return "passed", "passed"
    if check.action == "drift":
        return "drift", "DRIFT (not an alarm)"
    if check.action == "both":
        return "failed", "FAILED (alarm and drift)"
    return "failed", "FAILED"


def _window_row(window: DriftReport) -> dict[str, Any]:
    css, word = verdict(window)
    share = drift_share(window)
    return {
        "created_at": window.created_at,
        "css": css,
        "word": word,
        "drifted": len(window.drifted_features),
        "features": len(window.features),
        "share": "\u2013" if share is None else f"{share:.0%}",
        "current_rows": window.current_rows,
    }


def _settings_rows(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key in sorted(settings, key=str):
        value = settings[key]
        text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value
        if isinstance(value, float) and math.isnan(value):
            text = "NaN"
        rows.append((str(key), text))
    return rows
