"""The validate stage's work on a batch read: the data named by asset events, their batches
joined, the inputs checked, the expectations run, and the reports.

No Airflow: the functions take the events' ``extra`` / ``asset`` / ``timestamp`` objects (or any
object with those attributes), DataFrames and plain values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_mlops.exceptions import DataError


def triggering_data(events: Mapping[Any, Sequence[Any]] | None) -> list[dict[str, Any]]:
    """The data named by the asset events that started a run, oldest event first.

    Events of this package carry ``extra["data"]`` (URIs) and, when the data is an artifact of
    another run, ``extra["data_refs"]`` (``ArtifactRef`` s, so it is read verified); an asset
    watcher's event carries them under ``extra["payload"]``. Returns ``[{"uri", "ref"|None,
    "event"}]``, each URI once.
    """
    from airflow_mlops.data.arrivals import event_payload

    found: list[tuple[Any, dict[str, Any]]] = []
    for asset_events in (events or {}).values():
        for event in asset_events:
            payload = event_payload(event.extra)
            label = f"{event.asset.uri} at {event.timestamp}"
            if payload.get("reason"):
                label += f" ({payload['reason']})"
            refs = {r["uri"]: r for r in payload.get("data_refs") or [] if isinstance(r, dict) and "uri" in r}
            for uri in payload.get("data") or []:
                found.append((event.timestamp, {"uri": str(uri), "ref": refs.get(uri), "event": label}))
    found.sort(key=lambda item: item[0])
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _, item in found:
        if item["uri"] not in seen:
            seen.add(item["uri"])
            out.append(item)
    return out


def join_batches(frames: Sequence[Any], uris: Sequence[str]) -> Any:
    """The batches named by a run's events as one table (``uris``: where each came from).

    :raises DataError: they have different columns.
    """
    import pandas as pd

    columns = [list(map(str, f.columns)) for f in frames]
    if any(c != columns[0] for c in columns):
        raise DataError(
            "the batches named by this run's asset events have different columns: "
            + "; ".join(f"{u}: {c}" for u, c in zip(uris, columns, strict=True))
        )
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


@dataclass(frozen=True)
class Validation:
    """A batch validated: the expectations' report, the column profiles and the HTML report."""

    report: Any
    profiles: list[Any]
    html: str

    def payload(self, *, source: str, reference: str | None) -> dict[str, Any]:
        """``validation_report.json``: the report, where the batch and reference came from, and
        the profiles."""
        return {
            **self.report.to_dict(),
            "source": source,
            "reference": reference,
            "profiles": [p.to_dict() for p in self.profiles],
        }

    def payload_json(self, *, source: str, reference: str | None) -> str:
        return json.dumps(
            self.payload(source=source, reference=reference), indent=2, sort_keys=True, default=str
        )


def check_reference(
    frame: Any,
    reference: Any,
    *,
    source: str,
    reference_source: str,
    columns: Sequence[str] | None,
    target: str | None,
) -> None:
    """The reference has rows, the target and ``columns``, no column of nulls only, and the batch
    has its schema (same columns, same kind of each).

    :raises DataError: naming the file and the columns.
    """
    from airflow_mlops.data.io import check_table, compare_schema

    check_table(reference, source=reference_source, columns=columns, target=target)
    compare_schema(frame, reference, source=source, reference_source=reference_source)


def validate_batch(
    frame: Any,
    reference: Any,
    *,
    expectations: Sequence[Mapping[str, Any]],
    infer_from_reference: bool,
    columns: Sequence[str] | None,
    source: str,
    reference_source: str | None,
    title: str,
    context: Mapping[str, Any],
) -> Validation:
    """Run the expectations (with a reference and ``infer_from_reference``, those inferred from
    its ``columns`` first), profile the columns and render the HTML report."""
    from airflow_mlops.data.validation import infer_expectations, validate_dataframe
    from airflow_mlops.data.validation_report import profile_columns, render_validation_html

    chosen = list(expectations)
    if reference is not None and infer_from_reference:
        inferred_from = list(columns) if columns else [str(c) for c in reference.columns]
        chosen = infer_expectations(reference, columns=inferred_from) + chosen
    report = validate_dataframe(frame, chosen)
    profiles = profile_columns(frame, reference, columns=list(columns) if columns else None)
    html = render_validation_html(
        report,
        frame,
        reference=reference,
        source=source,
        reference_source=reference_source,
        title=title,
        context=dict(context),
        profiles=profiles,
    )
    return Validation(report=report, profiles=profiles, html=html)
