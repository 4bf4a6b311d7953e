"""Variants nobody wrote down: the report endpoint, every route and method, the page's text.

The report of a pipeline is served only to readers of its ``<pipeline>__train`` DAG, whatever
the DAG that recorded it is called; odd query values are refused with the security headers; the
page and the check page never show a server path or a credential from an error."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.ui import documents, page, rows
from tests.unit.ui import test_report_endpoint as endpoint
from tests.unit.ui.models_registry import PIPELINE
from tests.unit.ui.test_report_endpoint import DAG, RUN, RUN_SEGMENT, SECRET, TASK, assert_secure, params

env = endpoint.env  # the report endpoint's fixtures
http_for = endpoint.http_for

ROUTES = (
    "/",
    "/m/versions/1/check",
    "/m/versions/1/mlbom.cdx.json",
    "/runs/x/report/drift/drift_report.html",
    "/artifacts/report",
    "/artifacts/report/",
    "/no/such/route",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/runs/x/report/..%2f..%2fetc%2fpasswd",
)
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")


def test_every_route_and_method_answers_with_the_headers(env: dict[str, Any], http_for: Any) -> None:
    http = http_for({DAG})
    for url in ROUTES:
        for method in METHODS:
            answer = http.request(method, url, follow_redirects=False)
            assert_secure(answer, str(env["tmp"]))
            assert answer.status_code != 200 or method == "GET"


def test_a_dag_named_like_a_pipeline_proves_nothing(env: dict[str, Any], http_for: Any) -> None:
    """A task of ``victim__other`` (a DAG the user may read) recording the victim pipeline's report
    of a run with the same id: the victim's ``__train`` DAG decides."""
    folder = env["root"] / "victim" / RUN_SEGMENT / "screen"
    folder.mkdir(parents=True)
    (folder / "screen_report.html").write_text("<html>VICTIM</html>")
    record = {
        "uri": str(folder / "screen_report.html"),
        "sha256": hashlib.sha256(b"<html>VICTIM</html>").hexdigest(),
    }
    env["records"][("victim__other", RUN, TASK, -1, "report")] = record
    refused = http_for({"victim__other"}).get("/artifacts/report", params=params(dag_id="victim__other"))
    assert refused.status_code == 403 and "VICTIM" not in refused.text
    assert_secure(refused, str(env["tmp"]))
    allowed = http_for({"victim__other", "victim__train"})
    assert allowed.get("/artifacts/report", params=params(dag_id="victim__other")).status_code == 200


@pytest.mark.parametrize(
    "over",
    [
        {"dag_id": "a" * 300},
        {"run_id": "r" * 251},
        {"task_id": ""},
        {"map_index": str(10**30)},
        {"map_index": "9" * 5000},
        {"map_index": "-2"},
        {"map_index": "1e3"},
        {"output": "x" * 5000},
        {"output": "../report"},
        {"output": "html_report\\"},
    ],
)
def test_odd_query_values_are_refused(env: dict[str, Any], http_for: Any, over: dict[str, Any]) -> None:
    answer = http_for({DAG}).get("/artifacts/report", params=params(**over))
    assert answer.status_code in (404, 422), answer.text
    assert_secure(answer, str(env["tmp"]), str(env["root"]))


@pytest.mark.parametrize("query", ["dag_id=%00&run_id=%00&task_id=%00", "dag_id=%ff%fe&run_id=b&task_id=c"])
def test_nul_and_bad_encodings_are_not_served(env: dict[str, Any], http_for: Any, query: str) -> None:
    answer = http_for({DAG}).get(f"/artifacts/report?{query}")
    assert answer.status_code in (403, 404, 422)
    assert_secure(answer, str(env["tmp"]))


@pytest.mark.parametrize(
    "uri",
    [
        "file://localhost{good}",
        "file://{encoded}",
        "{good}\n",
        "{root}/" + PIPELINE + "\n/" + RUN_SEGMENT + "/screen/screen_report.html",
        PIPELINE + "/" + RUN_SEGMENT + "/screen/screen_report.html",
        "./" + PIPELINE + "/" + RUN_SEGMENT + "/screen/screen_report.html",
        "{root}//" + PIPELINE + "/" + RUN_SEGMENT + "/screen/screen_report.html",
        "{root}/./" + PIPELINE + "/" + RUN_SEGMENT + "/screen/screen_report.html",
        "{root}\\" + PIPELINE + "\\" + RUN_SEGMENT + "\\screen\\screen_report.html",
    ],
)
def test_recorded_uris_in_other_spellings_are_refused(env: dict[str, Any], http_for: Any, uri: str) -> None:
    good = env["ref"]["uri"]
    env["ref"]["uri"] = uri.format(good=good, encoded=good.replace("/", "%2F"), root=env["root"])
    answer = http_for({DAG}).get("/artifacts/report", params=params())
    assert answer.status_code == 404, answer.text
    assert_secure(answer, str(env["tmp"]))


