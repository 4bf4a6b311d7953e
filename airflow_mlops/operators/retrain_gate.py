"""``retrain.gate``: the retrain policy (``schedule.policy``) applied to a training run's events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow_mlops.operators.base import MLOpsBaseOperator

#: Suppressed events listed in the gate's XCom (all of them are in the ledger and the task log).
XCOM_SUPPRESSED = 100


class RetrainGateOperator(MLOpsBaseOperator):
    """Admit or suppress each asset event that started this run, once, durably; skip the rest of
    the run when none is admitted.

    The decision is :func:`airflow_mlops.retrain.policy.gate_run` against the pipeline's retrain
    ledger (``{artifact_root}/{pipeline}/_state/retrain-ledger.json``): a retried gate finds its
    run's recorded decision and returns it; two gates at once cannot both pass a cooldown. Each
    suppressed event is logged with its reason, recorded in the ledger and listed in the XCom
    ``decision`` (``admitted``, ``trigger``, ``reason``, ``counts`` by outcome, ``suppressed``:
    the first :data:`XCOM_SUPPRESSED` with their reasons, ``admitted_events``: the ids
    (:attr:`~airflow_mlops.retrain.policy.Trigger.event_id`) of the admitted events, which the
    later stages train on (:func:`airflow_mlops.operators.data.admitted_events`),
    ``forceable_events``: those a person's approval adds, ``ledger``, ``forceable``). Runs without
    triggering events (the time schedule, a backfill, by hand) are admitted. With
    ``force_approval`` a run that only limits held back is not skipped here: ``retrain.force``
    (:class:`RetrainForceOperator`) asks a person.

    :param policy: the spec's ``schedule.policy`` (``RetrainPolicyConfig.model_dump()``).
    :param model_name: the registered model: part of every evidence key.
    :param force_approval: ``schedule.policy.force: approval``: a run held back by a limit is
        left to ``retrain.force`` instead of being skipped.
    """

    stage = "retrain"
    ui_color = "#fef7e0"

    def __init__(
        self, *, policy: Mapping[str, Any], model_name: str, force_approval: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.policy = dict(policy)
        self.model_name = model_name
        self.force_approval = force_approval

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.retrain.policy import NOT_FORCEABLE, RetrainPolicy, forceable, gate_run

        dag_run = context.get("dag_run")
        run_type = str(getattr(getattr(dag_run, "run_type", None), "value", getattr(dag_run, "run_type", "")))
        store = self.ledger_store()
        decision, replayed = gate_run(
            store,
            RetrainPolicy.from_mapping(self.policy),
            pipeline=self.pipeline,
            model=self.model_name,
            run_id=context["run_id"],
            run_type=run_type,
            triggers=self.triggers(context),
        )
        if replayed:
            self.log.info(
                "Run %s was decided before (a retried gate): %s", context["run_id"], decision.reason
            )
        for event in decision.events:
            if event.admitted:
                self.log.info("Admitted %s event at %s: %s", event.kind, event.timestamp, event.reason)
            else:
                self.log.warning("Suppressed %s event at %s: %s", event.kind, event.timestamp, event.reason)
        summary = {
            "admitted": decision.admitted,
            "trigger": decision.trigger,
            "reason": decision.reason,
            "decided_at": decision.decided_at,
            "counts": decision.counts(),
            "suppressed": [
                {"kind": e.kind, "timestamp": e.timestamp, "code": e.code, "reason": e.reason}
                for e in decision.suppressed[:XCOM_SUPPRESSED]
            ],
            "admitted_events": [e.event_id for e in decision.events if e.admitted],
            # what a person's approval (retrain.force) lets the run train on: never a duplicate
            "forceable_events": [e.event_id for e in decision.events if e.code not in NOT_FORCEABLE],
            "ledger": store.uri,
            "forceable": self.force_approval and forceable(decision),
        }
        self.log.info(
            "Retrain gate: %s", json.dumps({k: summary[k] for k in ("admitted", "trigger", "counts")})
        )
        if not decision.admitted and not summary["forceable"]:
            context["ti"].xcom_push(key="decision", value=summary)
            raise AirflowSkipException(f"retrain policy: {decision.reason}")
        return {"decision": summary}  # admitted, or a person is asked next (retrain.force)

    def ledger_store(self) -> Any:
        from airflow_mlops.retrain.ledger import LedgerStore, ledger_uri

        artifacts = self.artifact_store()
        uri = ledger_uri(f"{artifacts.root}/{self.pipeline}/_state")
        return LedgerStore(uri, s3_client=artifacts.s3 if artifacts.is_s3 else None)

    def triggers(self, context: Any) -> list[Any]:
        """The run's triggering asset events as :class:`~airflow_mlops.retrain.policy.Trigger` s;
        a new-data event's rows from its extra's ``rows``, else counted in its local files."""
        from airflow_mlops.retrain.policy import NEW_DATA, Trigger, event_payload, trigger_kind

        out = []
        for asset, events in (context.get("triggering_asset_events") or {}).items():
            kind = trigger_kind(self.pipeline, asset.uri)
            for event in events:
                extra = dict(event.extra or {})
                rows = self._rows(event_payload(extra)) if kind == NEW_DATA else None
                out.append(Trigger(asset.uri, kind, event.timestamp, extra, rows))
        return out

    def _rows(self, payload: Mapping[str, Any]) -> int | None:
        """Rows a new-data event brings: its ``rows``, else the row counts of its files, local or
        on S3 (CSV lines, parquet footers: of an S3 parquet object only its footer is read);
        None when they cannot be counted (fail closed)."""
        declared = payload.get("rows")
        if isinstance(declared, int) and not isinstance(declared, bool) and declared >= 0:
            return declared
        if not self.policy.get("min_new_rows"):
            return None
        from airflow_mlops.data.io import count_table_rows

        uris = payload.get("data") or []
        if not isinstance(uris, list) or not uris:
            return None
        total = 0
        client = None
        for uri in uris:
            try:
                location = self.check_location(str(uri), "new-data batch")
                if location.startswith("s3://") and client is None:
                    client = self.artifact_store().s3  # the store's S3 connection, as data.validate reads
                count = count_table_rows(location, s3_client=client)
            except Exception as exc:  # unreadable or outside the allowed roots: unknown
                self.log.warning("Cannot count the rows of %s: %s", uri, exc)
                return None
            if count is None:
                return None
            total += count
        return total


def _approval_base() -> type:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    return ApprovalOperator


class RetrainForceOperator(_approval_base()):  # type: ignore[misc]
    """``retrain.force``: a person approves or rejects a retrain the policy held back.

    Airflow's human-in-the-loop approval (``schedule.policy.force: approval``). A run its gate
    admitted passes at once, without a request.
    Otherwise a person is asked; "Approve" records the approver in the retrain ledger
    (:func:`airflow_mlops.retrain.policy.force_run`: the run counts as a retrain) and the run goes
    on; "Reject", or no answer within the timeout, skips the rest of the run.

    :param gate_task_id: the gate whose XCom ``decision`` this reads.
    :param aws_conn_id: the connection of an S3 artifact root (the ledger lives there).
    """

    def __init__(self, *, gate_task_id: str, aws_conn_id: str | None = None, **kwargs: Any) -> None:
        decision = f"ti.xcom_pull(task_ids='{gate_task_id}')['decision']"
        kwargs.setdefault("subject", "Retrain anyway? The retrain policy held this run back")
        kwargs.setdefault(
            "body",
            f"{{{{ {decision}['reason'] }}}}\n\nSuppressed events by reason: `{{{{ {decision}['counts'] }}}}`\n\n"
            f"First reasons:\n\n{{% for s in {decision}['suppressed'][:5] %}}- {{{{ s['reason'] }}}}\n{{% endfor %}}\n"
            "Approve to retrain now (recorded with your name; it counts toward cooldown and max_per_day); "
            "reject to skip this run.",
        )
        super().__init__(defaults="Reject", **kwargs)
        self.gate_task_id = gate_task_id
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Any) -> Any:
        decision = (context["ti"].xcom_pull(task_ids=self.gate_task_id) or {}).get("decision") or {}
        if decision.get("admitted") is True:
            self.log.info("The gate admitted this run: nothing to approve")
            return None
        if decision.get("forceable") is not True:  # fail closed: never ask about what cannot be forced
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException("the gate's decision cannot be forced")
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        result = super().execute_complete(context=context, event=event)
        if result["chosen_options"] == [self.APPROVE]:
            from airflow_mlops.retrain.policy import force_run

            user = result.get("responded_by_user") or {}
            approver = (
                str(user.get("name") or user.get("id") or "unknown user")
                if isinstance(user, dict)
                else str(user)
            )
            decision = (context["ti"].xcom_pull(task_ids=self.gate_task_id) or {})["decision"]
            forced = force_run(
                self._store(str(decision["ledger"])), run_id=context["run_id"], approver=approver
            )
            self.log.warning("Retrain forced by %s: %s", approver, forced.reason)
        return result

    def _store(self, uri: str) -> Any:
        from airflow_mlops.retrain.ledger import LedgerStore

        client = None
        if uri.startswith("s3://") and self.aws_conn_id:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            client = S3Hook(aws_conn_id=self.aws_conn_id).get_conn()
        return LedgerStore(uri, s3_client=client)
