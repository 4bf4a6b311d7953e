"""``airflow-mlops spec validate | render | schema``: check pipeline specs without Airflow running."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import SpecError


def add_commands(sub: Any) -> None:
    """The ``spec`` command group."""
    spec = sub.add_parser("spec", help="work with pipeline specs")
    spec_sub = spec.add_subparsers(dest="command", required=True)
    validate_parser = spec_sub.add_parser(
        "validate", help="check spec files (or folders); non-zero exit on any error"
    )
    validate_parser.add_argument("files", nargs="+", metavar="FILE")
    validate_parser.add_argument(
        "--allowed-root",
        action="append",
        dest="allowed_roots",
        metavar="DIR_OR_S3_PREFIX",
        help="data and artifact locations must lie under one of these (repeatable; relative to the "
        "current directory); default: the spec folder's mlops-defaults.yaml, else "
        "AIRFLOW_MLOPS_ALLOWED_ROOTS, else the dags folder (as Airflow's loader does)",
    )
    validate_parser.add_argument(
        "--dags-folder",
        metavar="DIR",
        help="the dags folder the specs are loaded from (the default allowed root); default: the "
        "nearest folder above each spec that holds the loader file (a .py calling load_dags_folder)",
    )
    validate_parser.add_argument(
        "--specs-only",
        action="store_true",
        help="skip given files that do not declare `apiVersion: mlops/...` (for pre-commit hooks "
        "that see every YAML file)",
    )
    render_parser = spec_sub.add_parser("render", help="print the task graph a spec produces")
    render_parser.add_argument("file")
    spec_sub.add_parser("schema", help="print the JSON Schema of the spec language").set_defaults(
        func=lambda args: schema()
    )
    validate_parser.set_defaults(
        func=lambda args: validate(args.files, args.allowed_roots, args.specs_only, args.dags_folder)
    )
    render_parser.set_defaults(func=lambda args: render(args.file))


def validate(
    files: Sequence[str],
    allowed_roots: list[str] | None,
    specs_only: bool = False,
    dags_folder: str | None = None,
) -> int:
    """Check every file given (a folder: every spec below it); one bad file never stops the others."""
    from airflow_mlops.factory.folder import find_spec_files

    paths: list[str] = []
    failed = 0
    for file in files:
        if Path(file).is_dir():
            found = [str(p) for p in find_spec_files(file)]
            if not found:
                print(f"{file}: no spec files (*.yaml with `apiVersion: mlops/v1`) found", file=sys.stderr)
                failed += 1
            paths.extend(found)
        elif specs_only and not _declares_spec(Path(file)):
            print(f"{file}: skipped (no `apiVersion: mlops/...` line)", file=sys.stderr)
        else:
            paths.append(file)
    results: dict[str, tuple[Any, dict[str, Any]] | str] = {}
    for file in dict.fromkeys(paths):  # a file named twice is checked once
        try:
            spec, roots = _load_for_validate(file, allowed_roots, dags_folder)
            results[file] = (spec, _build_for_validate(spec, file, roots))
        except SpecError as exc:
            results[file] = str(exc)
        except Exception as exc:  # a bug of ours: still a located message, and the next file
            results[file] = (
                f"1 problem(s) in pipeline spec {file}:\n{file}: <document>: unexpected error while "
                f"validating this spec: {type(exc).__name__}: {exc}\n    hint: this is a bug in "
                "airflow-mlops, not in your spec: please report it with the spec"
            )
    _refuse_dag_id_clashes(results, dags_folder)
    for file, result in results.items():
        if isinstance(result, str):
            failed += 1
            print(result, file=sys.stderr)
        else:
            print(f"{file}: ok (pipeline {result[0].pipeline})")
    return 1 if failed else 0


def _refuse_dag_id_clashes(results: dict[str, Any], dags_folder: str | None) -> None:
    """A spec whose DAG ids a spec read before it already defines fails, as in the loader: the
    specs validated together, and the other specs of its dags folder, in the loader's path order."""
    from airflow_mlops.factory.folder import EarlierSpecs, dag_id_clash, find_dags_folder

    built = {f: r for f, r in results.items() if not isinstance(r, str)}
    checked = {Path(f).resolve() for f in built}
    owners: dict[Path | None, dict[str, Path]] = {}  # by dags folder: each is its own loader
    siblings: dict[Path, EarlierSpecs] = {}
    for file in sorted(built, key=lambda f: Path(os.path.abspath(f))):
        spec, dags = built[file]
        path = Path(file)
        folder = Path(dags_folder).resolve() if dags_folder else find_dags_folder(path)
        earlier: dict[str, Path] = {}
        if folder is not None:
            if folder not in siblings:
                siblings[folder] = EarlierSpecs(folder, checked)
            earlier = siblings[folder].owners(path, spec.pipeline)
        mine = owners.setdefault(folder, {})
        clash = dag_id_clash(dags, {**earlier, **mine}, path)
        if clash is not None:
            results[file] = str(clash)
            continue
        for dag_id in dags:
            mine.setdefault(dag_id, path)


