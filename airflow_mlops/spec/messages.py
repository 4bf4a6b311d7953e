"""Pydantic's validation errors as actionable issues: the loader's messages.

:func:`validate_data` validates plain data (from :mod:`airflow_mlops.spec.yaml_positions`) with a
spec model and turns each error into a :class:`~airflow_mlops.exceptions.SpecIssue` naming the
file, line, column, key path, the bad value, what is allowed, and a "did you mean" for misspelt
keys and enum values. Union noise (the "wrong type" of the branches that were not meant) is
dropped, and a mapping or list in the wrong shape gets an example built from the model.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from airflow_mlops.exceptions import SpecError, SpecIssue
from airflow_mlops.spec.models import PipelineSpec
from airflow_mlops.spec.yaml_messages import PathKey, dotted
from airflow_mlops.spec.yaml_positions import LocatedYaml


def _alternatives(annotation: Any) -> list[Any]:
    """The members of a union (``X | Y | None``), each without its ``Annotated`` metadata."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _alternatives(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [alt for arg in typing.get_args(annotation) for alt in _alternatives(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field(model: type[BaseModel], key: str) -> Any:
    return model.model_fields.get(key) or next(
        (f for f in model.model_fields.values() if f.alias == key), None
    )


def _annotations_at(path: PathKey, root: type[BaseModel] = PipelineSpec) -> list[Any]:
    """What may stand at ``path``: the annotations of the field, list item or mapping value there."""
    import typing

    current: list[Any] = [root]
    for part in path:
        following: list[Any] = []
        for alt in (a for c in current for a in _alternatives(c)):
            origin = typing.get_origin(alt)
            args = typing.get_args(alt)
            if _is_model(alt) and isinstance(part, str):
                field = _field(alt, part)
                if field is not None:
                    following.append(field.annotation)
            elif origin in (list, tuple) and isinstance(part, int) and args:
                following.append(args[0])
            elif origin is dict and len(args) == 2:
                following.append(args[1])
        if not following:
            return []
        current = following
    return current


