"""The training job (``python -m airflow_mlops.training``): S3 and local stores, integrity,
a user entrypoint, the CNN, bf16 and DP-SGD."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from airflow_mlops.artifacts import ArtifactRef, ArtifactStore
from airflow_mlops.exceptions import PrivacyBudgetError, TrainingError, TrainingRejectedError
from airflow_mlops.operators.training import parse_fit_result
from airflow_mlops.training import job as job_module
from airflow_mlops.training.flavors import load_predictor
from airflow_mlops.training.job import RESULT_MARKER, TrainingJob, main, run_job, write_job
from airflow_mlops.training.ranking import roc_auc
from airflow_mlops.training.trainer import train

REPO = Path(__file__).resolve().parents[3]
CONFIG = {
    "target": "label",
    "features": ["amount", "age", "hour", "merchant"],
    "positive_label": 1,
    "params": {"epochs": 4, "lr": 0.01, "batch_size": 128, "hidden_units": [16, 8], "dropout": 0.1},
    "seed": 3,
    "device": "cpu",
}
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def make_job(
    store: ArtifactStore, tmp: Path, df: pd.DataFrame, *, model: str = "mlp", **extra
) -> ArtifactRef:
    df.to_parquet(tmp / "train.parquet")
    train_ref = store.put_file(tmp / "train.parquet", "p/run/train/train.parquet", producer="prepare")
    job = TrainingJob(
        store_root=store.uri_for().rstrip("/"),
        train=train_ref,
        model=model,
        config={**CONFIG, **extra.pop("config", {})},
        output_key="p/run/train/weights",
        **extra,
    )
    return write_job(store, "p/run/train/job.json", job, producer="prepare")


def run_trainer(
    job_ref: ArtifactRef, result: Path, env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "airflow_mlops.training", "--job", json.dumps(job_ref.to_dict())]
    cmd += ["--result", str(result), *args]
    base = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    return subprocess.run(
        cmd,
        env={**base, "PYTHONPATH": str(REPO), **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_trainer_reads_and_writes_a_real_s3_endpoint(tmp_path: Path, make_frame, s3_endpoint: str) -> None:
    import boto3

    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, **{k.lower(): v for k, v in S3_ENV.items() if "KEY" in k}
    )
    client.create_bucket(Bucket="mlops")
    store = ArtifactStore("s3://mlops/artifacts", s3_client=client)
    job_ref = make_job(store, tmp_path, make_frame(1500, 21))

    # The trainer process gets the endpoint and credentials through its environment only.
    proc = run_trainer(job_ref, tmp_path / "out" / "result.json", {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint})

    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "training data verified: sha256 " in proc.stdout
    result = parse_fit_result(json.loads((tmp_path / "out" / "result.json").read_text()))
    weights = ArtifactRef.from_dict(result["weights"])
    assert weights.uri == "s3://mlops/artifacts/p/run/train/weights"
    assert weights.is_directory
    listed = client.list_objects_v2(Bucket="mlops", Prefix="artifacts/p/run/train/weights/")
    assert sorted(o["Key"].rsplit("/", 1)[1] for o in listed["Contents"]) == [
        "metrics.json",
        "model.safetensors",
        "model_config.json",
    ]
    local = store.fetch(weights, tmp_path / "check")  # verifies the manifest sha256
    predictor = load_predictor(local)
    holdout = make_frame(800, 22)
    assert roc_auc(holdout["label"].to_numpy(), predictor.predict_proba(holdout)) > 0.75
    assert result["metrics"]["epochs_run"] == 4
    assert "epoch 4/4 train_loss=" in proc.stdout


def test_credentials_on_stdin_reach_s3_and_nothing_else_is_accepted_there(
    tmp_path: Path, make_frame, s3_endpoint: str
) -> None:
    """The docker backend's way: the endpoint in the environment, the keys on stdin only."""
    import boto3

    keys = {k: v for k, v in S3_ENV.items() if "KEY" in k}
    client = boto3.client("s3", endpoint_url=s3_endpoint, **{k.lower(): v for k, v in keys.items()})
    client.create_bucket(Bucket="stdin")
    job_ref = make_job(ArtifactStore("s3://stdin/a", s3_client=client), tmp_path, make_frame(600, 3))
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }

    proc = run_trainer(job_ref, tmp_path / "r.json", env, "--credentials-stdin", stdin=json.dumps(keys))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "r.json").read_text())["weights"]["uri"].startswith("s3://stdin/a/")

    secret = keys["AWS_SECRET_ACCESS_KEY"]
    for bad, says in [
        ("", "got none"),
        ("not json " + secret, "not a JSON object"),
        (json.dumps({**keys, "PYTHONPATH": "/evil"}), "unexpected keys ['PYTHONPATH']"),
        (json.dumps({"AWS_ACCESS_KEY_ID": 7}), "must be a string"),
    ]:
        proc = run_trainer(job_ref, tmp_path / "x.json", env, "--credentials-stdin", stdin=bad)
        assert proc.returncode == 2, (bad, proc.stderr[-500:])  # refused: no retry can help
        assert says in proc.stderr and secret not in proc.stderr + proc.stdout


