"""Provider metadata: the ``apache_airflow_provider`` entry point returns this."""

from __future__ import annotations

from typing import Any

from airflow_mlops import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-mlops",
        "name": "MLOps",
        "description": "The machine-learning lifecycle, securely, from one YAML spec: data validation, "
        "poisoning screens, training, evaluation gates, model scanning and signing, MLflow registry promotion.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "MLOps lifecycle",
                "external-doc-url": "https://github.com/airflow-mlops/airflow-mlops",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "MLOps lifecycle",
                "python-modules": [
                    "airflow_mlops.operators.data",
                    "airflow_mlops.operators.training",
                    "airflow_mlops.operators.model",
                    "airflow_mlops.operators.registry",
                ],
            }
        ],
        "hooks": [
            {
                "integration-name": "MLOps lifecycle",
                "python-modules": ["airflow_mlops.hooks.mlflow", "airflow_mlops.hooks.signing"],
            }
        ],
        "sensors": [],
        "triggers": [],
        "extra-links": [
            "airflow_mlops.operators.links.MLflowRunLink",
            "airflow_mlops.operators.links.MLflowModelVersionLink",
            "airflow_mlops.operators.links.ModelsViewLink",
            "airflow_mlops.operators.links.EvaluationReportLink",
            "airflow_mlops.operators.links.DriftReportLink",
            "airflow_mlops.operators.links.ArtifactReportLink",
        ],
        "connection-types": [
            {"hook-class-name": "airflow_mlops.hooks.mlflow.MLflowHook", "connection-type": "mlflow"},
            {
                "hook-class-name": "airflow_mlops.hooks.signing.ModelSigningHook",
                "connection-type": "mlops_signing",
            },
        ],
    }
