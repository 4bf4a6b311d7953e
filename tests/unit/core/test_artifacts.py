from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_mlops.artifacts import (
    DIRECTORY_MEDIA_TYPE,
    ArtifactRef,
    ArtifactStore,
    safe_segment,
    sha256_directory,
)
from airflow_mlops.exceptions import ArtifactError, ArtifactIntegrityError


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    (d / "sub").mkdir(parents=True)
    (d / "a.json").write_text('{"a": 1}')
    (d / "sub" / "w.bin").write_bytes(os.urandom(2048))
    return d


def test_file_round_trip_and_ref_is_json_safe(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    src = tmp_path / "x.parquet"
    src.write_bytes(b"data" * 100)
    ref = store.put_file(src, "p/run/stage/x.parquet", producer="t1", rows=3)
    assert ref.size == 400 and ref.media_type == "application/vnd.apache.parquet"
    again = ArtifactRef.from_dict(ref.to_dict())
    assert again == ref
    got = store.fetch(again, tmp_path / "out")
    assert got.read_bytes() == src.read_bytes()


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    src = tmp_path / "x.csv"
    src.write_text("a,b\n1,2\n")
    ref = store.put_file(src, "k/x.csv")
    Path(ref.uri).write_text("a,b\n1,3\n")
    with pytest.raises(ArtifactIntegrityError, match="changed after task"):
        store.fetch(ref, tmp_path / "out")


def test_directory_round_trip_and_tamper(tmp_path: Path, model_dir: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path / 'store'}")
    ref = store.put_directory(model_dir, "p/r/train/model")
    assert ref.media_type == DIRECTORY_MEDIA_TYPE
    assert ref.sha256 == sha256_directory(model_dir)[0]
    out = store.fetch(ref, tmp_path / "out")
    assert (out / "sub" / "w.bin").read_bytes() == (model_dir / "sub" / "w.bin").read_bytes()
    (Path(ref.uri) / "extra.txt").write_text("added later")
    with pytest.raises(ArtifactIntegrityError):
        store.fetch(ref, tmp_path / "out2")


def test_no_partial_files_left_under_final_name(tmp_path: Path, model_dir: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    store.put_directory(model_dir, "a/model")
    store.put_directory(model_dir, "a/model")  # a retry replaces, atomically
    names = sorted(p.name for p in (tmp_path / "store" / "a").iterdir())
    assert names == ["model"]


def test_missing_artifact_says_what_to_do(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    ref = ArtifactRef(
        uri=str(tmp_path / "nope"), sha256="0" * 64, size=1, media_type="text/plain", producer="t"
    )
    with pytest.raises(ArtifactError, match="does not exist"):
        store.fetch(ref, tmp_path / "o")


def test_bad_ref_and_segments() -> None:
    with pytest.raises(ArtifactError, match="not an artifact reference"):
        ArtifactRef.from_dict({"uri": "x"})
    assert safe_segment("manual__2026-01-01T00:00:00+00:00") == "manual__2026-01-01T00_00_00_00_00"
    with pytest.raises(ArtifactError):
        safe_segment("///")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_s3_store_against_a_real_http_endpoint(tmp_path: Path, model_dir: Path, s3_endpoint: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    client.create_bucket(Bucket="mlops")
    store = ArtifactStore("s3://mlops/artifacts", s3_client=client)
    src = tmp_path / "r.json"
    src.write_text('{"ok": true}')
    ref = store.put_file(src, "p/run/validate/r.json")
    assert ref.uri == "s3://mlops/artifacts/p/run/validate/r.json"
    assert store.fetch(ref, tmp_path / "o1").read_text() == '{"ok": true}'
    dref = store.put_directory(model_dir, "p/run/train/model")
    out = store.fetch(dref, tmp_path / "o2")
    assert sha256_directory(out)[0] == dref.sha256
    client.put_object(Bucket="mlops", Key="artifacts/p/run/train/model/a.json", Body=b'{"a": 2}')
    with pytest.raises(ArtifactIntegrityError):
        store.fetch(dref, tmp_path / "o3")
