"""Tests for airflow_mlops.security.keygen: the key file names, the connection id check, writing a
pair (modes at creation, never through an existing file or link, no half pair, replacing with
``force``), the notes on the directory, and the printed connection instructions (never the key).

The command ``airflow-mlops keys generate`` end to end is tests/unit/core/test_cli_keys.py.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

import pytest

from airflow_mlops.connections import SIGNING_CONN_ID, SIGNING_CONN_TYPE
from airflow_mlops.security import keygen
from airflow_mlops.security.keygen import (
    GeneratedKeyPair,
    KeyGenerationError,
    check_conn_id,
    connection_instructions,
    directory_notes,
    key_paths,
    write_key_pair,
)
from airflow_mlops.security.keys import public_key_fingerprint, public_key_from_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# --- key_paths / check_conn_id -------------------------------------------------------------


def test_key_paths_are_name_pem_and_name_pub_pem_in_the_absolute_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    private, public = key_paths("keys", "signing_key")
    assert private == tmp_path / "keys" / "signing_key.pem"
    assert public == tmp_path / "keys" / "signing_key.pub.pem"
    assert private.is_absolute()


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../up", "nul\0byte", "-rf"])
def test_a_name_that_is_not_a_plain_file_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(KeyGenerationError, match="--name"):
        key_paths(tmp_path, name)


@pytest.mark.parametrize("conn_id", ["mlops_signing", "sign-e2e", "a.b:c/d", "x" * 250])
def test_connection_ids_airflow_accepts_are_returned_unchanged(conn_id: str) -> None:
    assert check_conn_id(conn_id) == conn_id


@pytest.mark.parametrize("conn_id", ["", "has space", "semi;colon", "x" * 251, "quote'd", "new\nline"])
def test_connection_ids_airflow_refuses_are_a_user_error(conn_id: str) -> None:
    with pytest.raises(KeyGenerationError, match="not an Airflow connection id"):
        check_conn_id(conn_id)


# --- write_key_pair ------------------------------------------------------------------------


def test_a_new_pair_is_one_key_pair_with_the_documented_modes(tmp_path: Path) -> None:
    out = tmp_path / "a" / "keys"

    pair = write_key_pair(out, "k")

    assert pair == GeneratedKeyPair(out / "k.pem", out / "k.pub.pem", pair.fingerprint, True, False)
    assert _mode(out) == keygen.DIRECTORY_MODE == 0o700
    assert _mode(pair.private_key) == 0o600 and _mode(pair.public_key) == 0o644
    public = pair.public_key.read_bytes()
    assert public_key_from_private(pair.private_key.read_bytes()) == public
    assert pair.fingerprint == public_key_fingerprint(public)


def test_an_existing_directory_is_used_as_it_is(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    pair = write_key_pair(tmp_path, "k")
    assert pair.created_directory is False
    assert _mode(tmp_path) == 0o755  # not narrowed: it is the caller's directory


def test_the_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)  # would strip the public key's read bits at creation
    try:
        pair = write_key_pair(tmp_path, "k")
    finally:
        os.umask(old)
    assert _mode(pair.public_key) == 0o644 and _mode(pair.private_key) == 0o600


def test_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(KeyGenerationError, match="exists and is not a directory"):
        write_key_pair(tmp_path / "file", "k")


@pytest.mark.parametrize("existing", ["k.pem", "k.pub.pem"])
def test_either_existing_file_refuses_the_pair_and_nothing_changes(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("in use")

    with pytest.raises(KeyGenerationError, match="refusing to overwrite") as err:
        write_key_pair(tmp_path, "k")

    assert "--force" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]
    assert (tmp_path / existing).read_text() == "in use"


def test_a_dangling_link_at_the_key_path_is_refused_and_its_target_not_created(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.pem"
    (tmp_path / "k.pem").symlink_to(target)
    with pytest.raises(KeyGenerationError, match="already exist"):
        write_key_pair(tmp_path, "k")
    assert not target.exists()


def test_a_file_appearing_after_the_check_is_still_never_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the existence check and the write another process creates the public key file:
    ``O_EXCL`` refuses it, and the private key just written is removed (no half pair)."""
    real_refuse = keygen._refuse_existing

    def refuse_then_race(paths: tuple[Path, ...]) -> None:
        real_refuse(paths)
        (tmp_path / "k.pub.pem").write_text("someone else's")

    monkeypatch.setattr(keygen, "_refuse_existing", refuse_then_race)

    with pytest.raises(KeyGenerationError, match="already exists; refusing to overwrite"):
        write_key_pair(tmp_path, "k")

    assert (tmp_path / "k.pub.pem").read_text() == "someone else's"
    assert not (tmp_path / "k.pem").exists()


