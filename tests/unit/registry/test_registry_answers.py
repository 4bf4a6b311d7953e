"""Fail closed without a server: the registry's answers, as MLflow's REST client parses them.

The errors are made by MLflow's own ``verify_rest_response`` from HTTP responses (a JSON error
from the server, a proxy's HTML page, a 5xx), so the tests see exactly what the client raises.
The full round trip against a real server and a faulty proxy is in
``tests/integration/test_registry_fail_closed.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.exceptions import (
    RegistryError,
    RegistryLookupError,
    SignatureVerificationError,
    is_retryable,
)
from airflow_mlops.registry import mlflow_registry as reg


def rest_error(status: int, body: str | dict[str, Any], endpoint: str = "/api/2.0/mlflow/x") -> Exception:
    """The exception MLflow's REST client raises for this HTTP answer."""
    import requests
    from mlflow.utils.rest_utils import verify_rest_response

    response = requests.Response()
    response.status_code = status
    response._content = (json.dumps(body) if isinstance(body, dict) else body).encode()
    try:
        verify_rest_response(response, endpoint)
    except Exception as exc:  # returned for the test to inspect
        return exc
    raise AssertionError("verify_rest_response accepted an error answer")


MISSING_MODEL = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Registered Model with name=m not found"}
MISSING_ALIAS = {
    "error_code": "INVALID_PARAMETER_VALUE",
    "message": "Registered model alias champion not found.",
}
HTML_404 = "<html><title>404 Not Found</title><body>Not Found</body></html>"


def test_only_the_exact_code_means_does_not_exist() -> None:
    assert reg._does_not_exist(rest_error(404, MISSING_MODEL))
    # Both say "not found"; neither is MLflow's "does not exist" answer.
    assert not reg._does_not_exist(rest_error(404, HTML_404))
    assert not reg._does_not_exist(rest_error(400, MISSING_ALIAS))
    assert not reg._does_not_exist(ValueError("RESOURCE_DOES_NOT_EXIST"))


@pytest.mark.parametrize(
    ("status", "body", "final", "code"),
    [
        (404, HTML_404, True, "ENDPOINT_NOT_FOUND"),
        (403, {"error_code": "PERMISSION_DENIED", "message": "no"}, True, "PERMISSION_DENIED"),
        (400, MISSING_ALIAS, True, "INVALID_PARAMETER_VALUE"),
        (500, "<html>Internal Server Error</html>", False, "INTERNAL_ERROR"),
        (503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}, False, "TEMPORARILY_UNAVAILABLE"),
        (502, "Bad Gateway", False, "INTERNAL_ERROR"),
    ],
)
def test_lookup_failures_are_final_or_transient_by_the_answer(status, body, final, code) -> None:
    error = reg.lookup_failed(
        "champion lookup 'm'@champion: reading registered model 'm'", rest_error(status, body)
    )
    assert isinstance(error, RegistryError)
    assert isinstance(error, RegistryLookupError) is final
    assert is_retryable(error) is not final
    assert str(error).startswith(
        "champion lookup 'm'@champion: reading registered model 'm' failed with " + code
    )


def test_a_network_error_is_transient_and_long_pages_are_cut() -> None:
    assert is_retryable(reg.lookup_failed("x", ConnectionRefusedError("refused")))
    assert not is_retryable(reg.lookup_failed("x", KeyError("odd")))
    message = str(reg.lookup_failed("x", rest_error(404, "<p>" + "x" * 5000 + "</p>")))
    assert len(message) < 1000 and "..." in message


class FakeClient:
    """Answers like MlflowClient; each method either returns its value or raises its error."""

    def __init__(self, **answers: Any) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name not in self.answers:
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            answer = self.answers[name]
            if isinstance(answer, BaseException):
                raise answer
            return answer(*args, **kwargs) if callable(answer) else answer

        return call


def model(aliases: dict[str, str]) -> SimpleNamespace:
    return SimpleNamespace(name="m", aliases=aliases)


def test_champion_is_the_aliased_version() -> None:
    version = SimpleNamespace(version="3")
    client = FakeClient(get_registered_model=model({"champion": "3"}), get_model_version_by_alias=version)
    assert reg.champion_version(client, "m", "champion") is version


def test_a_model_without_the_alias_has_no_champion() -> None:
    client = FakeClient(get_registered_model=model({"canary": "2"}))
    assert reg.champion_version(client, "m", "champion") is None
    assert client.calls == ["get_registered_model"]


