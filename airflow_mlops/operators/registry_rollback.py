"""``registry.rollback``: the alias back on the version it replaced, after verifying that version."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_mlops.hooks.mlflow import MLflowHook
from airflow_mlops.hooks.signing import ModelSigningHook
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.operators.links import MLflowModelVersionLink, ModelsViewLink


class ModelRollbackOperator(MLOpsBaseOperator):
    """Point the alias back at the version it replaced, after verifying that version.

    The previous version is the one :class:`ModelPromoteOperator` recorded on the current one
    (tag ``mlops.<alias>.previous``). It is downloaded afresh, its signature and digest verified
    and its files scanned before the alias moves (one registry call, under the alias lock). A
    retried task finds its own rollback done (by the Airflow run id) instead of rolling back twice.

    :param expected_version: roll back only if the alias points at this version (templated).
    :param reason: why (templated); recorded on the version rolled back from and in the audit trail.

    Returns the rollback record: model name, alias, the version it points at now, the version it
    was rolled back from, key fingerprint, reason, who.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "expected_version", "reason")
    stage = "rollback"
    ui_color = "#fde2e2"
    operator_extra_links = (MLflowModelVersionLink(), ModelsViewLink())

    def __init__(
        self,
        *,
        model_name: str,
        alias: str = "champion",
        expected_version: Any = None,
        reason: str = "",
        allowed_globals: Sequence[str] = (),
        mlflow_conn_id: str = MLflowHook.default_conn_name,
        signing_conn_id: str = ModelSigningHook.default_conn_name,
        signing_method: str | None = None,
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
        self.signing_method = signing_method

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.registry.promotion import rollback_alias

        expected = self.expected_version
        result = rollback_alias(
            self.mlflow_hook.get_conn(),
            model_name=self.model_name,
            alias=self.alias,
            trust=self.trust(),
            allowed_globals=self.allowed_globals,
            expected_version=str(expected) if expected not in (None, "") else None,
            request_id=self.airflow_run(context),
            reason=str(self.reason or f"rollback by {self.airflow_run(context)}"),
            by=self.actor(context),
        )
        self.log.info(
            "Rolled %s@%s back from version %s to %s",
            result.model_name,
            result.alias,
            result.rolled_back_from,
            result.version,
        )
        return result.to_dict()
