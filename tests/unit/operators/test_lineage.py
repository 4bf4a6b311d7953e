"""OpenLineage: each stage reports the artifacts it read and wrote, with their sha256."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_mlops.artifacts import ArtifactRef
from airflow_mlops.data.generate import generate_fraud_data
from airflow_mlops.operators.data import DataValidateOperator
from airflow_mlops.operators.lineage import dataset_for_uri, model_version_dataset, outputs_of

CONTEXT = {"run_id": "manual__2026-01-02T00:00:00+00:00", "dag": SimpleNamespace(dag_id="p__train")}


def _names(datasets) -> set[tuple[str, str]]:
    return {(d.namespace, d.name) for d in datasets}


def test_validate_reports_its_source_and_the_artifacts_it_wrote(tmp_path: Path) -> None:
    source = tmp_path / "batch.parquet"
    generate_fraud_data(500, seed=1).to_parquet(source)
    op = DataValidateOperator(
        task_id="validate",
        pipeline="p",
        artifact_root=str(tmp_path / "store"),
        source=str(source),
        expectations=[{"expect_column_values_to_be_between": {"column": "amount", "min_value": 0}}],
    )
    out = op.execute(CONTEXT)
    lineage = op.get_openlineage_facets_on_complete(None)

    assert _names(lineage.inputs) == {("file", str(source.resolve()))}
    written = [ArtifactRef.from_dict(out[k]) for k in ("data", "report")]
    assert {("file", r.uri) for r in written} <= _names(lineage.outputs)
    versions = {d.name: d.facets["version"].datasetVersion for d in lineage.outputs}
    assert all(versions[r.uri] == r.sha256 for r in written)


def test_a_stage_reports_the_refs_it_fetched_as_inputs(tmp_path: Path) -> None:
    from airflow_mlops.artifacts import ArtifactStore
    from airflow_mlops.operators.base import MLOpsBaseOperator

    store = ArtifactStore(str(tmp_path / "store"))
    (tmp_path / "x.bin").write_bytes(b"x" * 10)
    ref = store.put_file(tmp_path / "x.bin", "p/run/stage/x.bin", producer="t")

    class Copy(MLOpsBaseOperator):
        def execute(self, context):
            with self.scratch() as tmp:
                path = self.fetch(ref.to_dict(), tmp)
                return {"copy": store.put_file(path, "p/run/copy/x.bin", producer=self.task_id).to_dict()}

    op = Copy(task_id="copy", pipeline="p", artifact_root=str(tmp_path / "store"))
    op.execute(CONTEXT)
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [(d.name, d.facets["version"].datasetVersion) for d in lineage.inputs] == [(ref.uri, ref.sha256)]
    assert [d.name for d in lineage.outputs] == [str(tmp_path / "store" / "p/run/copy/x.bin")]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "s3://mlops-artifacts/p/run/validate/data.parquet",
            ("s3://mlops-artifacts", "p/run/validate/data.parquet"),
        ),
        ("file:///data/batch.csv", ("file", "/data/batch.csv")),
        ("/data/batch.csv", ("file", "/data/batch.csv")),
    ],
)
def test_uris_map_to_openlineage_names(uri: str, expected: tuple[str, str]) -> None:
    d = dataset_for_uri(uri)
    assert (d.namespace, d.name) == expected


def test_a_registered_version_is_an_output_dataset() -> None:
    result = {"model_name": "fraud", "version": "3", "model": {"uri": "s3://b/p/m", "sha256": "ab" * 32}}
    outs = outputs_of(result, "http://mlflow:5000")
    assert ("mlflow://mlflow:5000", "models/fraud/3") in _names(outs)
    assert ("s3://b", "p/m") in _names(outs)
    assert model_version_dataset("http://mlflow:5000", "fraud", 3).name == "models/fraud/3"


def test_the_openlineage_providers_extractor_reads_it_on_success_and_on_failure(tmp_path: Path) -> None:
    from airflow.providers.openlineage.extractors.base import DefaultExtractor
    from openlineage.client.serde import Serde

    from airflow_mlops.exceptions import DataValidationError

    source = tmp_path / "batch.parquet"
    generate_fraud_data(300, seed=2).to_parquet(source)
    common = {"pipeline": "p", "artifact_root": str(tmp_path / "store"), "source": str(source)}
    ok = DataValidateOperator(
        task_id="ok",
        expectations=[{"expect_column_values_to_be_between": {"column": "amount", "min_value": 0}}],
        **common,
    )
    ok.execute(CONTEXT)
    lineage = DefaultExtractor(ok).extract_on_complete(None)
    assert lineage is not None and _names(lineage.inputs) == {("file", str(source.resolve()))}
    assert len(lineage.outputs) >= 2
    assert '"datasetVersion"' in Serde.to_json(lineage.outputs[0])  # what the client would send

    failing = DataValidateOperator(
        task_id="bad",
        expectations=[{"expect_column_values_to_be_between": {"column": "amount", "max_value": 0}}],
        **common,
    )
    with pytest.raises(DataValidationError):
        failing.execute(CONTEXT)
    lineage = DefaultExtractor(failing).extract_on_failure(None)
    assert lineage is not None and _names(lineage.inputs) == {("file", str(source.resolve()))}
    assert lineage.outputs == []
