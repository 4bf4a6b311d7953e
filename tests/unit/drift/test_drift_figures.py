"""The drift report's SVG figures (``airflow_mlops/drift/figures.py``)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

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
from airflow_mlops.exceptions import DriftInputError
from tests.unit.drift.builders import (
    HOSTILE_NAME,
    SVG_NS,
    categorical,
    full_report,
    history_windows,
    make_report,
    numeric,
)


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
