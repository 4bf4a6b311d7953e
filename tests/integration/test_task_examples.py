"""The task examples of docs/examples/tasks end to end, through `airflow dags test` against a real
MLflow server: each train DAG promotes a signed model (binary XGBoost, multiclass scikit-learn
pipeline of the user's own, regression LightGBM, 10-class CNN on 8x8 images, a user torch module,
a scikit-learn estimator named by path on text labels),
and each monitor DAG stays quiet on a clean live window and fires on a drifted one.

Data: scikit-learn's bundled datasets (no downloads), written by
``airflow_mlops.data.sklearn_examples`` into the dags folder's ``data/``, where the specs read it.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, MLflowServer, running_mlflow
from tests.integration.test_lifecycle_dag import airflow_env, run

pytestmark = pytest.mark.integration

EXAMPLES = ROOT / "docs" / "examples" / "tasks"
#: pipeline -> (spec file, task, flavor of the promoted model)
CASES = {
    "breast_cancer_xgboost": ("breast_cancer_xgboost.yaml", "binary", "xgboost"),
    "wine_pipeline": ("wine_pipeline.yaml", "multiclass", "sklearn"),
    "diabetes_lightgbm": ("diabetes_lightgbm.yaml", "regression", "lightgbm"),
    "digits_cnn": ("digits_cnn.yaml", "multiclass", "torch"),
    "breast_cancer_torch_module": ("breast_cancer_torch_module.yaml", "binary", "torch"),
    "iris_hist_gradient_boosting": ("iris_hist_gradient_boosting.yaml", "multiclass", "sklearn"),
}
AIRFLOW = str(Path(sys.executable).parent / "airflow")


class Stack:
    def __init__(
        self, tmp: Path, mlflow: MLflowServer, env: dict[str, str], keys: tuple[bytes, bytes]
    ) -> None:
        self.tmp, self.mlflow, self.env, self.keys = tmp, mlflow, env, keys


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, signing_keys: tuple[bytes, bytes]) -> Iterator[Stack]:
    from airflow_mlops.data.sklearn_examples import write_example

    tmp = tmp_path_factory.mktemp("examples")
    dags = tmp / "dags"
    (dags / "specs").mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "mlops_specs.py", dags / "mlops_specs.py")
    shutil.copytree(EXAMPLES / "example_models", dags / "example_models")
    for spec, _, _ in CASES.values():
        shutil.copy(EXAMPLES / spec, dags / "specs" / spec)
    for name in ("breast_cancer", "wine", "digits", "diabetes", "iris"):
        write_example(name, dags / "data")
    (tmp / "mlflow").mkdir()
    with running_mlflow(tmp / "mlflow") as mlflow:
        env = airflow_env(tmp, mlflow.url, signing_keys, dags)
        migrate = run([AIRFLOW, "db", "migrate"], env, tmp / "migrate.log")
        assert migrate.returncode == 0, migrate.stderr[-2000:]
        yield Stack(tmp, mlflow, env, signing_keys)


def reports(stack: Stack, pipeline: str) -> set[Path]:
    return set((stack.tmp / "artifacts" / pipeline).rglob("drift_report.json"))


def run_monitor(stack: Stack, pipeline: str, day: str, log: Path) -> dict:
    """One monitor run (`dags test` for ``day``'s window) and the drift report it wrote."""
    before = reports(stack, pipeline)
    proc = run([AIRFLOW, "dags", "test", f"{pipeline}__monitor", day], stack.env, log)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    new = reports(stack, pipeline) - before
    assert len(new) == 1, f"{pipeline} {day}: {len(new)} new drift reports"
    return json.loads(new.pop().read_text())


@pytest.mark.parametrize("pipeline", list(CASES))
def test_example_promotes_a_signed_model_and_its_monitor_fires_on_drift_only(
    stack: Stack, pipeline: str
) -> None:
    from mlflow import MlflowClient

    from airflow_mlops.registry.mlflow_registry import TAG_GATES, champion_version, fetch_verified_version
    from airflow_mlops.training.flavors import read_config

    spec_file, task, flavor = CASES[pipeline]
    log = stack.tmp / pipeline
    log.mkdir(exist_ok=True)
    train = run([AIRFLOW, "dags", "test", f"{pipeline}__train", "2026-01-02"], stack.env, log / "train.log")
    assert train.returncode == 0, (train.stdout + train.stderr)[-6000:]

    client = MlflowClient(tracking_uri=stack.mlflow.url)
    name = next(
        line.split("model_name:")[1].strip(" }\n").split("}")[0].strip()
        for line in (EXAMPLES / spec_file).read_text().splitlines()
        if "model_name:" in line
    )
    champion = champion_version(client, name, "champion")
    assert champion is not None, (train.stdout + train.stderr)[-6000:]
    assert champion.tags[TAG_GATES] == "passed"
    model_dir, _ = fetch_verified_version(client, name, champion.version, stack.keys[1], log / "check")
    config = read_config(next(p.parent for p in model_dir.rglob("model_config.json")))
    assert (config["task"], config["flavor"]) == (task, flavor)

    clean = run_monitor(stack, pipeline, "2026-01-02", log / "clean.log")
    assert clean["drifted"] is False, clean["reasons"]
    assert clean["quality_failed"] is False, [q for q in clean["quality"] if not q["passed"]]

    drifted = run_monitor(stack, pipeline, "2026-01-03", log / "drift.log")
    assert drifted["drifted"] is True, drifted["reasons"]
    assert drifted["quality_failed"] is False, [q for q in drifted["quality"] if not q["passed"]]
