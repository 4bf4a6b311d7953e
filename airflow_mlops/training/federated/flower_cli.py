"""The ``flwr`` command lines of a federated run, and the parsing of what they print.

The operator submits (``flwr run <app> mlops --run-config <file> --format json``), the trigger
polls (``flwr ls mlops --run-id <id> --format json``) and ``on_kill`` stops (``flwr stop <id>
mlops``). The SuperLink connection ``mlops`` is written, per task, into a private Flower config
home (``FLWR_HOME``) from the Airflow connection's address and TLS settings
(:func:`write_flower_home`): nothing is read from the worker's own ``~/.flwr``.

Standard library only (the trigger imports it in the triggerer).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_mlops.exceptions import TrainingError, TrainingRejectedError

#: The SuperLink connection's name in the private Flower config.
CONNECTION_NAME = "mlops"
#: Statuses of a finished run (``flwr ls``): the first is success.
COMPLETED, FAILED, STOPPED = "finished:completed", "finished:failed", "finished:stopped"
_ADDRESS = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


@dataclass(frozen=True)
class SuperLink:
    """How to reach the SuperLink's Control API (from the Airflow connection).

    :param address: ``host:port``.
    :param insecure: plain HTTP (a SuperLink started with ``--insecure``: one machine, tests).
    :param root_certificates: path of the CA bundle that signed the SuperLink's certificate.
    :param cli: the ``flwr`` executable (the Flower CLI is installed beside Airflow, or in its
        own environment: its path).
    """

    address: str
    insecure: bool = False
    root_certificates: str | None = None
    cli: str = "flwr"

    def __post_init__(self) -> None:
        if not _ADDRESS.match(self.address):
            raise TrainingRejectedError(
                f"SuperLink address {self.address!r} is not host:port; set the Flower connection's host and port"
            )
        if self.insecure and self.root_certificates:
            raise TrainingRejectedError(
                "the Flower connection sets both insecure and root_certificates; choose one"
            )


def write_flower_home(home: Path, superlink: SuperLink) -> dict[str, str]:
    """Write ``home/config.toml`` naming the SuperLink as :data:`CONNECTION_NAME`; the environment
    (``FLWR_HOME``) the ``flwr`` commands run with."""
    home.mkdir(parents=True, exist_ok=True)
    lines = [
        "[superlink]",
        f'default = "{CONNECTION_NAME}"',
        "",
        f"[superlink.{CONNECTION_NAME}]",
        f"address = {json.dumps(superlink.address)}",
        f"insecure = {'true' if superlink.insecure else 'false'}",
    ]
    if superlink.root_certificates:
        lines.append(f"root-certificates = {json.dumps(superlink.root_certificates)}")
    (home / "config.toml").write_text("\n".join(lines) + "\n")
    return {"FLWR_HOME": str(home)}


def write_run_config(path: Path, values: Mapping[str, Any]) -> Path:
    """The run config as a TOML file of strings, numbers and booleans (``--run-config <file>``)."""
    lines = []
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        elif isinstance(value, str):
            text = json.dumps(value)  # a TOML basic string is a JSON string
        else:
            raise TypeError(f"run config {key}: {type(value).__name__} is not a TOML scalar")
        lines.append(f"{key} = {text}")
    path.write_text("\n".join(lines) + "\n")
    return path


def run_command(superlink: SuperLink, app: Path, run_config: Path) -> list[str]:
    return [
        superlink.cli,
        "run",
        str(app),
        CONNECTION_NAME,
        "--run-config",
        str(run_config),
        "--format",
        "json",
    ]


def list_command(superlink: SuperLink, run_id: int) -> list[str]:
    return [superlink.cli, "ls", CONNECTION_NAME, "--run-id", str(run_id), "--format", "json"]


def stop_command(superlink: SuperLink, run_id: int) -> list[str]:
    return [superlink.cli, "stop", str(run_id), CONNECTION_NAME, "--format", "json"]


def _json_object(stdout: str, what: str) -> dict[str, Any]:
    start = stdout.find("{")
    try:
        data = json.loads(stdout[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise TrainingError(f"{what}: the Flower CLI printed no JSON object: {stdout.strip()[-500:]!r}")
    if not data.get("success", False):
        raise TrainingError(f"{what} failed: {data.get('error-message') or data}")
    return data


def parse_run(stdout: str) -> dict[str, Any]:
    """``flwr run --format json``: ``{"run_id": int, "fab_hash": str}``."""
    data = _json_object(stdout, "flwr run")
    try:
        return {"run_id": int(data["run-id"]), "fab_hash": str(data.get("fab-hash", ""))}
    except (KeyError, TypeError, ValueError) as exc:
        raise TrainingError(f"flwr run: no run-id in its output {data}") from exc


def parse_status(stdout: str, run_id: int) -> dict[str, Any]:
    """``flwr ls --run-id --format json``: ``{"status", "details", "fab_hash", "elapsed"}``."""
    data = _json_object(stdout, "flwr ls")
    for run in data.get("runs") or []:
        if str(run.get("run-id")) == str(run_id):
            return {
                "status": str(run.get("status", "")),
                "details": str(run.get("status-details", "")),
                "fab_hash": str(run.get("fab-hash", "")),
                "elapsed": run.get("elapsed"),
            }
    raise TrainingError(f"flwr ls: the SuperLink does not know run {run_id}")


def is_finished(status: str) -> bool:
    return status.startswith("finished")


def run_config_values(
    *,
    job: Mapping[str, Any],
    result_key: str,
    settings: Mapping[str, Any],
    app_sha256: str,
    epsilon: float | None = None,
) -> dict[str, Any]:
    """The run config of one run (``[tool.flwr.app.config]`` of the app) from the job's reference,
    where its result goes, and the spec's ``training.federated`` (durations in seconds)."""
    privacy = settings.get("privacy") or {}
    return {
        "job-uri": str(job["uri"]),
        "job-sha256": str(job["sha256"]),
        "job-size": int(job["size"]),
        "result-key": result_key,
        "rounds": int(settings.get("rounds", 3)),
        "strategy": str(settings.get("strategy", "fedavg")),
        "proximal-mu": float(settings.get("proximal_mu", 0.0))
        if settings.get("strategy") == "fedprox"
        else 0.0,
        "min-clients": int(settings.get("min_clients", 2)),
        "fraction-train": float(settings.get("fraction_train", 1.0)),
        "round-timeout": float(settings.get("round_timeout", 600.0)),
        "connect-timeout": float(settings.get("connect_timeout", 300.0)),
        "dp-clipping-norm": float(privacy.get("clipping_norm", 0.0)),
        "dp-noise-multiplier": float(privacy.get("noise_multiplier", 0.0)),
        "data": str(settings.get("data", "partitions")),
        "partitions": int(settings.get("partitions") or 0),
        "app-sha256": app_sha256,
        "dp-epsilon": float(epsilon or 0.0),
    }


def call(superlink: SuperLink, argv: list[str], *, timeout: float = 120.0) -> str:
    """Run a ``flwr`` command with a private Flower home and this package on its ``PYTHONPATH``
    (``flwr run`` imports the app's components); its output (stdout and stderr).

    :raises TrainingError: the CLI is missing, timed out or exited non-zero (the message has its
        last output).
    """
    import os
    import subprocess
    import tempfile

    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    # `flwr run` imports the app's components (this package) to check them before it bundles them
    package_root = str(Path(__file__).resolve().parents[3])
    with tempfile.TemporaryDirectory(prefix="mlops-flwr-") as home:
        env = {**base, **write_flower_home(Path(home), superlink), "PYTHONPATH": package_root}
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        except FileNotFoundError:
            raise TrainingError(
                f"the Flower CLI {superlink.cli!r} is not installed on this worker; install flwr (see "
                "docs/training.md) or set the Flower connection's extra.cli to its path"
            ) from None
        except subprocess.TimeoutExpired:
            raise TrainingError(f"{argv[0]} {argv[1]} did not answer within {timeout:.0f}s") from None
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise TrainingError(
            f"{argv[0]} {argv[1]} exited with status {proc.returncode}: {output.strip()[-1000:]}"
        )
    return output
