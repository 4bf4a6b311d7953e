"""airflow-mlops: the machine-learning lifecycle, securely, as Apache Airflow 3 DAGs."""

from __future__ import annotations

__version__ = "0.1.0"
