"""``airflow-mlops`` command line: validate, render, describe and plan pipeline specs without
Airflow running; inspect, verify and roll back registered models; make signing keys."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from airflow_mlops.cli import keys, model, plan, spec
from airflow_mlops.cli.output import error, install_log_redaction, short

__all__ = ["error", "install_log_redaction", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airflow-mlops", description=__doc__)
    sub = parser.add_subparsers(dest="group", required=True)
    spec.add_commands(sub)
    plan.add_commands(sub)
    model.add_commands(sub)
    keys.add_commands(sub)
    args = parser.parse_args(argv)
    install_log_redaction()
    name = " ".join(["airflow-mlops", args.group, *([args.command] if args.command else [])])
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        error(f"{name}: interrupted")
        return 130
    except RecursionError:
        error(f"{name}: an input is nested too deeply to be read (RecursionError); it is malformed")
        return 1
    except Exception as exc:  # never a raw traceback (it may hold a URI with credentials)
        error(f"{name}: {type(exc).__name__}: {short(exc)}")
        return 1
