"""``release.approve``: Airflow's human-in-the-loop approval of a promotion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


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
    records the approver (see :func:`airflow_mlops.registry.registration.approver`).
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
