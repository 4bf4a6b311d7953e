"""Load a pipeline spec with line numbers, and turn every problem into an actionable message.

YAML is composed into nodes with PyYAML's safe loader (libyaml's when built; no arbitrary tags, no code), converted to
plain Python while recording the line and column of every key path, and validated by the strict
pydantic models. Each pydantic error becomes a :class:`SpecIssue` naming the file, line, column,
key path, the bad value, what is allowed, and a "did you mean" for misspelt keys and enum values.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from airflow_mlops.exceptions import SpecError, SpecIssue
from airflow_mlops.spec.models import (
    DEFAULTS_FILE_NAME,
    Defaults,
    FolderDefaults,
    PipelineSpec,
    TaskSettings,
)

Mark = tuple[int, int]  # 1-based line, column
PathKey = tuple[str | int, ...]


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


# More values than any real spec holds; a document over it is an alias bomb or a mistake. Each
# alias is expanded where it is used, so nested aliases grow exponentially ("billion laughs").
MAX_VALUES = 20_000


class _LocatedYaml:
    """Plain data from a YAML document plus the position of every key path in it."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.values = 0
        self.marks: dict[PathKey, Mark] = {}
        self.key_marks: dict[PathKey, Mark] = {}
        self.issues: list[SpecIssue] = []

    def _construct(self, node: yaml.Node, path: PathKey, loader: yaml.SafeLoader) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            issue = self._issue(
                node, path, f"the document expands to more than {MAX_VALUES:,} values", hint=_TOO_BIG_HINT
            )
            raise SpecError([issue])
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
            raise yaml.constructor.ConstructorError(
                None, None, f"the tag {node.tag!r} is not allowed in a spec", node.start_mark
            )
        if isinstance(node, yaml.MappingNode):
            # `<<: *anchor` merges come first after flattening; a key of the mapping's own may
            # override a merged one (that is what merges are for), but not another own key.
            own = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
            loader.flatten_mapping(node)
            merged = len(node.value) - own
            out: dict[Any, Any] = {}
            from_merge: set[Any] = set()
            for index, (key_node, value_node) in enumerate(node.value):
                key = loader.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    self.issues.append(self._issue(key_node, path, "mapping keys must be plain strings", key))
                    continue
                key_mark = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                if isinstance(key, bool):  # YAML 1.1 turns `on:`/`yes:` into booleans
                    key = key_node.value
                if key in out and (key in from_merge or index < merged):
                    del out[key]  # a later merged map, or the mapping's own key, wins
                    from_merge.discard(key)
                elif key in out:
                    first = self.key_marks[(*path, key)]
                    self.issues.append(
                        SpecIssue(
                            self.file,
                            key_mark[0],
                            key_mark[1],
                            _dotted((*path, key)),
                            f"duplicate key {key!r}; it was first given on line {first[0]}",
                            hint="remove one of them: YAML keeps only the last, which hides mistakes",
                        )
                    )
                    continue
                self.key_marks[(*path, key)] = key_mark
                if index < merged:
                    from_merge.add(key)
                out[key] = self._construct(value_node, (*path, key), loader)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._construct(item, (*path, i), loader) for i, item in enumerate(node.value)]
        return loader.construct_object(node, deep=True)

    def _issue(
        self, node: yaml.Node, path: PathKey, message: str, value: Any = None, hint: str | None = None
    ) -> SpecIssue:
        return SpecIssue(
            self.file,
            node.start_mark.line + 1,
            node.start_mark.column + 1,
            _dotted(path),
            message,
            value,
            hint,
        )

    def position(self, path: PathKey) -> Mark | None:
        """The closest recorded position for ``path`` (walking up to its parents)."""
        probe = tuple(path)
        while True:
            if probe in self.key_marks:
                return self.key_marks[probe]
            if probe in self.marks:
                return self.marks[probe]
            if not probe:
                return None
            probe = probe[:-1]


_TOO_BIG_HINT = "YAML aliases (*name) are copied where they are used; nest them less, or split the spec"


def _dotted(path: PathKey) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# libyaml's parser is ~5x faster than PyYAML's pure-Python one and dominates parse time for a
# big folder of specs. It is used for every file; a file it rejects is parsed again with the
# pure-Python loader, whose error messages (context, problem, marks) are the ones users see.
_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def parse_yaml(text: str, file: str) -> tuple[Any, _LocatedYaml]:
    """Parse one YAML document, keeping positions. Raises :class:`SpecError` on bad YAML."""
    if _FAST_LOADER is not None:
        try:
            return _parse_with(_FAST_LOADER, text, file)
        except SpecError as exc:
            if not any(issue.message.startswith("invalid YAML") for issue in exc.issues):
                raise
    return _parse_with(yaml.SafeLoader, text, file)


