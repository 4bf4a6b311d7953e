"""``airflow-mlops model history | rollback | scan | sign | verify | bom | watermark verify``: the registry and
supply-chain commands for people and CI.

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

from airflow_mlops.cli.output import error
from airflow_mlops.connections import MLFLOW_CONN_ID, SIGNING_CONN_ID


def mlflow_client(args: argparse.Namespace) -> Any:
    """The MLflow client of ``--tracking-uri``, else of the Airflow connection."""
    if args.tracking_uri:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=args.tracking_uri)
    from airflow_mlops.hooks.mlflow import MLflowHook

    return MLflowHook(mlflow_conn_id=args.mlflow_conn_id).get_conn()


def history_command(args: argparse.Namespace) -> int:
    """``model history NAME``: the audit trail of the model's registrations and alias moves."""
    import json

    from airflow_mlops.exceptions import MLOpsError

    try:
        from mlflow.exceptions import MlflowException

        from airflow_mlops.registry.audit import audit_history

        entries = audit_history(mlflow_client(args), args.name)
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


def rollback_command(args: argparse.Namespace) -> int:
    """``model rollback NAME``: point the alias back at the version it replaced, verified first."""
    from airflow_mlops.exceptions import MLOpsError

    try:
        client = mlflow_client(args)
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


#: The largest key, certificate or CA bundle file read (real ones are a few KB).
MAX_KEY_FILE_BYTES = 4 * 1024 * 1024


def _read_key(path: str | None, what: str) -> bytes:
    from airflow_mlops.security.trust import read_limited

    if not path:
        raise SystemExit(f"error: give --{what} PEM_FILE")

    class _Refused(Exception):
        pass

    try:
        return read_limited(path, MAX_KEY_FILE_BYTES, f"{what.replace('-', ' ')} {path}", _Refused)
    except _Refused as exc:
        raise SystemExit(f"error: {exc}") from None


def _read_document(path: Path | str, what: str) -> bytes:
    """A signed document named on the command line (an attestation), bounded like a signature."""
    from airflow_mlops.security.trust import MAX_SIGNED_JSON_BYTES, read_limited

    return read_limited(path, MAX_SIGNED_JSON_BYTES, what)


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
            elif path.exists():
                raise FileNotFoundError(f"{path}: not a regular file or directory")
            else:
                raise FileNotFoundError(f"{path}: no such file or directory")
        except (MLOpsError, OSError) as exc:
            failed = True
            results.append({"path": str(path), "error": str(exc)})
            if not args.json:
                error(f"{path}: cannot scan: {exc}")
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


def _env(name: str | None) -> str | None:
    if not name:
        return None
    value = os.environ.get(name)
    if value is None:
        raise SystemExit(f"error: the environment variable {name} is not set")
    return value


def _signer(args: argparse.Namespace) -> Any:
    """The signing identity the options describe: key, certificate chain or Sigstore keyless."""
    from airflow_mlops.security.trust import SigningIdentity

    if args.sigstore:
        return SigningIdentity(
            method="sigstore",
            identity_token=_env(args.identity_token_env),
            staging=args.sigstore_staging,
            trust_config=args.trust_config,
        )
    key = _read_key(args.private_key, "private-key")
    password = _env(args.password_env)
    if args.certificate:
        return SigningIdentity(
            method="certificate",
            private_key_pem=key,
            password=password.encode() if password else None,
            certificate_pem=_read_key(args.certificate, "certificate"),
            chain_pem=_read_key(args.certificate_chain, "certificate-chain")
            if args.certificate_chain
            else None,
        )
    return SigningIdentity(
        method="key", private_key_pem=key, password=password.encode() if password else None
    )


def _trust(args: argparse.Namespace, *, required: bool = True) -> Any:
    """What the options trust: a public key, a CA bundle (+ identity) or a Sigstore identity."""
    from airflow_mlops.security.trust import Trust

    given = [bool(args.public_key), bool(args.ca_bundle), bool(args.sigstore_identity)]
    if sum(given) > 1:
        raise SystemExit("error: give one of --public-key, --ca-bundle, --sigstore-identity")
    if args.public_key:
        return Trust(method="key", public_key_pem=_read_key(args.public_key, "public-key"))
    if args.ca_bundle:
        return Trust(
            method="certificate", ca_bundle_pem=_read_key(args.ca_bundle, "ca-bundle"), identity=args.identity
        )
    if args.sigstore_identity:
        if not args.oidc_issuer:
            raise SystemExit("error: --sigstore-identity needs --oidc-issuer (the identity's OIDC issuer)")
        return Trust(
            method="sigstore",
            identity=args.sigstore_identity,
            oidc_issuer=args.oidc_issuer,
            staging=args.sigstore_staging,
            trust_config=args.trust_config,
        )
    if required:
        raise SystemExit("error: give --public-key PEM_FILE, --ca-bundle PEM_FILE or --sigstore-identity ID")
    return None


