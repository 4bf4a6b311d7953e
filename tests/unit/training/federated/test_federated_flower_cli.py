"""The flwr command lines, the private Flower home, the run config file and the output parsing."""

from __future__ import annotations

import json
import os
import stat
import sys
import tomllib
from pathlib import Path

import pytest

from airflow_mlops.exceptions import TrainingError, TrainingRejectedError
from airflow_mlops.training.federated import flower_cli
from airflow_mlops.training.federated.common import APP_DIR

LINK = flower_cli.SuperLink(address="127.0.0.1:9093", insecure=True, cli="/opt/flwr")


def test_superlink_settings_are_checked() -> None:
    with pytest.raises(TrainingRejectedError, match="host:port"):
        flower_cli.SuperLink(address="superlink")
    with pytest.raises(TrainingRejectedError, match="choose one"):
        flower_cli.SuperLink(address="h:1", insecure=True, root_certificates="/ca.pem")


def test_the_flower_home_names_only_the_connection(tmp_path: Path) -> None:
    env = flower_cli.write_flower_home(
        tmp_path, flower_cli.SuperLink(address="link.example:9093", root_certificates="/ca.pem")
    )
    assert env == {"FLWR_HOME": str(tmp_path)}
    config = tomllib.loads((tmp_path / "config.toml").read_text())
    assert config["superlink"]["default"] == flower_cli.CONNECTION_NAME
    assert config["superlink"][flower_cli.CONNECTION_NAME] == {
        "address": "link.example:9093",
        "insecure": False,
        "root-certificates": "/ca.pem",
    }


def test_the_run_config_file_holds_every_key_the_app_declares(tmp_path: Path) -> None:
    job = {"uri": "/store/p/r/train/job.json", "sha256": "c" * 64, "size": 12}
    settings = {
        "rounds": 4,
        "strategy": "fedprox",
        "proximal_mu": 0.5,
        "min_clients": 3,
        "partitions": 3,
        "privacy": {"clipping_norm": 1.5, "noise_multiplier": 0.8},
    }
    values = flower_cli.run_config_values(
        job=job, result_key="k/federated_result.json", settings=settings, app_sha256="d" * 64, epsilon=3.25
    )
    path = flower_cli.write_run_config(tmp_path / "run.toml", values)
    parsed = tomllib.loads(path.read_text())
    assert parsed == values
    assert (parsed["proximal-mu"], parsed["dp-clipping-norm"], parsed["dp-epsilon"]) == (0.5, 1.5, 3.25)
    declared = tomllib.loads((APP_DIR / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    assert set(parsed) == set(declared)  # flwr run refuses keys the app does not declare
    with pytest.raises(TypeError):
        flower_cli.write_run_config(tmp_path / "bad.toml", {"x": [1]})


def test_commands() -> None:
    assert flower_cli.run_command(LINK, Path("/app"), Path("/r.toml")) == [
        "/opt/flwr",
        "run",
        "/app",
        "mlops",
        "--run-config",
        "/r.toml",
        "--format",
        "json",
    ]
    assert flower_cli.list_command(LINK, 7)[1:] == ["ls", "mlops", "--run-id", "7", "--format", "json"]
    assert flower_cli.stop_command(LINK, 7)[1:] == ["stop", "7", "mlops", "--format", "json"]


def test_parsing_the_cli_output() -> None:
    run = 'Loading project\n{"success": true, "run-id": "123", "fab-hash": "ab12"}'
    assert flower_cli.parse_run(run) == {"run_id": 123, "fab_hash": "ab12"}
    listing = json.dumps(
        {
            "success": True,
            "runs": [
                {
                    "run-id": "123",
                    "status": "finished:failed",
                    "status-details": "boom",
                    "fab-hash": "x",
                    "elapsed": 3.0,
                }
            ],
        }
    )
    state = flower_cli.parse_status(listing, 123)
    assert state["status"] == flower_cli.FAILED and state["details"] == "boom"
    assert flower_cli.is_finished(state["status"]) and not flower_cli.is_finished("running")
    with pytest.raises(TrainingError, match="does not know run 9"):
        flower_cli.parse_status(listing, 9)
    with pytest.raises(TrainingError, match="failed: nope"):
        flower_cli.parse_run('{"success": false, "error-message": "nope"}')
    with pytest.raises(TrainingError, match="no JSON"):
        flower_cli.parse_run("Traceback ...")


def fake_cli(tmp_path: Path, body: str, name: str = "flwr") -> str:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_call_runs_the_cli_with_the_private_home_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-flower")
    cli = fake_cli(
        tmp_path,
        "import json, os, sys\nprint(json.dumps({'argv': sys.argv[1:], 'env': sorted(os.environ),"
        " 'config': open(os.path.join(os.environ['FLWR_HOME'], 'config.toml')).read()}))",
    )
    link = flower_cli.SuperLink(address="127.0.0.1:9093", insecure=True, cli=cli)
    out = json.loads(flower_cli.call(link, flower_cli.list_command(link, 5)))
    assert out["argv"][:2] == ["ls", "mlops"]
    assert "AWS_SECRET_ACCESS_KEY" not in out["env"] and {"FLWR_HOME", "PYTHONPATH"} <= set(out["env"])
    assert '"127.0.0.1:9093"' in out["config"]
    failing = flower_cli.SuperLink(
        address="h:1", cli=fake_cli(tmp_path, "import sys\nprint('no superlink')\nsys.exit(1)", "bad")
    )
    with pytest.raises(TrainingError, match="status 1: no superlink"):
        flower_cli.call(failing, [failing.cli, "ls"])
    missing = flower_cli.SuperLink(address="h:1", cli=os.fspath(tmp_path / "absent"))
    with pytest.raises(TrainingError, match="not installed"):
        flower_cli.call(missing, [missing.cli, "ls"])
