"""The training stage: prepare -> fit -> package, with a swappable fit step.

- :class:`TrainingPrepareOperator` splits the accepted rows into train/holdout, stores both and
  writes the trainer's ``job.json`` (inputs by :class:`~airflow_mlops.artifacts.ArtifactRef`,
  config, output key);
- the fit step runs ``python -m airflow_mlops.training --job <ref>`` (see
  :mod:`airflow_mlops.training.job`) and returns its result ref: :class:`ModelFitOperator` here
  (a subprocess of the worker), ``ModelFitPodOperator`` (Kubernetes, in
  :mod:`airflow_mlops.operators.training_kubernetes`) or ``ModelFitDockerOperator`` (in
  :mod:`airflow_mlops.operators.training_docker`);
- :class:`ModelPackageOperator` checks the weights are the ones this run's job asked for,
  packages them as an MLflow pyfunc model, stores it and logs the MLflow run.

Credentials pass explicitly: the trainer subprocess gets an environment built from an allow-list
plus the S3 credentials of the artifact connection, never the worker's whole environment (and
so never an MLflow password).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_mlops.artifacts import ArtifactRef, ArtifactStore
from airflow_mlops.exceptions import (
    ArtifactIntegrityError,
    DataError,
    TrainingError,
    TrainingRejectedError,
)
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.operators.links import MLflowRunLink
from airflow_mlops.training.job import EXIT_REJECTED, RESULT_MARKER  # job.py imports no torch

TRAINER_MODULE = "airflow_mlops.training"
WEIGHTS_NAME = "weights"
JOB_NAME = "job.json"

# Environment variables the local trainer subprocess inherits from the worker (nothing else):
# the interpreter's needs, locale, GPU selection, TLS trust, proxies, and the standard AWS
# credential chain the worker's own artifact store uses when no connection is set.
_INHERITED_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
_AWS_CHAIN_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CA_BUNDLE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)


def trainer_arguments(job: Any, *, result: str | None = None, print_result: bool = False) -> list[str]:
    """The trainer's arguments for a job ref (a dict, an :class:`ArtifactRef` or its JSON)."""
    ref = ArtifactRef.from_dict(json.loads(job) if isinstance(job, str) else job)
    args = ["--job", json.dumps(ref.to_dict(), sort_keys=True, separators=(",", ":"))]
    if result:
        args += ["--result", result]
    if print_result:
        args.append("--print-result")
    return args


def parse_fit_result(value: Any, *, where: str = "the fit step") -> dict[str, Any]:
    """The fit step's result: a dict (local, KPO), its JSON, or log lines ending in the marker (Docker)."""
    data: Any = value
    if isinstance(value, (list, tuple)):
        value = "\n".join(str(v) for v in value)
    if isinstance(value, str):
        lines = [ln for ln in value.strip().splitlines() if ln.strip()]
        marked = [ln.split(RESULT_MARKER, 1)[1] for ln in lines if RESULT_MARKER in ln]
        text = marked[-1] if marked else (lines[-1] if lines else "")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TrainingError(f"{where} returned no trainer result (last line {text[:200]!r})") from exc
    if not isinstance(data, Mapping) or data.get("format_version") != 1 or "weights" not in data:
        raise TrainingError(f"{where} returned {str(data)[:200]!r}, not a trainer result (format_version 1)")
    return {"format_version": 1, "weights": dict(data["weights"]), "metrics": dict(data.get("metrics") or {})}


def store_root_uri(store: ArtifactStore) -> str:
    """The absolute root of a store, as the trainer's job records it."""
    return store.uri_for().rstrip("/") if store.is_s3 else store.uri_for()


def s3_environment(aws_conn_id: str | None) -> dict[str, str]:
    """S3 settings for a trainer process: from the Airflow AWS connection when one is named (the
    only place credentials are read), else the worker's own AWS credential chain variables."""
    if not aws_conn_id:
        return {k: os.environ[k] for k in _AWS_CHAIN_ENV if k in os.environ}
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=aws_conn_id)
    env: dict[str, str] = {}
    credentials = hook.get_credentials()
    if credentials.access_key:
        env["AWS_ACCESS_KEY_ID"] = credentials.access_key
        env["AWS_SECRET_ACCESS_KEY"] = credentials.secret_key or ""
    if credentials.token:
        env["AWS_SESSION_TOKEN"] = credentials.token
    endpoint = hook.conn_config.endpoint_url
    if endpoint:
        env["AWS_ENDPOINT_URL"] = str(endpoint)
    if hook.conn_region_name:
        env["AWS_DEFAULT_REGION"] = str(hook.conn_region_name)
    return env


