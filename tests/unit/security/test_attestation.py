"""Signed in-toto attestations (DSSE) and their predicates (airflow_mlops.security.attestation)."""

from __future__ import annotations

import base64
import json

import pytest

from airflow_mlops.exceptions import SignatureVerificationError
from airflow_mlops.security.attestation import (
    CYCLONEDX_PREDICATE,
    EVALUATION_PREDICATE,
    PAYLOAD_TYPE,
    evaluation_predicate,
    sign_statement,
    statement,
    verify_envelope,
)
from airflow_mlops.security.mlbom import model_facts
from airflow_mlops.security.signing import generate_key_pair, public_key_fingerprint

DIGEST = "ab" * 32


def _envelope(keys, digest: str = DIGEST, predicate_type: str = EVALUATION_PREDICATE) -> dict:
    return sign_statement(statement(digest, predicate_type, {"blessing": {"passed": True}}), keys[0])


def test_the_statement_is_in_toto_v1_and_verifies_with_the_signing_key(keys) -> None:
    import google.protobuf.json_format as json_format
    from in_toto_attestation.v1 import statement as intoto

    envelope = _envelope(keys)
    assert envelope["payloadType"] == PAYLOAD_TYPE
    assert envelope["signatures"][0]["keyid"] == public_key_fingerprint(keys[1])
    payload = json.loads(base64.b64decode(envelope["payload"]))
    proto = intoto.spb.Statement()
    json_format.ParseDict(payload, proto)
    intoto.Statement.copy_from_pb(proto).validate()  # the reference implementation accepts it
    verified = verify_envelope(envelope, keys[1], model_sha256=DIGEST, predicate_type=EVALUATION_PREDICATE)
    assert verified.predicate == {"blessing": {"passed": True}} and verified.model_sha256 == DIGEST


def test_the_signature_covers_the_dsse_pre_authentication_encoding(keys) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    envelope = _envelope(keys)
    payload = base64.b64decode(envelope["payload"])
    # DSSE v1: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII decimal.
    pae = b"DSSEv1 " + str(len(PAYLOAD_TYPE)).encode() + b" " + PAYLOAD_TYPE.encode()
    pae += b" " + str(len(payload)).encode() + b" " + payload
    public = serialization.load_pem_public_key(keys[1])
    public.verify(base64.b64decode(envelope["signatures"][0]["sig"]), pae, ec.ECDSA(hashes.SHA256()))


