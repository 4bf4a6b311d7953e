"""Why a training run started: a small JSON document that travels with the model it makes.

:func:`retrain_reason` turns a run's triggering asset events (Airflow 3's
``context["triggering_asset_events"]``: a mapping asset -> events, each with ``asset.uri``,
``extra``, ``timestamp``, ``source_dag_id``, ``source_run_id``, ``source_task_id``) and its run
type (``scheduled``, ``manual``, ``backfill``, ``asset_triggered``, ...) into a document::

    {"format": 1, "kind": "drift", "run_type": "asset_triggered",
     "summary": "feature amount drifted (ks p=1.2e-09) in window fraud__monitor/scheduled__...",
     "event_count": 1, "kinds": {"drift": 1}, "first_event_at": "...", "last_event_at": "...",
     "events": [{"kind": "drift", "asset": "x-mlops://fraud/drift", "at": "...",
                 "source": {"dag_id": ..., "run_id": ..., "task_id": ...},
                 "window": ..., "monitor_run": ..., "drifted_features": [...],
                 "statistics": {"amount": {"kind": "numeric", "rules": ["tests"],
                                           "tests": {"ks": {"statistic": ..., "p_value": ...}}}},
                 ...}],
     "events_omitted": 0}

``kind`` is ``drift`` or ``new_data`` (the pipeline's own assets, ``x-mlops://<pipeline>/drift``
and ``.../new_data``), ``asset`` (any other asset), or, for a run no event started, ``schedule``,
``manual``, ``backfill`` or ``other``. With events of several kinds the run's kind is the first of
drift, new_data, asset that occurs; ``kinds`` counts them all.

The document is bounded (the first :data:`MAX_EVENTS` events, oldest first, each with at most
:data:`MAX_FEATURES` features, :data:`MAX_ITEMS` URIs and reasons; counts of the rest), holds no
credentials (every text passes :func:`~airflow_mlops.redaction.redact_credentials`; only known
fields of an event's ``extra`` are read, never the whole of it), has sorted keys and only finite
numbers (a signed statement refuses NaN). The extraction is defensive: a missing or odd ``extra``
gives the kind and what is known, never an error.

The same document goes into the MLflow version tags (:func:`reason_tags`), the ML-BOM, the signed
evaluation attestation and the Models view (:func:`parse_reason_tags`, :func:`describe`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow_mlops.redaction import SECRET_LIKE_NAME, redact_credentials

REASON_FORMAT = 1
#: Kinds of a reason: events of the pipeline's assets, any other asset, or how the run started.
EVENT_KINDS = ("drift", "new_data", "asset")
RUN_KINDS = {
    "scheduled": "schedule",
    "manual": "manual",
    "backfill": "backfill",
    "asset_triggered": "asset",
    "asset_materialization": "asset",
    "operator_triggered": "manual",
}
KINDS = (*EVENT_KINDS, "schedule", "manual", "backfill", "other")

MAX_EVENTS = 5
MAX_FEATURES = 10
MAX_ITEMS = 5
MAX_TEXT = 300

#: MLflow version tags.
TAG_KIND = "mlops.retrain.kind"
TAG_SUMMARY = "mlops.retrain.summary"
TAG_REASON = "mlops.retrain.reason"
#: MLflow's limit on a tag value is 5,000 characters (8,000 on newer servers): stay under both.
MAX_TAG_CHARS = 4_800
_PIPELINE_SCHEME = "x-mlops://"


# --- small, safe values ----------------------------------------------------------------------------


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    out = redact_credentials("" if value is None else value)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def finite(value: Any) -> float | int | None:
    """A finite number, rounded to 6 significant digits; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int):
        return value
    if not math.isfinite(value):
        return None
    return float(f"{value:.6g}")


