"""Operators for the registry stages: register a signed model version, promote it by alias."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow_mlops.hooks.mlflow import MLflowHook
from airflow_mlops.hooks.signing import ModelSigningHook
from airflow_mlops.operators.base import MLOpsBaseOperator


class ModelRegisterOperator(MLOpsBaseOperator):
    """Register the signed model as a new MLflow model version (idempotent across retries).

    The version carries tags linking it to its data (sha256), code version, the gates result,
    the model digest, and the signature digest and key fingerprint.

    Returns ``{"model_name", "version", "source", "run_id", "model_sha256"}``.
    """

    template_fields = (
        *MLOpsBaseOperator.template_fields,
        "model",
        "signature",
        "mlflow_run_id",
        "gates_passed",
        "key_fingerprint",
    )
    stage = "register"
    ui_color = "#e2fdf4"

    def __init__(
        self,
        *,
        model: Any,
        signature: Any,
        model_name: str,
        mlflow_run_id: Any,
        gates_passed: Any,
        key_fingerprint: Any = "",
        description: str = "",
        mlflow_conn_id: str = "mlflow_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.signature = signature
        self.model_name = model_name
        self.mlflow_run_id = mlflow_run_id
        self.gates_passed = gates_passed
        self.key_fingerprint = key_fingerprint
        self.description = description
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def hook(self) -> MLflowHook:
        return MLflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        import airflow_mlops
        from airflow_mlops.registry.mlflow_registry import (
            TAG_GATES,
            TAG_KEY_FINGERPRINT,
            TAG_PIPELINE,
            register_version,
        )

        with self.scratch() as tmp:
            model_dir = self.fetch(self.model, tmp / "model")
            sig_path = self.fetch(self.signature, tmp / "signature")
            registered = register_version(
                self.hook.get_conn(),
                model_name=self.model_name,
                run_id=str(self.mlflow_run_id),
                model_dir=model_dir,
                signature_path=sig_path,
                airflow_run=self.airflow_run(context),
                tags={
                    TAG_PIPELINE: self.pipeline,
                    TAG_GATES: "passed" if self.gates_passed is True else "failed",
                    TAG_KEY_FINGERPRINT: str(self.key_fingerprint),
                    "mlops.airflow_mlops_version": airflow_mlops.__version__,
                    "mlops.dag_id": context["dag"].dag_id,
                },
                description=self.description,
            )
        self.log.info("Registered %s version %s", registered.model_name, registered.version)
        return registered.to_dict()


class ModelPromoteOperator(MLOpsBaseOperator):
    """Move the alias (e.g. ``champion``) to a version, only if its gates passed and its signature
    verifies now, on a fresh download of the registered artifact. The alias moves in one registry
    call: it points at the old or the new version, never at nothing.

    Returns the promotion record: model name, alias, version, previous version, key fingerprint.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "version", "gates_passed")
    stage = "promote"
    ui_color = "#fde2f7"

    def __init__(
        self,
        *,
        model_name: str,
        version: Any,
        gates_passed: Any,
        alias: str = "champion",
        mlflow_conn_id: str = "mlflow_default",
        signing_conn_id: str = "mlops_signing",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.version = version
        self.gates_passed = gates_passed
        self.alias = alias
        self.mlflow_conn_id = mlflow_conn_id
        self.signing_conn_id = signing_conn_id

    @cached_property
    def hook(self) -> MLflowHook:
        return MLflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.registry.mlflow_registry import promote_version

        key = ModelSigningHook(signing_conn_id=self.signing_conn_id).get_key(need_private=False)
        result = promote_version(
            self.hook.get_conn(),
            model_name=self.model_name,
            version=str(self.version),
            alias=self.alias,
            public_key_pem=key.public_key_pem,
            gates_passed=self.gates_passed is True,
        )
        self.log.info(
            "Promoted %s version %s to @%s (previous: %s)",
            result.model_name,
            result.version,
            result.alias,
            result.previous_version,
        )
        return result.to_dict()
