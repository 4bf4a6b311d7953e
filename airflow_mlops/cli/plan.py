"""``airflow-mlops plan SPEC``: what starts a pipeline's training runs, every gate a new version
faces with its thresholds, and where a version that passes goes, in text or JSON.

The plan is read from the validated spec models (loaded, checked and built exactly as Airflow's
loader does, so a spec the loader refuses has no plan), never from the YAML by hand. The gates
(:mod:`airflow_mlops.cli.plan_gates`) come in the order of the factory's stage table,
:data:`airflow_mlops.spec.sections.base.STAGE_TASK_IDS` (``tests/unit/cli/test_plan_gates.py``
builds each example's DAG and checks it runs them in that order). The ``--json`` document,
version :data:`PLAN_VERSION`, is described in docs/spec.md; within a version keys are only ever
added, and a renamed or removed key raises the version.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from airflow_mlops.cli.plan_gates import APPROVE_TASK_ID, check, duration_text, gates, value_text
from airflow_mlops.exceptions import SpecError
from airflow_mlops.retrain.policy import RETRAIN_GATE_TASK_ID

#: The version of the ``--json`` document; raised when a key is renamed or removed.
PLAN_VERSION = 1
PRIMARY_METRIC = "the task's primary metric"
#: Upcoming scheduled runs listed by default.
DEFAULT_RUNS = 3
MAX_RUNS = 50


def add_commands(sub: Any) -> None:
    """The ``plan`` command."""
    parser = sub.add_parser(
        "plan",
        help="what starts a spec's training runs, the gates a new version faces, where it goes",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    parser.add_argument("file", metavar="SPEC")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON (see docs/spec.md)")
    parser.add_argument(
        "--runs",
        type=int,
        default=DEFAULT_RUNS,
        metavar="N",
        help=f"upcoming scheduled runs to list (0-{MAX_RUNS}; default {DEFAULT_RUNS})",
    )
    parser.add_argument(
        "--allowed-root",
        action="append",
        dest="allowed_roots",
        metavar="DIR_OR_S3_PREFIX",
        help="as for `spec validate`: data and artifact locations must lie under one of these",
    )
    parser.add_argument(
        "--dags-folder",
        metavar="DIR",
        help="as for `spec validate`: the dags folder the spec is loaded from (the default allowed root)",
    )
    parser.set_defaults(command=None, func=plan_command)


def plan_command(args: argparse.Namespace) -> int:
    """Load, validate and build the spec as the loader does; print its plan."""
    from airflow_mlops.cli.spec import _build_for_validate, _load_for_validate

    if not 0 <= args.runs <= MAX_RUNS:
        print(
            f"airflow-mlops plan: --runs must be between 0 and {MAX_RUNS}, not {args.runs}", file=sys.stderr
        )
        return 2
    # stdout holds the plan alone: whatever Airflow or a library prints while loading goes to stderr
    with contextlib.redirect_stdout(sys.stderr):
        try:
            spec, roots = _load_for_validate(args.file, args.allowed_roots, args.dags_folder)
            _build_for_validate(spec, args.file, roots)  # whatever the loader refuses has no plan
        except SpecError as exc:
            print(exc, file=sys.stderr)
            return 1
        plan = build_plan(spec, spec_path=args.file, runs=args.runs)
    if args.json:
        print(json.dumps(plan, indent=2, default=_json_value))
    else:
        sys.stdout.write(render_text(plan))
    return 0


def _json_value(value: Any) -> Any:
    """A value YAML gave that JSON has no type for (an expectation's date bound): its ISO text."""
    return value.isoformat() if isinstance(value, (dt.date, dt.time)) else str(value)


# --- the plan as data --------------------------------------------------------------------------


def build_plan(spec: Any, *, spec_path: str | None = None, runs: int = DEFAULT_RUNS) -> dict[str, Any]:
    """The plan of a validated :class:`~airflow_mlops.spec.models.PipelineSpec` as JSON-ready data."""
    return {
        "plan_version": PLAN_VERSION,
        "spec": spec_path,
        "pipeline": spec.pipeline,
        "description": spec.description,
        "task": spec.task_hint,  # declared, implied by the spec, or None (the data tells)
        "dags": {
            "train": spec.train_dag_id,
            "monitor": spec.monitor_dag_id if spec.monitoring is not None else None,
        },
        "starts": _starts(spec, spec_path, runs),
        "gates": gates(spec),
        "steps": [{"id": s.id, "operator": s.operator, "after": list(s.after)} for s in spec.steps],
        "release": _release(spec),
    }


def _starts(spec: Any, spec_path: str | None, runs: int) -> dict[str, Any]:
    from airflow_mlops.spec.models import ScheduleConfig

    schedule = spec.schedule
    time = schedule.time if isinstance(schedule, ScheduleConfig) else schedule
    events = schedule.events if isinstance(schedule, ScheduleConfig) else []
    return {
        "time": time_schedule(time, spec.start_date, spec.catchup, runs),
        "events": [_event(spec, e, spec_path) for e in events],
        "manual": True,
        "event_data": _event_data(spec) if events else None,
        "max_active_runs": spec.max_active_runs,
        "policy": retrain_policy(schedule),
        "monitor": _monitor(spec, runs),
    }


def time_schedule(value: str | None, start_date: dt.date, catchup: bool, runs: int) -> dict[str, Any] | None:
    """A time schedule in words and its next ``runs`` runs, from the timetable the factory builds
    (:func:`airflow_mlops.factory.builder.time_timetable`) and Airflow's own scheduling of it."""
    if value is None:
        return None
    from airflow_mlops.factory.builder import describe_schedule_value, time_timetable

    out: dict[str, Any] = {
        "schedule": value,
        "text": describe_schedule_value(value, explain=True),
        "timetable": None,
        "cron": None,
        "interval_seconds": None,
        "description": None,
        "start_date": start_date.isoformat(),
        "catchup": catchup,
        "next_runs": [],
    }
    timetable = time_timetable(value)
    if isinstance(timetable, str):  # @once, @continuous: passed through as they are
        return out
    from airflow.sdk import DeltaDataIntervalTimetable
    from airflow.serialization.encoders import coerce_to_core_timetable

    from airflow_mlops.spec.models import parse_duration

    core = coerce_to_core_timetable(timetable)  # the scheduler's own class: its runs are the real ones
    out["timetable"] = type(timetable).__name__
    if isinstance(timetable, DeltaDataIntervalTimetable):
        interval = parse_duration(value)
        out["interval_seconds"] = interval.total_seconds()
        out["description"] = f"every {duration_text(interval)}"
    else:
        out["cron"] = core.summary
        out["description"] = getattr(core, "description", "") or None
    out["next_runs"] = next_runs(core, start_date, catchup, runs)
    return out


def next_runs(timetable: Any, start_date: dt.date, catchup: bool, runs: int) -> list[dict[str, str]]:
    """The first ``runs`` runs the scheduler makes for a DAG with no runs yet: Airflow's
    ``next_dagrun_info`` chained from one run's data interval to the next (with ``catchup``, from
    ``start_date``; without, from the latest complete interval)."""
    if runs <= 0:
        return []
    import pendulum
    from airflow.timetables.base import TimeRestriction

    from airflow_mlops.spec.loader import date_to_datetime

    earliest = pendulum.instance(date_to_datetime(start_date))
    restriction = TimeRestriction(earliest=earliest, latest=None, catchup=catchup)
    out: list[dict[str, str]] = []
    last = None
    for _ in range(runs):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        if info is None or info.data_interval is None:
            break
        last = info.data_interval
        out.append(
            {
                "data_interval_start": _iso(last.start),
                "data_interval_end": _iso(last.end),
                "logical_date": _iso(info.logical_date or last.start),
                "run_after": _iso(info.run_after),
            }
        )
    return out


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event(spec: Any, event: str, spec_path: str | None) -> dict[str, Any]:
    from airflow_mlops.factory.builder import pipeline_asset, resolve_location
    from airflow_mlops.spec.models import PIPELINE_EVENTS

    if event not in PIPELINE_EVENTS:
        return {
            "event": event,
            "asset": event,
            "source": "an asset another DAG or tool updates",
            "watch": None,
        }
    asset = pipeline_asset(spec.pipeline, event).uri  # the factory's own asset
    if event == "drift":
        m = spec.monitoring
        if m is None:
            source = "nothing in this spec emits it (no `monitoring` section): another DAG must"
        elif m.on_drift != "retrain":
            source = (
                f"{spec.monitor_dag_id} does not emit it: monitoring.on_drift is `alert` (it fails "
                "its emit task instead)"
            )
        else:
            estimation = getattr(m, "estimation", None)
            drop = estimation is not None and estimation.retrain_on == "drift_and_estimated_drop"
            source = (
                f"emitted by {spec.monitor_dag_id} when a live window drifts"
                + (" and its estimated performance dropped" if drop else "")
                + " (monitoring.on_drift: retrain)"
            )
        return {"event": event, "asset": asset, "source": source, "watch": None}
    watch = spec.data.new_data
    if watch is None:
        return {
            "event": event,
            "asset": asset,
            "source": "no data.new_data watch: another DAG or tool must update the asset",
            "watch": None,
        }
    base = Path(spec_path).resolve().parent if spec_path else None
    return {
        "event": event,
        "asset": asset,
        "source": "an asset watcher in the triggerer: new batch files after its persisted watermark",
        "watch": {
            "location": watch.location,
            "resolved": resolve_location(watch.location, base),
            "pattern": watch.pattern,
            "poll_interval_seconds": watch.poll_interval.total_seconds(),
            "settle_seconds": watch.settle.total_seconds(),
        },
    }


def _event_data(spec: Any) -> str:
    fallback = (
        f"data.event_source ({spec.data.event_source})"
        if spec.data.event_source
        else "nothing: such a run fails at once and says so (set data.event_source)"
    )
    return (
        "the data the triggering events name in their extra (the new batch; the drifted window when "
        f"labelled), else {fallback}; events queued before the run starts are one run on all their files"
    )


def retrain_policy(schedule: Any) -> dict[str, Any] | None:
    """``schedule.policy``, every field of its model with its value and description (read from the
    model, so a field added there shows here); None when the spec's schedule has none."""
    policy = getattr(schedule, "policy", None)
    if policy is None:
        return None
    return {
        "model": type(policy).__name__,
        "task_id": RETRAIN_GATE_TASK_ID,
        "text": f"{RETRAIN_GATE_TASK_ID}, the first task of each run, admits or suppresses every event that "
        "started it, once, and records each suppression with its reason (retrain ledger, task log, "
        "Models view); a run with no admitted event is skipped after it",
        "fields": model_fields(policy),
    }


def model_fields(model: Any, prefix: str = "") -> list[dict[str, Any]]:
    """Each field of a pydantic model (nested models flattened to dotted keys): its key, value
    (as JSON; a duration in seconds), value in words, description, and whether the spec set it."""
    from pydantic import BaseModel

    dumped = model.model_dump(mode="json")
    out: list[dict[str, Any]] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out += model_fields(value, f"{prefix}{name}.")
            continue
        out.append(
            {
                "key": prefix + name,
                "value": value.total_seconds() if isinstance(value, dt.timedelta) else dumped.get(name),
                "text": value_text(value),
                "description": info.description or "",
                "set": name in model.model_fields_set,
            }
        )
    return out


def _monitor(spec: Any, runs: int) -> dict[str, Any] | None:
    m = spec.monitoring
    if m is None:
        return None
    d = m.drift
    checks = [
        check(
            "drift",
            f"numeric features: {', '.join(d.numeric_tests)}; categorical: {', '.join(d.categorical_tests)}; "
            f"p < {d.p_value:g} ({d.correction}); PSI > {d.psi_threshold:g}, Wasserstein > "
            f"{d.wasserstein_threshold:g} std, Jensen-Shannon > {d.jensen_shannon_threshold:g}; the window "
            f"drifted when >= {d.drift_share:.0%} of features drifted"
            + (f"; MMD on all numeric features (p < {d.mmd_p_value:g})" if d.multivariate else ""),
            **d.model_dump(mode="json"),
        ),
        check(
            "quality",
            f"null rate +{m.quality.max_null_rate_increase:g}, new categories <= "
            f"{m.quality.max_new_category_share:g}, out of range <= {m.quality.max_out_of_range_share:g}, "
            f">= {m.quality.min_rows} rows; a failure is an alarm (the monitor fails, no retraining)",
            **m.quality.model_dump(mode="json"),
        ),
        check(
            "out_of_range",
            {
                "drift": "values beyond the reference's range are drift of that feature",
                "alarm": "values beyond the reference's range are a data-quality alarm",
                "both": "values beyond the reference's range are drift and a data-quality alarm",
            }[m.out_of_range],
            mode=m.out_of_range,
        ),
    ]
    if m.prediction_drift:
        checks.append(check("prediction_drift", "the champion's scores, live against reference"))
    for metric, bound in m.performance.items():
        checks.append(
            check(
                "performance",
                f"labelled windows: {metric} at most {bound.max_drop:g} worse than its recorded evaluation",
                metric=metric,
                max_drop=bound.max_drop,
            )
        )
    estimation = getattr(m, "estimation", None)
    needs_drop = estimation is not None and estimation.retrain_on == "drift_and_estimated_drop"
    if estimation is not None:
        checks.append(
            check(
                "estimation",
                "performance estimated without labels from the champion's stored calibration (CBPE; a "
                f"regression: direct loss estimation), {estimation.confidence:.0%} interval: "
                f"{estimation.metric or PRIMARY_METRIC} counts as dropped beyond "
                f"{estimation.max_drop:g} below its recorded evaluation",
                **estimation.model_dump(mode="json"),
            )
        )
    from airflow_mlops.factory.builder import pipeline_asset

    asset = pipeline_asset(spec.pipeline, "drift").uri
    listens = spec.schedule is not None and "drift" in getattr(spec.schedule, "events", [])
    emits = f"emits {asset}" + (" only on drift and an estimated drop" if needs_drop else "")
    if m.on_drift == "alert":
        on_drift = "alert: the emit task fails (notifiers fire), no drift event"
    elif listens:
        on_drift = f"retrain: {emits}, which starts {spec.train_dag_id}"
    else:
        on_drift = (
            f"retrain: {emits}, but `drift` is not in schedule.events: it does not start {spec.train_dag_id}"
        )
    return {
        "dag_id": spec.monitor_dag_id,
        "schedule": time_schedule(m.schedule, spec.start_date, False, runs),
        "source": m.source,
        "reference": m.reference,
        "model": f"{spec.registry.model_name}@{spec.registry.alias}",
        "checks": checks,
        "on_drift": m.on_drift,
        "on_drift_text": on_drift,
    }


# --- where it goes -----------------------------------------------------------------------------


def _release(spec: Any) -> dict[str, Any]:
    r = spec.registry
    rollout = r.rollout
    out: dict[str, Any] = {
        "model_name": r.model_name,
        "alias": r.alias,
        "experiment": r.experiment or spec.pipeline,
        "connection": r.connection,
        "rollout": {
            "strategy": rollout.strategy,
            "alias": rollout.rollout_alias,
            "traffic_share": rollout.traffic_share,
            "gate": None,
        },
        "approval": None,
        "rollback": {
            "previous_tag": f"mlops.{r.alias}.previous",
            "command": f"airflow-mlops model rollback {r.model_name}",
        },
    }
    if rollout.strategy != "direct":
        g = rollout.gate
        out["rollout"]["gate"] = {
            "task_id": "monitor.rollout",
            "dag_id": spec.monitor_dag_id,
            **g.model_dump(mode="json"),
        }
    if r.approval is not None:
        a = r.approval
        out["approval"] = {
            "task_id": APPROVE_TASK_ID,
            "timeout_seconds": a.timeout.total_seconds() if a.timeout is not None else None,
            "assigned_users": list(a.assigned_users),
            "subject": a.subject,
        }
    return out


# --- text ----------------------------------------------------------------------------------------


def render_text(plan: dict[str, Any]) -> str:
    """The plan as sectioned text (the same facts as the JSON)."""
    lines: list[str] = []
    add = lines.append
    title = f"Plan of {plan['pipeline']}" + (f" ({plan['spec']})" if plan["spec"] else "")
    add(title)
    if plan["description"]:
        add(f"  {plan['description']}")
    dags = plan["dags"]
    add(f"  DAGs: {dags['train']}" + (f", {dags['monitor']}" if dags["monitor"] else ""))
    add(f"  task: {plan['task'] or 'inferred from the target column at run time'}")
    add("")
    starts = plan["starts"]
    add(f"1. What starts a run of {dags['train']}")
    add("  time: " + ("none" if starts["time"] is None else ""))
    if starts["time"] is not None:
        lines[-1] += _time_text(starts["time"])
        lines += _runs_text(starts["time"], "    ")
    for event in starts["events"]:
        add(f"  asset event `{event['event']}` ({event['asset']}): {event['source']}")
        watch = event.get("watch")
        if watch:
            add(
                f"    watches {watch['location']} for `{watch['pattern']}`, every "
                f"{duration_text(dt.timedelta(seconds=watch['poll_interval_seconds']))}; files settle "
                f"{duration_text(dt.timedelta(seconds=watch['settle_seconds']))} first"
            )
    add("  manual: always (Airflow UI, CLI, REST API)")
    if starts["event_data"]:
        add(f"  an event-started run trains on {starts['event_data']}")
    add(f"  at most {starts['max_active_runs']} run(s) at a time")
    policy = starts["policy"]
    if policy is None:
        add("  retrain policy: none" + (" (every event starts a run)" if starts["events"] else ""))
    else:
        add(f"  retrain policy: {policy['text']}")
        for field in policy["fields"]:
            default = "" if field["set"] else " (default)"
            add(
                f"    {field['key']}: {field['text']}{default}"
                + (f" -- {field['description']}" if field["description"] else "")
            )
    monitor = starts["monitor"]
    if monitor is None:
        add("  monitor: none (no `monitoring` section)")
    else:
        add(f"  monitor {monitor['dag_id']} ({monitor['model']}):")
        add(
            "    schedule: "
            + ("manual only" if monitor["schedule"] is None else _time_text(monitor["schedule"]))
        )
        lines += _runs_text(monitor["schedule"], "      ")
        add(f"    live window: {monitor['source']}; reference: {monitor['reference']}")
        for item in monitor["checks"]:
            add(f"    {item['check']}: {item['text']}")
        add(f"    on drift: {monitor['on_drift_text']}")
    add("")
    add("2. Gates a new version faces, in order")
    for number, gate in enumerate(plan["gates"], 1):
        add(f"  {number}. {gate['title']} ({gate['task_id']}): {gate['on_failure']}")
        for item in gate["checks"]:
            add(f"     - {item['text']}")
    for step in plan["steps"]:
        after = ", ".join(step["after"]) or "the start"
        add(f"  step of your own `{step['id']}` ({step['operator']}) runs after {after}; it gates nothing")
    add("")
    release = plan["release"]
    rollout = release["rollout"]
    add("3. Where it goes")
    add(
        f"  MLflow model {release['model_name']} (experiment {release['experiment']}, connection {release['connection']})"
    )
    if rollout["strategy"] == "direct":
        add(f"  rollout: direct: @{release['alias']} moves to the new version at once")
    else:
        gate = rollout["gate"]
        share = f", {rollout['traffic_share']:.0%} of traffic" if rollout["traffic_share"] is not None else ""
        add(
            f"  rollout: {rollout['strategy']}: @{rollout['alias']} first{share}; @{release['alias']} stays put"
        )
        criteria = [f"at least {gate['min_rows']} rows per window"]
        if gate["min_agreement"] is not None:
            criteria.append(f"agreement with the champion >= {gate['min_agreement']:g}")
        criteria += [
            f"{m} at most {c['max_regression']:g} behind the champion (labelled windows)"
            for m, c in gate["compare_to_champion"].items()
        ]
        add(
            f"    decided on each live window by {gate['dag_id']} ({gate['task_id']}): " + "; ".join(criteria)
        )
        add(
            f"    passed: becomes @{release['alias']}; failed, or {gate['max_windows']} windows without a "
            f"decision: the rollout alias is removed (the first model becomes @{release['alias']} directly)"
        )
    approval = release["approval"]
    if approval is None:
        add("  approval: none")
    else:
        timeout = approval["timeout_seconds"]
        add(
            "  approval: required before the alias moves ("
            + (", ".join(approval["assigned_users"]) or "anyone allowed to respond")
            + "; timeout "
            + (duration_text(dt.timedelta(seconds=timeout)) if timeout is not None else "none")
            + ")"
        )
    rollback = release["rollback"]
    add(
        f"  rollback: `{rollback['command']}` re-points @{release['alias']} to {rollback['previous_tag']}, once it verifies"
    )
    return "\n".join(lines) + "\n"


def _time_text(time: dict[str, Any]) -> str:
    text = time["text"]
    if time["cron"]:
        text += f"; cron `{time['cron']}`" + (f": {time['description']}" if time["description"] else "")
    elif time["description"]:
        text += f"; {time['description']}"
    text += f"; start_date {time['start_date']}; catchup {str(time['catchup']).lower()}"
    return text


def _runs_text(time: dict[str, Any] | None, indent: str) -> list[str]:
    if not time or not time["next_runs"]:
        return []
    out = [f"{indent}first runs (a DAG with no runs yet):"]
    for run in time["next_runs"]:
        out.append(
            f"{indent}  {run['data_interval_start']} -> {run['data_interval_end']}, starts after {run['run_after']}"
        )
    return out
