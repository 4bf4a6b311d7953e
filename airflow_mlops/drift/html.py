"""The drift report as one self-contained HTML page (standard library only).

:func:`render_html` returns a single HTML document: its stylesheet is inline, its plots are inline
SVG drawn by :mod:`airflow_mlops.drift.figures`, and it loads nothing (no script, font, image or
stylesheet from anywhere), so it reads the same opened from the artifact store, downloaded, or
shown in MLflow's artifact viewer. A ``Content-Security-Policy`` meta tag forbids scripts and
every fetch as a second line of defence; the first is that every string from the data (feature
and category names, reasons, the caller's context) is escaped.

The page, top to bottom: the verdict (data-quality alarm, drift or no drift) with its reasons, the
caller's context lines, an overview table (with the rule that made each drifted feature drift:
its tests, or its share of values beyond the reference's range) and the statistics chart, one
block per feature (its tests, drifted ones highlighted, and its reference/current distribution;
drifted features are open, the others folded), the multivariate (MMD) test, the data-quality
checks (failed first; an out-of-range check counted as drift says so), prediction drift with the
histogram of the champion's output (scores, predicted classes or values, by task), the
performance checks, the history of the recent windows, and the settings the detector ran with.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_mlops.drift.figures import (
    coerce_history,
    drift_share,
    escape,
    feature_distribution_svg,
    format_value,
    history_svg,
    main_test,
    prediction_svg,
    statistics_svg,
    verdict,
)
from airflow_mlops.drift.report import DriftReport, FeatureDrift, QualityCheck, TestResult
from airflow_mlops.exceptions import DriftInputError

__all__ = ["render_html"]

_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;
 max-width:1180px;margin:0 auto;padding:16px 24px 40px}
h1{font-size:22px;margin:4px 0}
h2{font-size:18px;margin:30px 0 8px;padding-bottom:4px;border-bottom:1px solid #e3e6ea}
h3{font-size:15px;margin:14px 0 4px}
.muted{color:#666}
.banner{border-left:6px solid;border-radius:6px;padding:10px 16px;margin:14px 0}
.banner.ok{background:#eef8ee;border-color:#2ca02c}
.banner.drift{background:#fdeeee;border-color:#d62728}
.banner.alarm{background:#f3eefa;border-color:#9467bd}
.banner .verdict{font-size:19px;font-weight:700}
.banner ul{margin:6px 0 0;padding-left:20px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border-bottom:1px solid #e3e6ea;padding:3px 12px 3px 4px;text-align:left;vertical-align:top}
th{background:#f6f7f9;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.drifted td,tr.failed td{background:#fdeeee}
tr.drifted td:first-child,tr.failed td:first-child{box-shadow:inset 3px 0 #d62728}
.tag{display:inline-block;padding:0 6px;border-radius:3px;font-size:12px;font-weight:600}
.tag.drift,.tag.failed{background:#d62728;color:#fff}
.tag.ok,.tag.passed{background:#e3f2e3;color:#1d6b1d}
.tag.alarm{background:#9467bd;color:#fff}
details.feature{border:1px solid #e3e6ea;border-radius:6px;margin:8px 0;padding:4px 12px}
details.feature.drifted{border-color:#d62728}
details summary{cursor:pointer;font-weight:600}
.feature-body{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
figure{margin:8px 0}
svg{max-width:100%;height:auto}
nav a{margin-right:14px}
dl.context{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:8px 0}
dl.context dt{font-weight:600}
dl.context dd{margin:0;word-break:break-all}
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
    heading = title or "Drift report"
    return html_page(
        heading,
        [
            _banner(report),
            _context(context),
            _nav(),
            _features_section(report),
            _multivariate_section(report),
            _quality_section(report.quality),
            _prediction_section(report),
            _performance_section(report),
            _history_section(windows),
            _settings_section(report.settings),
        ],
        header_extra=_meta_line(report),
    )


def html_page(heading: str, sections: list[str], *, header_extra: str = "", style: str | None = None) -> str:
    """A self-contained report page: no scripts, no external resources (a CSP says so), the
    house style; ``sections`` are HTML fragments (empty ones are left out)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{escape(_CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="airflow-mlops">',
        f"<title>{escape(heading)}</title><style>{_STYLE if style is None else style}</style></head><body>",
        f"<header><h1>{escape(heading)}</h1>{header_extra}</header>",
        *sections,
        '<footer class="muted"><p>Written by airflow-mlops. Self-contained: no scripts, no '
        "external resources.</p></footer>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


# --- small pieces ----------------------------------------------------------------------------


def _tag(css: str, text: str) -> str:
    return f'<span class="tag {css}">{escape(text)}</span>'


def _drift_tag(drifted: bool) -> str:
    return _tag("drift", "DRIFT") if drifted else _tag("ok", "ok")


def _cell(value: object) -> str:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    css = ' class="num"' if numeric else ""
    return f"<td{css}>{escape(format_value(value))}</td>"


def _table(headers: Iterable[str] | None, rows: Iterable[tuple[str, str]], css: str = "") -> str:
    """``rows`` are ``(tr class, cells html)``, cells already escaped; no head row when ``headers`` is None."""
    head = (
        ""
        if headers is None
        else "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr></thead>"
    )
    body = "".join(
        f'<tr class="{row_css}">{cells}</tr>' if row_css else f"<tr>{cells}</tr>" for row_css, cells in rows
    )
    css_attr = f' class="{css}"' if css else ""
    return f"<table{css_attr}>{head}<tbody>{body}</tbody></table>"


def _section(anchor: str, title: str, content: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{content}</section>'


def _missing(text: str) -> str:
    return f'<p class="muted">{escape(text)}</p>'


def _share_text(report: DriftReport) -> str:
    share = drift_share(report)
    if share is None:
        return "no feature tested"
    return f"{len(report.drifted_features)} of {len(report.features)} features drifted ({share:.0%})"


# --- sections --------------------------------------------------------------------------------


def _meta_line(report: DriftReport) -> str:
    items = [
        f"created {report.created_at}",
        f"reference rows {report.reference_rows}",
        f"current rows {report.current_rows}",
        _share_text(report),
    ]
    sep = " \u00b7 "
    return f'<p class="muted">{sep.join(escape(i) for i in items)}</p>'


def _banner(report: DriftReport) -> str:
    css, _ = verdict(report)
    if report.quality_failed:
        words = "Data-quality alarm: the live window looks broken"
        if report.drifted:
            words += " (drift was detected too)"
    elif report.drifted:
        words = "Drift detected"
    else:
        words = "No drift"
    reasons = "".join(f"<li>{escape(r)}</li>" for r in report.reasons)
    reasons_html = f'<ul class="reasons">{reasons}</ul>' if reasons else _missing("No test fired.")
    return f'<section class="banner {css}" id="verdict"><div class="verdict">{escape(words)}</div>{reasons_html}</section>'


def _context(context: Mapping[str, str] | None) -> str:
    if not context:
        return ""
    lines = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in context.items())
    return f'<dl class="context">{lines}</dl>'


def _nav() -> str:
    links = [
        ("features", "Features"),
        ("multivariate", "Multivariate"),
        ("quality", "Data quality"),
        ("prediction", "Prediction drift"),
        ("performance", "Performance"),
        ("history", "History"),
        ("settings", "Settings"),
    ]
    return "<nav>" + "".join(f'<a href="#{a}">{escape(t)}</a>' for a, t in links) + "</nav>"


def _test_label(test: TestResult | None) -> tuple[str, str, str]:
    """(test name, value, threshold) of the overview table."""
    if test is None:
        return "\u2013", "\u2013", "\u2013"
    if test.p_value is not None:
        p = test.adjusted_p_value if test.adjusted_p_value is not None else test.p_value
        word = "adj p" if test.adjusted_p_value is not None else "p"
        return test.test, f"{word} {format_value(p)}", f"alpha {format_value(test.threshold)}"
    return test.test, format_value(test.statistic), format_value(test.threshold)


def _features_section(report: DriftReport) -> str:
    if not report.features:
        return _section("features", "Features", _missing("No feature was tested in this report."))
    kinds = sorted({f.kind for f in report.features})
    summary = (
        f"<p>{escape(_share_text(report))}; kinds: {escape(', '.join(kinds))}. "
        f"Dataset drift by the share rule: {_drift_tag(report.dataset_drift)}</p>"
    )
    rows = []
    for index, feature in enumerate(report.features):
        test_name, value, threshold = _test_label(main_test(feature))
        cells = (
            f'<td><a href="#f-{index}">{escape(feature.name)}</a></td><td>{escape(feature.kind)}</td>'
            f'<td>{escape(test_name)}</td><td class="num">{escape(value)}</td>'
            f'<td class="num">{escape(threshold)}</td><td>{len(feature.tests)}</td>'
            f'<td class="num">{escape(_beyond_text(feature))}</td>'
            f"<td>{_drift_tag(feature.drifted)}</td><td>{escape(_rules_text(feature))}</td>"
        )
        rows.append(("drifted" if feature.drifted else "", cells))
    overview = _table(
        ["Feature", "Kind", "Main test", "Value", "Threshold", "Tests", "Beyond range", "Verdict", "Rule"],
        rows,
        "overview",
    )
    chart = f"<h3>Statistic per feature and test</h3><figure>{statistics_svg(report.features)}</figure>"
    blocks = "".join(_feature_block(i, f) for i, f in enumerate(report.features))
    return _section(
        "features",
        "Features",
        summary + overview + chart + f"<h3>Per feature</h3>{blocks}",
    )


def _tests_table(tests: Sequence[TestResult]) -> str:
    if not tests:
        return _missing("No test ran.")
    rows = []
    for test in tests:
        cells = (
            f"<td>{escape(test.test)}</td>{_cell(test.statistic)}{_cell(test.p_value)}"
            f"{_cell(test.adjusted_p_value)}{_cell(test.threshold)}<td>{_drift_tag(test.drifted)}</td>"
        )
        rows.append(("drifted" if test.drifted else "", cells))
    return _table(["Test", "Statistic", "p-value", "Adjusted p", "Threshold", "Verdict"], rows, "tests")


_RULE_WORDS = {"tests": "tests (significant and large)", "out_of_range": "beyond the reference's range"}


def _rules_text(feature: FeatureDrift) -> str:
    """Which rule made the feature drift ("" when it did not)."""
    return " + ".join(_RULE_WORDS.get(r, r) for r in feature.rules)


def _beyond_text(feature: FeatureDrift) -> str:
    return "\u2013" if feature.out_of_range is None else format_value(feature.out_of_range.share)


def _feature_block(index: int, feature: FeatureDrift) -> str:
    css = "feature drifted" if feature.drifted else "feature"
    is_open = " open" if feature.drifted else ""
    summary = f'{escape(feature.name)} <span class="muted">{escape(feature.kind)}</span> {_drift_tag(feature.drifted)}'
    notes = []
    if feature.drifted:
        notes.append(
            f"<p>Drifted by rule: {escape(_rules_text(feature))} \u2013 {escape(feature.explain())}</p>"
        )
    if feature.out_of_range is not None:
        notes.append(
            f'<p class="muted">{escape(feature.out_of_range.describe())} '
            f"(limit {escape(format_value(feature.out_of_range.threshold))})</p>"
        )
    body = (
        "".join(notes) + f'<div class="feature-body"><div>{_tests_table(feature.tests)}</div>'
        f"<figure>{feature_distribution_svg(feature)}</figure></div>"
    )
    return f'<details class="{css}" id="f-{index}"{is_open}><summary>{summary}</summary>{body}</details>'


def _multivariate_section(report: DriftReport) -> str:
    mv = report.multivariate
    if mv is None:
        return _section(
            "multivariate", "Multivariate drift", _missing("No multivariate test in this report.")
        )
    rows = [
        ("Test", escape(mv.test)),
        ("Statistic (MMD\u00b2)", escape(format_value(mv.statistic))),
        ("p-value", escape(format_value(mv.p_value))),
        ("alpha", escape(format_value(mv.threshold))),
        ("Permutations", escape(format_value(mv.permutations))),
        ("Rows used", escape(f"{mv.reference_rows} reference, {mv.current_rows} current")),
        ("Kernel bandwidth", escape(format_value(mv.bandwidth))),
        ("Device", escape(mv.device)),
        (f"Features ({len(mv.features)})", escape(", ".join(mv.features)) or "\u2013"),
        ("Verdict", _drift_tag(mv.drifted)),
    ]
    table = _table(
        None,
        (
            ("drifted" if mv.drifted and key == "Verdict" else "", f"<th>{escape(key)}</th><td>{value}</td>")
            for key, value in rows
        ),
        "multivariate",
    )
    return _section("multivariate", "Multivariate drift", table)


def _quality_section(quality: Sequence[QualityCheck]) -> str:
    if not quality:
        return _section("quality", "Data quality", _missing("No data-quality check in this report."))
    ordered = sorted(quality, key=lambda q: q.passed)  # failed first, stable otherwise
    failed = sum(1 for q in quality if not q.passed)
    rows = []
    for check in ordered:
        if check.passed:
            status = _tag("passed", "passed")
        elif check.action == "drift":
            status = _tag("drift", "DRIFT (not an alarm)")
        elif check.action == "both":
            status = _tag("failed", "FAILED (alarm and drift)")
        else:
            status = _tag("failed", "FAILED")
        cells = (
            f"<td>{escape(check.check)}</td><td>{escape(check.column) if check.column is not None else '<em>table</em>'}</td>"
            f"{_cell(check.reference)}{_cell(check.current)}{_cell(check.threshold)}<td>{status}</td>"
            f"<td>{escape(check.message)}</td>"
        )
        rows.append(("" if check.passed else "failed", cells))
    alarms = sum(1 for q in quality if q.alarm)
    head = (
        f"<p>{len(quality) - failed} of {len(quality)} checks passed; {alarms} data-quality alarm(s)."
        + (
            " A failed check marked DRIFT counts as drift of its column (out_of_range: drift), not as an alarm."
            if failed > alarms
            else ""
        )
        + "</p>"
    )
    table = _table(
        ["Check", "Column", "Reference", "Current", "Threshold", "Result", "Message"], rows, "quality"
    )
    return _section("quality", "Data quality", head + table)


def _prediction_section(report: DriftReport) -> str:
    prediction = report.prediction
    if prediction is None:
        return _section(
            "prediction", "Prediction drift", _missing("No prediction drift check in this report.")
        )
    head = (
        f"<p>The champion's output ({escape(prediction.subject)}, {escape(prediction.task)} model): "
        f"{escape(str(prediction.reference_rows))} reference rows, "
        f"{escape(str(prediction.current_rows))} current rows. {_drift_tag(prediction.drifted)}</p>"
    )
    body = (
        f'<div class="feature-body"><div>{_tests_table(prediction.tests)}</div>'
        f"<figure>{prediction_svg(report)}</figure></div>"
    )
    return _section("prediction", "Prediction drift", head + body)


def _performance_section(report: DriftReport) -> str:
    if not report.performance:
        return _section(
            "performance",
            "Performance",
            _missing("No performance check in this report (no labels or no metrics)."),
        )
    rows = []
    for check in report.performance:
        drop = check.drop
        cells = (
            f"<td>{escape(check.metric)}</td>{_cell(check.expected)}{_cell(check.current)}"
            f"{_cell(drop)}{_cell(check.max_drop)}<td>{_drift_tag(check.drifted)}</td>"
        )
        rows.append(("drifted" if check.drifted else "", cells))
    table = _table(["Metric", "Expected", "Current", "Drop", "Max drop", "Verdict"], rows, "performance")
    note = _missing("Drop: how much worse the live value is, in the metric's units (positive = worse).")
    return _section("performance", "Performance", table + note)


def _history_section(windows: Sequence[DriftReport]) -> str:
    rows = []
    for i, window in enumerate(windows):
        css, word = verdict(window)
        share = drift_share(window)
        current = " (this report)" if i == len(windows) - 1 else ""
        share_text = "\u2013" if share is None else f"{share:.0%}"
        cells = (
            f'<td class="num">{i + 1}</td><td>{escape(window.created_at)}{escape(current)}</td>'
            f"<td>{_tag(css, word)}</td>"
            f'<td class="num">{len(window.drifted_features)} of {len(window.features)}</td>'
            f'<td class="num">{escape(share_text)}</td>'
            f'<td class="num">{window.current_rows}</td>'
        )
        rows.append(("drifted" if css != "ok" else "", cells))
    table = _table(
        ["#", "Window (created)", "Verdict", "Drifted features", "Share", "Current rows"], rows, "history"
    )
    intro = f"<p>{len(windows)} window(s), oldest first; the last one is this report.</p>"
    return _section("history", "History", intro + table + f"<figure>{history_svg(windows)}</figure>")


def _settings_section(settings: Mapping[str, Any]) -> str:
    if not settings:
        return _section("settings", "Settings", _missing("No settings recorded."))
    rows = []
    for key in sorted(settings, key=str):
        value = settings[key]
        text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value
        if isinstance(value, float) and math.isnan(value):
            text = "NaN"
        rows.append(("", f"<td>{escape(key)}</td><td>{escape(text)}</td>"))
    table = _table(["Setting", "Value"], rows, "settings")
    return _section("settings", "Settings", f"<details><summary>Detector settings</summary>{table}</details>")
