"""The rollout gate of the monitor DAG: a shadow or canary candidate judged beside the champion on
each live window, then promoted to champion, ended, or left for the next window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_mlops.hooks.mlflow import MLflowHook
from airflow_mlops.hooks.signing import ModelSigningHook
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.registry.rollout import DEFAULT_MAX_RELATIVE_ERROR


class RolloutGateOperator(MLOpsBaseOperator):
    """Judge the candidate on the rollout alias against the champion on the window just scored.

    :func:`~airflow_mlops.registry.rollout.run_rollout_window` does the work: the candidate and
    the champion version ``monitor.score`` served are fetched verified and scanned, both answer
    the rows of that window (``predictions``), and
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
        mlflow_conn_id: str = MLflowHook.default_conn_name,
        signing_conn_id: str = ModelSigningHook.default_conn_name,
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
        from airflow_mlops.registry.rollout import RolloutSettings, run_rollout_window

        settings = RolloutSettings(
            model_name=self.model_name,
            alias=self.alias,
            rollout_alias=self.rollout_alias,
            target=self.target,
            positive_label=self.positive_label,
            threshold=self.threshold,
            min_rows=self.min_rows,
            min_agreement=self.min_agreement,
            max_relative_error=self.max_relative_error,
            comparisons=self.compare_to_champion,
            max_windows=self.max_windows,
            allowed_globals=self.allowed_globals,
            pipeline=self.pipeline,
        )
        store = self.artifact_store()
        with self.scratch() as tmp:
            outcome = run_rollout_window(
                self.mlflow_hook.get_conn(),
                settings,
                champion_version=str(self.champion_version),
                trust=self.trust(),
                scratch=tmp,
                read_window=lambda: read_table(self.fetch(self.predictions, tmp / "window")),
                store_report=lambda path: store.put_file(
                    path, self.artifact_key(context, "rollout.json"), producer=self.task_id
                ),
                request_id=self.airflow_run(context),
                by=self.actor(context),
                blessed_by=f"{self.airflow_run(context)}/{self.task_id}",
            )
        if outcome.skipped:
            raise AirflowSkipException(outcome.skipped)
        return outcome.to_dict()
