"""What the Models view serves besides its pages (ui/documents.py): a model's pipeline, a version's
ML-BOM, and the pipeline's reports logged to MLflow runs, each checked against its recorded digest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.exceptions import RegistryLookupError
from airflow_mlops.ui import documents
from tests.unit.ui.models_registry import MODEL, PIPELINE, log_monitor_run


def test_the_mlbom_document_is_the_stored_cyclonedx_json(client: Any, registry: dict[str, Any]) -> None:
    data = documents.mlbom_document(client, MODEL, registry["v1"])
    assert json.loads(data) == registry["bom"]
    with pytest.raises(RegistryLookupError, match="has no ML-BOM"):
        documents.mlbom_document(client, MODEL, registry["v2"])
    with pytest.raises(RegistryLookupError, match="does not exist"):
        documents.mlbom_document(client, MODEL, "99")


def test_model_pipeline_refuses_locks_and_unknown_models(client: Any, registry) -> None:
    from airflow_mlops.registry.promotion import lock_name

    assert documents.model_pipeline(client, MODEL) == PIPELINE
    with pytest.raises(RegistryLookupError, match="promotion lock"):
        documents.model_pipeline(client, lock_name(MODEL, "champion"))
    client.create_registered_model("hand-made")
    with pytest.raises(RegistryLookupError, match="not registered by a pipeline"):
        documents.model_pipeline(client, "hand-made")


def test_run_report_serves_only_the_pipeline_reports(client: Any, registry) -> None:
    run_id = log_monitor_run(
        client, experiment=PIPELINE, pipeline=PIPELINE, model=MODEL, version="1", drifted=True, share=0.5
    )
    data, media_type = documents.run_report(client, run_id, "drift/drift_report.html")
    assert b"<h1>drift</h1>" in data and media_type.startswith("text/html")
    with pytest.raises(RegistryLookupError, match="not a report"):
        documents.run_report(client, run_id, "../../etc/passwd")
    with pytest.raises(RegistryLookupError, match=r"has no drift/drift_report\.json"):
        documents.run_report(client, run_id, "drift/drift_report.json")


def _stored_report(client: Any, run_id: str, path: str) -> Path:
    from urllib.parse import urlparse

    return Path(urlparse(client.get_run(run_id).info.artifact_uri).path) / path


def test_run_report_changed_in_the_store_is_not_served(client: Any, registry) -> None:
    run_id = log_monitor_run(
        client, experiment=PIPELINE, pipeline=PIPELINE, model=MODEL, version="1", drifted=True, share=0.5
    )
    stored = _stored_report(client, run_id, "drift/drift_report.html")
    assert stored.is_file()
    stored.write_bytes(b"<html><body>changed after the task logged it</body></html>")
    with pytest.raises(documents.ReportChangedError, match="no longer has the sha256"):
        documents.run_report(client, run_id, "drift/drift_report.html")


def test_run_report_without_a_recorded_digest_is_not_served(client: Any, registry) -> None:
    from airflow_mlops.registry.mlflow_registry import TAG_REPORT_SHA256

    run_id = log_monitor_run(
        client, experiment=PIPELINE, pipeline=PIPELINE, model=MODEL, version="1", drifted=True, share=0.5
    )
    client.delete_tag(run_id, TAG_REPORT_SHA256 + "drift/drift_report.html")
    with pytest.raises(documents.ReportRefusedError, match="recorded no digest"):
        documents.run_report(client, run_id, "drift/drift_report.html")
    client.set_tag(run_id, TAG_REPORT_SHA256 + "drift/drift_report.html", "not-a-digest")
    with pytest.raises(documents.ReportRefusedError, match="recorded no digest"):
        documents.run_report(client, run_id, "drift/drift_report.html")
