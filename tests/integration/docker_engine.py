"""The private Docker engine of the suite (scripts/docker_engine.sh) and the images built on it.

Nothing here skips: a machine where the engine cannot start fails the tests that need it, with the
engine's log, so a container check never passes silently."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.integration.conftest import ROOT

SCRIPT = ROOT / "scripts" / "docker_engine.sh"
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
TRAINER_TAG = "airflow-mlops/trainer:test"


class EngineError(RuntimeError):
    """The engine or a build failed; the message carries the output."""


@dataclass
class Engine:
    host: str  # DOCKER_HOST
    images: dict[str, str]  # BASE_IMAGE, TORCH_IMAGE -> tag
    started_here: bool

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def docker(
        self, *args: str, timeout: float = 600, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [DOCKER, *args], env=self.env, capture_output=True, text=True, timeout=timeout, input=input
        )
        if check and proc.returncode != 0:
            raise EngineError(
                f"docker {' '.join(args[:3])} ... failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
            )
        return proc

    def inspect(self, container: str) -> dict[str, Any] | None:
        proc = self.docker("inspect", container, check=False)
        return json.loads(proc.stdout)[0] if proc.returncode == 0 else None

    def containers(self, *labels: str, all: bool = True) -> list[str]:
        args = ["ps", "-q", "--no-trunc", *(["-a"] if all else [])]
        for label in labels:
            args += ["--filter", f"label={label}"]
        return self.docker(*args).stdout.split()


def _script(*args: str, timeout: float = 1800) -> str:
    proc = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise EngineError(
            f"scripts/docker_engine.sh {' '.join(args)} failed:\n{(proc.stdout + proc.stderr)[-5000:]}"
        )
    return proc.stdout


def start_engine() -> Engine:
    """Start the private engine (or use the one already running) and build the base images."""
    was_running = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True).returncode == 0
    out = _script("start", timeout=600)
    host = next(line.split("=", 1)[1] for line in out.splitlines() if line.startswith("export DOCKER_HOST="))
    images = dict(line.split("=", 1) for line in _script("bases").splitlines() if "=" in line)
    return Engine(host=host, images=images, started_here=not was_running)


def stop_engine(engine: Engine) -> None:
    """Stop the engine by its pid file, if this run started it."""
    if engine.started_here:
        _script("stop", timeout=120)


def trainer_image(engine: Engine) -> str:
    """images/trainer on the CPU torch base, by scripts/build_images.sh (under its lock: a build the
    suite started in the background is waited for, not repeated)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build_images.sh"), "trainer"],
        env={**engine.env, "MLOPS_TRAINER_TAG": TRAINER_TAG},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise EngineError(f"scripts/build_images.sh trainer failed:\n{(proc.stdout + proc.stderr)[-5000:]}")
    return TRAINER_TAG


def watch(
    engine: Engine, labels: Sequence[str], stop: Any, seen: dict[str, dict[str, Any]], counts: list[int]
) -> None:
    """Until ``stop`` is set: record ``docker inspect`` of every live container with ``labels``
    (by id) and how many were alive at each look."""
    while not stop.is_set():
        ids = engine.containers(*labels, all=False)
        counts.append(len(ids))
        for cid in ids:
            if cid not in seen and (info := engine.inspect(cid)) is not None:
                seen[cid] = info
        stop.wait(0.2)
