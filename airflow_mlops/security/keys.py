"""Signing keys: ECDSA key pairs as PEM bytes, loaded and checked, and their fingerprints.

The key helpers :mod:`.signing` (model signatures), :mod:`.trust` (trust anchors),
:mod:`.attestation` (signed statements) and :mod:`.keygen` (key files) share. Key material is bytes
(from an Airflow connection or a file); errors never contain a key or a password.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from airflow_mlops.exceptions import SignatureVerificationError, SigningError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "SUPPORTED_CURVES",
    "generate_key_pair",
    "load_private_key",
    "load_public_key",
    "public_key_fingerprint",
    "public_key_from_private",
    "public_key_pem",
]

#: The elliptic curves a signing key may use (what ``model_signing`` accepts).
SUPPORTED_CURVES = ("secp256r1", "secp384r1", "secp521r1")


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def generate_key_pair(password: bytes | str | None = None) -> tuple[bytes, bytes]:
    """Generate an ECDSA P-256 signing key pair.

    Args:
        password: if given, the private key is encrypted with it (PKCS#8, best available
            encryption).

    Returns:
        ``(private_key_pem, public_key_pem)``: the private key as PKCS#8 PEM and the public key
        as SubjectPublicKeyInfo PEM. Store the private key in an Airflow connection or secrets
        backend; distribute the public key to whoever verifies.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(_as_bytes(password))
        if password
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return private_pem, public_key_pem(key.public_key())


def public_key_from_private(private_pem: bytes | str, password: bytes | str | None = None) -> bytes:
    """Derive the public key (SubjectPublicKeyInfo PEM) from a private key PEM.

    Raises:
        SigningError: the private key cannot be loaded (not PEM, wrong or missing password,
            not an elliptic-curve key on a supported curve). The message never contains the key.
    """
    return public_key_pem(load_private_key(private_pem, password).public_key())


def public_key_fingerprint(public_pem: bytes | str) -> str:
    """sha256 hex digest of a public key's DER SubjectPublicKeyInfo encoding.

    The fingerprint does not depend on PEM formatting (line breaks, trailing newlines).

    Raises:
        SignatureVerificationError: ``public_pem`` is not a PEM elliptic-curve public key.
    """
    from cryptography.hazmat.primitives import serialization

    return hashlib.sha256(
        load_public_key(public_pem).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).hexdigest()


def public_key_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(private_pem: bytes | str, password: bytes | str | None) -> ec.EllipticCurvePrivateKey:
    """Load and check a private key; errors never include the key or the password."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if not private_pem:
        raise SigningError("no private signing key was given; set it in the signing connection")
    try:
        key = serialization.load_pem_private_key(
            _as_bytes(private_pem), password=_as_bytes(password) if password else None
        )
    except TypeError:
        # cryptography says whether a password was expected; the reason carries no secret
        hint = (
            "the key is encrypted but no password was given"
            if not password
            else "a password was given but the key is not encrypted"
        )
        raise SigningError(f"the private signing key cannot be loaded: {hint}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SigningError(
            "the private signing key cannot be loaded: it is not a PEM private key, or the password "
            "is wrong; generate one with airflow_mlops.security.signing.generate_key_pair"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningError(
            f"the private signing key is a {type(key).__name__.lstrip('_')}, but model signing needs "
            "an elliptic-curve (ECDSA P-256/P-384/P-521) key"
        )
    if key.curve.name not in SUPPORTED_CURVES:
        raise SigningError(
            f"the private signing key uses curve {key.curve.name}; use one of {', '.join(SUPPORTED_CURVES)}"
        )
    return key


def load_public_key(public_pem: bytes | str) -> ec.EllipticCurvePublicKey:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_public_key(_as_bytes(public_pem))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SignatureVerificationError(
            "the trusted public key cannot be loaded: it must be a PEM 'PUBLIC KEY' "
            "(SubjectPublicKeyInfo), as returned by generate_key_pair"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in SUPPORTED_CURVES:
        raise SignatureVerificationError(
            "the trusted public key is not an elliptic-curve key on a supported curve "
            f"({', '.join(SUPPORTED_CURVES)})"
        )
    return key
