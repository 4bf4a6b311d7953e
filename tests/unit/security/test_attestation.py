"""Signed in-toto attestations (DSSE) and the CycloneDX ML-BOM of a model."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from airflow_mlops.exceptions import ArtifactError, SignatureVerificationError
from airflow_mlops.security.attestation import (
    CYCLONEDX_PREDICATE,
    EVALUATION_PREDICATE,
    PAYLOAD_TYPE,
    evaluation_predicate,
    sign_statement,
    statement,
    verify_envelope,
)
from airflow_mlops.security.mlbom import build_mlbom, pinned_requirements, validate_mlbom
from airflow_mlops.security.signing import generate_key_pair, public_key_fingerprint

DIGEST = "ab" * 32


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return generate_key_pair()


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


# --- the ML-BOM -------------------------------------------------------------------------------------


def _bom(tmp_path: Path, **overrides):
    (tmp_path / "requirements.txt").write_text("mlflow==3.17.2\ntorch==2.13.0\nnumpy<2\n# comment\n")
    kwargs = dict(
        model_name="fraud",
        model_dir=tmp_path,
        model_sha256=DIGEST,
        files=[("MLmodel", "01" * 32), ("artifacts/weights/model.safetensors", "02" * 32)],
        model_config={
            "model_type": "mlp",
            "architecture": {"input_dim": 3, "hidden_units": [8]},
            "features": ["a", "b"],
            "target": "y",
            "positive_label": 1,
            "threshold": 0.7,
        },
        evaluation={
            "metrics": {"roc_auc": 0.9, "pr_auc": float("nan")},
            "holdout_rows": 100,
            "gates": {"gates": [{"name": "roc_auc.min", "passed": True, "value": 0.9, "threshold": 0.85}]},
        },
        training_data={
            "uri": "s3://b/accepted.parquet",
            "sha256": "03" * 32,
            "size": 10,
            "metadata": {"rows": 7},
        },
        holdout={"uri": "s3://b/holdout.parquet", "sha256": "04" * 32, "size": 5, "metadata": {}},
        train_metrics={"val_roc_auc": 0.93, "history": [1, 2]},
        training={
            "backend": "kubernetes",
            "image": "registry.example/trainer:0.1.0",
            "params": {"epochs": 3},
        },
        signer="05" * 32,
        pipeline="fraud_detector",
    )
    kwargs.update(overrides)
    return build_mlbom(**kwargs)


def test_the_mlbom_is_valid_cyclonedx_1_6_with_a_model_card(tmp_path: Path) -> None:
    bom = _bom(tmp_path)
    validate_mlbom(bom)
    model = bom["components"][0]
    assert model["type"] == "machine-learning-model" and model["hashes"] == [
        {"alg": "SHA-256", "content": DIGEST}
    ]
    assert [f["name"] for f in model["components"]] == ["MLmodel", "artifacts/weights/model.safetensors"]
    card = model["modelCard"]
    datasets = {d["name"]: d for d in card["modelParameters"]["datasets"]}
    assert datasets["training data"]["contents"]["url"] == "s3://b/accepted.parquet"
    props = {p["name"]: p["value"] for p in datasets["training data"]["contents"]["properties"]}
    assert props["airflow-mlops:sha256"] == "03" * 32 and props["airflow-mlops:rows"] == "7"
    metrics = {m["type"]: m["value"] for m in card["quantitativeAnalysis"]["performanceMetrics"]}
    assert metrics == {"roc_auc": "0.9"}  # NaN is not a measurement
    card_props = {
        p["name"]: json.loads(p["value"]) if p["value"][:1] in "{[0123456789" else p["value"]
        for p in card["properties"]
    }
    assert card_props["airflow-mlops:gate:roc_auc.min"]["threshold"] == 0.85
    assert card_props["airflow-mlops:operating_threshold"] == 0.7
    libraries = {c["name"]: c["purl"] for c in bom["components"] if c["type"] == "library"}
    assert libraries == {"mlflow": "pkg:pypi/mlflow@3.17.2", "torch": "pkg:pypi/torch@2.13.0"}
    (container,) = [c for c in bom["components"] if c["type"] == "container"]
    assert (container["name"], container["version"]) == ("registry.example/trainer", "0.1.0")
    model_props = {p["name"]: p["value"] for p in model["properties"]}
    assert model_props["airflow-mlops:signer_key_fingerprint"] == "05" * 32
    assert "airflow-mlops:train:history" not in model_props  # only scalars


def test_an_invalid_mlbom_is_refused_naming_the_violation(tmp_path: Path) -> None:
    bom = _bom(tmp_path)
    bom["components"][0]["modelCard"]["unknown"] = 1
    with pytest.raises(ArtifactError, match=r"not valid CycloneDX 1\.6"):
        validate_mlbom(bom)


def test_pinned_requirements_reads_only_exact_pins(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("a==1.0\nb>=2\nC[extra] == 3.1 ; python_version>'3'\n-r x\n")
    assert pinned_requirements(tmp_path) == [("a", "1.0"), ("c", "3.1")]
    assert pinned_requirements(tmp_path / "missing") == []


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