def test_trainer_refuses_a_training_table_changed_after_the_job(
    tmp_path: Path, make_frame, s3_endpoint: str
) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="t", aws_secret_access_key="t")
    client.create_bucket(Bucket="tamper")
    store = ArtifactStore("s3://tamper/a", s3_client=client)
    job_ref = make_job(store, tmp_path, make_frame(300, 23))
    poisoned = make_frame(300, 24).assign(label=1 - make_frame(300, 24)["label"])
    poisoned.to_parquet(tmp_path / "poisoned.parquet")
    client.upload_file(str(tmp_path / "poisoned.parquet"), "tamper", "a/p/run/train/train.parquet")

    proc = run_trainer(job_ref, tmp_path / "result.json", {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint})

    assert proc.returncode == 2, proc.stderr
    assert "ArtifactIntegrityError" in proc.stderr and "Refusing to use it" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "result.json").exists()
    assert "Contents" not in client.list_objects_v2(Bucket="tamper", Prefix="a/p/run/train/weights/")


def test_a_changed_job_file_is_refused(tmp_path: Path, make_frame) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    job_ref = make_job(store, tmp_path, make_frame(200, 25))
    path = Path(job_ref.uri)
    path.write_text(path.read_text().replace('"epochs": 4', '"epochs": 400'))
    with pytest.raises(Exception, match="changed after task prepare wrote it"):
        run_job(job_ref, tmp_path / "work")