def _load_for_validate(
    file: str, allowed_roots: list[str] | None, dags_folder: str | None
) -> tuple[Any, list[str]]:
    """Validate one file with the allowed roots Airflow's loader will use for it; returns the
    spec and those roots.

    Unless ``--allowed-root``, the defaults file or ``AIRFLOW_MLOPS_ALLOWED_ROOTS`` name roots,
    the root is the dags folder: ``--dags-folder``, else the folder of the loader file above the
    spec (what ``dags/mlops_specs.py`` passes to the loader). Without either, nothing restricts
    the locations, and a note says so.
    """
    from airflow_mlops.factory.folder import find_dags_folder, folder_allowed_roots
    from airflow_mlops.spec.loader import (
        effective_allowed_roots,
        find_folder_defaults,
        load_spec_text,
        read_spec_text,
    )

    path = Path(file)
    text = read_spec_text(path)  # first: a FIFO, a device or a symbolic link loop is a message, not a hang
    folder_defaults = find_folder_defaults(path)
    default = None
    if not effective_allowed_roots(folder_defaults, allowed_roots):
        folder = Path(dags_folder) if dags_folder else find_dags_folder(path)
        if folder is not None:
            default = [str(folder)]
        else:
            print(
                f"{file}: note: no dags folder found (no loader .py calling load_dags_folder at or above "
                "it), so locations are not checked against allowed roots; pass --dags-folder or "
                "--allowed-root",
                file=sys.stderr,
            )
    roots = (
        # the loader's own rule: a defaults file may narrow AIRFLOW_MLOPS_ALLOWED_ROOTS, never widen it
        folder_allowed_roots(folder_defaults, default)
        if allowed_roots is None
        else effective_allowed_roots(folder_defaults, allowed_roots)
    )
    spec = load_spec_text(
        text,
        str(path),
        base=path.resolve().parent,
        folder_defaults=folder_defaults,
        allowed_roots=allowed_roots,
        default_allowed_roots=default,
    )
    return spec, roots


def _build_for_validate(spec: Any, file: str, roots: list[str]) -> dict[str, Any]:
    """Build the spec's DAGs with the loader's own function: whatever Airflow's loader refuses,
    validation refuses, with the same message."""
    from airflow_mlops.factory.folder import build_spec_dags

    return build_spec_dags(spec, Path(file), roots or None)


def _declares_spec(path: Path) -> bool:
    from airflow_mlops.factory.folder import declares_spec

    try:
        return declares_spec(path)
    except OSError:
        return True  # the validation then says why it cannot be read


def render(file: str) -> int:
    from airflow_mlops.factory.builder import describe_schedule, describe_schedule_value

    try:
        spec, roots = _load_for_validate(file, None, None)
        dags = _build_for_validate(spec, file, roots)
    except SpecError as exc:  # invalid, or an operator or notifier rejected its arguments: located
        print(exc, file=sys.stderr)
        return 1
    for dag_id, dag in dags.items():
        print(f"DAG {dag_id}")
        if spec.monitoring is not None and dag_id == spec.monitor_dag_id:
            when = describe_schedule_value(spec.monitoring.schedule, explain=True)
        else:
            when = describe_schedule(spec, explain=True)
        print(f"  schedule: {when}; catchup: {str(dag.catchup).lower()}")
        print("  tasks, in run order:")
        for task in _run_order(dag):
            downstream = ", ".join(sorted(task.downstream_task_ids)) or "-"
            print(f"    {task.task_id:<24} {type(task).__name__:<26} -> {downstream}")
    return 0


def _run_order(dag: Any) -> list[Any]:
    """The tasks in dependency order (Kahn's algorithm; ties by task id), so the output reads top-down."""
    tasks = {t.task_id: t for t in dag.tasks}
    waiting = {tid: len(t.upstream_task_ids) for tid, t in tasks.items()}
    ready = sorted(tid for tid, n in waiting.items() if n == 0)
    order = []
    while ready:
        tid = ready.pop(0)
        order.append(tasks[tid])
        for child in tasks[tid].downstream_task_ids:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
                ready.sort()
    return order


def schema() -> int:
    from airflow_mlops.spec.schema import schema_text

    sys.stdout.write(schema_text())
    return 0
