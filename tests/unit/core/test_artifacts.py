from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from airflow_mlops.allowed_roots import (
    ensure_within_roots,
)
from airflow_mlops.artifacts import (
    DIRECTORY_MEDIA_TYPE,
    ArtifactRef,
    ArtifactStore,
    safe_segment,
    sha256_directory,
    sha256_file,
)
from airflow_mlops.exceptions import ArtifactError, ArtifactIntegrityError
from tests.unit.core.open_helpers import _FakeS3
from tests.unit.moto_s3 import s3_client


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


def test_s3_store_against_a_real_http_endpoint(tmp_path: Path, model_dir: Path, s3_endpoint: str) -> None:

    client = s3_client(s3_endpoint)
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


# -- the artifact store is the folder that was checked --------------------------------------------


def test_the_store_root_is_decoded_as_the_check_decodes_it(open_tree: dict[str, Path]) -> None:
    # Decoded: root/store (allowed). Taken literally, it would be a folder under outside/.
    uri = f"file://{open_tree['outside']}/a%2f..%2f..%2froot/store"
    assert ensure_within_roots(uri, [str(open_tree["root"])]) == str(open_tree["root"] / "store")
    store = ArtifactStore(uri)
    ref = store.put_file(open_tree["root"] / "in" / "a.csv", "p/r/s/a.csv")
    assert ref.uri == str(open_tree["root"] / "store" / "p" / "r" / "s" / "a.csv")
    assert not (open_tree["outside"] / "a%2f..%2f..%2froot").exists()
    with pytest.raises(ArtifactError, match="not a local artifact location"):
        ArtifactStore("gs://bucket/x")


def test_a_ref_is_fetched_from_its_decoded_path_not_a_literal_twin(open_tree: dict[str, Path]) -> None:
    store = ArtifactStore(str(open_tree["root"] / "store"))
    twin = open_tree["outside"] / "a%2f..%2f..%2froot" / "store"  # the URI read literally
    twin.mkdir(parents=True)
    shutil.copy(open_tree["outside"] / "a.csv", twin / "a.csv")
    uri = f"file://{open_tree['outside']}/a%2f..%2f..%2froot/store/a.csv"
    ref = ArtifactRef(uri, sha256_file(twin / "a.csv"), 1, "text/csv")
    with pytest.raises(ArtifactError, match="does not exist"):  # root/store/a.csv: not there
        store.fetch(ref, open_tree["tmp"] / "scratch")
    assert not (open_tree["tmp"] / "scratch" / "a.csv").exists()


def test_a_directory_artifact_holding_a_link_is_refused_before_copying(open_tree: dict[str, Path]) -> None:
    model = open_tree["root"] / "store" / "model"
    model.mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"w")
    (model / "leak.csv").symlink_to(open_tree["outside"] / "a.csv")
    digest, size = sha256_directory(model)  # as a forger would compute it
    ref = ArtifactRef(str(model), digest, size, "inode/directory")
    store = ArtifactStore(str(open_tree["root"] / "store"))
    with pytest.raises(ArtifactIntegrityError, match="symbolic link"):
        store.fetch(ref, open_tree["tmp"] / "scratch")
    assert not (open_tree["tmp"] / "scratch" / "model" / "leak.csv").exists()
    (model / "leak.csv").unlink()
    (model / "sub").mkdir()
    (model / "sub" / "up").symlink_to(open_tree["outside"], target_is_directory=True)
    with pytest.raises(ArtifactIntegrityError, match="symbolic link"):
        store.fetch(
            ArtifactRef(str(model), *sha256_directory(model), "inode/directory"), open_tree["tmp"] / "s2"
        )


def test_a_clean_directory_artifact_is_copied_whole(open_tree: dict[str, Path]) -> None:
    model = open_tree["root"] / "store" / "model"
    (model / "sub" / "empty").mkdir(parents=True)
    (model / "a.bin").write_bytes(b"a")
    (model / "sub" / "b.bin").write_bytes(b"b")
    ref = ArtifactRef(str(model), *sha256_directory(model), "inode/directory")
    out = ArtifactStore(str(open_tree["root"] / "store")).fetch(ref, open_tree["tmp"] / "scratch")
    assert (out / "sub" / "b.bin").read_bytes() == b"b" and (out / "sub" / "empty").is_dir()


