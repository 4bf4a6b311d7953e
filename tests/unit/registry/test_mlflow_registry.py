"""The MLflow registry (airflow_mlops.registry.mlflow_registry).

Fail closed without a server: the registry's answers, as MLflow's REST client parses them. The
errors are made by MLflow's own ``verify_rest_response`` from HTTP responses (a JSON error from the
server, a proxy's HTML page, a 5xx), so the tests see exactly what the client raises. The full round
trip against a real server and a faulty proxy is in ``tests/integration/test_registry_fail_closed.py``.

Every flavor and task registers into MLflow so that `mlflow.pyfunc.load_model("models:/<name>@champion")`
predicts what the wrapper documents, with the flavor's library pinned in requirements.txt; the
registered version verifies and scans clean (the wrapper trusted by its sha256, the legacy one too).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.exceptions import (
    RegistryError,
    RegistryLookupError,
    SignatureVerificationError,
    is_retryable,
)
from airflow_mlops.registry import mlflow_registry as reg
from airflow_mlops.registry.mlflow_registry import (
    LEGACY_WRAPPER_FILE,
    LEGACY_WRAPPER_SHA256,
    WRAPPER_FILE,
    package_model,
    register_version,
    serving_requirements,
    start_or_resume_run,
    trusted_code,
    weights_dir,
)
from airflow_mlops.security.scanning import FindingKind, scan_model_dir
from airflow_mlops.training.flavors import load_predictor, read_config
from airflow_mlops.training.trainer import train


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


SKOPS_POLICY = Path(__file__).resolve().parents[3] / "airflow_mlops/security/scanning/skops_policy.py"

# (trainer model, task, params, the library requirements.txt must pin)
CASES = [
    ("mlp", "binary", {"epochs": 2, "hidden_units": [8]}, "torch"),
    ("mlp", "regression", {"epochs": 2, "hidden_units": [8]}, "torch"),
    ("xgboost", "multiclass", {"n_estimators": 8, "max_depth": 3}, "xgboost"),
    ("xgboost", "regression", {"n_estimators": 8, "max_depth": 3}, "xgboost"),
    ("lightgbm", "binary", {"n_estimators": 8}, "lightgbm"),
    ("lightgbm", "multiclass", {"n_estimators": 8}, "lightgbm"),
    ("sklearn.ensemble.RandomForestClassifier", "multiclass", {"n_estimators": 8}, "scikit-learn"),
    ("sklearn.ensemble.RandomForestRegressor", "regression", {"n_estimators": 8}, "scikit-learn"),
]
TARGETS = {"binary": "churned", "multiclass": "plan", "regression": "spend"}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 400
    df = pd.DataFrame(
        {
            "usage": rng.normal(0, 1, n),
            "tenure": rng.normal(0, 1, n),
            "region": rng.choice(["north", "south"], n),
        }
    )
    df["churned"] = np.where(df.usage + rng.normal(0, 0.5, n) > 0, "yes", "no")
    df["plan"] = np.select([df.usage < -0.5, df.usage < 0.5], ["basic", "plus"], "pro")
    df["spend"] = 50 + 10 * df.usage - 5 * df.tenure + rng.normal(0, 1, n)
    return df


def _trained(frame: pd.DataFrame, model: str, task: str, params: dict, out: Path) -> Path:
    target = TARGETS[task]
    data = frame[["usage", "tenure", "region", target]]
    config: dict[str, Any] = {"target": target, "model": model, "params": params, "task": task, "seed": 3}
    if task == "binary":
        config["positive_label"] = "yes"
    train(data, config, out)
    return out


def _register(client: Any, tmp: Path, model_dir: Path, private_key: bytes, name: str) -> str:
    from airflow_mlops.security.signing import sign_model

    sig = tmp / "model.sig"
    sign_model(model_dir, sig, private_key)
    run_id = start_or_resume_run(
        client, experiment="flavors", pipeline="flavors", airflow_run=name, run_name=name
    )
    registered = register_version(
        client,
        model_name=name,
        run_id=run_id,
        model_dir=model_dir,
        signature_path=sig,
        airflow_run=name,
        tags={"mlops.pipeline": "flavors"},
    )
    client.set_registered_model_alias(name, "champion", registered.version)
    return registered.version


@pytest.mark.parametrize(
    ("model", "task", "params", "library"), CASES, ids=[f"{m.split('.')[-1]}-{t}" for m, t, _, _ in CASES]
)
def test_every_flavor_registers_and_mlflow_pyfunc_predicts_its_task(
    model: str,
    task: str,
    params: dict,
    library: str,
    frame: pd.DataFrame,
    client: Any,
    keys: tuple[bytes, bytes],
    tmp_path: Path,
) -> None:
    import mlflow

    from airflow_mlops.registry.mlflow_registry import fetch_trusted_version

    if model.startswith("sklearn.") and not SKOPS_POLICY.is_file():
        pytest.skip("the sklearn flavor loads with security.scanning.skops_policy, not written yet")
    weights = _trained(frame, model, task, params, tmp_path / "weights")
    config = read_config(weights)
    assert config["task"] == task
    packaged = package_model(weights, tmp_path / "model")
    assert (packaged / WRAPPER_FILE).is_file()

    # requirements.txt pins the flavor's library at the version the model was trained with.
    requirements = (packaged / "requirements.txt").read_text().split()
    framework = config["framework"]
    assert framework["name"] == library
    assert f"{library}=={framework['version'].split('+')[0]}" in requirements
    assert requirements == ["mlflow==" + mlflow.__version__, *serving_requirements(config)]
    others = {"torch", "xgboost", "lightgbm", "scikit-learn"} - {library}
    assert not [r for r in requirements if r.split("==")[0] in others]

    name = f"flavor-{model.split('.')[-1].lower()}-{task}"
    version = _register(client, tmp_path, packaged, keys[0], name)
    # What every stage does before loading: verify the signature and digest, scan every file.
    fetched, _ = fetch_trusted_version(client, name, version, keys[1], tmp_path / "fetched")

    served = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    rows = frame.sample(25, random_state=1)[["usage", "tenure", "region"]]
    predictor = load_predictor(weights_dir(fetched))
    expected = predictor.predict_scores(rows)
    got = served.predict(rows)
    if task == "multiclass":
        assert isinstance(got, pd.DataFrame)
        assert list(got.columns) == predictor.classes == sorted(set(frame[TARGETS[task]]))
        assert list(got.index) == list(rows.index)
        np.testing.assert_allclose(got.to_numpy(), expected)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)
    else:
        assert isinstance(got, np.ndarray) and got.shape == (len(rows),)
        np.testing.assert_allclose(got, expected)
        if task == "binary":
            assert ((got >= 0) & (got <= 1)).all()
        else:  # values on the target's scale, not probabilities
            assert got.mean() == pytest.approx(frame["spend"].mean(), rel=0.5)

    labels = served.predict(rows, params={"output": "labels"})
    np.testing.assert_array_equal(np.asarray(labels), predictor.predict(rows))
    if task != "regression":
        assert set(labels) <= set(predictor.classes)
        if task == "multiclass":
            np.testing.assert_array_equal(np.asarray(labels), got.idxmax(axis=1).to_numpy())
    with pytest.raises(Exception, match="output must be one of probabilities, labels"):
        served.predict(rows, params={"output": "logits"})


def test_the_wrapper_is_trusted_by_its_sha256_and_a_changed_one_is_refused(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    weights = _trained(frame, "lightgbm", "regression", {"n_estimators": 4}, tmp_path / "weights")
    packaged = package_model(weights, tmp_path / "model")
    assert scan_model_dir(packaged, trusted_code=trusted_code()).ok
    wrapper = packaged / WRAPPER_FILE
    wrapper.write_text(wrapper.read_text() + "\nimport os; os.system('id')\n")
    findings = scan_model_dir(packaged, trusted_code=trusted_code()).findings
    assert [(f.path, f.kind) for f in findings] == [(WRAPPER_FILE, FindingKind.CODE_HASH_MISMATCH)]


# The wrapper of the first release, byte for byte: versions registered with it stay trusted.
LEGACY_WRAPPER = '''"""MLflow "models from code" wrapper for models trained by airflow-mlops.

