"""The trainer: its command line (``python -m airflow_mlops.training --job ...``, the one every
backend runs) in a subprocess, and ``train()`` in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from airflow_mlops.artifacts import ArtifactRef, ArtifactStore
from airflow_mlops.exceptions import DataError, TrainingError
from airflow_mlops.training import job as job_module
from airflow_mlops.training import trainer
from airflow_mlops.training.flavors import load_predictor
from airflow_mlops.training.job import TrainingJob, write_job
from airflow_mlops.training.trainer import train

REPO = Path(__file__).resolve().parents[3]
CLI_CONFIG = {
    "target": "label",
    "features": ["amount", "age", "hour", "merchant"],
    "positive_label": 1,
    "params": {"epochs": 8, "lr": 0.01, "batch_size": 128, "hidden_units": [16, 8], "dropout": 0.1},
    "seed": 11,
    "device": "auto",
}
WEIGHTS_KEY = "p/run/train/weights"


def make_job(root: Path, df: pd.DataFrame, config: dict, *, table: str = "train.parquet") -> ArtifactRef:
    """A job (as ``training.prepare`` writes it) in a local artifact store at ``root / "store"``;
    the trained model goes to ``weights_dir(root)``."""
    root.mkdir(parents=True, exist_ok=True)
    store = ArtifactStore(str(root / "store"))
    if table.endswith(".csv"):
        df.to_csv(root / table, index=False)
    else:
        df.to_parquet(root / table)
    train_ref = store.put_file(root / table, f"p/run/train/{table}", producer="prepare")
    job = TrainingJob(
        store_root=store.uri_for().rstrip("/"),
        train=train_ref,
        model=config.get("model", "mlp"),
        config={k: v for k, v in config.items() if k != "model"},
        output_key=WEIGHTS_KEY,
    )
    return write_job(store, "p/run/train/job.json", job, producer="prepare")


def weights_dir(root: Path) -> Path:
    return root / "store" / WEIGHTS_KEY


def run_cli(job_ref: ArtifactRef, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m airflow_mlops.training --job <ref>`` in a subprocess, as the backends run it."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    cmd = [sys.executable, "-m", "airflow_mlops.training", "--job", json.dumps(job_ref.to_dict()), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)


@dataclass
class CliRun:
    root: Path
    job_ref: ArtifactRef
    out: Path
    work: Path
    holdout: pd.DataFrame
    proc: subprocess.CompletedProcess[str]
    seconds: float


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory, make_frame) -> CliRun:
    root = tmp_path_factory.mktemp("cli")
    job_ref = make_job(root, make_frame(4000, 1), CLI_CONFIG)
    work = root / "work"
    started = time.monotonic()
    proc = run_cli(job_ref, "--work-dir", str(work))
    seconds = time.monotonic() - started
    print(f"trainer CLI wall time: {seconds:.2f}s")
    return CliRun(root, job_ref, weights_dir(root), work, make_frame(3000, 2), proc, seconds)


# --- the command line -----------------------------------------------------------------------------


def test_cli_writes_the_three_files(cli_run: CliRun) -> None:
    assert cli_run.proc.returncode == 0, cli_run.proc.stderr
    assert sorted(p.name for p in cli_run.out.iterdir()) == [
        "metrics.json",
        "model.safetensors",
        "model_config.json",
    ]
    # The trainer's model directory is published whole: no temp dirs are left beside it.
    assert sorted(p.name for p in (cli_run.work / "weights").iterdir()) == sorted(
        p.name for p in cli_run.out.iterdir()
    )
    assert not [p.name for p in cli_run.work.iterdir() if p.name.startswith(".")]


def test_cli_logs_device_and_every_epoch(cli_run: CliRun) -> None:
    stdout = cli_run.proc.stdout
    assert "device: cpu" in stdout
    for epoch in range(1, 9):
        assert f"epoch {epoch}/8 train_loss=" in stdout


def test_cli_metrics_json(cli_run: CliRun) -> None:
    metrics = json.loads((cli_run.out / "metrics.json").read_text())
    history = metrics["history"]
    assert [h["epoch"] for h in history] == list(range(1, 9))
    val_losses = [h["val_loss"] for h in history]
    assert metrics["best_epoch"] == 1 + int(np.argmin(val_losses))
    assert metrics["best_val_loss"] == min(val_losses)
    assert metrics["rows"] == 4000
    assert metrics["train_rows"] + metrics["validation_rows"] == 4000
    assert metrics["validation_rows"] == pytest.approx(400, abs=2)
    assert metrics["device"] == "cpu"
    assert 0 < metrics["duration_seconds"] <= cli_run.seconds  # no speed goal here (house rule)
    assert metrics["train_roc_auc"] > 0.8
    assert metrics["val_roc_auc"] > 0.75


def test_cli_model_config(cli_run: CliRun) -> None:
    config = json.loads((cli_run.out / "model_config.json").read_text())
    assert config["format_version"] == 2
    assert (config["flavor"], config["format"], config["task"]) == ("torch", "safetensors", "binary")
    assert config["framework"] == {"name": "torch", "version": torch.__version__}
    assert config["class_order"] == ["0", "1"]
    assert config["model_type"] == "mlp"
    assert config["architecture"] == {"input_dim": 7, "hidden_units": [16, 8], "dropout": 0.1, "outputs": 1}
    assert config["target"] == "label"
    assert config["positive_label"] == 1
    assert config["features"] == CLI_CONFIG["features"]
    assert config["preprocessing"]["categorical"] == {"merchant": ["fuel", "grocery", "online", "travel"]}
    assert set(config["preprocessing"]["numeric"]) == {"amount", "age", "hour"}
    assert config["torch_version"] == torch.__version__
    assert config["seed"] == 11


def test_model_beats_chance_on_holdout(cli_run: CliRun) -> None:
    predictor = load_predictor(cli_run.out)
    scores = predictor.predict_proba(cli_run.holdout)
    auc = roc_auc_score(cli_run.holdout["label"], scores)
    print(f"holdout roc_auc: {auc:.4f}")
    assert auc > 0.8


def test_same_seed_gives_identical_weights(cli_run: CliRun, make_frame) -> None:
    again = cli_run.root / "again"
    proc = run_cli(make_job(again, make_frame(4000, 1), CLI_CONFIG))
    assert proc.returncode == 0, proc.stderr
    assert (weights_dir(again) / "model.safetensors").read_bytes() == (
        cli_run.out / "model.safetensors"
    ).read_bytes()
    assert (weights_dir(again) / "model_config.json").read_text() == (
        cli_run.out / "model_config.json"
    ).read_text()


def test_cli_user_errors_exit_2_with_one_line_and_leave_nothing(tmp_path: Path, make_frame) -> None:
    job_ref = make_job(tmp_path, make_frame(200, 3).drop(columns=["label"]), CLI_CONFIG)

    proc = run_cli(job_ref, "--result", str(tmp_path / "result.json"))

    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "target column 'label' not found" in lines[0]
    assert "amount" in lines[0]  # names the columns that are there
    assert not weights_dir(tmp_path).exists()
    assert not (tmp_path / "result.json").exists()


def test_cli_single_class_exits_2(tmp_path: Path, make_frame) -> None:
    job_ref = make_job(tmp_path, make_frame(200, 3).assign(label=0), CLI_CONFIG)

    proc = run_cli(job_ref)

    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "holds a single value (0)" in proc.stderr
    assert not weights_dir(tmp_path).exists()


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("empty", "the training data is empty (0 rows)"),
        ("text_in_numeric", "numeric column 'age' holds 1 non-numeric value(s) such as 'forty'"),
        ("unknown_key", "unknown trainer config key(s): epochs"),
        ("bad_param", "params.epochs must be a positive integer up to 10000, got 0"),
    ],
)
def test_job_user_errors(
    tmp_path: Path, make_frame, capsys: pytest.CaptureFixture[str], setup: str, expected: str
) -> None:
    df = make_frame(200, 4)
    config = dict(CLI_CONFIG)
    if setup == "empty":
        df = df.iloc[:0]
    if setup == "text_in_numeric":
        df = df.astype({"age": str})  # e.g. a CSV export with a typo in it
        df.loc[5, "age"] = "forty"
        config["categorical"] = ["merchant"]
    if setup == "unknown_key":
        config["epochs"] = 3
    if setup == "bad_param":
        config["params"] = {**config["params"], "epochs": 0}
    job_ref = make_job(tmp_path, df, config)

    code = job_module.main(["--job", json.dumps(job_ref.to_dict()), "--work-dir", str(tmp_path / "work")])

    err = capsys.readouterr().err
    assert code == 2
    assert expected in err
    assert err.count("\n") == 1
    assert not weights_dir(tmp_path).exists()
    assert not (tmp_path / "work" / "weights").exists()


def test_cli_reads_csv(tmp_path: Path, make_frame, base_config: dict, capsys) -> None:
    base_config["positive_label"] = "1"  # CSV labels are ints; the string form matches too
    base_config["params"]["epochs"] = 2
    job_ref = make_job(tmp_path, make_frame(300, 5), base_config, table="train.csv")

    code = job_module.main(["--job", json.dumps(job_ref.to_dict())])

    assert code == 0, capsys.readouterr().err
    assert json.loads((weights_dir(tmp_path) / "metrics.json").read_text())["positive_rows"] > 0


def test_trainer_imports_no_airflow_or_mlflow() -> None:
    code = (
        "import sys, airflow_mlops.training.trainer\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'airflow', 'mlflow', 'pydantic', 'yaml', 'sklearn'})\n"
        "print(','.join(bad))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert proc.stdout.strip() == ""


# --- train() in-process ---------------------------------------------------------------------------


def test_train_returns_the_metrics_it_writes(tmp_path: Path, make_frame, base_config: dict) -> None:
    metrics = train(make_frame(600, 6), base_config, tmp_path / "m")
    on_disk = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert metrics["epochs_run"] == 6
    assert not metrics["stopped_early"]


def test_infers_categoricals_and_accepts_string_labels(tmp_path: Path, make_frame, base_config: dict) -> None:
    df = make_frame(600, 7)
    df["label"] = np.where(df["label"] == 1, "fraud", "ok")
    base_config["positive_label"] = "fraud"
    train(df, base_config, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "model_config.json").read_text())
    assert list(config["preprocessing"]["categorical"]) == ["merchant"]
    assert config["positive_label"] == "fraud"


def test_explicit_categorical_treats_numbers_as_categories(
    tmp_path: Path, make_frame, base_config: dict
) -> None:
    df = make_frame(600, 8)
    df["hour"] = df["hour"].fillna(0).astype(int) % 4
    base_config["categorical"] = ["merchant", "hour"]
    train(df, base_config, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "model_config.json").read_text())
    assert config["preprocessing"]["categorical"]["hour"] == ["0", "1", "2", "3"]
    assert config["architecture"]["input_dim"] == 2 + 4 + 4


def test_features_default_to_every_column_but_the_target(
    tmp_path: Path, make_frame, base_config: dict
) -> None:
    base_config["features"] = None
    train(make_frame(300, 9), base_config, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "model_config.json").read_text())
    assert config["features"] == ["amount", "age", "hour", "merchant"]


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda df: df.iloc[:0], DataError, "empty (0 rows)"),
        (lambda df: df.drop(columns="label"), DataError, "target column 'label' not found"),
        (lambda df: df.assign(label=1), DataError, "single value (1)"),
        (lambda df: df.assign(label=df["label"] + 5), DataError, "positive_label 1 does not occur"),
        (
            lambda df: df.assign(label=df["label"].astype(float).where(df.index > 0)),
            DataError,
            "1 missing value(s)",
        ),
        (lambda df: df.drop(columns="age"), DataError, "lacks feature column(s) 'age'"),
        (lambda df: df.assign(amount=np.inf), DataError, "infinite value(s)"),
    ],
)
def test_train_data_errors(tmp_path: Path, make_frame, base_config: dict, mutate, error, message) -> None:
    with pytest.raises(error, match=None) as info:
        train(mutate(make_frame(200, 10)), base_config, tmp_path / "m")
    assert message in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"params": {"epochs": 0}}, "params.epochs must be a positive integer"),
        ({"params": {"hidden_units": []}}, "params.hidden_units must be a non-empty list"),
        ({"params": {"class_weight": "auto"}}, "params.class_weight must be balanced or none"),
        ({"params": {"learning_rate": 0.1}}, "unknown trainer params: learning_rate"),
        ({"device": "tpu"}, "device must be one of auto, cpu, cuda"),
        ({"validation_fraction": 1.0}, "validation_fraction must be a number in [0, 0.9)"),
        ({"seed": "42"}, "seed must be an integer"),
        ({"target": ""}, "target must be the name of the label column"),
    ],
)
def test_config_errors(tmp_path: Path, make_frame, base_config: dict, change: dict, message: str) -> None:
    config = {**base_config, **change}
    with pytest.raises(TrainingError) as info:
        train(make_frame(100, 11), config, tmp_path / "m")
    assert message in str(info.value)


def test_target_in_features_is_rejected(tmp_path: Path, make_frame, base_config: dict) -> None:
    base_config["features"] = [*base_config["features"], "label"]
    with pytest.raises(DataError, match="must not be listed in features"):
        train(make_frame(100, 12), base_config, tmp_path / "m")


def test_no_validation_keeps_the_last_epoch(tmp_path: Path, make_frame, base_config: dict) -> None:
    base_config["validation_fraction"] = 0
    base_config["threshold"] = 0.4  # nothing to choose a threshold on: it must be fixed
    metrics = train(make_frame(300, 14), base_config, tmp_path / "m")
    assert metrics["best_epoch"] == 6
    assert metrics["validation_rows"] == 0
    assert metrics["val_roc_auc"] is None
    assert all(h["val_loss"] is None for h in metrics["history"])
    assert (metrics["threshold"], metrics["val_precision"], metrics["val_recall"]) == (0.4, None, None)
    assert load_predictor(tmp_path / "m").config["threshold"] == 0.4


def test_failed_write_leaves_no_partial_output(
    tmp_path: Path, make_frame, base_config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(directory, model, **config):
        (Path(directory) / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(trainer, "save_model_dir", explode)
    with pytest.raises(OSError, match="disk full"):
        train(make_frame(200, 17), base_config, tmp_path / "runs" / "model")
    assert list((tmp_path / "runs").iterdir()) == []


def test_failed_rerun_keeps_the_previous_model(
    tmp_path: Path, make_frame, base_config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "model"
    train(make_frame(200, 18), base_config, out)
    before = (out / "model.safetensors").read_bytes()
    monkeypatch.setattr(
        trainer, "save_model_dir", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full"))
    )
    with pytest.raises(OSError):
        train(make_frame(200, 19), base_config, out)
    assert (out / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_rerun_replaces_the_previous_output(tmp_path: Path, make_frame, base_config: dict) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier try")
    train(make_frame(200, 20), base_config, out)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "model.safetensors", "model_config.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_train_leaves_the_callers_torch_state_alone(tmp_path: Path, make_frame, base_config: dict) -> None:
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(make_frame(200, 21), base_config, tmp_path / "m")
    assert torch.equal(torch.rand(3), expected)
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_different_seeds_give_different_weights(tmp_path: Path, make_frame, base_config: dict) -> None:
    df = make_frame(200, 22)
    train(df, base_config, tmp_path / "a")
    train(df, {**base_config, "seed": 8}, tmp_path / "b")
    assert (tmp_path / "a" / "model.safetensors").read_bytes() != (
        tmp_path / "b" / "model.safetensors"
    ).read_bytes()


def test_cli_usage_error_exits_2_and_help_exits_0(tmp_path: Path) -> None:
    """The entrypoint leaves through os._exit: argparse's own exits must keep their status."""
    base = [sys.executable, "-m", "airflow_mlops.training"]
    usage = subprocess.run([*base, "--result", "x.json"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "required" in usage.stderr
    helped = subprocess.run([*base, "--help"], capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "--job" in helped.stdout
