"""DataValidateOperator: the HTML report, S3 input, and bad input that leaves nothing behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pandas as pd
import pytest

from airflow_mlops.artifacts import ArtifactRef, sha256_file
from airflow_mlops.data.generate import generate_fraud_data
from airflow_mlops.exceptions import DataError, DataValidationError
from airflow_mlops.operators.data import DataValidateOperator

CONTEXT = {"run_id": "manual__2026-01-02", "dag": SimpleNamespace(dag_id="p__train")}


def _op(tmp_path: Path, source: str, **kwargs: Any) -> DataValidateOperator:
    return DataValidateOperator(
        task_id="validate", pipeline="p", artifact_root=str(tmp_path / "store"), source=source, **kwargs
    )


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    reference, batch = tmp_path / "reference.parquet", tmp_path / "batch.parquet"
    generate_fraud_data(2000, seed=41).to_parquet(reference)
    df = generate_fraud_data(800, seed=42)
    df.loc[7, "amount"] = -3.0
    df.to_parquet(batch)
    return reference, batch


def test_stores_an_html_report_and_logs_its_uri(tmp_path: Path, files: tuple[Path, Path]) -> None:
    reference, batch = files
    op = _op(tmp_path, str(batch), reference=str(reference), target="is_fraud", on_failure="warn")
    logger = mock.MagicMock()
    with mock.patch.object(DataValidateOperator, "log", logger):
        out = op.execute(CONTEXT)
    assert out["success"] is False and set(out) == {"data", "report", "html_report", "success"}
    html = ArtifactRef.from_dict(out["html_report"])
    assert html.uri.endswith("/validate/validation_report.html")
    assert sha256_file(html.uri) == html.sha256
    page = Path(html.uri).read_text()
    assert "expect_column_values_to_be_between" in page and '<td class="bad num">-3</td>' in page
    assert page.count('<div class="profile">') == 7
    logger.info.assert_any_call("Validation report (HTML): %s", html.uri)
    stored = json.loads(Path(out["report"]["uri"]).read_text())
    assert stored["source"] == str(batch) and stored["reference"] == str(reference)
    amount = next(p for p in stored["profiles"] if p["name"] == "amount")
    assert amount["batch"]["min"] == -3.0
    assert amount["reference"]["rows"] == 2000 and amount["batch"]["rows"] == 800
    # on_failure=fail stores the same evidence, then fails
    with pytest.raises(DataValidationError, match="amount"):
        _op(tmp_path, str(batch), reference=str(reference)).execute(CONTEXT)


def _write(path: Path, df: pd.DataFrame | None, text: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if text is not None:
        path.write_text(text)
    elif path.suffix == ".csv":
        assert df is not None
        df.to_csv(path, index=False)
    else:
        assert df is not None
        df.to_parquet(path)
    return path


BASE = generate_fraud_data(300, seed=43)


@pytest.mark.parametrize(
    ("name", "batch", "text", "kwargs", "column", "match"),
    [
        ("no_target.parquet", BASE.drop(columns=["is_fraud"]), None, {}, "is_fraud", "no target column"),
        ("empty.csv", None, "", {}, None, "is empty"),
        ("header.csv", None, "amount,is_fraud\n", {}, None, "has no rows"),
        ("batch.xlsx", None, "x", {}, None, "cannot tell the table format"),
        ("batch.parquet", None, "x", {"data_format": "json"}, None, "unknown table format 'json'"),
        ("nulls.parquet", BASE.assign(merchant_risk=float("nan")), None, {}, "merchant_risk", "only nulls"),
        ("missing.parquet", BASE.drop(columns=["country"]), None, {}, "country", "not in the batch"),
        ("extra.parquet", BASE.assign(note="x"), None, {}, "note", "in the batch but not in the reference"),
        ("typed.csv", BASE.assign(hour=BASE["hour"].astype(str) + "h"), None, {}, "hour", "changed type"),
    ],
)
def test_bad_input_names_file_and_column_and_stores_nothing(
    tmp_path: Path,
    name: str,
    batch: pd.DataFrame | None,
    text: str | None,
    kwargs: dict[str, Any],
    column: str | None,
    match: str,
) -> None:
    reference = _write(tmp_path / "ref" / "reference.parquet", BASE)
    source = _write(tmp_path / "in" / name, batch, text)
    op = _op(tmp_path, str(source), reference=str(reference), target="is_fraud", **kwargs)
    with pytest.raises(DataError, match=match) as info:
        op.execute(CONTEXT)
    assert str(source) in str(info.value)
    if column:
        assert repr(column) in str(info.value)
    store = tmp_path / "store"
    assert not store.exists() or [p for p in store.rglob("*") if p.is_file()] == []


def test_a_bad_reference_is_named_too(tmp_path: Path) -> None:
    reference = _write(tmp_path / "reference.parquet", BASE.drop(columns=["is_fraud"]))
    source = _write(tmp_path / "batch.parquet", BASE)
    with pytest.raises(DataError, match=rf"{reference} has no target column 'is_fraud'"):
        _op(tmp_path, str(source), reference=str(reference), target="is_fraud").execute(CONTEXT)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="data")
    yield client
    server.stop()


def test_reads_batch_and_reference_from_s3(tmp_path: Path, s3: Any) -> None:
    BASE.to_csv(tmp_path / "b.csv", index=False)
    BASE.to_parquet(tmp_path / "r.parquet")
    s3.upload_file(str(tmp_path / "b.csv"), "data", "2026-01-01/batch.csv")
    s3.upload_file(str(tmp_path / "r.parquet"), "data", "reference.parquet")
    op = _op(
        tmp_path,
        "s3://data/{{ ds }}/batch.csv",
        reference="s3://data/reference.parquet",
        target="is_fraud",
    )
    op.render_template_fields({"ds": "2026-01-01"})
    out = op.execute({**CONTEXT, "ds": "2026-01-01", "logical_date": "2026-01-01"})
    assert out["success"] is True
    snapshot = pd.read_parquet(out["data"]["uri"])
    pd.testing.assert_frame_equal(snapshot, pd.read_csv(tmp_path / "b.csv"))
    assert out["data"]["metadata"]["source"] == "s3://data/2026-01-01/batch.csv"
    page = Path(out["html_report"]["uri"]).read_text()
    assert "s3://data/2026-01-01/batch.csv" in page and "s3://data/reference.parquet" in page
    with pytest.raises(DataError, match=r"data file s3://data/2026-01-02/batch\.csv does not exist"):
        op.execute({**CONTEXT, "ds": "2026-01-02", "logical_date": "2026-01-02"})
