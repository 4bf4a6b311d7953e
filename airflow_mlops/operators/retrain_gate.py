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
    the first :data:`XCOM_SUPPRESSED` with their reasons, ``ledger``). Runs without triggering
    events (the time schedule, a backfill, by hand) are admitted.

    :param policy: the spec's ``schedule.policy`` (``RetrainPolicyConfig.model_dump()``).
    :param model_name: the registered model: part of every evidence key.
    """

    stage = "retrain"
    ui_color = "#fef7e0"

    def __init__(self, *, policy: Mapping[str, Any], model_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = dict(policy)
        self.model_name = model_name

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.retrain.policy import RetrainPolicy, gate_run

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
            "ledger": store.uri,
        }
        self.log.info(
            "Retrain gate: %s", json.dumps({k: summary[k] for k in ("admitted", "trigger", "counts")})
        )
        if not decision.admitted:
            context["ti"].xcom_push(key="decision", value=summary)
            raise AirflowSkipException(f"retrain policy: {decision.reason}")
        return {"decision": summary}

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
        """Rows a new-data event brings: its ``rows``, else the row counts of its local files
        (CSV lines, parquet footers); None when they cannot be counted (fail closed)."""
        declared = payload.get("rows")
        if isinstance(declared, int) and not isinstance(declared, bool) and declared >= 0:
            return declared
        if not self.policy.get("min_new_rows"):
            return None
        from airflow_mlops.data.io import check_csv_layout, check_parquet_schema, format_from_path

        uris = payload.get("data") or []
        if not isinstance(uris, list) or not uris:
            return None
        total = 0
        for uri in uris:
            try:
                path = self.check_location(str(uri), "new-data batch")
                fmt = format_from_path(path)
                count = check_csv_layout(path, path) if fmt == "csv" else check_parquet_schema(path, path)
            except Exception as exc:  # unreadable, remote or outside the allowed roots: unknown
                self.log.warning("Cannot count the rows of %s: %s", uri, exc)
                return None
            if count is None:
                return None
            total += count
        return total
