"""Who signs, and what a verifier trusts: a key pair, an X.509 certificate chain, or Sigstore.

Three signing methods, the same for the model's signature and its attestations:

``key``
    An ECDSA key pair. The signer holds the private key; verifiers trust one public key.
``certificate``
    An ECDSA private key with its signing certificate and the intermediate certificates, from an
    organisation's PKI. Verifiers trust the root CA bundle (never the operating system's web
    roots) and, optionally, an identity the signing certificate must carry (a SAN e-mail, URI or
    DNS name, or the subject's common name). The chain is checked as of the signing
    certificate's start of validity, as OpenSSF model signing does; the signer refuses a
    certificate that is expired or not yet valid at signing time, and one whose key usage does
    not allow signing.
``sigstore``
    Keyless signing: an OIDC identity (an explicit token, or the ambient credentials of the CI
    or workload) gets a short-lived certificate from Fulcio and the signature is logged in Rekor.
    Verifiers trust an identity and its OIDC issuer. Both sides need Sigstore's services (or a
    private instance's trust configuration); when they cannot be reached the error says so and
    is retryable (:class:`~airflow_mlops.exceptions.SigstoreUnavailableError`).

:class:`SigningIdentity` (the signer's material) and :class:`Trust` (the verifier's) hide secrets
from ``repr``: they can be logged. :func:`as_trust` and :func:`as_signer` accept a bare PEM key
too, for the ``key`` method.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import SignatureVerificationError, SigningError, SigstoreUnavailableError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "METHODS",
    "SigningIdentity",
    "Trust",
    "VerifiedSigner",
    "as_signer",
    "as_trust",
]

METHODS = ("key", "certificate", "sigstore")
SIGSTORE_PRODUCTION_ISSUER = "https://oauth2.sigstore.dev/auth"


def _as_bytes(value: bytes | str | None) -> bytes | None:
    if value is None:
        return None
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _check_method(method: str, error: type[Exception]) -> None:
    if method not in METHODS:
        raise error(f"unknown signing method {method!r}; use one of {', '.join(METHODS)}")


@dataclass(frozen=True, repr=False)
class SigningIdentity:
    """What signs: the material of one of the :data:`METHODS`.

    :ivar private_key_pem: ``key`` and ``certificate``: the PEM private key (EC).
    :ivar password: the private key's passphrase, if it is encrypted.
    :ivar certificate_pem: ``certificate``: the signing certificate (PEM).
    :ivar chain_pem: ``certificate``: the intermediate certificates (PEM, issuer of the signing
        certificate first); the root stays with the verifiers.
    :ivar identity_token: ``sigstore``: an OIDC identity token; None: the ambient credentials.
    :ivar oidc_issuer: ``sigstore``: the OIDC issuer to ask for a token (default: Sigstore's).
    :ivar staging: ``sigstore``: Sigstore's staging instance (tests only).
    :ivar trust_config: ``sigstore``: path to a private instance's client trust configuration.
    """

    method: str = "key"
    private_key_pem: bytes | None = None
    password: bytes | None = None
    certificate_pem: bytes | None = None
    chain_pem: bytes | None = None
    identity_token: str | None = None
    oidc_issuer: str | None = None
    staging: bool = False
    trust_config: str | None = None

    def __post_init__(self) -> None:
        _check_method(self.method, SigningError)
        if self.method in ("key", "certificate") and not self.private_key_pem:
            raise SigningError(
                f"signing method {self.method!r} needs a private key; put the PEM private key in the "
                "signing connection's password field"
            )
        if self.method == "certificate" and not self.certificate_pem:
            raise SigningError(
                "signing method 'certificate' needs the signing certificate (PEM); put it in the "
                "signing connection's extra `certificate`"
            )

    def __repr__(self) -> str:
        return f"SigningIdentity(method={self.method!r}, <redacted>)"


@dataclass(frozen=True, repr=False)
class Trust:
    """What a verifier trusts.

    :ivar public_key_pem: ``key``: the signer's PEM public key.
    :ivar ca_bundle_pem: ``certificate``: the root CA certificate(s), PEM.
    :ivar identity: ``certificate`` (optional): an identity the signing certificate must carry;
        ``sigstore`` (required): the identity the signature was made by (e.g. an e-mail, or a CI
        workflow URI).
    :ivar oidc_issuer: ``sigstore`` (required): the OIDC issuer of that identity.
    :ivar staging: ``sigstore``: Sigstore's staging instance (tests only).
    :ivar trust_config: ``sigstore``: path to a private instance's client trust configuration.
    """

    method: str = "key"
    public_key_pem: bytes | None = None
    ca_bundle_pem: bytes | None = None
    identity: str | None = None
    oidc_issuer: str | None = None
    staging: bool = False
    trust_config: str | None = None

    def __post_init__(self) -> None:
        _check_method(self.method, SignatureVerificationError)
        if self.method == "key" and not self.public_key_pem:
            raise SignatureVerificationError("verifying with method 'key' needs the trusted public key")
        if self.method == "certificate":
            if not self.ca_bundle_pem:
                raise SignatureVerificationError(
                    "verifying with method 'certificate' needs the trusted root CA bundle (PEM, the "
                    "signing connection's extra `ca_bundle`); the operating system's web roots are "
                    "never trusted for models"
                )
            load_certificates(self.ca_bundle_pem, "the trusted CA bundle", SignatureVerificationError)
        if self.method == "sigstore" and not (self.identity and self.oidc_issuer):
            raise SignatureVerificationError(
                "verifying with method 'sigstore' needs the signer's identity and its OIDC issuer "
                "(the signing connection's extra `identity` and `oidc_issuer`): without them any "
                "Sigstore signature would be accepted"
            )

    def __repr__(self) -> str:
        return f"Trust({self.describe()})"

    @property
    def fingerprint(self) -> str:
        """What identifies the trust anchor in logs and the audit trail (no secret)."""
        if self.method == "key":
            from airflow_mlops.security.keys import public_key_fingerprint

            return public_key_fingerprint(self.public_key_pem or b"")
        if self.method == "certificate":
            from cryptography.hazmat.primitives import serialization

            certs = load_certificates(self.ca_bundle_pem or b"", "the trusted CA bundle")
            digest = hashlib.sha256(
                b"".join(c.public_bytes(serialization.Encoding.DER) for c in certs)
            ).hexdigest()
            return f"ca:{digest}" + (f" identity:{self.identity}" if self.identity else "")
        return f"sigstore:{self.identity} issuer:{self.oidc_issuer}"

    def describe(self) -> str:
        if self.method == "key":
            return f"public key {self.fingerprint[:16]}..."
        if self.method == "certificate":
            return f"certificate chain to {self.fingerprint}"
        return f"Sigstore identity {self.identity} from {self.oidc_issuer}"


@dataclass(frozen=True)
class VerifiedSigner:
    """Who signed, once the signature verified (safe to log, to XCom, to the ML-BOM).

    :ivar fingerprint: sha256 of the signer's public key (``key``, ``certificate``), or the
        Sigstore identity and issuer.
    :ivar identity: the signing certificate's identities (``certificate``) or the Sigstore
        identity; None for ``key``.
    """

    method: str
    fingerprint: str
    identity: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def as_trust(value: Trust | bytes | str) -> Trust:
    """A :class:`Trust`; a bare PEM public key means the ``key`` method."""
    if isinstance(value, Trust):
        return value
    return Trust(method="key", public_key_pem=_as_bytes(value))


def as_signer(value: SigningIdentity | bytes | str, password: bytes | str | None = None) -> SigningIdentity:
    """A :class:`SigningIdentity`; a bare PEM private key means the ``key`` method."""
    if isinstance(value, SigningIdentity):
        return value
    return SigningIdentity(method="key", private_key_pem=_as_bytes(value), password=_as_bytes(password))


# --- certificates ---------------------------------------------------------------------------


def load_certificates(
    pem: bytes | str, what: str, error: type[Exception] = SignatureVerificationError
) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle; an empty or malformed bundle raises ``error``."""
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(_as_bytes(pem) or b"")
    except ValueError:
        certs = []
    if not certs:
        raise error(f"{what} holds no PEM certificate ('-----BEGIN CERTIFICATE-----')")
    return certs


def certificate_identities(cert: x509.Certificate) -> list[str]:
    """The identities a certificate carries: SAN e-mails, URIs and DNS names, then the subject CN."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        for kind in (x509.RFC822Name, x509.UniformResourceIdentifier, x509.DNSName):
            names.extend(str(v) for v in san.get_values_for_type(kind))
    except x509.ExtensionNotFound:
        pass
    names.extend(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    return names


def can_sign(cert: x509.Certificate) -> bool:
    """The certificate's key usage allows digital signatures (or its EKU allows code signing)."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        if cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return True
    except x509.ExtensionNotFound:
        pass
    try:
        return (
            ExtendedKeyUsageOID.CODE_SIGNING
            in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        )
    except x509.ExtensionNotFound:
        return False


def check_signing_certificate(signer: SigningIdentity, key: ec.EllipticCurvePrivateKey) -> None:
    """Refuse to sign with a certificate that is not the key's, not valid now, or not for signing."""
    cert = load_certificates(signer.certificate_pem or b"", "the signing certificate", SigningError)[0]
    if signer.chain_pem:
        load_certificates(signer.chain_pem, "the certificate chain", SigningError)
    if cert.public_key() != key.public_key():
        raise SigningError(
            "the signing certificate does not belong to the private key (their public keys differ); "
            "put the certificate issued for this key in the connection's extra `certificate`"
        )
    now = datetime.now(UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise SigningError(
            f"the signing certificate is not valid now: valid from {cert.not_valid_before_utc:%Y-%m-%d} "
            f"to {cert.not_valid_after_utc:%Y-%m-%d}; renew it"
        )
    if not can_sign(cert):
        raise SigningError(
            "the signing certificate's key usage does not allow signing (needs digitalSignature, or "
            "the codeSigning extended key usage)"
        )


def check_identity(trust: Trust, identities: list[str], what: str) -> str | None:
    """The identities joined; raises when ``trust.identity`` is set and not among them."""
    if trust.identity and trust.identity not in identities:
        raise SignatureVerificationError(
            f"{what} was signed by {', '.join(identities) or 'a certificate with no identity'}, not by "
            f"the trusted identity {trust.identity}"
        )
    return ", ".join(identities) or None


def verify_certificate_chain(
    chain_der: list[bytes], trust: Trust, *, what: str
) -> tuple[ec.EllipticCurvePublicKey, str | None]:
    """Check a signing certificate (first) and its intermediates against the trusted roots.

    The chain is checked as of the signing certificate's start of validity, as OpenSSF model
    signing checks the model's signature, so both verify alike.

    :returns: the signing certificate's public key and its identities.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from OpenSSL import crypto

    if not chain_der:
        raise SignatureVerificationError(f"{what} carries no signing certificate")
    try:
        certs = [x509.load_der_x509_certificate(der) for der in chain_der]
    except ValueError as exc:
        raise SignatureVerificationError(f"{what} carries a malformed certificate: {exc}") from None
    store = crypto.X509Store()
    for root in load_certificates(trust.ca_bundle_pem or b"", "the trusted CA bundle"):
        store.add_cert(crypto.X509.from_cryptography(root))
    leaf = certs[0]
    store.set_time(leaf.not_valid_before_utc.replace(tzinfo=None))
    context = crypto.X509StoreContext(
        store,
        crypto.X509.from_cryptography(leaf),
        [crypto.X509.from_cryptography(c) for c in certs[1:]],
    )
    try:
        context.verify_certificate()
    except crypto.X509StoreContextError as exc:
        raise SignatureVerificationError(
            f"{what}'s signing certificate does not chain to the trusted CA ({trust.fingerprint}): {exc}"
        ) from None
    if not can_sign(leaf):
        raise SignatureVerificationError(f"{what}'s signing certificate is not allowed to sign")
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureVerificationError(f"{what}'s signing certificate does not hold an EC key")
    return key, check_identity(trust, certificate_identities(leaf), what)


def bundle_certificate_chain(bundle: dict[str, Any]) -> list[bytes]:
    """The DER certificates of a Sigstore bundle's ``x509CertificateChain`` (signing one first)."""
    material = bundle.get("verificationMaterial") or {}
    entries = (material.get("x509CertificateChain") or {}).get("certificates") or []
    if not entries and material.get("certificate"):
        entries = [material["certificate"]]
    out = []
    for entry in entries:
        raw = base64.b64decode(entry["rawBytes"])
        # model_signing base64-encodes the DER itself before the JSON encoding does it again
        if not raw.startswith(b"\x30"):
            raw = base64.b64decode(raw)
        out.append(raw)
    return out


# --- Sigstore -------------------------------------------------------------------------------


def _is_unreachable(exc: BaseException) -> bool:
    """A network failure (or TUF's wrapping of one), as opposed to a bad signature."""
    import requests
    from sigstore.errors import TUFError

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(
            exc, (TUFError, requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)
        ):
            return True
        name = type(exc).__name__
        if name in ("NetworkError", "SlowRetrievalError", "DownloadError", "FetcherHTTPError"):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def sigstore_unavailable(
    exc: BaseException, doing: str, trust_config: str | None
) -> SigstoreUnavailableError:
    where = f"the instance in {trust_config}" if trust_config else "Sigstore's public services"
    return SigstoreUnavailableError(
        f"{doing} needs {where} (the TUF trust root, Fulcio, Rekor and the OIDC issuer), which cannot be "
        f"reached from this worker ({type(exc).__name__}: {str(exc)[:200]}). Sigstore needs network "
        "access to them; on an offline network use the `key` or `certificate` method, or a private Sigstore "
        "instance's trust configuration (extra `trust_config`). A retry may succeed once they are reachable"
    )


def sigstore_client_config(staging: bool, trust_config: str | None, doing: str) -> Any:
    """Sigstore's client trust configuration (production, staging or a private instance's)."""
    from sigstore.models import ClientTrustConfig

    try:
        if trust_config:
            with open(trust_config, encoding="utf-8") as fh:
                return ClientTrustConfig.from_json(fh.read())
        return ClientTrustConfig.staging() if staging else ClientTrustConfig.production()
    except OSError as exc:
        raise SignatureVerificationError(f"Sigstore trust configuration {trust_config}: {exc}") from None
    except Exception as exc:
        if _is_unreachable(exc):
            raise sigstore_unavailable(exc, doing, trust_config) from None
        raise


def sigstore_identity_token(signer: SigningIdentity) -> Any:
    """The OIDC token: the explicit one, else the ambient credentials; never an interactive flow."""
    from sigstore.oidc import IdentityToken, detect_credential

    raw = signer.identity_token
    if not raw:
        try:
            raw = detect_credential()
        except Exception as exc:
            raise SigningError(f"Sigstore could not read the ambient OIDC credentials: {exc}") from None
    if not raw:
        raise SigningError(
            "Sigstore keyless signing needs an OIDC identity token: none was given (the signing "
            "connection's password) and no ambient credentials were found (e.g. a CI workload identity)"
        )
    try:
        return IdentityToken(raw)
    except Exception as exc:
        raise SigningError(f"the Sigstore identity token is not a valid OIDC token: {exc}") from None


def statement_payload(bundle: dict[str, Any]) -> dict[str, Any]:
    """The in-toto statement inside a (verified) bundle's DSSE envelope."""
    return dict(load_signed_json(base64.b64decode(bundle["dsseEnvelope"]["payload"]), "signed statement"))


# --- bounded parsing of signature files -----------------------------------------------------------

#: The deepest nesting a signature file, bundle or statement may have (real ones nest < 10 deep).
MAX_JSON_DEPTH = 64
#: The largest signature file or statement parsed (a signature of many files is a few MB).
MAX_SIGNED_JSON_BYTES = 64 * 1024 * 1024
#: The longest integer a signed document may hold (Python's own limit is 4300 digits).
MAX_JSON_INT_DIGITS = 1000
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKETS = re.compile(rb"[\[\]{}]")


def _too_deep(data: bytes, limit: int) -> bool:
    """Whether the JSON text ``data`` nests containers deeper than ``limit`` (strings skipped)."""
    depth = 0
    for bracket in _JSON_BRACKETS.findall(_JSON_STRING.sub(b'""', data)):
        if bracket in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def load_signed_json(data: bytes | str, what: str) -> Any:
    """Parse a signature file, bundle, envelope or statement, bounded; fail closed.

    Untrusted input: its size and nesting depth are checked before it is parsed, so a file
    nested 100,000 deep is a verification failure with a message, never a ``RecursionError``.

    :raises SignatureVerificationError: too big, nested too deep, or not JSON.
    """
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_SIGNED_JSON_BYTES:
        raise SignatureVerificationError(
            f"the {what} is {len(raw)} bytes, more than the {MAX_SIGNED_JSON_BYTES} a signature may have; "
            "it is not a signature this project wrote"
        )
    if _too_deep(raw, MAX_JSON_DEPTH):
        raise SignatureVerificationError(
            f"the {what} nests JSON deeper than {MAX_JSON_DEPTH} levels; it is malformed (not a "
            "signature this project wrote) and is not verified"
        )
    try:
        return strict_json_loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SignatureVerificationError(
            f"the {what} is malformed: it is not JSON ({str(exc)[:200]})"
        ) from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key[:80]!r} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits (at most {MAX_JSON_INT_DIGITS})")
    return int(text)


def strict_json_loads(data: bytes | str) -> Any:
    """JSON as RFC 8259 means it, for documents whose meaning must not depend on the parser: a
    key twice in one object, ``NaN``/``Infinity`` and integers of more than
    :data:`MAX_JSON_INT_DIGITS` digits are errors (``ValueError``), never silently read one way.
    Bytes must be UTF-8 (``UnicodeDecodeError``). The caller bounds size and depth."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    return json.loads(
        text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant, parse_int=_bounded_int
    )


def read_limited(
    path: Any, limit: int, what: str, error: type[Exception] = SignatureVerificationError
) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them; never blocks on a FIFO
    or reads a device without end.

    :raises error: not a regular file, unreadable, or larger than ``limit`` (messages name ``what``).
    """
    import os
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"the {what} cannot be read: {exc.strerror or type(exc).__name__}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"the {what} is not a regular file")
        if st.st_size > limit:
            raise error(f"the {what} is {st.st_size} bytes, more than the {limit} it may have")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise error(f"the {what} is more than the {limit} bytes it may have")
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"the {what} cannot be read: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)


def check_json_depth(value: Any, what: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Fail closed when an already-parsed signature document nests deeper than ``limit``.

    :raises SignatureVerificationError: it does.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            if depth + 1 > limit:
                raise SignatureVerificationError(
                    f"the {what} nests deeper than {limit} levels; it is malformed and is not verified"
                )
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
