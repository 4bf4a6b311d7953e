"""Render the spec reference (docs/spec.md) from the pydantic models, so docs cannot drift."""

from __future__ import annotations

import datetime as dt
import json
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from airflow_mlops.spec.models import PipelineSpec

BEGIN = "<!-- BEGIN GENERATED REFERENCE (python -m airflow_mlops.spec.reference) -->"
END = "<!-- END GENERATED REFERENCE -->"
DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "spec.md"


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type_name(a) for a in args if a is not type(None)) + (
            " or null" if type(None) in args else ""
        )
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping {_type_name(args[0])} → {_type_name(args[1])}" if args else "mapping"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "mapping"
        return {
            str: "string",
            int: "integer",
            float: "number",
            bool: "boolean",
            dt.date: "date",
            dt.timedelta: "duration",
        }.get(annotation, annotation.__name__)
    return str(annotation)


def _default(field: Any) -> str:
    if field.is_required():
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined:
        return ""
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, dt.timedelta):
        seconds = int(value.total_seconds())
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds and seconds % size == 0:
                return f"`{seconds // size}{unit}`"
        return f"`{seconds}s`"
    return f"`{json.dumps(value, default=str)}`"


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found.extend(_nested_models(arg))
    return found


def render_reference() -> str:
    lines: list[str] = []
    queue: list[tuple[str, type[BaseModel]]] = [("(top level)", PipelineSpec)]
    seen: set[str] = set()
    while queue:
        path, model = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        lines += [f"### `{path}`", ""]
        doc = (model.__doc__ or "").strip()
        if doc:
            lines += [doc.splitlines()[0], ""]
        lines += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for name, field in model.model_fields.items():
            key = field.alias or name
            description = (field.description or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {description} |")
            for nested in _nested_models(field.annotation):
                child = key if path == "(top level)" else f"{path}.{key}"
                if typing.get_origin(field.annotation) is dict or dict in [
                    typing.get_origin(a) for a in typing.get_args(field.annotation)
                ]:
                    child += ".<name>"
                queue.append((child, nested))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def updated_document(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise ValueError(f"{DOC_PATH} lacks the generated-reference markers")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n\n{render_reference()}\n{END}{tail}"


if __name__ == "__main__":
    DOC_PATH.write_text(updated_document(DOC_PATH.read_text()))
    print(f"updated {DOC_PATH}")