def test_a_failed_write_leaves_no_half_pair_and_is_a_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_space_for_the_public_key(path: object, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(".pub.pem"):
            raise OSError(28, "No space left on device", str(path))
        return real_open(path, flags, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(keygen.os, "open", no_space_for_the_public_key)

    with pytest.raises(KeyGenerationError, match="No space left on device") as err:
        write_key_pair(tmp_path, "k")

    assert "--out" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_force_replaces_both_files_with_a_new_pair(tmp_path: Path) -> None:
    first = write_key_pair(tmp_path, "k")
    old_private = first.private_key.read_bytes()

    second = write_key_pair(tmp_path, "k", force=True)

    assert second.replaced is True and second.created_directory is False
    assert second.private_key.read_bytes() != old_private
    assert second.fingerprint != first.fingerprint
    assert public_key_from_private(second.private_key.read_bytes()) == second.public_key.read_bytes()
    assert _mode(second.private_key) == 0o600 and _mode(second.public_key) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pem", "k.pub.pem"]  # no temporary left


def test_force_without_existing_files_writes_a_new_pair_not_a_replacement(tmp_path: Path) -> None:
    pair = write_key_pair(tmp_path, "k", force=True)
    assert pair.replaced is False
    assert pair.private_key.is_file() and pair.public_key.is_file()


def test_force_replaces_a_link_itself_never_its_target(tmp_path: Path) -> None:
    target = tmp_path / "target.txt"
    target.write_text("not a key")
    (tmp_path / "k.pem").symlink_to(target)

    pair = write_key_pair(tmp_path, "k", force=True)

    assert pair.replaced is True
    assert target.read_text() == "not a key"
    assert not pair.private_key.is_symlink() and _mode(pair.private_key) == 0o600


def test_force_never_replaces_a_directory(tmp_path: Path) -> None:
    (tmp_path / "k.pub.pem").mkdir()
    with pytest.raises(KeyGenerationError, match="is a directory"):
        write_key_pair(tmp_path, "k", force=True)
    assert (tmp_path / "k.pub.pem").is_dir() and not (tmp_path / "k.pem").exists()


def test_a_failed_replacement_keeps_the_old_pair_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = write_key_pair(tmp_path, "k")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def fail(*_args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(keygen.os, "replace", fail)
    with pytest.raises(KeyGenerationError, match="Input/output error"):
        write_key_pair(tmp_path, "k", force=True)

    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert public_key_fingerprint(old.public_key.read_bytes()) == old.fingerprint


# --- directory_notes -----------------------------------------------------------------------


def test_notes_for_a_shared_directory_and_a_git_work_tree(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    notes = keygen.directory_notes(shared)
    assert any("writable by other users" in n for n in notes)
    shared.chmod(0o1777)  # sticky (like /tmp): others cannot replace our files
    assert not any("writable by other users" in n for n in keygen.directory_notes(shared))
    (tmp_path / ".git").mkdir()
    assert any("git work tree" in n for n in keygen.directory_notes(shared))


def test_a_private_directory_outside_a_work_tree_has_no_notes(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    if any((p / ".git").exists() for p in (private, *private.parents)):  # pragma: no cover
        pytest.skip("the temporary directory lies inside a git work tree")
    assert directory_notes(private) == []


def test_a_group_writable_directory_is_noted_with_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "group"
    shared.mkdir()
    shared.chmod(0o770)
    assert any("writable by other users (mode 0770)" in n for n in directory_notes(shared))


def test_a_missing_directory_has_no_mode_note(tmp_path: Path) -> None:
    assert not any("writable" in n for n in directory_notes(tmp_path / "missing"))


# --- connection_instructions -----------------------------------------------------------------


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> GeneratedKeyPair:
    return write_key_pair(tmp_path_factory.mktemp("with space") / "keys", "signing_key")


def _private_body(pair: GeneratedKeyPair) -> list[str]:
    return pair.private_key.read_text().splitlines()[1:-1]


def test_the_instructions_never_hold_the_private_key(pair: GeneratedKeyPair) -> None:
    text = connection_instructions(pair, "mlops_signing")
    for line in _private_body(pair):
        assert line not in text
    assert f'--conn-password "$(cat {shlex.quote(str(pair.private_key))})"' in text


def test_the_instructions_name_the_files_fingerprint_and_connection(pair: GeneratedKeyPair) -> None:
    text = connection_instructions(pair, SIGNING_CONN_ID)
    assert pair.fingerprint in text
    assert f"--public-key {shlex.quote(str(pair.public_key))}" in text  # quoted: the path has a space
    assert f"airflow connections add {SIGNING_CONN_ID} --conn-type {SIGNING_CONN_TYPE}" in text
    assert "export AIRFLOW_CONN_MLOPS_SIGNING=" in text
    # the verify-only connection carries the public key itself, JSON-escaped
    assert '"public_key": "-----BEGIN PUBLIC KEY-----\\n' in text
    assert "4. Point the pipeline spec" not in text  # the default connection needs no spec change
    assert text.endswith("\n") and "written:" in text


def test_another_connection_id_is_quoted_and_named_in_the_spec_step(pair: GeneratedKeyPair) -> None:
    text = connection_instructions(pair, "team.sign")
    assert "4. Point the pipeline spec at this connection:" in text
    assert 'connection: "team.sign"' in text
    # AIRFLOW_CONN_TEAM.SIGN is no shell variable name: no export line, and the reason why
    assert "export AIRFLOW_CONN_" not in text
    assert "AIRFLOW_CONN_TEAM.SIGN is not a shell variable name" in text


def test_a_replaced_pair_says_so(pair: GeneratedKeyPair) -> None:
    replaced = GeneratedKeyPair(pair.private_key, pair.public_key, pair.fingerprint, replaced=True)
    assert "the previous pair is replaced: update its connections" in connection_instructions(
        replaced, SIGNING_CONN_ID
    )
    assert "previous pair" not in connection_instructions(pair, SIGNING_CONN_ID)
