"""Provider metadata: the ``apache_airflow_provider`` entry point returns this.

Every Airflow process calls it at start-up, so it imports nothing heavy: the operator, sensor,
trigger and hook modules are listed from the package's own folders (a directory listing, no
import). ``tests/unit/core/test_provider.py`` imports every module of the package and checks the
lists against the classes that are really there (each listed module defines one, and every
operator, sensor, trigger, hook, extra link and connection type is listed), so a new module or
class cannot be left out of ``airflow providers list`` and the UI.
"""

from __future__ import annotations

import importlib.util
import pkgutil
from typing import Any

from airflow_mlops import __version__
from airflow_mlops.connections import FLOWER_CONN_TYPE, MLFLOW_CONN_TYPE, SIGNING_CONN_TYPE

INTEGRATION = "MLOps lifecycle"
# Modules of the operators package that define no operator (shared code of the operators; the
# approval step is Airflow's own ApprovalOperator, configured).
OPERATOR_SUPPORT_MODULES = frozenset(
    {"approval", "fail_fast", "lineage", "links", "run_events", "trainer_env"}
)

EXTRA_LINKS = (
    "airflow_mlops.operators.links.MLflowRunLink",
    "airflow_mlops.operators.links.MLflowModelVersionLink",
    "airflow_mlops.operators.links.ModelsViewLink",
    "airflow_mlops.operators.links.EvaluationReportLink",
    "airflow_mlops.operators.links.DriftReportLink",
    "airflow_mlops.operators.links.ArtifactReportLink",
)
CONNECTION_TYPES = (
    ("airflow_mlops.hooks.mlflow.MLflowHook", MLFLOW_CONN_TYPE),
    ("airflow_mlops.hooks.signing.ModelSigningHook", SIGNING_CONN_TYPE),
    ("airflow_mlops.hooks.flower.FlowerHook", FLOWER_CONN_TYPE),
)


def package_modules(package: str, exclude: frozenset[str] = frozenset()) -> list[str]:
    """The modules of ``package`` (``airflow_mlops.<subpackage>``), sorted, found without importing
    them; private (``_name``) modules and ``exclude`` left out."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{package} is not a package of airflow-mlops")
    return sorted(
        f"{package}.{m.name}"
        for m in pkgutil.iter_modules(spec.submodule_search_locations)
        if not m.name.startswith("_") and m.name not in exclude
    )


def _group(package: str, exclude: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    return [{"integration-name": INTEGRATION, "python-modules": package_modules(package, exclude)}]


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-mlops",
        "name": "MLOps",
        "description": "The machine-learning lifecycle, securely, from one YAML spec: data validation, "
        "poisoning screens, training, evaluation gates, model scanning and signing, MLflow registry "
        "promotion, drift monitoring and continuous training.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://github.com/airflow-mlops/airflow-mlops",
                "tags": ["software"],
            }
        ],
        "operators": _group("airflow_mlops.operators", OPERATOR_SUPPORT_MODULES),
        "sensors": _group("airflow_mlops.sensors"),
        "triggers": _group("airflow_mlops.triggers"),
        "hooks": _group("airflow_mlops.hooks"),
        "extra-links": list(EXTRA_LINKS),
        "connection-types": [
            {"hook-class-name": hook, "connection-type": conn_type} for hook, conn_type in CONNECTION_TYPES
        ],
    }
