"""data/screen_task.py: the screen's files."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from airflow_mlops.data import screen_task


def test_every_output_is_written_and_the_summary_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_mlops.data.screen_report as report

    monkeypatch.setattr(
        report, "render_screen_report", lambda result, target, features: f"<p>{target} {features}</p>"
    )
    result = SimpleNamespace(
        accepted=pd.DataFrame({"x": [1, 2]}),
        quarantined=pd.DataFrame({"x": [3], "reason": ["duplicate"]}),
        summary={"rows_in": 3, "suspect_fraction": 1 / 3},
    )
    paths = screen_task.write_screen_outputs(result, tmp_path, target="y", features=("x",))
    assert set(paths) == set(screen_task.SCREEN_OUTPUTS)
    assert pd.read_parquet(paths["accepted"])["x"].tolist() == [1, 2]
    assert pd.read_parquet(paths["quarantine"])["reason"].tolist() == ["duplicate"]
    assert json.loads(paths["summary"].read_text()) == {"rows_in": 3, "suspect_fraction": 1 / 3}
    assert paths["report"].read_text() == "<p>y ['x']</p>"
