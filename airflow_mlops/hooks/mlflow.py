"""Hook for an MLflow tracking server and model registry."""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.hook import BaseHook

from airflow_mlops.connections import MLFLOW_CONN_ID, MLFLOW_CONN_TYPE
from airflow_mlops.exceptions import RegistryError
from airflow_mlops.hooks import read_connection

if TYPE_CHECKING:
    from mlflow import MlflowClient


# Basic-auth credentials by tracking URI, in this process's memory only (never os.environ).
_CREDENTIALS: dict[str, tuple[str, str]] = {}
_CREDENTIALS_LOCK = threading.Lock()
_INSTALLED = False


def register_credentials(tracking_uri: str, username: str, password: str) -> None:
    """Make MLflow send ``username``/``password`` to ``tracking_uri`` (and the URLs below it).

    MLflow builds the credentials of every request (tracking, registry, artifact proxy) in
    ``mlflow.utils.credentials.get_default_host_creds``, which reads only the process environment
    and ``~/.mlflow/credentials``. Writing a connection's password into ``os.environ`` would hand
    it to every subprocess of the worker; instead this wraps, in that one module, the constructor
    that function calls, and fills in the registered credentials for a matching host when the
    environment gave none. The shape of MLflow's function is checked first: if it changes, this
    fails loudly instead of sending requests without credentials.
    """
    _install()
    with _CREDENTIALS_LOCK:
        _CREDENTIALS[tracking_uri.rstrip("/")] = (username, password)


def _credentials_for(host: str) -> tuple[str, str] | None:
    with _CREDENTIALS_LOCK:
        matches = [uri for uri in _CREDENTIALS if host == uri or host.startswith(uri + "/")]
        return _CREDENTIALS[max(matches, key=len)] if matches else None


def _install() -> None:
    global _INSTALLED
    with _CREDENTIALS_LOCK:
        if _INSTALLED:
            return
        import mlflow.utils.credentials as credentials

        names = credentials.get_default_host_creds.__code__.co_names
        original = getattr(credentials, "MlflowHostCreds", None)
        if "MlflowHostCreds" not in names or original is None:
            import mlflow

            raise RegistryError(
                f"MLflow {mlflow.__version__} builds request credentials differently from the "
                "versions airflow-mlops supports (mlflow.utils.credentials.get_default_host_creds); "
                "install the MLflow version in constraints.txt"
            )

        def with_connection_credentials(host: str, *args: Any, **kwargs: Any) -> Any:
            if not args and kwargs.get("username") is None and kwargs.get("password") is None:
                found = _credentials_for(str(host).rstrip("/"))
                if found is not None:
                    kwargs["username"], kwargs["password"] = found
            return original(host, *args, **kwargs)

        credentials.MlflowHostCreds = with_connection_credentials  # type: ignore[assignment,misc]
        _INSTALLED = True


class MLflowHook(BaseHook):
    """Talks to MLflow through a connection of type ``mlflow``.

    The connection's ``host`` is the tracking server URL (``http://127.0.0.1:5000``); ``login`` and
    ``password`` are MLflow's basic-auth credentials when set, handed to MLflow's HTTP layer for
    this URI only (never through the process environment). Only these named keys are read.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = MLFLOW_CONN_ID
    conn_type = MLFLOW_CONN_TYPE
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

    def _connection(self) -> Any:
        """The MLflow connection, or a :class:`RegistryError` naming it and how to add it."""
        return read_connection(
            self,
            self.mlflow_conn_id,
            RegistryError,
            '{"conn_type": "mlflow", "host": "http://127.0.0.1:5000"}',
            "pass --tracking-uri URI on the command line",
        )

    @cached_property
    def tracking_uri(self) -> str:
        conn = self._connection()
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
        return host

    def get_conn(self) -> MlflowClient:
        """An MLflow client for the connection's server, with the connection's credentials.

        The login and password go to MLflow's HTTP layer for this tracking URI only (see
        :func:`register_credentials`); they are never written into ``os.environ``, so no
        subprocess of the worker (the trainer) inherits them.
        """
        from mlflow import MlflowClient

        conn = self._connection()
        uri = self.tracking_uri
        if conn.login:
            register_credentials(uri, conn.login, conn.password or "")
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.get_conn().search_experiments(max_results=1)
        except Exception as exc:
            from airflow_mlops.redaction import redact_credentials

            return False, redact_credentials(exc)
        return True, "Connection successfully tested"
