"""The ``local`` backend of the fit step: the trainer job in a subprocess of the worker."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import TrainingError, TrainingRejectedError
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.operators.trainer_env import local_trainer_environment, trainer_python_path
from airflow_mlops.training.fit_result import JOB_NAME, TRAINER_MODULE, parse_fit_result, trainer_arguments
from airflow_mlops.training.job import EXIT_REJECTED  # job.py imports no torch


class ModelFitOperator(MLOpsBaseOperator):
    """The ``local`` backend: the trainer job in a subprocess of the worker.

    A crash in the trainer cannot take the worker down, and the subprocess sees only an
    allow-listed environment plus the artifact store's S3 settings (see the module docstring).
    Exit status 2 (bad data or config, integrity, privacy budget) fails the task for good.

    :param job: ref of ``job.json`` from :class:`TrainingPrepareOperator` (templated).
    :param python: interpreter that runs the trainer (default: the worker's).
    :param python_path: folders put first on the trainer's ``PYTHONPATH`` (``training.python_path``:
        your own package); the dags folder always follows them, as it does for the worker.

    Returns the trainer result: ``weights`` (ref) and scalar ``metrics``.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "job")
    stage = "train"
    ui_color = "#fde2e4"

    def __init__(
        self, *, job: Any, python: str | None = None, python_path: Sequence[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.python = python or sys.executable
        self.python_path = list(python_path or [])

    def execute(self, context: Any) -> dict[str, Any]:
        store = self.artifact_store()
        with self.scratch() as tmp:
            result_path = tmp / "result.json"
            cmd = [self.python, "-m", TRAINER_MODULE, *trainer_arguments(self.job, result=str(result_path))]
            env = local_trainer_environment(self.aws_conn_id, s3=store.is_s3)
            env["PYTHONPATH"] = trainer_python_path(self.python_path, env.get("PYTHONPATH"))
            self.log.info("Running the trainer: %s -m %s --job <%s>", self.python, TRAINER_MODULE, JOB_NAME)
            self._run(cmd, env, tmp)
            return parse_fit_result(json.loads(result_path.read_text()), where="the trainer")

    def _run(self, cmd: list[str], env: dict[str, str], cwd: Path) -> None:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd
        )
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            self.log.info("trainer | %s", line.rstrip())
            tail = [*tail, line.rstrip()][-20:]
        status = proc.wait()
        if status == 0:
            return
        error = TrainingRejectedError if status == EXIT_REJECTED else TrainingError
        raise error(f"the trainer exited with status {status}; its last lines:\n" + "\n".join(tail))
