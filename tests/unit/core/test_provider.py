from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from airflow_mlops.provider_info import get_provider_info, package_modules

ROOT = Path(__file__).resolve().parents[3]


def test_provider_entry_point_is_registered() -> None:
    eps = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_mlops")]
    assert len(eps) == 1, "install the package (make venv) so the entry point exists"
    assert eps[0].load()() == get_provider_info()


# The federated app's components run only inside a Flower SuperLink / SuperNode, whose environment
# has flwr (the workers' may not); they define no Airflow class.
FLOWER_ONLY = ("airflow_mlops.training.federated.server_app", "airflow_mlops.training.federated.client_app")


def _classes_by_kind() -> dict[str, set[str]]:
    """Every operator, sensor, trigger, hook and extra-link class the package defines (by
    importing each of its modules), as ``module.Class``; abstract ones left out."""
    from airflow.sdk import BaseOperator, BaseOperatorLink, BaseSensorOperator
    from airflow.sdk.bases.hook import BaseHook
    from airflow.triggers.base import BaseTrigger

    import airflow_mlops

    kinds = {
        "sensors": BaseSensorOperator,
        "operators": BaseOperator,
        "triggers": BaseTrigger,
        "hooks": BaseHook,
        "extra-links": BaseOperatorLink,
    }
    found: dict[str, set[str]] = {kind: set() for kind in kinds}
    modules = [m.name for m in pkgutil.walk_packages(airflow_mlops.__path__, "airflow_mlops.")]
    assert len(modules) > 50, modules
    for name in modules:
        if name.endswith(".__main__") or (name in FLOWER_ONLY and importlib.util.find_spec("flwr") is None):
            continue
        module = importlib.import_module(name)
        for attr, cls in vars(module).items():
            if not inspect.isclass(cls) or cls.__module__ != name or inspect.isabstract(cls):
                continue
            for kind, base in kinds.items():
                if issubclass(cls, base) and cls is not base:
                    found[kind].add(f"{name}.{attr}")
                    break  # a sensor is not also counted as an operator
    return found


def test_the_metadata_lists_every_class_the_package_ships() -> None:
    """Each listed module defines a class of its section, and every class of the package is listed
    (its module, or itself for links and connection types): a new operator module, sensor, trigger,
    hook or link cannot be left out of ``airflow providers list`` and the UI."""
    info = get_provider_info()
    found = _classes_by_kind()
    assert found["operators"] and found["sensors"] and found["triggers"] and found["hooks"], found
    for section in ("operators", "sensors", "triggers", "hooks"):
        listed = {m for group in info[section] for m in group["python-modules"]}
        defining = {cls.rpartition(".")[0] for cls in found[section]}
        assert listed == defining, (section, sorted(listed ^ defining))
    assert set(info["extra-links"]) == found["extra-links"]
    hooks = {conn["hook-class-name"] for conn in info["connection-types"]}
    assert hooks == found["hooks"]
    for conn in info["connection-types"]:
        module, _, cls = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), cls)
        assert hook.conn_type == conn["connection-type"]


def test_the_entry_point_imports_nothing_heavy() -> None:
    """Every Airflow process calls the entry point at start-up: it lists modules without importing
    them."""
    code = (
        "import sys; from airflow_mlops.provider_info import get_provider_info; get_provider_info(); "
        "print(sorted(m for m in sys.modules if m.startswith(('airflow', 'mlflow', 'torch', 'pandas'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['airflow_mlops', 'airflow_mlops.connections', 'airflow_mlops.provider_info']", out


def test_package_modules_refuses_a_module_that_is_not_a_package() -> None:
    with pytest.raises(ModuleNotFoundError):
        package_modules("airflow_mlops.provider_info")


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
