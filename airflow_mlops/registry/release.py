"""A model release: the signature of the exact model directory, and the two signed in-toto
attestations about it -- the evaluation (the gates' verdict, which promotion trusts only from here)
and the ML-BOM (CycloneDX 1.6).

No Airflow: the functions take the model directory, the signing identity and trust
(:mod:`airflow_mlops.security.trust`), and plain dicts; they call the public functions of
:mod:`airflow_mlops.security.signing`, :mod:`~airflow_mlops.security.attestation` and
:mod:`~airflow_mlops.security.mlbom`, and read the model's facts (its flavor's config, its weights
directory) from the training and registry modules: a release is assembled here, above security.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import GateFailedError

#: The release's attestation documents: output name -> file name.
ATTESTATION_FILES = {
    "attestation": "evaluation.intoto.json",
    "mlbom": "mlbom.cdx.json",
    "mlbom_attestation": "mlbom.intoto.json",
}


@dataclass(frozen=True)
class SignedModel:
    """A signed model directory: the signature's facts and the signer verification found."""

    fingerprint: str  # the public key fingerprint
    method: str
    identity: str | None

    @property
    def who(self) -> str:
        """The signer as the ML-BOM and the log name it: the fingerprint, with the identity of a
        certificate or keyless signer."""
        if self.identity:
            return f"{self.method} {self.identity} ({self.fingerprint})"
        return self.fingerprint


def sign_and_verify(model_dir: Path, signature: Path, signer: Any, trust: Any) -> SignedModel:
    """Sign ``model_dir`` into ``signature`` (OpenSSF model signing) and verify it at once
    against ``trust``: the signer and what verifiers trust must agree."""
    from airflow_mlops.security.signing import sign_model, verify_model

    info = sign_model(model_dir, signature, signer)
    verified = verify_model(model_dir, signature, trust)
    return SignedModel(
        fingerprint=info.public_key_fingerprint, method=verified.method, identity=verified.identity
    )


def check_blessing(blessing: Mapping[str, Any] | None, model_sha256: str, *, where: str) -> dict[str, Any]:
    """``blessing`` as a dict, once it is known to be for ``model_sha256``.

    :raises GateFailedError: it judged another model (``where`` names who was handed it).
    """
    checked = dict(blessing or {})
    if checked.get("model_sha256") != model_sha256:
        raise GateFailedError(
            f"the blessing handed to {where} is for model {checked.get('model_sha256')}, not "
            f"{model_sha256}: the gates judged another model; nothing is signed"
        )
    return checked


def release_attestations(
    *,
    model_dir: Path,
    model_sha256: str,
    evaluation: Mapping[str, Any],
    blessing: Mapping[str, Any],
    signer: Any,
    signed_by: str,
    model_name: str,
    pipeline: str,
    code_version: str,
    training_data: Any = None,
    holdout: Any = None,
    train_metrics: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    retrain_reason: Mapping[str, Any] | None = None,
    airflow_run: str = "",
) -> dict[str, dict[str, Any]]:
    """The signed evaluation statement, the ML-BOM and its signed statement, by output name (see
    :data:`ATTESTATION_FILES`). The ML-BOM is validated before it is signed. ``retrain_reason``
    (why the run trained, :mod:`airflow_mlops.retrain.reason`) goes into both, under the
    signature; ``airflow_run`` names the training run in the ML-BOM's formulation."""
    from airflow_mlops.artifacts import directory_manifest
    from airflow_mlops.registry.mlflow_registry import weights_dir
    from airflow_mlops.security.attestation import (
        CYCLONEDX_PREDICATE,
        EVALUATION_PREDICATE,
        evaluation_predicate,
        sign_statement,
        statement,
    )
    from airflow_mlops.security.mlbom import build_mlbom, model_facts, validate_mlbom
    from airflow_mlops.training.flavors import read_config

    config = read_config(weights_dir(model_dir))  # any flavor; format 1 read as binary torch
    envelope = sign_statement(
        statement(
            model_sha256,
            EVALUATION_PREDICATE,
            evaluation_predicate(dict(evaluation), dict(blessing), model_facts(config), retrain_reason),
        ),
        signer,
    )
    bom = build_mlbom(
        model_name=model_name,
        model_dir=model_dir,
        model_sha256=model_sha256,
        files=[(rel, sha) for rel, sha, _ in directory_manifest(model_dir)],
        model_config=config,
        evaluation=dict(evaluation),
        training_data=training_data,
        holdout=holdout,
        train_metrics=dict(train_metrics) if train_metrics is not None else None,
        training=dict(training or {}),
        code_version=code_version,
        signer=signed_by,
        pipeline=pipeline,
        retrain_reason=retrain_reason,
        airflow_run=airflow_run,
    )
    validate_mlbom(bom)
    bom_envelope = sign_statement(statement(model_sha256, CYCLONEDX_PREDICATE, bom), signer)
    return {"attestation": envelope, "mlbom": bom, "mlbom_attestation": bom_envelope}
