"""Shared by the benchmark smoke tests: load a script of ``benchmarks/`` as a module."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _load(script: str) -> ModuleType:
    name = f"{Path(script).stem}_benchmark"
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_benchmark() -> Callable[[str], ModuleType]:
    """``load_benchmark("drift.py")``: the benchmark script as a module."""
    return _load


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, dict[str, str]], None]:
    """``fake_package("cleanlab", {"__init__.py": ...})``: a stand-in package on the PYTHONPATH of
    the benchmarks' peer subprocesses (the real peer lives only in its own venv)."""

    def put(name: str, files: dict[str, str]) -> None:
        package = tmp_path / "fake" / name
        for path, text in files.items():
            (package / path).parent.mkdir(parents=True, exist_ok=True)
            (package / path).write_text(text)
        monkeypatch.setenv("PYTHONPATH", str(package.parent))

    return put
