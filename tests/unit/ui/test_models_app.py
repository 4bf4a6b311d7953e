"""The Models view's app: authentication, per-pipeline authorization, documents, escaping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.ui import page, rows
from tests.unit.ui.models_registry import MODEL, PIPELINE


class _AuthManager:
    def __init__(self, readable: set[str]) -> None:
        self.readable = readable
        self.asked: list[str] = []

    def is_authorized_dag(self, *, method: str, details: Any, user: Any, access_entity: Any = None) -> bool:
        self.asked.append(details.id)
        return method == "GET" and details.id in self.readable


@pytest.fixture
def app_for(client: Any, keys: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch) -> Any:
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from airflow_mlops.ui import app as app_module

    monkeypatch.setattr(app_module, "mlflow_client", lambda: client)
    monkeypatch.setattr(app_module, "public_key_pem", lambda: keys[1])

    def make(readable: set[str] | None, *, user: bool = True) -> tuple[TestClient, _AuthManager]:
        manager = _AuthManager(readable or set())
        monkeypatch.setattr(app_module, "get_auth_manager", lambda: manager)
        app = app_module.create_app()
        if user:
            app.dependency_overrides[get_user] = lambda: object()
        return TestClient(app, root_path="/mlops/models"), manager

    return make


def test_anonymous_requests_are_refused(app_for: Any, registry: dict[str, Any]) -> None:
    http, _ = app_for({f"{PIPELINE}__train"}, user=False)
    assert http.get("/").status_code == 401
    assert http.get(f"/{MODEL}/versions/{registry['v1']}/mlbom.cdx.json").status_code == 401
    # A forged token (403) needs Airflow's auth manager: tests/integration/test_models_view.py.


def test_the_page_shows_the_pipelines_the_user_may_read(app_for: Any, registry: dict[str, Any]) -> None:
    http, manager = app_for({f"{PIPELINE}__train"})
    answer = http.get("/")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert manager.asked == [f"{PIPELINE}__train"]
    assert f'id="version-{MODEL}-{registry["v1"]}"' in answer.text
    assert "signature: verified" in answer.text
    assert f'href="/mlops/models/{MODEL}/versions/{registry["v1"]}/mlbom.cdx.json"' in answer.text

    hidden, _ = app_for(set())
    text = hidden.get("/").text
    assert MODEL not in text and 'id="no-models"' in text


def test_the_mlbom_is_served_only_to_readers_of_the_pipeline(app_for: Any, registry: dict[str, Any]) -> None:
    from airflow_mlops.registry.promotion import lock_name

    http, _ = app_for({f"{PIPELINE}__train"})
    answer = http.get(f"/{MODEL}/versions/{registry['v1']}/mlbom.cdx.json")
    assert answer.status_code == 200
    assert json.loads(answer.content) == registry["bom"]
    assert "attachment" in answer.headers["content-disposition"]
    assert http.get(f"/{MODEL}/versions/{registry['v2']}/mlbom.cdx.json").status_code == 404
    assert http.get(f"/{lock_name(MODEL, 'champion')}/versions/1/mlbom.cdx.json").status_code == 404
    refused, _ = app_for(set())
    assert refused.get(f"/{MODEL}/versions/{registry['v1']}/mlbom.cdx.json").status_code == 403


def test_the_check_page_verifies_now(app_for: Any, registry: dict[str, Any]) -> None:
    http, _ = app_for({f"{PIPELINE}__train"})
    answer = http.get(f"/{MODEL}/versions/{registry['v2']}/check")
    assert answer.status_code == 200 and "signature: verified" in answer.text and "scan: clean" in answer.text


def test_reports_are_served_sandboxed(app_for: Any, client: Any, registry: dict[str, Any]) -> None:
    from tests.unit.ui.models_registry import log_monitor_run

    run_id = log_monitor_run(
        client, experiment=PIPELINE, pipeline=PIPELINE, model=MODEL, version="1", drifted=True, share=0.3
    )
    http, _ = app_for({f"{PIPELINE}__train"})
    answer = http.get(f"/runs/{run_id}/report/drift/drift_report.html")
    assert answer.status_code == 200
    assert "sandbox" in answer.headers["content-security-policy"]
    assert "script-src" not in answer.headers["content-security-policy"]  # default-src 'none' applies
    assert http.get(f"/runs/{run_id}/report/drift/other.html").status_code == 404
    refused, _ = app_for(set())
    assert refused.get(f"/runs/{run_id}/report/drift/drift_report.html").status_code == 403


def test_a_run_report_changed_in_the_store_is_a_conflict(
    app_for: Any, client: Any, registry: dict[str, Any]
) -> None:
    from urllib.parse import urlparse

    from tests.unit.ui.models_registry import log_monitor_run

    run_id = log_monitor_run(
        client, experiment=PIPELINE, pipeline=PIPELINE, model=MODEL, version="1", drifted=True, share=0.3
    )
    stored = Path(urlparse(client.get_run(run_id).info.artifact_uri).path) / "drift/drift_report.html"
    stored.write_bytes(b"<html><body>swapped</body></html>")
    http, _ = app_for({f"{PIPELINE}__train"})
    answer = http.get(f"/runs/{run_id}/report/drift/drift_report.html")
    assert answer.status_code == 409 and "swapped" not in answer.text
    assert str(stored.parent) not in answer.text  # no server paths in the error body
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_everything_from_the_registry_is_escaped() -> None:
    evil = '<img src=x onerror="alert(1)">'
    check = rows.Check(rows.FAILED, "FAILED", evil)
    view = rows.ModelView(
        name=evil,
        pipeline=evil,
        aliases={evil: "1"},
        versions=(
            rows.VersionRow(
                model_name=evil,
                version="1",
                aliases=(evil,),
                created="",
                run_id="r",
                model_sha256="ab" * 32,
                metrics={evil: 0.5},
                gates_passed=False,
                gates_source=evil,
                gates=(rows.Gate(evil, evil, evil, evil, False),),
                signature=check,
                scan=check,
                has_mlbom=True,
                retrain=rows.Retrain(evil, evil, evil),
            ),
        ),
        drift=None,
        errors=(evil,),
    )
    html = page.render_models([view], base="/mlops/models")
    assert "<img" not in html and "&lt;img src=x" in html
    assert (
        "/mlops/models/%3Cimg%20src%3Dx%20onerror%3D%22alert%281%29%22%3E/versions/1/mlbom.cdx.json" in html
    )


def test_the_version_row_says_why_it_was_trained() -> None:
    def row(version: str, retrain: rows.Retrain | None) -> rows.VersionRow:
        check = rows.Check(rows.OK, "verified")
        return rows.VersionRow(
            model_name="m", version=version, aliases=(), created="", run_id="r", model_sha256="ab" * 32,
            metrics={}, gates_passed=True, gates_source="attested", gates=(), signature=check, scan=check,
            has_mlbom=False, retrain=retrain,
        )  # fmt: skip

    drift = rows.Retrain("drift", "feature amount (ks p=1e-09) drifted in window m__monitor/r1", "attested")
    batch = rows.Retrain("new_data", "batch 0a1b2c landed (2 file(s))", "tag (not verified)")
    versions = (row("3", drift), row("2", batch), row("1", rows.Retrain("schedule", "scheduled run", "attested")),
                row("0", None))  # fmt: skip
    html = page.render_models([rows.ModelView("m", "p", {}, versions, None)], base="/mlops/models")
    assert "<th>Why trained</th>" in html
    assert (
        'data-retrain-kind="drift" title="attested">retrained because feature amount (ks p=1e-09) drifted in '
        "window m__monitor/r1</span></td>" in html
    )
    assert "retrained because batch 0a1b2c landed (2 file(s))</span> <small" in html
    assert '<small class="retrain-source">(tag (not verified))</small>' in html
    assert 'data-retrain-kind="schedule" title="attested">scheduled run</span></td>' in html
    assert 'data-retrain-kind="">not recorded</span>' in html


def test_loading_the_plugin_imports_neither_the_routes_nor_mlflow() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from airflow_mlops.ui.plugin import ModelsViewPlugin as P; "
        "assert P.fastapi_apps[0]['url_prefix'] == '/mlops/models'; "
        "print(sorted(m for m in ('mlflow', 'airflow_mlops.ui.app', 'airflow.api_fastapi.core_api.security') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
