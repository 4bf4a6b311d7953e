"""The shared SVG figures: well-formed XML, escaped text, finite coordinates, the expected number of
shapes for given data (never pixels)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
from markupsafe import Markup

from airflow_mlops.reports import figures
from airflow_mlops.reports.figures import (
    MAX_CATEGORIES,
    Line,
    Marker,
    Series,
    category_bars_svg,
    confusion_matrix_svg,
    curves_svg,
    distribution_svg,
    histogram_svg,
    scatter_svg,
)
from airflow_mlops.reports.style import CURRENT_COLOR, DRIFT_COLOR, REFERENCE_COLOR

NS = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert('x')</script>"
HOSTILE_ATTRIBUTE = '"><img src=x onerror=alert(1)>'


def parse(document: str) -> ET.Element:
    """The figure as XML (raises if it is not well-formed), checked to be a safe SVG document."""
    assert isinstance(document, Markup)
    root = ET.fromstring(document)
    assert root.tag == f"{NS}svg" and root.get("role") == "img"
    assert root.find(f"{NS}title") is not None
    tags = {el.tag.removeprefix(NS) for el in root.iter()}
    assert not tags & {"script", "foreignObject", "a", "image", "use", "style", "iframe"}
    for el in root.iter():
        for name, value in el.attrib.items():
            assert not name.startswith("on") and "href" not in name and name != "style"
            if name in ("x", "y", "width", "height", "cx", "cy", "r", "x1", "x2", "y1", "y2"):
                assert math.isfinite(float(value)), (el.tag, name, value)
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{NS}text")]


def titles(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{NS}title")]


def groups(root: ET.Element, **attrs: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{NS}g") if all(g.get(k) == v for k, v in attrs.items())]


# --- histograms ----------------------------------------------------------------------------------


def test_histogram_bars_hover_columns_and_markers() -> None:
    edges = [0.0, 0.25, 0.5, 0.75, 1.0]
    negatives = Series("negatives", [0.4, 0.3, 0.2, 0.1], REFERENCE_COLOR, "bars")
    positives = Series("positives", [0.0, 0.2, None, 0.8], CURRENT_COLOR, "bars")
    root = parse(
        histogram_svg(
            edges,
            [negatives, positives],
            label="scores",
            markers=[Marker(0.42, "threshold 0.42"), Marker(2.0, "beyond")],
            caption="score",
        )
    )
    (neg,) = groups(root, fill=REFERENCE_COLOR)
    (pos,) = groups(root, fill=CURRENT_COLOR)
    assert len(list(neg.iter(f"{NS}rect"))) == 4
    assert len(list(pos.iter(f"{NS}rect"))) == 2  # zero and missing bins draw no bar
    (hover,) = groups(root, fill="#000")
    columns = list(hover.iter(f"{NS}path"))
    assert len(columns) == 4  # one per bin
    assert titles(hover)[0] == "[0, 0.25) negatives 40.0%, positives 0.0%"
    assert titles(hover)[2] == "[0.5, 0.75) negatives 20.0%, positives n/a"
    lines = [el for el in root.iter(f"{NS}line") if el.get("stroke") == DRIFT_COLOR]
    assert [el.findtext(f"{NS}title") for el in lines] == ["threshold 0.42", "beyond"]
    x0, x1 = float(columns[0].get("d", "M0").split()[0][1:]), float(lines[1].get("x1", "0"))
    assert x0 < float(lines[0].get("x1", "0")) < x1  # 0.42 inside the axis, 2.0 clamped to its end
    assert "negatives" in texts(root) and "positives" in texts(root)  # the legend
    assert "score" in texts(root)


def test_histogram_scales_and_empty_series() -> None:
    log = parse(
        histogram_svg([0, 1, 2, 3], [Series("rows", [1, 0, 5000], REFERENCE_COLOR)], label="l", y_scale="log")
    )
    assert {"1", "10", "100", "1000"} <= set(texts(log))  # decades, no "0" crowding the base
    counts = parse(
        histogram_svg([0, 1, 2], [Series("rows", [3, 7], REFERENCE_COLOR)], label="c", y_scale="count")
    )
    assert "8" in texts(counts) and "%" not in "".join(texts(counts))
    empty = parse(
        histogram_svg(
            [0, 1, 2],
            [
                Series("reference", [0.5, 0.5], REFERENCE_COLOR, "area"),
                Series("current", [None, math.nan], CURRENT_COLOR, "step"),
            ],
            label="e",
            title="x",
        )
    )
    assert "current: no values" in texts(empty)
    assert len([p for p in empty.iter(f"{NS}path") if p.get("fill") == REFERENCE_COLOR]) == 1  # the area
    placeholder = parse(histogram_svg([0.0], [], label="none", title="t"))
    assert "t: no bins" in texts(placeholder)


def test_tick_labels_never_overlap() -> None:
    edges = [-7.5, 16.6, 28.1, 45.8, 77.3, 3510.0]  # quantile edges: the last two labels would touch
    root = parse(
        histogram_svg(edges, [Series("r", [0.2] * 5, REFERENCE_COLOR, "area")], label="x", equal_width=True)
    )
    labels = texts(root)
    assert "-7.5" in labels and "3.51e+03" in labels and "77.3" not in labels


# --- categories ----------------------------------------------------------------------------------


def test_category_bars_fold_the_smallest_categories() -> None:
    n = MAX_CATEGORIES + 7
    categories = [f"c{i}" for i in range(n)]
    reference = [1 / n] * n
    current = [0.5] + [0.5 / (n - 1)] * (n - 1)
    root = parse(
        category_bars_svg(
            categories,
            [
                Series("reference", reference, REFERENCE_COLOR, "area"),
                Series("current", current, CURRENT_COLOR),
            ],
            label="many",
            title="many",
        )
    )
    assert len([t for t in texts(root) if t == "(other 7)"]) == 1
    (cur,) = groups(root, fill=CURRENT_COLOR)
    (ref,) = groups(root, fill=REFERENCE_COLOR, **{"fill-opacity": "0.45"})
    assert len(list(cur.iter(f"{NS}rect"))) == len(list(ref.iter(f"{NS}rect"))) == MAX_CATEGORIES + 1
    assert "7 smaller categories summed into the last bar" in texts(root)


def test_hostile_names_are_text_clipped_with_the_whole_name_in_the_tooltip() -> None:
    histogram = {
        "categories": [HOSTILE, HOSTILE_ATTRIBUTE, "a\x00b"],
        "reference": [0.2, 0.3, 0.5],
        "current": [0.5, 0.5, 0.0],
    }
    document = distribution_svg(HOSTILE_ATTRIBUTE, histogram, note="categorical")
    assert "<script" not in document and "<img" not in document and "\x00" not in document
    root = parse(document)
    assert root.get("aria-label") == f"{HOSTILE_ATTRIBUTE}: reference vs current distribution"
    labels = texts(root)
    assert HOSTILE[:19] + "\u2026" in labels and "a\ufffdb" in labels
    assert f"{HOSTILE}: reference 20.0%, current 50.0%" in titles(root)


def test_distribution_shapes() -> None:
    numeric = parse(
        distribution_svg("n", {"edges": [0, 1, 2], "reference": [0.5, 0.5], "current": [0.9, 0.1]})
    )
    assert [p.get("fill") for p in numeric.iter(f"{NS}path") if p.get("stroke") == CURRENT_COLOR] == ["none"]
    assert "n: no histogram recorded" in texts(parse(distribution_svg("n", {})))
    with pytest.raises(ValueError, match="3 edges, 1 reference"):
        distribution_svg("n", {"edges": [0, 1, 2], "reference": [1.0], "current": [1.0]})
    with pytest.raises(ValueError, match="expected edges/reference/current"):
        distribution_svg("n", {"bins": [1], "reference": [], "current": []})
    with pytest.raises(ValueError, match="'x', not a number"):
        distribution_svg("n", {"categories": ["a"], "reference": ["x"], "current": [1]})


# --- curves, matrices, points ------------------------------------------------------------------


def test_curves_one_polyline_per_line_and_the_diagonal() -> None:
    lines = [
        Line("candidate (AUC 0.9)", [0.0, 0.1, 1.0], [0.0, 0.8, 1.0], REFERENCE_COLOR),
        Line(HOSTILE, [0.0, 1.0], [0.0, 1.0], CURRENT_COLOR),
    ]
    root = parse(curves_svg(lines, label="ROC curve", x_label="fpr", y_label="tpr", diagonal=True))
    polylines = list(root.iter(f"{NS}polyline"))
    assert len(polylines) == 3
    assert [len(p.get("points", "").split()) for p in polylines] == [2, 3, 2]
    assert HOSTILE in texts(root) and HOSTILE in titles(root)
    assert (
        len(list(parse(curves_svg(lines, label="PR", x_label="r", y_label="p")).iter(f"{NS}polyline"))) == 2
    )
    empty = parse(curves_svg([], label="ROC", x_label="x", y_label="y", empty="no curve: one class"))
    assert "no curve: one class" in texts(empty)


@pytest.mark.parametrize("k", [2, 5, 25])
def test_confusion_matrix_has_a_cell_per_pair(k: int) -> None:
    labels = [HOSTILE if i == 1 else f"class {i}" for i in range(k)]
    matrix = [[10 if i == j else i for j in range(k)] for i in range(k)]
    root = parse(confusion_matrix_svg(labels, matrix, label="m"))
    cells = [r for r in root.iter(f"{NS}rect") if r.findtext(f"{NS}title")]
    assert len(cells) == k * k
    assert sum(r.get("fill") == REFERENCE_COLOR for r in cells) == k  # the diagonal
    assert any(t.startswith(f"actual {HOSTILE}, predicted class 0: 1 ") for t in titles(root))


def test_binary_confusion_matrix_names_its_cells() -> None:
    root = parse(
        confusion_matrix_svg(
            ["positive", "negative"], [[8, 2], [1, 9]], label="m", cell_names=[["TP", "FN"], ["FP", "TN"]]
        )
    )
    assert {"TP 8", "FN 2", "FP 1", "TN 9", "80.0%", "90.0%"} <= set(texts(root))
    assert "TP: 8 (80.0% of the actual positive rows)" in titles(root)


def test_scatter_points_and_zero_line() -> None:
    root = parse(
        scatter_svg(
            [1.0, 2.0, math.nan, 3.0],
            [0.5, -1.0, 2.0, 0.0],
            label="r",
            x_label="x",
            y_label="y",
            zero_line="residual 0",
        )
    )
    assert len(list(root.iter(f"{NS}circle"))) == 3  # the NaN point is left out
    assert "residual 0" in titles(root)
    assert "no rows" in texts(parse(scatter_svg([], [], label="r", x_label="x", y_label="y")))


def test_every_figure_is_a_markup_document() -> None:
    made = [
        histogram_svg([0, 1], [Series("a", [1.0], REFERENCE_COLOR)], label="h"),
        category_bars_svg(["a"], [Series("a", [1.0], REFERENCE_COLOR)], label="c"),
        curves_svg([], label="c", x_label="x", y_label="y"),
        confusion_matrix_svg([], [], label="m"),
        scatter_svg([1.0], [1.0], label="s", x_label="x", y_label="y"),
    ]
    for document in made:
        parse(document)
    assert figures.__all__  # the public drawers are listed
