"""The shared page: autoescaping, the strict Content-Security-Policy, the one stylesheet -- for the
template alone and for every report and the Models view rendered through it."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from typing import Any

import pandas as pd
import pytest

from airflow_mlops.reports import CSP, STYLESHEET, escape, render_page
from airflow_mlops.reports.figures import distribution_svg

HOSTILE = "<script>alert('x')</script>"
HOSTILE_ATTRIBUTE = '"><img src=x onerror=alert(1)>'

_TEMPLATE = """{% extends "page.html" %}
{% import "macros.html" as m %}
{% block content %}
{{ m.context(context) }}
<p class="value" data-name="{{ name }}">{{ name }}</p>
{% call m.table(["name", "value"], "values") %}{% for k, v in rows %}{{ m.tr("failed") }}<td>{{ k }}</td>{{ m.cell(v) }}</tr>{% endfor %}{% endcall %}
{{ m.tag("failed", name) }}
{{ m.figure(figure) }}
{% endblock %}
"""


class _Page(HTMLParser):
    """Start tags with their attributes, the text, and the content of ``<style>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)

    def attrs_of(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


def parse(page: str) -> _Page:
    parsed = _Page()
    parsed.feed(page)
    parsed.close()
    return parsed


def render(**overrides: Any) -> str:
    values: dict[str, Any] = {
        "title": f"report {HOSTILE}",
        "name": HOSTILE_ATTRIBUTE,
        "context": {HOSTILE: HOSTILE_ATTRIBUTE, "control": "a\x00b\x1bc"},
        "rows": [(HOSTILE, 0.5), ("n", 3)],
        "figure": distribution_svg(
            HOSTILE, {"categories": [HOSTILE, "b"], "reference": [0.5, 0.5], "current": [1.0, 0.0]}
        ),
    }
    values.update(overrides)
    title = values.pop("title")
    return render_page(_TEMPLATE, title=title, **values)


def csp_of(page: str) -> str:
    metas = [a for a in parse(page).attrs_of("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert len(metas) == 1
    return metas[0]["content"] or ""


def assert_strict_csp(page: str) -> None:
    """The policy: nothing loads, no script, only the page's one stylesheet (by its hash)."""
    policy = csp_of(page)
    directives = dict(
        (d.split()[0], d.split()[1:]) for d in (part.strip() for part in policy.split(";")) if d
    )
    assert directives["default-src"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"] and directives["form-action"] == ["'none'"]
    styles = parse(page).styles
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert directives["style-src"] == [f"'sha256-{digest}'"]  # exactly the page's stylesheet
    assert set(directives) == {"default-src", "style-src", "base-uri", "form-action"}
    assert "unsafe" not in policy and "script" not in policy and "http" not in policy


def assert_loads_nothing(page: str) -> None:
    doc = parse(page)
    tags = {t for t, _ in doc.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "base", "foreignobject"}
    assert not any(k.startswith("on") or k in ("src", "srcset", "style") for _, a in doc.tags for k in a)
    assert "url(" not in page and "@import" not in page and "javascript:" not in page


# --- the template ------------------------------------------------------------------------------


def test_values_are_escaped_in_text_and_attributes() -> None:
    page = render()
    assert "<script>" not in page and "<img" not in page
    assert_loads_nothing(page)
    doc = parse(page)
    text = "".join(doc.text)
    assert HOSTILE in text and HOSTILE_ATTRIBUTE in text  # shown as text, never as markup
    (value,) = [a for t, a in doc.tags if t == "p" and a.get("class") == "value"]
    assert value["data-name"] == HOSTILE_ATTRIBUTE  # the quote did not close the attribute
    assert set(value) == {"class", "data-name"}
    assert f"<title>report {escape(HOSTILE)}</title>" in page
    # the one escape of the reports: & < > " ' all escaped, control characters replaced
    assert escape(HOSTILE_ATTRIBUTE) in page and "&#x27;x&#x27;" in page
    assert "\x00" not in page and "\x1b" not in page and "a\ufffdb\ufffdc" in text


def test_only_markup_passes_unescaped() -> None:
    page = render(figure="<svg><script>alert(1)</script></svg>")  # a string, not a figure
    assert "<svg><script>" not in page and "&lt;svg&gt;&lt;script&gt;" in page
    page = render()
    assert page.count("<svg") == 1  # the figure (Markup) is inlined as is


def test_the_page_has_the_strict_policy_and_the_one_stylesheet() -> None:
    page = render()
    assert page.startswith("<!DOCTYPE html>\n")
    assert_strict_csp(page)
    assert csp_of(page) == CSP
    assert parse(page).styles == [STYLESHEET]
    assert '<meta charset="utf-8">' in page


def test_macros_write_exact_markup() -> None:
    page = render(rows=[("a", 3), ("b", -5.0), ("c", None), ("d", True)])
    table = re.search(r'<table class="values">.*?</table>', page, re.S)
    assert table is not None
    assert (
        '<tr class="failed"><td>a</td><td class="num">3</td></tr>'
        '<tr class="failed"><td>b</td><td class="num">-5</td></tr>'
        '<tr class="failed"><td>c</td><td>\u2013</td></tr>'
        '<tr class="failed"><td>d</td><td>yes</td></tr>'
    ) in table.group(0)
    assert "<thead><tr><th>name</th><th>value</th></tr></thead>" in table.group(0)


def test_an_undefined_name_is_an_error() -> None:
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        render_page('{% extends "page.html" %}{% block content %}{{ nope }}{% endblock %}', title="t")


# --- every page rendered through it --------------------------------------------------------------


def _drift() -> str:
    from airflow_mlops.drift.html import render_html
    from airflow_mlops.drift.report import DriftReport, FeatureDrift, TestResult

    feature = FeatureDrift(
        HOSTILE_ATTRIBUTE,
        "categorical",
        (TestResult("chi2", 40.0, 1e-6, 2e-6, 0.05, True),),
        True,
        {"categories": [HOSTILE, "b"], "reference": [0.5, 0.5], "current": [1.0, 0.0]},
    )
    report = DriftReport(
        drifted=True,
        quality_failed=False,
        reasons=(f"feature {HOSTILE_ATTRIBUTE} drifted",),
        features=(feature,),
        multivariate=None,
        quality=(),
        prediction=None,
        performance=(),
        reference_rows=10,
        current_rows=10,
        settings={HOSTILE: HOSTILE},
        created_at="2025-01-01T00:00:00+00:00",
    )
    return render_html(report, title=HOSTILE, context={HOSTILE: HOSTILE_ATTRIBUTE})


def _validation() -> str:
    from airflow_mlops.data.validation import validate_dataframe
    from airflow_mlops.data.validation_report import render_validation_html

    batch = pd.DataFrame({HOSTILE_ATTRIBUTE: [HOSTILE, "b", "b"], "n": [1.0, 2.0, 3.5]})
    report = validate_dataframe(
        batch, [{"expect_column_values_to_be_in_set": {"column": HOSTILE_ATTRIBUTE, "value_set": ["b"]}}]
    )
    return render_validation_html(report, batch, reference=batch, source=HOSTILE, context={HOSTILE: HOSTILE})


def _evaluation() -> str:
    from airflow_mlops.metrics import model_curves
    from airflow_mlops.registry.evaluation import EvaluationReport, evaluate_gates
    from airflow_mlops.registry.evaluation_report import render_evaluation_report

    report = EvaluationReport(
        metrics={"roc_auc": 0.7},
        gates=evaluate_gates({"roc_auc": 0.7}, bounds={"roc_auc": {"min": 0.9}}),
        champion_version=None,
        champion_metrics=None,
        holdout_rows=6,
        positive_rows=3,
        threshold=0.5,
        note=HOSTILE,
        curves={"candidate": model_curves("binary", [0, 1, 0, 1, 1, 0], [0.1, 0.9, 0.4, 0.3, 0.8, 0.2])},
    )
    return render_evaluation_report(report, context={HOSTILE: HOSTILE_ATTRIBUTE})


def _screen() -> str:
    return render_screen_page()


def _models() -> str:
    from airflow_mlops.ui import page, rows

    check = rows.Check(rows.FAILED, "FAILED", HOSTILE)
    version = rows.VersionRow(
        HOSTILE, "1", (HOSTILE,), "", "r", "ab" * 32, {HOSTILE: 0.5}, False, HOSTILE,
        (rows.Gate(HOSTILE, HOSTILE, 0.5, 0.9, False),), check, check, True,
    )  # fmt: skip
    model = rows.ModelView(HOSTILE, HOSTILE, {HOSTILE: "1"}, (version,), None, (HOSTILE_ATTRIBUTE,))
    return page.render_models([model], base="/mlops/models")


def _check() -> str:
    from airflow_mlops.ui import page, rows

    check = rows.Check(rows.OK, "verified", HOSTILE)
    return page.render_check(HOSTILE, HOSTILE_ATTRIBUTE, check, check, base="/mlops/models")


def render_screen_page() -> str:
    """A poisoning screen's report of a small hand-made result (class labels, findings hostile)."""
    import numpy as np

    from airflow_mlops.data.poisoning import ScreenResult
    from airflow_mlops.data.screen_report import render_screen_report

    accepted = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3, "y": [0, 1] * 10})
    quarantined = pd.DataFrame(
        {
            "a": [100.0],
            "b": [1.0],
            "y": [1],
            "_row_index": [20],
            "_reasons": [HOSTILE],
            "_scores": ['{"out_of_distribution": 0.9}'],
        }
    )
    summary = {
        "rows_in": 21,
        "rows_accepted": 20,
        "rows_quarantined": 1,
        "suspect_fraction": 1 / 21,
        "max_suspect_fraction": 0.1,
        "check_counts": {"out_of_distribution": 1, "missing_label": 0},
        "checks": {"out_of_distribution": {"status": "ran", "suspects": 1, "threshold": HOSTILE}},
        "dataset_findings": [f"class_balance: {HOSTILE}"],
        "hashes": {"method": "sha256 of the rows", "input": "ab" * 32},
        "passed": False,
        "task": "binary",
        "class_counts": {HOSTILE: {"rows": 11, "accepted": 10, "quarantined": 1}},
        "reference": None,
    }
    scores = {
        "out_of_distribution": np.r_[np.linspace(0.0, 0.5, 20), 0.9],
        "out_of_distribution_cut": np.array([0.7]),
    }
    result = ScreenResult(accepted, quarantined, summary, False, scores)
    return render_screen_report(result, target="y", features=["a", "b"])


PAGES = {
    "drift": _drift,
    "validation": _validation,
    "evaluation": _evaluation,
    "screen": _screen,
    "models": _models,
    "check": _check,
}


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_is_strict_shares_the_stylesheet_and_escapes(name: str) -> None:
    page = PAGES[name]()
    assert_strict_csp(page)
    assert csp_of(page) == CSP and parse(page).styles == [STYLESHEET]
    assert_loads_nothing(page)
    assert "<script" not in page and "<img" not in page
    text = "".join(parse(page).text)
    assert HOSTILE in text or HOSTILE_ATTRIBUTE in text  # the hostile data is there, as text
    for href in re.findall(r'href="([^"]*)"', page):
        assert href.startswith(("#", "/mlops/models/"))


def test_the_screen_report_shows_its_parts() -> None:
    import xml.etree.ElementTree as ET

    page = render_screen_page()
    for anchor in ("task", "checks", "findings", "scores", "quarantine", "hashes", "details"):
        assert f'<section id="{anchor}">' in page
    assert 'class="banner failed"' in page and "The screen failed." in page
    (svg,) = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    cut = [line for line in root.iter(f"{ns}line") if line.findtext(f"{ns}title") == "cut 0.7"]
    assert len(cut) == 1
    rows = re.search(r'<table class="quarantine">.*?</table>', page, re.S)
    assert rows is not None
    assert rows.group(0).count("<tr class='suspect'>") == 1
    assert rows.group(0).count("<tr class='neighbour'>") == 3  # its three nearest accepted rows
    assert "<td>#20</td><td>&lt;script&gt;" in rows.group(0)
