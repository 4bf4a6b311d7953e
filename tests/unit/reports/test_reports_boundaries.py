"""Where the report code may reach: the reports package is a light domain package, the reports
share it instead of each other's private helpers, and the evaluation gate imports no report code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "airflow_mlops"

#: The modules that render HTML or SVG.
REPORT_MODULES = [
    "airflow_mlops/drift/html.py",
    "airflow_mlops/drift/figures.py",
    "airflow_mlops/data/validation_report.py",
    "airflow_mlops/data/screen_report.py",
    "airflow_mlops/registry/evaluation_report.py",
    "airflow_mlops/ui/page.py",
    *sorted(str(p.relative_to(ROOT)) for p in (PACKAGE / "reports").glob("*.py")),
]


def _imports(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` of every ``from airflow_mlops... import name`` in ``path`` (any depth)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("airflow_mlops")
        for alias in node.names
    ]


def _package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


@pytest.mark.parametrize("relative", REPORT_MODULES)
def test_no_private_name_is_imported_across_packages(relative: str) -> None:
    module = relative.removesuffix(".py").replace("/", ".")
    crossing = [
        f"{source}.{name}"
        for source, name in _imports(ROOT / relative)
        if name.startswith("_") and _package_of(source) != _package_of(module)
    ]
    assert crossing == []


def test_html_is_drawn_in_one_place() -> None:
    """No report keeps a stylesheet, a page skeleton or a histogram drawer of its own."""
    for relative in REPORT_MODULES:
        if relative.startswith("airflow_mlops/reports/"):
            continue
        source = (ROOT / relative).read_text(encoding="utf-8")
        assert "<style" not in source and "<!doctype" not in source.lower(), relative
        assert "<svg" not in source and "html.escape" not in source, relative
        assert not any(m == "airflow_mlops.drift.html" for m, _ in _imports(ROOT / relative)), relative


def test_the_reports_package_stays_light() -> None:
    code = (
        "import sys\n"
        "from airflow_mlops.reports import render_page\n"
        "from airflow_mlops.reports.figures import histogram_svg, Series\n"
        "render_page('{% extends \"page.html\" %}', title='t')\n"
        "histogram_svg([0, 1], [Series('a', [1.0], '#000')], label='x')\n"
        "heavy = {'airflow', 'numpy', 'pandas', 'mlflow', 'matplotlib', 'sklearn', 'scipy', 'torch'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_the_gate_imports_no_report_code() -> None:
    imported = {m for m, _ in _imports(PACKAGE / "registry" / "evaluation.py")}
    assert "airflow_mlops.registry.evaluation_report" not in imported
    assert not any(m.startswith("airflow_mlops.reports") for m in imported)


def test_curves_have_one_implementation() -> None:
    from airflow_mlops import metrics
    from airflow_mlops.registry import evaluation_report

    for name in ("score_curves", "roc_points", "model_curves", "class_curves", "residual_curves"):
        assert getattr(evaluation_report, name) is getattr(metrics, name)
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    score = np.round(rng.random(300), 2)  # ties
    tps, fps, thresholds = metrics.threshold_counts(y, score)
    assert np.all(np.diff(thresholds) < 0) and len(thresholds) == len(np.unique(score))
    for tp, fp, t in zip(tps, fps, thresholds, strict=True):  # against a brute-force count
        predicted = score >= t
        assert (tp, fp) == (int((predicted & (y == 1)).sum()), int((predicted & (y == 0)).sum()))
    curves = metrics.score_curves(y, score, threshold=0.5)
    fpr, _, _ = metrics.roc_points(y, score)
    assert curves["roc"]["points"] == len(fpr) and curves["roc"]["fpr"][-1] == fpr[-1] == 1.0
