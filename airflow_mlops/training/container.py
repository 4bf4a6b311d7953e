"""A trainer container's settings: Kubernetes-style resource quantities, the user it runs as over
a local artifact store, and the credentials apart from the rest of its environment.

No Airflow and no Docker: plain values in, plain values out.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

# The settings of a trainer environment that are secrets: sent on stdin, never in the environment.
from airflow_mlops.training.job import STDIN_CREDENTIALS

TRAINER_USER = "1000:1000"
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def cpu_count(value: str) -> float:
    """A Kubernetes-style cpu quantity (``"4"``, ``"500m"``) as a number of cores."""
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


def memory_bytes(value: str) -> int:
    """``"16Gi"``, ``"512Mi"``, ``"2G"`` or ``"8g"`` as bytes (binary units)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgGtT]?)i?", value.strip())
    if not match:
        raise ValueError(f"not a memory size: {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def local_store_user(job_path: Path) -> str:
    """The container's user for a local artifact store, so the trainer reads its inputs and writes
    the run's training folder without anything being opened to others: a non-root worker runs the
    trainer as itself (it owns them); a root worker hands the folder, ``job.json`` and the training
    table to 1000:1000 and runs the trainer as that -- not the holdout, which the trainer never
    reads. Never root."""
    uid = os.getuid()
    if uid != 0:
        return f"{uid}:{os.getgid()}"
    handed = [job_path.parent, job_path]
    try:
        train = json.loads(job_path.read_text())["inputs"]["train"]["uri"]
        handed.append(Path(train.removeprefix("file://")))
    except (OSError, ValueError, KeyError, TypeError):
        pass  # the trainer refuses a bad job.json itself, with the reason
    for path in handed:
        if path.exists():
            os.chown(path, 1000, 1000)
    return TRAINER_USER


def split_secrets(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``(settings, secrets)`` of a trainer environment: the credentials apart from the rest."""
    secrets = {k: v for k, v in env.items() if k in STDIN_CREDENTIALS}
    return {k: v for k, v in env.items() if k not in STDIN_CREDENTIALS}, secrets
