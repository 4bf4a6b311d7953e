"""Text for reports (``airflow_mlops/reports/text.py``): the one escape, and number formatting."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from airflow_mlops.reports.text import axis_number, clip, escape, format_value, percent, short_time, xml_text


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "\" onmouseover='x' a=\"",
        "a & b",
        "nul\x00 esc\x1b bell\x07",
        "lone \ud800 surrogate",
        "\ufffe\uffff non-characters",
    ],
)
def test_escaped_text_is_well_formed_xml_in_content_and_attributes(hostile: str) -> None:
    text = escape(hostile)
    assert not any(c in text for c in "<>\"'") and "\x00" not in text
    # whatever the data, the markup around it still parses and reads back the visible text
    root = ET.fromstring(f'<svg><text title="{text}">{text}</text></svg>')
    node = root.find("text")
    assert node is not None and node.text == node.get("title") == xml_text(hostile)


def test_xml_text_keeps_tabs_newlines_and_non_ascii() -> None:
    value = "a\tb\nc\rd é 中 \U0001f600"
    assert xml_text(value) == value
    assert xml_text("x\x01y") == "x\ufffdy" and xml_text(12) == "12"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "\u2013"),
        (True, "yes"),
        (False, "no"),
        (7, "7"),
        (10**12, "1000000000000"),  # integers stay exact
        (0.0, "0"),
        (float("nan"), "NaN"),
        (float("inf"), "\u221e"),
        (float("-inf"), "-\u221e"),
        (0.123456, "0.1235"),
        (12345.678, "1.235e+04"),
        (123456.0, "1.23e+05"),
        (0.0001234, "0.000123"),
        (-2.5, "-2.5"),
        ("text", "text"),
    ],
)
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


def test_clip_cuts_with_an_ellipsis_only_when_needed() -> None:
    assert clip("short", 5) == "short"
    assert clip("longer text", 6) == "longe\u2026" and len(clip("longer text", 6)) == 6


@pytest.mark.parametrize(
    ("created", "shown"),
    [
        ("2026-12-06T22:12:05.123456+00:00", "2026-12-06 22:12"),
        ("2026-12-06", "2026-12-06 00:00"),
        ("not a timestamp but long text", "not a timestamp\u2026"),
        ("", ""),
    ],
)
def test_short_time(created: str, shown: str) -> None:
    assert short_time(created) == shown


@pytest.mark.parametrize(
    ("value", "step", "text"),
    [
        (0.25, 0.05, "25%"),
        (0.255, 0.005, "25.5%"),
        (0.1234, 0.0025, "12.34%"),
        (0.5, 0.000001, "50.000%"),  # never more than three decimals
        (1.0, 0.1, "100%"),
    ],
)
def test_percent_has_the_decimals_the_tick_step_needs(value: float, step: float, text: str) -> None:
    assert percent(value, step) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (0.5, "0.5"),
        (1234.5, "1.23e+03"),
        (12345, "1.2e+04"),
        (0.0001, "0.0001"),
        (-3.14159, "-3.14"),
    ],
)
def test_axis_numbers_have_at_most_three_significant_digits(value: float, text: str) -> None:
    assert axis_number(value) == text
