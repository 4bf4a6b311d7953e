"""Smoke test of benchmarks/parse_specs.py: its two dags folders build the same DAGs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

TASKS = {
    "data.validate", "data.screen", "training.prepare", "training.fit", "training.package",
    "gates.scan", "gates.evaluate",
    "release.sign", "release.register", "release.promote",
}  # fmt: skip


def test_factory_and_hand_written_folders_build_identical_dags(tmp_path: Path, load_benchmark) -> None:
    bench = load_benchmark("parse_specs.py")
    folders = bench.generate(tmp_path / "n2", 2)
    hand_file = (folders["hand"] / "model_0001__train.py").read_text()
    assert "validate.output['data']" in hand_file and "evaluate >> sign" in hand_file
    assert "airflow_mlops.factory" not in hand_file  # written by hand: no factory at parse time

    env = bench.probe_env(tmp_path, "off")
    results = {side: bench.run_probe(folder, env, fingerprint=True) for side, folder in folders.items()}
    # The first factory parse filled the parse cache; the DAGs built from it are the same.
    assert list((tmp_path / "airflow_home" / "cache" / "airflow-mlops").glob("specs-*.json"))
    results["factory_cached"] = bench.run_probe(folders["factory"], env, fingerprint=True)
    results["factory_cold"] = bench.run_probe(folders["factory"], env, fingerprint=True, no_cache=True)
    bench.check_identical(results, 2)

    factory = results["factory"]
    assert factory["heavy"] == [] and results["hand"]["heavy"] == []
    assert factory["files"] == 1 and results["hand"]["files"] == 2
    assert sorted(factory["fingerprint"]) == ["model_0000__train", "model_0001__train"]
    dag = factory["fingerprint"]["model_0001__train"]
    assert set(dag["tasks"]) == TASKS
    # The variants differ from the example and from each other (model_0001 is @hourly).
    assert dag["schedule"] == "CronDataIntervalTimetable(expression='0 * * * *', timezone='UTC')"
    assert "CronDataIntervalTimetable(" in hand_file
    register = dag["tasks"]["release.register"]["arguments"]
    assert register["gates_passed"] == ["xcom", "gates.evaluate", "passed"]
    assert "gates.evaluate" in dag["tasks"]["release.sign"]["upstream"]

    # The comparison catches a DAG that differs in one argument.
    broken = copy.deepcopy(results)
    broken["hand"]["fingerprint"]["model_0001__train"]["tasks"]["gates.evaluate"]["arguments"][
        "threshold"
    ] = 0.9
    with pytest.raises(AssertionError, match=r"gates\.evaluate\.arguments\.threshold"):
        bench.check_identical(broken, 2)