def _model_at(path: PathKey, root: type[BaseModel] = PipelineSpec) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``path`` (for "did you mean" on keys)."""
    return next((a for c in _annotations_at(path, root) for a in _alternatives(c) if _is_model(a)), None)


def _yaml_scalar(value: Any) -> str:
    text: str = yaml.safe_dump(value, default_flow_style=True, width=1000)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _model_example(model: type[BaseModel], given: Any = None) -> str:
    """A flow mapping of ``model``'s required keys (else its first), e.g. ``{min: 0.5}``.

    ``given`` (a scalar written where the mapping belongs) fills the key when only one is shown.
    """
    keys = [(f.alias or name, f) for name, f in model.model_fields.items()]
    shown = [key for key, f in keys if f.is_required()] or [keys[0][0]]
    if len(shown) == 1 and _scalar(given):
        return f"{{{shown[0]}: {_yaml_scalar(given)}}}"
    return "{" + ", ".join(f"{key}: ..." for key in shown) + "}"


def _value_example(annotation: Any, given: Any = None) -> str | None:
    """A YAML example of a value of ``annotation`` (a model, a mapping of models, a list); None: none."""
    import typing

    for alt in _alternatives(annotation):
        origin = typing.get_origin(alt)
        args = typing.get_args(alt)
        if _is_model(alt):
            return _model_example(alt, given)
        if origin is dict and len(args) == 2:
            keys = [k for k in _alternatives(args[0]) if typing.get_origin(k) is typing.Literal]
            inner = _value_example(args[1], given)
            if not keys or inner is None:
                return "{<key>: <value>}"
            return f"{{{typing.get_args(keys[0])[0]}: {inner}}}"
        if origin in (list, tuple) and args:
            inner = _value_example(args[0]) or "..."
            return f"[{inner}]"
    return None


def _shape_issue(
    kind: str, loc: PathKey, value: Any, located: LocatedYaml, root: type[BaseModel]
) -> SpecIssue | None:
    """A mapping or list where something else was written: what to write, built from the model."""
    pos = located.position(loc)
    line, column = pos if pos else (None, None)
    wanted = "a list" if kind == "list_type" else "a mapping (key: value)"
    got = value if _scalar(value) or value is None or isinstance(value, bool) else None
    key = loc[-1] if loc else ""
    if len(loc) == 4 and loc[:2] == ("validation", "expectations") and isinstance(key, str):
        from airflow_mlops.spec.expectations import example as expectation_example

        hint = f"write `{expectation_example(key, value)}`"
        return SpecIssue(located.file, line, column, dotted(loc), f"{wanted} is expected here", got, hint)
    annotations = _annotations_at(loc, root)
    example = next((e for a in annotations if (e := _value_example(a, value)) is not None), None)
    if example is None:
        return None
    lead = f"{key}: " if isinstance(key, str) else "- "
    hint = f"write `{lead}{example}`"
    model = _model_at(loc, root)
    if model is not None:
        hint += "; allowed keys here: " + ", ".join(_allowed_keys(model))
    return SpecIssue(located.file, line, column, dotted(loc), f"{wanted} is expected here", got, hint)


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _did_you_mean(value: Any, choices: list[str]) -> str | None:
    if not isinstance(value, str):
        return None
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return close[0] if close else None


_LITERAL_EXPECTED = re.compile(r"'([^']+)'")


def _issue_from_error(
    err: dict[str, Any], located: LocatedYaml, root: type[BaseModel] = PipelineSpec
) -> SpecIssue:
    loc: PathKey = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind = err["type"]
    if loc and loc[-1] == "[key]":  # a bad mapping key (e.g. an unknown metric name)
        loc = loc[:-1]
    value = err.get("input")
    pos = located.position(loc)
    line, column = pos if pos else (None, None)
    path = dotted(loc)
    hint: str | None = None

    if kind == "extra_forbidden":
        key = loc[-1]
        parent = _model_at(loc[:-1], root)
        allowed = _allowed_keys(parent) if parent else []
        suggestion = _did_you_mean(key, allowed)
        message = f"unknown key {key!r}"
        if suggestion:
            message += f"; did you mean {suggestion!r}?"
        if allowed:
            hint = "allowed keys here: " + ", ".join(allowed)
        return SpecIssue(located.file, line, column, path, message, None, hint)

    if kind == "missing":
        return SpecIssue(
            located.file,
            line,
            column,
            path,
            "required key is missing",
            hint=f"add `{loc[-1]}:` to {dotted(loc[:-1]) or 'the top level'}; see docs/spec.md",
        )

    if kind in ("literal_error", "enum"):
        expected = _LITERAL_EXPECTED.findall(err.get("ctx", {}).get("expected", ""))
        suggestion = _did_you_mean(value, expected)
        message = f"{value!r} is not allowed here"
        if suggestion:
            message += f"; did you mean {suggestion!r}?"
        return SpecIssue(
            located.file,
            line,
            column,
            path,
            message,
            None,
            "allowed values: " + ", ".join(expected) if expected else None,
        )

    if kind == "too_long" and isinstance(value, (list, dict)):
        limit = err.get("ctx", {}).get("max_length")
        return SpecIssue(
            located.file,
            line,
            column,
            path,
            f"too many entries: at most {limit} here, not {len(value):,}",
            None,
            f"see what `{loc[-1] if loc and isinstance(loc[-1], str) else path}` takes in docs/spec.md",
        )

    if kind in ("model_type", "model_attributes_type", "dict_type", "list_type"):
        shaped = _shape_issue(kind, loc, value, located, root)
        if shaped is not None:
            return shaped

    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind == "value_error" and "unknown expectation" in message:
        from airflow_mlops.data.expectation_names import SUPPORTED_EXPECTATIONS

        name = message.split("'")[1] if "'" in message else ""
        for index in range(len(value) if isinstance(value, list) else 0):
            if (*loc, index, name) in located.key_marks:
                loc = (*loc, index, name)
                line, column = located.key_marks[loc]
                path = dotted(loc)
                break
        suggestion = _did_you_mean(name, list(SUPPORTED_EXPECTATIONS))
        if suggestion:
            message += f"; did you mean {suggestion!r}?"
        hint = "supported expectations are listed in docs/spec.md (validation.expectations)"
        value = None
    elif kind == "value_error" and "schedule preset" in message:
        from airflow_mlops.spec.models import SCHEDULE_PRESETS

        suggestion = _did_you_mean(value, list(SCHEDULE_PRESETS))
        if suggestion:
            message += f"; did you mean {suggestion!r}?"
        hint = "presets: " + ", ".join(SCHEDULE_PRESETS) + "; or a 5-field cron such as '0 3 * * *'"
        value = None
    elif kind == "value_error" and "cron" in path:
        pass
    elif kind == "string_pattern_mismatch" and loc and loc[-1] == "pipeline":
        hint = "use lowercase letters, digits and underscores, starting with a letter, e.g. fraud_detector"
    if isinstance(value, (dict, list)):
        value = None  # the whole subtree is not a useful "got"
    return SpecIssue(located.file, line, column, path, message, value, hint)


M = TypeVar("M", bound=BaseModel)

_TYPE_MISMATCH = {
    "string_type",
    "none_required",
    "dict_type",
    "model_type",
    "model_attributes_type",
    "int_type",
    "float_type",
    "bool_type",
    "list_type",
    "literal_error",
    "string_pattern_mismatch",
}


_BRANCH_TAGS = {"str", "int", "float", "bool", "none", "dict", "list", "date", "datetime", "timedelta"}


def _is_branch_tag(part: str) -> bool:
    return (
        part in _BRANCH_TAGS
        or part[:1].isupper()
        or "[" in part
        or part.startswith(("function-", "constrained-"))
    )


def _data_loc(err: dict[str, Any], data: Any) -> dict[str, Any]:
    """Drop pydantic's union-branch tags (``str``, ``ScheduleConfig``...) from an error's location."""
    loc: list[Any] = []
    node = data
    for part in err["loc"]:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
            loc.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and not _is_branch_tag(part):
            loc.append(part)  # a key that is missing or unknown (e.g. extra_forbidden)
            node = None
        elif part == "[key]":
            loc.append(part)
        # anything else is a branch tag of a union or a validator wrapper
    return {**err, "loc": tuple(loc), "branch": tuple(err["loc"]) != tuple(loc)}


def _without_union_noise(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """When a union branch failed for a real reason, hide the "wrong type" errors of the others."""
    real = {e["loc"][:1] for e in errors if e.get("branch") and e["type"] not in _TYPE_MISMATCH}
    kept = [
        e for e in errors if not (e.get("branch") and e["type"] in _TYPE_MISMATCH and e["loc"][:1] in real)
    ]
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for e in kept:
        key = (e["loc"], e["msg"])
        if key not in seen:
            seen.add(key)
            unique.append(e)
    return unique


def _without_misspelt_missing(errors: list[dict[str, Any]], root: type[BaseModel]) -> list[dict[str, Any]]:
    """Drop "required key is missing" when an unknown key beside it is its misspelling.

    ``{notifer: x}`` gives both errors; the unknown key's "did you mean 'notifier'?" says it all.
    """
    suggested: set[tuple[Any, ...]] = set()
    for e in errors:
        if e["type"] == "extra_forbidden" and e["loc"]:
            parent = _model_at(e["loc"][:-1], root)
            close = _did_you_mean(e["loc"][-1], _allowed_keys(parent)) if parent else None
            if close is not None:
                suggested.add((*e["loc"][:-1], close))
    return [e for e in errors if not (e["type"] == "missing" and tuple(e["loc"]) in suggested)]


def validate_data(data: Any, located: LocatedYaml, model: type[M] = PipelineSpec) -> M:  # type: ignore[assignment]
    if not isinstance(data, dict):
        raise SpecError(
            [
                SpecIssue(
                    located.file,
                    1,
                    1,
                    "",
                    "a pipeline spec must be a YAML mapping (key: value)",
                    type(data).__name__,
                )
            ]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = _without_misspelt_missing(
            _without_union_noise([_data_loc(dict(e), data) for e in exc.errors()]), model
        )
        issues = [_issue_from_error(e, located, model) for e in errors]
        issues.sort(key=lambda i: (i.line or 0, i.column or 0))
        raise SpecError(issues) from None
