"""What is opened is what was checked: no link followed between the check and the open, a store
that is the checked folder, refs read only from the store or the roots, and roots that cannot be
misread (relative at run time, empty)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from airflow_mlops.allowed_roots import (
    ENV_VAR,
    OutsideAllowedRootsError,
    check_runtime,
    ensure_within_roots,
    open_resolved,
    open_resolved_dir,
)
from airflow_mlops.artifacts import ArtifactRef, ArtifactStore, sha256_directory, sha256_file
from airflow_mlops.data.io import read_source, read_table
from airflow_mlops.exceptions import ArtifactError, ArtifactIntegrityError, DataError


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "in").mkdir(parents=True)
    outside.mkdir()
    frame = pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]})
    frame.to_csv(root / "in" / "a.csv", index=False)
    pd.DataFrame({"x": [9], "y": [9]}).to_csv(outside / "a.csv", index=False)
    return {"root": root.resolve(), "outside": outside.resolve(), "tmp": tmp_path.resolve()}


def swap_for_link(folder: Path, target: Path) -> None:
    """Replace ``folder`` by a symbolic link to ``target`` (what an attacker does after a check)."""
    shutil.move(str(folder), str(folder) + ".old")
    folder.symlink_to(target, target_is_directory=True)


# -- check, then open: a link swapped in between is refused -------------------------------------


def test_a_folder_swapped_for_a_link_after_the_check_is_not_read(tree: dict[str, Path]) -> None:
    checked = ensure_within_roots(str(tree["root"] / "in" / "a.csv"), [str(tree["root"])])
    swap_for_link(tree["root"] / "in", tree["outside"])
    with pytest.raises(OutsideAllowedRootsError, match="changed after it was checked"):
        open_resolved(checked)
    with pytest.raises(OutsideAllowedRootsError, match="changed after it was checked"):
        read_table(checked, checked=True)


def test_a_file_swapped_for_a_link_after_the_check_is_not_read(tree: dict[str, Path]) -> None:
    checked = ensure_within_roots(str(tree["root"] / "in" / "a.csv"), [str(tree["root"])])
    os.unlink(checked)
    os.symlink(tree["outside"] / "a.csv", checked)
    with pytest.raises(OutsideAllowedRootsError, match="symbolic link"):
        read_table(checked, checked=True)


def test_read_source_opens_what_it_checked(tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The swap happens right after the check returns: the open still refuses."""
    import airflow_mlops.allowed_roots as roots_module

    real = roots_module.check_runtime

    def check_then_swap(*args: object, **kwargs: object) -> str:
        resolved = real(*args, **kwargs)  # type: ignore[arg-type]
        swap_for_link(tree["root"] / "in", tree["outside"])
        return resolved

    monkeypatch.setattr(roots_module, "check_runtime", check_then_swap)
    with pytest.raises(OutsideAllowedRootsError):
        read_source(str(tree["root"] / "in" / "a.csv"), tree["tmp"], allowed_roots=[str(tree["root"])])


def test_special_files_and_folders_are_not_opened_as_data(tree: dict[str, Path]) -> None:
    fifo = tree["root"] / "in" / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(OutsideAllowedRootsError, match="not a regular file"):
        open_resolved(str(fifo))  # and it does not block
    with pytest.raises(DataError, match="not a regular file"):
        read_table(fifo)
    with pytest.raises(IsADirectoryError):
        open_resolved(str(tree["root"] / "in"))
    with pytest.raises(NotADirectoryError):
        os.close(open_resolved_dir(str(tree["root"] / "in" / "a.csv")))
    partitioned = tree["root"] / "in" / "part.parquet"
    partitioned.mkdir()
    with pytest.raises(DataError, match="partitioned dataset"):
        read_table(partitioned)


# -- roots that cannot be misread ----------------------------------------------------------------


@pytest.mark.parametrize("root", [".", "data", "./in", "in/.."])
def test_a_relative_root_is_refused_where_tasks_run(
    tree: dict[str, Path], root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree["root"])  # wherever the worker runs, a relative root would follow it
    inside = str(tree["root"] / "in" / "a.csv")
    with pytest.raises(OutsideAllowedRootsError, match="relative path"):
        check_runtime(inside, None, environ={ENV_VAR: root})
    with pytest.raises(OutsideAllowedRootsError, match="relative path"):
        check_runtime(inside, [root], environ={})


