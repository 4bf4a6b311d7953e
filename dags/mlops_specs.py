"""Airflow DAG file: builds the lifecycle DAGs of every pipeline spec in ``specs/``.

Copy this file and your ``*.yaml`` specs into your dags folder. It imports no heavy library:
torch, MLflow, Great Expectations and pandas load only when a task runs.
"""

from __future__ import annotations

from pathlib import Path

from airflow_mlops.factory import load_dags_folder

_dags, _errors = load_dags_folder(Path(__file__).parent / "specs")
globals().update(_dags)
