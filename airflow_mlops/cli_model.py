"""``airflow-mlops model scan | sign | verify | bom``: the supply-chain checks for people and CI.

Each command exits non-zero when anything does not verify (1), and 2 for usage errors (argparse).
Keys are read from files or environment variables named on the command line, never echoed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any


def _read_key(path: str | None, what: str) -> bytes:
    if not path:
        raise SystemExit(f"error: give --{what} PEM_FILE")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SystemExit(f"error: cannot read the {what.replace('-', ' ')} {path}: {exc.strerror}") from None


def _scan(args: argparse.Namespace) -> int:
    """Scan each path (a model directory or a single file); findings printed, non-zero on any."""
    from airflow_mlops.exceptions import MLOpsError
    from airflow_mlops.security.scanning import scan_model_dir

    results: list[dict[str, Any]] = []
    failed = False
    for raw in args.paths:
        path = Path(raw)
        try:
            if path.is_dir():
                report = scan_model_dir(path, allowed_globals=args.allow)
            elif path.is_file():
                with tempfile.TemporaryDirectory(prefix="mlops-scan-") as tmp:
                    staged = Path(tmp) / path.name
                    try:
                        os.link(path, staged)  # no copy of a large file when the file system allows
                    except OSError:
                        shutil.copyfile(path, staged)
                    report = scan_model_dir(Path(tmp), allowed_globals=args.allow)
            else:
                raise FileNotFoundError(f"{path}: no such file or directory")
        except (MLOpsError, OSError) as exc:
            failed = True
            results.append({"path": str(path), "error": str(exc)})
            if not args.json:
                print(f"{path}: cannot scan: {exc}", file=sys.stderr)
            continue
        data = report.to_dict()
        results.append({"path": str(path), **data})
        findings = data.get("findings") or []
        failed = failed or bool(findings)
        if not args.json:
            if findings:
                print(f"{path}: {len(findings)} finding(s)")
                for f in findings:
                    print(f"  {f.get('path', '?')}: {f.get('kind', '?')}: {f.get('detail', f)}")
            else:
                print(f"{path}: ok ({data.get('files_scanned', '?')} file(s), no findings)")
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True, default=str))
    return 1 if failed else 0


def _sign(args: argparse.Namespace) -> int:
    from airflow_mlops.exceptions import MLOpsError
    from airflow_mlops.security.signing import sign_model

    key = _read_key(args.private_key, "private-key")
    password = os.environ.get(args.password_env) if args.password_env else None
    if args.password_env and password is None:
        print(f"error: the environment variable {args.password_env} is not set", file=sys.stderr)
        return 1
    signature = Path(args.signature or f"{args.path.rstrip('/')}.sig")
    try:
        info = sign_model(args.path, signature, key, password=password)
    except MLOpsError as exc:
        print(f"{args.path}: not signed: {exc}", file=sys.stderr)
        return 1
    print(f"{args.path}: signed -> {signature} (key {info.public_key_fingerprint})")
    return 0


def _verify(args: argparse.Namespace) -> int:
    """Verify the model's signature and, optionally, attestations about it."""
    from airflow_mlops.artifacts import sha256_directory
    from airflow_mlops.exceptions import MLOpsError
    from airflow_mlops.security.attestation import CYCLONEDX_PREDICATE, EVALUATION_PREDICATE, verify_envelope
    from airflow_mlops.security.signing import public_key_fingerprint, verify_model

    public = _read_key(args.public_key, "public-key")
    signature = Path(args.signature or f"{args.path.rstrip('/')}.sig")
    try:
        verify_model(args.path, signature, public)
        digest = sha256_directory(args.path)[0]
        checked = []
        for kind, predicate in (("evaluation", EVALUATION_PREDICATE), ("mlbom", CYCLONEDX_PREDICATE)):
            envelope = getattr(args, f"{kind}_attestation")
            if envelope:
                verify_envelope(
                    Path(envelope).read_bytes(),
                    public,
                    model_sha256=digest,
                    predicate_type=predicate,
                    what=f"{kind} attestation {envelope}",
                )
                checked.append(f"{kind} attestation")
    except (MLOpsError, OSError) as exc:
        print(f"{args.path}: does NOT verify: {exc}", file=sys.stderr)
        return 1
    extra = f"; {', '.join(checked)} verified" if checked else ""
    print(f"{args.path}: verified (key {public_key_fingerprint(public)}, digest {digest}){extra}")
    return 0


