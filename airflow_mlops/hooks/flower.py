"""Hook for the Flower SuperLink of ``training.backend: federated`` (an Airflow connection)."""

from __future__ import annotations

from typing import Any

from airflow.sdk.bases.hook import BaseHook

from airflow_mlops.connections import FLOWER_CONN_ID, FLOWER_CONN_TYPE
from airflow_mlops.exceptions import TrainingRejectedError

_EXAMPLE = '{"conn_type": "flower", "host": "superlink.example", "port": 9093, "extra": {"root_certificates": "/etc/flower/ca.pem"}}'


class FlowerHook(BaseHook):
    """Reads where the SuperLink's Control API is, from a connection of type ``flower``.

    ``host`` and ``port``: the Control API; ``extra.insecure`` (bool): plain HTTP, for a SuperLink
    started with ``--insecure`` on the same machine; ``extra.root_certificates``: path of the CA
    bundle that signed the SuperLink's certificate; ``extra.cli``: the ``flwr`` executable (default
    ``flwr`` on the worker's PATH). Only these named keys are read.
    """

    conn_name_attr = "flower_conn_id"
    default_conn_name = FLOWER_CONN_ID
    conn_type = FLOWER_CONN_TYPE
    hook_name = "Flower SuperLink"

    def __init__(self, flower_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.flower_conn_id = flower_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "login", "password"],
            "relabeling": {"host": "SuperLink host", "port": "Control API port"},
            "placeholders": {"extra": '{"root_certificates": "/etc/flower/ca.pem", "cli": "flwr"}'},
        }

    def superlink(self) -> dict[str, Any]:
        """``{"address", "insecure", "root_certificates", "cli"}`` of the connection.

        :raises TrainingRejectedError: the connection is missing or has no host and port.
        """
        from airflow_mlops.hooks import read_connection

        conn = read_connection(self, self.flower_conn_id, TrainingRejectedError, _EXAMPLE)
        return superlink_settings(self.flower_conn_id, conn.host, conn.port, conn.extra_dejson or {})

    def cli(self) -> str:
        """The ``flwr`` executable of a local federation (``training.federated.local_nodes``): the
        connection's ``extra.cli`` when the connection exists (host and port are not needed),
        else ``flwr`` on the worker's PATH."""
        from airflow_mlops.hooks import read_connection

        try:
            conn = read_connection(self, self.flower_conn_id, TrainingRejectedError, _EXAMPLE)
        except TrainingRejectedError:
            return "flwr"
        return str((conn.extra_dejson or {}).get("cli") or "flwr")


def superlink_settings(conn_id: str, host: Any, port: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """The connection's named keys as the SuperLink settings (see :class:`FlowerHook`)."""
    if not host or not port:
        raise TrainingRejectedError(
            f"the Flower connection {conn_id!r} needs host and port (the SuperLink's Control API), e.g. {_EXAMPLE}"
        )
    insecure = extra.get("insecure", False)
    if not isinstance(insecure, bool):
        insecure = str(insecure).strip().lower() in ("1", "true", "yes")
    certificates = str(extra.get("root_certificates") or "").strip() or None
    return {
        "address": f"{host}:{int(port)}",
        "insecure": insecure,
        "root_certificates": certificates,
        "cli": str(extra.get("cli") or "flwr"),
    }
