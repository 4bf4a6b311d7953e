from __future__ import annotations

import json

import pytest

from airflow_mlops.spec.cron import validate_cron
from airflow_mlops.spec.schema import SCHEMA_PATH, json_schema, schema_text


def test_committed_schema_is_generated_from_the_models() -> None:
    assert SCHEMA_PATH.read_text() == schema_text(), (
        "run: python -c 'from airflow_mlops.spec.schema import write_schema; write_schema()'"
    )


def test_schema_rejects_unknown_keys_and_requires_identity() -> None:
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert {"apiVersion", "pipeline", "data", "registry"} <= set(schema["required"])
    assert json.loads(json.dumps(schema))  # serialisable


@pytest.mark.parametrize("expr", ["0 3 * * *", "*/15 * * * 1-5", "0 0 1 jan,jul *", "5,10 4 * * sun"])
def test_valid_cron(expr: str) -> None:
    validate_cron(expr)


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ("* * *", "5 fields"),
        ("0 24 * * *", "hour"),
        ("0 0 32 * *", "day of month"),
        ("0 0 * * fri-mon", "backwards"),
        ("*/0 * * * *", "step"),
        ("0 0 * foo *", "month"),
    ],
)
def test_invalid_cron(expr: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        validate_cron(expr)


def test_docs_reference_is_generated_from_the_models() -> None:
    from airflow_mlops.spec.reference import DOC_PATH, updated_document

    text = DOC_PATH.read_text()
    assert text == updated_document(text), "run: python -m airflow_mlops.spec.reference"
    for key in ("max_suspect_fraction", "holdout_fraction", "compare_to_champion", "model_name"):
        assert f"`{key}`" in text
