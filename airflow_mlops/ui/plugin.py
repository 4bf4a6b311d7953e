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

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_mlops.ui import URL_PREFIX

PLUGIN_NAME = "mlops_models_view"


class LazyApp:
    """An ASGI app that builds :func:`airflow_mlops.ui.app.create_app` on its first request."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from airflow_mlops.ui.app import create_app

            self._app = create_app()
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
