from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path

import yaml

from airflow_mlops.provider_info import get_provider_info

ROOT = Path(__file__).resolve().parents[3]


def test_provider_entry_point_is_registered() -> None:
    eps = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_mlops")]
    assert len(eps) == 1, "install the package (make venv) so the entry point exists"
    assert eps[0].load()() == get_provider_info()


def test_every_listed_module_and_hook_class_imports() -> None:
    info = get_provider_info()
    for section in ("operators", "hooks"):
        for group in info[section]:
            for module in group["python-modules"]:
                importlib.import_module(module)
    for conn in info["connection-types"]:
        module, _, cls = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), cls)
        assert hook.conn_type == conn["connection-type"]


def test_airflow_sees_the_connection_types() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    assert "airflow-mlops" in ProvidersManager().providers
    assert {"mlflow", "mlops_signing"} <= set(ProvidersManagerTaskRuntime().hooks)


def test_compose_file_binds_to_loopback_and_has_the_stack() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert {
        "postgres",
        "minio",
        "mlflow",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
    } <= set(services)
    for service in services.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port
