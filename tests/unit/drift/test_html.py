"""The drift HTML report and its SVG figures: structure, escaping, edge cases (never pixels)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.drift import figures
from airflow_mlops.drift.figures import (
    MAX_CATEGORIES,
    distribution_svg,
    history_svg,
    statistics_svg,
    write_figures,
)
from airflow_mlops.drift.html import render_html
from airflow_mlops.drift.report import (
    DriftReport,
    FeatureDrift,
    MultivariateDrift,
    PerformanceCheck,
    PredictionDrift,
    QualityCheck,
    TestResult,
)
from airflow_mlops.exceptions import DriftInputError

SVG_NS = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert('x')</script>"
HOSTILE_NAME = '"><img src=x onerror=alert(1)>'


# --- fixtures --------------------------------------------------------------------------------


def numeric(name: str, *, drifted: bool = False, bins: int = 10, psi: float | None = None) -> FeatureDrift:
    edges = [float(i) for i in range(bins + 1)]
    reference = [1 / bins] * bins
    current = [(2 if i < bins // 2 else 0) / bins for i in range(bins)] if drifted else reference
    tests = (
        TestResult(
            "ks", 0.31 if drifted else 0.02, 1e-9 if drifted else 0.6, 4e-9 if drifted else 0.9, 0.05, drifted
        ),
        TestResult("psi", psi if psi is not None else (0.8 if drifted else 0.01), None, None, 0.2, drifted),
    )
    return FeatureDrift(
        name, "numeric", tests, drifted, {"edges": edges, "reference": reference, "current": current}
    )


def categorical(name: str, categories: list[str], *, drifted: bool = False) -> FeatureDrift:
    n = len(categories)
    reference = [1 / n] * n
    current = [1.0] + [0.0] * (n - 1) if drifted else reference
    tests = (
        TestResult(
            "chi2",
            40.0 if drifted else 1.0,
            1e-6 if drifted else 0.7,
            2e-6 if drifted else 0.9,
            0.05,
            drifted,
        ),
        TestResult("jensen_shannon", 0.4 if drifted else 0.01, None, None, 0.1, drifted),
    )
    return FeatureDrift(
        name,
        "categorical",
        tests,
        drifted,
        {"categories": categories, "reference": reference, "current": current},
    )


def make_report(
    features: tuple[FeatureDrift, ...],
    *,
    quality: tuple[QualityCheck, ...] = (),
    multivariate: MultivariateDrift | None = None,
    prediction: PredictionDrift | None = None,
    performance: tuple[PerformanceCheck, ...] = (),
    created_at: str = "2025-01-05T00:00:00+00:00",
    reasons: tuple[str, ...] | None = None,
    settings: dict[str, Any] | None = None,
) -> DriftReport:
    drifted_names = [f.name for f in features if f.drifted]
    quality_failed = any(not q.passed for q in quality)
    drifted = bool(drifted_names) or bool(multivariate and multivariate.drifted)
    if reasons is None:
        reasons = tuple(f"feature {n!r} drifted" for n in drifted_names)
        reasons += tuple(f"quality check {q.check} failed: {q.message}" for q in quality if not q.passed)
    return DriftReport(
        drifted=drifted,
        quality_failed=quality_failed,
        reasons=reasons,
        features=features,
        multivariate=multivariate,
        quality=quality,
        prediction=prediction,
        performance=performance,
        reference_rows=1000,
        current_rows=500,
        settings=settings
        if settings is not None
        else {"alpha": 0.05, "psi_threshold": 0.2, "numeric_tests": ["ks", "psi"]},
        created_at=created_at,
        dataset_drift=len(drifted_names) * 2 > len(features) if features else False,
        drift_share=len(drifted_names) / len(features) if features else 0.0,
    )


def full_report(**kwargs: Any) -> DriftReport:
    features = (
        numeric("age", drifted=True),
        numeric("income"),
        categorical("city", ["paris", "rome", HOSTILE], drifted=True),
        categorical("plan", ["basic", "pro"]),
    )
    quality = (
        QualityCheck("null_rate", "age", 0.01, 0.02, 0.1, True, "null rate 2% within 10%"),
        QualityCheck("row_count", None, 1000.0, 500.0, 100.0, True, "500 rows"),
        QualityCheck("new_categories", "city", None, HOSTILE, None, False, f"unseen category {HOSTILE}"),
    )
    mv = MultivariateDrift("mmd", 0.0123, 0.002, 0.05, 200, 500, 500, ("age", "income"), "cpu", True, 1.3)
    prediction = PredictionDrift(
        tests=(TestResult("ks", 0.2, 1e-4, None, 0.05, True),),
        histogram={
            "edges": [0.0, 0.25, 0.5, 0.75, 1.0],
            "reference": [0.25] * 4,
            "current": [0.1, 0.2, 0.3, 0.4],
        },
        drifted=True,
        reference_rows=1000,
        current_rows=500,
    )
    performance = (
        PerformanceCheck("roc_auc", 0.9, 0.8, 0.05, True),
        PerformanceCheck("log_loss", 0.3, 0.31, 0.05, False),
    )
    defaults: dict[str, Any] = dict(
        quality=quality, multivariate=mv, prediction=prediction, performance=performance
    )
    defaults.update(kwargs)
    return make_report(features, **defaults)


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


def test_empty_histogram_is_a_placeholder_and_malformed_ones_fail() -> None:
    root = ET.fromstring(distribution_svg("x", "numeric", {}))
    assert "no histogram recorded" in "".join(root.itertext())
    with pytest.raises(DriftInputError, match=r"feature 'x'.*11 edges, 9 reference"):
        distribution_svg(
            "x", "numeric", {"edges": list(range(11)), "reference": [0.1] * 9, "current": [0.1] * 9}
        )
    with pytest.raises(DriftInputError, match="expected edges/reference/current"):
        distribution_svg("x", "numeric", {"bins": [1, 2]})
    with pytest.raises(DriftInputError, match="'abc', not a number"):
        distribution_svg("x", "categorical", {"categories": ["a"], "reference": ["abc"], "current": [1.0]})


def test_many_categories_are_capped_with_an_other_bar() -> None:
    cats = [f"c{i}" for i in range(MAX_CATEGORIES + 15)]
    feature = categorical("many", cats)
    root = ET.fromstring(distribution_svg(feature.name, feature.kind, feature.histogram))
    labels = ["".join(t.itertext()) for t in root.iter(f"{SVG_NS}text")]
    others = [label for label in labels if label.endswith("(other 15)")]
    assert len(others) == 1
    bars = [
        r
        for g in root.iter(f"{SVG_NS}g")
        if g.get("fill") == figures.CURRENT_COLOR
        for r in g.iter(f"{SVG_NS}rect")
    ]
    assert len(bars) == MAX_CATEGORIES + 1


# --- statistics chart ------------------------------------------------------------------------


def test_statistics_chart_has_one_panel_per_test_and_a_bar_per_feature() -> None:
    report = full_report()
    root = ET.fromstring(statistics_svg(report.features))
    panels = {g.get("data-test"): g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "panel"}
    expected = {t.test for f in report.features for t in f.tests}
    assert set(panels) == expected
    for test_name, panel in panels.items():
        results = [t for f in report.features for t in f.tests if t.test == test_name]
        bars = list(panel.iter(f"{SVG_NS}rect"))
        assert len(bars) == len(results)
        red = [r for r in bars if r.get("fill") == figures.DRIFT_COLOR]
        assert len(red) == sum(t.drifted for t in results)


def test_statistics_bars_are_sorted_and_capped() -> None:
    features = (numeric("small", psi=0.05), numeric("huge", psi=50.0, drifted=True), numeric("mid", psi=0.3))
    root = ET.fromstring(statistics_svg(features))
    psi = next(g for g in root.iter(f"{SVG_NS}g") if g.get("data-test") == "psi")
    bars = list(psi.iter(f"{SVG_NS}rect"))
    names = [(r.findtext(f"{SVG_NS}title") or "").split(":")[0] for r in bars]
    assert names == ["huge", "mid", "small"]
    widths = {n: float(r.get("width", "0")) for n, r in zip(names, bars, strict=True)}
    # 50 is 250x the threshold: its bar stops at 10x the threshold, so "mid" still has a visible bar
    assert widths["mid"] / widths["huge"] == pytest.approx(0.3 / 2.0, rel=0.01)
    texts = ["".join(t.itertext()) for t in psi.iter(f"{SVG_NS}text")]
    assert "\u00bb 50" in texts


# --- history ---------------------------------------------------------------------------------


def history_windows() -> list[DriftReport]:
    w1 = make_report((numeric("age", psi=0.05), numeric("income")), created_at="2025-01-01T00:00:00+00:00")
    w2 = make_report((numeric("age", psi=0.15),), created_at="2025-01-02T00:00:00+00:00")  # no "income"
    w3 = make_report(
        (numeric("age", psi=0.3, drifted=True), numeric("income")),
        created_at="2025-01-03T00:00:00+00:00",
        quality=(QualityCheck("row_count", None, 1000.0, 3.0, 100.0, False, "3 rows"),),
    )
    return [w1, w2, w3]


def test_history_points_per_feature_and_window() -> None:
    *earlier, current = history_windows()
    current = full_report()  # age, income, city, plan
    windows = [*earlier, current]
    root = ET.fromstring(history_svg(windows))
    window_points = next(g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "windows")
    assert len(list(window_points.iter(f"{SVG_NS}circle"))) == len(windows)
    cells = {g.get("data-feature"): g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "feature"}
    assert list(cells) == ["age", "income", "city", "plan"]  # the current report's order
    points = {name: len(list(g.iter(f"{SVG_NS}circle"))) for name, g in cells.items()}
    assert points == {"age": 3, "income": 2, "city": 1, "plan": 1}
    # the main statistic is a distance (psi): its values over the windows are in the tooltips
    ages = [c.find(f"{SVG_NS}title").text for c in cells["age"].iter(f"{SVG_NS}circle")]  # type: ignore[union-attr]
    assert [a.split(": ")[1].split()[0] for a in ages] == ["0.05", "0.15", "0.8"]  # type: ignore[union-attr]
    assert [a.endswith("DRIFT") for a in ages] == [False, False, True]  # type: ignore[union-attr]
    texts = ["".join(t.itertext()) for t in cells["age"].iter(f"{SVG_NS}text")]
    assert "psi" in texts and "this window: 0.8 \u00b7 threshold 0.2" in texts


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


# --- files for MLflow ------------------------------------------------------------------------


def test_write_figures_files(tmp_path: Path) -> None:
    features = (
        numeric("age", drifted=True),
        numeric("a/b"),
        numeric("a b"),
        categorical(HOSTILE_NAME, ["x"]),
    )
    report = make_report(features, prediction=full_report().prediction)
    out = tmp_path / "figures"
    paths = write_figures(report, out, history=history_windows())
    distributions = sorted(p for p in paths if p.parent == out / "distributions")
    assert len(distributions) == len(features)
    assert [p.name for p in distributions][:3] == ["000_age.svg", "001_a_b.svg", "002_a_b.svg"]
    assert {p.name for p in paths if p.parent == out} == {"prediction.svg", "statistics.svg", "history.svg"}
    for path in paths:
        assert path.is_file() and path.resolve().is_relative_to(out.resolve())
        assert re.fullmatch(r"[A-Za-z0-9._-]+", path.name)
        root = ET.parse(path).getroot()
        assert root.tag == f"{SVG_NS}svg"
    history = ET.parse(out / "history.svg").getroot()
    windows = next(g for g in history.iter(f"{SVG_NS}g") if g.get("class") == "windows")
    assert len(list(windows.iter(f"{SVG_NS}circle"))) == 4
    # the files are the figures of the page (same drawing code)
    page = render_html(report, history=history_windows())
    assert (out / "statistics.svg").read_text(encoding="utf-8").split("\n", 1)[1] in page


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


def test_a_single_window_has_one_point_per_feature() -> None:
    report = full_report()
    root = ET.fromstring(history_svg([report]))
    windows = next(g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "windows")
    assert len(list(windows.iter(f"{SVG_NS}circle"))) == 1
    cells = [g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "feature"]
    assert len(cells) == len(report.features)
    assert all(len(list(g.iter(f"{SVG_NS}circle"))) == 1 for g in cells)
    # one point draws no line
    assert all(g.find(f"{SVG_NS}path[@fill='none']") is None for g in cells)


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