def _sign(args: argparse.Namespace) -> int:
    from airflow_mlops.exceptions import MLOpsError
    from airflow_mlops.security.signing import sign_model

    signature = Path(args.signature or f"{args.path.rstrip('/')}.sig")
    try:
        info = sign_model(args.path, signature, _signer(args))
    except MLOpsError as exc:
        error(f"{args.path}: not signed: {exc}")
        return 1
    print(f"{args.path}: signed -> {signature} ({info.method}, signer {info.public_key_fingerprint})")
    return 0


def _verify(args: argparse.Namespace) -> int:
    """Verify the model's signature and, optionally, attestations about it."""
    from airflow_mlops.artifacts import sha256_directory
    from airflow_mlops.exceptions import MLOpsError
    from airflow_mlops.security.attestation import CYCLONEDX_PREDICATE, EVALUATION_PREDICATE, verify_envelope
    from airflow_mlops.security.signing import verify_model

    trust = _trust(args)
    signature = Path(args.signature or f"{args.path.rstrip('/')}.sig")
    try:
        signer = verify_model(args.path, signature, trust)
        digest = sha256_directory(args.path)[0]
        checked = []
        for kind, predicate in (("evaluation", EVALUATION_PREDICATE), ("mlbom", CYCLONEDX_PREDICATE)):
            envelope = getattr(args, f"{kind}_attestation")
            if envelope:
                verify_envelope(
                    _read_document(envelope, f"{kind} attestation {envelope}"),
                    trust,
                    model_sha256=digest,
                    predicate_type=predicate,
                    what=f"{kind} attestation {envelope}",
                )
                checked.append(f"{kind} attestation")
    except (MLOpsError, OSError) as exc:
        error(f"{args.path}: does NOT verify: {exc}")
        return 1
    extra = f"; {', '.join(checked)} verified" if checked else ""
    who = f"{signer.method} {signer.identity or ''} {signer.fingerprint}".replace("  ", " ")
    print(f"{args.path}: verified (signer: {who}; digest {digest}){extra}")
    return 0


def _bom(args: argparse.Namespace) -> int:
    """Print (or write) the ML-BOM of a registered version, after verifying its attestation."""
    from mlflow.exceptions import MlflowException

    from airflow_mlops.exceptions import MLOpsError
    from airflow_mlops.registry.mlflow_registry import (
        MLBOM_ATTESTATION,
        MLBOM_FILE,
        TAG_MODEL_SHA256,
        download_attestation,
        get_version,
    )
    from airflow_mlops.security.attestation import CYCLONEDX_PREDICATE, verify_envelope

    where = f"{args.name} version {args.version}"
    trust = _trust(args, required=False)
    try:
        client = mlflow_client(args)
        mv = get_version(client, args.name, str(args.version))
        with tempfile.TemporaryDirectory(prefix="mlops-bom-") as tmp:
            bom_path = download_attestation(client, mv, MLBOM_FILE, Path(tmp) / "bom")
            envelope = download_attestation(client, mv, MLBOM_ATTESTATION, Path(tmp) / "env")
            if bom_path is None or envelope is None:
                print(
                    f"{where} has no ML-BOM (registered before ML-BOMs, or not by a pipeline)",
                    file=sys.stderr,
                )
                return 1
            bom = _load_bom(bom_path, where)
            if trust is not None:
                verified = verify_envelope(
                    envelope.read_bytes(),
                    trust,
                    model_sha256=str((mv.tags or {}).get(TAG_MODEL_SHA256)),
                    predicate_type=CYCLONEDX_PREDICATE,
                    what=f"ML-BOM attestation of {where}",
                )
                if dict(verified.predicate) != bom:
                    print(f"{where}: the ML-BOM file differs from its signed attestation", file=sys.stderr)
                    return 1
    except (MLOpsError, OSError, MlflowException, json.JSONDecodeError) as exc:
        error(f"{where}: {exc}")
        return 1
    text = json.dumps(bom, indent=2, sort_keys=True)
    if args.output:
        Path(args.output).write_text(text + "\n")
        print(
            f"{where}: ML-BOM written to {args.output}"
            + (" (signature verified)" if trust is not None else "")
        )
    else:
        print(text)
    return 0


