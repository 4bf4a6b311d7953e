"""Fixtures shared by the tests of the top-level modules (allowed roots, artifacts)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture
def open_tree(tmp_path: Path) -> dict[str, Path]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "in").mkdir(parents=True)
    outside.mkdir()
    frame = pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]})
    frame.to_csv(root / "in" / "a.csv", index=False)
    pd.DataFrame({"x": [9], "y": [9]}).to_csv(outside / "a.csv", index=False)
    return {"root": root.resolve(), "outside": outside.resolve(), "tmp": tmp_path.resolve()}
