"""Operators for the registry stages: register a signed model version, promote it by alias, roll
the alias back to the version it replaced."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
        "training_data",
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
        training_data: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.training_data = training_data
        self.model = model
        self.signature = signature
        self.model_name = model_name
        self.mlflow_run_id = mlflow_run_id
        self.gates_passed = gates_passed
        self.key_fingerprint = key_fingerprint
        self.description = description
        self.mlflow_conn_id = mlflow_conn_id

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
                self.mlflow_hook.get_conn(),
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
                    **self._training_data_tag(),
                },
                description=self.description,
            )
        self.log.info("Registered %s version %s", registered.model_name, registered.version)
        return registered.to_dict()

    def _training_data_tag(self) -> dict[str, str]:
        """The training data's ref, pinned by sha256: what the monitor compares live data with."""
        if not self.training_data:
            return {}
        import json

        from airflow_mlops.artifacts import ArtifactRef
        from airflow_mlops.registry.mlflow_registry import TAG_TRAINING_DATA

        ref = ArtifactRef.from_dict(self.training_data)
        pinned = {"uri": ref.uri, "sha256": ref.sha256, "size": ref.size, "media_type": ref.media_type}
        return {TAG_TRAINING_DATA: json.dumps({**pinned, "producer": ref.producer}, sort_keys=True)}


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

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.registry.mlflow_registry import promote_version

        key = ModelSigningHook(signing_conn_id=self.signing_conn_id).get_key(need_private=False)
        result = promote_version(
            self.mlflow_hook.get_conn(),
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


class ModelRollbackOperator(MLOpsBaseOperator):
    """Point the alias back at the version it replaced, after verifying that version.

    The previous version is the one :class:`ModelPromoteOperator` recorded on the current one
    (tag ``mlops.<alias>.previous``). It is downloaded afresh, its signature and digest verified
    and its files scanned before the alias moves (one registry call). A retried task finds its own
    rollback done (by the Airflow run id) instead of rolling back twice.

    :param expected_version: roll back only if the alias points at this version (templated).
    :param reason: why (templated); recorded on the version rolled back from.

    Returns the rollback record: model name, alias, the version it points at now, the version it
    was rolled back from, key fingerprint, reason.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "expected_version", "reason")
    stage = "rollback"
    ui_color = "#fde2e2"

    def __init__(
        self,
        *,
        model_name: str,
        alias: str = "champion",
        expected_version: Any = None,
        reason: str = "",
        allowed_globals: Sequence[str] = (),
        mlflow_conn_id: str = "mlflow_default",
        signing_conn_id: str = "mlops_signing",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.expected_version = expected_version
        self.reason = reason
        self.allowed_globals = list(allowed_globals)
        self.mlflow_conn_id = mlflow_conn_id
        self.signing_conn_id = signing_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.registry.mlflow_registry import rollback_alias

        key = ModelSigningHook(signing_conn_id=self.signing_conn_id).get_key(need_private=False)
        expected = self.expected_version
        result = rollback_alias(
            self.mlflow_hook.get_conn(),
            model_name=self.model_name,
            alias=self.alias,
            public_key_pem=key.public_key_pem,
            allowed_globals=self.allowed_globals,
            expected_version=str(expected) if expected not in (None, "") else None,
            request_id=self.airflow_run(context),
            reason=str(self.reason or f"rollback by {self.airflow_run(context)}"),
        )
        self.log.info(
            "Rolled %s@%s back from version %s to %s",
            result.model_name,
            result.alias,
            result.rolled_back_from,
            result.version,
        )
        return result.to_dict()