def test_an_s3_directory_object_with_dot_dot_is_not_written_outside(open_tree: dict[str, Path]) -> None:
    fake = _FakeS3(["store/model/w.bin", "store/model/../../../escaped.bin"])
    store = ArtifactStore("s3://bucket/store", s3_client=fake)
    ref = ArtifactRef("s3://bucket/store/model", "0" * 64, 2, "inode/directory")
    with pytest.raises(ArtifactIntegrityError, match=r"'\.\.' segment"):
        store.fetch(ref, open_tree["tmp"] / "scratch" / "deep")
    assert not any(p.endswith("escaped.bin") for p in fake.downloaded)
    assert not (open_tree["tmp"] / "escaped.bin").exists()


# --- the compare-and-swap state files' helpers -------------------------------------------------


def test_s3_error_code_reads_a_client_error_and_nothing_else() -> None:
    from botocore.exceptions import ClientError

    from airflow_mlops.artifacts import S3_CONFLICT_CODES, S3_MISSING_CODES, s3_error_code

    lost = ClientError({"Error": {"Code": "PreconditionFailed", "Message": "At least one"}}, "PutObject")
    missing = ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")
    assert s3_error_code(lost) in S3_CONFLICT_CODES and s3_error_code(missing) in S3_MISSING_CODES
    assert s3_error_code(ValueError("PreconditionFailed")) is None  # a message is not a code
    # a response without a code has none (not the text "None")
    assert s3_error_code(ClientError({"Error": {"Message": "odd"}}, "GetObject")) is None
    assert s3_error_code(ClientError({}, "GetObject")) is None
    assert s3_error_code(ClientError({"Error": {"Code": 404}}, "HeadObject")) == "404"


def test_atomic_write_replaces_whole_or_leaves_the_old_file(tmp_path, monkeypatch) -> None:
    import os

    from airflow_mlops import artifacts

    path = tmp_path / "state.json"
    artifacts.atomic_write_bytes(path, b"old")
    assert path.read_bytes() == b"old"

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(artifacts.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        artifacts.atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["state.json"]  # no temporary file left behind
    artifacts.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"


def test_file_lock_lets_one_holder_in_at_a_time(tmp_path) -> None:
    import threading

    from airflow_mlops.artifacts import file_lock

    lock = tmp_path / ".state.lock"
    inside, most = [0], [0]
    guard = threading.Lock()
    started = threading.Barrier(4)

    def work() -> None:
        started.wait()
        for _ in range(20):
            with file_lock(lock):
                with guard:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                with guard:
                    inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1


# -- the compare-and-swap state document (the retrain ledger and the new-data watermark) ----------


def _swap_round(document: object) -> None:
    from airflow_mlops.artifacts import VersionConflict, VersionedDocument

    assert isinstance(document, VersionedDocument)
    assert document.read() == (None, None)
    first = document.write(b'{"n": 1}', expected_version=None)
    with pytest.raises(VersionConflict):  # a second first write lost the race
        document.write(b'{"n": 9}', expected_version=None)
    body, version = document.read()
    assert (body, version) == (b'{"n": 1}', first)
    second = document.write(b'{"n": 2}', expected_version=first)
    assert second != first
    with pytest.raises(VersionConflict):  # a writer holding the old version is refused
        document.write(b'{"n": 3}', expected_version=first)
    assert document.read() == (b'{"n": 2}', second)


def test_a_versioned_local_document_is_swapped_only_from_the_version_read(tmp_path: Path) -> None:
    from airflow_mlops.artifacts import VersionedDocument

    document = VersionedDocument(str(tmp_path / "deep" / "state.json"))
    _swap_round(document)
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == [".state.json.lock", "state.json"]


def test_a_versioned_s3_document_uses_conditional_puts(s3_endpoint: str) -> None:

    from airflow_mlops.artifacts import VersionedDocument

    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket="state")
    _swap_round(VersionedDocument("s3://state/p/_state/doc.json", s3_client=client))