def test_local_store_prints_the_result_marker_last(
    tmp_path: Path, make_frame, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    job_ref = make_job(store, tmp_path, make_frame(400, 26))

    code = main(["--job", json.dumps(job_ref.to_dict()), "--print-result", "--work-dir", str(tmp_path / "w")])

    out = capsys.readouterr().out
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert last.startswith(RESULT_MARKER)
    result = parse_fit_result(out)  # what the Docker backend does with the container's log
    assert result["weights"]["uri"] == str(tmp_path / "store" / "p/run/train/weights")
    assert load_predictor(result["weights"]["uri"]).features == CONFIG["features"]


USER_FIT = """
import json

import torch
from airflow_mlops.training.model import MLP, Preprocessor


def _fit(train, ctx):
    torch.manual_seed(ctx.seed)
    val = train.sample(frac=0.25, random_state=ctx.seed)
    train = train.drop(val.index)
    prep = Preprocessor.fit(train, ctx.features)
    x = torch.from_numpy(prep.transform(train))
    y = torch.tensor((train[ctx.target] == ctx.positive_label).to_numpy(), dtype=torch.float32)
    model = MLP(prep.output_dim, [ctx.options["width"]])
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(ctx.options["steps"]):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        val_scores = torch.sigmoid(model(torch.from_numpy(prep.transform(val)))).numpy()
    return model, prep, loss, (val[ctx.target] == ctx.positive_label).to_numpy(), val_scores


def fit(train, ctx):
    model, prep, loss, y_val, val_scores = _fit(train, ctx)
    ctx.save(model, prep, training={"steps": ctx.options["steps"]})
    # Chosen after saving: the trainer stores it all the same.
    threshold = ctx.choose_threshold(y_val, val_scores)
    (ctx.output_dir.parent / "validation.json").write_text(
        json.dumps({"y": y_val.astype(int).tolist(), "scores": val_scores.tolist(), "threshold": threshold})
    )
    return {"final_loss": float(loss.detach()), "who": "user"}


def no_threshold(train, ctx):
    model, prep, loss, _, _ = _fit(train, ctx)
    ctx.save(model, prep)
    return {"final_loss": float(loss.detach())}


def forgetful(train, ctx):
    return {"final_loss": 0.1}
"""


def test_a_user_fit_entrypoint_keeps_the_model_format(
    tmp_path: Path, make_frame, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "userpkg").mkdir()
    (tmp_path / "userpkg" / "__init__.py").write_text("")
    (tmp_path / "userpkg" / "training.py").write_text(USER_FIT)
    monkeypatch.syspath_prepend(str(tmp_path))
    store = ArtifactStore(str(tmp_path / "store"))
    job_ref = make_job(
        store, tmp_path, make_frame(600, 27), model="userpkg.training:fit", options={"width": 8, "steps": 30}
    )

    result = run_job(job_ref, tmp_path / "work")

    assert result["metrics"]["who"] == "user"
    assert 0 < result["metrics"]["final_loss"] < 0.69  # it learnt something
    model_dir = Path(result["weights"]["uri"])
    config = json.loads((model_dir / "model_config.json").read_text())
    assert config["architecture"]["hidden_units"] == [8]
    assert config["training"] == {"steps": 30}
    assert json.loads((model_dir / "metrics.json").read_text())["who"] == "user"
    # The threshold the fit chose (best F1 by default, on its own validation rows) is stored.
    validation = json.loads((tmp_path / "work" / "validation.json").read_text())
    assert config["threshold"] == validation["threshold"] == result["metrics"]["threshold"]
    assert config["threshold_choice"]["rule"] == "best_f1"
    y, scores = np.array(validation["y"]), np.array(validation["scores"])
    best_f1 = max(f1_score(y, scores >= t) for t in np.unique(scores))
    assert f1_score(y, scores >= config["threshold"]) == pytest.approx(best_f1)

    forgetful = make_job(store, tmp_path, make_frame(200, 28), model="userpkg.training:forgetful")
    with pytest.raises(TrainingRejectedError, match="does not load"):
        run_job(forgetful, tmp_path / "work2")
    missing = make_job(store, tmp_path, make_frame(200, 28), model="userpkg.nothere:fit")
    with pytest.raises(TrainingRejectedError, match=r"cannot import 'userpkg\.nothere'"):
        run_job(missing, tmp_path / "work3")


def test_a_user_fit_must_choose_the_threshold_unless_it_is_fixed(
    tmp_path: Path, make_frame, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "userpkg2").mkdir()
    (tmp_path / "userpkg2" / "__init__.py").write_text("")
    (tmp_path / "userpkg2" / "training.py").write_text(USER_FIT)
    monkeypatch.syspath_prepend(str(tmp_path))
    store = ArtifactStore(str(tmp_path / "store"))
    options = {"width": 4, "steps": 5}

    rule = {"rule": "min_precision", "value": 0.7}
    chosen_nothing = make_job(
        store,
        tmp_path,
        make_frame(300, 29),
        model="userpkg2.training:no_threshold",
        options=options,
        config={"threshold": rule},
    )
    with pytest.raises(
        TrainingRejectedError, match=r"chose no operating threshold.*min_precision.*ctx\.choose_threshold"
    ):
        run_job(chosen_nothing, tmp_path / "w1")

    fixed = make_job(
        store,
        tmp_path,
        make_frame(300, 29),
        model="userpkg2.training:no_threshold",
        options=options,
        config={"threshold": {"rule": "fixed", "value": 0.3}},
    )
    result = run_job(fixed, tmp_path / "w2")
    config = load_predictor(result["weights"]["uri"]).config
    assert config["threshold"] == 0.3 == result["metrics"]["threshold"]
    assert config["threshold_choice"] == {"value": 0.3, "rule": "fixed", "target": 0.3, "validation": None}

    bad_rule = make_job(
        store,
        tmp_path,
        make_frame(300, 29),
        model="userpkg2.training:fit",
        options=options,
        config={"threshold": {"rule": "top_k"}},
    )
    with pytest.raises(TrainingRejectedError, match="unknown rule 'top_k'"):
        run_job(bad_rule, tmp_path / "w3")


def image_frame(n: int, seed: int) -> pd.DataFrame:
    """8x8 one-channel images: positives carry a bright 3x3 blob in the upper-left quarter."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0.0, 1.0, (n, 1, 8, 8)).astype(np.float32)
    label = rng.random(n) < 0.3
    rows, cols = rng.integers(0, 2, n), rng.integers(0, 2, n)
    for i in np.flatnonzero(label):
        images[i, 0, rows[i] : rows[i] + 3, cols[i] : cols[i] + 3] += 2.5
    df = pd.DataFrame(images.reshape(n, -1), columns=[f"px{i}" for i in range(64)])
    df["label"] = label.astype(int)
    return df


def test_the_cnn_learns_images_and_loads_back(tmp_path: Path) -> None:
    config = {
        **CONFIG,
        "features": [f"px{i}" for i in range(64)],
        "model": "cnn",
        "params": {
            "epochs": 6,
            "lr": 0.005,
            "batch_size": 64,
            "hidden_units": [16],
            "dropout": 0.0,
            "image_shape": [1, 8, 8],
            "conv_channels": [8, 16],
        },
    }
    metrics = train(image_frame(1200, 31), config, tmp_path / "m")
    predictor = load_predictor(tmp_path / "m")
    assert predictor.config["model_type"] == "cnn"
    assert predictor.config["architecture"]["image_shape"] == [1, 8, 8]
    holdout = image_frame(600, 32)
    auc = roc_auc(holdout["label"].to_numpy(), predictor.predict_proba(holdout))
    print(f"cnn holdout roc_auc {auc:.3f}, val {metrics['val_roc_auc']:.3f}")
    assert auc > 0.9

    wrong = {**config, "params": {**config["params"], "image_shape": [1, 4, 4]}}
    with pytest.raises(Exception, match="holds 16 values per image"):
        train(image_frame(100, 33), wrong, tmp_path / "w")


def test_bf16_autocast_trains_and_says_so(tmp_path: Path, make_frame) -> None:
    metrics = train(make_frame(600, 34), {**CONFIG, "precision": "bf16"}, tmp_path / "m")
    fp32 = train(make_frame(600, 34), {**CONFIG, "precision": "fp32"}, tmp_path / "f")
    assert (metrics["precision"], fp32["precision"]) == ("bf16", "fp32")
    assert metrics["train_roc_auc"] > 0.75
    assert metrics["history"] != fp32["history"]  # bf16 really ran: the losses differ a little
    assert metrics["samples_per_second"] > 0


def test_dp_sgd_stays_within_its_epsilon_budget(tmp_path: Path, make_frame) -> None:
    pytest.importorskip("opacus")
    config = {**CONFIG, "params": {**CONFIG["params"], "epochs": 3, "batch_size": 256, "dropout": 0.0}}
    metrics = train(
        make_frame(3000, 35), {**config, "privacy": {"epsilon": 2.0, "delta": 1e-5}}, tmp_path / "m"
    )
    assert 0 < metrics["dp_epsilon"] <= 2.0
    assert metrics["dp_epsilon"] > 1.0  # the noise was chosen for this budget, not far above it
    assert metrics["dp_noise_multiplier"] > 0
    assert [h["epsilon"] for h in metrics["history"]] == sorted(h["epsilon"] for h in metrics["history"])
    saved = json.loads((tmp_path / "m" / "model_config.json").read_text())["training"]["privacy"]
    assert saved["dp_epsilon"] == metrics["dp_epsilon"]
    assert metrics["train_roc_auc"] > 0.6  # noisy, but a model
    assert load_predictor(tmp_path / "m").features == CONFIG["features"]


def test_dp_sgd_refuses_a_run_above_its_budget_before_training(tmp_path: Path, make_frame) -> None:
    pytest.importorskip("opacus")
    privacy = {"epsilon": 0.5, "delta": 1e-5, "noise_multiplier": 0.4}
    config = {**CONFIG, "privacy": privacy, "params": {**CONFIG["params"], "epochs": 5}}
    with pytest.raises(PrivacyBudgetError) as info:
        train(make_frame(2000, 36), config, tmp_path / "m")
    message = str(info.value)
    assert "above the budget training.privacy.epsilon = 0.5" in message
    assert "raise noise_multiplier" in message
    assert not (tmp_path / "m").exists()
    with pytest.raises(TrainingError, match="is not below 1 / training rows"):
        train(make_frame(200, 37), {**CONFIG, "privacy": {"epsilon": 1.0, "delta": 0.01}}, tmp_path / "d")


def test_job_file_errors_are_final(tmp_path: Path) -> None:
    with pytest.raises(TrainingRejectedError, match="format_version 7"):
        TrainingJob.from_dict({"format_version": 7})
    with pytest.raises(TrainingRejectedError, match="must be a relative key"):
        TrainingJob.from_dict(
            {
                "format_version": 1,
                "store_root": "/x",
                "inputs": {"train": {"uri": "/x/t", "sha256": "0", "size": 1, "media_type": "x"}},
                "model": "mlp",
                "config": {},
                "output_key": "../../etc",
            }
        )
    assert job_module.main(["--job", "{not json"]) == 2