def _load_bom(path: Path, where: str) -> Any:
    """The downloaded ML-BOM, parsed bounded and strictly (size, depth, duplicate keys, NaN, huge
    integers, UTF-8): a malformed one is an :class:`~airflow_mlops.exceptions.ArtifactError`."""
    from airflow_mlops.exceptions import ArtifactError, SignatureVerificationError
    from airflow_mlops.security.trust import load_signed_json

    try:
        bom = load_signed_json(_read_document(path, f"ML-BOM of {where}"), f"ML-BOM of {where}")
    except SignatureVerificationError as exc:
        raise ArtifactError(str(exc)) from None
    if not isinstance(bom, dict):
        raise ArtifactError(f"the ML-BOM of {where} is not a JSON object")
    return bom


def _watermark_verify(args: argparse.Namespace) -> int:
    """``model watermark verify MODEL``: does a (suspect) model carry our watermark?

    MODEL is a model directory (the trainer's, or a packaged one with an MLmodel file) or a
    ``models:/NAME/VERSION`` URI. It is scanned before it is loaded, like every other load path.
    The key comes from the environment variable ``--key-env`` names (never from the command line);
    the record from ``--record`` (the one kept with the registered model: a stolen copy may have
    lost its own), else the model's ``watermark.json``. Exit 0: claimed; 1: not claimed or error.
    """
    from airflow_mlops.exceptions import MLOpsError
    from airflow_mlops.security.scanning import scan_model_dir
    from airflow_mlops.security.watermark import RECORD_FILE, WatermarkRecord, verify_predictor
    from airflow_mlops.training.flavors import load_predictor

    key_text = _env(args.key_env)
    if not key_text:
        error(f"the watermark key: set the environment variable {args.key_env}")
        return 1
    try:
        with tempfile.TemporaryDirectory(prefix="mlops-wm-") as tmp:
            model_dir = _watermark_model_dir(args, Path(tmp))
            scan_model_dir(model_dir, allowed_globals=args.allow).ensure_safe()
            weights = _trainer_dir(model_dir)
            record_path = Path(args.record) if args.record else weights / RECORD_FILE
            if not record_path.is_file():
                error(
                    f"{args.model}: no watermark record ({record_path}); pass --record with the "
                    "watermark.json kept with the registered model"
                )
                return 1
            record = WatermarkRecord.from_dict(
                json.loads(_read_document(record_path, f"watermark record {record_path}")),
                where=str(record_path),
            )
            verdict = verify_predictor(load_predictor(weights), record, key_text.encode())
    except (MLOpsError, OSError, json.JSONDecodeError) as exc:
        error(f"{args.model}: {exc}")
        return 1
    if args.json:
        print(json.dumps({"model": args.model, **verdict.to_dict()}, indent=2, sort_keys=True))
    else:
        print(f"{args.model}: {verdict.describe()}")
        print(f"  matches {verdict.matches}  n {verdict.n}  t {verdict.t}  bound {verdict.bound:.3g}  "
              f"claimed {str(verdict.claimed).lower()}")  # fmt: skip
    return 0 if verdict.claimed else 1


def _watermark_model_dir(args: argparse.Namespace, tmp: Path) -> Path:
    """The model directory of ``args.model``: a local directory, or a registered version downloaded."""
    from airflow_mlops.exceptions import RegistryError

    if args.model.startswith("models:/"):
        from airflow_mlops.registry.mlflow_registry import download_version

        name, _, version = args.model[len("models:/") :].rpartition("/")
        if not name or not version:
            raise RegistryError(f"{args.model}: use models:/NAME/VERSION")
        return download_version(mlflow_client(args), name, version, tmp)[0]
    path = Path(args.model)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a model directory")
    return path


def _trainer_dir(model_dir: Path) -> Path:
    """The trainer's files: the directory itself, or the weights a packaged model's MLmodel names."""
    if (model_dir / "MLmodel").is_file():
        from airflow_mlops.registry.mlflow_registry import weights_dir

        return weights_dir(model_dir)
    return model_dir


