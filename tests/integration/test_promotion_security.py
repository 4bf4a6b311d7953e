"""Promotion against a real MLflow server: tampering after signing blocks it, the alias stays put."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_mlops.exceptions import PromotionBlockedError
from tests.integration.conftest import MLflowServer

pytestmark = pytest.mark.integration


def _signed_model(tmp: Path, name: str, keys: tuple[bytes, bytes], weight: bytes) -> tuple[Path, Path]:
    from airflow_mlops.security.signing import sign_model

    model = tmp / name
    (model / "artifacts" / "weights").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "artifacts" / "weights" / "model_config.json").write_text(json.dumps({"w": weight.hex()}))
    sig = tmp / f"{name}.sig"
    sign_model(model, sig, keys[0])
    return model, sig


def _register(
    client,
    tmp: Path,
    name: str,
    keys,
    weight: bytes,
    run_tag: str,
    gates: str = "passed",
    *,
    attest: str = "valid",
    tag_passed: bool | None = None,
):
    """Register a signed model; ``attest``: ``valid``, ``none``, ``other-key`` (the attestation is
    signed with another key) or ``other-digest`` (a valid attestation about another model)."""
    import json

    from airflow_mlops.artifacts import sha256_directory
    from airflow_mlops.registry.blessing import TAG_BLESSING, Blessing
    from airflow_mlops.registry.mlflow_registry import (
        EVALUATION_ATTESTATION,
        TAG_GATES,
        register_version,
        start_or_resume_run,
    )
    from airflow_mlops.security.attestation import EVALUATION_PREDICATE, sign_statement, statement
    from airflow_mlops.security.signing import generate_key_pair

    model, sig = _signed_model(tmp, name, keys, weight)
    digest = sha256_directory(model)[0]
    blessing = Blessing(digest, passed=gates == "passed", compared=False, champion_version=None)
    attachments = {}
    if attest != "none":
        subject = "0" * 64 if attest == "other-digest" else digest
        attested = Blessing(subject, passed=blessing.passed, compared=False, champion_version=None)
        key = generate_key_pair()[0] if attest == "other-key" else keys[0]
        envelope = sign_statement(
            statement(subject, EVALUATION_PREDICATE, {"blessing": attested.to_dict()}), key
        )
        attachments[EVALUATION_ATTESTATION] = tmp / f"{name}.intoto.json"
        attachments[EVALUATION_ATTESTATION].write_text(json.dumps(envelope))
    if tag_passed is not None:  # the tag edited after registration would say this
        blessing = Blessing(digest, passed=tag_passed, compared=True, champion_version="1")
    run_id = start_or_resume_run(
        client, experiment="promotion-it", pipeline="p", airflow_run=run_tag, run_name=run_tag
    )
    return register_version(
        client,
        model_name="promo-model",
        run_id=run_id,
        model_dir=model,
        signature_path=sig,
        airflow_run=run_tag,
        tags={TAG_GATES: gates, TAG_BLESSING: blessing.to_tag()},
        attachments=attachments,
    )


def test_tampering_after_signing_blocks_promotion(
    tmp_path: Path, mlflow_server: MLflowServer, signing_keys: tuple[bytes, bytes]
) -> None:
    from mlflow import MlflowClient

    from airflow_mlops.registry.mlflow_registry import champion_version, register_version
    from airflow_mlops.registry.promotion import promote_version

    client = MlflowClient(tracking_uri=mlflow_server.url)
    v1 = _register(client, tmp_path, "m1", signing_keys, b"\x01", "dag/run1")
    promoted = promote_version(
        client,
        model_name="promo-model",
        version=v1.version,
        alias="champion",
        trust=signing_keys[1],
        gates_passed=True,
    )
    assert promoted.previous_version is None and promoted.signature_verified

    # The same registration retried finds the earlier version instead of duplicating it.
    model_again, sig_again = tmp_path / "m1", tmp_path / "m1.sig"
    again = register_version(
        client,
        model_name="promo-model",
        run_id=v1.run_id,
        model_dir=model_again,
        signature_path=sig_again,
        airflow_run="dag/run1",
        tags={},
    )
    assert again.version == v1.version

    v2 = _register(client, tmp_path, "m2", signing_keys, b"\x02", "dag/run2")
    # Tamper with the registered artifact in the server's artifact store.
    weights = list(mlflow_server.root.rglob("model_config.json"))
    target = next(p for p in weights if "02" in p.read_text())
    target.write_text(json.dumps({"w": "ff"}))
    with pytest.raises(PromotionBlockedError, match="does not verify"):
        promote_version(
            client,
            model_name="promo-model",
            version=v2.version,
            alias="champion",
            trust=signing_keys[1],
            gates_passed=True,
        )
    assert champion_version(client, "promo-model", "champion").version == v1.version


def test_other_key_and_failed_gates_block_promotion(
    tmp_path: Path, mlflow_server: MLflowServer, signing_keys: tuple[bytes, bytes]
) -> None:
    from mlflow import MlflowClient

    from airflow_mlops.registry.mlflow_registry import champion_version
    from airflow_mlops.registry.promotion import promote_version
    from airflow_mlops.security.signing import generate_key_pair

    client = MlflowClient(tracking_uri=mlflow_server.url)
    before = champion_version(client, "promo-model", "champion")
    v3 = _register(client, tmp_path, "m3", signing_keys, b"\x03", "dag/run3")
    _, other_public = generate_key_pair()
    with pytest.raises(PromotionBlockedError):
        promote_version(
            client,
            model_name="promo-model",
            version=v3.version,
            alias="champion",
            trust=other_public,
            gates_passed=True,
        )
    with pytest.raises(PromotionBlockedError, match="not every gate passed"):
        promote_version(
            client,
            model_name="promo-model",
            version=v3.version,
            alias="champion",
            trust=signing_keys[1],
            gates_passed=False,
        )
    v4 = _register(client, tmp_path, "m4", signing_keys, b"\x04", "dag/run4", gates="failed")
    with pytest.raises(PromotionBlockedError, match=r"mlops\.gates=passed"):
        promote_version(
            client,
            model_name="promo-model",
            version=v4.version,
            alias="champion",
            trust=signing_keys[1],
            gates_passed=True,
        )
    after = champion_version(client, "promo-model", "champion")
    assert (before.version if before else None) == (after.version if after else None)


@pytest.mark.parametrize(
    ("attest", "tag_passed", "fragment"),
    [
        ("none", None, "no signed evaluation attestation"),
        ("other-key", None, "evaluation attestation is not signed by the trusted public key"),
        ("other-digest", None, "it belongs to another model"),
        ("valid", True, "differs from its signed attestation"),
    ],
)
def test_promotion_trusts_the_verdict_only_from_a_signed_attestation_of_this_digest(
    tmp_path: Path,
    mlflow_server: MLflowServer,
    signing_keys: tuple[bytes, bytes],
    attest,
    tag_passed,
    fragment,
) -> None:
    from mlflow import MlflowClient

    from airflow_mlops.registry.mlflow_registry import champion_version
    from airflow_mlops.registry.promotion import promote_version

    client = MlflowClient(tracking_uri=mlflow_server.url)
    before = champion_version(client, "promo-model", "champion")
    weight = {"none": b"\x10", "other-key": b"\x11", "other-digest": b"\x12", "valid": b"\x13"}[attest]
    version = _register(
        client,
        tmp_path,
        f"att-{attest}",
        signing_keys,
        weight,
        f"dag/att-{attest}",
        attest=attest,
        tag_passed=tag_passed,
    ).version
    with pytest.raises(PromotionBlockedError, match=fragment):
        promote_version(
            client,
            model_name="promo-model",
            version=version,
            alias="champion",
            trust=signing_keys[1],
            gates_passed=True,
        )
    after = champion_version(client, "promo-model", "champion")
    assert (before.version if before else None) == (after.version if after else None)


def test_a_certificate_signed_model_is_promoted_against_the_ca_and_blocked_for_another(
    tmp_path: Path, mlflow_server: MLflowServer
) -> None:
    """The certificate method end to end: signature and attestation chain to the trusted root."""
    from mlflow import MlflowClient

    from airflow_mlops.registry.mlflow_registry import champion_version
    from airflow_mlops.registry.promotion import audit_history, promote_version
    from tests.pki import IDENTITY, make_pki

    pki, other = make_pki(), make_pki("Other")
    client = MlflowClient(tracking_uri=mlflow_server.url)
    version = _register(client, tmp_path, "cert", (pki.signer(), b""), b"\x21", "dag/cert").version
    for trust, fragment in (
        (other.trust(), "does not chain to the trusted CA"),
        (pki.trust(identity="someone-else@example.org"), "not by the trusted identity"),
    ):
        before = champion_version(client, "promo-model", "champion")
        with pytest.raises(PromotionBlockedError, match=fragment):
            promote_version(
                client,
                model_name="promo-model",
                version=version,
                alias="champion",
                trust=trust,
                gates_passed=True,
            )
        after = champion_version(client, "promo-model", "champion")
        assert (before.version if before else None) == (after.version if after else None)

    result = promote_version(
        client,
        model_name="promo-model",
        version=version,
        alias="champion",
        trust=pki.trust(identity=IDENTITY),
        gates_passed=True,
    )
    assert result.signature_verified and result.key_fingerprint.startswith("ca:")
    assert champion_version(client, "promo-model", "champion").version == version
    assert audit_history(client, "promo-model")[-1]["to"] == str(version)
