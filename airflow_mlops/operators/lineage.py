"""OpenLineage for the lifecycle operators: the artifacts and model versions each task read and wrote.

Every stage reads artifacts through :meth:`MLOpsBaseOperator.fetch` / ``fetch_source`` and returns
the refs it wrote; both are recorded on the task instance's operator, and
``get_openlineage_facets_on_complete`` hands them to the OpenLineage provider (when it is
installed: ``airflow-mlops[openlineage]``), so Marquez or any OpenLineage backend shows the path
from a raw batch to a registered model version.

Naming follows OpenLineage's conventions: ``s3://bucket`` + key for S3, ``file`` + absolute path
for local files; a registered model is ``mlflow://<tracking host>`` + ``models/<name>/<version>``.
Each artifact dataset carries its sha256 as the dataset version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse


@dataclass(frozen=True)
class LineageDataset:
    """One OpenLineage dataset: namespace, name and (optionally) its version (a sha256)."""

    namespace: str
    name: str
    version: str | None = None


def dataset_for_uri(uri: str, version: str | None = None) -> LineageDataset:
    """The OpenLineage dataset of an artifact URI (``s3://``, ``file://`` or a local path)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("s3", "s3a", "gs", "abfss", "hdfs"):
        return LineageDataset(f"{parsed.scheme}://{parsed.netloc}", parsed.path.lstrip("/"), version)
    path = parsed.path if parsed.scheme == "file" else uri
    return LineageDataset("file", path, version)


def is_ref(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("uri"), str) and "sha256" in value


def refs_in(value: Any) -> Iterable[Mapping[str, Any]]:
    """Every artifact ref in an operator's result (a ref, or a dict/list holding refs)."""
    if is_ref(value):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from refs_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from refs_in(item)


def model_version_dataset(tracking_uri: str, name: str, version: Any) -> LineageDataset:
    parsed = urlparse(tracking_uri)
    where = parsed.netloc or parsed.path or tracking_uri
    return LineageDataset(f"mlflow://{where}", f"models/{name}/{version}")


def outputs_of(result: Any, tracking_uri: str | None) -> list[LineageDataset]:
    """The datasets an operator's returned value names: its refs, and a registered model version."""
    out = [dataset_for_uri(str(r["uri"]), str(r.get("sha256") or "") or None) for r in refs_in(result)]
    if isinstance(result, Mapping) and result.get("model_name") and result.get("version") and tracking_uri:
        out.append(model_version_dataset(tracking_uri, str(result["model_name"]), result["version"]))
    return _unique(out)


def _unique(items: Iterable[LineageDataset]) -> list[LineageDataset]:
    seen: dict[tuple[str, str], LineageDataset] = {}
    for item in items:
        seen.setdefault((item.namespace, item.name), item)
    return list(seen.values())


def operator_lineage(inputs: Iterable[LineageDataset], outputs: Iterable[LineageDataset]) -> Any:
    """The provider's ``OperatorLineage`` for these datasets (needs the OpenLineage provider)."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet

    def facets(d: LineageDataset) -> dict[str, Any]:
        return {"version": DatasetVersionDatasetFacet(datasetVersion=d.version)} if d.version else {}

    return OperatorLineage(
        inputs=[InputDataset(d.namespace, d.name, facets=facets(d)) for d in _unique(inputs)],
        outputs=[OutputDataset(d.namespace, d.name, facets=facets(d)) for d in _unique(outputs)],
    )