def add_commands(sub: Any) -> None:
    """The ``model`` command group."""
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
        "--mlflow-conn-id", default=MLFLOW_CONN_ID, help="Airflow connection of the MLflow server"
    )
    rollback.add_argument("--tracking-uri", help="use this MLflow tracking URI instead of the connection")
    rollback.add_argument(
        "--signing-conn-id", default=SIGNING_CONN_ID, help="Airflow connection holding the public key"
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
        "--mlflow-conn-id", default=MLFLOW_CONN_ID, help="Airflow connection of the MLflow server"
    )
    history.add_argument("--tracking-uri", help="use this MLflow tracking URI instead of the connection")
    rollback.set_defaults(func=rollback_command)
    history.set_defaults(func=history_command)
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
    sign.add_argument(
        "--private-key", metavar="PEM_FILE", help="the EC private key (methods key, certificate)"
    )
    sign.add_argument("--password-env", metavar="VAR", help="environment variable holding the key's password")
    sign.add_argument(
        "--certificate", metavar="PEM_FILE", help="sign with this certificate (method certificate)"
    )
    sign.add_argument("--certificate-chain", metavar="PEM_FILE", help="the intermediate certificates")
    sign.add_argument("--sigstore", action="store_true", help="keyless signing with Sigstore")
    sign.add_argument(
        "--identity-token-env",
        metavar="VAR",
        help="environment variable holding the OIDC token (default: ambient credentials)",
    )
    _sigstore_instance_options(sign)
    sign.add_argument("--signature", metavar="FILE", help="where to write it (default: MODEL_DIR.sig)")
    sign.set_defaults(func=_sign)

    verify = model_sub.add_parser(
        "verify", help="verify a model directory's signature (and attestations); non-zero naming what differs"
    )
    verify.add_argument("path", metavar="MODEL_DIR")
    _trust_options(verify)
    verify.add_argument("--signature", metavar="FILE", help="default: MODEL_DIR.sig")
    verify.add_argument("--evaluation-attestation", metavar="FILE", help="a DSSE envelope to verify too")
    verify.add_argument("--mlbom-attestation", metavar="FILE", help="a DSSE envelope to verify too")
    verify.set_defaults(func=_verify)

    watermark = model_sub.add_parser("watermark", help="trigger-set watermarks (evidence of provenance)")
    watermark_sub = watermark.add_subparsers(dest="watermark_command", required=True)
    wm_verify = watermark_sub.add_parser(
        "verify", help="does a model carry our watermark? matches, t and the false-claim bound"
    )
    wm_verify.add_argument("model", metavar="MODEL", help="a model directory or models:/NAME/VERSION")
    wm_verify.add_argument(
        "--key-env", metavar="VAR", default="MLOPS_WATERMARK_KEY", help="environment variable holding the key"
    )
    wm_verify.add_argument(
        "--record", metavar="FILE", help="the watermark.json kept with the registered model"
    )
    wm_verify.add_argument("--json", action="store_true", help="print the verdict as JSON")
    wm_verify.add_argument(
        "--allow", action="append", default=[], metavar="MODULE.NAME", help="extra pickle global to allow"
    )
    wm_verify.add_argument("--tracking-uri", help="use this MLflow tracking URI instead of the connection")
    wm_verify.add_argument("--mlflow-conn-id", default=MLFLOW_CONN_ID, help="the MLflow connection")
    wm_verify.set_defaults(func=_watermark_verify)

    bom = model_sub.add_parser("bom", help="print the ML-BOM (CycloneDX 1.6) of a registered version")
    bom.add_argument("name", metavar="NAME")
    bom.add_argument("version", metavar="VERSION")
    _trust_options(bom)
    bom.add_argument("--output", metavar="FILE", help="write it here instead of printing it")
    bom.add_argument(
        "--mlflow-conn-id", default=MLFLOW_CONN_ID, help="Airflow connection of the MLflow server"
    )
    bom.add_argument("--tracking-uri", help="use this MLflow tracking URI instead of the connection")
    bom.set_defaults(func=_bom)


def _sigstore_instance_options(parser: Any) -> None:
    parser.add_argument("--sigstore-staging", action="store_true", help="Sigstore's staging instance (tests)")
    parser.add_argument(
        "--trust-config", metavar="JSON_FILE", help="a private Sigstore instance's trust config"
    )


def _trust_options(parser: Any) -> None:
    """--public-key | --ca-bundle [--identity] | --sigstore-identity --oidc-issuer."""
    parser.add_argument("--public-key", metavar="PEM_FILE", help="trust this public key (method key)")
    parser.add_argument("--ca-bundle", metavar="PEM_FILE", help="trust certificates chained to these roots")
    parser.add_argument(
        "--identity", help="with --ca-bundle: the identity the signing certificate must carry"
    )
    parser.add_argument(
        "--sigstore-identity", metavar="ID", help="trust Sigstore signatures of this identity"
    )
    parser.add_argument("--oidc-issuer", metavar="URL", help="with --sigstore-identity: its OIDC issuer")
    _sigstore_instance_options(parser)
