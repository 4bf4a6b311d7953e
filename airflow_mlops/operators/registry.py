"""Operators for the registry stages: register a signed model version, promote it by alias; the
rollback (:mod:`.registry_rollback`) and the approval task (:mod:`.approval`) are re-exported."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_mlops.hooks.mlflow import MLflowHook
from airflow_mlops.hooks.signing import ModelSigningHook
from airflow_mlops.operators.approval import approval_operator
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.operators.links import MLflowModelVersionLink, MLflowRunLink, ModelsViewLink
from airflow_mlops.operators.registry_rollback import ModelRollbackOperator
from airflow_mlops.registry.registration import approver

__all__ = [
    "ModelPromoteOperator",
    "ModelRegisterOperator",
    "ModelRollbackOperator",
    "approval_operator",
    "approver",  # airflow_mlops.registry.registration.approver, importable from here too
]


class ModelRegisterOperator(MLOpsBaseOperator):
    """Register the signed model as a new MLflow model version (idempotent across retries).

    The version carries tags linking it to its data (sha256), code version, the gates result,
    the model digest, the signature digest and key fingerprint, and why the run trained
    (``mlops.retrain.*``: the triggering asset events or the run type); with ``blessing`` (the
    evaluate task's ``blessing`` output) the gates' verdict for this exact digest. The signed
    ``attestation`` (the sign task's evaluation statement, which promotion requires), ``mlbom``
    and ``mlbom_attestation`` are logged beside the model in the run (``attestations/``). The registration is recorded in the audit trail (``mlops.audit.registered``).

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
        "blessing",
        "attestation",
        "mlbom",
        "mlbom_attestation",
    )
    stage = "register"
    ui_color = "#e2fdf4"
    operator_extra_links = (MLflowRunLink(), MLflowModelVersionLink(), ModelsViewLink())

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
        mlflow_conn_id: str = MLflowHook.default_conn_name,
        training_data: Any = None,
        blessing: Any = None,
        attestation: Any = None,
        mlbom: Any = None,
        mlbom_attestation: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.training_data = training_data
        self.blessing = blessing
        self.attestation = attestation
        self.mlbom = mlbom
        self.mlbom_attestation = mlbom_attestation
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
        from airflow_mlops.operators.run_events import retrain_reason
        from airflow_mlops.registry import registration
        from airflow_mlops.registry.mlflow_registry import register_version

        blessing = registration.checked_blessing(self.blessing, str(self.model["sha256"]), where=self.task_id)
        with self.scratch() as tmp:
            model_dir = self.fetch(self.model, tmp / "model")
            sig_path = self.fetch(self.signature, tmp / "signature")
            attachments = self._attachments(tmp)
            client = self.mlflow_hook.get_conn()
            registered = register_version(
                client,
                model_name=self.model_name,
                run_id=str(self.mlflow_run_id),
                model_dir=model_dir,
                signature_path=sig_path,
                airflow_run=self.airflow_run(context),
                tags=registration.version_tags(
                    pipeline=self.pipeline,
                    gates_passed=self.gates_passed is True,
                    blessing=blessing,
                    key_fingerprint=str(self.key_fingerprint),
                    code_version=airflow_mlops.__version__,
                    dag_id=context["dag"].dag_id,
                    training_data=self.training_data,
                    retrain_reason=retrain_reason(context),
                ),
                description=self.description,
                attachments=attachments,
            )
            registration.audit_registration(client, registered, blessing, by=self.actor(context))
        self.log.info("Registered %s version %s", registered.model_name, registered.version)
        return registered.to_dict()

    def _attachments(self, tmp: Any) -> dict[str, Any]:
        """The attestations and ML-BOM logged beside the model, fetched verified, by file name."""
        from airflow_mlops.registry.mlflow_registry import (
            EVALUATION_ATTESTATION,
            MLBOM_ATTESTATION,
            MLBOM_FILE,
        )

        return {
            name: self.fetch(ref, tmp / "attestations" / name)
            for name, ref in (
                (EVALUATION_ATTESTATION, self.attestation),
                (MLBOM_FILE, self.mlbom),
                (MLBOM_ATTESTATION, self.mlbom_attestation),
            )
            if ref
        }


class ModelPromoteOperator(MLOpsBaseOperator):
    """Move an alias to a version when its evidence holds (see
    :func:`~airflow_mlops.registry.promotion.promote_version`): the gates passed and the blessing
    is for this exact digest, a fresh download of the registered artifact verifies (signature,
    digest, scan), and the champion is still the one the gates compared it with. The move is one
    registry call under the alias lock; a retry converges; the audit trail records who and why.

    :param alias: the champion alias.
    :param rollout_alias: with a shadow or canary rollout, the alias the candidate gets instead
        (the champion stays put; the monitor's rollout gate promotes it later). With no champion
        yet the first model becomes champion directly: there is nothing to shadow.
    :param approval: the output of an approval task (Airflow's human-in-the-loop response): the
        promotion requires its ``Approve`` and records the approver.
    :param traffic_share: for a canary, the share of requests the serving layer sends to it.

    Returns the promotion record: model name, alias, version, previous version, key fingerprint,
    who, approver.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "version", "gates_passed", "approval", "reason")
    stage = "promote"
    ui_color = "#fde2f7"
    operator_extra_links = (MLflowModelVersionLink(), ModelsViewLink())

    def __init__(
        self,
        *,
        model_name: str,
        version: Any,
        gates_passed: Any,
        alias: str = "champion",
        rollout_alias: str | None = None,
        approval: Any = None,
        traffic_share: float | None = None,
        reason: str = "",
        allowed_globals: Sequence[str] = (),
        mlflow_conn_id: str = MLflowHook.default_conn_name,
        signing_conn_id: str = ModelSigningHook.default_conn_name,
        signing_method: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.version = version
        self.gates_passed = gates_passed
        self.alias = alias
        self.rollout_alias = rollout_alias
        self.approval = approval
        self.traffic_share = traffic_share
        self.reason = reason
        self.allowed_globals = list(allowed_globals)
        self.mlflow_conn_id = mlflow_conn_id
        self.signing_conn_id = signing_conn_id
        self.signing_method = signing_method

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.registry.promotion import promote_version
        from airflow_mlops.registry.rollout import promotion_target

        approved_by = approver(self.approval, task_id=self.task_id) if self.approval is not None else None
        trust = self.trust()
        client = self.mlflow_hook.get_conn()
        target = promotion_target(
            client, self.model_name, self.alias, self.rollout_alias, pipeline=self.pipeline
        )
        result = promote_version(
            client,
            model_name=self.model_name,
            version=str(self.version),
            alias=target,
            champion_alias=self.alias,
            trust=trust,
            gates_passed=self.gates_passed is True,
            allowed_globals=self.allowed_globals,
            request_id=self.airflow_run(context),
            by=self.actor(context),
            reason=str(self.reason or "every gate passed"),
            approved_by=approved_by,
            traffic_share=self.traffic_share if target != self.alias else None,
        )
        self.log.info(
            "Promoted %s version %s to @%s (previous: %s)%s",
            result.model_name,
            result.version,
            result.alias,
            result.previous_version,
            f", approved by {approved_by}" if approved_by else "",
        )
        return result.to_dict()
