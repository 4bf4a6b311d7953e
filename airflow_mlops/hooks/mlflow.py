"""Hook for an MLflow tracking server and model registry."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.hook import BaseHook

from airflow_mlops.exceptions import RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient


class MLflowHook(BaseHook):
    """Talks to MLflow through a connection of type ``mlflow``.

    The connection's ``host`` is the tracking server URL (``http://127.0.0.1:5000``); ``login`` and
    ``password`` are passed as MLflow's basic-auth credentials when set. Only these named keys
    are read.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "extra"],
            "relabeling": {"host": "Tracking URI"},
            "placeholders": {"host": "http://127.0.0.1:5000"},
        }

    @cached_property
    def tracking_uri(self) -> str:
        conn = self.get_connection(self.mlflow_conn_id)
        host = (conn.host or "").strip()
        if not host:
            raise RegistryError(
                f"connection {self.mlflow_conn_id!r} has no host; set it to the MLflow tracking URI, "
                "e.g. http://127.0.0.1:5000"
            )
        if "://" not in host:
            scheme = conn.schema or "http"
            host = f"{scheme}://{host}"
        if conn.port and host.count(":") < 2:
            host = f"{host}:{conn.port}"
        if conn.login:
            import os

            os.environ["MLFLOW_TRACKING_USERNAME"] = conn.login
            os.environ["MLFLOW_TRACKING_PASSWORD"] = conn.password or ""
        return host

    def get_conn(self) -> MlflowClient:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.get_conn().search_experiments(max_results=1)
        except Exception as exc:
            return False, str(exc)
        return True, "Connection successfully tested"