def _texts(values: Any, limit: int = MAX_ITEMS) -> tuple[list[str], int]:
    """The first ``limit`` strings of a list (and how many there were); anything else: none."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        return [], 0
    return [_text(v) for v in values[:limit]], len(values)


def _when(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat(timespec="seconds")
    return _text(value, 64) if value else None


def _sorted(value: Any) -> Any:
    """``value`` with every mapping's keys in sorted order (the document's stable shape)."""
    if isinstance(value, Mapping):
        return {str(k): _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _payload(extra: Any) -> Mapping[str, Any]:
    """An event's body: a watcher's trigger payload is under ``extra["payload"]``."""
    if not isinstance(extra, Mapping):
        return {}
    inner = extra.get("payload")
    return inner if isinstance(inner, Mapping) else extra


# --- drift statistics (from the monitor's drift report) ------------------------------------------


#: The keys of a drift event's ``extra`` that carry the drift report's numbers: written by the
#: monitor through :func:`drift_event_statistics`, read back here by the retrain reason.
EVENT_STATISTICS_KEY = "drift_statistics"
EVENT_SHARE_KEY = "drift_share"


def drift_event_statistics(report: Any) -> dict[str, Any]:
    """What a drift event's ``extra`` carries of its drift report (``drift_report.json``): the
    drifted features' statistics (:func:`drift_statistics`) and the report's drift share."""
    share = report.get("drift_share") if isinstance(report, Mapping) else None
    return {EVENT_STATISTICS_KEY: drift_statistics(report), EVENT_SHARE_KEY: finite(share)}


def drift_statistics(
    report: Any, features: Sequence[str] | None = None, *, limit: int = MAX_FEATURES
) -> dict[str, Any]:
    """The statistics of the drifted features of a drift report (``drift_report.json``, the
    :meth:`~airflow_mlops.drift.report.DriftReport.to_dict` form): per feature its kind, the rules
    that fired, each test's statistic, p-value, adjusted p-value, threshold and verdict, and the
    share of values beyond the reference's range. ``features`` restricts them (default: those the
    report marks drifted); at most ``limit``. A malformed report gives ``{}``."""
    if not isinstance(report, Mapping) or not isinstance(report.get("features"), list):
        return {}
    wanted = None if features is None else {str(f) for f in features}
    out: dict[str, Any] = {}
    for entry in report["features"]:
        if len(out) >= limit:
            break
        if not isinstance(entry, Mapping) or not entry.get("name"):
            continue
        name = str(entry["name"])
        if (wanted is None and entry.get("drifted") is not True) or (
            wanted is not None and name not in wanted
        ):
            continue
        tests = {}
        for t in entry.get("tests") or []:
            if isinstance(t, Mapping) and t.get("test"):
                tests[_text(t["test"], 40)] = {
                    "statistic": finite(t.get("statistic")),
                    "p_value": finite(t.get("p_value")),
                    "adjusted_p_value": finite(t.get("adjusted_p_value")),
                    "threshold": finite(t.get("threshold")),
                    "drifted": t.get("drifted") if isinstance(t.get("drifted"), bool) else None,
                }
        oor = entry.get("out_of_range")
        rules, _ = _texts(entry.get("rules"))
        out[_text(name, 100)] = {
            "kind": _text(entry.get("kind"), 20),
            "rules": rules,
            "tests": tests,
            "out_of_range_share": finite(oor.get("share")) if isinstance(oor, Mapping) else None,
        }
    return out


# --- one event -----------------------------------------------------------------------------------


def event_kind(uri: str) -> str:
    """``drift`` / ``new_data`` for a pipeline's own assets (``x-mlops://<pipeline>/<event>``),
    else ``asset``."""
    if uri.startswith(_PIPELINE_SCHEME):
        last = uri[len(_PIPELINE_SCHEME) :].rstrip("/").rsplit("/", 1)[-1]
        if last in ("drift", "new_data"):
            return last
    return "asset"


def _as_report_entry(name: Any, stats: Mapping[str, Any]) -> dict[str, Any]:
    """A feature's statistics as the drift event carries them (:func:`drift_statistics`' form:
    tests by name, ``out_of_range_share``) back in the report's form, to be read again."""
    tests = stats.get("tests")
    if isinstance(tests, Mapping):
        tests = [{**t, "test": k} for k, t in tests.items() if isinstance(t, Mapping)]
    share = stats.get("out_of_range_share")
    return {
        **stats,
        "name": name,
        "drifted": True,
        "tests": tests,
        "out_of_range": stats.get("out_of_range") if share is None else {"share": share},
    }


