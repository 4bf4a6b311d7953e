"""``python -m airflow_mlops.training --job ...``: the training job every backend runs (see job.py)."""

from __future__ import annotations

from airflow_mlops.training.job import main
from airflow_mlops.training.trainer import run_and_exit

if __name__ == "__main__":
    run_and_exit(main)
