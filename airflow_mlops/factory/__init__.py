"""The DAG factory: pipeline specs in, Airflow DAGs out."""

from __future__ import annotations

from airflow_mlops.factory.builder import build_dags, build_train_dag
from airflow_mlops.factory.folder import load_dags_folder

__all__ = ["build_dags", "build_train_dag", "load_dags_folder"]
