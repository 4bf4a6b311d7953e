"""The distributed topology on one machine, from the distribution's packages, without Docker.

Postgres (Airflow's metadata DB, Celery's result backend, MLflow's backend store), Redis (the Celery
broker), an S3 server (moto, on 127.0.0.1), an MLflow server on Postgres whose artifacts live in S3,
and Airflow with the CeleryExecutor as separate processes: api-server, scheduler, dag-processor,
triggerer and a Celery worker. The artifact store root is on S3 too. Everything binds 127.0.0.1 on
free ports, keeps its state under one base directory, runs in a process group of its own and is
stopped by that group's id only (also at interpreter exit).

Used by ``tests/integration/test_distributed_stack.py`` and by ``scripts/distributed_stack.sh``
(``make distributed``)::

    python -m tests.integration.distributed_stack demo   # the example lifecycle end to end, then stop
    python -m tests.integration.distributed_stack up     # the same, then keep serving until Ctrl-C

A program that is missing is an error that says ``scripts/system_deps.sh`` installs it: this stack
never quietly falls back to SQLite or to a local directory.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.airflow_stack import AIRFLOW, AirflowStack
from tests.integration.conftest import ROOT, free_port

PG_ROOT = Path("/usr/lib/postgresql")
REDIS_SERVER = Path("/usr/bin/redis-server")
BUCKET = "mlops-distributed"
ARTIFACT_ROOT = f"s3://{BUCKET}/artifacts"
MLFLOW_ARTIFACTS = f"s3://{BUCKET}/mlflow"
# Dummy credentials of the local S3 server (moto accepts any).
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "mlops-distributed",
    "AWS_SECRET_ACCESS_KEY": "mlops-distributed",
    "AWS_DEFAULT_REGION": "us-east-1",
}
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "celery-worker")
# Airflow CLI arguments of a component whose name is not its command.
_COMMANDS = {"celery-worker": ("celery", "worker", "--concurrency", "2")}
SYSTEM_DEPS_HINT = "scripts/system_deps.sh installs it (Debian packages postgresql and redis-server)"


class StackError(RuntimeError):
    """The stack cannot start or a service died; the message says which and where its log is."""


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"({exc})"


def postgres_bin(root: Path = PG_ROOT) -> Path:
    """The ``bin`` folder of the newest Postgres installed from the distribution's packages."""
    found = sorted(
        (p.parent for p in root.glob("*/bin/postgres") if p.parent.joinpath("initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise StackError(f"Postgres is not installed: no {root}/<version>/bin/postgres; {SYSTEM_DEPS_HINT}")
    return found[-1]


def redis_server(path: Path = REDIS_SERVER) -> Path:
    if not path.is_file():
        raise StackError(f"Redis is not installed: no {path}; {SYSTEM_DEPS_HINT}")
    return path


def python_drivers() -> None:
    """Airflow 3 talks to Postgres through psycopg2 and, for its async sessions, asyncpg; the
    Celery broker through redis; the S3 server is moto's."""
    import importlib.util

    missing = [m for m in ("psycopg2", "asyncpg", "redis", "moto") if importlib.util.find_spec(m) is None]
    if missing:
        raise StackError(
            f"Python modules missing: {', '.join(missing)}; install the package with its extras: "
            'pip install -c constraints.txt -e ".[all,dev]"'
        )


def _unprivileged(argv: list[str]) -> list[str]:
    """Postgres refuses to run as root: as root, run it as ``nobody`` (setpriv execs, so the
    process started is Postgres itself and its group id is the one recorded)."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise StackError("running as root needs setpriv (util-linux) to start Postgres as nobody")
    return [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv]


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    stop_signal: int = signal.SIGTERM


@dataclass
class Services:
    """Processes started by this module, each the leader of its own process group."""

    logs: Path
    started: list[Service] = field(default_factory=list)
    stopped: bool = False

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> Service:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = Service(name, proc, log, stop_signal)
        self.started.append(service)
        return service

    def check_alive(self) -> None:
        for s in self.started:
            if s.proc.poll() is not None:
                raise StackError(
                    f"{s.name} exited with {s.proc.returncode}; its log {s.log}:\n{_tail(s.log)}"
                )

    def stop(self) -> None:
        """Stop every group (latest first): its stop signal, then SIGKILL what is left. Once."""
        if self.stopped:
            return
        self.stopped = True
        for s in reversed(self.started):
            if s.proc.poll() is None:
                try:
                    os.killpg(s.proc.pid, s.stop_signal)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 30
        for s in reversed(self.started):
            try:
                s.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # the group may still hold children (task supervisors, forked workers)
                os.killpg(s.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                s.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def wait_until(what: str, seconds: float, probe: Callable[[], Any], check: Callable[[], None]) -> Any:
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        check()
        try:
            last = probe()
        except Exception as exc:  # a server that is still starting answers with anything
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    raise StackError(f"timed out after {seconds:.0f} s waiting for {what}; last: {last!r}")


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return bool(resp.status == 200)


@dataclass
class DistributedStack:
    base: Path
    services: Services
    pg_port: int
    redis_port: int
    s3_url: str
    mlflow_url: str
    env: dict[str, str]
    airflow: AirflowStack

    def pg_connect(self, dbname: str = "airflow") -> Any:
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.pg_port, user="postgres", dbname=dbname)

    def s3_client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_url, **_boto_credentials())

    def check_alive(self) -> None:
        self.services.check_alive()
        self.airflow.check_alive()

    def diagnostics(self) -> str:
        parts = [f"--- {s.name} (tail) ---\n{_tail(s.log)}" for s in self.services.started]
        task_logs = sorted((self.base / "airflow" / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)
        parts += [f"--- task log {p.name} (tail) ---\n{_tail(p)}" for p in task_logs[-3:]]
        return "\n".join([*parts, self.airflow.diagnostics()])


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS_ENV["AWS_DEFAULT_REGION"],
    }


def _start_postgres(services: Services, pg_dir: Path, port: int) -> None:
    bindir = postgres_bin()
    data = pg_dir / "data"
    initdb = subprocess.run(
        _unprivileged(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if initdb.returncode != 0:
        raise StackError(f"initdb failed:\n{(initdb.stdout + initdb.stderr)[-3000:]}")
    # TCP on 127.0.0.1 only (trust auth: nothing else can reach it), no unix socket, no fsync.
    services.start(
        "postgres",
        _unprivileged(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ]
        ),
        stop_signal=signal.SIGINT,  # fast shutdown (SIGTERM would wait for every client to leave)
    )


def _create_databases(port: int, names: tuple[str, ...]) -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for name in names:
                cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()


def _pg_ready(port: int) -> bool:
    import psycopg2

    psycopg2.connect(
        host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=2
    ).close()
    return True


def _redis_ready(port: int) -> bool:
    import redis

    return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping())


def airflow_settings(
    *, home: Path, dags: Path, pg_port: int, redis_port: int, api_port: int, s3_url: str, mlflow_url: str
) -> dict[str, str]:
    """The Airflow settings of the distributed topology (the classic first-run failures are the
    shared JWT secret and the execution API URL every worker must reach)."""
    api = f"http://127.0.0.1:{api_port}"
    db = f"postgresql+psycopg2://postgres@127.0.0.1:{pg_port}/airflow"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://postgres@127.0.0.1:{pg_port}/airflow",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        # The worker's and the triggerer's log servers: free ports, not the fixed defaults.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW_MLOPS_ARTIFACT_ROOT": ARTIFACT_ROOT,
        "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps({"conn_type": "mlflow", "host": mlflow_url}),
        "AWS_ENDPOINT_URL": s3_url,
        "MLFLOW_S3_ENDPOINT_URL": s3_url,
        **AWS_ENV,
        "GX_ANALYTICS_ENABLED": "False",
        # One OpenMP/BLAS thread per task: the worker runs two tasks at once, and the poisoning
        # screen's gradient boosting spins its threads for minutes on a busy two-core machine.
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    }


class _CeleryAirflowStack(AirflowStack):
    """An :class:`AirflowStack` whose components may be commands of more than one word, and whose
    liveness check shows the log of a component that exited."""

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}
        if dead:
            logs = "\n".join(f"--- {n} (tail) ---\n{_tail(self.logs / f'{n}.log')}" for n in dead)
            raise StackError(f"Airflow components exited: {dead}\n{logs}")

    def start(self, *names: str) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for name in names or self.components:
            with open(self.logs / f"{name}.log", "ab") as log:
                self.procs[name] = subprocess.Popen(
                    [AIRFLOW, *_COMMANDS.get(name, (name,))],
                    env=self.env,
                    cwd=ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )


@contextmanager
def distributed_stack(
    base: Path, *, dags: Path, connections: dict[str, str] | None = None, say: Callable[[str], None] = print
) -> Iterator[DistributedStack]:
    """Start the whole topology under ``base`` (see the module docstring); stop it on exit.

    ``connections`` are extra environment variables of Airflow (``AIRFLOW_CONN_*``)."""
    base.mkdir(parents=True, exist_ok=True)
    services = Services(base / "logs")
    airflow: _CeleryAirflowStack | None = None

    def stop() -> None:
        if airflow is not None:
            airflow.stop()
        services.stop()

    atexit.register(stop)  # also when the interpreter exits some other way (sys.exit on SIGTERM)
    started = time.monotonic()

    def note(message: str) -> None:
        say(f"[{time.monotonic() - started:4.0f} s] {message}")

    # Postgres's own folder: it runs as nobody, so the folder cannot sit below a 0700 temp dir.
    pg_dir = Path(tempfile.mkdtemp(prefix="mlops-distributed-pg-"))
    if os.geteuid() == 0:
        shutil.chown(pg_dir, "nobody", "nogroup")
    try:
        redis_bin = redis_server()
        python_drivers()
        pg_port, redis_port, s3_port, mlflow_port, api_port = (free_port() for _ in range(5))
        s3_url, mlflow_url = f"http://127.0.0.1:{s3_port}", f"http://127.0.0.1:{mlflow_port}"
        note(f"Postgres on 127.0.0.1:{pg_port}, Redis on :{redis_port}, S3 (moto) on :{s3_port}")
        _start_postgres(services, pg_dir, pg_port)
        redis_args = ["--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        services.start("redis", [str(redis_bin), *redis_args])
        services.start("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)])
        wait_until("Postgres", 60, lambda: _pg_ready(pg_port), services.check_alive)
        _create_databases(pg_port, ("airflow", "mlflow"))
        wait_until("Redis", 30, lambda: _redis_ready(redis_port), services.check_alive)
        wait_until("the S3 server", 60, lambda: _http_ok(f"{s3_url}/moto-api/"), services.check_alive)
        import boto3

        boto3.client("s3", endpoint_url=s3_url, **_boto_credentials()).create_bucket(Bucket=BUCKET)

        note(f"MLflow on {mlflow_url} (backend store Postgres, artifacts {MLFLOW_ARTIFACTS})")
        mlflow_env = {**os.environ, **AWS_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_url, "AWS_ENDPOINT_URL": s3_url}
        mlflow_args = ["--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"]
        mlflow_args += ["--backend-store-uri", f"postgresql+psycopg2://postgres@127.0.0.1:{pg_port}/mlflow"]
        mlflow_args += ["--artifacts-destination", MLFLOW_ARTIFACTS]
        services.start("mlflow", [sys.executable, "-m", "mlflow", "server", *mlflow_args], env=mlflow_env)

        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW", "AWS_"))}
        env.update(
            airflow_settings(
                home=base / "airflow",
                dags=dags,
                pg_port=pg_port,
                redis_port=redis_port,
                api_port=api_port,
                s3_url=s3_url,
                mlflow_url=mlflow_url,
            )
        )
        env.update(connections or {})
        airflow = _CeleryAirflowStack(base / "airflow", env, api_port, AIRFLOW_COMPONENTS)
        note("Airflow metadata DB on Postgres: airflow db migrate (while MLflow migrates its own)")
        migrate = airflow.cli("db", "migrate", timeout=600)
        if migrate.returncode != 0:
            raise StackError(f"airflow db migrate failed:\n{(migrate.stdout + migrate.stderr)[-3000:]}")
        wait_until("MLflow", 180, lambda: _http_ok(f"{mlflow_url}/health"), services.check_alive)
        note("Airflow: " + ", ".join(AIRFLOW_COMPONENTS) + " (CeleryExecutor, worker concurrency 2)")
        airflow.start()
        stack = DistributedStack(
            base=base,
            services=services,
            pg_port=pg_port,
            redis_port=redis_port,
            s3_url=s3_url,
            mlflow_url=mlflow_url,
            env=env,
            airflow=airflow,
        )
        health = f"{airflow.url}/api/v2/monitor/health"
        wait_until("the Airflow api-server", 180, lambda: _http_ok(health), stack.check_alive)
        note("the stack is up")
        yield stack
    except BaseException:
        logs = [f"--- {s.name} (tail) ---\n{_tail(s.log)}" for s in services.started]
        if airflow is not None:
            logs.append(airflow.diagnostics())
        print(f"distributed stack: logs under {base}\n" + "\n".join(logs), file=sys.stderr)
        raise
    finally:
        stop()
        atexit.unregister(stop)
        shutil.rmtree(pg_dir, ignore_errors=True)


# -- the example lifecycle on it --------------------------------------------------------------------


def _trigger_only(path: Path) -> None:
    """The example spec as shipped (its training and gates), edited to run only when triggered
    (unpaused, the daily schedule would also start a run for a day that has no data), to fail at
    once instead of retrying, and with a roc_auc floor of 0.75 instead of 0.8: this stack proves
    the engine, not the example's model quality (its first model on one day's ~3,000 rows has
    scored 0.82-0.83 here; tests/integration/test_lifecycle_dag.py holds the example's own gates)."""
    spec = path.read_text()
    edits = {
        'time: "@daily"\n  events: [drift, new_data]': "events: [drift, new_data]",
        "retries: 1,": "retries: 0,",
        "metrics: {roc_auc: {min: 0.8},": "metrics: {roc_auc: {min: 0.75},",
    }
    for old, new in edits.items():
        if old not in spec:
            raise StackError(f"the example spec changed: {old!r} not found in {path}")
        spec = spec.replace(old, new)
    path.write_text(spec)


def example_setup(base: Path, *, model: str, days: int = 2) -> tuple[Path, dict[str, str], bytes]:
    """Example data, the dags folder (the example spec, run only when triggered) and the signing
    connection; returns ``(dags, connections, public key)``."""
    from airflow_mlops.data.generate import write_example_data
    from airflow_mlops.security.signing import generate_key_pair
    from tests.integration.test_lifecycle_dag import make_dags_folder

    data = base / "data" / "fraud"
    write_example_data(data, start=dt.date(2026, 1, 1), days=days)
    (data / "incoming").mkdir(exist_ok=True)
    dags = make_dags_folder(base, data, model)
    _trigger_only(dags / "specs" / "fraud_detector.yaml")
    private, public = generate_key_pair()
    signing = {
        "conn_type": "mlops_signing",
        "password": private.decode(),
        "extra": {"public_key": public.decode()},
    }
    return dags, {"AIRFLOW_CONN_MLOPS_SIGNING": json.dumps(signing)}, public


def run_example(stack: DistributedStack, *, day: dt.date, timeout: float = 600) -> tuple[str, dict[str, Any]]:
    """Trigger ``fraud_detector__train`` for ``day`` through the REST API and wait for it to end;
    returns the run id and the run."""
    from scripts.demo_loop import AirflowAPI, finished_run, wait_for

    api = AirflowAPI(stack.airflow.url)  # all users are admins in this stack
    check = stack.check_alive
    dag_id = "fraud_detector__train"
    wait_for(f"{dag_id} to be parsed", 300, lambda: api.get(f"dags/{dag_id}"), check=check)
    api.unpause(dag_id)
    run_id = api.trigger(dag_id, logical_date=dt.datetime.combine(day, dt.time(), dt.UTC), note="distributed")
    return run_id, finished_run(api, dag_id, run_id, timeout, check)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("demo", "up"))
    parser.add_argument("--base", default=str(ROOT / ".stack" / "distributed"))
    args = parser.parse_args()
    base = Path(args.base)
    if base.exists():
        shutil.rmtree(base)  # each start is a fresh deployment (the databases are fresh too)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the stack is stopped

    def say(message: str) -> None:
        print(f"\033[1m[distributed]\033[0m {message}", flush=True)

    from mlflow import MlflowClient

    dags, connections, _ = example_setup(base, model="fraud-detector")
    started = time.monotonic()
    with distributed_stack(base, dags=dags, connections=connections, say=say) as stack:
        say(f"stack up in {time.monotonic() - started:.0f} s; triggering fraud_detector__train")
        run_id, run = run_example(stack, day=dt.date(2026, 1, 2))
        say(f"fraud_detector__train {run_id}: {run['state']} ({time.monotonic() - started:.0f} s in all)")
        if run["state"] != "success":
            print(stack.diagnostics(), file=sys.stderr)
            return 1
        champion = MlflowClient(stack.mlflow_url).get_model_version_by_alias("fraud-detector", "champion")
        say(f"champion: fraud-detector v{champion.version} ({champion.source})")
        say(f"Airflow UI {stack.airflow.url} | MLflow UI {stack.mlflow_url} | logs {base / 'logs'}")
        if args.mode == "up":
            say("serving until Ctrl-C")
            try:
                while True:
                    stack.check_alive()
                    time.sleep(5)
            except KeyboardInterrupt:
                say("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
