"""``airflow-mlops keys generate``: a model-signing key pair and the Airflow connection for it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from airflow_mlops.cli.output import error
from airflow_mlops.connections import SIGNING_CONN_ID


def add_commands(sub: Any) -> None:
    """The ``keys`` command group."""
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
        default=SIGNING_CONN_ID,
        metavar="ID",
        help="the Airflow connection to print (default: mlops_signing, the spec's default)",
    )
    generate.add_argument("--force", action="store_true", help="replace an existing pair of that name")
    generate.set_defaults(func=generate_command)


def generate_command(args: argparse.Namespace) -> int:
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
