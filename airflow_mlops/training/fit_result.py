"""The fit step's interface, whichever backend runs it: the trainer's arguments for a job, and its
result read back (a dict, its JSON, or log lines ending in the result marker)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow_mlops.artifacts import ArtifactRef, ArtifactStore
from airflow_mlops.exceptions import TrainingError
from airflow_mlops.training.job import RESULT_MARKER

#: The module the fit step runs (``python -m airflow_mlops.training``).
TRAINER_MODULE = "airflow_mlops.training"
#: The names, under the training stage's prefix, of the trained weights and of the job.
WEIGHTS_NAME = "weights"
JOB_NAME = "job.json"


def store_root_uri(store: ArtifactStore) -> str:
    """The absolute root of a store, as the trainer's job records it."""
    return store.uri_for().rstrip("/") if store.is_s3 else store.uri_for()


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
