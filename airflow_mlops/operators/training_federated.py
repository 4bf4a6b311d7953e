"""The ``federated`` backend of the fit step: the training job run by a Flower federation.

:class:`ModelFitFederatedOperator` takes the same ``job.json`` as every backend and returns the
same fit result (the weights' reference and the metrics), so the package, scan, evaluation,
signing and promotion stages that follow do not know how the model was trained. In between:

1. with DP on client updates, epsilon is accounted over the rounds (refused above the budget);
2. ``flwr run`` submits the app (:mod:`airflow_mlops.training.federated`) to the SuperLink of the
   Airflow connection, with the job's reference, where the result goes and the spec's settings;
3. the task defers to :class:`~airflow_mlops.triggers.federated.FlowerRunTrigger`, which polls the
   run (``flwr ls``) from the triggerer and stops it when a user kills the task;
4. on completion the ServerApp's result is read from the artifact store: the global model must be
   at this run's output key, with the sha256 the result names, trained by the same app (hash) as
   this worker's.

A run that fails, is stopped or times out fails the task with Flower's reason (a timed-out run is
stopped first). ``on_kill`` while the task still runs on the worker stops the run too.

With ``local_nodes`` the task starts the federation itself, on the worker: a SuperLink and that
many SuperNodes on 127.0.0.1 (:mod:`airflow_mlops.training.federated.local_federation`), each
training on its partition of the job's table. The worker owns those processes, so the task polls
from the worker instead of deferring, and stops the federation when the run ends, fails or is
killed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import TrainingError, TrainingRejectedError
from airflow_mlops.hooks.flower import FlowerHook
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.training.federated import flower_cli
from airflow_mlops.training.federated.global_model import RESULT_NAME
from airflow_mlops.triggers.federated import FlowerRunTrigger


class ModelFitFederatedOperator(MLOpsBaseOperator):
    """The ``federated`` backend: the training job as a run of a Flower federation.

    :param job: ref of ``job.json`` from ``TrainingPrepareOperator`` (templated).
    :param federated: the spec's ``training.federated`` (durations in seconds).
    :param flower_conn_id: the Airflow connection of the SuperLink (:class:`FlowerHook`).
    :param deferrable: wait in the triggerer (default) or poll from the worker.

    Returns the fit result: ``weights`` (ref) and scalar ``metrics`` (with ``federated_run_id``,
    ``federated_app_sha256`` and, with DP, ``dp_epsilon``).
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "job")
    stage = "train"
    ui_color = "#fde2e4"

    def __init__(
        self,
        *,
        job: Any,
        federated: Mapping[str, Any],
        flower_conn_id: str = FlowerHook.default_conn_name,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.federated = dict(federated)
        self.flower_conn_id = flower_conn_id
        self.deferrable = deferrable
        self.run_id: int | None = None
        self._federation: Any = None

    @cached_property
    def superlink(self) -> flower_cli.SuperLink:
        return flower_cli.SuperLink(**FlowerHook(flower_conn_id=self.flower_conn_id).superlink())

    def _job_ref(self) -> dict[str, Any]:
        return dict(self.job) if isinstance(self.job, Mapping) else json.loads(str(self.job))

    def execute(self, context: Any) -> dict[str, Any] | None:
        self._check_job(self._job_ref())
        epsilon = self._epsilon()  # refused above the budget before anything starts
        nodes = self.federated.get("local_nodes")
        if not nodes:
            return self._submit_and_wait(context, epsilon, deferrable=self.deferrable)
        from airflow_mlops.training.federated import local_federation

        cli = FlowerHook(flower_conn_id=self.flower_conn_id).cli()
        with self.scratch() as tmp:
            self.log.info("starting a local Flower federation: a SuperLink and %d SuperNode(s) on 127.0.0.1",
                          int(nodes))  # fmt: skip
            federation = self._federation = local_federation.start(cli, int(nodes), tmp)
            try:
                link = federation.superlink
                return self._submit_and_wait(context, epsilon, deferrable=False, superlink=link)
            except Exception:
                self.log.error("the local federation's logs:\n%s", federation.diagnostics(1500))
                raise
            finally:
                self._federation = None
                federation.stop()
                self.log.info("local Flower federation stopped")

    def _submit_and_wait(self, context: Any, epsilon: float | None, *, deferrable: bool,
                         superlink: flower_cli.SuperLink | None = None) -> dict[str, Any] | None:  # fmt: skip
        """Submit the run to ``superlink`` (by default the connection's) and wait for it there."""
        from airflow_mlops.training.federated.common import APP_DIR, app_sha256

        result_key = self.artifact_key(context, RESULT_NAME)
        job = self._job_ref()
        settings = dict(self.federated)
        if settings.get("local_nodes"):  # each local SuperNode trains on one partition
            settings["partitions"] = int(settings["local_nodes"])
        values = flower_cli.run_config_values(
            job=job, result_key=result_key, settings=settings, app_sha256=app_sha256(), epsilon=epsilon
        )
        with self.scratch() as tmp:
            config = flower_cli.write_run_config(tmp / "run.toml", values)
            link = self.superlink if superlink is None else superlink
            out = flower_cli.call(link, flower_cli.run_command(link, APP_DIR, config))
        submitted = flower_cli.parse_run(out)
        self.run_id = submitted["run_id"]
        self.log.info("Flower run %s submitted to %s (%d rounds, %s)", self.run_id, link.address,
                      values["rounds"], values["strategy"])  # fmt: skip
        deadline = time.time() + float(self.federated.get("timeout", 7200.0))
        poll = float(self.federated.get("poll_interval", 10.0))
        if deferrable:
            # The event names the run; the rest is recomputed on resume (`airflow dags test` resumes
            # a deferred task with the event only, without the deferral's kwargs).
            self.defer(
                trigger=FlowerRunTrigger(
                    run_id=self.run_id,
                    flower_conn_id=self.flower_conn_id,
                    poll_interval=poll,
                    deadline=deadline,
                ),
                method_name="execute_complete",
            )
        return self.execute_complete(context, self._wait(link, deadline, poll), superlink=link)

    def _wait(self, superlink: flower_cli.SuperLink, deadline: float, poll: float) -> dict[str, Any]:
        """The non-deferrable wait: the trigger's event, polled from the worker on ``superlink``."""
        assert self.run_id is not None
        while True:
            argv = flower_cli.list_command(superlink, self.run_id)
            state = flower_cli.parse_status(flower_cli.call(superlink, argv), self.run_id)
            if flower_cli.is_finished(state["status"]):
                return {"run_id": self.run_id, "status": state["status"], "details": state["details"]}
            if time.time() > deadline:
                return {"run_id": self.run_id, "status": "timeout", "details": f"still {state['status']}"}
            time.sleep(poll)

    def execute_complete(self, context: Any, event: Mapping[str, Any], *,
                         superlink: flower_cli.SuperLink | None = None, **_: Any) -> dict[str, Any]:  # fmt: skip
        """The run ended: the global model's fit result, or the task fails (a timeout stops it on ``superlink``)."""
        from airflow_mlops.training.federated.common import app_sha256

        run_id = self.run_id = int(event["run_id"])
        status, details = str(event.get("status")), str(event.get("details") or "")
        if status != flower_cli.COMPLETED:
            if status == "timeout":
                self._stop(superlink)
            raise TrainingError(f"Flower run {run_id} ended {status}: {details}")
        result = self._result(context)
        metrics = dict(result["metrics"])
        ours = app_sha256()
        if metrics.get("federated_app_sha256") != ours:
            raise TrainingRejectedError(
                f"Flower run {run_id} was trained by an app with sha256 {metrics.get('federated_app_sha256')}, "
                f"not this worker's {ours}: run the same airflow-mlops release on the federation and the workers"
            )
        metrics["federated_run_id"] = str(run_id)
        epsilon = self._epsilon()
        if epsilon is not None:
            metrics["dp_epsilon"] = epsilon
        self.log.info("Flower run %s completed: global model %s (sha256 %s)", run_id,
                      result["weights"]["uri"], result["weights"]["sha256"])  # fmt: skip
        return {**result, "metrics": metrics}

    def _result(self, context: Any) -> dict[str, Any]:
        """The ServerApp's result from the store; its weights must be this run's output key."""
        from airflow_mlops.artifacts import ArtifactRef
        from airflow_mlops.registry.training_run import check_weights_location
        from airflow_mlops.training.fit_result import WEIGHTS_NAME, parse_fit_result

        store = self.artifact_store()
        uri = store.uri_for(self.artifact_key(context, RESULT_NAME))
        try:
            if store.is_s3:
                bucket, _, key = uri[len("s3://") :].partition("/")
                text = store.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
            else:
                text = Path(uri).read_text()
        except Exception as exc:
            raise TrainingError(f"the federated run wrote no result at {uri}: {exc}") from exc
        result = parse_fit_result(json.loads(text), where="the federated ServerApp")
        weights = ArtifactRef.from_dict(result["weights"])
        check_weights_location(weights.uri, store.uri_for(self.artifact_key(context, WEIGHTS_NAME)))
        return result

    def _check_job(self, ref: dict[str, Any]) -> None:
        """Refuse, before anything is submitted, a job the federated app cannot train (another
        model, or a task other than binary classification, e.g. one inferred from the data): the
        SuperLink would only fail the run later, with the reason in its own log."""
        from airflow_mlops.training.federated.global_model import trainer_config
        from airflow_mlops.training.job import TrainingJob

        with self.scratch() as tmp:
            path = self.fetch(ref, tmp / "job")
            job = TrainingJob.from_dict(json.loads(path.read_text()), where=str(ref.get("uri")))
        trainer_config(job)

    def _epsilon(self) -> float | None:
        privacy = self.federated.get("privacy")
        if not privacy:
            return None
        from airflow_mlops.training.federated.privacy import check_budget

        epsilon = check_budget(
            noise_multiplier=float(privacy["noise_multiplier"]),
            rounds=int(self.federated.get("rounds", 3)),
            delta=float(privacy.get("delta", 1e-5)),
            budget=privacy.get("epsilon"),
        )
        self.log.info("DP on client updates: epsilon %.3f at delta %g (client level, %s rounds)",
                      epsilon, privacy.get("delta", 1e-5), self.federated.get("rounds", 3))  # fmt: skip
        return epsilon

    def _stop(self, superlink: flower_cli.SuperLink | None = None) -> None:
        """Stop the run on ``superlink`` (by default the connection's)."""
        if self.run_id is None:
            return
        try:
            link = self.superlink if superlink is None else superlink
            out = flower_cli.call(link, flower_cli.stop_command(link, self.run_id))
            self.log.info("Flower run %s stopped: %s", self.run_id, out.strip()[-300:])
        except TrainingError as exc:
            self.log.warning("could not stop Flower run %s: %s", self.run_id, exc)

    def on_kill(self) -> None:
        """The task was killed while it ran on the worker: stop the run (and a local federation)."""
        federation = self._federation
        if federation is not None:
            self._stop(federation.superlink)
            federation.stop()
        elif not self.federated.get("local_nodes"):  # a local run ended with its federation
            self._stop()
