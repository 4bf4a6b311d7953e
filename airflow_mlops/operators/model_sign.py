"""``release.sign``: the model signed, and its evaluation and ML-BOM attested."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_mlops.hooks.signing import ModelSigningHook
from airflow_mlops.operators.base import MLOpsBaseOperator


class ModelSignOperator(MLOpsBaseOperator):
    """Sign the exact model directory with the key in an Airflow connection (OpenSSF model signing),
    and, given the evaluation, the two signed in-toto attestations about it: the evaluation (the
    gates' verdict, which promotion trusts only from here) and the ML-BOM (CycloneDX 1.6). Both
    name why the run trained (the triggering asset events or the run type:
    :func:`airflow_mlops.operators.data.retrain_reason`), under the signature.

    The private key is read by :class:`~airflow_mlops.hooks.signing.ModelSigningHook`, written
    only to a private temporary file for the signing call, and never logged or returned. The
    signing and the documents are :mod:`airflow_mlops.registry.release`'s.

    Returns ``{"model": ref, "signature": ref, "key_fingerprint": str}`` and, with ``evaluation``,
    ``"attestation"`` (DSSE envelope of the evaluation statement), ``"mlbom"`` (the CycloneDX
    document) and ``"mlbom_attestation"`` (its DSSE envelope).
    """

    template_fields = (
        *MLOpsBaseOperator.template_fields,
        "model",
        "evaluation",
        "blessing",
        "training_data",
        "holdout",
        "train_metrics",
    )
    stage = "sign"
    ui_color = "#fdeee2"

    def __init__(
        self,
        *,
        model: Any,
        signing_conn_id: str = ModelSigningHook.default_conn_name,
        signing_method: str | None = None,
        evaluation: Any = None,
        blessing: Any = None,
        model_name: str = "",
        training_data: Any = None,
        holdout: Any = None,
        train_metrics: Any = None,
        training: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.signing_conn_id = signing_conn_id
        self.signing_method = signing_method
        self.evaluation = evaluation
        self.blessing = blessing
        self.model_name = model_name
        self.training_data = training_data
        self.holdout = holdout
        self.train_metrics = train_metrics
        self.training = dict(training or {})

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.registry.release import sign_and_verify

        key = self.signing_hook.get_key(need_private=True)
        assert key.signer is not None
        store = self.artifact_store()
        out: dict[str, Any] = {}
        with self.scratch() as tmp:
            model_dir = self.fetch(self.model, tmp / "in")
            signed = sign_and_verify(model_dir, tmp / "model.sig", key.signer, key.trust)
            sig_ref = store.put_file(
                tmp / "model.sig",
                self.artifact_key(context, "model.sig"),
                producer=self.task_id,
                key_fingerprint=signed.fingerprint,
            )
            if self.evaluation:
                out = self._attest(context, store, tmp, model_dir, key.signer, signed.who)
        self.log.info("Signed model %s (%s) by %s", self.model["sha256"], signed.method, signed.who)
        return {
            "model": dict(self.model),
            "signature": sig_ref.to_dict(),
            "key_fingerprint": signed.fingerprint,
            "signing_method": signed.method,
            "signer_identity": signed.identity,
            **out,
        }

    def _attest(
        self, context: Any, store: Any, tmp: Path, model_dir: Path, signer: Any, who: str
    ) -> dict[str, Any]:
        """Sign the evaluation attestation and the ML-BOM; store them; return their refs."""
        import airflow_mlops
        from airflow_mlops.operators.run_events import retrain_reason
        from airflow_mlops.registry.release import ATTESTATION_FILES, check_blessing, release_attestations

        digest = str(self.model["sha256"])
        blessing = check_blessing(self.blessing, digest, where=self.task_id)
        documents = release_attestations(
            model_dir=model_dir,
            model_sha256=digest,
            evaluation=json.loads(self.fetch(self.evaluation, tmp / "evaluation").read_text()),
            blessing=blessing,
            signer=signer,
            signed_by=who,
            model_name=self.model_name or self.pipeline,
            pipeline=self.pipeline,
            code_version=airflow_mlops.__version__,
            training_data=self.training_data,
            holdout=self.holdout,
            train_metrics=self.train_metrics if isinstance(self.train_metrics, dict) else None,
            training=self.training,
            retrain_reason=retrain_reason(context),
            airflow_run=self.airflow_run(context),
        )
        refs: dict[str, Any] = {}
        for name, filename in ATTESTATION_FILES.items():
            (tmp / filename).write_text(json.dumps(documents[name], indent=2, sort_keys=True))
            refs[name] = store.put_file(
                tmp / filename, self.artifact_key(context, filename), producer=self.task_id
            ).to_dict()
        self.log.info(
            "Attested the evaluation (%s) and the ML-BOM (%s components) of model %s",
            "passed" if blessing.get("passed") else "failed",
            len(documents["mlbom"]["components"]),
            digest,
        )
        return refs
