"""The server's side of federated training, without Flower: the settings of a run, the shared
encoding, the class weight, and the global model written as an ordinary model of the project.

:mod:`.server_app` calls these inside the SuperLink's ServerApp. The global model is saved with
:func:`~airflow_mlops.training.flavors.save_model_dir` (safetensors and ``model_config.json``), put
into the artifact store at the job's output key, and checked to load, exactly like the trainer's
output (:func:`airflow_mlops.training.job.run_job`); the fit result (the weights' reference and the
metrics of every round) goes next to it at ``result-key``.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.exceptions import MLOpsError, TrainingRejectedError

if TYPE_CHECKING:
    from airflow_mlops.training.job import TrainingJob

STRATEGIES = ("fedavg", "fedprox")
DATA_MODES = ("partitions", "node")
#: The fit result's name next to the weights (``result-key`` of the run config).
RESULT_NAME = "federated_result.json"


@dataclass(frozen=True)
class RunSettings:
    """The run config of one federated run (``[tool.flwr.app.config]`` of the app)."""

    job_uri: str
    job_sha256: str
    job_size: int
    result_key: str
    rounds: int
    strategy: str
    proximal_mu: float
    min_clients: int
    fraction_train: float
    round_timeout: float
    connect_timeout: float
    dp_clipping_norm: float
    dp_noise_multiplier: float
    data: str
    partitions: int = 0
    app_sha256: str = ""
    dp_epsilon: float = 0.0

    @classmethod
    def from_run_config(cls, rc: Mapping[str, Any]) -> RunSettings:
        try:
            settings = cls(
                job_uri=str(rc["job-uri"]),
                job_sha256=str(rc["job-sha256"]),
                job_size=int(rc["job-size"]),
                result_key=str(rc["result-key"]),
                rounds=int(rc["rounds"]),
                strategy=str(rc["strategy"]),
                proximal_mu=float(rc["proximal-mu"]),
                min_clients=int(rc["min-clients"]),
                fraction_train=float(rc["fraction-train"]),
                round_timeout=float(rc["round-timeout"]),
                connect_timeout=float(rc["connect-timeout"]),
                dp_clipping_norm=float(rc["dp-clipping-norm"]),
                dp_noise_multiplier=float(rc["dp-noise-multiplier"]),
                data=str(rc["data"]),
                partitions=int(rc.get("partitions", 0)),
                app_sha256=str(rc.get("app-sha256", "")),
                dp_epsilon=float(rc.get("dp-epsilon", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainingRejectedError(
                f"the federated run config is incomplete or malformed: {exc!r}"
            ) from exc
        problems = [
            f"strategy {settings.strategy!r} is not one of {STRATEGIES}"
            if settings.strategy not in STRATEGIES
            else "",
            f"data {settings.data!r} is not one of {DATA_MODES}" if settings.data not in DATA_MODES else "",
            "job-uri and result-key must be set" if not (settings.job_uri and settings.result_key) else "",
            "rounds and min-clients must be at least 1"
            if min(settings.rounds, settings.min_clients) < 1
            else "",
        ]
        if any(problems):
            raise TrainingRejectedError("federated run config: " + "; ".join(p for p in problems if p))
        return settings

    @property
    def private(self) -> bool:
        """DP on client updates (clipped on the clients, noised on the server)."""
        return self.dp_clipping_norm > 0


def trainer_config(job: TrainingJob) -> dict[str, Any]:
    """The job's trainer config, checked as the trainer checks it; binary ``mlp`` only."""
    from airflow_mlops.training.config import check_config

    if job.model != "mlp":
        raise TrainingRejectedError(
            f"federated training trains the built-in `mlp`; this job's model is {job.model}"
        )
    cfg = check_config({**job.config, "model": job.model})
    if cfg.get("task") not in (None, "binary"):
        raise TrainingRejectedError(
            f"federated training trains the built-in `mlp` on a binary task; this job is {cfg['model']} "
            f"({cfg.get('task') or 'task inferred'})"
        )
    return cfg


def pos_weight(summaries: Sequence[Mapping[str, Any]], class_weight: str) -> float:
    """The positive class's loss weight from every client's counts (``balanced``: negatives / positives)."""
    rows = sum(int(s["train_rows"]) for s in summaries)
    positives = sum(int(s["train_positives"]) for s in summaries)
    if positives == 0 or positives == rows:
        raise TrainingRejectedError(
            f"the clients' training rows hold {positives} positive(s) of {rows}: both classes are needed"
        )
    return (rows - positives) / positives if class_weight == "balanced" else 1.0


def negative_label(summaries: Sequence[Mapping[str, Any]]) -> str:
    """The negative class's label (every client must agree: a binary target has one)."""
    names = sorted(set().union(*(set(s["negative_labels"]) for s in summaries)))
    if len(names) != 1:
        raise TrainingRejectedError(
            f"the clients' negative labels are {names}: a binary target has exactly one besides the positive"
        )
    return names[0]


def save_global_model(
    job: TrainingJob,
    settings: RunSettings,
    model: Any,
    preprocessor: Any,
    *,
    negative: str,
    threshold: Mapping[str, Any],
    metrics: Mapping[str, Any],
) -> dict[str, Any]:
    """Write the global model into the store at the job's output key, check it loads, and write the
    fit result at ``result-key``; returns the result (the trainer's format)."""
    from airflow_mlops.labels import label_key
    from airflow_mlops.training.flavors import load_predictor, save_model_dir
    from airflow_mlops.training.job import RESULT_FORMAT_VERSION

    cfg = trainer_config(job)
    store = ArtifactStore(job.store_root)
    features = list(preprocessor.features)
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, str, bool)) or _finite(v)}
    with tempfile.TemporaryDirectory(prefix="mlops-fl-global-") as tmp:
        out = Path(tmp) / "weights"
        out.mkdir()
        save_model_dir(
            out,
            model,
            task="binary",
            target=str(cfg["target"]),
            features=features,
            class_order=[negative, label_key(cfg["positive_label"])],
            positive_label=cfg["positive_label"],
            preprocessor=preprocessor,
            seed=int(cfg["seed"]),
            training={
                "params": cfg["params"],
                "federated": {
                    "rounds": settings.rounds,
                    "strategy": settings.strategy,
                    "min_clients": settings.min_clients,
                    "data": settings.data,
                    **(
                        {
                            "dp_clipping_norm": settings.dp_clipping_norm,
                            "dp_noise_multiplier": settings.dp_noise_multiplier,
                            "dp_epsilon": settings.dp_epsilon,
                        }
                        if settings.private
                        else {}
                    ),
                },
            },
            threshold_choice=threshold,
        )
        (out / "metrics.json").write_text(json.dumps(scalars, indent=2, allow_nan=False) + "\n")
        try:
            load_predictor(out)
        except MLOpsError as exc:
            raise TrainingRejectedError(f"the global model does not load: {exc}") from exc
        ref = store.put_directory(out, job.output_key, producer="federated", model=job.model)
        result = {"format_version": RESULT_FORMAT_VERSION, "weights": ref.to_dict(), "metrics": scalars}
        path = Path(tmp) / RESULT_NAME
        path.write_text(json.dumps(result, allow_nan=False) + "\n")
        store.put_file(path, settings.result_key, producer="federated")
    return result


def _finite(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)
