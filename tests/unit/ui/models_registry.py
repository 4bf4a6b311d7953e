"""Registry contents for the Models view tests: what the pipeline's stages leave on a version."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MODEL = "ui-fraud"
PIPELINE = "ui-pipeline"
GATES = (
    {
        "name": "roc_auc.min",
        "kind": "bound",
        "metric": "roc_auc",
        "value": 0.91,
        "threshold": 0.8,
        "passed": True,
    },
    {
        "name": "recall.min",
        "kind": "bound",
        "metric": "recall",
        "value": 0.7,
        "threshold": 0.6,
        "passed": True,
    },
)


def add_metrics_and_mlbom(
    client: Any, tmp: Path, model: str, version: str, metrics: Mapping[str, float], *, mlbom: bool = True
) -> dict[str, Any] | None:
    """Log the evaluate stage's ``eval_*`` metrics to the version's run, and (``mlbom``) a real
    CycloneDX ML-BOM under ``attestations/`` as the register stage does; returns the ML-BOM."""
    from airflow_mlops.registry.mlflow_registry import ATTESTATION_ARTIFACT_PATH, MLBOM_FILE, log_run_data
    from airflow_mlops.security.mlbom import build_mlbom, validate_mlbom

    mv = client.get_model_version(model, version)
    log_run_data(client, mv.run_id, metrics={f"eval_{k}": v for k, v in metrics.items()})
    if not mlbom:
        return None
    bom = build_mlbom(
        model_name=model,
        model_dir=tmp,
        model_sha256=mv.tags["mlops.model_sha256"],
        files=[("MLmodel", "01" * 32)],
        model_config={"model_type": "mlp", "features": ["a"], "target": "y", "threshold": 0.5},
        evaluation={"metrics": dict(metrics), "holdout_rows": 10, "gates": {"gates": list(GATES)}},
        pipeline=mv.tags.get("mlops.pipeline", ""),
    )
    validate_mlbom(bom)
    staged = tmp / f"bom-{model}-{version}" / MLBOM_FILE
    staged.parent.mkdir(parents=True)
    staged.write_text(json.dumps(bom))
    client.log_artifact(mv.run_id, str(staged), ATTESTATION_ARTIFACT_PATH)
    return bom


def register(
    client: Any,
    tmp: Path,
    private_key: bytes,
    *,
    model: str,
    tag: str,
    pipeline: str = "ui-pipeline",
    gates: Sequence[Mapping[str, Any]] = GATES,
    passed: bool = True,
    attest_key: bytes | None = None,
    attest: bool = True,
    retrain_reason: Mapping[str, Any] | None = None,
    tagged_reason: Mapping[str, Any] | None = None,
) -> str:
    """A signed version registered the way the register stage does it: pipeline, gates and
    blessing tags, the model signature, and the evaluation attestation (with its gates and
    ``retrain_reason``) signed with ``attest_key`` (default: the signing key); the
    ``mlops.retrain.*`` tags of ``tagged_reason`` (default: ``retrain_reason``). Returns the
    version."""
    from airflow_mlops.artifacts import sha256_directory
    from airflow_mlops.registry.mlflow_registry import (
        EVALUATION_ATTESTATION,
        TAG_GATES,
        TAG_PIPELINE,
        register_version,
        start_or_resume_run,
    )
    from airflow_mlops.registry.promotion import TAG_BLESSING, Blessing
    from airflow_mlops.retrain.reason import reason_tags
    from airflow_mlops.security.attestation import (
        EVALUATION_PREDICATE,
        evaluation_predicate,
        sign_statement,
        statement,
    )
    from airflow_mlops.security.signing import sign_model

    name = tag.replace("/", "_")
    model_dir = tmp / name
    (model_dir / "weights").mkdir(parents=True)
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    (model_dir / "weights" / "model_config.json").write_text(json.dumps({"tag": tag}))
    sig = tmp / f"{name}.sig"
    sign_model(model_dir, sig, private_key)
    run_id = start_or_resume_run(
        client, experiment=pipeline, pipeline=pipeline, airflow_run=tag, run_name=tag
    )
    digest = sha256_directory(model_dir)[0]
    blessing = Blessing(
        model_sha256=digest, passed=passed, compared=False, champion_version=None, by=f"{tag}/evaluate"
    )
    attachments = {}
    if attest:
        predicate = evaluation_predicate(
            {"passed": passed, "gates": {"gates": list(gates)}, "metrics": {}},
            blessing.to_dict(),
            None,
            retrain_reason,
        )
        envelope = sign_statement(
            statement(digest, EVALUATION_PREDICATE, predicate), attest_key or private_key
        )
        attachments[EVALUATION_ATTESTATION] = tmp / f"{name}.intoto.json"
        attachments[EVALUATION_ATTESTATION].write_text(json.dumps(envelope))
    registered = register_version(
        client,
        model_name=model,
        run_id=run_id,
        model_dir=model_dir,
        signature_path=sig,
        airflow_run=tag,
        tags={
            TAG_PIPELINE: pipeline,
            TAG_GATES: "passed" if passed else "failed",
            TAG_BLESSING: blessing.to_tag(),
            **reason_tags(tagged_reason if tagged_reason is not None else retrain_reason),
        },
        attachments=attachments,
    )
    return str(registered.version)


def log_monitor_run(
    client: Any, *, experiment: str, pipeline: str, model: str, version: str, drifted: bool, share: float
) -> str:
    """A finished monitor run as the drift stage records it (tags, metrics, drift reports)."""

    from airflow_mlops.registry.mlflow_registry import ensure_experiment, log_report, log_run_data

    experiment_id = ensure_experiment(client, experiment)
    run = client.create_run(
        experiment_id,
        tags={
            "mlops.kind": "monitor",
            "mlops.model_name": model,
            "mlops.model_version": version,
            "mlops.pipeline": pipeline,
        },
    )
    run_id = str(run.info.run_id)
    log_run_data(
        client,
        run_id,
        metrics={
            "drifted": float(drifted),
            "quality_failed": 0.0,
            "drifted_features": 2.0,
            "drift_share": share,
        },
        tags={"mlops.drift": "drift" if drifted else "none"},
    )
    # as the monitor logs it: the upload, then the run tag with its sha256
    log_report(
        client,
        run_id,
        b"<html><body><h1>drift</h1><script>alert(1)</script></body></html>",
        "drift/drift_report.html",
    )
    client.set_terminated(run_id, status="FINISHED")
    return run_id
