"""The JSON Schema of the spec language, generated from the pydantic models (never by hand)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_mlops.spec.models import PipelineSpec

SCHEMA_PATH = Path(__file__).with_name("pipeline.schema.json")
SCHEMA_ID = "https://airflow-mlops.dev/schemas/pipeline-v1.json"


def json_schema() -> dict[str, Any]:
    schema = PipelineSpec.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    path.write_text(schema_text(), encoding="utf-8")
    return path