def test_the_alias_lookup_failing_after_the_model_has_the_alias_blocks() -> None:
    # Even MLflow's "does not exist" here cannot mean "no champion": the model listed the alias.
    for error, final in ((rest_error(404, MISSING_MODEL), True), (rest_error(500, "oops"), False)):
        client = FakeClient(get_registered_model=model({"champion": "3"}), get_model_version_by_alias=error)
        with pytest.raises(RegistryError, match="reading the version the alias points at") as caught:
            reg.champion_version(client, "m", "champion")
        assert is_retryable(caught.value) is not final


def test_a_missing_model_is_a_first_model_only_if_the_pipeline_never_registered_one() -> None:
    missing = rest_error(404, MISSING_MODEL)
    never = FakeClient(get_registered_model=missing, search_registered_models=[])
    assert reg.champion_version(never, "m", "champion", pipeline="p") is None
    renamed = FakeClient(
        get_registered_model=missing, search_registered_models=[SimpleNamespace(name="m-old")]
    )
    with pytest.raises(
        RegistryLookupError, match=r"pipeline 'p' registered m-old\. Is the model name misspelt"
    ):
        reg.champion_version(renamed, "m", "champion", pipeline="p")
    with pytest.raises(RegistryLookupError, match="cannot be told from a misspelt name"):
        reg.champion_version(FakeClient(get_registered_model=missing), "m", "champion")
    failing_search = FakeClient(
        get_registered_model=missing, search_registered_models=rest_error(503, "busy")
    )
    with pytest.raises(RegistryError, match="searching the models of pipeline 'p'") as caught:
        reg.champion_version(failing_search, "m", "champion", pipeline="p")
    assert is_retryable(caught.value)


def test_a_proxy_page_is_never_no_champion() -> None:
    client = FakeClient(get_registered_model=rest_error(404, HTML_404), search_registered_models=[])
    with pytest.raises(RegistryLookupError, match="ENDPOINT_NOT_FOUND"):
        reg.champion_version(client, "m", "champion", pipeline="p")
    assert "search_registered_models" not in client.calls


def test_registering_creates_the_model_only_when_it_does_not_exist() -> None:
    created = FakeClient(get_registered_model=rest_error(404, MISSING_MODEL), create_registered_model=None)
    reg._ensure_registered_model(created, "m", pipeline="p")
    assert created.calls == ["get_registered_model", "create_registered_model"]
    raced = FakeClient(
        get_registered_model=rest_error(404, MISSING_MODEL),
        create_registered_model=rest_error(
            400, {"error_code": "RESOURCE_ALREADY_EXISTS", "message": "exists"}
        ),
    )
    reg._ensure_registered_model(raced, "m", pipeline="p")  # another try created it: fine
    proxied = FakeClient(get_registered_model=rest_error(404, HTML_404), create_registered_model=None)
    with pytest.raises(RegistryLookupError, match="before registering"):
        reg._ensure_registered_model(proxied, "m", pipeline="p")
    assert "create_registered_model" not in proxied.calls


def _version_client(tmp_path: Path, listed: Any) -> FakeClient:
    mv = SimpleNamespace(source=str(tmp_path / "src"), run_id="r1", tags={})
    run = SimpleNamespace(info=SimpleNamespace(artifact_uri=str(tmp_path / "run")))
    client = FakeClient(get_model_version=mv, get_run=run, list_artifacts=listed)
    client._tracking_client = SimpleNamespace(tracking_uri=str(tmp_path / "mlruns"))  # type: ignore[attr-defined]
    return client


def test_download_tells_an_unsigned_version_from_a_failing_listing(tmp_path: Path, monkeypatch) -> None:
    import mlflow

    (tmp_path / "src").mkdir()
    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", lambda **kw: str(tmp_path / "src"))
    unsigned = _version_client(tmp_path, [SimpleNamespace(path="signature/other.txt")])
    with pytest.raises(SignatureVerificationError, match="has no signature artifact"):
        reg.download_version(unsigned, "m", "3", tmp_path / "dest")
    failing = _version_client(tmp_path, rest_error(503, "busy"))
    with pytest.raises(RegistryError, match="looking up the signature") as caught:
        reg.download_version(failing, "m", "3", tmp_path / "dest")
    assert not isinstance(caught.value, SignatureVerificationError) and is_retryable(caught.value)
    signed = _version_client(tmp_path, [SimpleNamespace(path="signature/model.sig")])
    _, sig_path, _ = reg.download_version(signed, "m", "3", tmp_path / "dest")
    assert sig_path == tmp_path / "src"