def _drift_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    names, count = _texts(body.get("drifted_features"), MAX_FEATURES)
    reasons, reason_count = _texts(body.get("reasons"), MAX_ITEMS)
    if not reasons and body.get("reason"):
        reasons, reason_count = [_text(body["reason"])], 1
    stats = body.get(EVENT_STATISTICS_KEY)
    statistics = {}
    if isinstance(stats, Mapping):  # written by the monitor: re-read, bounded and made safe
        statistics = drift_statistics(
            {"features": [_as_report_entry(k, v) for k, v in stats.items() if isinstance(v, Mapping)]}
        )
    return {
        "window": _text(body["window"]) if body.get("window") else None,
        "monitor_run": _text(body["source_run"]) if body.get("source_run") else None,
        "champion_version": _text(body["champion_version"], 40) if body.get("champion_version") else None,
        "report": _text(body["report"]) if body.get("report") else None,
        "drift_share": finite(body.get(EVENT_SHARE_KEY)),
        "drifted_features": names,
        "drifted_feature_count": count,
        "statistics": statistics,
        "reasons": reasons,
        "reason_count": reason_count,
    }


def _new_data_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    objects, count = _texts(body.get("objects") or body.get("data"), MAX_ITEMS)
    declared = finite(body.get("count"))
    return {
        "batch_id": _text(body["batch_id"], 80) if body.get("batch_id") else None,
        "location": _text(body["location"]) if body.get("location") else None,
        "objects": objects,
        "object_count": declared if isinstance(declared, int) else count,
        "bytes": finite(body.get("bytes")),
        "rows": finite(body.get("rows")),
    }


def _field(event: Any, name: str) -> Any:
    try:
        return getattr(event, name, None)
    except Exception:  # an odd event object: the field is unknown
        return None


def _event_uri(event: Any, key: Any) -> str:
    asset = _field(event, "asset")
    uri = _field(asset, "uri") if asset is not None else None
    if uri is None:
        uri = _field(key, "uri") or (key if isinstance(key, str) else None)
    return _text(uri or "unknown", 200)


def event_summary(event: Any, key: Any = None) -> dict[str, Any]:
    """One asset event as the reason records it (its kind, asset, time, source and the known
    fields of its ``extra``); never raises."""
    uri = _event_uri(event, key)
    kind = event_kind(uri)
    body = _payload(_field(event, "extra"))
    source = {
        name: _text(_field(event, f"source_{name}"), 250)
        for name in ("dag_id", "run_id", "task_id")
        if _field(event, f"source_{name}")
    }
    summary: dict[str, Any] = {
        "kind": kind,
        "asset": uri,
        "at": _when(_field(event, "timestamp")),
        "source": source,
    }
    if kind == "drift":
        summary.update(_drift_fields(body))
    elif kind == "new_data":
        summary.update(_new_data_fields(body))
    else:  # another asset: only the names of its extra's keys (their values may be anything)
        summary["extra_keys"] = sorted(_text(k, 60) for k in body if not SECRET_LIKE_NAME.search(str(k)))[
            :MAX_ITEMS
        ]
    return summary


# --- the reason ----------------------------------------------------------------------------------


def _run_type(run_type: Any) -> str:
    value = getattr(run_type, "value", run_type)
    return _text(value, 40) if value else ""


