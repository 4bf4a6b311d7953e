"""``airflow-mlops`` command line: validate, render and describe pipeline specs without Airflow running."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import SpecError


def _validate(
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


def _render(file: str) -> int:
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


def _schema() -> int:
    from airflow_mlops.spec.schema import schema_text

    sys.stdout.write(schema_text())
    return 0


def error(message: object) -> None:
    """Print an error of the ``model`` commands to stderr, credentials in any URI redacted."""
    from airflow_mlops.redaction import redact_credentials

    print(redact_credentials(message), file=sys.stderr)


def install_log_redaction() -> None:
    """Redact credentials (URI user-info, tokens in query strings) in every log record of this
    process: the ``model`` commands log what MLflow and the registry say, URIs included."""
    import logging

    from airflow_mlops.redaction import RedactingRecordFactory

    factory = logging.getLogRecordFactory()
    if not isinstance(factory, RedactingRecordFactory):
        logging.setLogRecordFactory(RedactingRecordFactory(factory))


def _client(args: argparse.Namespace) -> Any:
    """The MLflow client of ``--tracking-uri``, else of the Airflow connection."""
    if args.tracking_uri:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=args.tracking_uri)
    from airflow_mlops.hooks.mlflow import MLflowHook

    return MLflowHook(mlflow_conn_id=args.mlflow_conn_id).get_conn()


def _history(args: argparse.Namespace) -> int:
    """``model history NAME``: the audit trail of the model's registrations and alias moves."""
    import json

    from airflow_mlops.exceptions import MLOpsError

    try:
        from mlflow.exceptions import MlflowException

        from airflow_mlops.registry.promotion import audit_history

        entries = audit_history(_client(args), args.name)
    except (MLOpsError, OSError, MlflowException) as exc:
        error(f"{args.name}: cannot read the audit trail: {exc}")
        return 1
    if args.json:
        print(json.dumps(entries, indent=2, sort_keys=True))
        return 0
    if not entries:
        print(f"{args.name}: no alias moves recorded")
    for e in entries:
        move = f"@{e.get('alias')}: {e.get('from') or '-'} -> {e.get('to') or e.get('version')}"
        extra = f" approved by {e['approved_by']}" if e.get("approved_by") else ""
        print(
            f"{e.get('at')}  {e.get('action'):<13} {move}  by {e.get('by')}{extra}  ({e.get('reason') or '-'})"
        )
    return 0


def _rollback(args: argparse.Namespace) -> int:
    """``model rollback NAME``: point the alias back at the version it replaced, verified first."""
    from airflow_mlops.exceptions import MLOpsError

    try:
        client = _client(args)
        trust: Any
        if args.public_key:
            trust = Path(args.public_key).read_bytes()
        else:
            from airflow_mlops.hooks.signing import ModelSigningHook

            trust = ModelSigningHook(signing_conn_id=args.signing_conn_id).get_key(need_private=False).trust
        from airflow_mlops.registry.promotion import command_line_actor, rollback_alias

        result = rollback_alias(
            client,
            model_name=args.name,
            alias=args.alias,
            trust=trust,
            expected_version=args.from_version,
            reason=args.reason or "airflow-mlops model rollback (command line)",
            by=command_line_actor(),
        )
    except (MLOpsError, OSError) as exc:
        error(f"{args.name}@{args.alias}: rollback refused: {exc}")
        return 1
    except Exception as exc:  # MLflow's own errors: named, redacted, no traceback
        error(f"{args.name}@{args.alias}: rollback refused: {type(exc).__name__}: {exc}")
        return 1
    print(
        f"{result.model_name}@{result.alias}: version {result.version} (rolled back from "
        f"{result.rolled_back_from}; signature verified: {result.key_fingerprint})"
    )
    return 0


