"""Signed in-toto attestations about a model: the evaluation (the gates' verdict) and the ML-BOM.

An attestation is an `in-toto Statement v1 <https://github.com/in-toto/attestation>`_ whose
subject is the model (its manifest digest: the sha256 of the sorted ``path sha256`` lines of every
file, as :func:`airflow_mlops.artifacts.sha256_directory` computes it), wrapped in a DSSE envelope
signed with the pipeline's signing key (ECDSA P-256, SHA-256; the same key that signs the model
files). Two predicates:

- :data:`EVALUATION_PREDICATE`: the blessing (verdict, champion compared with), every gate with its
  measured value and threshold, the metrics, the operating thresholds and the holdout it was
  measured on. Promotion trusts the verdict only from a verified attestation.
- :data:`CYCLONEDX_PREDICATE`: the model's ML-BOM (see :mod:`airflow_mlops.security.mlbom`).

Verification fails closed and says why: a malformed envelope, a signature from another key (or a
changed payload), a statement about another digest, another predicate type.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_mlops.exceptions import SignatureVerificationError

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
    stmt: Mapping[str, Any], private_key_pem: bytes, *, password: bytes | None = None
) -> dict[str, Any]:
    """A DSSE envelope of ``stmt`` signed with the private key (its fingerprint as ``keyid``)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from airflow_mlops.security.signing import _load_private_key, _public_pem, public_key_fingerprint

    key = _load_private_key(private_key_pem, password)
    payload = json.dumps(dict(stmt), sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    signature = key.sign(_pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [
            {
                "keyid": public_key_fingerprint(_public_pem(key.public_key())),
                "sig": base64.b64encode(signature).decode(),
            }
        ],
    }


@dataclass(frozen=True)
class VerifiedStatement:
    """A statement whose envelope verified against the trusted key."""

    predicate_type: str
    model_sha256: str
    predicate: Mapping[str, Any]
    keyid: str


def verify_envelope(
    envelope: Any,
    public_key_pem: bytes,
    *,
    model_sha256: str,
    predicate_type: str,
    what: str = "attestation",
) -> VerifiedStatement:
    """Verify a DSSE envelope and its statement; fail closed.

    :raises SignatureVerificationError: malformed, not signed by this key, about another model
        digest, or of another predicate type; the message says which.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from airflow_mlops.security.signing import _load_public_key, public_key_fingerprint

    if isinstance(envelope, (bytes, str)):
        try:
            envelope = json.loads(envelope)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SignatureVerificationError(f"the {what} is not JSON: {exc}") from None
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
    key = _load_public_key(public_key_pem)
    fingerprint = public_key_fingerprint(public_key_pem)
    verified = False
    for entry in signatures:
        try:
            sig = base64.b64decode(entry["sig"], validate=True)
            key.verify(sig, _pae(payload_type, payload), ec.ECDSA(hashes.SHA256()))
        except (KeyError, TypeError, ValueError, InvalidSignature):
            continue
        verified = True
        break
    if not verified:
        raise SignatureVerificationError(
            f"the {what} is not signed by the trusted key {fingerprint} (its signature was made with "
            f"another key, or its content changed after signing)"
        )
    try:
        stmt = json.loads(payload)
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


def evaluation_predicate(evaluation: Mapping[str, Any], blessing: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluation predicate: the blessing and what it rests on (from ``evaluation.json``)."""
    gates = (evaluation.get("gates") or {}).get("gates") or []
    return {
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
    }