def test_a_changed_payload_another_key_another_digest_or_type_fail(keys) -> None:
    envelope = _envelope(keys)
    forged = dict(envelope)
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["predicate"]["blessing"]["passed"] = False
    forged["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(SignatureVerificationError, match="not signed by the trusted public key"):
        verify_envelope(forged, keys[1], model_sha256=DIGEST, predicate_type=EVALUATION_PREDICATE)
    _, other_public = generate_key_pair()
    with pytest.raises(SignatureVerificationError, match="not signed by the trusted public key"):
        verify_envelope(envelope, other_public, model_sha256=DIGEST, predicate_type=EVALUATION_PREDICATE)
    with pytest.raises(SignatureVerificationError, match="belongs to another model"):
        verify_envelope(envelope, keys[1], model_sha256="cd" * 32, predicate_type=EVALUATION_PREDICATE)
    with pytest.raises(SignatureVerificationError, match="predicate type"):
        verify_envelope(envelope, keys[1], model_sha256=DIGEST, predicate_type=CYCLONEDX_PREDICATE)


@pytest.mark.parametrize(
    ("mangle", "fragment"),
    [
        (lambda e: "not json", "not JSON"),
        (lambda e: {**e, "payload": "%%%"}, "not a DSSE envelope"),
        (lambda e: {k: v for k, v in e.items() if k != "signatures"}, "not a DSSE envelope"),
        (lambda e: {**e, "signatures": [{"sig": e["signatures"][0]["sig"][:20]}]}, "not signed by"),
        (lambda e: {**e, "payloadType": "text/plain"}, "payloadType"),
    ],
)
def test_malformed_envelopes_fail_closed(keys, mangle, fragment: str) -> None:
    with pytest.raises(SignatureVerificationError, match=fragment):
        verify_envelope(
            mangle(_envelope(keys)), keys[1], model_sha256=DIGEST, predicate_type=EVALUATION_PREDICATE
        )


def test_the_evaluation_predicate_records_each_gate_with_value_and_threshold() -> None:
    evaluation = {
        "passed": True,
        "note": "compared with champion version 3",
        "metrics": {"roc_auc": 0.91},
        "threshold": 0.8,
        "gates": {
            "gates": [
                {
                    "name": "roc_auc.min",
                    "kind": "threshold",
                    "metric": "roc_auc",
                    "value": 0.91,
                    "threshold": 0.85,
                    "passed": True,
                    "reason": "ok",
                }
            ]
        },
    }
    predicate = evaluation_predicate(evaluation, {"model_sha256": DIGEST, "passed": True})
    assert predicate["gates"] == [
        {
            "name": "roc_auc.min",
            "kind": "threshold",
            "metric": "roc_auc",
            "value": 0.91,
            "threshold": 0.85,
            "passed": True,
        }
    ]
    assert predicate["blessing"]["model_sha256"] == DIGEST and predicate["operating_threshold"] == 0.8


def test_the_evaluation_attestation_says_the_task_and_the_model() -> None:
    facts = model_facts(
        {"flavor": "sklearn", "framework": {"name": "scikit-learn", "version": "1.9.1"}, "task": "regression"}
    )
    predicate = evaluation_predicate({"passed": True, "metrics": {"rmse": 2.0}}, {"passed": True}, facts)
    assert predicate["task"] == "regression"
    assert predicate["model"] == {
        "flavor": "sklearn",
        "format": "skops",
        "framework": {"name": "scikit-learn", "version": "1.9.1"},
        "task": "regression",
    }
    bare = evaluation_predicate({"passed": True, "task": "multiclass"}, {"passed": True})
    assert bare["task"] == "multiclass" and "model" not in bare


def test_deeply_nested_attestations_fail_closed_with_a_message(keys) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    nested: list = []
    node = nested
    for _ in range(100_000):  # built without recursion
        child: list = []
        node.append(child)
        node = child
    for envelope in (
        deep,
        deep.decode(),
        b'{"payload": ' + deep + b"}",
        {"payload": "x", "signatures": nested},
    ):
        with pytest.raises(SignatureVerificationError, match="deeper than"):
            verify_envelope(envelope, keys[1], model_sha256=DIGEST, predicate_type=EVALUATION_PREDICATE)


def test_a_deeply_nested_statement_signed_by_the_trusted_key_fails_closed(keys) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from airflow_mlops.security.attestation import _pae

    payload = b'{"_type": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    key = serialization.load_pem_private_key(keys[0], password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    sig = key.sign(_pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"sig": base64.b64encode(sig).decode()}],
    }
    with pytest.raises(SignatureVerificationError, match=r"statement .*deeper than"):
        verify_envelope(envelope, keys[1], model_sha256=DIGEST, predicate_type=EVALUATION_PREDICATE)


def test_the_retrain_reason_is_in_the_signed_predicate_and_tampering_with_it_breaks_verification(
    keys,
) -> None:
    reason = {"format": 1, "kind": "drift", "summary": "feature a drifted in window w", "event_count": 1}
    predicate = evaluation_predicate({"passed": True, "gates": {"gates": []}}, {"passed": True}, None, reason)
    assert predicate["retrain_reason"] == reason
    assert "retrain_reason" not in evaluation_predicate({}, {"passed": True})  # none given, none claimed
    envelope = sign_statement(statement(DIGEST, EVALUATION_PREDICATE, predicate), keys[0])
    verified = verify_envelope(envelope, keys[1], model_sha256=DIGEST, predicate_type=EVALUATION_PREDICATE)
    assert verified.predicate["retrain_reason"] == reason
    # Say another event caused it: the signature no longer verifies.
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["predicate"]["retrain_reason"]["kind"] = "schedule"
    forged = {
        **envelope,
        "payload": base64.b64encode(
            json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        ).decode(),
    }
    with pytest.raises(SignatureVerificationError, match="not signed by the trusted"):
        verify_envelope(forged, keys[1], model_sha256=DIGEST, predicate_type=EVALUATION_PREDICATE)