def _bom(args: argparse.Namespace) -> int:
    """Print (or write) the ML-BOM of a registered version, after verifying its attestation."""
    from mlflow.exceptions import MlflowException

    from airflow_mlops.cli import _client
    from airflow_mlops.exceptions import MLOpsError
    from airflow_mlops.registry.mlflow_registry import (
        MLBOM_ATTESTATION,
        MLBOM_FILE,
        TAG_MODEL_SHA256,
        _get_version,
        download_attestation,
    )
    from airflow_mlops.security.attestation import CYCLONEDX_PREDICATE, verify_envelope

    where = f"{args.name} version {args.version}"
    try:
        client = _client(args)
        mv = _get_version(client, args.name, str(args.version))
        with tempfile.TemporaryDirectory(prefix="mlops-bom-") as tmp:
            bom_path = download_attestation(client, mv, MLBOM_FILE, Path(tmp) / "bom")
            envelope = download_attestation(client, mv, MLBOM_ATTESTATION, Path(tmp) / "env")
            if bom_path is None or envelope is None:
                print(
                    f"{where} has no ML-BOM (registered before ML-BOMs, or not by a pipeline)",
                    file=sys.stderr,
                )
                return 1
            bom = json.loads(bom_path.read_text())
            if args.public_key:
                verified = verify_envelope(
                    envelope.read_bytes(),
                    _read_key(args.public_key, "public-key"),
                    model_sha256=str((mv.tags or {}).get(TAG_MODEL_SHA256)),
                    predicate_type=CYCLONEDX_PREDICATE,
                    what=f"ML-BOM attestation of {where}",
                )
                if dict(verified.predicate) != bom:
                    print(f"{where}: the ML-BOM file differs from its signed attestation", file=sys.stderr)
                    return 1
    except (MLOpsError, OSError, MlflowException, json.JSONDecodeError) as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(bom, indent=2, sort_keys=True)
    if args.output:
        Path(args.output).write_text(text + "\n")
        print(
            f"{where}: ML-BOM written to {args.output}" + (" (signature verified)" if args.public_key else "")
        )
    else:
        print(text)
    return 0


def add_commands(model_sub: Any) -> None:
    """Add scan, sign, verify and bom to the ``model`` command group."""
    scan = model_sub.add_parser("scan", help="scan model files or directories; non-zero on any finding")
    scan.add_argument("paths", nargs="+", metavar="PATH")
    scan.add_argument("--json", action="store_true", help="print the reports as JSON")
    scan.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="MODULE.NAME",
        help="an extra global to accept (repeatable)",
    )
    scan.set_defaults(func=_scan)

    sign = model_sub.add_parser("sign", help="sign every file of a model directory (OpenSSF model signing)")
    sign.add_argument("path", metavar="MODEL_DIR")
    sign.add_argument("--private-key", metavar="PEM_FILE", required=True)
    sign.add_argument("--password-env", metavar="VAR", help="environment variable holding the key's password")
    sign.add_argument("--signature", metavar="FILE", help="where to write it (default: MODEL_DIR.sig)")
    sign.set_defaults(func=_sign)

    verify = model_sub.add_parser(
        "verify", help="verify a model directory's signature (and attestations); non-zero naming what differs"
    )
    verify.add_argument("path", metavar="MODEL_DIR")
    verify.add_argument("--public-key", metavar="PEM_FILE", required=True)
    verify.add_argument("--signature", metavar="FILE", help="default: MODEL_DIR.sig")
    verify.add_argument("--evaluation-attestation", metavar="FILE", help="a DSSE envelope to verify too")
    verify.add_argument("--mlbom-attestation", metavar="FILE", help="a DSSE envelope to verify too")
    verify.set_defaults(func=_verify)

    bom = model_sub.add_parser("bom", help="print the ML-BOM (CycloneDX 1.6) of a registered version")
    bom.add_argument("name", metavar="NAME")
    bom.add_argument("version", metavar="VERSION")
    bom.add_argument("--public-key", metavar="PEM_FILE", help="verify its signed attestation with this key")
    bom.add_argument("--output", metavar="FILE", help="write it here instead of printing it")
    bom.add_argument(
        "--mlflow-conn-id", default="mlflow_default", help="Airflow connection of the MLflow server"
    )
    bom.add_argument("--tracking-uri", help="use this MLflow tracking URI instead of the connection")
    bom.set_defaults(func=_bom)