def test_a_digest_with_a_trailing_newline_is_no_digest(env: dict[str, Any], http_for: Any) -> None:
    env["ref"]["sha256"] += "\n"
    assert http_for({DAG}).get("/artifacts/report", params=params()).status_code == 404


def test_the_served_bytes_are_the_bytes_hashed(
    env: dict[str, Any], http_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is replaced between the digest check and the answer: the answer holds what was
    hashed (one read), never the new content."""
    real_sha256 = hashlib.sha256
    target = Path(env["ref"]["uri"])

    def swap_then_hash(data: bytes = b"") -> Any:
        target.write_bytes(b"<html>SWAPPED</html>")
        return real_sha256(data)

    monkeypatch.setattr(documents.hashlib, "sha256", swap_then_hash)
    answer = http_for({DAG}).get("/artifacts/report", params=params())
    assert answer.status_code == 200 and "SWAPPED" not in answer.text and "<p>screen</p>" in answer.text


LEAKY = f"failed at /tmp/mlops-ui-check-x/model.pkl via http://alice:{SECRET}@mlflow:5000/ and sqlite:////srv/mlflow.db"
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(1)>javascript:alert(1)'


def test_the_page_never_shows_a_server_path_or_credential_from_an_error() -> None:
    check = rows.Check(rows.ERROR, "not verified", LEAKY)
    version = rows.VersionRow(
        "m",
        "1",
        ("champion",),
        "",
        "r",
        "0" * 64,
        {},
        None,
        f"attestation FAILED: {LEAKY}",
        (),
        check,
        check,
        False,
    )
    model = rows.ModelView("m", "p", {"champion": "1"}, (version,), None, (LEAKY,))
    for html in (
        page.render_models([model], base="/mlops/models"),
        page.render_check("m", "1", check, check, base="/mlops/models"),
    ):
        for leak in (SECRET, "/tmp/mlops-ui-check-x", "/srv/mlflow.db", "alice"):
            assert leak not in html
        assert 'href="/mlops/models/' in html  # the view's own links are kept


def test_every_field_of_the_page_is_escaped() -> None:
    check = rows.Check(rows.OK + HOSTILE, HOSTILE, HOSTILE)
    gate = rows.Gate(HOSTILE, HOSTILE, HOSTILE, HOSTILE, True)
    version = rows.VersionRow(
        HOSTILE, HOSTILE, (HOSTILE,), HOSTILE, HOSTILE, HOSTILE, {HOSTILE: 1.0}, None, HOSTILE, (gate,),
        check, check, True, HOSTILE,
    )  # fmt: skip
    drift = rows.DriftResult(HOSTILE, HOSTILE, HOSTILE, 0.5, 1, HOSTILE, True)
    model = rows.ModelView(HOSTILE, HOSTILE, {HOSTILE: HOSTILE}, (version,), drift, (HOSTILE,))
    for html in (
        page.render_models([model], base="/mlops/models"),
        page.render_check(HOSTILE, HOSTILE, check, check, base="/mlops/models"),
    ):
        assert "<script" not in html and "<img" not in html
        assert 'href="javascript' not in html and "href='javascript" not in html
        for href in html.split('href="')[1:]:
            assert href.startswith("/mlops/models/")


def test_the_mlbom_download_name_is_a_plain_header_value() -> None:
    from airflow_mlops.ui.app import _filename

    assert _filename('ünï"cøde\r\nX-Evil: 1-v1.mlbom.cdx.json') == "_n__c_de__X-Evil__1-v1.mlbom.cdx.json"
    assert _filename("") == "download"


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"bomFormat": "CycloneDX", "bomFormat": "Other"}',
        b'{"a": NaN}',
        b'{"a": ' + b"9" * 100_000 + b"}",
        b'{"a": "\xff"}',
        b"[]",
    ],
)
def test_a_malformed_mlbom_is_refused_never_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    from types import SimpleNamespace

    from airflow_mlops.exceptions import ArtifactError
    from airflow_mlops.registry import mlflow_registry

    def download(client: Any, mv: Any, name: str, dest: Any) -> Path:
        path = tmp_path / "mlbom.cdx.json"
        path.write_bytes(content)
        return path

    monkeypatch.setattr(mlflow_registry, "get_version", lambda *a: SimpleNamespace(run_id="r"))
    monkeypatch.setattr(mlflow_registry, "download_attestation", download)
    with pytest.raises(ArtifactError) as caught:
        documents.mlbom_document(object(), "m", "1")  # type: ignore[arg-type]
    assert str(tmp_path) not in str(caught.value)
