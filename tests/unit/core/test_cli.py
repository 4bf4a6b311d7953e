"""The command line, as CI and pre-commit run it: a real subprocess, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "dags" / "specs" / "fraud_detector.yaml"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_mlops.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_validate_ok() -> None:
    out = cli("spec", "validate", str(EXAMPLE))
    assert out.returncode == 0, out.stderr
    assert "ok (pipeline fraud_detector)" in out.stdout


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (
            lambda t: t.replace("pipeline: fraud_detector", "pipeline: fraud_detector\npipeline: again"),
            ":4:1: pipeline: duplicate key",
        ),
        (lambda t: t.replace("  target: is_fraud", "  target: [is_fraud"), "invalid YAML"),
        (lambda t: t.replace("epochs: 15", "epochs: many"), ":42:12: training.params.epochs"),
        (lambda t: t.replace("  target: is_fraud\n", ""), "data.target: required key is missing"),
        (lambda t: t.replace('"@daily"', '"0 3 * * 8"'), "day of week: '8' is not valid here (outside 0-7)"),
        (
            lambda t: (
                t + "steps: [{id: x, operator: airflow.providers.standard.operators.bash.BashOperater}]\n"
            ),
            "did you mean 'BashOperator'",
        ),
        (
            lambda t: (
                t
                + "steps: [{id: x, operator: airflow.providers.standard.operators.empty.EmptyOperator, after: [x]}]\n"
            ),
            "cycle: x -> x",
        ),
        (
            lambda t: t.replace("alias: champion", "alias: champion\n  strategy: direct"),
            "unknown key 'strategy'",
        ),
        (lambda t: t.replace("on_failure: fail", "on_failure: fial"), "did you mean 'fail'"),
    ],
)
def test_validate_reports_each_error_kind_with_location(tmp_path: Path, edit, needle: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(edit(EXAMPLE.read_text()))
    out = cli("spec", "validate", str(EXAMPLE), str(bad))
    assert out.returncode == 1
    assert str(bad) in out.stderr and needle in out.stderr, out.stderr
    assert "ok (pipeline fraud_detector)" in out.stdout  # the good file is still checked


def test_validate_path_outside_allowed_roots(tmp_path: Path) -> None:
    out = cli("spec", "validate", "--allowed-root", str(tmp_path), str(EXAMPLE))
    assert out.returncode == 1
    assert "data.source" in out.stderr and "outside the allowed roots" in out.stderr
    assert cli("spec", "validate", "--allowed-root", str(ROOT / "dags"), str(EXAMPLE)).returncode == 0


def test_validate_a_folder_and_an_empty_folder(tmp_path: Path) -> None:
    assert cli("spec", "validate", str(EXAMPLE.parent)).returncode == 0
    empty = cli("spec", "validate", str(tmp_path))
    assert empty.returncode == 1 and "no spec files" in empty.stderr


def test_render_prints_the_task_graph() -> None:
    out = cli("spec", "render", str(EXAMPLE))
    assert out.returncode == 0, out.stderr
    assert "DAG fraud_detector__train" in out.stdout
    line = next(line for line in out.stdout.splitlines() if line.strip().startswith("gates.scan"))
    assert "ModelScanOperator" in line and "gates.evaluate" in line
    train, monitor = out.stdout.split("DAG fraud_detector__monitor")
    assert (
        "schedule: `@daily` (one run per data interval, UTC) or asset event `drift` or asset event "
        "`new_data`; catchup: false" in train
    )
    assert "schedule: `@daily` (one run per data interval, UTC); catchup: false" in monitor
    # Tasks are listed in run order: every task after all of its upstream tasks.
    listed = [line.split()[0] for line in train.splitlines() if line.startswith("    ")]
    assert listed[0] == "data.validate" and listed[-1] == "release.promote"
    assert listed.index("gates.scan") < listed.index("gates.evaluate") < listed.index("release.sign")
    assert [line.split()[0] for line in monitor.splitlines() if line.startswith("    ")] == [
        "monitor.score",
        "monitor.detect",
        "monitor.emit_drift",
    ]


def test_schema_is_json_with_the_spec_keys() -> None:
    out = cli("spec", "schema")
    schema = json.loads(out.stdout)
    assert {"apiVersion", "pipeline", "data", "registry", "steps", "stages"} <= set(schema["properties"])


def test_specs_only_skips_other_yaml_but_still_checks_specs(tmp_path: Path) -> None:
    """What the pre-commit hook runs: every YAML file is passed, only specs are checked."""
    other = tmp_path / "compose.yaml"
    other.write_text("services: {a: {image: x}}\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text(EXAMPLE.read_text().replace("target:", "targt:"))

    plain = cli("spec", "validate", str(other))
    assert plain.returncode == 1  # without the flag a given file must be a spec
    skipped = cli("spec", "validate", "--specs-only", str(other), str(EXAMPLE))
    assert skipped.returncode == 0, skipped.stderr
    assert "compose.yaml: skipped" in skipped.stderr and "ok (pipeline fraud_detector)" in skipped.stdout
    failed = cli("spec", "validate", "--specs-only", str(other), str(broken))
    assert failed.returncode == 1 and "did you mean 'target'" in failed.stderr


def test_pre_commit_hook_runs_the_cli_with_specs_only() -> None:
    import tomllib

    import yaml

    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    program, *args = hook["entry"].split()
    assert program in scripts and args == ["spec", "validate", "--specs-only"]
