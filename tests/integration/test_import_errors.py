"""Broken specs show up as import errors of their own files; good specs still produce DAGs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration

GOOD = (ROOT / "dags" / "specs" / "fraud_detector.yaml").read_text()
BROKEN = {
    "misspelt.yaml": GOOD.replace("pipeline: fraud_detector", "pipeline: misspelt").replace(
        "  target: is_fraud", "  targt: is_fraud"
    ),
    "bad_cron.yaml": GOOD.replace("pipeline: fraud_detector", "pipeline: bad_cron").replace(
        'schedule: "@daily"', 'schedule: "0 25 * * *"'
    ),
    "bad_yaml.yaml": "apiVersion: mlops/v1\npipeline: [oops\n",
    "cycle.yaml": GOOD.replace("pipeline: fraud_detector", "pipeline: cycle")
    + (
        "steps:\n"
        "  - {id: a, operator: airflow.providers.standard.operators.empty.EmptyOperator, after: [b]}\n"
        "  - {id: b, operator: airflow.providers.standard.operators.empty.EmptyOperator, after: [a]}\n"
    ),
    # Hostile: 60 KB of brackets crashed the DAG processor (libyaml's C stack) and took every
    # spec's DAGs with it; the others once passed as plain YAML or ended in a traceback.
    "deep.yaml": GOOD.replace("pipeline: fraud_detector", "pipeline: deep")
    + "x: "
    + "[" * 30_000
    + "]" * 30_000,
    "tagged.yaml": GOOD.replace("pipeline: fraud_detector", "pipeline: tagged").replace(
        "owner: risk-ml", "owner: !!binary cmlzay1tbA=="
    ),
    "forever.yaml": GOOD.replace("pipeline: fraud_detector", "pipeline: forever").replace(
        "execution_timeout: 30m", "execution_timeout: 99999999999999d"
    ),
    "sync_deadline.yaml": GOOD.replace("pipeline: fraud_detector", "pipeline: sync_deadline")
    + "deadline: {after: 2h, callback: json.dumps}\n",
    # Merges that double at each level (a hang), a template Jinja parses recursively
    # (RecursionError) and a base-60 integer converted in quadratic time.
    "merges.yaml": GOOD.replace("pipeline: fraud_detector", "pipeline: merges")
    + "? &m0 {k: 0}\n: 1\n"
    + "".join(f"? &m{i} {{<<: [*m{i - 1}, *m{i - 1}]}}\n: 1\n" for i in range(1, 40)),
    "template.yaml": GOOD.replace("pipeline: fraud_detector", "pipeline: template").replace(
        "{{ ds }}/batch.parquet", "{{ " + "(" * 300 + "ds" + ")" * 300 + " }}/batch.parquet", 1
    ),
    "base60.yaml": GOOD.replace("pipeline: fraud_detector", "pipeline: base60")
    + "x: 1"
    + ":0" * 100_000
    + "\n",
}


def airflow(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def last_json(text: str) -> object:
    for line in reversed(text.strip().splitlines()):
        if line.startswith(("[", "{")):
            return json.loads(line)
    raise AssertionError(f"no JSON in output:\n{text[-2000:]}")


def test_each_broken_spec_is_its_own_import_error(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    (dags / "specs").mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "mlops_specs.py", dags)
    (dags / "data").mkdir()
    (dags / "specs" / "fraud_detector.yaml").write_text(GOOD)
    for name, text in BROKEN.items():
        (dags / "specs" / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "home"),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    assert airflow(["db", "migrate"], env).returncode == 0
    reserialize = airflow(["dags", "reserialize"], env)
    assert reserialize.returncode == 0, reserialize.stderr[-3000:]

    listed = airflow(["dags", "list-import-errors", "-o", "json"], env)
    errors = {e["filepath"]: e["error"] for e in last_json(listed.stdout)}  # type: ignore[union-attr]
    assert set(errors) == {f"specs/{name}" for name in BROKEN}
    assert "specs/misspelt.yaml:" in errors["specs/misspelt.yaml"]
    assert "did you mean 'target'" in errors["specs/misspelt.yaml"]
    assert "hour: '25' is not valid here (outside 0-23)" in errors["specs/bad_cron.yaml"]
    assert "invalid YAML" in errors["specs/bad_yaml.yaml"]
    assert "cycle: a -> b -> a" in errors["specs/cycle.yaml"]
    assert "nest deeper than 64 levels" in errors["specs/deep.yaml"]
    assert "'!!binary' is not allowed" in errors["specs/tagged.yaml"]
    assert "between 0 and 3650 days" in errors["specs/forever.yaml"]
    assert "is not an awaitable" in errors["specs/sync_deadline.yaml"]
    assert "20,000" in errors["specs/merges.yaml"] or "keys must be plain" in errors["specs/merges.yaml"]
    assert "nests brackets" in errors["specs/template.yaml"]
    assert "64-bit" in errors["specs/base60.yaml"]
    assert "mlops_specs.py" not in " ".join(errors)  # never a vague error on the loader

    dag_list = airflow(["dags", "list", "-o", "json"], env)
    dag_ids = [d["dag_id"] for d in last_json(dag_list.stdout)]  # type: ignore[union-attr]
    assert dag_ids == ["fraud_detector__monitor", "fraud_detector__train"]

    # Fixing the spec clears its error on the next parse.
    (dags / "specs" / "misspelt.yaml").write_text(BROKEN["misspelt.yaml"].replace("targt:", "target:"))
    assert airflow(["dags", "reserialize"], env).returncode == 0
    errors_after = {
        e["filepath"] for e in last_json(airflow(["dags", "list-import-errors", "-o", "json"], env).stdout)
    }  # type: ignore[union-attr]
    assert "specs/misspelt.yaml" not in errors_after
    assert "specs/bad_cron.yaml" in errors_after
