"""docker-compose.yaml: valid for docker-compose, and wired right.

`docker-compose config` validates the file and resolves anchors, merges and `${VAR:-default}`s;
`wiring_problems` then checks what compose cannot: every URL points at a service that exists and
listens on that port, dependencies exist and are healthy where waited on, every Airflow service
shares one JWT secret and the api-server's execution API, the signing key reaches the services
that run tasks from a volume (never from the environment), and no key material is in the files.
The checker is shown to fail on broken copies of the real file.
"""

from __future__ import annotations

import copy
import graphlib
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yaml"
LOCAL_EXECUTOR = ROOT / "docker-compose.local-executor.yaml"
INIT_SECRETS = ROOT / "images" / "airflow" / "init_secrets.py"

# Ports a URL means when it names none.
DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432, "redis": 6379}
URL = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.]*)://(?:[^@/\s\"']*@)?(?P<host>[A-Za-z0-9_.-]+)(?::(?P<port>\d+))?(?P<path>/[^\s\"',]*)?"
)
LOOPBACK = {"localhost", "127.0.0.1", "0.0.0.0"}
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
SIGNING_CONN_ENV = "AIRFLOW_CONN_MLOPS_SIGNING"


def compose_config(*files: Path, profiles: tuple[str, ...] = (), project_dir: Path = ROOT) -> dict[str, Any]:
    """`docker-compose config` of ``files``: fails (never skips) without the binary."""
    binary = shutil.which("docker-compose")
    assert binary, (
        "docker-compose is missing: scripts/system_deps.sh installs it (Debian package docker-compose)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    # The file's own defaults, not this machine's environment, are what is checked.
    for name in ("POSTGRES_PASSWORD", "MLFLOW_DB_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"):
        env.pop(name, None)
    args = [binary, "--project-directory", str(project_dir)]
    for file in files:
        args += ["-f", str(file)]
    for profile in profiles:
        args += ["--profile", profile]
    result = subprocess.run([*args, "config"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


# --- the checker ------------------------------------------------------------------------------


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(type, source, target, read_only) of every volume entry, short or long syntax."""
    out = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            source = str(entry.get("source", ""))
            kind = entry.get("type") or ("bind" if source.startswith(("/", ".", "~")) else "volume")
            out.append((kind, source, str(entry["target"]), bool(entry.get("read_only"))))
            continue
        parts = entry.split(":")
        if len(parts) == 1:
            out.append(("volume", "", parts[0], False))
            continue
        source, target = parts[0], parts[1]
        mode = parts[2] if len(parts) > 2 else "rw"
        kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
        out.append((kind, source, target, "ro" in mode.split(",")))
    return out


def _published_container_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def _command(service: dict[str, Any]) -> list[str]:
    return _as_list(service.get("entrypoint")) + _as_list(service.get("command"))


def listening_ports(service: dict[str, Any]) -> set[int]:
    """The ports a service declares: `expose`, published container ports, `--port`."""
    ports = {int(str(p).split("/")[0]) for p in service.get("expose") or []}
    ports |= _published_container_ports(service)
    words = _command(service)
    for i, word in enumerate(words):
        if word.startswith("--port="):
            ports.add(int(word.split("=", 1)[1]))
        elif word == "--port" and i + 1 < len(words):
            ports.add(int(words[i + 1]))
    return ports


def _is_airflow(service: dict[str, Any]) -> bool:
    return "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in _environment(service)


def _runs(service: dict[str, Any], *words: str) -> bool:
    command = _command(service)
    return any(command[i : i + len(words)] == list(words) for i in range(len(command)))


def _healthcheck_texts(service: dict[str, Any]) -> list[str]:
    test = (service.get("healthcheck") or {}).get("test") or []
    return [test] if isinstance(test, str) else [str(t) for t in test]


def _closure(services: dict[str, Any], name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        for dep in services.get(todo.pop(), {}).get("depends_on") or {}:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def _buckets(services: dict[str, Any]) -> set[str]:
    found = set()
    for service in services.values():
        for text in _command(service):
            for match in re.finditer(r"mc mb(?: --[a-z-]+)* ((?:local/[a-z0-9.-]+ ?)+)", text):
                found |= {b.split("/", 1)[1] for b in match.group(1).split()}
    return found


def active_services(config: dict[str, Any], profiles: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        name: s
        for name, s in config["services"].items()
        if not s.get("profiles") or set(s["profiles"]) & set(profiles)
    }


def wiring_problems(config: dict[str, Any], profiles: tuple[str, ...] = (), root: Path = ROOT) -> list[str]:
    """Everything wrong with the wiring of a resolved compose config; empty when it is right."""
    problems: list[str] = []
    everything = config.get("services") or {}
    services = active_services(config, profiles)
    volumes = set(config.get("volumes") or {})
    secrets = set(config.get("secrets") or {})
    buckets = _buckets(everything)

    # depends_on: targets exist (and are active), waits have something to wait on, no cycles.
    graph: dict[str, set[str]] = {}
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        graph[name] = set(depends)
        for dep, how in depends.items():
            if dep not in services:
                problems.append(f"{name}: depends_on {dep!r}, which is not an (active) service")
                continue
            condition = (how or {}).get("condition", "service_started")
            check = services[dep].get("healthcheck") or {}
            if condition == "service_healthy" and (not check.get("test") or check.get("disable")):
                problems.append(f"{name}: waits for {dep!r} to be healthy, but {dep!r} has no healthcheck")
            if condition == "service_completed_successfully" and services[dep].get("restart") in (
                "always",
                "unless-stopped",
            ):
                problems.append(f"{name}: waits for {dep!r} to complete, but {dep!r} restarts forever")
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        problems.append(f"depends_on has a cycle: {exc.args[1]}")

    # Every URL in environments and commands: a service that exists, listens, and is waited for.
    for name, service in services.items():
        texts = [(f"environment {k}", v) for k, v in _environment(service).items()]
        texts += [("command", word) for word in _command(service)]
        for where, text in texts:
            for match in URL.finditer(text):
                scheme, host = match["scheme"].split("+")[0], match["host"]
                if scheme == "s3":
                    if host not in buckets:
                        problems.append(f"{name}: {where} uses bucket {host!r}, which no `mc mb` creates")
                    continue
                if scheme in ("file", "sqlite"):
                    continue
                if host in LOOPBACK:
                    if where == "command" and host == "0.0.0.0":
                        continue  # a bind address
                    problems.append(f"{name}: {where} points at {host}: inside a container that is itself")
                    continue
                if host not in everything:
                    problems.append(f"{name}: {where} points at host {host!r}, which is no service")
                    continue
                port = int(match["port"]) if match["port"] else DEFAULT_PORTS.get(scheme)
                if port not in listening_ports(everything[host]):
                    problems.append(
                        f"{name}: {where} points at {host}:{port}, but {host} listens on "
                        f"{sorted(listening_ports(everything[host]))}"
                    )
                # A service that the target itself waits for (airflow-init, before the api-server)
                # only carries the shared environment; every other user must wait for its target.
                if (
                    host != name
                    and host not in _closure(services, name)
                    and name not in _closure(services, host)
                ):
                    problems.append(f"{name}: {where} uses {host!r} without depending on it (depends_on)")
            if where.startswith("environment AIRFLOW_CONN_") and text.lstrip().startswith("{"):
                try:
                    conn = json.loads(text)
                except ValueError as exc:
                    problems.append(f"{name}: {where} is not valid JSON ({exc})")
                else:
                    if not conn.get("conn_type"):
                        problems.append(f"{name}: {where} has no conn_type")
        for text in _healthcheck_texts(service):
            for match in URL.finditer(text):
                port = int(match["port"]) if match["port"] else DEFAULT_PORTS.get(match["scheme"])
                if match["host"] in LOOPBACK and port not in listening_ports(service):
                    problems.append(
                        f"{name}: its healthcheck probes port {port}, which it does not listen on"
                    )

    # Volumes, secrets and bind mounts are declared / exist; builds have their Dockerfile (in
    # every profile).
    for name, service in everything.items():
        for kind, source, _target, _ro in _mounts(service):
            if kind == "volume" and source and source not in volumes:
                problems.append(f"{name}: uses volume {source!r}, which is not declared under volumes:")
            if kind == "bind" and not Path(source).expanduser().exists():
                problems.append(f"{name}: bind-mounts {source}, which does not exist")
        for entry in service.get("secrets") or []:
            secret = entry if isinstance(entry, str) else entry.get("source")
            if secret not in secrets:
                problems.append(f"{name}: uses secret {secret!r}, which is not declared under secrets:")
        build = service.get("build")
        if build:
            context = Path(build if isinstance(build, str) else build.get("context", "."))
            context = context if context.is_absolute() else root / context
            dockerfile = context / (
                build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
            )
            if not dockerfile.is_file():
                problems.append(f"{name}: builds from {dockerfile}, which does not exist")

    # Airflow: one JWT secret, the execution API on the api-server, an executor that can run.
    airflow = {n: s for n, s in services.items() if _is_airflow(s)}
    apiservers = [n for n, s in airflow.items() if _runs(s, "airflow", "api-server")]
    if len(apiservers) != 1:
        problems.append(f"expected one airflow api-server service, found {apiservers}")
    jwt_values = {}
    for name, service in airflow.items():
        env = _environment(service)
        value = env.get("AIRFLOW__API_AUTH__JWT_SECRET") or env.get("AIRFLOW__API_AUTH__JWT_SECRET_CMD")
        if not value:
            problems.append(
                f"{name}: no AIRFLOW__API_AUTH__JWT_SECRET(_CMD): each process would make its own"
            )
            continue
        jwt_values[name] = value
        if "AIRFLOW__API_AUTH__JWT_SECRET_CMD" in env:
            problems += _file_from_volume(services, name, value, "the JWT secret")
        url = env.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "")
        match = URL.fullmatch(url)
        if (
            not match
            or match["host"] not in apiservers
            or not (match["path"] or "").rstrip("/").endswith("/execution")
        ):
            problems.append(
                f"{name}: AIRFLOW__CORE__EXECUTION_API_SERVER_URL {url!r} is not the api-server's /execution/"
            )
    if len(set(jwt_values.values())) > 1:
        problems.append(f"the Airflow services do not share one JWT secret: {jwt_values}")
    executors = {_environment(s).get("AIRFLOW__CORE__EXECUTOR", "") for s in airflow.values()}
    if len(executors) != 1:
        problems.append(f"the Airflow services disagree on the executor: {sorted(executors)}")
    celery = "CeleryExecutor" in executors
    runners = [
        n
        for n, s in airflow.items()
        if (_runs(s, "celery", "worker") if celery else _runs(s, "airflow", "scheduler"))
    ]
    if not runners:
        problems.append(f"no service runs tasks for {sorted(executors)}")

    # The signing key: from a file on a volume, for every service that runs tasks; never in env.
    for name, service in services.items():
        if SIGNING_CONN_ENV in _environment(service):
            problems.append(
                f"{name}: {SIGNING_CONN_ENV} in the environment (key material belongs in a volume)"
            )
    for name in runners:
        env = _environment(airflow[name])
        backend = env.get("AIRFLOW__SECRETS__BACKEND", "")
        if not backend.endswith("LocalFilesystemBackend"):
            problems.append(f"{name}: runs tasks but has no secrets backend for the mlops_signing connection")
            continue
        path = json.loads(env.get("AIRFLOW__SECRETS__BACKEND_KWARGS") or "{}").get(
            "connections_file_path", ""
        )
        problems += _file_from_volume(services, name, f"cat {path}", "the signing connection")

    # A GPU profile with an NVIDIA reservation.
    gpu = [
        n
        for n, s in everything.items()
        if "gpu" in (s.get("profiles") or [])
        and any(
            d.get("driver") == "nvidia" and "gpu" in (d.get("capabilities") or [])
            for d in (
                (s.get("deploy") or {}).get("resources", {}).get("reservations", {}).get("devices") or []
            )
        )
    ]
    if not gpu:
        problems.append("no service in the gpu profile reserves an NVIDIA GPU")
    return problems


def _file_from_volume(services: dict[str, Any], name: str, cmd: str, what: str) -> list[str]:
    """``cmd`` is ``cat FILE``; FILE must be on a named volume that a service this one waits for writes."""
    words = shlex.split(cmd)
    if len(words) != 2 or words[0] != "cat" or not words[1].startswith("/"):
        return [f"{name}: {what} comes from {cmd!r}, not `cat /a/file`"]
    file = words[1]
    mounts = [
        m for m in _mounts(services[name]) if m[0] == "volume" and file.startswith(m[2].rstrip("/") + "/")
    ]
    if not mounts:
        return [f"{name}: {what} is read from {file}, which is on no named volume of this service"]
    volume, target = mounts[0][1], mounts[0][2]
    writers = [
        n
        for n in _closure(services, name)
        if n in services
        and any(
            m[0] == "volume" and m[1] == volume and m[2] == target and not m[3] for m in _mounts(services[n])
        )
        and any(w == str(Path(file).parent) for w in _command(services[n]))
    ]
    if not writers:
        return [
            f"{name}: no service it waits for writes {what} into volume {volume!r} at {Path(file).parent}"
        ]
    return []


# --- the real files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_config() -> dict[str, Any]:
    return compose_config(COMPOSE)


def test_the_compose_file_is_valid_and_wired(base_config: dict[str, Any]) -> None:
    assert wiring_problems(base_config) == []
    services = active_services(base_config)
    assert _environment(services["airflow-worker"])["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert {"postgres", "redis", "minio", "minio-buckets", "mlflow", "airflow-secrets-init"} <= set(services)


def test_the_gpu_profile_is_valid_and_wired() -> None:
    config = compose_config(COMPOSE, profiles=("gpu",))
    assert wiring_problems(config, profiles=("gpu",)) == []
    assert {"trainer", "airflow-worker-gpu"} <= set(active_services(config, ("gpu",)))


def test_the_local_executor_override_is_valid_and_wired() -> None:
    config = compose_config(COMPOSE, LOCAL_EXECUTOR)
    assert wiring_problems(config) == []
    services = active_services(config)
    assert "airflow-worker" not in services
    assert _environment(services["airflow-scheduler"])["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"


def test_mlflow_uses_its_own_database_and_s3_artifacts(base_config: dict[str, Any]) -> None:
    mlflow = " ".join(_command(base_config["services"]["mlflow"]))
    assert re.search(
        r"--backend-store-uri[= ]postgresql\+psycopg2://mlflow:[^@]+@postgres:5432/mlflow\b", mlflow
    )
    assert "--artifacts-destination=s3://mlflow" in mlflow
    init = (ROOT / "images" / "postgres" / "init-mlflow-db.sh").read_text()
    assert "CREATE DATABASE mlflow OWNER mlflow" in init
    airflow_db = _environment(base_config["services"]["airflow-scheduler"])[
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
    ]
    assert airflow_db.endswith("@postgres:5432/airflow")


def test_no_key_material_in_the_compose_files_or_images() -> None:
    files = [COMPOSE, LOCAL_EXECUTOR, *sorted(p for p in (ROOT / "images").rglob("*") if p.is_file())]
    env_example = ROOT / ".env.example"
    files += [env_example] if env_example.exists() else []
    for file in files:
        text = file.read_text()
        assert not PRIVATE_KEY.search(text), file
        assert SIGNING_CONN_ENV not in text, file
    for dockerfile in (ROOT / "images").rglob("Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("RUN"):  # no key is generated at build time
                assert "init_secrets" not in line and "generate_key_pair" not in line, (dockerfile, line)
            assert not re.search(r"^COPY\b.*\.(pem|key)\b", line), (dockerfile, line)


# --- the checker fails on broken copies -------------------------------------------------------


def _set_env(service: str, key: str, value: str) -> Any:
    def mutate(config: dict[str, Any]) -> None:
        config["services"][service]["environment"][key] = value

    return mutate


def _drop(path: list[str]) -> Any:
    def mutate(config: dict[str, Any]) -> None:
        node = config
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


def _replace_in_command(service: str, old: str, new: str) -> Any:
    def mutate(config: dict[str, Any]) -> None:
        config["services"][service]["command"] = [
            w.replace(old, new) for w in config["services"][service]["command"]
        ]

    return mutate


MUTATIONS = {
    "broker on an unknown host": (
        _set_env("airflow-worker", "AIRFLOW__CELERY__BROKER_URL", "redis://rediss:6379/0"),
        "which is no service",
    ),
    "database on the wrong port": (
        _set_env(
            "airflow-scheduler",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "postgresql+psycopg2://a:b@postgres:5433/airflow",
        ),
        "postgres:5433",
    ),
    "mlflow connection on the wrong port": (
        _set_env(
            "airflow-worker",
            "AIRFLOW_CONN_MLFLOW_DEFAULT",
            '{"conn_type": "mlflow", "host": "http://mlflow:5001"}',
        ),
        "mlflow:5001",
    ),
    "mlflow connection to localhost": (
        _set_env(
            "airflow-worker",
            "AIRFLOW_CONN_MLFLOW_DEFAULT",
            '{"conn_type": "mlflow", "host": "http://localhost:5000"}',
        ),
        "points at localhost",
    ),
    "mlflow artifacts to a bucket nobody makes": (
        _replace_in_command("mlflow", "s3://mlflow", "s3://mlflow-artifacts"),
        "bucket 'mlflow-artifacts'",
    ),
    "a JWT secret that differs": (
        _set_env(
            "airflow-triggerer", "AIRFLOW__API_AUTH__JWT_SECRET_CMD", "cat /opt/airflow/secrets/jwt_secret2"
        ),
        "one JWT secret",
    ),
    "no JWT secret": (
        _drop(["services", "airflow-dag-processor", "environment", "AIRFLOW__API_AUTH__JWT_SECRET_CMD"]),
        "make its own",
    ),
    "execution API not on the api-server": (
        _set_env(
            "airflow-worker",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
            "http://airflow-scheduler:8974/execution/",
        ),
        "EXECUTION_API_SERVER_URL",
    ),
    "signing key from an empty env default": (
        _set_env("airflow-worker", SIGNING_CONN_ENV, ""),
        "in the environment",
    ),
    "worker without the signing backend": (
        _drop(["services", "airflow-worker", "environment", "AIRFLOW__SECRETS__BACKEND"]),
        "no secrets backend",
    ),
    "undeclared volume": (_drop(["volumes", "signing-key"]), "not declared under volumes"),
    "waiting on a service without healthcheck": (
        _drop(["services", "redis", "healthcheck"]),
        "has no healthcheck",
    ),
    "depending on a missing service": (_drop(["services", "minio-buckets"]), "not an (active) service"),
    "healthcheck on the wrong port": (
        lambda c: c["services"]["airflow-scheduler"].update(expose=["8975"]),
        "healthcheck probes port 8974",
    ),
    "missing Dockerfile": (
        lambda c: c["services"]["trainer"]["build"].update(dockerfile="images/trainer/Dockerfile.gone"),
        "does not exist",
    ),
    "no GPU reservation": (_drop(["services", "trainer", "deploy"]), None),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_the_checker_rejects_a_broken_copy(base_config: dict[str, Any], mutation: str) -> None:
    mutate, expected = MUTATIONS[mutation]
    broken = copy.deepcopy(base_config)
    mutate(broken)
    if mutation == "no GPU reservation":  # the worker-gpu service reserves one too
        del broken["services"]["airflow-worker-gpu"]["deploy"]
        expected = "reserves an NVIDIA GPU"
    problems = wiring_problems(broken)
    assert any(expected in p for p in problems), problems


def test_a_broken_host_in_the_file_itself_is_rejected(tmp_path: Path) -> None:
    """The whole path (text -> docker-compose config -> checker) catches a typo in the YAML."""
    text = COMPOSE.read_text()
    assert text.count("http://mlflow:5000") == 1
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text(text.replace("http://mlflow:5000", "http://mlfow:5000"))
    problems = wiring_problems(compose_config(broken))
    assert any("'mlfow'" in p for p in problems), problems


# --- the secrets init service's script ----------------------------------------------------------


def _run_init(airflow_dir: Path, signing_dir: Path) -> str:
    result = subprocess.run(
        [
            sys.executable,
            str(INIT_SECRETS),
            "--airflow-dir",
            str(airflow_dir),
            "--signing-dir",
            str(signing_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_init_secrets_creates_them_once_private_and_never_prints_the_key(tmp_path: Path) -> None:
    airflow_dir, signing_dir = tmp_path / "secrets", tmp_path / "signing"
    first = _run_init(airflow_dir, signing_dir)
    files = {p.name: p.read_bytes() for d in (airflow_dir, signing_dir) for p in d.iterdir()}
    assert set(files) == {"jwt_secret", "fernet_key", "connections.json", "signing_key.pub.pem"}
    for name in ("jwt_secret", "fernet_key", "connections.json"):
        path = (signing_dir if name == "connections.json" else airflow_dir) / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        assert len(files[name]) > 40
    conn = json.loads(files["connections.json"])["mlops_signing"]
    assert PRIVATE_KEY.search(conn["password"])
    assert conn["password"].split("\n")[1] not in first and files["jwt_secret"].decode() not in first

    second = _run_init(airflow_dir, signing_dir)
    assert "kept" in second and "created" not in second
    assert {p.name: p.read_bytes() for d in (airflow_dir, signing_dir) for p in d.iterdir()} == files

    from cryptography.fernet import Fernet

    assert Fernet(files["fernet_key"]).decrypt(Fernet(files["fernet_key"]).encrypt(b"x")) == b"x"


def test_airflow_reads_the_signing_connection_the_init_wrote(tmp_path: Path) -> None:
    """The compose wiring for real: LocalFilesystemBackend -> ModelSigningHook -> a matching key pair."""
    signing_dir = tmp_path / "signing"
    _run_init(tmp_path / "secrets", signing_dir)
    worker_env = _environment(compose_config(COMPOSE)["services"]["airflow-worker"])
    kwargs = json.loads(worker_env["AIRFLOW__SECRETS__BACKEND_KWARGS"])
    kwargs["connections_file_path"] = kwargs["connections_file_path"].replace(
        "/opt/airflow/signing", str(signing_dir)
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__SECRETS__BACKEND": worker_env["AIRFLOW__SECRETS__BACKEND"],
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(kwargs),
    }
    probe = (
        "from airflow_mlops.hooks.signing import ModelSigningHook\n"
        "from airflow_mlops.security.signing import public_key_from_private, public_key_fingerprint\n"
        "k = ModelSigningHook().get_key(need_private=True)\n"
        "assert public_key_from_private(k.private_key_pem).strip() == k.public_key_pem.strip()\n"
        "print('FINGERPRINT', public_key_fingerprint(k.public_key_pem))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from airflow_mlops.security.signing import public_key_fingerprint

    expected = public_key_fingerprint((signing_dir / "signing_key.pub.pem").read_bytes())
    assert f"FINGERPRINT {expected}" in result.stdout
