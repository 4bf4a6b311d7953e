"""Moved to :mod:`airflow_mlops.labels` (the label rule is vocabulary every package shares)."""

from airflow_mlops.labels import label_key, positive_mask

__all__ = ["label_key", "positive_mask"]
