"""The allowed-roots check: every way a path can leave a root, and the ways it may not; what is
opened is what was checked (no link followed between the check and the open), and roots that
cannot be misread (relative at run time, empty)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_mlops.allowed_roots import (
    ENV_VAR,
    OutsideAllowedRootsError,
    check_runtime,
    ensure_narrowing,
    ensure_within_roots,
    local_path,
    open_resolved,
    open_resolved_dir,
)
from airflow_mlops.data.io import read_table
from airflow_mlops.exceptions import DataError, is_retryable
from tests.unit.core.open_helpers import swap_for_link


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """``root/`` (allowed) with a file, ``outside/`` with a secret, ``root-evil/`` beside root."""
    root, outside, evil = tmp_path / "root", tmp_path / "outside", tmp_path / "root-evil"
    for folder in (root / "in", outside, evil):
        folder.mkdir(parents=True)
    (root / "in" / "a.csv").write_text("x\n1\n")
    (outside / "secret.csv").write_text("x\n2\n")
    (evil / "b.csv").write_text("x\n3\n")
    return {"root": root, "outside": outside, "evil": evil, "tmp": tmp_path}


def refused(location: str | Path, roots: list[str], **kwargs: object) -> OutsideAllowedRootsError:
    with pytest.raises(OutsideAllowedRootsError) as info:
        ensure_within_roots(location, roots, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_a_file_inside_comes_back_resolved(tree: dict[str, Path]) -> None:
    roots = [str(tree["root"])]
    inside = tree["root"] / "in" / "a.csv"
    assert ensure_within_roots(str(inside), roots) == str(inside.resolve())
    assert ensure_within_roots(str(tree["root"]), roots) == str(tree["root"].resolve())  # the root itself
    # `..` that stays inside is fine: it is where the path leads that counts
    assert ensure_within_roots(f"{tree['root']}/in/../in/a.csv", roots) == str(inside.resolve())


def test_dot_dot_out_of_the_root_is_refused_and_final(tree: dict[str, Path]) -> None:
    err = refused(f"{tree['root']}/in/../../outside/secret.csv", [str(tree["root"])], what="data.source")
    assert not is_retryable(err) and isinstance(err, DataError)
    text = str(err)
    assert "data.source" in text and str(tree["outside"] / "secret.csv") in text  # the resolved path
    assert str(tree["root"]) in text  # the allowed roots


def test_a_sibling_sharing_the_roots_name_is_not_inside(tree: dict[str, Path]) -> None:
    refused(tree["evil"] / "b.csv", [str(tree["root"])])
    refused(tree["evil"], [str(tree["root"]) + "/"])  # a trailing slash on the root changes nothing


def test_symlinked_file_folder_and_chain_leading_out_are_refused(tree: dict[str, Path]) -> None:
    root, outside = tree["root"], tree["outside"]
    roots = [str(root)]
    (root / "file-link.csv").symlink_to(outside / "secret.csv")
    (root / "dir-link").symlink_to(outside, target_is_directory=True)
    (root / "hop2").symlink_to(outside / "secret.csv")
    (root / "hop1").symlink_to(root / "hop2")  # a chain: in -> in -> out
    (root / "in" / "escape").symlink_to(outside)  # a folder inside holding a link out
    for path in ("file-link.csv", "dir-link", "dir-link/secret.csv", "hop1", "in/escape/secret.csv"):
        err = refused(root / path, roots)
        assert str((outside / "secret.csv").resolve()) in str(err) or str(outside.resolve()) in str(err)
    # A link that stays inside is followed and allowed.
    (root / "ok-link.csv").symlink_to(root / "in" / "a.csv")
    assert ensure_within_roots(root / "ok-link.csv", roots) == str((root / "in" / "a.csv").resolve())


def test_a_root_that_is_a_link_is_judged_by_its_target(tree: dict[str, Path]) -> None:
    alias = tree["tmp"] / "alias"
    alias.symlink_to(tree["root"], target_is_directory=True)
    assert ensure_within_roots(tree["root"] / "in" / "a.csv", [str(alias)])
    refused(tree["outside"] / "secret.csv", [str(alias)])


def test_relative_paths_resolve_against_base_or_the_working_directory(
    tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    roots = [str(tree["root"])]
    assert ensure_within_roots("in/a.csv", roots, base=tree["root"]) == str(tree["root"] / "in" / "a.csv")
    refused("../outside/secret.csv", roots, base=tree["root"])
    monkeypatch.chdir(tree["root"] / "in")
    assert ensure_within_roots("a.csv", roots) == str(tree["root"] / "in" / "a.csv")
    refused("../../outside/secret.csv", roots)


def test_file_uris_are_decoded_plain_paths_are_literal(tree: dict[str, Path]) -> None:
    root = tree["root"]
    roots = [str(root)]
    assert ensure_within_roots(f"file://{root}/in/a.csv", roots) == str(root / "in" / "a.csv")
    assert ensure_within_roots(f"file://localhost{root}/in/a.csv", roots) == str(root / "in" / "a.csv")
    for encoded in ("%2e%2e", "%2E%2E", ".%2e", "%2e."):
        refused(f"file://{root}/in/{encoded}/{encoded}/outside/secret.csv", roots)
    refused(f"file://{root}/in/..%2f..%2foutside/secret.csv", roots)  # an encoded slash decodes too
    # A plain path is opened literally: `%2e%2e` is a folder of that name, inside the root.
    literal = f"{root}/in/%2e%2e/%2e%2e/outside/secret.csv"
    assert ensure_within_roots(literal, roots) == literal
    assert local_path(f"file://{root}/a%20b.csv") == f"{root}/a b.csv"


@pytest.mark.parametrize(
    "location",
    [
        "file://otherhost/etc/passwd",  # another machine's path
        "file:relative/x.csv",
        "file:///data/x.csv?x=1",
        "http://example.com/x.csv",
        "gs://bucket/x.csv",
        "/data/x\x00.csv",
        "file:///data/x%00.csv",
    ],
)
def test_locations_that_cannot_be_judged_are_refused(location: str) -> None:
    refused(location, ["/data"])


def test_s3_policy(tree: dict[str, Path]) -> None:
    local = [str(tree["root"])]
    # Roots that name only local folders allow no bucket.
    with pytest.raises(
        OutsideAllowedRootsError, match=r"is in S3, but the allowed roots name no s3:// location"
    ):
        ensure_within_roots("s3://any/thing.csv", local)
    # No roots at all: nothing is restricted.
    assert ensure_within_roots("s3://any/thing.csv", []) == "s3://any/thing.csv"
    roots = [*local, "s3://bucket/data"]
    assert ensure_within_roots("s3://bucket/data/x.csv", roots) == "s3://bucket/data/x.csv"
    refused("s3://bucket/data-evil/x.csv", roots)
    refused("s3://other/data/x.csv", roots)
    refused("s3://bucket/data/../secret/x.csv", roots)
    refused("s3://bucket/data//x.csv", roots)
    # A local path is still judged by the local roots.
    refused(tree["outside"] / "secret.csv", roots)


def test_no_roots_means_no_restriction_but_the_path_is_still_resolved(tree: dict[str, Path]) -> None:
    link = tree["tmp"] / "link.csv"
    link.symlink_to(tree["outside"] / "secret.csv")
    assert ensure_within_roots(link, []) == str((tree["outside"] / "secret.csv").resolve())
    assert ensure_within_roots(link, None) == str((tree["outside"] / "secret.csv").resolve())


def test_check_runtime_also_enforces_the_variable(tree: dict[str, Path]) -> None:
    inside = str(tree["root"] / "in" / "a.csv")
    env = {ENV_VAR: f"{tree['root'] / 'in'}{os.pathsep}{tree['evil']}"}
    assert check_runtime(inside, None, environ=env) == inside
    assert check_runtime(inside, [str(tree["root"])], environ=env) == inside
    with pytest.raises(OutsideAllowedRootsError):  # inside the task's roots, outside the variable's
        check_runtime(str(tree["root"] / "x.csv"), [str(tree["root"])], environ=env)
    with pytest.raises(OutsideAllowedRootsError):  # inside the variable's, outside the task's
        check_runtime(str(tree["evil"] / "b.csv"), [str(tree["root"])], environ=env)
    assert check_runtime(str(tree["outside"]), None, environ={}) == str(tree["outside"].resolve())


def test_narrowing(tree: dict[str, Path]) -> None:
    root = str(tree["root"])
    assert ensure_narrowing([f"{root}/in", root], [root]) == []
    assert ensure_narrowing([str(tree["evil"])], [root]) == [str(tree["evil"])]
    assert ensure_narrowing([f"{root}/../outside"], [root]) == [f"{root}/../outside"]
    link = tree["root"] / "in" / "out-link"
    link.symlink_to(tree["outside"], target_is_directory=True)
    assert ensure_narrowing([str(link)], [root]) == [str(link)]  # a link inside that leads out
    assert ensure_narrowing(["s3://b/data/team"], ["s3://b/data"]) == []
    assert ensure_narrowing(["s3://b/data-evil"], ["s3://b/data"]) == ["s3://b/data-evil"]
    assert ensure_narrowing(["s3://b/data"], [root]) == ["s3://b/data"]  # S3 where only local was allowed


# -- check, then open: a link swapped in between is refused -------------------------------------


def test_a_folder_swapped_for_a_link_after_the_check_is_not_read(open_tree: dict[str, Path]) -> None:
    checked = ensure_within_roots(str(open_tree["root"] / "in" / "a.csv"), [str(open_tree["root"])])
    swap_for_link(open_tree["root"] / "in", open_tree["outside"])
    with pytest.raises(OutsideAllowedRootsError, match="changed after it was checked"):
        open_resolved(checked)
    with pytest.raises(OutsideAllowedRootsError, match="changed after it was checked"):
        read_table(checked, checked=True)


def test_special_files_and_folders_are_not_opened_as_data(open_tree: dict[str, Path]) -> None:
    fifo = open_tree["root"] / "in" / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(OutsideAllowedRootsError, match="not a regular file"):
        open_resolved(str(fifo))  # and it does not block
    with pytest.raises(DataError, match="not a regular file"):
        read_table(fifo)
    with pytest.raises(IsADirectoryError):
        open_resolved(str(open_tree["root"] / "in"))
    with pytest.raises(NotADirectoryError):
        os.close(open_resolved_dir(str(open_tree["root"] / "in" / "a.csv")))
    partitioned = open_tree["root"] / "in" / "part.parquet"
    partitioned.mkdir()
    with pytest.raises(DataError, match="partitioned dataset"):
        read_table(partitioned)


# -- roots that cannot be misread ----------------------------------------------------------------


@pytest.mark.parametrize("root", [".", "data", "./in", "in/.."])
def test_a_relative_root_is_refused_where_tasks_run(
    open_tree: dict[str, Path], root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(open_tree["root"])  # wherever the worker runs, a relative root would follow it
    inside = str(open_tree["root"] / "in" / "a.csv")
    with pytest.raises(OutsideAllowedRootsError, match="relative path"):
        check_runtime(inside, None, environ={ENV_VAR: root})
    with pytest.raises(OutsideAllowedRootsError, match="relative path"):
        check_runtime(inside, [root], environ={})


@pytest.mark.parametrize("roots", [[""], ["  "], ["/nonexistent", ""]])
def test_an_empty_root_never_means_anywhere(open_tree: dict[str, Path], roots: list[str]) -> None:
    with pytest.raises(OutsideAllowedRootsError, match="empty"):
        ensure_within_roots("/etc/hostname", roots)
    with pytest.raises(OutsideAllowedRootsError, match="empty"):
        check_runtime("/etc/hostname", roots, environ={})


def test_a_root_of_slash_allows_everything_it_names(open_tree: dict[str, Path]) -> None:
    assert ensure_within_roots(str(open_tree["outside"] / "a.csv"), ["/"]) == str(
        open_tree["outside"] / "a.csv"
    )


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
def test_path_variants_are_refused_or_stay_inside(open_tree: dict[str, Path], variant: str) -> None:
    """Every spelling either fails the check or names (and opens) a file inside the root."""
    import getpass

    location = variant.format(root=open_tree["root"], out=open_tree["outside"], user=getpass.getuser())
    roots = [str(open_tree["root"])]
    try:
        resolved = ensure_within_roots(location, roots)
    except OutsideAllowedRootsError:
        return
    assert resolved.startswith(str(open_tree["root"]) + os.sep)
    with pytest.raises(DataError):  # inside, but no such file: nothing outside was opened
        read_table(resolved, "csv", checked=True)


@pytest.mark.parametrize(
    "variant", ["{root}/in/%2e%2e/a.csv", "{root}/in/%252e%252e/a.csv", "{root}/in\\..\\..\\a.csv"]
)
def test_encoded_and_backslashed_plain_paths_are_literal_names(
    open_tree: dict[str, Path], variant: str
) -> None:
    location = variant.format(root=open_tree["root"])
    assert ensure_within_roots(location, [str(open_tree["root"])]).startswith(str(open_tree["root"]))


def test_unicode_lookalikes_and_case_are_not_folded(open_tree: dict[str, Path]) -> None:
    roots = [str(open_tree["root"])]
    fullwidth = str(open_tree["root"]) + "/in\uff0f..\uff0f..\uff0foutside"  # FULLWIDTH SOLIDUS: a name
    assert ensure_within_roots(fullwidth, roots).startswith(str(open_tree["root"]) + os.sep)
    upper = str(open_tree["root"]).upper() + "/in/a.csv"  # another folder on a case-sensitive system
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
