"""Signing methods beyond one key pair: an X.509 certificate chain, and Sigstore keyless.

A test PKI is built here (root CA -> intermediate -> signing certificate); Sigstore cannot be
reached from the test machine, which is exactly the case whose message is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from airflow_mlops.artifacts import sha256_directory
from airflow_mlops.exceptions import SignatureVerificationError, SigningError, SigstoreUnavailableError
from airflow_mlops.security.attestation import (
    EVALUATION_PREDICATE,
    sign_statement,
    statement,
    verify_envelope,
)
from airflow_mlops.security.signing import generate_key_pair, public_key_fingerprint, sign_model, verify_model
from airflow_mlops.security.trust import SigningIdentity, Trust
from tests.pki import IDENTITY, Pki, make_pki, pem


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    (model / "weights").mkdir(parents=True)
    (model / "weights" / "model.safetensors").write_bytes(b"\x01" * 4096)
    (model / "MLmodel").write_text("flavors: {}\n")
    return model


# --- certificate chain: the model's signature ---------------------------------------------------


def test_a_certificate_signature_verifies_against_the_root_and_names_the_signer(
    pki: Pki, model_dir: Path, tmp_path: Path
) -> None:
    signer = pki.signer()
    info = sign_model(model_dir, tmp_path / "model.sig", signer)
    verified = verify_model(model_dir, tmp_path / "model.sig", pki.trust(identity=IDENTITY))

    leaf_key = x509.load_pem_x509_certificate(signer.certificate_pem or b"").public_key()
    leaf_pub = leaf_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert info.method == verified.method == "certificate"
    assert info.public_key_fingerprint == verified.fingerprint == public_key_fingerprint(leaf_pub)
    assert verified.identity is not None and IDENTITY in verified.identity


@pytest.mark.parametrize(
    ("trust", "message"),
    [
        (lambda p: make_pki("Other").trust(), "does not chain to the trusted CA"),
        (lambda p: p.trust(identity="someone-else@example.org"), "not by the trusted identity"),
        (
            lambda p: Trust(method="key", public_key_pem=generate_key_pair()[1]),
            "made with the certificate method",
        ),
    ],
    ids=["other-ca", "other-identity", "a-key-instead"],
)
def test_a_certificate_signature_fails_for_another_trust(
    pki: Pki, model_dir: Path, tmp_path: Path, trust, message: str
) -> None:
    sign_model(model_dir, tmp_path / "model.sig", pki.signer())
    with pytest.raises(SignatureVerificationError, match=message):
        verify_model(model_dir, tmp_path / "model.sig", trust(pki))


def test_a_key_signature_does_not_verify_against_a_ca(pki: Pki, model_dir: Path, tmp_path: Path) -> None:
    sign_model(model_dir, tmp_path / "model.sig", generate_key_pair()[0])
    with pytest.raises(SignatureVerificationError, match="carries no certificate chain"):
        verify_model(model_dir, tmp_path / "model.sig", pki.trust())


def test_a_tampered_model_fails_naming_the_file(pki: Pki, model_dir: Path, tmp_path: Path) -> None:
    sign_model(model_dir, tmp_path / "model.sig", pki.signer())
    (model_dir / "weights" / "model.safetensors").write_bytes(b"\x02" * 4096)
    with pytest.raises(SignatureVerificationError, match=r"changed: weights/model\.safetensors"):
        verify_model(model_dir, tmp_path / "model.sig", pki.trust())


def test_a_chain_missing_its_intermediate_fails(pki: Pki, model_dir: Path, tmp_path: Path) -> None:
    private, cert = pki.leaf()
    signer = SigningIdentity(method="certificate", private_key_pem=private, certificate_pem=cert)
    sign_model(model_dir, tmp_path / "model.sig", signer)
    with pytest.raises(SignatureVerificationError, match="does not chain"):
        verify_model(model_dir, tmp_path / "model.sig", pki.trust())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"valid": (-30, -1)}, "not valid now"),
        ({"valid": (2, 30)}, "not valid now"),
        ({"sign": False}, "does not allow signing"),
    ],
    ids=["expired", "not-yet-valid", "no-signing-usage"],
)
def test_the_signer_refuses_a_certificate_it_must_not_use(
    pki: Pki, model_dir: Path, tmp_path: Path, change: dict, message: str
) -> None:
    with pytest.raises(SigningError, match=message):
        sign_model(model_dir, tmp_path / "model.sig", pki.signer(**change))
    assert not (tmp_path / "model.sig").exists()


def test_the_signer_refuses_a_certificate_of_another_key(pki: Pki, model_dir: Path, tmp_path: Path) -> None:
    _, cert = pki.leaf()
    other_private, _ = generate_key_pair()
    signer = SigningIdentity(method="certificate", private_key_pem=other_private, certificate_pem=cert)
    with pytest.raises(SigningError, match="does not belong to the private key"):
        sign_model(model_dir, tmp_path / "model.sig", signer)


def test_a_trust_without_ca_bundle_or_identity_is_refused() -> None:
    with pytest.raises(SignatureVerificationError, match="root CA bundle"):
        Trust(method="certificate")
    with pytest.raises(SignatureVerificationError, match="no PEM certificate"):
        Trust(method="certificate", ca_bundle_pem=b"not a certificate")
    with pytest.raises(SignatureVerificationError, match="identity and its OIDC issuer"):
        Trust(method="sigstore", identity=IDENTITY)


# --- certificate chain: attestations ------------------------------------------------------------


def test_a_certificate_signed_attestation_verifies_and_fails_closed(pki: Pki, model_dir: Path) -> None:
    digest = sha256_directory(model_dir)[0]
    envelope = sign_statement(statement(digest, EVALUATION_PREDICATE, {"passed": True}), pki.signer())
    verified = verify_envelope(
        envelope, pki.trust(identity=IDENTITY), model_sha256=digest, predicate_type=EVALUATION_PREDICATE
    )
    assert verified.predicate == {"passed": True}

    with pytest.raises(SignatureVerificationError, match="does not chain"):
        verify_envelope(
            envelope, make_pki("Other").trust(), model_sha256=digest, predicate_type=EVALUATION_PREDICATE
        )
    forged = json.loads(json.dumps(envelope))
    forged["signatures"][0]["certificates"] = [
        envelope["signatures"][0]["certificates"][0]
    ]  # no intermediate
    with pytest.raises(SignatureVerificationError, match="does not chain"):
        verify_envelope(forged, pki.trust(), model_sha256=digest, predicate_type=EVALUATION_PREDICATE)
    key_signed = sign_statement(statement(digest, EVALUATION_PREDICATE, {}), generate_key_pair()[0])
    with pytest.raises(SignatureVerificationError, match="no certificate chain"):
        verify_envelope(key_signed, pki.trust(), model_sha256=digest, predicate_type=EVALUATION_PREDICATE)


def test_an_attestation_signed_by_a_certificate_of_the_ca_for_another_payload_fails(
    pki: Pki, model_dir: Path
) -> None:
    """Swapping in a payload keeps a valid chain but breaks the signature."""
    import base64

    digest = sha256_directory(model_dir)[0]
    envelope = sign_statement(statement(digest, EVALUATION_PREDICATE, {"passed": False}), pki.signer())
    tampered = dict(envelope)
    tampered["payload"] = base64.b64encode(
        json.dumps(statement(digest, EVALUATION_PREDICATE, {"passed": True})).encode()
    ).decode()
    with pytest.raises(SignatureVerificationError, match="not signed by the trusted"):
        verify_envelope(tampered, pki.trust(), model_sha256=digest, predicate_type=EVALUATION_PREDICATE)


# --- Sigstore keyless: unreachable services -----------------------------------------------------


def test_sigstore_signing_says_its_services_cannot_be_reached(model_dir: Path, tmp_path: Path) -> None:
    signer = SigningIdentity(method="sigstore", identity_token="not-used-before-the-trust-root")
    with pytest.raises(SigstoreUnavailableError, match="cannot be reached") as excinfo:
        sign_model(model_dir, tmp_path / "model.sig", signer)
    assert excinfo.value.retryable and isinstance(excinfo.value, SigningError)
    assert "`key` or `certificate` method" in str(excinfo.value)
    assert not (tmp_path / "model.sig").exists()
    with pytest.raises(SigstoreUnavailableError, match="cannot be reached"):
        sign_statement(statement("0" * 64, EVALUATION_PREDICATE, {}), signer)


def test_sigstore_verification_that_cannot_reach_the_trust_root_blocks(
    model_dir: Path, tmp_path: Path
) -> None:
    sign_model(model_dir, tmp_path / "model.sig", generate_key_pair()[0])
    trust = Trust(method="sigstore", identity=IDENTITY, oidc_issuer="https://accounts.example.org")
    with pytest.raises(SignatureVerificationError, match="cannot be reached"):
        verify_model(model_dir, tmp_path / "model.sig", trust)
    with pytest.raises(SignatureVerificationError, match="cannot be reached"):
        verify_envelope({}, trust, model_sha256="0" * 64, predicate_type=EVALUATION_PREDICATE)


def test_a_private_sigstore_trust_config_that_is_missing_is_named(model_dir: Path, tmp_path: Path) -> None:
    trust = Trust(
        method="sigstore",
        identity=IDENTITY,
        oidc_issuer="https://id.example.org",
        trust_config="/nowhere.json",
    )
    sign_model(model_dir, tmp_path / "model.sig", generate_key_pair()[0])
    with pytest.raises(SignatureVerificationError, match=r"/nowhere\.json"):
        verify_model(model_dir, tmp_path / "model.sig", trust)


# --- secrets stay out of reprs, messages and the CLI's output --------------------------------------


def test_reprs_and_errors_never_show_key_material(pki: Pki, model_dir: Path, tmp_path: Path) -> None:
    signer = pki.signer()
    body = (signer.private_key_pem or b"").decode().splitlines()[1]
    assert body not in repr(signer) and "PRIVATE" not in repr(signer)
    token_signer = SigningIdentity(method="sigstore", identity_token="eyJhbGciOi.secret-token.sig")
    assert "secret-token" not in repr(token_signer)
    with pytest.raises(SigstoreUnavailableError) as excinfo:
        sign_model(model_dir, tmp_path / "x.sig", token_signer)
    assert "secret-token" not in str(excinfo.value)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_mlops.cli", "model", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_signs_with_a_certificate_and_verifies_against_the_ca(
    pki: Pki, model_dir: Path, tmp_path: Path
) -> None:
    private, cert = pki.leaf()
    files = {
        "key.pem": private,
        "cert.pem": cert,
        "chain.pem": pem(pki.intermediate[0]),
        "root.pem": pem(pki.root),
        "other.pem": pem(make_pki("Other").root),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    sig = str(tmp_path / "m.sig")
    signed = _cli(
        "sign", str(model_dir), "--private-key", str(tmp_path / "key.pem"), "--certificate",
        str(tmp_path / "cert.pem"), "--certificate-chain", str(tmp_path / "chain.pem"), "--signature", sig,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    assert (
        "certificate" in signed.stdout
        and private.decode().splitlines()[1] not in signed.stdout + signed.stderr
    )

    ok = _cli(
        "verify",
        str(model_dir),
        "--signature",
        sig,
        "--ca-bundle",
        str(tmp_path / "root.pem"),
        "--identity",
        IDENTITY,
    )
    assert ok.returncode == 0, ok.stderr
    assert IDENTITY in ok.stdout
    bad = _cli("verify", str(model_dir), "--signature", sig, "--ca-bundle", str(tmp_path / "other.pem"))
    assert bad.returncode == 1 and "does not chain to the trusted CA" in bad.stderr
    both = _cli(
        "verify", str(model_dir), "--signature", sig, "--ca-bundle", str(tmp_path / "root.pem"),
        "--public-key", str(tmp_path / "root.pem"),
    )  # fmt: skip
    assert both.returncode != 0 and "one of" in both.stderr


def test_signature_json_is_parsed_bounded() -> None:
    import base64

    from airflow_mlops.security.trust import check_json_depth, load_signed_json, statement_payload

    assert load_signed_json(b'{"a": "[[[[[[[[", "b": [[1]]}', "bundle") == {"a": "[[[[[[[[", "b": [[1]]}
    for bad, fragment in (
        (b"[" * 100_000 + b"]" * 100_000, "deeper than"),
        (b'{"x": "\\"' + b"{" * 100_000, "deeper than"),  # an escaped quote does not hide brackets
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
    ):
        with pytest.raises(SignatureVerificationError, match=fragment):
            load_signed_json(bad, "signature file")
    deep = base64.b64encode(b"{" * 50_000 + b"}" * 50_000).decode()
    with pytest.raises(SignatureVerificationError, match="deeper than"):
        statement_payload({"dsseEnvelope": {"payload": deep}})
    value: dict = {}
    node = value
    for _ in range(200):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(SignatureVerificationError, match="deeper than"):
        check_json_depth(value, "envelope")
    check_json_depth({"a": [{"b": [1, 2]}]}, "envelope")
