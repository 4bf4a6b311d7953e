"""data/validate_task.py: the events' data, their batches joined, the reference checked, the
expectations run and the report's payload."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from airflow_mlops.data import validate_task as task
from airflow_mlops.exceptions import DataError

T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


def event(uri: str, extra: dict[str, Any], minutes: int) -> Any:
    return SimpleNamespace(
        asset=SimpleNamespace(uri=uri), extra=extra, timestamp=T0 + dt.timedelta(minutes=minutes)
    )


def test_events_name_their_data_oldest_first_each_uri_once_with_their_refs() -> None:
    ref = {"uri": "/w/b", "sha256": "ab"}
    late = event("x-mlops://p/drift", {"data": ["/w/b"], "data_refs": [ref], "reason": "drift"}, 5)
    early = event("x-mlops://p/new_data", {"payload": {"data": ["/in/a", "/w/b"]}}, 0)
    items = task.triggering_data({"a": [late], "b": [early]})
    assert [i["uri"] for i in items] == ["/in/a", "/w/b"]
    assert items[1]["ref"] is None  # the earlier event named /w/b first, without a ref
    only_late = task.triggering_data({"a": [late]})
    assert only_late[0]["ref"] == ref and only_late[0]["event"].endswith("(drift)")
    assert task.triggering_data(None) == [] and task.triggering_data({}) == []


def test_batches_join_only_with_the_same_columns() -> None:
    a, b = pd.DataFrame({"x": [1], "y": [0]}), pd.DataFrame({"x": [2], "y": [1]})
    assert task.join_batches([a, b], ["/a", "/b"])["x"].tolist() == [1, 2]
    assert task.join_batches([a], ["/a"]) is a
    with pytest.raises(DataError, match=r"different columns: /a: \['x', 'y'\]; /c: \['x'\]"):
        task.join_batches([a, pd.DataFrame({"x": [3]})], ["/a", "/c"])


def test_a_reference_of_another_schema_is_refused() -> None:
    batch = pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]})
    task.check_reference(batch, batch.copy(), source="b", reference_source="r", columns=None, target="y")
    with pytest.raises(DataError):
        task.check_reference(
            batch, batch.assign(x=["a", "b"]), source="b", reference_source="r", columns=None, target="y"
        )
    with pytest.raises(DataError):
        task.check_reference(
            batch, batch.drop(columns="y"), source="b", reference_source="r", columns=None, target="y"
        )


def test_expectations_inferred_from_the_reference_catch_a_broken_batch() -> None:
    reference = pd.DataFrame({"x": [float(i) for i in range(100)], "y": [i % 2 for i in range(100)]})
    good = task.validate_batch(
        reference.copy(), reference, expectations=[], infer_from_reference=True, columns=None,
        source="b", reference_source="r", title="t", context={"run": "d/r"},
    )  # fmt: skip
    assert good.report.success and good.html.startswith("<!DOCTYPE html>")
    broken = reference.assign(x=reference.x * 1000)  # a unit change
    bad = task.validate_batch(
        broken, reference, expectations=[], infer_from_reference=True, columns=None,
        source="b", reference_source="r", title="t", context={},
    )  # fmt: skip
    assert not bad.report.success
    payload = json.loads(bad.payload_json(source="b", reference="r"))
    assert payload["source"] == "b" and payload["reference"] == "r" and payload["success"] is False
    assert {p["name"] for p in payload["profiles"]} >= {"x"}
    plain = task.validate_batch(
        broken, reference, expectations=[], infer_from_reference=False, columns=None,
        source="b", reference_source="r", title="t", context={},
    )  # fmt: skip
    assert plain.report.success  # nothing inferred, nothing expected
