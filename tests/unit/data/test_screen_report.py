"""The screen's HTML report (``airflow_mlops/data/screen_report.py``)."""

from __future__ import annotations

from airflow_mlops.data.generate import TARGET
from tests.unit.data.screens import F


def test_the_report_renders_with_its_sections(poisoned, poisoned_result):
    from airflow_mlops.data.screen_report import render_screen_report

    page = render_screen_report(poisoned_result, target=TARGET, features=F)
    for section in (
        "Suspects per check",
        "Dataset findings",
        "Score distributions",
        "Quarantined rows and their nearest accepted rows",
        "Hashes",
    ):
        assert section in page
    assert page.count("<svg") == 2 and "cut" in page
    assert "Cut: per class: the estimated number of issues" in page
    assert "Cut: per class: Benjamini-Hochberg" in page  # out_of_distribution
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert page.count("class='suspect'") == min(25, poisoned_result.summary["rows_quarantined"])
