"""Load a pipeline spec with line numbers, and turn every problem into an actionable message.

The parts, each its own module (all of their public names are importable from here too):

- :mod:`~airflow_mlops.spec.files`: reading a spec file (encodings, size limit, special files)
  and telling a spec from other YAML;
- :mod:`~airflow_mlops.spec.yaml_positions`: YAML composed with PyYAML's safe loader (libyaml's
  when built; no arbitrary tags, no code) into plain Python, recording the line and column of
  every key path, within the limits of :mod:`~airflow_mlops.spec.limits`; its errors are
  located issues (:mod:`~airflow_mlops.spec.yaml_messages`);
- :mod:`~airflow_mlops.spec.messages`: validation by the strict pydantic models, each error a
  :class:`SpecIssue` naming the file, line, column, key path, the bad value, what is allowed,
  and a "did you mean" for misspelt keys and enum values;
- :mod:`~airflow_mlops.spec.folder_defaults`: the nearest ``mlops-defaults.yaml`` and its merge;
- here: the loader itself (the checks after validation, the allowed roots, the folder defaults).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import SpecError, SpecIssue
from airflow_mlops.spec.files import (
    SPEC_KEYS,
    decode_spec,
    is_spec_document,
    read_spec_bytes,
    read_spec_head,
    read_spec_text,
    spec_encoding,
)
from airflow_mlops.spec.folder_defaults import (
    LoadedDefaults,
    apply_folder_defaults,
    find_folder_defaults,
    load_folder_defaults,
)
from airflow_mlops.spec.limits import MAX_DEPTH, MAX_INT, MAX_SPEC_BYTES, MAX_VALUES
from airflow_mlops.spec.messages import validate_data
from airflow_mlops.spec.models import PipelineSpec
from airflow_mlops.spec.yaml_messages import PathKey
from airflow_mlops.spec.yaml_positions import LocatedYaml, Mark, parse_yaml

__all__ = [
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_SPEC_BYTES",
    "MAX_VALUES",
    "LoadedDefaults",
    "LocatedYaml",
    "Mark",
    "PathKey",
    "apply_folder_defaults",
    "date_to_datetime",
    "decode_spec",
    "effective_allowed_roots",
    "find_folder_defaults",
    "is_spec_document",
    "load_folder_defaults",
    "load_spec",
    "load_spec_text",
    "parse_yaml",
    "read_spec_bytes",
    "read_spec_head",
    "read_spec_text",
    "resolve_root",
    "spec_encoding",
    "validate_data",
]


_AUTO: Any = object()


def load_spec_text(
    text: str,
    file: str = "<string>",
    *,
    base: Path | None = None,
    folder_defaults: LoadedDefaults | None = None,
    allowed_roots: list[str] | None = None,
    check_imports: bool = True,
    default_allowed_roots: list[str] | None = None,
) -> PipelineSpec:
    """Validate a spec's text. ``base`` is the folder relative paths resolve against.

    The allowed roots: see :func:`effective_allowed_roots`.
    """
    from airflow_mlops.spec.checks import check_content, check_entrypoints, check_paths, check_steps

    data, located = parse_yaml(text, file)
    try:
        spec: PipelineSpec = validate_data(data, located)
    except SpecError as exc:
        raise _without_api_version(exc, data, file) from None

    def locate(path: tuple[str | int, ...]) -> tuple[int | None, int | None]:
        pos = located.position(path)
        return pos if pos else (None, None)

    allowed_roots = effective_allowed_roots(folder_defaults, allowed_roots, default_allowed_roots)
    issues = check_steps(spec, file, locate) + check_content(spec, file, locate, imports=check_imports)
    if check_imports:
        issues += check_entrypoints(spec, file, locate)
    issues += check_paths(spec, file, locate, base=base, allowed_roots=allowed_roots)
    if issues:
        issues.sort(key=lambda i: (i.line or 0, i.column or 0))
        raise SpecError(issues)
    if folder_defaults is not None:
        spec = apply_folder_defaults(spec, folder_defaults.model)
    return spec


def _without_api_version(exc: SpecError, data: Any, file: str) -> SpecError:
    """A document with spec keys but no ``apiVersion``: say so first, in the words that fix it."""
    if not isinstance(data, dict) or "apiVersion" in data:
        return exc
    issue = SpecIssue(
        file,
        1,
        1,
        "apiVersion",
        "this file looks like a pipeline spec (it has "
        + ", ".join(f"`{k}:`" for k in SPEC_KEYS if k in data)
        + ") but has no `apiVersion`, so it is not read as one",
        hint="add `apiVersion: mlops/v1` as the first line",
    )
    return SpecError([issue, *(i for i in exc.issues if i.path != "apiVersion")])


def effective_allowed_roots(
    folder_defaults: LoadedDefaults | None,
    allowed_roots: list[str] | None,
    default: list[str] | None = None,
) -> list[str]:
    """The roots data and artifact locations must lie under, the first of these that names any:

    ``allowed_roots`` (given by the caller: the CLI's ``--allowed-root``), the nearest folder
    defaults file's ``allowed_roots``, ``AIRFLOW_MLOPS_ALLOWED_ROOTS``, ``default`` (the dags
    folder, for the loader and the CLI alike). None of them: no restriction. Relative local roots
    are resolved against the working directory (the defaults file's against its own folder).
    """
    from airflow_mlops.spec.checks import allowed_roots_from_env

    if allowed_roots is not None:
        return [resolve_root(r) for r in allowed_roots]
    if folder_defaults and folder_defaults.model.allowed_roots:
        return folder_defaults.allowed_roots
    return [resolve_root(r) for r in allowed_roots_from_env() or default or []]


@functools.lru_cache(maxsize=256)
def _resolved(root: str, cwd: str) -> str:
    return str((Path(cwd) / os.path.expanduser(root)).resolve())


def resolve_root(root: str) -> str:
    """An allowed root as the checks compare it: URIs as given, local paths absolute and resolved."""
    return root if "://" in root else _resolved(root, os.getcwd())


def load_spec(
    path: str | os.PathLike[str],
    *,
    folder_defaults: LoadedDefaults | None = _AUTO,
    allowed_roots: list[str] | None = None,
    check_imports: bool = True,
    default_allowed_roots: list[str] | None = None,
) -> PipelineSpec:
    """Read and validate one spec file. Raises :class:`SpecError` with every problem found.

    ``folder_defaults``: by default the nearest ``mlops-defaults.yaml`` above the spec.
    ``allowed_roots``: by default the defaults file's ``allowed_roots``, else the
    ``AIRFLOW_MLOPS_ALLOWED_ROOTS`` environment variable, else ``default_allowed_roots``, else
    no restriction (see :func:`effective_allowed_roots`).
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
        default_allowed_roots=default_allowed_roots,
    )


def date_to_datetime(value: dt.date) -> dt.datetime:
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
