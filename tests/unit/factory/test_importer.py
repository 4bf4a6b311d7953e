"""The spec importer: a bare YAML spec as a DAG file of its own, via Airflow's importer registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import json, sys
from airflow_mlops.factory.importer import register_spec_importer
assert register_spec_importer()
from airflow.dag_processing.dagbag import BundleDagBag
bag = BundleDagBag(sys.argv[1], bundle_path=sys.argv[1], bundle_name="b")
print(json.dumps({"dags": sorted(bag.dag_ids), "errors": bag.import_errors,
                  "filelocs": sorted({d.relative_fileloc for d in bag.dags.values()})}))
"""


def test_bare_yaml_specs_load_through_the_importer(tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    (folder / "team").mkdir(parents=True)
    good = (ROOT / "dags" / "specs" / "fraud_detector.yaml").read_text().replace("../data/fraud", "data")
    (folder / "team" / "fraud.yaml").write_text(good)
    (folder / "broken.yml").write_text(
        "apiVersion: mlops/v1\npipeline: broken\ndata: {source: a.csv}\nregistry: {model_name: m}\n"
    )
    (folder / "notes.yaml").write_text("just: yaml\n")  # not a spec: ignored
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["dags"] == ["fraud_detector__monitor", "fraud_detector__train"]
    assert result["filelocs"] == ["team/fraud.yaml"]
    assert list(result["errors"]) == ["broken.yml"]
    assert "broken.yml:3:1: data.target: required key is missing" in result["errors"]["broken.yml"]