@pytest.mark.parametrize("roots", [[""], ["  "], ["/nonexistent", ""]])
def test_an_empty_root_never_means_anywhere(tree: dict[str, Path], roots: list[str]) -> None:
    with pytest.raises(OutsideAllowedRootsError, match="empty"):
        ensure_within_roots("/etc/hostname", roots)
    with pytest.raises(OutsideAllowedRootsError, match="empty"):
        check_runtime("/etc/hostname", roots, environ={})


def test_a_root_of_slash_allows_everything_it_names(tree: dict[str, Path]) -> None:
    assert ensure_within_roots(str(tree["outside"] / "a.csv"), ["/"]) == str(tree["outside"] / "a.csv")


@pytest.mark.parametrize(
    "variant",
    [
        "{out}/a.csv",  # absolute path from a dag_run.conf
        "{root}/in/../../outside/a.csv",
        "{root}/in/./../../outside/a.csv/.",
        "file://{root}/in/%2e%2e/%2e%2e/outside/a.csv",
        "file://{root}/in/%2E%2E%2F%2E%2E%2Foutside/a.csv",
        "file://localhost{out}/a.csv",
        "file:{out}/a.csv",  # no `//`: not a file URI
        "file:///{root}/in/a.csv%00.csv",
        "{root}/in/a.csv\x00",
        "FILE://{out}/a.csv",
        "file://evil.example{root}/in/a.csv",
        "{root}/in/a.csv?x=../../outside/a.csv",  # a plain path: literal, so no such file
        "http://{root}/in/a.csv",
        "~{user}/../../{out}/a.csv",
    ],
)
def test_path_variants_are_refused_or_stay_inside(tree: dict[str, Path], variant: str) -> None:
    """Every spelling either fails the check or names (and opens) a file inside the root."""
    import getpass

    location = variant.format(root=tree["root"], out=tree["outside"], user=getpass.getuser())
    roots = [str(tree["root"])]
    try:
        resolved = ensure_within_roots(location, roots)
    except OutsideAllowedRootsError:
        return
    assert resolved.startswith(str(tree["root"]) + os.sep)
    with pytest.raises(DataError):  # inside, but no such file: nothing outside was opened
        read_table(resolved, "csv", checked=True)


@pytest.mark.parametrize(
    "variant", ["{root}/in/%2e%2e/a.csv", "{root}/in/%252e%252e/a.csv", "{root}/in\\..\\..\\a.csv"]
)
def test_encoded_and_backslashed_plain_paths_are_literal_names(tree: dict[str, Path], variant: str) -> None:
    location = variant.format(root=tree["root"])
    assert ensure_within_roots(location, [str(tree["root"])]).startswith(str(tree["root"]))


def test_unicode_lookalikes_and_case_are_not_folded(tree: dict[str, Path]) -> None:
    roots = [str(tree["root"])]
    fullwidth = str(tree["root"]) + "/in\uff0f..\uff0f..\uff0foutside"  # FULLWIDTH SOLIDUS: a name
    assert ensure_within_roots(fullwidth, roots).startswith(str(tree["root"]) + os.sep)
    upper = str(tree["root"]).upper() + "/in/a.csv"  # another folder on a case-sensitive system
    if not os.path.exists(upper):
        with pytest.raises(OutsideAllowedRootsError):
            ensure_within_roots(upper, roots)


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/data/../secret/x.csv",
        "s3://bucket/data/./x.csv",
        "s3://bucket/data//x.csv",
        "s3://other/data/x.csv",
        "s3://bucket/data-evil/x.csv",
        "s3://Bucket/data/x.csv",
        "S3://bucket/data/x.csv",
        "s3:/bucket/data/x.csv",
    ],
)
def test_s3_variants_outside_an_s3_root_are_refused(uri: str) -> None:
    try:
        result = ensure_within_roots(uri, ["s3://bucket/data"])
    except OutsideAllowedRootsError:
        return
    assert not result.startswith("s3://")  # `s3:/x` is a relative local file name, never S3


# -- the artifact store is the folder that was checked --------------------------------------------


def test_the_store_root_is_decoded_as_the_check_decodes_it(tree: dict[str, Path]) -> None:
    # Decoded: root/store (allowed). Taken literally, it would be a folder under outside/.
    uri = f"file://{tree['outside']}/a%2f..%2f..%2froot/store"
    assert ensure_within_roots(uri, [str(tree["root"])]) == str(tree["root"] / "store")
    store = ArtifactStore(uri)
    ref = store.put_file(tree["root"] / "in" / "a.csv", "p/r/s/a.csv")
    assert ref.uri == str(tree["root"] / "store" / "p" / "r" / "s" / "a.csv")
    assert not (tree["outside"] / "a%2f..%2f..%2froot").exists()
    with pytest.raises(ArtifactError, match="not a local artifact location"):
        ArtifactStore("gs://bucket/x")


