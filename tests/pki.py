"""A test PKI: a root CA, an intermediate, and signing certificates they issue (EC P-256)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from airflow_mlops.security.trust import SigningIdentity, Trust

IDENTITY = "ml-pipeline@example.org"


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=not sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
    sign: bool = True,
    valid: tuple[int, int] = (-1, 30),
    email: str | None = None,
) -> x509.Certificate:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + timedelta(days=valid[0]))
        .not_valid_after(now + timedelta(days=valid[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_usage(sign=sign, ca=ca), critical=True)
    )
    if email:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


@dataclass
class Pki:
    root: x509.Certificate
    intermediate: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]

    def leaf(self, **kwargs: object) -> tuple[bytes, bytes]:
        """(private key PEM, certificate PEM) issued by the intermediate."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert("ml-pipeline", key, self.intermediate, ca=False, email=IDENTITY, **kwargs)  # type: ignore[arg-type]
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return private, pem(cert)

    def signer(self, **kwargs: object) -> SigningIdentity:
        private, cert = self.leaf(**kwargs)
        return SigningIdentity(
            method="certificate",
            private_key_pem=private,
            certificate_pem=cert,
            chain_pem=pem(self.intermediate[0]),
        )

    def trust(self, identity: str | None = None) -> Trust:
        return Trust(method="certificate", ca_bundle_pem=pem(self.root), identity=identity)


def make_pki(name: str = "Root") -> Pki:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert(f"{name} CA", root_key, None, ca=True, valid=(-2, 3650))
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _cert(f"{name} Intermediate", inter_key, (root, root_key), ca=True, valid=(-2, 365))
    return Pki(root, (inter, inter_key))
