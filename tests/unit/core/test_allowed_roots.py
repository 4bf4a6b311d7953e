"""The allowed-roots check on its own: every way a path can leave a root, and the ways it may not."""

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
)
from airflow_mlops.exceptions import DataError, is_retryable


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
