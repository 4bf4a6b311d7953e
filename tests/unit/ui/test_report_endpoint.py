"""The Models view serves a stage report only as its task recorded it, with strict headers on
every answer, and error bodies that never name server paths or credentials."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.ui.headers import SECURITY_HEADERS
from tests.unit.ui.models_registry import PIPELINE

DAG, RUN, TASK = f"{PIPELINE}__train", "manual__2026-01-01T00:00:00+00:00", "data.screen"
RUN_SEGMENT = "manual__2026-01-01T00_00_00_00_00"
SECRET = "s3cr3t-Pa55"


class _AuthManager:
    def __init__(self, readable: set[str], outputs: set[str] | None = None) -> None:
        self.readable, self.outputs = readable, readable if outputs is None else outputs

    def is_authorized_dag(self, *, method: str, details: Any, user: Any, access_entity: Any = None) -> bool:
        allowed = self.readable if access_entity is None else self.outputs
        return method == "GET" and details.id in allowed


def assert_secure(answer: Any, *never: str) -> None:
    """The security headers are on the answer, and none of ``never`` is in its body."""
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get(name), f"{name} missing on a {answer.status_code} answer"
        if name != "Content-Security-Policy":
            assert answer.headers[name] == value
    csp = answer.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'self'" in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    for text in never:
        assert text not in answer.text, f"{text!r} leaked into a {answer.status_code} answer: {answer.text}"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from airflow_mlops.artifacts import ArtifactStore
    from airflow_mlops.ui import app as app_module

    root = tmp_path / "store"
    store = ArtifactStore(str(root))
    src = tmp_path / "screen_report.html"
    src.write_text("<html><style>p{color:red}</style><p>screen</p></html>")
    ref = store.put_file(src, f"{PIPELINE}/{RUN_SEGMENT}/screen/screen_report.html").to_dict()
    records: dict[tuple[str, str, str, int, str], Any] = {(DAG, RUN, TASK, -1, "report"): ref}
    monkeypatch.setattr(app_module, "artifact_root", lambda: str(root))
    monkeypatch.setattr(
        app_module,
        "task_output",
        lambda dag, run, task, index, key: records.get((dag, run, task, index, key)),
    )
    return {"root": root, "ref": ref, "records": records, "tmp": tmp_path}


@pytest.fixture
def http_for(monkeypatch: pytest.MonkeyPatch) -> Any:
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from airflow_mlops.ui import app as app_module

    def make(readable: set[str], *, outputs: set[str] | None = None, user: bool = True) -> TestClient:
        monkeypatch.setattr(app_module, "get_auth_manager", lambda: _AuthManager(readable, outputs))
        app = app_module.create_app()
        if user:
            app.dependency_overrides[get_user] = lambda: object()
        return TestClient(app, root_path="/mlops/models", raise_server_exceptions=False)

    return make


def params(**over: Any) -> dict[str, Any]:
    return {"dag_id": DAG, "run_id": RUN, "task_id": TASK, "output": "report", **over}


def test_the_recorded_report_is_served_sandboxed(env: dict[str, Any], http_for: Any) -> None:
    answer = http_for({DAG}).get("/artifacts/report", params=params())
    assert answer.status_code == 200 and "<p>screen</p>" in answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert_secure(answer)
    csp = answer.headers["content-security-policy"]
    assert "sandbox" in csp and "style-src 'unsafe-inline'" in csp  # the report's own styles render


def test_the_link_the_operator_makes_is_accepted(
    env: dict[str, Any], http_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from urllib.parse import urlsplit

    from airflow.sdk.execution_time.xcom import XCom

    from airflow_mlops.operators.links import ArtifactReportLink

    class Key:
        dag_id, task_id, run_id, map_index = DAG, TASK, RUN, -1

    monkeypatch.setattr(
        XCom, "get_value", lambda *, ti_key, key: env["records"].get((DAG, RUN, TASK, -1, key))
    )
    link = urlsplit(ArtifactReportLink().get_link(object(), ti_key=Key()))  # type: ignore[arg-type]
    assert link.path == "/mlops/models/artifacts/report"
    answer = http_for({DAG}).get(f"/artifacts/report?{link.query}")
    assert answer.status_code == 200 and "<p>screen</p>" in answer.text


def test_a_digest_in_the_url_is_never_trusted(env: dict[str, Any], http_for: Any) -> None:
    import hashlib

    changed = b"<html>changed in the store</html>"
    Path(env["ref"]["uri"]).write_bytes(changed)
    http = http_for({DAG})
    for extra in ({}, {"sha256": hashlib.sha256(changed).hexdigest()}, {"uri": env["ref"]["uri"]}):
        answer = http.get("/artifacts/report", params=params(**extra))
        assert answer.status_code == 409 and "changed in the store" not in answer.text
        assert_secure(answer, str(env["tmp"]), "/store/")


def test_links_are_never_followed(env: dict[str, Any], http_for: Any, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "screen_report.html").write_text("<html>secret from outside</html>")
    target = Path(env["ref"]["uri"])
    http = http_for({DAG})

    def check(expected: int = 403) -> None:
        answer = http.get("/artifacts/report", params=params())
        assert answer.status_code == expected, answer.text
        assert "secret from outside" not in answer.text
        assert_secure(answer, str(tmp_path))

    # the file itself, a link to a file outside the root (same digest: the link alone refuses)
    env["ref"]["sha256"] = __import__("hashlib").sha256(b"<html>secret from outside</html>").hexdigest()
    target.unlink()
    target.symlink_to(outside / "screen_report.html")
    check()
    # a hard link to a file outside the root
    target.unlink()
    os.link(outside / "screen_report.html", target)
    check()
    # a folder of the path is a link (to a folder outside, or inside the root)
    target.unlink()
    stage = target.parent
    stage.rmdir()
    stage.symlink_to(outside, target_is_directory=True)
    check()
    stage.unlink()
    run_folder = stage.parent
    real = run_folder.parent / "elsewhere"
    run_folder.rename(real)
    (real / "screen").mkdir(exist_ok=True)
    (real / "screen" / "screen_report.html").write_text("<html>secret from outside</html>")
    run_folder.symlink_to(real, target_is_directory=True)
    check()


def test_a_missing_file_or_record_is_404_without_paths(env: dict[str, Any], http_for: Any) -> None:
    http = http_for({DAG})
    Path(env["ref"]["uri"]).unlink()
    for query in (
        params(),  # recorded, then deleted
        params(run_id="no-such-run"),  # bad run id: no record
        params(task_id="other"),
        params(map_index=3),
        params(output="html_report"),  # the task recorded no such output
        params(output="data"),  # not a report output
    ):
        answer = http.get("/artifacts/report", params=query)
        assert answer.status_code == 404, (query, answer.text)
        assert_secure(answer, str(env["tmp"]), str(env["root"]))


@pytest.mark.parametrize(
    "uri",
    [
        "/etc/passwd",
        "{root}/../screen_report.html",
        "{root}/" + PIPELINE + "/" + RUN_SEGMENT + "/screen/../screen/screen_report.html",
        "{root}/" + PIPELINE + "/" + RUN_SEGMENT + "/screen/secret.txt",
        "{root}/" + PIPELINE + "/other-run/screen/screen_report.html",
        "{root}x/" + PIPELINE + "/" + RUN_SEGMENT + "/screen/screen_report.html",
        "s3://bucket/" + PIPELINE + "/" + RUN_SEGMENT + "/screen/screen_report.html",
    ],
)
def test_a_record_naming_anything_but_a_stage_report_of_the_run_is_refused(
    env: dict[str, Any], http_for: Any, uri: str
) -> None:
    env["ref"]["uri"] = uri.format(root=env["root"])
    answer = http_for({DAG}).get("/artifacts/report", params=params())
    assert answer.status_code == 404
    assert_secure(answer, str(env["tmp"]), str(env["root"]), "/etc/passwd")


@pytest.mark.parametrize("record", [None, "just a string", {"uri": "x.html"}, {"uri": 1, "sha256": "x"}])
def test_a_malformed_record_is_404(env: dict[str, Any], http_for: Any, record: Any) -> None:
    env["records"][(DAG, RUN, TASK, -1, "report")] = record
    answer = http_for({DAG}).get("/artifacts/report", params=params())
    assert answer.status_code == 404
    assert_secure(answer)


def test_only_readers_of_the_dag_and_pipeline_get_it(env: dict[str, Any], http_for: Any) -> None:
    answer = http_for({"other__train"}).get("/artifacts/report", params=params())
    assert answer.status_code == 403
    assert_secure(answer)
    # may read the DAG but not its XComs
    assert http_for({DAG}, outputs=set()).get("/artifacts/report", params=params()).status_code == 403
    # another DAG's task that recorded this pipeline's report: needs this pipeline's DAG too
    env["records"][("mine", RUN, TASK, -1, "report")] = env["ref"]
    assert http_for({"mine"}).get("/artifacts/report", params=params(dag_id="mine")).status_code == 403
    assert http_for({"mine", DAG}).get("/artifacts/report", params=params(dag_id="mine")).status_code == 200
    anonymous = http_for({DAG}, user=False).get("/artifacts/report", params=params())
    assert anonymous.status_code == 401
    assert_secure(anonymous)


def test_database_down_is_503_without_detail(
    env: dict[str, Any], http_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_mlops.ui import app as app_module

    def down(*args: Any) -> Any:
        raise OSError(f"could not connect to postgresql://airflow:{SECRET}@db/airflow (/var/run/x.sock)")

    monkeypatch.setattr(app_module, "task_output", down)
    answer = http_for({DAG}).get("/artifacts/report", params=params())
    assert answer.status_code == 503
    assert_secure(answer, SECRET, "/var/run")


def test_a_bad_request_does_not_echo_it(env: dict[str, Any], http_for: Any) -> None:
    answer = http_for({DAG}).get("/artifacts/report", params={"uri": "/etc/passwd", "sha256": "0" * 64})
    assert answer.status_code == 422 and "dag_id" in answer.text
    assert_secure(answer, "/etc/passwd")
    assert_secure(http_for({DAG}).get("/no/such/page"))


class _Down:
    """An MLflow client whose server is down (the error names its URI, credentials and a path)."""

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionRefusedError(f"http://alice:{SECRET}@mlflow:5000/api failed; cache /tmp/mlflow-x")

        return call


def test_mlflow_down_is_503_on_every_page(http_for: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_mlops.ui import app as app_module

    monkeypatch.setattr(app_module, "mlflow_client", lambda: _Down())
    monkeypatch.setattr(app_module, "public_key_pem", lambda: None)
    http = http_for({DAG})
    for url in (
        "/",
        "/m/versions/1/check",
        "/m/versions/1/mlbom.cdx.json",
        "/runs/abc/report/drift/drift_report.html",
    ):
        answer = http.get(url)
        assert answer.status_code == 503, (url, answer.text)
        assert_secure(answer, SECRET, "alice", "/tmp/")

    def no_connection() -> Any:
        raise RuntimeError(f"connection mlflow_default: http://bob:{SECRET}@h/ at /opt/airflow/x")

    monkeypatch.setattr(app_module, "mlflow_client", no_connection)
    answer = http.get("/")
    assert answer.status_code == 503
    assert_secure(answer, SECRET, "/opt/airflow")


def test_a_bad_run_id_is_404(http_for: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_mlops.ui import app as app_module

    monkeypatch.setattr(app_module, "mlflow_client", lambda: client)
    answer = http_for({DAG}).get("/runs/0123456789abcdef/report/drift/drift_report.html")
    assert answer.status_code == 404
    assert_secure(answer, os.getcwd())


def test_an_unexpected_error_is_a_bare_500(
    env: dict[str, Any], http_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_mlops.ui import app as app_module
    from airflow_mlops.ui import documents

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise ValueError(f"bug at {env['root']}/x with password={SECRET}")

    monkeypatch.setattr(documents, "artifact_report", boom)
    answer = http_for({DAG}).get("/artifacts/report", params=params())
    assert answer.status_code == 500
    assert_secure(answer, SECRET, str(env["root"]))
    assert app_module is not None


def test_the_plugin_app_answers_with_headers_even_when_it_cannot_be_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastapi.testclient import TestClient

    from airflow_mlops.ui import app as app_module
    from airflow_mlops.ui.plugin import LazyApp

    def broken() -> Any:
        raise ImportError("/opt/venv/lib/python3.12/site-packages/x.py: no module")

    monkeypatch.setattr(app_module, "create_app", broken)
    answer = TestClient(LazyApp()).get("/")
    assert answer.status_code == 503
    assert_secure(answer, "/opt/venv")