def trainer_python_path(folders: Sequence[str], inherited: str | None) -> str:
    """``PYTHONPATH`` of the local trainer: ``training.python_path``, the dags folder (where the
    worker imports your code from), then what the worker had."""
    from airflow.configuration import conf

    parts = [
        *folders,
        conf.get("core", "dags_folder", fallback="") or "",
        *(inherited or "").split(os.pathsep),
    ]
    seen: list[str] = []
    for part in parts:
        if part and part not in seen:
            seen.append(part)
    return os.pathsep.join(seen)


def local_trainer_environment(aws_conn_id: str | None, *, s3: bool) -> dict[str, str]:
    """The whole environment of the local trainer subprocess (see the module docstring)."""
    env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    if s3:
        env.update(s3_environment(aws_conn_id))
    return env


class TrainingPrepareOperator(MLOpsBaseOperator):
    """Split the accepted rows into train/holdout and write the trainer's job.

    :param data: ``ArtifactRef`` of the accepted rows (templated).
    :param target: label column; ``positive_label`` is its positive class.
    :param features: feature columns (default: every column but the target).
    :param model: ``mlp``, ``cnn`` or your own ``package.module:fit``.
    :param hyperparameters: the trainer's ``training.params`` (not called ``params``: that name is
        Airflow's own task params).
    :param options: settings for your own fit entrypoint.
    :param privacy: ``training.privacy`` (DP-SGD budget), or None.
    :param holdout_fraction: share of rows held out, stratified by label, for the gates.
    :param seed: seeds the split and the trainer; ``device`` is ``auto``, ``cpu`` or ``cuda``;
        ``precision`` ``auto``, ``fp32`` or ``bf16``.
    :param validation_fraction: share of the training rows the built-in trainer validates on
        (default: the trainer's, 0.1).
    :param threshold: the rule that chooses the operating threshold on the trainer's validation
        rows (``{"rule": "best_f1"}``, ``{"rule": "min_precision", "value": 0.8}``, ...; a number
        is a fixed threshold); default ``best_f1``. See :mod:`airflow_mlops.training.threshold`.

    Returns ``job`` (the ref ``--job`` takes), ``holdout`` and ``train`` refs, ``features``,
    ``train_rows``, ``holdout_rows`` and ``data_sha256``.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "data")
    stage = "train"
    ui_color = "#fde2e4"

    def __init__(
        self,
        *,
        data: Any,
        target: str,
        features: Sequence[str] | None = None,
        positive_label: Any = 1,
        task: str | None = None,
        model: str = "mlp",
        hyperparameters: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        early_stopping_patience: int | None = None,
        privacy: dict[str, Any] | None = None,
        holdout_fraction: float = 0.2,
        seed: int = 42,
        device: str = "auto",
        precision: str = "auto",
        threshold: Mapping[str, Any] | float | None = None,
        validation_fraction: float | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_mlops.training.threshold import DEFAULT_RULE, check_rule

        super().__init__(**kwargs)
        # Checked here, so a bad rule fails the DAG at parse time rather than in the trainer.
        self.threshold = check_rule(
            DEFAULT_RULE if threshold is None else threshold, where=f"task {kwargs.get('task_id')}: threshold"
        )
        self.validation_fraction = validation_fraction
        self.data = data
        self.target = target
        self.features = list(features) if features else None
        self.positive_label = positive_label
        self.task = task
        self.model = model
        self.early_stopping_patience = early_stopping_patience
        self.hyperparameters = dict(hyperparameters or {})
        self.options = dict(options or {})
        self.privacy = dict(privacy) if privacy else None
        self.holdout_fraction = holdout_fraction
        self.seed = seed
        self.device = device
        self.precision = precision

    def trainer_config(self, features: list[str], task: str | None = None) -> dict[str, Any]:
        """The trainer config of the job (see :mod:`airflow_mlops.training.trainer`)."""
        config: dict[str, Any] = {
            "target": self.target,
            "features": features,
            "positive_label": self.positive_label,
            "task": task if task is not None else self.task,
            "params": self.hyperparameters,
            "seed": self.seed,
            "device": self.device,
            "threshold": dict(self.threshold),
        }
        if ":" not in self.model:  # the built-in trainer: networks and estimators
            if self.validation_fraction is not None:
                config["validation_fraction"] = self.validation_fraction
            if self.early_stopping_patience is not None:
                config["early_stopping_patience"] = self.early_stopping_patience
        if self.model in ("mlp", "cnn"):
            config["precision"] = self.precision
            if self.privacy is not None:
                config["privacy"] = self.privacy
        return config

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.data.io import read_table, write_table
        from airflow_mlops.data.split import stratified_split
        from airflow_mlops.training.job import TrainingJob, write_job

        store = self.artifact_store()
        with self.scratch() as tmp:
            from airflow_mlops.tasks import describe, resolve_task

            df = read_table(self.fetch(self.data, tmp / "in"))
            features = self.features or [c for c in map(str, df.columns) if c != self.target]
            if self.target not in df.columns:
                raise DataError(
                    f"target column {self.target!r} is not in the data (columns: {', '.join(map(str, df.columns))})"
                )
            task = resolve_task(self.task, df[self.target], column=self.target)
            self.log.info(
                "task: %s%s",
                describe(task, positive_label=self.positive_label),
                "" if self.task else " (inferred from the target column; set `task:` in the spec to fix it)",
            )
            train_df, holdout_df = stratified_split(
                df, target=self.target, holdout_fraction=self.holdout_fraction, seed=self.seed, task=task
            )
            write_table(train_df, tmp / "train.parquet")
            write_table(holdout_df, tmp / "holdout.parquet")
            train_ref = store.put_file(
                tmp / "train.parquet",
                self.artifact_key(context, "train.parquet"),
                producer=self.task_id,
                rows=len(train_df),
            )
            holdout_ref = store.put_file(
                tmp / "holdout.parquet",
                self.artifact_key(context, "holdout.parquet"),
                producer=self.task_id,
                rows=len(holdout_df),
            )
        job = TrainingJob(
            store_root=store_root_uri(store),
            train=train_ref,
            model=self.model,
            config=self.trainer_config(features, task),
            options=self.options,
            output_key=self.artifact_key(context, WEIGHTS_NAME),
        )
        job_ref = write_job(store, self.artifact_key(context, JOB_NAME), job, producer=self.task_id)
        self.log.info(
            "training job %s: %d training rows, %d holdout rows, model %s",
            job_ref.uri,
            len(train_df),
            len(holdout_df),
            self.model,
        )
        data_sha = self.data["sha256"] if isinstance(self.data, dict) else getattr(self.data, "sha256", "")
        return {
            "job": job_ref.to_dict(),
            "train": train_ref.to_dict(),
            "holdout": holdout_ref.to_dict(),
            "features": features,
            "task": task,
            "train_rows": len(train_df),
            "holdout_rows": len(holdout_df),
            "data_sha256": data_sha,
        }


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


class ModelPackageOperator(MLOpsBaseOperator):
    """Package the trained weights for MLflow and log the training run.

    Refuses weights other than the ones this run's job asked for (the fit step's result names the
    artifact; its URI must be the job's output key and its content must match the sha256). The
    MLflow run is found again by its ``mlops.airflow_run`` tag on retries.

    Any flavor packages alike: ``mlflow.pyfunc.load_model`` predicts through
    :mod:`airflow_mlops.registry.pyfunc_model`, the model's ``requirements.txt`` pins its
    library, and the run's params say its ``task``, ``flavor`` and ``framework``.

    :param fit_result: the fit step's return value (templated).
    :param prepared: the prepare step's return value (templated).
    :param hyperparameters: logged as ``param_<name>``; ``backend`` is logged as a tag.
    :param datasets: ``{role: ArtifactRef}`` of the tables the model descends from, e.g.
        ``{"input": validate.output["data"], "accepted": screen.output["accepted"],
        "quarantine": screen.output["quarantine"]}`` (templated). Each, and the ``train`` and
        ``holdout`` splits of ``prepared``, is logged as an MLflow dataset input of the run
        (source: its URI, digest: its sha256; see :mod:`airflow_mlops.registry.mlflow_datasets`).

    Returns ``{"model", "holdout"}`` refs, ``mlflow_run_id`` and ``train_metrics``.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "fit_result", "prepared", "datasets")
    stage = "train"
    ui_color = "#fde2e4"
    operator_extra_links = (MLflowRunLink(),)

    def __init__(
        self,
        *,
        fit_result: Any,
        prepared: Any,
        target: str,
        model: str = "mlp",
        hyperparameters: dict[str, Any] | None = None,
        holdout_fraction: float = 0.2,
        seed: int = 42,
        backend: str = "local",
        experiment: str | None = None,
        mlflow_conn_id: str = "mlflow_default",
        datasets: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.datasets = dict(datasets or {})
        self.fit_result = fit_result
        self.prepared = prepared
        self.target = target
        self.model = model
        self.hyperparameters = dict(hyperparameters or {})
        self.holdout_fraction = holdout_fraction
        self.seed = seed
        self.backend = backend
        self.experiment = experiment or self.pipeline
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops.registry.mlflow_registry import (
            TAG_DATA_SHA256,
            log_run_data,
            package_model,
            start_or_resume_run,
        )

        store = self.artifact_store()
        result = parse_fit_result(self.fit_result)
        weights = ArtifactRef.from_dict(result["weights"])
        expected = store.uri_for(self.artifact_key(context, WEIGHTS_NAME))
        if weights.uri.rstrip("/") != expected.rstrip("/"):
            raise ArtifactIntegrityError(
                f"the fit step reported weights at {weights.uri}, but this run's training job writes "
                f"them to {expected}; refusing a model from elsewhere: re-run the training stage"
            )
        prepared = dict(self.prepared)
        client = self.mlflow_hook.get_conn()
        with self.scratch() as tmp:
            weights_dir = self.fetch(weights, tmp / "in")
            train_metrics = json.loads((weights_dir / "metrics.json").read_text())
            from airflow_mlops.training.flavors import read_config  # reads JSON only

            config = read_config(weights_dir)
            threshold = config.get("threshold")  # the operating threshold the trainer stored (binary)
            if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
                train_metrics["threshold"] = float(threshold)
            model_facts = _model_facts(config)
            # requirements.txt: the flavor's library, pinned (registry.mlflow_registry.SERVING_REQUIREMENTS)
            package_model(weights_dir, tmp / "model")
            model_ref = store.put_directory(
                tmp / "model", self.artifact_key(context, "model"), producer=self.task_id
            )
        run_id = start_or_resume_run(
            client,
            experiment=self.experiment,
            pipeline=self.pipeline,
            airflow_run=self.airflow_run(context),
            run_name=f"{self.pipeline} {context['run_id']}",
        )
        scalar_metrics = {
            f"train_{k}": float(v)
            for k, v in train_metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        log_run_data(
            client,
            run_id,
            params={
                **{f"param_{k}": v for k, v in self.hyperparameters.items()},
                "model": self.model,
                "features": ",".join(prepared.get("features") or []),
                "target": self.target,
                "seed": self.seed,
                "holdout_fraction": self.holdout_fraction,
                "train_rows": prepared.get("train_rows"),
                "holdout_rows": prepared.get("holdout_rows"),
                **({"operating_threshold": threshold} if threshold is not None else {}),
                **model_facts,
            },
            metrics=scalar_metrics,
            tags={
                TAG_DATA_SHA256: prepared.get("data_sha256") or "",
                "mlops.model_sha256": model_ref.sha256,
                "mlops.weights_sha256": weights.sha256,
                "mlops.training_backend": self.backend,
            },
        )
        client.log_dict(run_id, train_metrics, "training/metrics.json")
        self._log_datasets(client, run_id, prepared)
        return {
            "model": model_ref.to_dict(),
            "holdout": dict(prepared["holdout"]),
            "mlflow_run_id": run_id,
            "train_metrics": {
                k: v for k, v in train_metrics.items() if isinstance(v, (int, float, str)) and k != "history"
            },
        }

    def _log_datasets(self, client: Any, run_id: str, prepared: Mapping[str, Any]) -> None:
        """Log ``datasets`` and the splits as MLflow dataset inputs, each read verified (only its
        first rows and parquet footer: no table is loaded in full)."""
        from airflow_mlops.registry.mlflow_datasets import (
            DATASET_CONTEXTS,
            log_dataset_inputs,
            table_dataset,
        )

        refs = {**self.datasets, "train": prepared.get("train"), "holdout": prepared.get("holdout")}
        entries = []
        with self.scratch() as tmp:
            for role, ref in refs.items():
                if not ref:
                    continue
                path = self.fetch(ref, tmp / role)
                dataset = table_dataset(ref, name=f"{self.pipeline}.{role}", path=path)
                entries.append((dataset, DATASET_CONTEXTS.get(role, role)))
        log_dataset_inputs(client, run_id, entries)


def _model_facts(config: Mapping[str, Any]) -> dict[str, str]:
    """The task, flavor and library of the trained model (run params an MLflow user filters on)."""
    framework = config.get("framework") or {}
    facts = {"task": str(config["task"]), "flavor": str(config["flavor"])}
    if framework.get("name"):
        facts["framework"] = f"{framework['name']}=={framework.get('version')}"
    return facts
