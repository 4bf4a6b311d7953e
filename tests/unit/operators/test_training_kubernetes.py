"""The kubernetes backend: the pod the example spec builds, without a cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.exceptions import TrainingRejectedError
from airflow_mlops.factory import build_dags
from airflow_mlops.spec.loader import load_spec

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "docs" / "examples" / "fraud_detector_kubernetes.yaml"
AWS_SECRET = "wJalrXUtnFEMI-not-in-any-pod-spec"
JOB = {
    "uri": "s3://mlops-artifacts/fraud/fraud_detector_gpu/scheduled__2026-01-02/train/job.json",
    "sha256": "ab" * 32,
    "size": 812,
    "media_type": "application/json",
    "producer": "training.prepare",
    "metadata": {},
}


@pytest.fixture
def fit(monkeypatch: pytest.MonkeyPatch) -> Any:
    # A real AWS connection with a secret exists on the worker: none of it may reach the pod.
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps({"conn_type": "aws", "login": "AKIAEXAMPLE", "password": AWS_SECRET}),
    )
    dag = build_dags(load_spec(EXAMPLE), spec_path=EXAMPLE)["fraud_detector_gpu__train"]
    task = dag.get_task("training.fit")
    task.job = dict(JOB)  # what the templated XComArg renders to at run time
    return task


def context(task: Any, try_number: int = 1) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id=task.dag_id, task_id=task.task_id, try_number=try_number, map_index=-1)
    return {"ti": ti, "run_id": "scheduled__2026-01-02T00:00:00+00:00", "dag": task.dag}


def pod_dict(task: Any, ctx: dict[str, Any] | None = None) -> dict[str, Any]:
    return task.build_pod_request_obj(ctx, dry_run=True).to_dict()


def test_the_example_builds_a_kubernetes_pod_task_deferrable_and_self_cleaning(fit: Any) -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    assert isinstance(fit, KubernetesPodOperator)
    assert fit.deferrable is True
    assert fit.reattach_on_restart is True
    assert (fit.on_finish_action.value, fit.on_kill_action.value) == ("delete_pod", "delete_pod")
    assert fit.get_logs is True
    assert fit.do_xcom_push is True
    assert fit.namespace == "ml-training"
    assert fit.startup_timeout_seconds == 900
    assert fit.retries == 1  # the spec's defaults reach the pod task too


def test_gpu_resources_placement_and_tolerations(fit: Any) -> None:
    spec = pod_dict(fit)["spec"]
    (container,) = [c for c in spec["containers"] if c["name"] == "base"]
    resources = container["resources"]
    assert resources["limits"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}
    assert resources["requests"] == resources["limits"]
    assert spec["node_selector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    tolerations = [{k: v for k, v in t.items() if v is not None} for t in spec["tolerations"]]
    assert tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["service_account_name"] == "mlops-trainer"
    assert [s["name"] for s in spec["image_pull_secrets"]] == ["ghcr-pull"]


def test_the_pod_is_hardened(fit: Any) -> None:
    spec = pod_dict(fit)["spec"]
    assert spec["automount_service_account_token"] is False
    pod_sc = spec["security_context"]
    assert pod_sc["run_as_non_root"] is True and pod_sc["run_as_user"] == 1000
    assert pod_sc["seccomp_profile"]["type"] == "RuntimeDefault"
    assert len(spec["containers"]) == 2  # the trainer and the XCom sidecar: both hardened
    for container in spec["containers"]:
        sc = container["security_context"]
        assert sc["read_only_root_filesystem"] is True, container["name"]
        assert sc["allow_privilege_escalation"] is False
        assert sc["privileged"] is False
        assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"]["add"]
        assert sc["run_as_non_root"] is True
        assert sc["seccomp_profile"]["type"] == "RuntimeDefault"
    (base,) = [c for c in spec["containers"] if c["name"] == "base"]
    mounts = {m["mount_path"]: m["name"] for m in base["volume_mounts"]}
    assert mounts["/tmp"] == "scratch" and "/airflow/xcom" in mounts
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["scratch"]["empty_dir"]["size_limit"] == "20Gi"
    env = {e["name"]: e for e in base["env"]}
    assert env["TMPDIR"]["value"] == "/tmp" and env["HOME"]["value"] == "/tmp"


def test_the_trainer_entrypoint_and_job_arguments(fit: Any) -> None:
    (base,) = [c for c in pod_dict(fit)["spec"]["containers"] if c["name"] == "base"]
    assert base["command"] == ["python", "-m", "airflow_mlops.training"]
    assert base["image"] == "ghcr.io/example/airflow-mlops-trainer:0.1.0"
    args = base["args"]
    assert args[0] == "--job" and json.loads(args[1]) == JOB
    assert args[2:] == ["--result", "/airflow/xcom/return.json"]


def test_credentials_are_secret_references_and_no_value_leaks(fit: Any) -> None:
    pod = pod_dict(fit, context(fit))
    (base,) = [c for c in pod["spec"]["containers"] if c["name"] == "base"]
    env = {e["name"]: e for e in base["env"]}
    for name, key in (("AWS_ACCESS_KEY_ID", "access_key_id"), ("AWS_SECRET_ACCESS_KEY", "secret_access_key")):
        assert env[name]["value"] is None
        assert env[name]["value_from"]["secret_key_ref"] == {"key": key, "name": "mlops-s3", "optional": None}
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio.storage.svc:9000"
    text = json.dumps(pod, default=str)
    assert AWS_SECRET not in text and "AKIAEXAMPLE" not in text
    # Nor in the rendered templates.
    fit.render_template_fields(context(fit))
    rendered = json.dumps({f: getattr(fit, f) for f in fit.template_fields}, default=str)
    assert AWS_SECRET not in rendered and "AKIAEXAMPLE" not in rendered


def test_pod_labels_come_from_dag_task_and_run_so_a_retry_reattaches(fit: Any) -> None:
    first = pod_dict(fit, context(fit, 1))["metadata"]["labels"]
    assert first["dag_id"] == "fraud_detector_gpu__train"
    assert first["task_id"] == "training.fit"
    assert first["run_id"].startswith("scheduled__2026-01-02")
    assert first["mlops_pipeline" if "mlops_pipeline" in first else "mlops/pipeline"] == "fraud-detector-gpu"
    assert first["team"] == "risk-ml"
    # What KPO looks a running pod up by (reattach_on_restart) is the same on the next try.
    second = fit._build_find_pod_label_selector(context(fit, 2))
    assert second == fit._build_find_pod_label_selector(context(fit, 1))
    assert "dag_id=fraud_detector_gpu__train" in second and "task_id=training.fit" in second


def test_a_local_artifact_store_or_a_literal_credential_is_refused(fit: Any, tmp_path: Path) -> None:
    from airflow_mlops.operators.training_kubernetes import ModelFitPodOperator

    fit.job = {**JOB, "uri": "/var/lib/mlops/fraud/job.json"}
    with pytest.raises(TrainingRejectedError, match="a Kubernetes pod cannot read"):
        fit.build_pod_request_obj(dry_run=True)
    with pytest.raises(TrainingRejectedError, match="AWS_SECRET_ACCESS_KEY look like credentials"):
        ModelFitPodOperator(task_id="t", job=JOB, image="i", env={"AWS_SECRET_ACCESS_KEY": "x"})
    local = tmp_path / "local.yaml"
    local.write_text(EXAMPLE.read_text().replace("root: s3://mlops-artifacts/fraud", "root: /var/lib/mlops"))
    with pytest.raises(TrainingRejectedError, match=r"needs an s3:// artifacts\.root"):
        build_dags(load_spec(local), spec_path=local)


def test_the_result_file_is_checked(fit: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    weights = {**JOB, "uri": JOB["uri"].replace("job.json", "weights"), "media_type": "inode/directory"}
    monkeypatch.setattr(
        KubernetesPodOperator,
        "extract_xcom",
        lambda self, pod, **kw: {"format_version": 1, "weights": weights, "metrics": {"val_roc_auc": 0.9}},
    )
    assert fit.extract_xcom(pod=None)["weights"] == weights
    monkeypatch.setattr(KubernetesPodOperator, "extract_xcom", lambda self, pod, **kw: {"hello": 1})
    with pytest.raises(Exception, match="not a trainer result"):
        fit.extract_xcom(pod=None)


def test_parsing_a_local_spec_imports_no_container_provider(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from airflow_mlops.factory import build_dags\n"
        "from airflow_mlops.spec.loader import load_spec\n"
        f"p = {str(ROOT / 'dags' / 'specs' / 'fraud_detector.yaml')!r}\n"
        "spec = load_spec(p)\n"
        "from airflow_mlops.factory.training import build_training\n"
        "from airflow.sdk import DAG\n"
        "with DAG('x', schedule=None):\n"
        "    build_training(spec, data={'uri': 'u'}, settings={'pipeline': 'x'})\n"
        "bad = [m for m in ('kubernetes', 'airflow.providers.cncf.kubernetes.operators.pod', 'docker',"
        " 'airflow.providers.docker.operators.docker', 'torch') if m in sys.modules]\n"
        "print('BAD=' + ','.join(bad))\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("BAD=")]
    assert line == "BAD=", line


@pytest.mark.parametrize(
    "name",
    [
        "S3_KEY",
        "api_key",
        "MyApiKey",
        "GH_TOKEN",
        "db_password",
        "DB_PASSWD",
        "SigningSecret",
        "gcp_credentials",
    ],
)
def test_a_credential_like_name_is_refused_in_any_case_or_position(name: str) -> None:
    from airflow_mlops.operators.training_kubernetes import ModelFitPodOperator

    with pytest.raises(TrainingRejectedError, match=f"{name} look like credentials.*secret references"):
        ModelFitPodOperator(task_id="t", job=JOB, image="i", env={name: "x"})


SECRET_VALUES = [
    "AKIAIOSFODNN7EXAMPLE",
    "ASIAY34FZKBOKMUTVV7A",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "password=hunter2",
    "user=bob;Password=hunter2",
    "token: 0123abcd",
    "http://alice:hunter2@mlflow:5000",
    "https://mlflow.internal/?access_token=abc",
    "postgresql://airflow:airflow@db/airflow",
    "ghp_" + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6",
    "xoxb-123456789012-abcdefABCDEF",
    "7Hq9xZ2kP4mW8vR1tY6nB3cJ5dL0fG",
    "Ab3dEf6hIj9kLm2nOp5q",
]


@pytest.mark.parametrize("value", SECRET_VALUES)
def test_a_credential_like_value_is_refused_whatever_the_name(value: str) -> None:
    from airflow_mlops.operators.training_kubernetes import ModelFitPodOperator

    with pytest.raises(TrainingRejectedError, match=r"STORAGE_OPTS .*look like credentials") as info:
        ModelFitPodOperator(task_id="t", job=JOB, image="i", env={"STORAGE_OPTS": value})
    assert value not in str(info.value) and "Kubernetes secret" in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        "s3://mlops-artifacts/fraud/data",
        "http://minio:9000",
        "/var/lib/mlops/x.parquet",
        "12345",
        "0.001",
        "us-east-1",
        "fraud-detector-v2",
        "FraudDetectorChampionV2Model",
        "resnet50-imagenet-v1-5-fp16",
        "bert-base-uncased-finetuned-sst2",
        "nvidia-tesla-a100-80gb-pcie",
        "manual__2026-01-01T00:00:00+00:00",
        "ab" * 32,  # a sha256 digest
        "sklearn.ensemble.RandomForestClassifier",
        "INFO",
        "true",
        "",
    ],
)
def test_ordinary_values_pass(value: str) -> None:
    from airflow_mlops.operators.training_kubernetes import ModelFitPodOperator
    from airflow_mlops.redaction import secret_like_value

    assert secret_like_value(value) is None
    ModelFitPodOperator(task_id="t", job=JOB, image="i", env={"MODEL_SETTING": value})


def test_a_rendered_credential_never_reaches_the_pod_spec(fit: Any) -> None:
    from kubernetes.client import models as k8s

    fit.env_vars = [*(fit.env_vars or []), k8s.V1EnvVar(name="EXTRA", value="AKIAIOSFODNN7EXAMPLE")]
    with pytest.raises(TrainingRejectedError, match=r"EXTRA .*AWS access key id"):
        fit.build_pod_request_obj(dry_run=True)
