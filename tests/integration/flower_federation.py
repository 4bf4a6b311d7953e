"""A real Flower federation on 127.0.0.1 for the integration tests: the product's own local
federation (:mod:`airflow_mlops.training.federated.local_federation`: one SuperLink and N
SuperNodes, processes of the Flower environment ``.venv-flower`` from ``make flower-venv``, no
Ray), started by the test and named to the operator through an Airflow connection.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from airflow_mlops.training.federated import local_federation
from tests.integration.conftest import ROOT

FLOWER_VENV = Path(os.environ.get("AIRFLOW_MLOPS_FLOWER_VENV") or ROOT / ".venv-flower")


def flower_bin(name: str) -> Path:
    return FLOWER_VENV / "bin" / name


def connection(port: int) -> str:
    """``AIRFLOW_CONN_FLOWER_DEFAULT``: the SuperLink through an Airflow connection."""
    extra = {"insecure": True, "cli": str(flower_bin("flwr"))}
    return json.dumps({"conn_type": "flower", "host": "127.0.0.1", "port": port, "extra": extra})


@contextmanager
def running_federation(tmp: Path, nodes: int) -> Iterator[local_federation.LocalFederation]:
    """A SuperLink and ``nodes`` SuperNodes; node ``i`` reads partition ``i`` of ``nodes``."""
    federation = local_federation.start(str(flower_bin("flwr")), nodes, tmp, package_root=str(ROOT))
    try:
        yield federation
    finally:
        federation.stop()