def _events(events: Any) -> list[tuple[Any, Any]]:
    """``(key, event)`` of every event once (an event reached through an alias is listed under
    its asset and the alias), oldest first; an unreadable mapping gives none."""
    try:
        items = list(events.items()) if isinstance(events, Mapping) or hasattr(events, "items") else []
    except Exception:
        return []
    seen: set[str] = set()
    out: list[tuple[str, Any, Any]] = []
    for key, values in items:
        try:
            listed = list(values or [])
        except TypeError:
            continue
        for event in listed:
            summary_key = json.dumps(
                [_event_uri(event, key), str(_field(event, "timestamp"))]
                + [
                    str(_field(event, f))
                    for f in ("source_dag_id", "source_run_id", "source_task_id", "source_map_index")
                ],
            )
            if summary_key in seen:
                continue
            seen.add(summary_key)
            out.append((_when(_field(event, "timestamp")) or "", key, event))
    out.sort(key=lambda item: item[0])
    return [(key, event) for _, key, event in out]


def retrain_reason(events: Any, run_type: Any = None, *, max_events: int = MAX_EVENTS) -> dict[str, Any]:
    """Why this run trains (see the module docstring): from its triggering asset events (None
    or an empty mapping for a run no event started) and its run type."""
    listed = _events(events)
    summaries = [event_summary(event, key) for key, event in listed]
    kinds: dict[str, int] = {}
    for s in summaries:
        kinds[s["kind"]] = kinds.get(s["kind"], 0) + 1
    rtype = _run_type(run_type)
    if summaries:
        kind = next(k for k in EVENT_KINDS if k in kinds)
    else:
        kind = RUN_KINDS.get(rtype, "other")
        if kind == "asset":  # asset-triggered, yet no event is known: say so, not "other asset"
            kind = "other"
    stamps = [s["at"] for s in summaries if s["at"]]
    reason: dict[str, Any] = {
        "format": REASON_FORMAT,
        "kind": kind,
        "run_type": rtype,
        "event_count": len(summaries),
        "kinds": kinds,
        "first_event_at": min(stamps) if stamps else None,
        "last_event_at": max(stamps) if stamps else None,
        "events": summaries[:max_events],
        "events_omitted": max(0, len(summaries) - max_events),
    }
    reason["summary"] = describe(reason)
    return _sorted(reason)


def _feature_text(name: str, stats: Any) -> str:
    """``amount (ks p=1.2e-09)``: the feature and its strongest drifted test."""
    tests = stats.get("tests") if isinstance(stats, Mapping) else None
    if isinstance(tests, Mapping):
        for test, t in tests.items():
            if isinstance(t, Mapping) and t.get("drifted"):
                if t.get("p_value") is not None:
                    return f"{name} ({test} p={t['p_value']:.2g})"
                if t.get("statistic") is not None:
                    return f"{name} ({test}={t['statistic']:.3g})"
    if isinstance(stats, Mapping) and stats.get("out_of_range_share") is not None:
        return f"{name} ({stats['out_of_range_share']:.1%} beyond the reference's range)"
    return name


def _drift_text(event: Mapping[str, Any]) -> str:
    window = event.get("monitor_run") or event.get("window") or "unknown"
    names = [str(n) for n in event.get("drifted_features") or []]
    raw = event.get("statistics")
    stats: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    if names:
        shown = ", ".join(_feature_text(n, stats.get(n)) for n in names[:3])
        more = int(event.get("drifted_feature_count") or len(names)) - min(3, len(names))
        noun = "feature" if len(names) == 1 and more <= 0 else "features"
        return f"{noun} {shown}{f' and {more} more' if more > 0 else ''} drifted in window {window}"
    reasons = event.get("reasons") or []
    return f"drift in window {window}" + (f": {reasons[0]}" if reasons else "")


def _new_data_text(event: Mapping[str, Any]) -> str:
    batch = str(event.get("batch_id") or "")[:16] or "?"
    count = event.get("object_count")
    where = event.get("location")
    text = f"batch {batch} landed"
    details = [f"{count} file(s)" if isinstance(count, int) else "", f"in {where}" if where else ""]
    if isinstance(event.get("rows"), int):
        details.append(f"{event['rows']} rows")
    shown = " ".join(d for d in details if d)
    return f"{text} ({shown})" if shown else text


