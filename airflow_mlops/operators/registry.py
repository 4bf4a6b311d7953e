"""Operators for the registry stages: register a signed model version, promote it by alias, roll
the alias back to the version it replaced."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_mlops.hooks.signing import ModelSigningHook
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.operators.links import MLflowModelVersionLink, MLflowRunLink, ModelsViewLink


class ModelRegisterOperator(MLOpsBaseOperator):
    """Register the signed model as a new MLflow model version (idempotent across retries).

    The version carries tags linking it to its data (sha256), code version, the gates result,
    the model digest, and the signature digest and key fingerprint; with ``blessing`` (the
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
        mlflow_conn_id: str = "mlflow_default",
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
        from airflow_mlops.registry.mlflow_registry import (
            EVALUATION_ATTESTATION,
            MLBOM_ATTESTATION,
            MLBOM_FILE,
            TAG_GATES,
            TAG_KEY_FINGERPRINT,
            TAG_PIPELINE,
            register_version,
        )
        from airflow_mlops.registry.promotion import TAG_BLESSING

        blessing = self._blessing()
        with self.scratch() as tmp:
            model_dir = self.fetch(self.model, tmp / "model")
            sig_path = self.fetch(self.signature, tmp / "signature")
            attachments = {
                name: self.fetch(ref, tmp / "attestations" / name)
                for name, ref in (
                    (EVALUATION_ATTESTATION, self.attestation),
                    (MLBOM_FILE, self.mlbom),
                    (MLBOM_ATTESTATION, self.mlbom_attestation),
                )
                if ref
            }
            client = self.mlflow_hook.get_conn()
            registered = register_version(
                client,
                model_name=self.model_name,
                run_id=str(self.mlflow_run_id),
                model_dir=model_dir,
                signature_path=sig_path,
                airflow_run=self.airflow_run(context),
                tags={
                    TAG_PIPELINE: self.pipeline,
                    TAG_GATES: "passed"
                    if self.gates_passed is True and (blessing is None or blessing.passed)
                    else "failed",
                    **({TAG_BLESSING: blessing.to_tag()} if blessing is not None else {}),
                    TAG_KEY_FINGERPRINT: str(self.key_fingerprint),
                    "mlops.airflow_mlops_version": airflow_mlops.__version__,
                    "mlops.dag_id": context["dag"].dag_id,
                    **self._training_data_tag(),
                },
                description=self.description,
                attachments=attachments,
            )
            self._audit(client, registered, context, blessing)
        self.log.info("Registered %s version %s", registered.model_name, registered.version)
        return registered.to_dict()

    def _blessing(self) -> Any:
        """The gates' verdict, checked to be for the model being registered."""
        if not self.blessing:
            return None
        from airflow_mlops.exceptions import PromotionBlockedError
        from airflow_mlops.registry.promotion import Blessing

        blessing = Blessing.from_dict(self.blessing, where=f"task {self.task_id}'s blessing input")
        if blessing.model_sha256 != str(self.model["sha256"]):
            raise PromotionBlockedError(
                f"the blessing handed to {self.task_id} is for model {blessing.model_sha256}, but the "
                f"model to register is {self.model['sha256']}: the gates judged another model"
            )
        return blessing

    def _audit(self, client: Any, registered: Any, context: Any, blessing: Any) -> None:
        from airflow_mlops.registry.promotion import audit_entry, record_audit

        current = client.get_model_version(registered.model_name, registered.version)
        if (current.tags or {}).get("mlops.audit.registered"):
            return  # an earlier try recorded it
        entry = audit_entry(
            "registered",
            by=self.actor(context),
            reason=f"gates {'passed' if blessing is None or blessing.passed else 'failed'}"
            + (f" ({blessing.by}; compared with champion {blessing.champion_version})" if blessing else ""),
            model_sha256=registered.model_sha256,
            run_id=registered.run_id,
        )
        record_audit(
            client, registered.model_name, registered.version, entry, key="registered", history=False
        )

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
        mlflow_conn_id: str = "mlflow_default",
        signing_conn_id: str = "mlops_signing",
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
        from airflow_mlops.registry.mlflow_registry import champion_version
        from airflow_mlops.registry.promotion import promote_version

        approved_by = approver(self.approval, task_id=self.task_id) if self.approval is not None else None
        key = ModelSigningHook(signing_conn_id=self.signing_conn_id, method=self.signing_method).get_key(
            need_private=False
        )
        client = self.mlflow_hook.get_conn()
        target = self.alias
        if self.rollout_alias and champion_version(
            client, self.model_name, self.alias, pipeline=self.pipeline
        ):
            target = self.rollout_alias
        elif self.rollout_alias:
            self.log.info("No @%s yet: the first model becomes champion directly", self.alias)
        result = promote_version(
            client,
            model_name=self.model_name,
            version=str(self.version),
            alias=target,
            champion_alias=self.alias,
            trust=key.trust,
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


def approver(approval: Any, *, task_id: str) -> str:
    """The approver named by a human-in-the-loop response that chose ``Approve``; else blocks.

    The approval task already skips promotion on a rejection; this is the second lock on the
    door, so a promotion wired to a rejected, missing or malformed response never moves the alias.
    """
    from airflow_mlops.exceptions import PromotionBlockedError

    if not isinstance(approval, dict):
        raise PromotionBlockedError(
            f"{task_id} needs the approval task's response, got {type(approval).__name__}: not promoted"
        )
    chosen = list(approval.get("chosen_options") or [])
    if chosen != ["Approve"]:
        raise PromotionBlockedError(
            f"{task_id}: the approval response chose {chosen or 'nothing'}: not promoted"
        )
    user = approval.get("responded_by_user") or {}
    name = (user.get("name") or user.get("id")) if isinstance(user, dict) else str(user)
    if not name:
        raise PromotionBlockedError(f"{task_id}: the approval response names no approver: not promoted")
    at = approval.get("responded_at")
    return f"{name} at {at}" if at else str(name)


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
        mlflow_conn_id: str = "mlflow_default",
        signing_conn_id: str = "mlops_signing",
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

        key = ModelSigningHook(signing_conn_id=self.signing_conn_id, method=self.signing_method).get_key(
            need_private=False
        )
        expected = self.expected_version
        result = rollback_alias(
            self.mlflow_hook.get_conn(),
            model_name=self.model_name,
            alias=self.alias,
            trust=key.trust,
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


def approval_operator(
    *,
    task_id: str,
    model_name: str,
    alias: str,
    version: Any,
    metrics: Any,
    note: Any,
    rollout_alias: str | None = None,
    subject: str | None = None,
    timeout: Any = None,
    assigned_users: Sequence[str] = (),
    **kwargs: Any,
) -> Any:
    """Airflow's human-in-the-loop ``ApprovalOperator`` asking whether ``version`` may move the
    alias; a rejection (or no answer within ``timeout``) skips the promotion, the alias stays.

    ``version``, ``metrics`` and ``note`` are XCom references of the register and evaluate tasks:
    the request shows what the approver decides on. The promotion task reads the response and
    records the approver (see :func:`approver`).
    """
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    target = f"@{rollout_alias} (then @{alias} if its rollout gate passes)" if rollout_alias else f"@{alias}"
    body = (
        f"**{model_name}** version {{{{ ti.xcom_pull(task_ids='{version.operator.task_id}', key='{version.key}') }}}} "
        f"passed every gate and would move {target}.\n\n"
        f"Holdout metrics: `{{{{ ti.xcom_pull(task_ids='{metrics.operator.task_id}', key='{metrics.key}') }}}}`\n\n"
        f"{{{{ ti.xcom_pull(task_ids='{note.operator.task_id}', key='{note.key}') }}}}\n\n"
        "Approve to promote; reject to leave the alias where it is."
    )
    users = [{"id": u, "name": u} for u in assigned_users]
    op = ApprovalOperator(
        task_id=task_id,
        subject=subject or f"Promote {model_name} to {target}?",
        body=body,
        defaults="Reject",  # no answer in time: rejected, fail closed
        response_timeout=timeout,
        assigned_users=users or None,
        **kwargs,
    )
    version.operator >> op
    return op
