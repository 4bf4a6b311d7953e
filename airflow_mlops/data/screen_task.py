"""The screen stage's files: the accepted and quarantined rows, the summary and the HTML report.

No Airflow: a :class:`~airflow_mlops.data.poisoning.ScreenResult` and a folder in, files out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The screen's outputs: output name -> file name.
SCREEN_OUTPUTS = {
    "accepted": "accepted.parquet",
    "quarantine": "quarantine.parquet",
    "summary": "screen_summary.json",
    "report": "screen_report.html",
}


def write_screen_outputs(
    result: Any, folder: Path, *, target: str, features: Sequence[str]
) -> dict[str, Path]:
    """Write the screen's outputs (:data:`SCREEN_OUTPUTS`) into ``folder``; their paths by name."""
    from airflow_mlops.data.io import write_table
    from airflow_mlops.data.screen_report import render_screen_report

    paths = {name: folder / file for name, file in SCREEN_OUTPUTS.items()}
    write_table(result.accepted, paths["accepted"])
    write_table(result.quarantined, paths["quarantine"])
    paths["summary"].write_text(
        json.dumps(result.summary, indent=2, sort_keys=True, default=str), encoding="utf-8"
    )
    paths["report"].write_text(
        render_screen_report(result, target=target, features=list(features)), encoding="utf-8"
    )
    return paths
