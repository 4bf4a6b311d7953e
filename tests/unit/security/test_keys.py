"""EC key pairs and their fingerprints (airflow_mlops.security.keys)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization

from airflow_mlops.exceptions import SignatureVerificationError, SigningError
from airflow_mlops.security.keys import generate_key_pair, public_key_fingerprint, public_key_from_private


def test_generate_key_pair_returns_p256_pkcs8_and_spki() -> None:
    private_pem, public_pem = generate_key_pair()

    assert private_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    key = serialization.load_pem_private_key(private_pem, password=None)
    assert key.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert public_key_from_private(private_pem) == public_pem


def test_encrypted_key_pair_needs_its_password() -> None:
    private_pem, public_pem = generate_key_pair(password=b"s3cret-pass")

    assert private_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert public_key_from_private(private_pem, password=b"s3cret-pass") == public_pem
    with pytest.raises(SigningError, match="no password was given"):
        public_key_from_private(private_pem)
    with pytest.raises(SigningError, match="password") as excinfo:
        public_key_from_private(private_pem, password=b"wrong-password")
    assert "wrong-password" not in str(excinfo.value)


def test_public_key_fingerprint_is_sha256_of_der_and_ignores_pem_layout(keys: tuple[bytes, bytes]) -> None:
    _, public_pem = keys
    der = serialization.load_pem_public_key(public_pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    fingerprint = public_key_fingerprint(public_pem)

    assert fingerprint == hashlib.sha256(der).hexdigest()
    assert public_key_fingerprint(public_pem.decode() + "\n\n") == fingerprint
    assert fingerprint != public_key_fingerprint(generate_key_pair()[1])
    with pytest.raises(SignatureVerificationError, match="PEM"):
        public_key_fingerprint(b"not a key")
