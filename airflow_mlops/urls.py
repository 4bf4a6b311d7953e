"""Where the package's pages live in the Airflow api-server: the Models view's mount point, read by
the UI plugin that mounts it and by the operators' extra links that point into it."""

from __future__ import annotations

#: Where the api-server mounts the view (``/mlops/models/`` is the page).
MODELS_VIEW_PREFIX = "/mlops/models"