def _parse_with(loader_class: type[yaml.SafeLoader], text: str, file: str) -> tuple[Any, _LocatedYaml]:
    located = _LocatedYaml(file)
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError([SpecIssue(file, 1, 1, "", "the file is empty", hint="start from docs/spec.md")])
        data = located._construct(node, (), loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        hint = "check indentation, and quote values that contain ': ' or start with '{', '[', '*', '&' or '@'"
        if "tab" in problem.lower():
            hint = "YAML indentation must use spaces, not tabs"
        raise SpecError([SpecIssue(file, line, column, "", f"invalid YAML: {problem}", hint=hint)]) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecIssue(file, None, None, "", f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if located.issues:
        raise SpecError(located.issues)
    return data, located


# --- pydantic errors -> actionable issues -----------------------------------------------------


def _model_at(path: PathKey, root: type[BaseModel] = PipelineSpec) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``path`` (for "did you mean" on keys)."""
    model: Any = root
    for part in path:
        if isinstance(part, int):
            return None
        field = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None
        )
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        if isinstance(part, str) and getattr(annotation, "__origin__", None) is dict:
            candidates = list(getattr(annotation, "__args__", ()))[1:]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model if isinstance(model, type) else None


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _did_you_mean(value: Any, choices: list[str]) -> str | None:
    if not isinstance(value, str):
        return None
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return close[0] if close else None


_LITERAL_EXPECTED = re.compile(r"'([^']+)'")


def _issue_from_error(
    err: dict[str, Any], located: _LocatedYaml, root: type[BaseModel] = PipelineSpec
) -> SpecIssue:
    loc: PathKey = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind = err["type"]
    if loc and loc[-1] == "[key]":  # a bad mapping key (e.g. an unknown metric name)
        loc = loc[:-1]
    value = err.get("input")
    pos = located.position(loc)
    line, column = pos if pos else (None, None)
    path = _dotted(loc)
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
            hint=f"add `{loc[-1]}:` to {_dotted(loc[:-1]) or 'the top level'}; see docs/spec.md",
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

    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind == "value_error" and "unknown expectation" in message:
        from airflow_mlops.spec.models import SUPPORTED_EXPECTATIONS

        name = message.split("'")[1] if "'" in message else ""
        for index in range(len(value) if isinstance(value, list) else 0):
            if (*loc, index, name) in located.key_marks:
                loc = (*loc, index, name)
                line, column = located.key_marks[loc]
                path = _dotted(loc)
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


def validate_data(data: Any, located: _LocatedYaml, model: type[M] = PipelineSpec) -> M:  # type: ignore[assignment]
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
        errors = _without_union_noise([_data_loc(dict(e), data) for e in exc.errors()])
        issues = [_issue_from_error(e, located, model) for e in errors]
        issues.sort(key=lambda i: (i.line or 0, i.column or 0))
        raise SpecError(issues) from None


@dataclass(frozen=True)
class LoadedDefaults:
    """A folder's ``mlops-defaults.yaml``, validated."""

    path: Path
    model: FolderDefaults
    text: str = ""  # what the model was validated from (part of the parse cache's key)

    @property
    def allowed_roots(self) -> list[str]:
        return [
            r if "://" in r else str((self.path.parent / os.path.expanduser(r)).resolve())
            for r in self.model.allowed_roots
        ]


def load_folder_defaults(path: str | os.PathLike[str]) -> LoadedDefaults:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(
            [SpecIssue(str(p), None, None, "", f"cannot read the defaults file: {exc}")]
        ) from None
    data, located = parse_yaml(text, str(p))
    return LoadedDefaults(p, validate_data(data, located, FolderDefaults), text)


def find_folder_defaults(
    spec_path: str | os.PathLike[str], cache: dict[Path, LoadedDefaults | None] | None = None
) -> LoadedDefaults | None:
    """The nearest ``mlops-defaults.yaml`` in the spec's folder or above it (nearest wins)."""
    cache = {} if cache is None else cache
    folder = Path(spec_path).resolve().parent
    visited = []
    found: LoadedDefaults | None = None
    for candidate in (folder, *folder.parents):
        if candidate in cache:
            found = cache[candidate]
            break
        visited.append(candidate)
        if (candidate / DEFAULTS_FILE_NAME).is_file():
            found = load_folder_defaults(candidate / DEFAULTS_FILE_NAME)
            break
    for v in visited:
        cache[v] = found
    return found


def apply_folder_defaults(spec: PipelineSpec, folder: FolderDefaults) -> PipelineSpec:
    """Merge a folder's defaults under a spec: the spec's own keys win, tags add up."""

    def merged(lower: BaseModel | None, upper: BaseModel | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for model in (lower, upper):
            if model is not None:
                out.update({k: getattr(model, k) for k in model.model_fields_set})
        return out

    stages = {
        stage: TaskSettings.model_validate(merged(folder.stages.get(stage), spec.stages.get(stage)))
        for stage in sorted(set(folder.stages) | set(spec.stages))
    }
    update: dict[str, Any] = {
        "defaults": Defaults.model_validate(merged(folder.defaults, spec.defaults)),
        "stages": stages,
        "tags": list(dict.fromkeys([*folder.tags, *spec.tags])),
    }
    if "owner" not in spec.model_fields_set and folder.owner:
        update["owner"] = folder.owner
    return spec.model_copy(update=update)


_AUTO: Any = object()


def load_spec_text(
    text: str,
    file: str = "<string>",
    *,
    base: Path | None = None,
    folder_defaults: LoadedDefaults | None = None,
    allowed_roots: list[str] | None = None,
    check_imports: bool = True,
) -> PipelineSpec:
    """Validate a spec's text. ``base`` is the folder relative paths resolve against."""
    from airflow_mlops.spec.checks import check_entrypoints, check_paths, check_steps

    data, located = parse_yaml(text, file)
    spec: PipelineSpec = validate_data(data, located)

    def locate(path: tuple[str | int, ...]) -> tuple[int | None, int | None]:
        pos = located.position(path)
        return pos if pos else (None, None)

    allowed_roots = effective_allowed_roots(folder_defaults, allowed_roots)
    issues = check_steps(spec, file, locate)
    if check_imports:
        issues += check_entrypoints(spec, file, locate)
    issues += check_paths(spec, file, locate, base=base, allowed_roots=allowed_roots)
    if issues:
        issues.sort(key=lambda i: (i.line or 0, i.column or 0))
        raise SpecError(issues)
    if folder_defaults is not None:
        spec = apply_folder_defaults(spec, folder_defaults.model)
    return spec


def effective_allowed_roots(
    folder_defaults: LoadedDefaults | None, allowed_roots: list[str] | None
) -> list[str]:
    """``allowed_roots`` if given, else the folder defaults', else ``AIRFLOW_MLOPS_ALLOWED_ROOTS``."""
    from airflow_mlops.spec.checks import allowed_roots_from_env

    if allowed_roots is not None:
        return allowed_roots
    if folder_defaults and folder_defaults.model.allowed_roots:
        return folder_defaults.allowed_roots
    return allowed_roots_from_env()


def read_spec_text(path: Path) -> str:
    """A spec file's text; raises :class:`SpecError` when it cannot be read as UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecIssue(str(path), None, None, "", f"cannot read the spec: {exc}")]) from None


def load_spec(
    path: str | os.PathLike[str],
    *,
    folder_defaults: LoadedDefaults | None = _AUTO,
    allowed_roots: list[str] | None = None,
    check_imports: bool = True,
) -> PipelineSpec:
    """Read and validate one spec file. Raises :class:`SpecError` with every problem found.

    ``folder_defaults``: by default the nearest ``mlops-defaults.yaml`` above the spec.
    ``allowed_roots``: by default the defaults file's ``allowed_roots``, else the
    ``AIRFLOW_MLOPS_ALLOWED_ROOTS`` environment variable, else no restriction.
    """
    p = Path(path)
    text = read_spec_text(p)
    if folder_defaults is _AUTO:
        folder_defaults = find_folder_defaults(p)
    return load_spec_text(
        text,
        str(p),
        base=p.resolve().parent,
        folder_defaults=folder_defaults,
        allowed_roots=allowed_roots,
        check_imports=check_imports,
    )


def is_spec_document(text: str) -> bool:
    """Cheap check used to pick spec files out of a dags folder: an ``apiVersion: mlops/...`` line."""
    return re.search(r"^apiVersion:\s*['\"]?mlops/", text, re.MULTILINE) is not None


def date_to_datetime(value: dt.date) -> dt.datetime:
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