MLflow copies this file into every registered model, so ``mlflow.pyfunc.load_model(
"models:/<name>@champion")`` works for serving. It loads weights from safetensors only: nothing in
a registered model is unpickled. The model scanner trusts this file by its exact sha256.
"""

from __future__ import annotations

from typing import Any

import mlflow  # noqa: TID253 - only ever loaded by MLflow when a model is loaded
from mlflow.pyfunc import PythonModel  # noqa: TID253


class SafetensorsTabularModel(PythonModel):
    """Predicts the positive-class probability for each row of a DataFrame."""

    def load_context(self, context: Any) -> None:
        from airflow_mlops.training.model import load_predictor

        self._predictor = load_predictor(context.artifacts["weights"])

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return self._predictor.predict_proba(model_input)


mlflow.models.set_model(SafetensorsTabularModel())
'''


def test_models_packaged_with_the_first_release_wrapper_stay_trusted(tmp_path: Path) -> None:
    assert hashlib.sha256(LEGACY_WRAPPER.encode()).hexdigest() == LEGACY_WRAPPER_SHA256
    assert trusted_code()[LEGACY_WRAPPER_FILE] == LEGACY_WRAPPER_SHA256
    (tmp_path / LEGACY_WRAPPER_FILE).write_text(LEGACY_WRAPPER)
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    assert scan_model_dir(tmp_path, trusted_code=trusted_code()).ok
    (tmp_path / LEGACY_WRAPPER_FILE).write_text(LEGACY_WRAPPER.replace("predict_proba", "predict"))
    assert not scan_model_dir(tmp_path, trusted_code=trusted_code()).ok


def test_serving_requirements_pin_the_recorded_library_and_never_a_bad_version() -> None:
    from importlib.metadata import version

    assert serving_requirements(
        {"flavor": "xgboost", "framework": {"name": "xgboost", "version": "2.1.0"}}
    ) == [
        "xgboost==2.1.0",
        f"numpy=={version('numpy')}",
        f"pandas=={version('pandas')}",
    ]
    torch_v1 = serving_requirements({"flavor": "torch", "torch_version": "2.4.1+cu121"})
    assert torch_v1[0] == "torch==2.4.1"  # the local build label dropped
    odd = serving_requirements(
        {"flavor": "lightgbm", "framework": {"name": "lightgbm", "version": "unknown"}}
    )
    assert odd[0] == f"lightgbm=={version('lightgbm')}"  # not "lightgbm==unknown"
    from airflow_mlops.exceptions import RegistryError

    with pytest.raises(RegistryError, match="unknown model flavor 'onnx'"):
        serving_requirements({"flavor": "onnx"})
