"""The Models view: an Airflow 3 UI plugin that shows each pipeline's model versions.

- :mod:`airflow_mlops.ui.rows` gathers what the page shows from an MLflow client (no Airflow).
- :mod:`airflow_mlops.ui.documents` serves the ML-BOM and the reports a pipeline logged, digest-checked.
- :mod:`airflow_mlops.ui.page` renders it as server-side HTML, escaping everything.
- :mod:`airflow_mlops.ui.app` is the FastAPI app, behind Airflow's authentication.
- :mod:`airflow_mlops.ui.plugin` registers it with Airflow (``fastapi_apps`` + ``external_views``).
"""

from __future__ import annotations

from airflow_mlops.urls import MODELS_VIEW_PREFIX as URL_PREFIX

__all__ = ["URL_PREFIX"]
