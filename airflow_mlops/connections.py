"""The Airflow connections the package reads: their default ids and their connection types.

One place for each name: the hooks' ``default_conn_name`` and ``conn_type``, the spec's defaults,
the command line, the Models view's settings, ``keys generate`` and the provider metadata all read
them from here. A leaf module (no Airflow import), so the spec loader and the command line stay
light.
"""

from __future__ import annotations

__all__ = [
    "FLOWER_CONN_ID",
    "FLOWER_CONN_TYPE",
    "MLFLOW_CONN_ID",
    "MLFLOW_CONN_TYPE",
    "SIGNING_CONN_ID",
    "SIGNING_CONN_TYPE",
]

#: The MLflow tracking server (host: its URL).
MLFLOW_CONN_ID = "mlflow_default"
MLFLOW_CONN_TYPE = "mlflow"
#: The model-signing identity (private key in the password, public key and method in the extra).
SIGNING_CONN_ID = "mlops_signing"
SIGNING_CONN_TYPE = "mlops_signing"
#: The Flower SuperLink of `training.backend: federated` (host and port of its Control API).
FLOWER_CONN_ID = "flower_default"
FLOWER_CONN_TYPE = "flower"
