"""The registry path fails closed against a real MLflow server, directly and behind a faulty proxy.

Only MLflow's exact "does not exist" answer (or a model that answers without the alias) means
"no champion"; a misspelt model name, a proxy's HTML 404 page and a 500 all block the champion
gate, each with a message that names the lookup and the answer. The proxy is a tiny HTTP server
on 127.0.0.1 that forwards to the MLflow server, except for the paths a test tells it to fail.
"""

from __future__ import annotations

import http.client
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.exceptions import (
    RegistryError,
    RegistryLookupError,
    SignatureVerificationError,
    is_retryable,
)
from tests.integration.conftest import MLflowServer, register_signed

pytestmark = pytest.mark.integration

PIPELINE = "fc-pipeline"
MODEL = "fc-model"
HTML_404 = b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>"


@dataclass
class FaultyProxy:
    """Forwards to ``upstream``; a request whose path contains a key of ``faults`` gets that
    (status, content type, body) instead, and is counted in ``hits``."""

    upstream: str
    url: str = ""
    faults: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)


@pytest.fixture
def proxy(mlflow_server: MLflowServer) -> Iterator[FaultyProxy]:
    state = FaultyProxy(upstream=mlflow_server.url)
    host, port = mlflow_server.url.removeprefix("http://").split(":")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _handle(self) -> None:
            for needle, (status, ctype, body) in state.faults.items():
                if needle in self.path:
                    state.hits[needle] = state.hits.get(needle, 0) + 1
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length) if length else None
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(self.command, self.path, body=payload, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(autouse=True)
def _no_client_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow's client retries 5xx answers for minutes by default; one answer is enough here.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def _registered(
    mlflow_server: MLflowServer,
    tmp: Path,
    keys: tuple[bytes, bytes],
    *,
    model: str,
    tag: str,
    set_alias: bool = True,
) -> tuple[Any, str]:
    """A signed version of ``model`` registered by ``PIPELINE``; the alias ``champion`` on it."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.url)
    version = register_signed(client, tmp, keys, model=model, tag=tag, pipeline=PIPELINE)
    if set_alias:
        client.set_registered_model_alias(model, "champion", version)
    return client, version


@pytest.fixture(scope="module")
def champion(
    mlflow_server: MLflowServer, tmp_path_factory: pytest.TempPathFactory, signing_keys: tuple[bytes, bytes]
) -> str:
    """The version that ``MODEL@champion`` points at."""
    _, version = _registered(
        mlflow_server, tmp_path_factory.mktemp("fc"), signing_keys, model=MODEL, tag="fc/run1"
    )
    return version


def _client(url: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=url)


def test_the_champion_is_fetched_verified_and_scanned(
    mlflow_server: MLflowServer, champion: str, signing_keys: tuple[bytes, bytes], tmp_path: Path
) -> None:
    from airflow_mlops.registry.mlflow_registry import fetch_trusted_champion

    found = fetch_trusted_champion(
        _client(mlflow_server.url), MODEL, "champion", signing_keys[1], tmp_path, pipeline=PIPELINE
    )
    assert found is not None
    version, model_dir = found
    assert version == champion
    assert json.loads((model_dir / "weights" / "model_config.json").read_text()) == {"tag": "fc/run1"}


def test_misspelt_model_name_blocks(
    mlflow_server: MLflowServer, champion: str, signing_keys, tmp_path
) -> None:
    from airflow_mlops.registry.mlflow_registry import champion_version, fetch_trusted_champion

    client = _client(mlflow_server.url)
    with pytest.raises(
        RegistryLookupError,
        match=r"'fc-modle' does not exist, but pipeline 'fc-pipeline' registered fc-model",
    ):
        fetch_trusted_champion(client, "fc-modle", "champion", signing_keys[1], tmp_path, pipeline=PIPELINE)
    # Without the pipeline a missing model cannot be told from a misspelt name: it blocks too.
    with pytest.raises(RegistryLookupError, match="cannot be told from a misspelt name"):
        champion_version(client, "fc-modle", "champion")
    # A pipeline that never registered anything: a first model, no champion.
    assert champion_version(client, "brand-new-model", "champion", pipeline="brand-new-pipeline") is None


def test_missing_alias_on_an_existing_model_is_no_champion(
    mlflow_server: MLflowServer, champion: str, signing_keys, tmp_path
) -> None:
    from airflow_mlops.registry.mlflow_registry import champion_version, fetch_trusted_champion

    client = _client(mlflow_server.url)
    assert champion_version(client, MODEL, "champion").version == champion
    assert champion_version(client, MODEL, "never-set") is None
    assert fetch_trusted_champion(client, MODEL, "never-set", signing_keys[1], tmp_path) is None


@pytest.mark.parametrize(
    ("path", "lookup"),
    [
        ("/registered-models/get", "reading registered model 'fc-model'"),
        ("/registered-models/alias", "reading the version the alias points at"),
    ],
)
def test_proxy_html_404_blocks_and_is_final(
    proxy: FaultyProxy, champion: str, signing_keys, tmp_path, path: str, lookup: str
) -> None:
    from airflow_mlops.registry.mlflow_registry import champion_version, fetch_trusted_champion

    proxy.faults[path] = (404, "text/html", HTML_404)
    client = _client(proxy.url)
    with pytest.raises(RegistryLookupError) as caught:
        fetch_trusted_champion(client, MODEL, "champion", signing_keys[1], tmp_path, pipeline=PIPELINE)
    message = str(caught.value)
    assert (
        lookup in message
        and "ENDPOINT_NOT_FOUND" in message
        and "not MLflow's RESOURCE_DOES_NOT_EXIST" in message
    )
    assert proxy.hits[path] >= 1
    assert not is_retryable(caught.value)
    proxy.faults.clear()  # the same lookup through the healed proxy finds the champion
    assert champion_version(client, MODEL, "champion").version == champion


def test_proxy_500_on_the_alias_lookup_blocks_and_retries(
    proxy: FaultyProxy, champion: str, signing_keys, tmp_path
) -> None:
    from airflow_mlops.registry.mlflow_registry import fetch_trusted_champion

    body = json.dumps({"error_code": "INTERNAL_ERROR", "message": "database is locked"}).encode()
    proxy.faults["/registered-models/alias"] = (500, "application/json", body)
    with pytest.raises(RegistryError) as caught:
        fetch_trusted_champion(
            _client(proxy.url), MODEL, "champion", signing_keys[1], tmp_path, pipeline=PIPELINE
        )
    assert not isinstance(caught.value, RegistryLookupError)
    assert is_retryable(caught.value)  # transient: Airflow retries the task, the gate blocks meanwhile
    assert "reading the version the alias points at failed with INTERNAL_ERROR" in str(caught.value)
    assert "too many 500 error responses" in str(caught.value)  # MLflow's client keeps the status

    proxy.faults["/registered-models/alias"] = (500, "text/html", b"<html>Internal Server Error</html>")
    with pytest.raises(RegistryError, match=r"INTERNAL_ERROR: .* 500 error responses"):
        fetch_trusted_champion(
            _client(proxy.url), MODEL, "champion", signing_keys[1], tmp_path, pipeline=PIPELINE
        )


def test_signature_lookup_distinguishes_missing_from_failing(
    mlflow_server: MLflowServer, proxy: FaultyProxy, champion: str, signing_keys, tmp_path
) -> None:
    from airflow_mlops.registry.mlflow_registry import fetch_verified_version

    client = _client(mlflow_server.url)
    # A version whose run has no signature artifact: MLflow answers the listing without it.
    run = client.create_run("0")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "MLmodel").write_text("flavors: {}\n")
    client.log_artifacts(run.info.run_id, str(tmp_path / "m"), "model")
    unsigned = client.create_model_version(
        MODEL, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    with pytest.raises(SignatureVerificationError, match="has no signature artifact"):
        fetch_verified_version(client, MODEL, str(unsigned.version), signing_keys[1], tmp_path / "a")
    # The listing failing is not "unsigned": it is a registry error naming the lookup.
    proxy.faults["signature"] = (502, "text/html", b"<html>Bad Gateway</html>")
    with pytest.raises(RegistryError, match="looking up the signature of model version") as caught:
        fetch_verified_version(_client(proxy.url), MODEL, champion, signing_keys[1], tmp_path / "b")
    assert not isinstance(caught.value, SignatureVerificationError)


def test_registering_behind_a_failing_proxy_does_not_create_a_model(
    mlflow_server: MLflowServer, proxy: FaultyProxy, signing_keys, tmp_path
) -> None:
    from airflow_mlops.registry.mlflow_registry import _ensure_registered_model

    proxy.faults["/registered-models/get"] = (404, "text/html", HTML_404)
    with pytest.raises(RegistryLookupError, match="before registering"):
        _ensure_registered_model(_client(proxy.url), "fc-proxy-model", pipeline=PIPELINE)
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as caught:
        _client(mlflow_server.url).get_registered_model("fc-proxy-model")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    # Without the fault the model is created, once, even when asked twice.
    _ensure_registered_model(_client(mlflow_server.url), "fc-proxy-model", pipeline=PIPELINE)
    _ensure_registered_model(_client(mlflow_server.url), "fc-proxy-model", pipeline=PIPELINE)


# --- promotion records the previous champion; rollback returns to it, verified -----------------


def test_promotion_records_the_previous_champion_and_rollback_restores_it(
    mlflow_server: MLflowServer, signing_keys: tuple[bytes, bytes], tmp_path: Path
) -> None:
    import subprocess
    import sys

    from airflow_mlops.exceptions import PromotionBlockedError
    from airflow_mlops.registry.mlflow_registry import champion_version
    from airflow_mlops.registry.promotion import previous_tag, promote_version, rollback_alias

    name = "rb-model"
    versions = {}
    client = _client(mlflow_server.url)
    for tag in ("a", "b", "c"):
        _, versions[tag] = _registered(
            mlflow_server, tmp_path, signing_keys, model=name, tag=f"rb/{tag}", set_alias=False
        )

    def promote(version: str) -> Any:
        return promote_version(
            client,
            model_name=name,
            version=version,
            alias="champion",
            trust=signing_keys[1],
            gates_passed=True,
        )

    assert promote(versions["a"]).previous_version is None
    assert promote(versions["b"]).previous_version == versions["a"]
    again = promote(versions["b"])  # a retried promotion: same record, the alias stays
    assert again.previous_version == versions["a"]
    assert client.get_model_version(name, versions["b"]).tags[previous_tag("champion")] == versions["a"]

    done = rollback_alias(
        client,
        model_name=name,
        alias="champion",
        trust=signing_keys[1],
        request_id="dag/rollback-1",
        reason="bad canary",
    )
    assert (done.version, done.rolled_back_from) == (versions["a"], versions["b"])
    assert champion_version(client, name, "champion").version == versions["a"]
    # The same request retried does not roll back once more.
    retried = rollback_alias(
        client, model_name=name, alias="champion", trust=signing_keys[1], request_id="dag/rollback-1"
    )
    assert retried.version == versions["a"]
    assert champion_version(client, name, "champion").version == versions["a"]
    assert (
        client.get_model_version(name, versions["b"]).tags["mlops.champion.rollback_reason"] == "bad canary"
    )
    with pytest.raises(PromotionBlockedError, match="records no previous version"):
        rollback_alias(client, model_name=name, alias="champion", trust=signing_keys[1])

    # The command line: guarded by --from, then the same verified rollback.
    promote(versions["c"])  # previous: a
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(signing_keys[1])
    cli = [
        sys.executable,
        "-m",
        "airflow_mlops.cli",
        "model",
        "rollback",
        name,
        "--tracking-uri",
        mlflow_server.url,
        "--public-key",
        str(key_file),
    ]
    refused = subprocess.run([*cli, "--from", versions["b"]], capture_output=True, text=True, timeout=120)
    assert (
        refused.returncode == 1
        and f"points at version {versions['c']}, not {versions['b']}" in refused.stderr
    )
    assert champion_version(client, name, "champion").version == versions["c"]
    restored = subprocess.run([*cli, "--from", versions["c"]], capture_output=True, text=True, timeout=120)
    assert restored.returncode == 0, restored.stderr
    assert f"version {versions['a']} (rolled back from {versions['c']}" in restored.stdout
    assert champion_version(client, name, "champion").version == versions["a"]
    promote(versions["c"])  # previous: a, again

    # A previous version that no longer verifies is never restored: the alias stays.
    weights = [p for p in mlflow_server.root.rglob("model_config.json") if "rb/a" in p.read_text()]
    assert weights
    for path in weights:
        path.write_text(json.dumps({"tag": "tampered"}))
    blocked = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert blocked.returncode == 1 and "cannot roll 'rb-model'@champion back to version" in blocked.stderr
    assert champion_version(client, name, "champion").version == versions["c"]

    # The audit trail: every alias move, who made it and why, oldest first; the refusals moved nothing.
    def history_cli(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "airflow_mlops.cli", "model", "history", name]
        return subprocess.run(
            [*command, "--tracking-uri", mlflow_server.url, *extra],
            capture_output=True,
            text=True,
            timeout=120,
        )

    history = history_cli("--json")
    assert history.returncode == 0, history.stderr
    moves = [(e["action"], e["from"], e["to"]) for e in json.loads(history.stdout)]
    a, b, c = versions["a"], versions["b"], versions["c"]
    assert moves == [
        ("promoted", None, a),
        ("promoted", a, b),
        ("rolled_back", b, a),
        ("promoted", a, c),
        ("rolled_back", c, a),
        ("promoted", a, c),
    ], moves
    entries = json.loads(history.stdout)
    assert entries[2]["reason"] == "bad canary" and entries[2]["by"] == "dag/rollback-1"
    assert entries[4]["by"].startswith("cli:")
    text = history_cli()
    assert text.returncode == 0 and f"@champion: {a} -> {c}" in text.stdout
