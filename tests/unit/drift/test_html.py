"""The drift HTML report: structure, escaping, edge cases (never pixels); its SVG figures are in
test_drift_figures.py."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.drift.figures import statistics_svg, write_figures
from airflow_mlops.drift.html import render_html
from airflow_mlops.drift.report import DriftReport, FeatureDrift, TestResult
from airflow_mlops.exceptions import DriftInputError
from tests.unit.drift.builders import (
    HOSTILE,
    HOSTILE_NAME,
    SVG_NS,
    binary_prediction_with_shares,
    categorical,
    full_report,
    history_windows,
    make_report,
    numeric,
)


class _Collector(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def with_class(self, tag: str, css: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and css in (a.get("class") or "").split()]


def parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    collector.close()
    return collector


def inline_svgs(page: str) -> list[ET.Element]:
    """Every inline ``<svg>`` of the page, parsed as XML (raises if one is not well-formed)."""
    fragments = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    return [ET.fromstring(f) for f in fragments]


def svg_class(root: ET.Element) -> str:
    return root.get("class", "")


# --- the page --------------------------------------------------------------------------------


def test_page_is_self_contained_and_loads_nothing() -> None:
    page = render_html(full_report(), title="credit: drift", context={"pipeline": "credit"})
    doc = parse(page)
    tags = {t for t, _ in doc.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "base"}
    assert not any(k.startswith("on") for _, attrs in doc.tags for k in attrs)
    assert not any(k in ("src", "srcset") for _, attrs in doc.tags for k in attrs)
    # the only URL is the SVG namespace; links point inside the page
    urls = set(re.findall(r"https?://[^\"'\s<>]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}
    assert all((a.get("href") or "").startswith("#") for t, a in doc.tags if t == "a")
    csp = [a for t, a in doc.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in (csp[0]["content"] or "")
    assert "url(" not in page and "@import" not in page


def test_one_distribution_per_feature_and_every_svg_is_xml() -> None:
    report = full_report()
    svgs = inline_svgs(render_html(report))
    classes = [svg_class(s) for s in svgs]
    # one per feature plus the prediction-score histogram
    assert classes.count("distribution") == len(report.features) + 1
    assert classes.count("statistics") == 1
    assert classes.count("history") == 1
    for root in svgs:
        assert root.tag == f"{SVG_NS}svg"
        assert root.find(f"{SVG_NS}title") is not None


def test_drifted_features_are_marked() -> None:
    report = full_report()
    doc = parse(render_html(report))
    blocks = doc.with_class("details", "feature")
    assert len(blocks) == len(report.features)
    drifted_blocks = doc.with_class("details", "drifted")
    assert [b["id"] for b in drifted_blocks] == [f"f-{i}" for i, f in enumerate(report.features) if f.drifted]
    # drifted blocks are open, the others folded
    assert all("open" in b for b in drifted_blocks)
    assert all("open" not in b for b in blocks if b not in drifted_blocks)
    # overview rows and the per-test rows are highlighted for drifted features / tests
    overview_rows = re.search(r'<table class="overview">.*?</table>', render_html(report), re.S)
    assert overview_rows is not None
    assert overview_rows.group(0).count('<tr class="drifted">') == len(report.drifted_features)
    drifted_tests = sum(t.drifted for f in report.features for t in f.tests)
    tests_tables = re.findall(r'<table class="tests">.*?</table>', render_html(report), re.S)
    # feature test tables + the prediction test table
    assert sum(t.count('<tr class="drifted">') for t in tests_tables) == drifted_tests + 1


def test_verdict_banner_and_reasons() -> None:
    alarm = full_report()
    assert alarm.quality_failed and alarm.drifted
    doc = parse(render_html(alarm))
    banner = doc.with_class("section", "banner")
    assert len(banner) == 1 and "alarm" in (banner[0]["class"] or "")
    text = "".join(doc.text)
    assert "Data-quality alarm" in text and "drift was detected too" in text
    for reason in alarm.reasons:
        assert reason in text

    drift = full_report(quality=())
    doc = parse(render_html(drift))
    assert "drift" in (doc.with_class("section", "banner")[0]["class"] or "").split()
    assert "Drift detected" in "".join(doc.text)

    calm = make_report((numeric("age"), categorical("plan", ["a", "b"])))
    doc = parse(render_html(calm))
    assert "ok" in (doc.with_class("section", "banner")[0]["class"] or "").split()
    assert "No drift" in "".join(doc.text) and "No test fired." in "".join(doc.text)


def test_context_and_title_are_shown_escaped() -> None:
    context = {"pipeline": "credit", "window": "2025-01-05", "MLflow run": HOSTILE, HOSTILE_NAME: "v"}
    page = render_html(full_report(), title=f"drift {HOSTILE}", context=context)
    doc = parse(page)
    assert not [t for t, _ in doc.tags if t in ("script", "img")]
    text = "".join(doc.text)
    for key, value in context.items():
        assert key in text and value in text
    assert f"drift {HOSTILE}" in text


def test_hostile_names_are_text_everywhere() -> None:
    features = (
        numeric(HOSTILE_NAME, drifted=True),
        categorical("city", [HOSTILE, "&amp;", "a\x00b\x1bc"], drifted=True),
    )
    report = make_report(features, reasons=(f"feature {HOSTILE_NAME} drifted",))
    page = render_html(report, history=[report.to_dict()])
    doc = parse(page)
    assert not [t for t, _ in doc.tags if t in ("script", "img")]
    assert "<script>" not in page and "<img" not in page
    text = "".join(doc.text)
    assert HOSTILE_NAME in text
    assert "&amp;" in text  # a category literally named "&amp;" is shown as such, not decoded
    for root in inline_svgs(page):  # control characters do not break the XML
        assert root.tag == f"{SVG_NS}svg"
    category_labels = [
        "".join(el.itertext())
        for root in inline_svgs(page)
        if svg_class(root) == "distribution"
        for el in root.iter(f"{SVG_NS}text")
    ]
    assert any(HOSTILE[:19] in label for label in category_labels)


def test_quality_checks_failed_first() -> None:
    page = render_html(full_report())
    table = re.search(r'<table class="quality">.*?</table>', page, re.S)
    assert table is not None
    rows = re.findall(r"<tr(?: class=\"(\w+)\")?>", table.group(0).split("<tbody>")[1])
    assert rows == ["failed", "", ""]
    assert "2 of 3 checks passed" in page


def test_multivariate_prediction_performance_sections() -> None:
    report = full_report()
    text = "".join(parse(render_html(report)).text)
    mv = report.multivariate
    assert mv is not None
    assert "MMD\u00b2" in text and "0.0123" in text and "200" in text and "age, income" in text
    assert "roc_auc" in text and "log_loss" in text
    # the drop is computed in the metric's direction: auc 0.9 -> 0.8 is a drop of 0.1
    assert "0.1" in text
    assert "The champion's output (the positive class's probability, binary model)" in text


def test_a_binary_models_predicted_classes_shares_are_shown_beside_its_scores(tmp_path: Path) -> None:
    report = full_report(prediction=binary_prediction_with_shares())
    page = render_html(report)
    text = "".join(parse(page).text)
    assert "Predicted classes" in text
    assert "The shares of the predicted classes (positive: score &gt;= 0.5)" in page
    assert "2 levels, dof 1" in text  # how the chi-squared p-value was computed
    classes = [svg_class(s) for s in inline_svgs(page)]
    assert classes.count("distribution") == len(report.features) + 2  # scores and classes
    tables = re.findall(r'<table class="tests">.*?</table>', page, re.S)
    assert sum("negative" in t or "chi2" in t for t in tables[-2:]) >= 1
    assert tables[-1].count('<tr class="drifted">') == 1  # the chi-squared test of the shares
    paths = write_figures(report, tmp_path / "figures")
    assert tmp_path / "figures" / "prediction_classes.svg" in paths


def test_a_categorical_features_overview_shows_its_test_and_distance() -> None:
    city = replace(categorical("city", ["paris", "rome"], drifted=True), rules=("tests",))
    age = replace(numeric("age", drifted=True), rules=("tests",))
    page = render_html(make_report((age, city, categorical("plan", ["basic", "pro"]))))
    overview = re.search(r'<table class="overview">.*?</table>', page, re.S)
    assert overview is not None
    rows = {r.split("</a>")[0].rsplit(">", 1)[-1]: r for r in overview.group(0).split("<tr")[2:]}
    assert "<td>chi2 + jensen_shannon</td>" in rows["plan"]
    assert "adj p 0.9; 0.01" in rows["plan"] and "alpha 0.05; 0.1" in rows["plan"]
    assert "tests (significant)" in rows["city"] and "significant and large" not in rows["city"]
    assert "tests (significant and large)" in rows["age"] and "<td>psi</td>" in rows["age"]


def test_report_without_optional_parts() -> None:
    report = make_report((numeric("age"),), settings={})
    page = render_html(report)
    text = "".join(parse(page).text)
    assert "No multivariate test in this report." in text
    assert "No prediction drift check in this report." in text
    assert "No performance check in this report" in text
    assert "No data-quality check in this report." in text
    assert "No settings recorded." in text
    classes = [svg_class(s) for s in inline_svgs(page)]
    assert classes.count("distribution") == 1


@pytest.mark.parametrize(
    "features",
    [
        (numeric("a", drifted=True), numeric("b")),  # no categorical feature
        (categorical("c", ["x", "y"]), categorical("d", ["u", "v"], drifted=True)),  # no numeric feature
        (),  # no feature at all
    ],
    ids=["numeric-only", "categorical-only", "no-features"],
)
def test_reports_with_one_kind_or_none(features: tuple[FeatureDrift, ...], tmp_path: Path) -> None:
    report = make_report(features)
    page = render_html(report, history=[report])
    svgs = inline_svgs(page)
    assert [svg_class(s) for s in svgs].count("distribution") == len(features)
    if not features:
        assert "No feature was tested in this report." in "".join(parse(page).text)
    paths = write_figures(report, tmp_path / "figures")
    assert len([p for p in paths if p.parent.name == "distributions"]) == len(features)
    assert (tmp_path / "figures" / "statistics.svg" in paths) == bool(features)
    for path in paths:
        assert ET.parse(path).getroot().tag == f"{SVG_NS}svg"


def test_nan_and_none_values_render() -> None:
    nan_feature = FeatureDrift(
        "all_null",
        "numeric",
        (
            TestResult("ks", math.nan, math.nan, None, 0.05, False),
            TestResult("psi", math.inf, None, None, 0.2, True),
        ),
        True,
        {
            "edges": [0.0, 1.0, 2.0, 3.0],
            "reference": [0.5, None, 0.5],
            "current": [math.nan, math.nan, math.nan],
        },
    )
    cat = FeatureDrift(
        "c",
        "categorical",
        (TestResult("chi2", 3.0, 0.0, 0.0, 0.05, True),),
        True,
        {"categories": ["a", "b"], "reference": [math.nan, 1.0], "current": [0.5, None]},
    )
    report = make_report((nan_feature, cat, numeric("ok_feature")))
    # through JSON, as the monitor stores it (json writes NaN / Infinity)
    report = DriftReport.from_dict(json.loads(json.dumps(report.to_dict())))
    page = render_html(report, history=[report.to_dict()])
    text = "".join(parse(page).text)
    assert "NaN" in text and "\u221e" in text
    assert "no values" in text  # the all-NaN current histogram says so
    assert len(inline_svgs(page)) == 3 + 2  # 3 distributions, statistics, history
    stats = statistics_svg(report.features)
    root = ET.fromstring(stats)
    coords = [
        float(v) for el in root.iter() for k, v in el.attrib.items() if k in ("x", "y", "width", "height")
    ]
    assert all(math.isfinite(c) for c in coords)


# --- history ---------------------------------------------------------------------------------


def test_history_section_in_the_page() -> None:
    windows = history_windows()
    *earlier, current = windows
    page = render_html(current, history=[earlier[0].to_dict(), earlier[1]])
    table = re.search(r'<table class="history">.*?</table>', page, re.S)
    assert table is not None
    rows = table.group(0).split("<tbody>")[1].count("<tr")
    assert rows == 3
    assert "(this report)" in table.group(0)
    assert table.group(0).count("data-quality alarm") == 1
    assert "1 of 2" in table.group(0) and "0 of 1" in table.group(0)
    # history given as dicts or as reports renders the same page
    assert page == render_html(current, history=[earlier[0], earlier[1].to_dict()])


@pytest.mark.parametrize(
    "history, match",
    [
        ([{"drifted": True}], "history entry 0 is not a drift report"),
        ([42], "history entry 0 is a int"),
        ({"drifted": True}, "history must be a sequence"),
    ],
)
def test_bad_history_is_a_clear_error(history: Any, match: str) -> None:
    with pytest.raises(DriftInputError, match=match):
        render_html(full_report(), history=history)


def test_two_hundred_features_stay_small() -> None:
    features = tuple(
        numeric(f"feature_{i:03d}", drifted=i % 7 == 0, bins=30)
        if i % 4
        else categorical(f"cat_{i:03d}", [f"v{j}" for j in range(12)])
        for i in range(200)
    )
    report = make_report(features, quality=full_report().quality, multivariate=full_report().multivariate)
    history = [
        make_report(features, created_at=f"2025-01-{d:02d}T00:00:00+00:00").to_dict() for d in range(1, 10)
    ]
    page = render_html(report, history=history)
    size = len(page.encode("utf-8"))
    print(f"200 features x 30 bins, 10 windows: {size / 1e6:.2f} MB")
    assert size < 2_000_000
    classes = [svg_class(s) for s in inline_svgs(page)]
    assert classes.count("distribution") == 200


def test_render_html_wants_a_report() -> None:
    with pytest.raises(DriftInputError, match=r"DriftReport.from_dict"):
        render_html(full_report().to_dict())  # type: ignore[arg-type]


def test_rendering_imports_no_heavy_module() -> None:
    code = (
        "import sys, airflow_mlops.drift.html, airflow_mlops.drift.figures\n"
        "heavy = {'numpy', 'pandas', 'mlflow', 'torch', 'scipy', 'matplotlib', 'airflow'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
