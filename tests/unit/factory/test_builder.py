from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from airflow_mlops.factory import build_dags
from airflow_mlops.factory.folder import load_dags_folder
from airflow_mlops.spec.loader import load_spec, load_spec_text

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "dags" / "specs" / "fraud_detector.yaml"


def build_example():
    return build_dags(load_spec(EXAMPLE), spec_path=EXAMPLE)["fraud_detector__train"]


def test_lifecycle_order() -> None:
    dag = build_example()
    order = [
        "data.validate",
        "data.screen",
        "training.prepare",
        "training.fit",
        "training.package",
        "gates.scan",
        "gates.evaluate",
        "release.sign",
        "release.register",
        "release.promote",
    ]
    for upstream, downstream in itertools.pairwise(order):
        assert downstream in dag.get_task(upstream).downstream_task_ids, (upstream, downstream)


def test_dag_settings_come_from_the_spec() -> None:
    dag = build_example()
    from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable

    # The spec's `{time: "@daily", events: [drift, new_data]}`.
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert dag.timetable.timetable == CronDataIntervalTimetable("0 0 * * *", timezone="UTC")
    uris = sorted(a.uri for a in dag.timetable.asset_condition.objects)
    assert uris == ["x-mlops://fraud_detector/drift", "x-mlops://fraud_detector/new_data"]
    assert dag.catchup is False
    assert set(dag.tags) == {"mlops", "fraud", "tabular"}
    assert {t.retries for t in dag.tasks} == {1}
    assert dag.get_task("training.fit").execution_timeout.total_seconds() == 1800
    assert dag.default_args["owner"] == "risk-ml"
    assert "`roc_auc` ≥ 0.8;" in dag.doc_md and "`pr_auc` ≥ 0.3" in dag.doc_md


def test_relative_data_paths_resolve_against_the_spec_folder() -> None:
    dag = build_example()
    validate = dag.get_task("data.validate")
    assert validate.source.startswith(str(EXAMPLE.parent.resolve()))
    assert validate.source.endswith("/{{ ds }}/batch.parquet")
    # Rendered when the task runs: an asset-triggered run has no {{ ds }} and reads its events' data.
    assert "source" not in validate.template_fields


def test_structure_is_identical_between_parses() -> None:
    a, b = build_example(), build_example()
    assert [t.task_id for t in a.tasks] == [t.task_id for t in b.tasks]
    assert a.doc_md == b.doc_md
    assert {t.task_id: sorted(t.downstream_task_ids) for t in a.tasks} == {
        t.task_id: sorted(t.downstream_task_ids) for t in b.tasks
    }


def test_serialized_dag_hash_is_stable_across_parses_and_the_parse_cache(tmp_path: Path) -> None:
    """Airflow makes a new DAG version when the serialized DAG's hash changes: it must not churn."""
    import shutil

    from airflow.serialization.serialized_objects import LazyDeserializedDAG

    from airflow_mlops.factory.folder import load_dags_folder

    def dag_hash(dag) -> str:
        return LazyDeserializedDAG.from_dag(dag).hash

    folder = tmp_path / "dags"
    shutil.copytree(ROOT / "dags" / "specs", folder / "specs")
    hashes = []
    for _ in range(3):  # parse (fills the cache), then two cache hits
        dags, errors = load_dags_folder(folder, default_allowed_roots=[folder], cache_dir=tmp_path / "cache")
        assert not errors
        hashes.append(dag_hash(dags["fraud_detector__train"]))
    uncached, _ = load_dags_folder(folder, default_allowed_roots=[folder], cache_dir=None)
    hashes.append(dag_hash(uncached["fraud_detector__train"]))
    assert len(set(hashes)) == 1, hashes
    # ... and the hash does see a change of the spec.
    spec_file = folder / "specs" / "fraud_detector.yaml"
    spec_file.write_text(spec_file.read_text().replace("min: 0.8}", "min: 0.86}"))
    changed, _ = load_dags_folder(folder, default_allowed_roots=[folder], cache_dir=tmp_path / "cache")
    assert dag_hash(changed["fraud_detector__train"]) != hashes[0]


