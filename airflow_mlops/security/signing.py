"""Model signing and verification with OpenSSF model signing (``model_signing``) and EC keys.

A model directory is signed as a whole: every file's sha256 goes into an in-toto statement that is
signed with an ECDSA key and written as a Sigstore bundle (JSON) *outside* the model directory.
Verification re-hashes the directory and fails on any added, removed or changed file.

Two things differ on purpose from ``model_signing``'s defaults:

- ``model_signing`` ignores git files (``.git/``, ``.gitignore``, ``.gitattributes``,
  ``.github/``) by default, both when signing and when verifying, so a ``.gitignore`` added after
  signing would go unnoticed. Here nothing is ignored on either side, and a signature whose signed
  manifest declares ignored paths is refused.
- Key material arrives as bytes (from an Airflow connection). ``model_signing`` reads keys from
  files, so the key is written to a fresh private temporary directory (file mode 0600) and
  removed as soon as signing is done. Keys and passwords never appear in logs or error messages.

Example::

    private_pem, public_pem = generate_key_pair()
    info = sign_model("/models/churn/1", "/signatures/churn-1.sig", private_pem)
    verify_model("/models/churn/1", "/signatures/churn-1.sig", public_pem)  # raises if tampered
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from airflow_mlops.digests import sha256_file
from airflow_mlops.exceptions import SignatureVerificationError, SigningError
from airflow_mlops.security.keys import (
    generate_key_pair,
    load_private_key,
    load_public_key,
    public_key_fingerprint,
    public_key_from_private,
    public_key_pem,
)

if TYPE_CHECKING:
    from model_signing import hashing

    from airflow_mlops.security.trust import SigningIdentity, Trust, VerifiedSigner

log = logging.getLogger(__name__)

__all__ = [
    "SignatureInfo",
    "generate_key_pair",
    "public_key_fingerprint",
    "public_key_from_private",
    "sign_model",
    "verify_model",
]

_KEY_FILE = "signing-key.pem"
_PUBLIC_KEY_FILE = "trusted-key.pub"
_SIGNATURE_COPY = "signature.json"


@dataclass(frozen=True)
class SignatureInfo:
    """What :func:`sign_model` produced (safe to log, push to XCom or put in an ML-BOM).

    Attributes:
        signature_path: where the signature (a Sigstore bundle, JSON) was written.
        sha256: sha256 hex digest of the signature file.
        public_key_fingerprint: sha256 hex digest of the signer's public key (DER
            SubjectPublicKeyInfo); see :func:`public_key_fingerprint`.
        method: the signing method; ``"key"`` for a private EC key.
    """

    signature_path: str
    sha256: str
    public_key_fingerprint: str
    method: str = "key"

    def to_dict(self) -> dict[str, str]:
        """A JSON-able representation."""
        return asdict(self)


# --- helpers --------------------------------------------------------------------------------


def _hashing_config() -> hashing.Config:
    """File-by-file sha256 over *every* file: no ignored paths (git files included), no symlinks."""
    from model_signing import hashing

    return (
        hashing.Config()
        .set_ignored_paths(paths=[], ignore_git_paths=False)
        .use_file_serialization(hashing_algorithm="sha256", allow_symlinks=False)
    )


@contextlib.contextmanager
def _private_dir() -> Iterator[Path]:
    """A fresh directory only this user can read (mkdtemp makes it 0700); removed on exit."""
    path = Path(tempfile.mkdtemp(prefix="airflow-mlops-signing-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 (never following a link) and write ``data`` to it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _redact(text: str, secrets: list[bytes | str | None]) -> str:
    """Remove any secret (or any long line of it, such as a PEM body line) from ``text``."""
    for secret in secrets:
        if not secret:
            continue
        value = secret.decode("utf-8", "replace") if isinstance(secret, bytes) else secret
        pieces = [value, *(line.strip() for line in value.splitlines())]
        for piece in sorted(pieces, key=len, reverse=True):
            if len(piece) >= 8 or piece == value:
                text = text.replace(piece, "<redacted>")
    return text


def _is_within(path: Path, directory: Path) -> bool:
    path, directory = path.resolve(), directory.resolve()
    return path == directory or directory in path.parents


def _has_files(directory: Path) -> bool:
    return any(p.is_file() or p.is_symlink() for p in directory.rglob("*"))


# --- signing --------------------------------------------------------------------------------


def sign_model(
    model_dir: str | os.PathLike[str],
    signature_path: str | os.PathLike[str],
    signer: SigningIdentity | bytes | str,
    *,
    password: bytes | str | None = None,
) -> SignatureInfo:
    """Sign every file of ``model_dir`` and write the signature to ``signature_path``.

    The signature is written atomically (to a temporary file next to it, then renamed), so a
    reader never sees a half-written signature and a failed signing leaves an older one intact.

    Args:
        model_dir: the model directory to sign; symlinks inside it are refused.
        signature_path: where to write the signature; must be outside ``model_dir`` (a
            signature inside the directory would change what it signs). Parent directories are
            created.
        signer: a :class:`~airflow_mlops.security.trust.SigningIdentity` (key, certificate
            chain or Sigstore keyless), or a bare PEM private key (EC P-256/P-384/P-521) for the
            ``key`` method. Key material is written to a private 0600 temporary file only while
            signing.
        password: a bare private key's password, if it is encrypted.

    Returns:
        A :class:`SignatureInfo` describing the signature.

    Raises:
        SigningError: the key or certificate cannot be used, the model directory is missing or
            empty, the signature path is inside the model directory, or signing failed. Messages
            never contain the key, the password or the identity token.
        SigstoreUnavailableError: keyless signing cannot reach Sigstore's services.
    """
    from airflow_mlops.security.trust import as_signer, check_signing_certificate

    identity = as_signer(signer, password)
    model = Path(model_dir)
    signature = Path(signature_path)
    if not model.is_dir():
        raise SigningError(f"cannot sign model: {model} is not a directory")
    if _is_within(signature, model):
        raise SigningError(
            f"the signature path {signature} is inside the model directory {model}; write it "
            "outside the model (for example next to it as <model>.sig), or it would change what it signs"
        )
    if not _has_files(model):
        raise SigningError(f"cannot sign model: {model} contains no files")

    secrets: list[bytes | str | None] = [identity.private_key_pem, identity.password, identity.identity_token]
    fingerprint = ""
    if identity.method in ("key", "certificate"):
        key = load_private_key(identity.private_key_pem or b"", identity.password)
        fingerprint = public_key_fingerprint(public_key_pem(key.public_key()))
        if identity.method == "certificate":
            check_signing_certificate(identity, key)
    signature.parent.mkdir(parents=True, exist_ok=True)
    tmp_signature = signature.with_name(f".{signature.name}.{uuid.uuid4().hex}.tmp")
    started = time.monotonic()
    log.info("Signing model %s (%s): hashing every file", model, identity.method)
    try:
        with _private_dir() as private:
            config = _signing_config(identity, private)
            config.set_hashing_config(_hashing_config()).sign(model, tmp_signature)
        with tmp_signature.open("rb") as fh:
            os.fsync(fh.fileno())
        digest = sha256_file(tmp_signature)
        if identity.method == "sigstore":
            fingerprint = _sigstore_signer_identity(tmp_signature.read_bytes())
        os.replace(tmp_signature, signature)
    except SigningError:
        raise
    except Exception as exc:
        if identity.method == "sigstore":
            from airflow_mlops.security.trust import _is_unreachable, sigstore_unavailable

            if _is_unreachable(exc):
                raise sigstore_unavailable(exc, "Sigstore keyless signing", identity.trust_config) from None
        reason = _redact(f"{type(exc).__name__}: {exc}", secrets)
        raise SigningError(
            f"signing model {model} with method {identity.method!r} failed: {reason}. Check that the "
            "directory holds only regular files (no symlinks) readable by the worker"
        ) from None
    finally:
        tmp_signature.unlink(missing_ok=True)

    log.info(
        "Signed model %s (%s): %s; signature %s (sha256 %s, signer %s)",
        model,
        identity.method,
        _size_line(model, started),
        signature,
        digest,
        fingerprint,
    )
    return SignatureInfo(
        signature_path=str(signature),
        sha256=digest,
        public_key_fingerprint=fingerprint,
        method=identity.method,
    )


def _size_line(model: Path, started: float) -> str:
    """``3 files, 1.2 GiB in 4.1 s (300 MiB/s)`` for a model directory."""
    from airflow_mlops.progress import human_bytes

    files = [p for p in model.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    seconds = max(time.monotonic() - started, 1e-9)
    return f"{len(files)} files, {human_bytes(size)} in {seconds:.1f} s ({human_bytes(size / seconds)}/s)"


def _signing_config(identity: SigningIdentity, private: Path) -> Any:
    """model_signing's signing configuration for the identity; key files go into ``private``."""
    from model_signing import signing as ms_signing

    config = ms_signing.Config()
    if identity.method == "sigstore":
        from airflow_mlops.security.trust import sigstore_client_config, sigstore_identity_token

        # fetched here first so that unreachable services get a clear error
        sigstore_client_config(identity.staging, identity.trust_config, "Sigstore keyless signing")
        token = sigstore_identity_token(identity)
        return config.use_sigstore_signer(
            oidc_issuer=identity.oidc_issuer,
            use_ambient_credentials=False,
            use_staging=identity.staging,
            identity_token=str(token),
            trust_config=Path(identity.trust_config) if identity.trust_config else None,
        )
    key_file = private / _KEY_FILE
    _write_private_file(key_file, identity.private_key_pem or b"")
    # model_signing types `password` as str, but hands it to cryptography, which needs bytes
    password = cast(Any, identity.password or None)
    if identity.method == "key":
        return config.use_elliptic_key_signer(private_key=key_file, password=password)
    if password:
        # model_signing's certificate signer reads only unencrypted keys: hand it a decrypted copy
        from cryptography.hazmat.primitives import serialization

        key = load_private_key(identity.private_key_pem or b"", identity.password)
        key_file.unlink()
        _write_private_file(
            key_file,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
    cert_file = private / "signing-cert.pem"
    _write_private_file(cert_file, identity.certificate_pem or b"")
    # model_signing needs a non-empty chain; a certificate issued by the root itself has none
    chain_file = private / "chain.pem"
    _write_private_file(chain_file, identity.chain_pem or identity.certificate_pem or b"")
    chain = [chain_file]
    return config.use_certificate_signer(
        private_key=key_file, signing_certificate=cert_file, certificate_chain=chain
    )


def _sigstore_signer_identity(signature_bytes: bytes) -> str:
    """The identity in a Sigstore bundle's (Fulcio) certificate."""
    from cryptography import x509

    from airflow_mlops.security.trust import (
        bundle_certificate_chain,
        certificate_identities,
        load_signed_json,
    )

    chain = bundle_certificate_chain(load_signed_json(signature_bytes, "signature file"))
    if not chain:
        return "sigstore"
    return "sigstore:" + ", ".join(certificate_identities(x509.load_der_x509_certificate(chain[0])))


# --- verification ---------------------------------------------------------------------------


def _signed_serialization(signature_bytes: bytes) -> dict[str, Any]:
    """The ``serialization`` block of the (already verified) signed in-toto statement."""
    from airflow_mlops.security.trust import load_signed_json

    bundle = load_signed_json(signature_bytes, "signature file")
    statement = load_signed_json(base64.b64decode(bundle["dsseEnvelope"]["payload"]), "signed statement")
    serialization = statement["predicate"]["serialization"]
    if not isinstance(serialization, dict):
        raise ValueError("serialization is not an object")
    return serialization


def _describe_mismatch(model: Path, signature_bytes: bytes, fallback: str) -> str:
    """Which files were added, removed or changed, from the (verified) signed statement."""
    from airflow_mlops.security.trust import load_signed_json

    try:
        bundle = load_signed_json(signature_bytes, "signature file")
        statement = load_signed_json(base64.b64decode(bundle["dsseEnvelope"]["payload"]), "signed statement")
        expected = {str(r["name"]): str(r["digest"]) for r in statement["predicate"]["resources"]}
        actual = {p.relative_to(model).as_posix(): p for p in model.rglob("*") if p.is_file()}
        added = sorted(set(actual) - set(expected))
        removed = sorted(set(expected) - set(actual))
        changed = sorted(n for n in set(actual) & set(expected) if sha256_file(actual[n]) != expected[n])
    except Exception:
        return fallback
    parts = [
        f"{label}: {', '.join(names)}"
        for label, names in (("added", added), ("removed", removed), ("changed", changed))
        if names
    ]
    return "; ".join(parts) or fallback


def verify_model(
    model_dir: str | os.PathLike[str],
    signature_path: str | os.PathLike[str],
    trust: Trust | bytes | str,
) -> VerifiedSigner:
    """Verify that ``model_dir`` is exactly what was signed, by a signer ``trust`` accepts.

    ``trust`` is a :class:`~airflow_mlops.security.trust.Trust` (a public key, a root CA bundle
    with an optional identity, or a Sigstore identity and issuer), or a bare PEM public key for
    the ``key`` method. Every file counts: a file added, removed or changed after signing fails
    verification, git files included.

    Returns:
        The :class:`~airflow_mlops.security.trust.VerifiedSigner`.

    Raises:
        SignatureVerificationError: the model directory or the signature file is missing, the
            signature is malformed, it was made by a signer the trust does not accept, or the
            model's files differ from the signed ones. The message says which.
        SigstoreUnavailableError: a Sigstore signature cannot be checked because Sigstore's trust
            root cannot be fetched (this blocks too).
    """
    from airflow_mlops.security.trust import MAX_SIGNED_JSON_BYTES, as_trust, load_signed_json, read_limited

    trusted = as_trust(trust)
    model = Path(model_dir)
    signature = Path(signature_path)
    if not model.is_dir():
        raise SignatureVerificationError(f"cannot verify model: {model} is not a directory")
    if not signature.is_file():
        raise SignatureVerificationError(
            f"signature file {signature} for model {model} is missing; the model was never signed "
            "(run the signing step), or the signature was stored somewhere else"
        )
    # bounded: a signature file the size of a disk is refused before it is read whole
    signature_bytes = read_limited(signature, MAX_SIGNED_JSON_BYTES, f"signature file {signature}")
    try:
        bundle = load_signed_json(signature_bytes, f"signature file {signature}")
        _check_signed_payload(bundle, signature)
    except SignatureVerificationError as exc:
        raise SignatureVerificationError(
            f"{exc} (expected a Sigstore bundle written by sign_model); verification failed"
        ) from None

    from cryptography.exceptions import InvalidSignature

    started = time.monotonic()
    signer: VerifiedSigner
    with _private_dir() as private:
        # verify a private copy, so the bytes checked below are exactly the bytes verified
        signature_copy = private / _SIGNATURE_COPY
        _write_private_file(signature_copy, signature_bytes)
        config, signer = _verifying_config(trusted, bundle, private, signature)
        try:
            config.set_hashing_config(_hashing_config()).verify(model, signature_copy)
        except SignatureVerificationError:
            raise
        except InvalidSignature:
            raise SignatureVerificationError(
                f"signature {signature} does not verify with the trusted {trusted.describe()}: "
                "it was made with another key, or the signature file was altered"
            ) from None
        except ValueError as exc:
            message = str(exc)
            if message.startswith("Key mismatch"):
                raise SignatureVerificationError(
                    f"signature {signature} was made with a different key than the trusted "
                    f"{trusted.describe()}; the model was not signed by the trusted signer"
                ) from None
            if message.startswith("Signature mismatch"):
                raise SignatureVerificationError(
                    f"model {model} does not match its signature {signature}: files were added, "
                    f"removed or changed after signing ({_describe_mismatch(model, signature_bytes, message)}); "
                    "do not use this model: re-run the pipeline to rebuild and re-sign it"
                ) from None
            raise SignatureVerificationError(
                f"model {model} failed verification against {signature} ({trusted.describe()}): {message}"
            ) from None
        except Exception as exc:
            if trusted.method == "sigstore":
                from airflow_mlops.security.trust import _is_unreachable, sigstore_unavailable

                if _is_unreachable(exc):
                    raise sigstore_unavailable(
                        exc, "verifying a Sigstore signature", trusted.trust_config
                    ) from None
            raise SignatureVerificationError(
                f"signature file {signature} does not verify against the trusted {trusted.describe()} "
                f"({type(exc).__name__}: {str(exc)[:300]}); re-sign the model with sign_model"
            ) from None

    # The statement is authentic now. model_signing honours ignore_paths recorded in it, which
    # would let files under those paths change unnoticed: only accept signatures that cover all.
    try:
        serialization = _signed_serialization(signature_bytes)
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureVerificationError(f"signature file {signature} is malformed: {exc}") from None
    ignored = serialization.get("ignore_paths") or []
    if ignored:
        raise SignatureVerificationError(
            f"signature {signature} leaves paths out of the signature ({', '.join(map(str, ignored))}), "
            "so changes to them would go unnoticed; re-sign the model with sign_model, which covers every file"
        )
    log.info(
        "Verified model %s against signature %s (signer %s): %s",
        model,
        signature,
        signer.fingerprint,
        _size_line(model, started),
    )
    return signer


def _check_signed_payload(bundle: Any, signature: Path) -> None:
    """Bound the statement inside the bundle before model_signing parses it (it nests no deeper)."""
    from airflow_mlops.security.trust import load_signed_json

    if not isinstance(bundle, dict):
        raise SignatureVerificationError(f"signature file {signature} is not a JSON object")
    envelope = bundle.get("dsseEnvelope")
    payload = envelope.get("payload") if isinstance(envelope, dict) else None
    if isinstance(payload, str):
        try:
            decoded = base64.b64decode(payload, validate=True)
        except ValueError:
            return  # model_signing refuses it with its own message
        load_signed_json(decoded, f"statement in signature file {signature}")


def _verifying_config(
    trust: Trust, bundle: Any, private: Path, signature: Path
) -> tuple[Any, VerifiedSigner]:
    """model_signing's verifying configuration for ``trust``, and who the signer will be.

    For certificates, the chain and the identity are checked here first (with a precise
    message); model_signing checks the chain again together with the signature.
    """
    from model_signing import verifying as ms_verifying

    from airflow_mlops.security.trust import (
        VerifiedSigner,
        bundle_certificate_chain,
        sigstore_client_config,
        verify_certificate_chain,
    )

    config = ms_verifying.Config()
    material = bundle.get("verificationMaterial") if isinstance(bundle, dict) else None
    if trust.method == "key" and isinstance(material, dict) and "publicKey" not in material:
        made_with = "certificate" if "x509CertificateChain" in material else "sigstore"
        raise SignatureVerificationError(
            f"signature {signature} was made with the {made_with} method, not with a key: it does not "
            f"verify with the trusted {trust.describe()} (the model was not signed by the trusted signer)"
        )
    if trust.method == "key":
        public_key = load_public_key(trust.public_key_pem or b"")
        key_file = private / _PUBLIC_KEY_FILE
        _write_private_file(key_file, public_key_pem(public_key))
        signer = VerifiedSigner("key", public_key_fingerprint(public_key_pem(public_key)))
        return config.use_elliptic_key_verifier(public_key=key_file), signer
    if trust.method == "certificate":
        try:
            chain = bundle_certificate_chain(bundle if isinstance(bundle, dict) else {})
        except (KeyError, TypeError, ValueError) as exc:
            raise SignatureVerificationError(
                f"signature {signature} has a malformed certificate chain: {exc}"
            ) from None
        if not chain:
            raise SignatureVerificationError(
                f"signature {signature} carries no certificate chain: it was not signed with the "
                "certificate method (a key signature does not verify against a CA)"
            )
        key, identities = verify_certificate_chain(chain, trust, what=f"signature {signature}")
        ca_file = private / "trusted-ca.pem"
        _write_private_file(ca_file, trust.ca_bundle_pem or b"")
        signer = VerifiedSigner("certificate", public_key_fingerprint(public_key_pem(key)), identities)
        return config.use_certificate_verifier(certificate_chain=[ca_file]), signer
    sigstore_client_config(trust.staging, trust.trust_config, "verifying a Sigstore signature")
    signer = VerifiedSigner("sigstore", trust.fingerprint, trust.identity)
    return (
        config.use_sigstore_verifier(
            identity=trust.identity or "",
            oidc_issuer=trust.oidc_issuer or "",
            use_staging=trust.staging,
            trust_config=Path(trust.trust_config) if trust.trust_config else None,
        ),
        signer,
    )
