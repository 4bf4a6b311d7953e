"""The SVG builders of the reports (airflow_mlops.reports.svg): escaped text, checked names, ticks."""

from __future__ import annotations

import math

import pytest

from airflow_mlops.reports import svg

HOSTILE = "<script>alert('x')</script>"
HOSTILE_ATTRIBUTE = '"><img src=x onerror=alert(1)>'


def test_builders_escape_and_refuse_odd_names() -> None:
    assert svg.text(1, 2, HOSTILE, HOSTILE_ATTRIBUTE).count("<") == 4  # <text><title></title></text>: no more
    element = svg.element("rect", None, data_name=HOSTILE_ATTRIBUTE, x=1.25, y=None)
    assert element == '<rect data-name="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" x="1.2"/>'
    with pytest.raises(ValueError, match="attribute name"):
        svg.element("rect", **{"onload x": 1})
    with pytest.raises(ValueError, match="element name"):
        svg.element("script><x")
    assert [svg.num(v) for v in (1.0, 1.26, -0.01, math.inf, math.nan)] == ["1", "1.3", "0", "0", "0"]


def test_ticks() -> None:
    assert svg.nice_ticks(0.37) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert svg.nice_ticks(0.0) == [0.0, 1.0]
    assert svg.range_ticks(-15.97, 15.58) == pytest.approx([-10.0, 0.0, 10.0])
    assert svg.range_ticks(0.0, 1.0) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert svg.range_ticks(3.0, 3.0) == [3.0]
