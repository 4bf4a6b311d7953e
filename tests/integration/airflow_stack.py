"""A real Airflow for integration tests: api-server, scheduler, dag-processor (and triggerer) as
separate process groups on 127.0.0.1 (LocalExecutor, SQLite), stopped by their group ids only."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.integration.conftest import ROOT, free_port

AIRFLOW = str(Path(sys.executable).parent / "airflow")
COMPONENTS = ("api-server", "scheduler", "dag-processor")


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"({exc})"


class AirflowStack:
    """Airflow components started as separate process groups; stopped by their group ids only."""

    def __init__(
        self, home: Path, env: dict[str, str], port: int, components: tuple[str, ...] = COMPONENTS
    ) -> None:
        self.home = home
        self.env = env
        self.url = f"http://127.0.0.1:{port}"
        self.logs = home / "component-logs"
        self.components = components
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
        )

    def start(self, *names: str) -> None:
        """Start the components (all of them by default); each log is appended to."""
        self.logs.mkdir(parents=True, exist_ok=True)
        for name in names or self.components:
            with open(self.logs / f"{name}.log", "ab") as log:
                self.procs[name] = subprocess.Popen(
                    [AIRFLOW, name],
                    env=self.env,
                    cwd=ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def stop_component(self, name: str) -> None:
        """Stop one component (SIGTERM to its process group, then SIGKILL), e.g. to restart it."""
        proc = self.procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # the process group this test started
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs.values():
            try:  # the group may still hold children (task supervisors, api workers)
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)

    def create_backfill(self, *args: str, attempts: int = 5) -> None:
        """``airflow backfill create``, retried while SQLite reports ``database is locked``.

        The CLI writes the backfill's runs while the scheduler and dag-processor write to the same
        SQLite file; a write that collides fails at once (WAL snapshot), and Airflow then removes
        the partial backfill so that the same command can simply be run again.
        """
        for attempt in range(1, attempts + 1):
            created = self.cli(*args)
            output = created.stdout + created.stderr
            if created.returncode == 0:
                return
            if "database is locked" not in output or attempt == attempts:
                raise AssertionError(
                    f"airflow {' '.join(args)} failed (attempt {attempt}):\n{output[-3000:]}"
                )
            print(f"backfill create hit 'database is locked' (attempt {attempt}); retrying", file=sys.stderr)
            time.sleep(2)

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise AssertionError(f"Airflow components exited: {dead}")

    def api(self, path: str) -> Any:
        # [core] simple_auth_manager_all_admins: the api-server adds an admin token itself.
        with urllib.request.urlopen(f"{self.url}/api/v2/{path}", timeout=20) as resp:
            return json.load(resp)

    def wait_for(self, what: str, seconds: float, probe: Any) -> Any:
        deadline = time.monotonic() + seconds
        last: Any = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                last = probe()
            except (OSError, urllib.error.URLError, ValueError) as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(2)
        raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}; last: {last!r}")

    def diagnostics(self) -> str:
        parts = [f"--- {name} (tail) ---\n{_tail(self.logs / f'{name}.log')}" for name in self.components]
        task_logs = sorted((self.home / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)
        for path in task_logs[-3:]:
            parts.append(f"--- task log {path.relative_to(self.home)} (tail) ---\n{_tail(path, 3000)}")
        return "\n".join(parts)


@contextmanager
def airflow_stack(
    tmp: Path, env: dict[str, str], *, components: tuple[str, ...] = COMPONENTS, **overrides: str
) -> Iterator[AirflowStack]:
    """A started Airflow; ``overrides`` are extra environment variables (Airflow settings)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **env,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        **overrides,
    }
    stack = AirflowStack(Path(env["AIRFLOW_HOME"]), env, port, components)
    migrate = stack.cli("db", "migrate")
    assert migrate.returncode == 0, (migrate.stdout + migrate.stderr)[-3000:]
    stack.start()
    try:
        yield stack
    except BaseException:
        print(f"Airflow logs under {stack.home}:\n{stack.diagnostics()}", file=sys.stderr)
        raise
    finally:
        stack.stop()


def unpaused_api(stack: AirflowStack, dag_id: str) -> Any:
    """The stack's REST API once it answers and ``dag_id`` is parsed, with that DAG unpaused."""
    from scripts.demo_loop import AirflowAPI, wait_for

    api = AirflowAPI(stack.url)  # all users are admins in this stack: no token needed
    wait_for("the api-server", 180, lambda: api.get("monitor/health"), check=stack.check_alive)
    wait_for(f"the DAG {dag_id}", 180, lambda: api.get(f"dags/{dag_id}"), check=stack.check_alive)
    api.unpause(dag_id)
    return api
