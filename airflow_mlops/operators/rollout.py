"""The rollout gate of the monitor DAG: a shadow or canary candidate judged beside the champion on
each live window, then promoted to champion, ended, or left for the next window."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from airflow_mlops.hooks.signing import ModelSigningHook
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.registry.rollout import DEFAULT_MAX_RELATIVE_ERROR


class RolloutGateOperator(MLOpsBaseOperator):
    """Judge the candidate on the rollout alias against the champion on the window just scored.

    Fetch -> call -> act: the candidate and the champion version ``monitor.score`` served are
    fetched verified and scanned, both answer the rows of that window (``predictions``), and
    :func:`~airflow_mlops.registry.rollout.judge_window` decides, by the models' task: the share
    of rows on which they predict the same class (binary, each at its own threshold; multiclass)
    or on which the candidate's value is within ``max_relative_error`` of the champion's
    (regression), and on labelled windows the ``compare_to_champion`` metrics:

    - ``passed``: the candidate is promoted to the champion alias with this verdict as its
      evidence (checked like any promotion: digest, signature, scan, the champion unchanged since
      it was compared), then the rollout alias is removed;
    - ``failed``: the rollout alias is removed (the serving layer stops sending it traffic), the
      report stored, and the task fails without retry (notifiers fire);
    - ``undecided``: nothing moves; after ``max_windows`` undecided windows the rollout is ended
      as failed.

    No rollout alias: skipped. A candidate of another task than the champion's cannot be judged
    beside it: the rollout ends as failed. Every outcome is in the audit trail.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "predictions", "champion_version")
    stage = "rollout"
    ui_color = "#fdf6e2"

    def __init__(
        self,
        *,
        predictions: Any,
        champion_version: Any,
        model_name: str,
        alias: str,
        rollout_alias: str,
        target: str,
        positive_label: Any = 1,
        threshold: float = 0.5,
        min_rows: int = 500,
        min_agreement: float | None = 0.9,
        max_relative_error: float = DEFAULT_MAX_RELATIVE_ERROR,
        compare_to_champion: dict[str, dict[str, float]] | None = None,
        max_windows: int = 7,
        allowed_globals: Sequence[str] = (),
        mlflow_conn_id: str = "mlflow_default",
        signing_conn_id: str = "mlops_signing",
        signing_method: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.predictions = predictions
        self.champion_version = champion_version
        self.model_name = model_name
        self.alias = alias
        self.rollout_alias = rollout_alias
        self.target = target
        self.positive_label = positive_label
        self.threshold = threshold
        self.min_rows = min_rows
        self.min_agreement = min_agreement
        self.max_relative_error = max_relative_error
        self.compare_to_champion = dict(compare_to_champion or {})
        self.max_windows = max_windows
        self.allowed_globals = list(allowed_globals)
        self.mlflow_conn_id = mlflow_conn_id
        self.signing_conn_id = signing_conn_id
        self.signing_method = signing_method

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.data.io import read_table
        from airflow_mlops.exceptions import GateFailedError
        from airflow_mlops.registry.evaluation import operating_threshold
        from airflow_mlops.registry.mlflow_registry import (
            champion_version,
            fetch_trusted_champion,
            fetch_trusted_version,
            weights_dir,
        )
        from airflow_mlops.registry.rollout import judge_window
        from airflow_mlops.training.flavors import load_predictor

        client = self.mlflow_hook.get_conn()
        candidate = champion_version(client, self.model_name, self.rollout_alias, pipeline=self.pipeline)
        if candidate is None:
            raise AirflowSkipException(f"no {self.model_name}@{self.rollout_alias}: no rollout in progress")
        version = str(candidate.version)
        champion = str(self.champion_version)
        if version == champion:
            self._end(client, context, version, f"@{self.rollout_alias} points at the champion itself")
            raise AirflowSkipException(
                f"@{self.rollout_alias} was the champion already; the alias is removed"
            )
        store = self.artifact_store()
        key = ModelSigningHook(signing_conn_id=self.signing_conn_id, method=self.signing_method).get_key(
            need_private=False
        )
        with self.scratch() as tmp:
            fetched = fetch_trusted_champion(
                client,
                self.model_name,
                self.rollout_alias,
                key.trust,
                tmp / "candidate",
                allowed_globals=self.allowed_globals,
                pipeline=self.pipeline,
            )
            if fetched is None or fetched[0] != version:
                raise AirflowSkipException(
                    f"@{self.rollout_alias} moved while this task ran; the next window decides"
                )
            # The champion version the monitor served this window, verified and scanned like the
            # candidate: both answer the same rows through the same code.
            champion_dir, _ = fetch_trusted_version(
                client,
                self.model_name,
                champion,
                key.trust,
                tmp / "champion",
                allowed_globals=self.allowed_globals,
            )
            predictor = load_predictor(weights_dir(fetched[1]))
            incumbent = load_predictor(weights_dir(champion_dir))
            why = _incomparable(predictor, incumbent, version, champion)
            if why:
                self._end(client, context, version, f"rollout gate failed: {why}")
                raise GateFailedError(
                    f"the {self.rollout_alias} rollout of {self.model_name} version {version} ended, the "
                    f"champion stays version {champion}: {why}"
                )
            window = read_table(self.fetch(self.predictions, tmp / "window"))
            candidate_threshold, _ = operating_threshold(predictor.config, self.threshold)
            champion_threshold, _ = operating_threshold(incumbent.config, self.threshold)
            labelled = self.target in window.columns and bool(window[self.target].notna().all())
            report = judge_window(
                predictor.predict_scores(window),
                incumbent.predict_scores(window),
                task=predictor.task,
                candidate_threshold=candidate_threshold,
                champion_threshold=champion_threshold,
                candidate_classes=predictor.classes or None,
                champion_classes=incumbent.classes or None,
                # the class each binary model scores (its own; the spec's for an older model)
                positive_label=(
                    predictor.positive_label if predictor.positive_label is not None else self.positive_label
                ),
                y_true=window[self.target] if labelled else None,
                min_rows=self.min_rows,
                min_agreement=self.min_agreement,
                max_relative_error=self.max_relative_error,
                comparisons=self.compare_to_champion,
            )
            payload = {
                **report.to_dict(),
                "model_name": self.model_name,
                "candidate_version": version,
                "champion_version": champion,
                "candidate_model": predictor.describe(),
                "champion_model": incumbent.describe(),
                **(
                    {"candidate_threshold": candidate_threshold, "champion_threshold": champion_threshold}
                    if predictor.task == "binary"
                    else {}
                ),
                "rollout_alias": self.rollout_alias,
            }
            (tmp / "rollout.json").write_text(json.dumps(payload, indent=2, default=str))
            report_ref = store.put_file(
                tmp / "rollout.json", self.artifact_key(context, "rollout.json"), producer=self.task_id
            )
        self.log.info("%s", report.summary())
        result = {"verdict": report.verdict, "candidate_version": version, "report": report_ref.to_dict()}
        if report.verdict == "passed":
            return {
                **result,
                "promotion": self._promote(client, context, candidate, champion, report_ref, report),
            }
        if report.verdict == "undecided":
            waited = self._count_undecided(client, context, version)
            if waited < self.max_windows:
                self.log.info(
                    "Undecided (%s of %s windows): @%s stays on version %s",
                    waited,
                    self.max_windows,
                    self.rollout_alias,
                    version,
                )
                return result
            why = f"no verdict in {waited} windows (max_windows {self.max_windows}): " + "; ".join(
                report.reasons
            )
        else:
            why = "; ".join(report.reasons)
        self._end(client, context, version, f"rollout gate failed: {why}")
        raise GateFailedError(
            f"the {self.rollout_alias} rollout of {self.model_name} version {version} ended, the champion "
            f"stays version {champion}: {why}"
        )

    def _promote(
        self, client: Any, context: Any, candidate: Any, champion: str, report_ref: Any, report: Any
    ) -> dict[str, Any]:
        from airflow_mlops.registry.mlflow_registry import TAG_MODEL_SHA256
        from airflow_mlops.registry.promotion import Blessing, promote_version, remove_alias

        version = str(candidate.version)
        blessing = Blessing(
            model_sha256=str((candidate.tags or {}).get(TAG_MODEL_SHA256)),
            passed=True,
            compared=True,
            champion_version=champion,
            report={"uri": report_ref.uri, "sha256": report_ref.sha256},
            by=f"{self.airflow_run(context)}/{self.task_id}",
            evidence="rollout",
        )
        key = ModelSigningHook(signing_conn_id=self.signing_conn_id, method=self.signing_method).get_key(
            need_private=False
        )
        result = promote_version(
            client,
            model_name=self.model_name,
            version=version,
            alias=self.alias,
            trust=key.trust,
            allowed_globals=self.allowed_globals,
            request_id=self.airflow_run(context),
            by=self.actor(context),
            reason=f"{self.rollout_alias} rollout gate passed: " + "; ".join(report.reasons),
            blessing=blessing,
        )
        remove_alias(
            client,
            model_name=self.model_name,
            alias=self.rollout_alias,
            expected_version=version,
            by=self.actor(context),
            reason=f"promoted to @{self.alias}",
            request_id=self.airflow_run(context),
        )
        self.log.info("Version %s passed its %s rollout: now @%s", version, self.rollout_alias, self.alias)
        return result.to_dict()

    def _end(self, client: Any, context: Any, version: str, why: str) -> None:
        from airflow_mlops.registry.promotion import remove_alias

        removed = remove_alias(
            client,
            model_name=self.model_name,
            alias=self.rollout_alias,
            expected_version=version,
            by=self.actor(context),
            reason=why,
            request_id=self.airflow_run(context),
        )
        self.log.warning(
            "Ended the %s rollout of version %s (%s): %s",
            self.rollout_alias,
            version,
            "alias removed" if removed else "the alias had moved already",
            why,
        )

    def _count_undecided(self, client: Any, context: Any, version: str) -> int:
        """Record this window as undecided (once per Airflow run) and return how many there were."""
        key = f"mlops.{self.rollout_alias}.undecided_windows"
        mv = client.get_model_version(self.model_name, version)
        try:
            runs = json.loads((mv.tags or {}).get(key) or "[]")
        except json.JSONDecodeError:
            runs = []
        run = self.airflow_run(context)
        if run not in runs:
            runs = [*runs, run]
            client.set_model_version_tag(self.model_name, version, key, json.dumps(runs[-400:]))
        return len(runs)


def _incomparable(candidate: Any, champion: Any, version: str, champion_version: str) -> str:
    """Why the two models cannot be judged side by side ("" when they can). Agreement compares
    class names, so a multiclass candidate may predict other classes than its champion."""
    from airflow_mlops.training.flavors import comparison_problem

    problem = comparison_problem(candidate, champion, same_classes=False)
    if problem is None:
        return ""
    return (
        f"version {version} against the champion (version {champion_version}): {problem}; their decisions "
        "cannot be compared: promote it directly"
    )
