"""Airflow DAG file: builds the lifecycle DAGs of every pipeline spec in this dags folder.

Copy this file (once) into your dags folder, then drop ``*.yaml`` specs anywhere below it
(``specs/`` by convention); files matched by ``.airflowignore`` are skipped. A broken spec shows up as an
import error of that spec file (file, line, key, fix) and never hides the others' DAGs. Parsing
imports no heavy library: torch, MLflow, Great Expectations and pandas load only when a task runs.
"""

from __future__ import annotations

from pathlib import Path

from airflow_mlops.factory import load_dags_folder
from airflow_mlops.factory.importer import report_spec_errors

_HERE = Path(__file__).resolve().parent
_dags, _errors = load_dags_folder(_HERE, default_allowed_roots=[_HERE])
globals().update(_dags)
report_spec_errors(_errors, __file__)
