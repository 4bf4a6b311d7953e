"""The Airflow 3 plugin of the Models view.

Registered through the ``airflow.plugins`` entry point (``mlops_models_view``). It mounts the
view's FastAPI app under the api-server at :data:`~airflow_mlops.ui.app.URL_PREFIX` and adds a
"Models" entry to the Airflow UI's navigation (an external view that the UI shows in a frame;
same origin, so the ``_token`` cookie of the Airflow session authenticates it).

Importing this module is cheap: the app is built on its first request (see :class:`LazyApp`),
so components that load plugins but serve no UI (scheduler, workers, DAG processor) never
import the view's routes, Airflow's API security modules or MLflow for it.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_mlops.redaction import RedactingFilter
from airflow_mlops.ui import URL_PREFIX
from airflow_mlops.ui.headers import SecureHeaders, send_error

PLUGIN_NAME = "mlops_models_view"
log = logging.getLogger(__name__)
log.addFilter(RedactingFilter())  # tracebacks in the api-server log, credentials masked


class LazyApp:
    """An ASGI app that builds :func:`airflow_mlops.ui.app.create_app` on its first request.

    Every answer carries the view's security headers (:class:`~airflow_mlops.ui.headers.SecureHeaders`),
    including the 503 given when the app cannot be built (the reason goes to the log only)."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await SecureHeaders(self._serve)(scope, receive, send)

    async def _serve(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            try:
                from airflow_mlops.ui.app import create_app

                self._app = create_app()
            except Exception:
                log.exception("Models view: the app could not be built")
                if scope.get("type") == "http":
                    await send_error(send, 503, "the Models view is unavailable (see the api-server log)")
                return
        await self._app(scope, receive, send)


class ModelsViewPlugin(AirflowPlugin):
    name = PLUGIN_NAME
    fastapi_apps = [{"name": "mlops-models", "app": LazyApp(), "url_prefix": URL_PREFIX}]
    external_views = [
        {
            "name": "Models",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "mlops-models",
        }
    ]
