"""registry/release.py: the model signed and verified, the blessing checked, the attestations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.exceptions import GateFailedError
from airflow_mlops.registry.release import (
    ATTESTATION_FILES,
    SignedModel,
    check_blessing,
    release_attestations,
    sign_and_verify,
)

REASON = {
    "events": [{"asset": "x-mlops://p/new_data", "at": "2026-01-06T00:00:00+00:00", "kind": "new_data"}],
    "event_count": 1,
    "format": 1,
    "kind": "new_data",
    "summary": "batch 0123 landed (1 file(s))",
}


def test_a_blessing_for_another_digest_signs_nothing() -> None:
    assert check_blessing({"model_sha256": "aa", "passed": True}, "aa", where="sign") == {
        "model_sha256": "aa",
        "passed": True,
    }
    with pytest.raises(GateFailedError, match="handed to sign is for model bb, not aa"):
        check_blessing({"model_sha256": "bb"}, "aa", where="sign")
    with pytest.raises(GateFailedError, match="is for model None"):
        check_blessing(None, "aa", where="sign")


def test_the_signer_is_named_by_fingerprint_and_identity_when_there_is_one() -> None:
    assert SignedModel(fingerprint="fp", method="key", identity=None).who == "fp"
    assert SignedModel(fingerprint="fp", method="sigstore", identity="a@b").who == "sigstore a@b (fp)"


def test_a_signed_release_verifies_and_its_attestations_name_the_model(tmp_path: Path) -> None:
    from airflow_mlops.artifacts import sha256_directory
    from airflow_mlops.registry.mlflow_registry import package_model
    from airflow_mlops.security.attestation import CYCLONEDX_PREDICATE, EVALUATION_PREDICATE, verify_envelope
    from airflow_mlops.security.signing import generate_key_pair
    from airflow_mlops.security.trust import as_signer, as_trust
    from airflow_mlops.training.trainer import train

    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x1": rng.normal(0, 1, 200), "x2": rng.normal(0, 1, 200)})
    df["y"] = (df.x1 > 0).astype(int)
    train(df, {"target": "y", "model": "xgboost", "params": {"n_estimators": 3}}, tmp_path / "w")
    package_model(tmp_path / "w", tmp_path / "model")
    digest, _ = sha256_directory(tmp_path / "model")
    private, public = generate_key_pair()
    signer, trust = as_signer(private), as_trust(public)

    signed = sign_and_verify(tmp_path / "model", tmp_path / "model.sig", signer, trust)
    assert signed.method == "key" and signed.who == signed.fingerprint
    assert (tmp_path / "model.sig").stat().st_size > 0

    documents = release_attestations(
        model_dir=tmp_path / "model",
        model_sha256=digest,
        evaluation={"passed": True, "task": "binary", "metrics": {"roc_auc": 0.9}, "gates": {"gates": []}},
        blessing={"model_sha256": digest, "passed": True},
        signer=signer,
        signed_by=signed.who,
        model_name="m",
        pipeline="p",
        code_version="0.0-test",
        retrain_reason=REASON,
        airflow_run="p__train/asset_triggered__1",
    )
    assert set(documents) == set(ATTESTATION_FILES)
    assert documents["mlbom"]["bomFormat"] == "CycloneDX"
    evaluation = verify_envelope(
        documents["attestation"], public, model_sha256=digest, predicate_type=EVALUATION_PREDICATE
    )
    assert evaluation.predicate["task"] == "binary"
    assert evaluation.predicate["model"]["flavor"] == "xgboost"
    # Both signed documents name why the run trained.
    assert evaluation.predicate["retrain_reason"] == REASON
    trigger = documents["mlbom"]["formulation"][0]["workflows"][0]["trigger"]
    assert trigger["description"] == REASON["summary"] and trigger["type"] == "api"
    bom = verify_envelope(
        documents["mlbom_attestation"], public, model_sha256=digest, predicate_type=CYCLONEDX_PREDICATE
    )
    assert bom.predicate == documents["mlbom"]
    with pytest.raises(Exception, match=r"(?i)digest|sha256|subject"):
        verify_envelope(
            documents["attestation"], public, model_sha256="0" * 64, predicate_type=EVALUATION_PREDICATE
        )