def test_a_ref_is_fetched_from_its_decoded_path_not_a_literal_twin(tree: dict[str, Path]) -> None:
    store = ArtifactStore(str(tree["root"] / "store"))
    twin = tree["outside"] / "a%2f..%2f..%2froot" / "store"  # the URI read literally
    twin.mkdir(parents=True)
    shutil.copy(tree["outside"] / "a.csv", twin / "a.csv")
    uri = f"file://{tree['outside']}/a%2f..%2f..%2froot/store/a.csv"
    ref = ArtifactRef(uri, sha256_file(twin / "a.csv"), 1, "text/csv")
    with pytest.raises(ArtifactError, match="does not exist"):  # root/store/a.csv: not there
        store.fetch(ref, tree["tmp"] / "scratch")
    assert not (tree["tmp"] / "scratch" / "a.csv").exists()


def test_a_directory_artifact_holding_a_link_is_refused_before_copying(tree: dict[str, Path]) -> None:
    model = tree["root"] / "store" / "model"
    model.mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"w")
    (model / "leak.csv").symlink_to(tree["outside"] / "a.csv")
    digest, size = sha256_directory(model)  # as a forger would compute it
    ref = ArtifactRef(str(model), digest, size, "inode/directory")
    store = ArtifactStore(str(tree["root"] / "store"))
    with pytest.raises(ArtifactIntegrityError, match="symbolic link"):
        store.fetch(ref, tree["tmp"] / "scratch")
    assert not (tree["tmp"] / "scratch" / "model" / "leak.csv").exists()
    (model / "leak.csv").unlink()
    (model / "sub").mkdir()
    (model / "sub" / "up").symlink_to(tree["outside"], target_is_directory=True)
    with pytest.raises(ArtifactIntegrityError, match="symbolic link"):
        store.fetch(ArtifactRef(str(model), *sha256_directory(model), "inode/directory"), tree["tmp"] / "s2")


def test_a_clean_directory_artifact_is_copied_whole(tree: dict[str, Path]) -> None:
    model = tree["root"] / "store" / "model"
    (model / "sub" / "empty").mkdir(parents=True)
    (model / "a.bin").write_bytes(b"a")
    (model / "sub" / "b.bin").write_bytes(b"b")
    ref = ArtifactRef(str(model), *sha256_directory(model), "inode/directory")
    out = ArtifactStore(str(tree["root"] / "store")).fetch(ref, tree["tmp"] / "scratch")
    assert (out / "sub" / "b.bin").read_bytes() == b"b" and (out / "sub" / "empty").is_dir()


class _FakeS3:
    """Lists one directory artifact whose objects include a key with `..` segments."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.downloaded: list[str] = []

    def get_paginator(self, _name: str) -> _FakeS3:
        return self

    def paginate(self, **_kwargs: object) -> list[dict[str, object]]:
        return [{"Contents": [{"Key": k, "Size": 1} for k in self.keys]}]

    def download_file(self, _bucket: str, key: str, target: str) -> None:
        self.downloaded.append(target)
        Path(target).write_bytes(b"x")


def test_an_s3_directory_object_with_dot_dot_is_not_written_outside(tree: dict[str, Path]) -> None:
    fake = _FakeS3(["store/model/w.bin", "store/model/../../../escaped.bin"])
    store = ArtifactStore("s3://bucket/store", s3_client=fake)
    ref = ArtifactRef("s3://bucket/store/model", "0" * 64, 2, "inode/directory")
    with pytest.raises(ArtifactIntegrityError, match=r"'\.\.' segment"):
        store.fetch(ref, tree["tmp"] / "scratch" / "deep")
    assert not any(p.endswith("escaped.bin") for p in fake.downloaded)
    assert not (tree["tmp"] / "escaped.bin").exists()


@pytest.mark.parametrize("uri", ["s3://bucket/data/..", "s3://bucket/data/.", "s3://bucket/data/"])
def test_an_s3_source_must_name_an_object(tree: dict[str, Path], uri: str) -> None:
    with pytest.raises(DataError, match="does not name an object"):
        read_source(uri, tree["tmp"], "csv", s3_client=_FakeS3([]))