def describe(reason: Any) -> str:
    """One sentence: "feature amount (ks p=1e-09) drifted in window W", "batch B landed (...)",
    "scheduled run", "manual run", "backfill run", ... (``unknown`` for what is not a reason)."""
    if not isinstance(reason, Mapping):
        return "unknown"
    kind = reason.get("kind")
    events = [e for e in reason.get("events") or [] if isinstance(e, Mapping)]
    first = next((e for e in events if e.get("kind") == kind), None)
    if kind == "drift" and first is not None:
        text = _drift_text(first)
    elif kind == "new_data" and first is not None:
        text = _new_data_text(first)
    elif kind == "asset" and first is not None:
        text = f"asset event {first.get('asset')}"
    elif kind == "schedule":
        text = "scheduled run"
    elif kind in ("manual", "backfill"):
        text = f"{kind} run"
    else:
        text = f"{kind or 'unknown'} run" if kind else "unknown"
    count = reason.get("event_count")
    if isinstance(count, int) and count > 1:
        text += f" (+{count - 1} more event{'s' if count > 2 else ''})"
    return _text(text, 500)


# --- where it goes -------------------------------------------------------------------------------


def _dumps(reason: Mapping[str, Any]) -> str:
    return json.dumps(reason, sort_keys=True, separators=(",", ":"), allow_nan=False)


def compact(reason: Mapping[str, Any], limit: int = MAX_TAG_CHARS) -> str:
    """``reason`` as JSON in at most ``limit`` characters: the events' statistics, then all but
    the first event, then the events are dropped until it fits (the counts stay)."""
    doc = dict(reason)
    text = _dumps(doc)
    events = [dict(e) for e in doc.get("events") or [] if isinstance(e, Mapping)]
    steps: tuple[Callable[[list[dict[str, Any]]], list[dict[str, Any]]], ...] = (
        lambda es: [{k: v for k, v in e.items() if k != "statistics"} for e in es],
        lambda es: es[:1],
        lambda es: [],
    )
    for step in steps:
        if len(text) <= limit:
            break
        events = step(events)
        doc["events"] = events
        doc["events_omitted"] = int(doc.get("event_count") or 0) - len(events)
        text = _dumps(doc)
    if len(text) <= limit:
        return text
    last = {"format": REASON_FORMAT, "kind": doc.get("kind"), "summary": ""}
    room = max(4, limit - len(_dumps(last)))
    return _dumps({**last, "summary": _text(doc.get("summary"), room)})


def reason_tags(reason: Mapping[str, Any] | None) -> dict[str, str]:
    """The MLflow tags of a reason (``{}`` without one): kind, the sentence, the JSON document."""
    if not reason:
        return {}
    return {
        TAG_KIND: str(reason.get("kind") or "other"),
        TAG_SUMMARY: _text(reason.get("summary") or describe(reason), 500),
        TAG_REASON: compact(reason),
    }


def parse_reason_tags(tags: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The reason recorded in a version's tags (None when there is none); a tag that is not a
    JSON object still gives its kind and sentence."""
    tags = tags or {}
    kind = tags.get(TAG_KIND)
    raw = tags.get(TAG_REASON)
    parsed: Any = None
    if isinstance(raw, str) and raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
    if isinstance(parsed, dict):
        return parsed
    if not kind:
        return None
    return {"kind": str(kind), "summary": str(tags.get(TAG_SUMMARY) or f"{kind} run")}


def trigger_type(reason: Mapping[str, Any]) -> str:
    """CycloneDX's ``formulation.workflows[].trigger.type`` of a reason: ``scheduled``, ``manual``
    (a person started it: manual and backfill runs) or ``api`` (an asset event)."""
    kind = reason.get("kind")
    if kind == "schedule":
        return "scheduled"
    if kind in ("manual", "backfill"):
        return "manual"
    return "api" if kind in EVENT_KINDS else "manual"
