"""Hooks: the only code that reads Airflow connections (and only their named keys)."""

from __future__ import annotations

from typing import Any


def read_connection(
    hook: Any, conn_id: str, error: type[Exception], example: str, alternative: str = ""
) -> Any:
    """``hook.get_connection(conn_id)``, or ``error`` saying which connection is missing and how to set it.

    :param example: the connection as JSON (``AIRFLOW_CONN_<ID>``'s value), without secrets.
    :param alternative: another way to give what the connection holds (a command-line option).
    """
    try:
        return hook.get_connection(conn_id)
    except Exception as exc:
        if type(exc).__name__ != "AirflowNotFoundException":
            raise
        variable = "AIRFLOW_CONN_" + "".join(c if c.isalnum() else "_" for c in conn_id).upper()
        also = f", or {alternative}" if alternative else ""
        raise error(
            f"the Airflow connection {conn_id!r} is not defined. Add it in the Airflow UI (Admin > "
            f"Connections), with `airflow connections add {conn_id} --conn-json '{example}'`, or "
            f"through a secrets backend or the environment variable {variable}{also}"
        ) from None
