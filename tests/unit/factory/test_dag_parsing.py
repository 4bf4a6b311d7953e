"""Parsing the dags folder must be fast and import no heavy library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HEAVY = [
    "torch",
    "mlflow",
    "great_expectations",
    "alibi_detect",
    "pandas",
    "sklearn",
    "numpy",
    "boto3",
    "safetensors",
    "model_signing",
    "kubernetes",
]

PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
print(json.dumps({
    "dags": sorted(bag.dag_ids),
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "heavy": sorted(m for m in sys.argv[2].split(",") if m in sys.modules),
    "tasks": sorted(t.task_id for t in bag.dags["fraud_detector__train"].tasks) if "fraud_detector__train" in bag.dag_ids else [],
}))
"""


def parse(folder: Path, tmp_path: Path) -> dict:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_dags_folder_parses_without_errors_or_heavy_imports(tmp_path: Path) -> None:
    result = parse(ROOT / "dags", tmp_path)
    assert result["errors"] == {}
    assert result["dags"] == ["fraud_detector__monitor", "fraud_detector__train"]
    assert result["heavy"] == [], f"heavy modules imported at parse time: {result['heavy']}"
    assert result["tasks"] == [
        "data.screen",
        "data.validate",
        "gates.evaluate",
        "gates.scan",
        "release.promote",
        "release.register",
        "release.sign",
        "training.fit",
        "training.package",
        "training.prepare",
    ]


def test_a_bare_spec_dropped_anywhere_in_the_dags_folder_becomes_a_dag(tmp_path: Path) -> None:
    """Only the loader file is Python; specs may sit at any depth, and .airflowignore is honoured."""
    dags = tmp_path / "dags"
    (dags / "team" / "fraud").mkdir(parents=True)
    (dags / "drafts").mkdir()
    (dags / "mlops_specs.py").write_text((ROOT / "dags" / "mlops_specs.py").read_text())
    example = (ROOT / "dags" / "specs" / "fraud_detector.yaml").read_text()
    # Relative data paths are relative to each spec's own folder.
    top = example.replace("pipeline: fraud_detector", "pipeline: top").replace("../data/", "data/")
    (dags / "top.yml").write_text(top)
    deep = example.replace("pipeline: fraud_detector", "pipeline: deep").replace("../data/", "../../data/")
    (dags / "team" / "fraud" / "deep.yaml").write_text(deep)
    (dags / "drafts" / "draft.yaml").write_text(
        example.replace("pipeline: fraud_detector", "pipeline: draft")
    )
    (dags / "team" / "compose.yaml").write_text("services: {a: {image: x}}\n")  # not a spec: ignored
    (dags / ".airflowignore").write_text("drafts/\n")

    result = parse(dags, tmp_path)
    assert result["errors"] == {}
    assert result["dags"] == ["deep__monitor", "deep__train", "top__monitor", "top__train"]
