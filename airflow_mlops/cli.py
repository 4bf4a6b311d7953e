"""``airflow-mlops`` command line: validate, render and describe pipeline specs without Airflow running."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import SpecError


def _validate(files: Sequence[str], allowed_roots: list[str] | None, specs_only: bool = False) -> int:
    from airflow_mlops.factory.folder import find_spec_files
    from airflow_mlops.spec.loader import load_spec

    paths: list[str] = []
    for file in files:
        if Path(file).is_dir():
            found = [str(p) for p in find_spec_files(file)]
            if not found:
                print(f"{file}: no spec files (*.yaml with `apiVersion: mlops/v1`) found", file=sys.stderr)
                return 1
            paths.extend(found)
        elif specs_only and not _declares_spec(Path(file)):
            print(f"{file}: skipped (no `apiVersion: mlops/...` line)", file=sys.stderr)
        else:
            paths.append(file)
    failed = 0
    for file in paths:
        try:
            spec = load_spec(file, allowed_roots=allowed_roots)
        except SpecError as exc:
            failed += 1
            print(exc, file=sys.stderr)
            continue
        print(f"{file}: ok (pipeline {spec.pipeline})")
    return 1 if failed else 0


def _declares_spec(path: Path) -> bool:
    from airflow_mlops.factory.folder import declares_spec

    try:
        return declares_spec(path)
    except OSError:
        return True  # the validation then says why it cannot be read


def _render(file: str) -> int:
    from airflow_mlops.factory import build_dags
    from airflow_mlops.factory.builder import describe_schedule
    from airflow_mlops.spec.loader import load_spec

    try:
        spec = load_spec(file)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 1
    for dag_id, dag in build_dags(spec, spec_path=file).items():
        print(f"DAG {dag_id}")
        print(f"  schedule: {describe_schedule(spec, explain=True)}; catchup: {str(dag.catchup).lower()}")
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


def _schema() -> int:
    from airflow_mlops.spec.schema import schema_text

    sys.stdout.write(schema_text())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airflow-mlops", description=__doc__)
    sub = parser.add_subparsers(dest="group", required=True)
    spec = sub.add_parser("spec", help="work with pipeline specs")
    spec_sub = spec.add_subparsers(dest="command", required=True)
    validate = spec_sub.add_parser(
        "validate", help="check spec files (or folders); non-zero exit on any error"
    )
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument(
        "--allowed-root",
        action="append",
        dest="allowed_roots",
        metavar="DIR_OR_S3_PREFIX",
        help="data and artifact locations must lie under one of these (repeatable); default: the "
        "folder's mlops-defaults.yaml, else AIRFLOW_MLOPS_ALLOWED_ROOTS, else no restriction",
    )
    validate.add_argument(
        "--specs-only",
        action="store_true",
        help="skip given files that do not declare `apiVersion: mlops/...` (for pre-commit hooks "
        "that see every YAML file)",
    )
    render = spec_sub.add_parser("render", help="print the task graph a spec produces")
    render.add_argument("file")
    spec_sub.add_parser("schema", help="print the JSON Schema of the spec language")
    args = parser.parse_args(argv)
    if args.command == "validate":
        return _validate(args.files, args.allowed_roots, args.specs_only)
    if args.command == "render":
        return _render(args.file)
    return _schema()


if __name__ == "__main__":
    sys.exit(main())
