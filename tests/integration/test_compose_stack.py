"""docker-compose.yaml for real: scripts/compose_e2e.sh on the local Docker engine.

The script builds the stand-in images and the Airflow image, brings the whole stack up with the
e2e override (stand-in images, the host network), waits until every service is healthy, runs the
example training DAG on the Celery worker through the REST API, checks the signed champion in
MLflow, and tears everything down. This test runs it and wants its PASS verdict; it never skips:
an engine that cannot start is a failure with the script's reason.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "compose_e2e.sh"
# A cold run builds every image (pip installs Airflow, MLflow, torch's neighbours) on a shared
# 2-core machine; a cached one takes a few minutes.
TIMEOUT_S = int(os.environ.get("MLOPS_E2E_TEST_TIMEOUT", "5400"))


def test_the_compose_stack_runs_the_example_lifecycle() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    try:
        result = subprocess.run(
            ["bash", str(SCRIPT)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"scripts/compose_e2e.sh ran over {TIMEOUT_S} s; its output ends:\n{out[-8000:]}")
    out = result.stdout
    verdicts = [line for line in out.splitlines() if line.startswith("compose e2e: ")]
    assert result.returncode == 0 and verdicts and verdicts[-1].startswith("compose e2e: PASS"), (
        f"scripts/compose_e2e.sh exited {result.returncode}; its output ends:\n{out[-8000:]}"
    )