def test_broken_spec_does_not_hide_good_ones(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(EXAMPLE.read_text().replace("../data", str(ROOT / "dags" / "data")))
    (tmp_path / "bad.yaml").write_text("apiVersion: mlops/v1\npipeline: bad\nregistry: {model_name: x}\n")
    (tmp_path / "other.yaml").write_text("not: a spec\n")  # ignored: no apiVersion: mlops/...
    dags, errors = load_dags_folder(tmp_path)
    assert list(dags) == ["fraud_detector__train", "fraud_detector__monitor"]
    assert list(errors) == [str(tmp_path / "bad.yaml")]
    assert "data: required key is missing" in str(errors[str(tmp_path / "bad.yaml")])


def test_duplicate_pipeline_names_are_reported(tmp_path: Path) -> None:
    text = (
        "apiVersion: mlops/v1\npipeline: same\ndata: {source: a.csv, target: y}\nregistry: {model_name: m}\n"
    )
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    dags, errors = load_dags_folder(tmp_path)
    assert list(dags) == ["same__train"]
    assert "already defined" in str(errors[str(tmp_path / "b.yaml")])


def test_minimal_spec_builds() -> None:
    spec = load_spec_text(
        "apiVersion: mlops/v1\npipeline: p\ndata: {source: s3://b/k.parquet, target: y}\nregistry: {model_name: m}\n"
    )
    dag = build_dags(spec)["p__train"]
    assert dag.schedule is None
    assert dag.get_task("data.validate").source == "s3://b/k.parquet"


def test_an_unexpected_error_in_one_spec_is_that_specs_import_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_mlops.factory import folder as folder_module
    from airflow_mlops.factory.folder import load_dags_folder

    specs = tmp_path / "specs"
    specs.mkdir()
    example = (ROOT / "dags" / "specs" / "fraud_detector.yaml").read_text()
    (specs / "a.yaml").write_text(example.replace("pipeline: fraud_detector", "pipeline: a"))
    (specs / "b.yaml").write_text(example.replace("pipeline: fraud_detector", "pipeline: b"))
    real_build = folder_module.SpecFolderLoader.build

    def build(self, path: Path):
        if path.name == "a.yaml":
            raise RecursionError("maximum recursion depth exceeded")
        return real_build(self, path)

    monkeypatch.setattr(folder_module.SpecFolderLoader, "build", build)
    dags, errors = load_dags_folder(specs, default_allowed_roots=[tmp_path], cache_dir=None)
    assert list(dags) == ["b__train", "b__monitor"]
    (error,) = errors.values()
    assert (
        error.file.endswith("a.yaml")
        and "RecursionError" in str(error)
        and "bug in airflow-mlops" in str(error)
    )


def test_evaluate_gets_the_fairness_and_robustness_sections_and_the_docs_list_them() -> None:
    spec = load_spec(EXAMPLE)
    fairness = {"slices": ["country"], "metrics": {"accuracy": {"max_gap": 0.1}}, "min_slice_rows": 150}
    evaluation = type(spec.evaluation).model_validate({**spec.evaluation.model_dump(), "fairness": fairness})
    spec = spec.model_copy(update={"evaluation": evaluation})
    dag = build_dags(spec, spec_path=EXAMPLE)["fraud_detector__train"]
    evaluate = dag.get_task("gates.evaluate")
    assert evaluate.fairness == spec.evaluation.fairness.model_dump()
    assert evaluate.fairness["min_slice_rows"] == 150
    assert evaluate.robustness == spec.evaluation.robustness.model_dump()  # the example's own section
    assert [p["missing"] for p in evaluate.robustness["perturbations"]] == [["country"], None]
    assert "`accuracy` gap across `country` slices ≤ 0.1" in dag.doc_md
    assert "`roc_auc` at most 0.05 below clean under missing(country)" in dag.doc_md
    assert "under noise(0.1 std)" in dag.doc_md


def test_without_the_sections_evaluate_gets_none() -> None:
    spec = load_spec_text(
        "apiVersion: mlops/v1\npipeline: churn\ndata: {source: d.parquet, target: y}\n"
        "registry: {model_name: churn}\n",
        check_imports=False,
    )
    evaluate = build_dags(spec)["churn__train"].get_task("gates.evaluate")
    assert evaluate.fairness is None and evaluate.robustness is None