def _keys_generate(args: argparse.Namespace) -> int:
    """``keys generate``: a signing key pair in files, and the connection that hands it to Airflow."""
    from airflow_mlops.security.keygen import (
        KeyGenerationError,
        check_conn_id,
        connection_instructions,
        directory_notes,
        write_key_pair,
    )

    try:
        conn_id = check_conn_id(args.conn_id)
        pair = write_key_pair(args.out, args.name, force=args.force)
    except KeyGenerationError as exc:
        error(f"airflow-mlops keys generate: {exc}")
        return 2
    if pair.created_directory:
        print(f"created {pair.private_key.parent} (mode 0700)", file=sys.stderr)
    for note in directory_notes(pair.private_key.parent):
        print(note, file=sys.stderr)
    sys.stdout.write(connection_instructions(pair, conn_id))
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
        help="data and artifact locations must lie under one of these (repeatable; relative to the "
        "current directory); default: the spec folder's mlops-defaults.yaml, else "
        "AIRFLOW_MLOPS_ALLOWED_ROOTS, else the dags folder (as Airflow's loader does)",
    )
    validate.add_argument(
        "--dags-folder",
        metavar="DIR",
        help="the dags folder the specs are loaded from (the default allowed root); default: the "
        "nearest folder above each spec that holds the loader file (a .py calling load_dags_folder)",
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
    model = sub.add_parser("model", help="work with registered models")
    model_sub = model.add_subparsers(dest="command", required=True)
    rollback = model_sub.add_parser(
        "rollback",
        help="point the alias back at the version it replaced, after verifying that version's "
        "signature, digest and scan",
    )
    rollback.add_argument("name", metavar="NAME", help="the registered model name")
    rollback.add_argument("--alias", default="champion", help="the alias to move back (default: champion)")
    rollback.add_argument(
        "--from",
        dest="from_version",
        metavar="VERSION",
        help="roll back only if the alias still points at this version",
    )
    rollback.add_argument("--reason", default="", help="why; recorded on the version rolled back from")
    rollback.add_argument(
        "--mlflow-conn-id", default="mlflow_default", help="Airflow connection of the MLflow server"
    )
    rollback.add_argument("--tracking-uri", help="use this MLflow tracking URI instead of the connection")
    rollback.add_argument(
        "--signing-conn-id", default="mlops_signing", help="Airflow connection holding the public key"
    )
    rollback.add_argument(
        "--public-key", metavar="PEM_FILE", help="the public key file instead of the connection"
    )
    history = model_sub.add_parser(
        "history", help="print the audit trail: who moved which alias to which version, when and why"
    )
    history.add_argument("name", metavar="NAME", help="the registered model name")
    history.add_argument("--json", action="store_true", help="print the entries as JSON")
    history.add_argument(
        "--mlflow-conn-id", default="mlflow_default", help="Airflow connection of the MLflow server"
    )
    history.add_argument("--tracking-uri", help="use this MLflow tracking URI instead of the connection")
    from airflow_mlops.cli_model import add_commands

    add_commands(model_sub)
    keys = sub.add_parser("keys", help="make model-signing keys")
    keys_sub = keys.add_subparsers(dest="command", required=True)
    generate = keys_sub.add_parser(
        "generate",
        help="write an ECDSA P-256 signing key pair (private key 0600, public key 0644) and print "
        "the Airflow connection that holds it; never prints the private key",
    )
    generate.add_argument(
        "--out", default="keys", metavar="DIR", help="where to write (default: ./keys; created 0700)"
    )
    generate.add_argument(
        "--name", default="signing_key", help="file name: NAME.pem and NAME.pub.pem (default: signing_key)"
    )
    generate.add_argument(
        "--conn-id",
        default="mlops_signing",
        metavar="ID",
        help="the Airflow connection to print (default: mlops_signing, the spec's default)",
    )
    generate.add_argument("--force", action="store_true", help="replace an existing pair of that name")
    args = parser.parse_args(argv)
    install_log_redaction()
    try:
        if args.group == "model":
            if args.command == "history":
                return _history(args)
            if args.command == "rollback":
                return _rollback(args)
            return int(args.func(args))
        if args.group == "keys":
            return _keys_generate(args)
        if args.command == "validate":
            return _validate(args.files, args.allowed_roots, args.specs_only, args.dags_folder)
        if args.command == "render":
            return _render(args.file)
        return _schema()
    except KeyboardInterrupt:
        error(f"airflow-mlops {args.group} {args.command}: interrupted")
        return 130
    except RecursionError:
        error(
            f"airflow-mlops {args.group} {args.command}: an input is nested too deeply to be read "
            "(RecursionError); it is malformed"
        )
        return 1
    except Exception as exc:  # never a raw traceback (it may hold a URI with credentials)
        error(f"airflow-mlops {args.group} {args.command}: {type(exc).__name__}: {_short(exc)}")
        return 1


def _short(exc: BaseException, limit: int = 2000) -> str:
    """An exception's message for one error line: bounded (a message quoting a 100,000-digit
    number or a whole file stays readable)."""
    try:
        text = str(exc)
    except Exception:  # a message that cannot even be made: say so, never a traceback
        return "(the error's message could not be formatted)"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


if __name__ == "__main__":
    sys.exit(main())
