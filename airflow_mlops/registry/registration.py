"""What registering a model version records: the gates' blessing (checked to be for the model
registered), the version's tags, the training data it came from, why the run trained, and the
audit entry.

No Airflow: the functions take plain values and, for the audit, an MLflow client.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow_mlops.exceptions import PromotionBlockedError


def checked_blessing(blessing: Mapping[str, Any] | None, model_sha256: str, *, where: str) -> Any:
    """The gates' verdict (:class:`~airflow_mlops.registry.promotion.Blessing`) once it is known to
    be for ``model_sha256``; None without one.

    :raises PromotionBlockedError: it is malformed, or the gates judged another model.
    """
    if not blessing:
        return None
    from airflow_mlops.registry.promotion import Blessing

    parsed = Blessing.from_dict(blessing, where=f"task {where}'s blessing input")
    if parsed.model_sha256 != model_sha256:
        raise PromotionBlockedError(
            f"the blessing handed to {where} is for model {parsed.model_sha256}, but the "
            f"model to register is {model_sha256}: the gates judged another model"
        )
    return parsed


def training_data_tag(training_data: Mapping[str, Any] | None) -> dict[str, str]:
    """The training data's ref, pinned by sha256, as the version tag the monitor compares live
    data with (``{}`` without one)."""
    if not training_data:
        return {}
    from airflow_mlops.artifacts import ArtifactRef
    from airflow_mlops.registry.mlflow_registry import TAG_TRAINING_DATA

    ref = ArtifactRef.from_dict(dict(training_data))
    pinned = {"uri": ref.uri, "sha256": ref.sha256, "size": ref.size, "media_type": ref.media_type}
    return {TAG_TRAINING_DATA: json.dumps({**pinned, "producer": ref.producer}, sort_keys=True)}


def version_tags(
    *,
    pipeline: str,
    gates_passed: bool,
    blessing: Any,
    key_fingerprint: str,
    code_version: str,
    dag_id: str,
    training_data: Mapping[str, Any] | None,
    retrain_reason: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The tags of a new model version: pipeline, the gates (passed only when the gates passed and
    the blessing, if any, says so), the blessing, the signing key, code version, DAG and data, and
    why the run trained (``mlops.retrain.kind``, ``.summary``, ``.reason``:
    :func:`airflow_mlops.retrain.reason.reason_tags`)."""
    from airflow_mlops.registry.mlflow_registry import TAG_GATES, TAG_KEY_FINGERPRINT, TAG_PIPELINE
    from airflow_mlops.registry.promotion import TAG_BLESSING
    from airflow_mlops.retrain.reason import reason_tags

    passed = gates_passed and (blessing is None or blessing.passed)
    return {
        TAG_PIPELINE: pipeline,
        TAG_GATES: "passed" if passed else "failed",
        **({TAG_BLESSING: blessing.to_tag()} if blessing is not None else {}),
        TAG_KEY_FINGERPRINT: str(key_fingerprint),
        "mlops.airflow_mlops_version": code_version,
        "mlops.dag_id": dag_id,
        **training_data_tag(training_data),
        **reason_tags(retrain_reason),
    }


def audit_registration(client: Any, registered: Any, blessing: Any, *, by: str) -> bool:
    """Record the registration in the version's audit trail (``mlops.audit.registered``), once:
    False when an earlier try recorded it."""
    from airflow_mlops.registry.promotion import audit_entry, record_audit

    current = client.get_model_version(registered.model_name, registered.version)
    if (current.tags or {}).get("mlops.audit.registered"):
        return False
    entry = audit_entry(
        "registered",
        by=by,
        reason=f"gates {'passed' if blessing is None or blessing.passed else 'failed'}"
        + (f" ({blessing.by}; compared with champion {blessing.champion_version})" if blessing else ""),
        model_sha256=registered.model_sha256,
        run_id=registered.run_id,
    )
    record_audit(client, registered.model_name, registered.version, entry, key="registered", history=False)
    return True


def approver(approval: Any, *, task_id: str) -> str:
    """The approver named by a human-in-the-loop response that chose ``Approve``; else blocks.

    The approval task already skips promotion on a rejection; this is the second lock on the
    door, so a promotion wired to a rejected, missing or malformed response never moves the alias.
    """
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
