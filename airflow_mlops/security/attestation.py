"""Signed in-toto attestations about a model: the evaluation (the gates' verdict) and the ML-BOM.

An attestation is an `in-toto Statement v1 <https://github.com/in-toto/attestation>`_ whose
subject is the model (its manifest digest: the sha256 of the sorted ``path sha256`` lines of every
file, as :func:`airflow_mlops.artifacts.sha256_directory` computes it), wrapped in a DSSE envelope
signed with the pipeline's signing key (ECDSA P-256, SHA-256; the same key that signs the model
files). Two predicates:

- :data:`EVALUATION_PREDICATE`: the blessing (verdict, champion compared with), every gate with its
  measured value and threshold, the metrics, the operating thresholds and the holdout it was
  measured on, the model judged (task, flavor, format, framework and classes), and why the run
  that made it trained (``retrain_reason``: the drift or new-data events that started it, or
  schedule / manual / backfill). Promotion trusts the verdict only from a verified attestation.
- :data:`CYCLONEDX_PREDICATE`: the model's ML-BOM (see :mod:`airflow_mlops.security.mlbom`).

Verification fails closed and says why: a malformed envelope, a signature from another key (or a
changed payload), a statement about another digest, another predicate type.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.exceptions import SignatureVerificationError, SigningError

if TYPE_CHECKING:
    from airflow_mlops.security.trust import SigningIdentity, Trust

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
EVALUATION_PREDICATE = "urn:airflow-mlops:predicate:evaluation:v1"
CYCLONEDX_PREDICATE = "https://cyclonedx.org/bom"
SUBJECT_NAME = "model"


def statement(model_sha256: str, predicate_type: str, predicate: Mapping[str, Any]) -> dict[str, Any]:
    """An in-toto Statement v1 about the model with this manifest digest."""
    if len(model_sha256) != 64:
        raise ValueError(f"not a sha256 digest: {model_sha256!r}")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": SUBJECT_NAME, "digest": {"sha256": model_sha256}}],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }


def _pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what the signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign_statement(
    stmt: Mapping[str, Any], signer: SigningIdentity | bytes, *, password: bytes | None = None
) -> dict[str, Any]:
    """``stmt`` signed by ``signer`` (a :class:`~airflow_mlops.security.trust.SigningIdentity`,
    or a bare PEM private key for the ``key`` method).

    - ``key``: a DSSE envelope, the key's fingerprint as ``keyid``.
    - ``certificate``: the same, and the signature entry carries the signing certificate and the
      intermediates (``certificates``: base64 DER, signing certificate first).
    - ``sigstore``: a Sigstore bundle (JSON) holding the DSSE envelope, its Fulcio certificate and
      its Rekor entry.
    """
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from airflow_mlops.security.keys import load_private_key, public_key_fingerprint, public_key_pem
    from airflow_mlops.security.trust import as_signer, check_signing_certificate, load_certificates

    identity = as_signer(signer, password)
    payload = json.dumps(dict(stmt), sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    if identity.method == "sigstore":
        return _sigstore_sign(payload, identity)
    key = load_private_key(identity.private_key_pem or b"", identity.password)
    entry: dict[str, Any] = {"keyid": public_key_fingerprint(public_key_pem(key.public_key()))}
    if identity.method == "certificate":
        check_signing_certificate(identity, key)
        certs = load_certificates(identity.certificate_pem or b"", "the signing certificate")[:1]
        if identity.chain_pem:
            certs += load_certificates(identity.chain_pem, "the certificate chain")
        entry["certificates"] = [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in certs
        ]
    entry["sig"] = base64.b64encode(key.sign(_pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))).decode()
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [entry],
    }


def _sigstore_sign(payload: bytes, identity: SigningIdentity) -> dict[str, Any]:
    """A Sigstore bundle of the statement (keyless: a Fulcio certificate, a Rekor entry)."""
    from sigstore import dsse
    from sigstore.sign import SigningContext

    from airflow_mlops.security.trust import (
        _is_unreachable,
        sigstore_client_config,
        sigstore_identity_token,
        sigstore_unavailable,
    )

    config = sigstore_client_config(identity.staging, identity.trust_config, "Sigstore keyless signing")
    token = sigstore_identity_token(identity)
    try:
        context = SigningContext.from_trust_config(config)
        with context.signer(token) as signer:
            bundle = signer.sign_dsse(dsse.Statement(payload))
    except Exception as exc:
        if _is_unreachable(exc):
            raise sigstore_unavailable(exc, "Sigstore keyless signing", identity.trust_config) from None
        raise SigningError(
            f"Sigstore keyless signing of an attestation failed: {type(exc).__name__}"
        ) from None
    return dict(json.loads(bundle.to_json()))


@dataclass(frozen=True)
class VerifiedStatement:
    """A statement whose envelope verified against the trusted key."""

    predicate_type: str
    model_sha256: str
    predicate: Mapping[str, Any]
    keyid: str


def verify_envelope(
    envelope: Any,
    trust: Trust | bytes,
    *,
    model_sha256: str,
    predicate_type: str,
    what: str = "attestation",
) -> VerifiedStatement:
    """Verify an attestation (a DSSE envelope, or a Sigstore bundle) and its statement; fail closed.

    ``trust`` is a :class:`~airflow_mlops.security.trust.Trust`, or a bare PEM public key.

    :raises SignatureVerificationError: malformed, not signed by a signer ``trust`` accepts,
        about another model digest, or of another predicate type; the message says which.
    """
    from airflow_mlops.security.trust import as_trust, check_json_depth, load_signed_json

    trusted = as_trust(trust)
    if isinstance(envelope, (bytes, str)):
        envelope = load_signed_json(envelope, what)
    else:
        check_json_depth(envelope, what)
    if trusted.method == "sigstore":
        payload_type, payload, fingerprint = _sigstore_verify(envelope, trusted, what)
    else:
        payload_type, payload, fingerprint = _dsse_verify(envelope, trusted, what)
    if payload_type != PAYLOAD_TYPE:
        raise SignatureVerificationError(f"the {what} has payloadType {payload_type!r}, not {PAYLOAD_TYPE}")
    stmt = load_signed_json(payload, f"{what}'s statement")
    try:
        subject_digests = [s["digest"]["sha256"] for s in stmt["subject"]]
        kind = stmt["predicateType"]
        predicate = stmt["predicate"]
        stmt_type = stmt["_type"]
    except (KeyError, TypeError, ValueError) as exc:
        raise SignatureVerificationError(f"the {what}'s statement is malformed ({exc})") from None
    if stmt_type != STATEMENT_TYPE:
        raise SignatureVerificationError(f"the {what} is a {stmt_type!r}, not an in-toto Statement v1")
    if kind != predicate_type:
        raise SignatureVerificationError(f"the {what} is of predicate type {kind!r}, not {predicate_type!r}")
    if model_sha256 not in subject_digests:
        raise SignatureVerificationError(
            f"the {what} is about model digest {', '.join(subject_digests) or 'none'}, not {model_sha256}: "
            "it belongs to another model"
        )
    if not isinstance(predicate, dict):
        raise SignatureVerificationError(f"the {what}'s predicate is not an object")
    return VerifiedStatement(kind, model_sha256, predicate, fingerprint)


def _dsse_verify(envelope: Any, trust: Trust, what: str) -> tuple[str, bytes, str]:
    """Check a DSSE envelope's signature with the trusted key, or a certificate chained to the CA."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from airflow_mlops.security.keys import load_public_key, public_key_fingerprint, public_key_pem
    from airflow_mlops.security.trust import verify_certificate_chain

    try:
        payload_type = envelope["payloadType"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = list(envelope["signatures"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SignatureVerificationError(
            f"the {what} is not a DSSE envelope ({type(exc).__name__}: {exc})"
        ) from None
    if payload_type != PAYLOAD_TYPE:
        raise SignatureVerificationError(f"the {what} has payloadType {payload_type!r}, not {PAYLOAD_TYPE}")
    if trust.method == "key":
        keys = [load_public_key(trust.public_key_pem or b"")] * len(signatures)
    else:
        keys = []
        for entry in signatures:
            try:
                chain = [base64.b64decode(c, validate=True) for c in entry["certificates"]]
            except (KeyError, TypeError, ValueError):
                raise SignatureVerificationError(
                    f"the {what} carries no certificate chain: it was not signed with the certificate "
                    "method (a key signature does not verify against a CA)"
                ) from None
            keys.append(verify_certificate_chain(chain, trust, what=f"the {what}")[0])
    for entry, key in zip(signatures, keys, strict=True):
        try:
            sig = base64.b64decode(entry["sig"], validate=True)
            key.verify(sig, _pae(str(payload_type), payload), ec.ECDSA(hashes.SHA256()))
        except (KeyError, TypeError, ValueError, InvalidSignature):
            continue
        return str(payload_type), payload, public_key_fingerprint(public_key_pem(key))
    raise SignatureVerificationError(
        f"the {what} is not signed by the trusted {trust.describe()} (its signature was made with "
        f"another key, or its content changed after signing)"
    )


def _sigstore_verify(bundle: Any, trust: Trust, what: str) -> tuple[str, bytes, str]:
    """Check a Sigstore bundle against the trusted identity and issuer (and Sigstore's trust root)."""
    from sigstore.models import Bundle
    from sigstore.verify import Verifier, policy

    from airflow_mlops.security.trust import _is_unreachable, sigstore_client_config, sigstore_unavailable

    config = sigstore_client_config(trust.staging, trust.trust_config, f"verifying the {what}")
    try:
        parsed = Bundle.from_json(json.dumps(bundle))
    except Exception as exc:
        raise SignatureVerificationError(
            f"the {what} is not a Sigstore bundle ({type(exc).__name__})"
        ) from None
    try:
        verifier = Verifier(trusted_root=config.trusted_root)
        payload_type, payload = verifier.verify_dsse(
            parsed, policy.Identity(identity=trust.identity or "", issuer=trust.oidc_issuer or "")
        )
    except Exception as exc:
        if _is_unreachable(exc):
            raise sigstore_unavailable(exc, f"verifying the {what}", trust.trust_config) from None
        raise SignatureVerificationError(
            f"the {what} does not verify for the trusted {trust.describe()}: {str(exc)[:300]}"
        ) from None
    return str(payload_type), bytes(payload), trust.fingerprint


def evaluation_predicate(
    evaluation: Mapping[str, Any],
    blessing: Mapping[str, Any],
    model: Mapping[str, Any] | None = None,
    retrain_reason: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The evaluation predicate: the blessing and what it rests on (from ``evaluation.json``).

    :param model: what the model is (:func:`airflow_mlops.security.mlbom.model_facts` of its
        ``model_config.json``): its task, flavor, format, framework and classes.
    :param retrain_reason: why the run that made the model trained
        (:func:`airflow_mlops.retrain.reason.retrain_reason`: the drift or new-data events, or
        schedule / manual / backfill), as ``retrain_reason``: the signature covers it.
    """
    gates = (evaluation.get("gates") or {}).get("gates") or []
    facts = dict(model or {})
    return {
        "task": evaluation.get("task") or facts.get("task"),
        **({"model": facts} if facts else {}),
        "blessing": dict(blessing),
        "passed": bool(evaluation.get("passed")),
        "note": evaluation.get("note"),
        "gates": [
            {
                "name": g.get("name"),
                "kind": g.get("kind"),
                "metric": g.get("metric"),
                "value": g.get("value"),
                "threshold": g.get("threshold"),
                "passed": g.get("passed"),
            }
            for g in gates
        ],
        "metrics": dict(evaluation.get("metrics") or {}),
        "champion_version": evaluation.get("champion_version"),
        "champion_metrics": evaluation.get("champion_metrics"),
        "operating_threshold": evaluation.get("threshold"),
        "champion_threshold": evaluation.get("champion_threshold"),
        "holdout": {"rows": evaluation.get("holdout_rows"), "positive_rows": evaluation.get("positive_rows")},
        **({"retrain_reason": dict(retrain_reason)} if retrain_reason else {}),
    }
