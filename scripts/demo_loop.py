"""The continuous-training loop of the example, driven through a running Airflow's REST API.

Used by ``make demo`` (against ``airflow standalone``) and by the loop integration test (against a
scheduler, triggerer, dag-processor and api-server it starts itself). Every run is made by the real
scheduler; this script only unpauses DAGs, lands data, triggers the monitor and watches:

1. ``<pipeline>__train`` trains and promotes v1 (its scheduled run for the last closed day, or a
   manual run with a logical date);
2. ``<pipeline>__monitor`` checks a live window with no drift: ``monitor.emit_drift`` is skipped
   and no training run follows;
3. a drifted live window lands; the monitor finds the drift and emits ``x-mlops://<pipeline>/drift``;
4. the scheduler starts ``<pipeline>__train`` on that asset event; its gates promote or refuse
   the new version.

Prints what happened and where to see it; exits non-zero if the loop did not close.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FINISHED = ("success", "failed")


class AirflowAPI:
    """A small client of Airflow 3's REST API (``/api/v2``), with a bearer token when given one."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token

    @classmethod
    def login(cls, url: str, username: str, password: str) -> AirflowAPI:
        body = json.dumps({"username": username, "password": password}).encode()
        request = urllib.request.Request(
            f"{url.rstrip('/')}/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=20) as resp:
            return cls(url, json.load(resp)["access_token"])

    def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/api/v2/{path}", data=data, headers=headers, method=method
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    # -- what the loop needs ---------------------------------------------------------------------

    def unpause(self, dag_id: str) -> None:
        self.call("PATCH", f"dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, *, logical_date: dt.datetime, note: str = "") -> str:
        run = self.call(
            "POST",
            f"dags/{dag_id}/dagRuns",
            {"logical_date": logical_date.isoformat(), "note": note or None},
        )
        return str(run["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"dags/{dag_id}/dagRuns?limit=100&order_by=run_after")["dag_runs"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"dags/{dag_id}/dagRuns/{_q(run_id)}"))

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        items = self.get(f"dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances?limit=100")["task_instances"]
        return {t["task_id"]: t["state"] for t in items}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
        entry = self.get(f"dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}/xcomEntries/{key}")
        value = entry["value"]
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def asset_events(self, uri: str) -> list[dict[str, Any]]:
        assets = self.get(f"assets?uri_pattern={_q(uri)}&limit=100")["assets"]
        ids = [a["id"] for a in assets if a["uri"] == uri]
        if not ids:
            return []
        return list(self.get(f"assets/events?asset_id={ids[0]}&limit=100&order_by=timestamp")["asset_events"])


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def wait_for(
    what: str, seconds: float, probe: Callable[[], Any], *, check: Callable[[], None] | None = None
) -> Any:
    """Poll ``probe`` until it returns something truthy; ``check`` may raise to stop early."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        if check is not None:
            check()
        try:
            last = probe()
        except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(2)
    raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}; last: {last!r}")


@dataclass
class LoopResult:
    """What each step of the loop saw (for the printout and the integration test)."""

    first_train_run: str = ""
    no_drift_monitor_run: str = ""
    no_drift_states: dict[str, str | None] = field(default_factory=dict)
    drift_monitor_run: str = ""
    drift_states: dict[str, str | None] = field(default_factory=dict)
    drift_reasons: list[str] = field(default_factory=list)
    drift_event: dict[str, Any] = field(default_factory=dict)
    retrain_run: dict[str, Any] = field(default_factory=dict)
    retrain_states: dict[str, str | None] = field(default_factory=dict)
    html_report: str = ""
    # gates.evaluate of each training run: the operating threshold and the holdout metrics at it.
    first_evaluation: dict[str, Any] = field(default_factory=dict)
    retrain_evaluation: dict[str, Any] = field(default_factory=dict)


def _evaluation(api: AirflowAPI, dag_id: str, run_id: str) -> dict[str, Any]:
    """``{"threshold", "metrics"}`` of a run's ``gates.evaluate`` (empty when it has none)."""
    try:
        return {key: api.xcom(dag_id, run_id, "gates.evaluate", key) for key in ("threshold", "metrics")}
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return {}


def _operating_point(evaluation: dict[str, Any]) -> str:
    metrics = evaluation.get("metrics") or {}
    if not isinstance(metrics, dict) or evaluation.get("threshold") is None or "precision" not in metrics:
        return ""
    return (
        f"       holdout precision {metrics['precision']:.2f}, recall {metrics['recall']:.2f} at its "
        f"operating threshold {float(evaluation['threshold']):.3f}"
    )


def say(message: str) -> None:
    print(f"\033[1m[loop]\033[0m {message}", flush=True)


def finished_run(
    api: AirflowAPI, dag_id: str, run_id: str, seconds: float, check: Any = None
) -> dict[str, Any]:
    return dict(
        wait_for(
            f"{dag_id} run {run_id} to finish",
            seconds,
            lambda: (r := api.run(dag_id, run_id))["state"] in FINISHED and r,
            check=check,
        )
    )


def _run_for_day(
    api: AirflowAPI, dag_id: str, day: dt.date, mode: str, what: str, check: Callable[[], None] | None
) -> str:
    """The run of ``dag_id`` for ``day``: the scheduler's own (``mode="scheduled"``: the DAG was just
    unpaused, so it runs the last closed interval) or one triggered with that logical date."""
    if mode == "scheduled":
        say(f"{dag_id} unpaused: the scheduler {what}, {day}")
        run = wait_for(
            f"the scheduled run of {dag_id} for {day}",
            120,
            lambda: next((r for r in api.runs(dag_id) if (r["logical_date"] or "")[:10] == str(day)), None),
            check=check,
        )
        return str(run["dag_run_id"])
    run_id = api.trigger(dag_id, logical_date=dt.datetime.combine(day, dt.time(), dt.UTC), note=what)
    say(f"triggered {dag_id} for {day}: {run_id}")
    return run_id


def run_loop(
    api: AirflowAPI,
    *,
    pipeline: str,
    data_dir: Path,
    first_training: str = "scheduled",
    today: dt.date | None = None,
    run_timeout: float = 900,
    check: Callable[[], None] | None = None,
) -> LoopResult:
    """Drive the loop (see the module docstring); raises when a step does not happen."""
    from airflow_mlops.data.generate import write_live_window

    today = today or dt.datetime.now(dt.UTC).date()
    yesterday = today - dt.timedelta(days=1)
    train_dag, monitor_dag = f"{pipeline}__train", f"{pipeline}__monitor"
    drift_uri = f"x-mlops://{pipeline}/drift"
    result = LoopResult()
    for dag_id in (train_dag, monitor_dag):
        wait_for(f"{dag_id} to be parsed", 300, lambda d=dag_id: api.get(f"dags/{d}"), check=check)  # type: ignore[misc]

    # 1. The first champion.
    api.unpause(train_dag)
    result.first_train_run = _run_for_day(
        api, train_dag, yesterday, first_training, "trains the last closed day", check
    )
    run = finished_run(api, train_dag, result.first_train_run, run_timeout, check)
    if run["state"] != "success":
        raise RuntimeError(
            f"the first training run failed: {api.task_states(train_dag, result.first_train_run)}"
        )
    say(f"{train_dag} {result.first_train_run}: success (a champion is promoted)")
    result.first_evaluation = _evaluation(api, train_dag, result.first_train_run)
    before = {r["dag_run_id"] for r in api.runs(train_dag)}
    events_before = len(api.asset_events(drift_uri))

    # 2. A window without drift: the monitor emits nothing.
    write_live_window(data_dir, yesterday, shift=0.0)
    api.unpause(monitor_dag)
    result.no_drift_monitor_run = _run_for_day(
        api,
        monitor_dag,
        yesterday,
        first_training,
        "checks the window of the last closed day (no drift in it)",
        check,
    )
    finished_run(api, monitor_dag, result.no_drift_monitor_run, run_timeout, check)
    result.no_drift_states = api.task_states(monitor_dag, result.no_drift_monitor_run)
    say(f"{monitor_dag} {result.no_drift_monitor_run}: {result.no_drift_states}")
    if result.no_drift_states.get("monitor.emit_drift") != "skipped":
        raise RuntimeError(f"the window without drift was not passed as such: {result.no_drift_states}")
    if len(api.asset_events(drift_uri)) != events_before:
        raise RuntimeError("the window without drift emitted a drift event")

    # 3. A drifted window lands; the monitor finds it and emits the drift event. The monitor
    # compares with the champion's own training data, and after a drift retraining that is the
    # drifted window: so an even number of earlier drift events means the champion learnt the
    # original distribution (the window moves away from it), an odd number that it learnt the
    # shifted one (the window moves back). Either way the live data left what the champion knows.
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    shift = 1.0 if events_before % 2 == 0 else 0.0
    path = write_live_window(data_dir, now.date(), shift=shift)
    say(f"a live window unlike the champion's training data landed (shift {shift:g}): {path}")
    result.drift_monitor_run = api.trigger(monitor_dag, logical_date=now, note="drifted window")
    finished_run(api, monitor_dag, result.drift_monitor_run, run_timeout, check)
    result.drift_states = api.task_states(monitor_dag, result.drift_monitor_run)
    say(f"{monitor_dag} {result.drift_monitor_run}: {result.drift_states}")
    if result.drift_states.get("monitor.emit_drift") != "success":
        raise RuntimeError(f"the drifted window did not emit a drift event: {result.drift_states}")
    result.drift_reasons = list(
        api.xcom(monitor_dag, result.drift_monitor_run, "monitor.detect", "reasons") or []
    )
    html = api.xcom(monitor_dag, result.drift_monitor_run, "monitor.detect", "html")
    result.html_report = html.get("uri", "") if isinstance(html, dict) else ""
    events = wait_for(
        "the drift asset event", 60, lambda: (e := api.asset_events(drift_uri))[events_before:] and e
    )
    if len(events) != events_before + 1:
        raise RuntimeError(f"expected one new drift event, got {events[events_before:]}")
    result.drift_event = events[-1]

    # 4. The scheduler starts a training run on the event.
    retrain = wait_for(
        f"{train_dag} to start on the drift event",
        180,
        lambda: next(
            (
                r
                for r in api.runs(train_dag)
                if r["dag_run_id"] not in before and r["run_type"] == "asset_triggered"
            ),
            None,
        ),
        check=check,
    )
    say(f"{train_dag} started on the drift event: {retrain['dag_run_id']}")
    result.retrain_run = finished_run(api, train_dag, retrain["dag_run_id"], run_timeout, check)
    result.retrain_states = api.task_states(train_dag, retrain["dag_run_id"])
    result.retrain_evaluation = _evaluation(api, train_dag, retrain["dag_run_id"])
    started = [
        r for r in api.runs(train_dag) if r["dag_run_id"] not in before and r["run_type"] == "asset_triggered"
    ]
    if len(started) != 1:
        raise RuntimeError(f"expected exactly one training run started by an event, got {started}")
    return result


def describe(result: LoopResult, *, pipeline: str, model: str, alias: str, airflow_url: str) -> str:
    """The printout of ``make demo``: what happened, and where to see it."""
    promoted = result.retrain_states.get("release.promote") == "success"
    failed = sorted(t for t, s in result.retrain_states.items() if s in ("failed", "upstream_failed"))
    lines = [
        "",
        "The continuous-training loop",
        f"  1. {pipeline}__train {result.first_train_run}: trained, gated, signed, promoted @{alias}",
        *filter(None, [_operating_point(result.first_evaluation)]),
        f"  2. {pipeline}__monitor {result.no_drift_monitor_run}: no drift -> monitor.emit_drift skipped, no retraining",
        f"  3. {pipeline}__monitor {result.drift_monitor_run}: DRIFT -> asset event x-mlops://{pipeline}/drift",
    ]
    lines += [f"       - {reason}" for reason in result.drift_reasons]
    lines += [
        f"  4. {pipeline}__train {result.retrain_run.get('dag_run_id')} (run type {result.retrain_run.get('run_type')}, "
        f"started by the drift event): {result.retrain_run.get('state')}",
        "       new version "
        + (
            "PROMOTED: every gate passed, against the champion on the same holdout of the new window"
            if promoted
            else f"REFUSED ({', '.join(failed)} failed; the champion is unchanged)"
        ),
        *filter(None, [_operating_point(result.retrain_evaluation)]),
        "",
        "Where to look",
        f"  Drift report (HTML): {result.html_report}",
        f"  Airflow UI: {airflow_url}/dags/{pipeline}__monitor (runs, task logs) and "
        f"{airflow_url}/dags/{pipeline}__train (the run 'triggered by' the asset event); Assets: {pipeline}__drift",
        f"  MLflow: model {model} (versions, @{alias}); experiment {pipeline} (monitor runs with drift/ figures)",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--airflow-url", default=os.environ.get("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8080")
    )
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--pipeline", default="fraud_detector")
    parser.add_argument("--model", default="fraud-detector")
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--data", default=str(ROOT / "dags" / "data" / "fraud"))
    args = parser.parse_args()
    passwords = json.loads(Path(args.password_file).read_text())
    api = AirflowAPI.login(args.airflow_url, "admin", passwords.get("admin", next(iter(passwords.values()))))
    try:
        result = run_loop(api, pipeline=args.pipeline, data_dir=Path(args.data))
    except (RuntimeError, TimeoutError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(
        describe(
            result, pipeline=args.pipeline, model=args.model, alias=args.alias, airflow_url=args.airflow_url
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
