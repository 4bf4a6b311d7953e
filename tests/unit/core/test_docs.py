"""The docs site builds with `mkdocs build --strict` (as CI builds it) and its generated pages are current."""

from __future__ import annotations

import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).resolve().parents[3]


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _nav_pages(nav: list) -> list[str]:
    pages: list[str] = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_operator_docs", ROOT / "scripts" / "gen_operator_docs.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_site_builds_strictly_with_every_page_in_the_nav(tmp_path: Path) -> None:
    result = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["theme"]["name"] == "material"
    pages = _nav_pages(config["nav"])
    markdown = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert set(pages) == markdown, "every docs page is in the nav, and every nav entry exists"
    for page in pages:
        html = (
            tmp_path
            / "site"
            / ("index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html")
        )
        assert html.is_file(), page
    reference = (tmp_path / "site" / "spec" / "index.html").read_text()
    assert (
        'id="reference"' in reference and "training.kubernetes" in reference
    )  # the generated spec reference


def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    """The build is the check: a copy of the docs with one dead link must not build."""
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "quickstart.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    result = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stdout + result.stderr


def test_the_operator_reference_is_current() -> None:
    generator = _generator()
    rendered = generator.render()
    committed = (ROOT / "docs" / "operators.md").read_text()
    assert committed == rendered, (
        "docs/operators.md is stale: run .venv/bin/python scripts/gen_operator_docs.py"
    )


def test_the_operator_reference_documents_every_operator_and_its_parameters() -> None:
    generator = _generator()
    import airflow_mlops.operators.registry as registry

    classes = [c for group in generator.discover().values() for c in group]
    names = {c.__name__ for c in classes}
    assert {"DataValidateOperator", "ModelPromoteOperator", "ModelFitPodOperator", "NewDataSensor"} <= names
    assert "NewDataTrigger" in names
    text = "\n".join(generator.render_class(registry.ModelPromoteOperator))
    for name in inspect.signature(registry.ModelPromoteOperator.__init__).parameters:
        if name not in ("self", "kwargs"):
            assert f"| `{name}` |" in text, name
    for field in registry.ModelPromoteOperator.template_fields:
        assert f"`{field}`" in text, field
