"""A new-data listing walks the folder its roots check resolved and follows no link at any depth,
even one swapped in while it walks; the files it hashes are opened as they were listed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import airflow_mlops.data.arrivals as arrivals
import airflow_mlops.data.listing as listing
from airflow_mlops.data.arrivals import NewDataWatch, WatchConfig, Watermark, list_local
from airflow_mlops.exceptions import OutsideAllowedRootsError


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    root, outside = (tmp_path / "root").resolve(), (tmp_path / "outside").resolve()
    (root / "in" / "day").mkdir(parents=True)
    (outside / "day").mkdir(parents=True)
    (root / "in" / "day" / "a.csv").write_text("x\n1\n")
    (outside / "day" / "secret.csv").write_text("x\n2\n")
    (outside / "top.csv").write_text("x\n3\n")
    return {"root": root, "outside": outside, "tmp": tmp_path.resolve()}


def watch(tree: dict[str, Path], location: str, **kwargs: Any) -> NewDataWatch:
    return NewDataWatch(
        WatchConfig(
            location=location,
            pattern="**/*.csv",
            state_uri=str(tree["tmp"] / "state"),
            allowed_roots=(str(tree["root"]),),
            **kwargs,
        )
    )


def test_the_folder_listed_is_the_one_checked(tree: dict[str, Path]) -> None:
    # Decoded (as the check decodes it) this is root/in; read literally, a folder under outside/.
    literal = tree["outside"] / "x%2f..%2f..%2froot" / "in"
    literal.mkdir(parents=True)
    (literal / "planted.csv").write_text("x\n9\n")
    location = f"file://{tree['outside']}/x%2f..%2f..%2froot/in"
    uris = [o.uri for o in watch(tree, location).list().objects]
    assert uris == [str(tree["root"] / "in" / "day" / "a.csv")]
    assert [o.key for o in list_local(location, "**/*.csv").objects] == ["day/a.csv"]


def test_links_below_the_folder_are_never_followed(tree: dict[str, Path]) -> None:
    (tree["root"] / "in" / "out").symlink_to(tree["outside"], target_is_directory=True)
    (tree["root"] / "in" / "day" / "leak.csv").symlink_to(tree["outside"] / "top.csv")
    keys = [o.key for o in watch(tree, str(tree["root"] / "in")).list().objects]
    assert keys == ["day/a.csv"]


def test_a_folder_swapped_for_a_link_during_the_walk_is_not_entered(
    tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = listing._scan

    def scan_then_swap(fd: int, folder: str, rel: str, *args: Any) -> Any:
        found = list(real(fd, folder, rel, *args))
        if rel == "":  # the top folder was read: its subfolder is replaced before it is entered
            shutil.move(str(tree["root"] / "in" / "day"), str(tree["root"] / "day.old"))
            (tree["root"] / "in" / "day").symlink_to(tree["outside"] / "day", target_is_directory=True)
        yield from found

    monkeypatch.setattr(listing, "_scan", scan_then_swap)
    objects = watch(tree, str(tree["root"] / "in")).list().objects
    assert all("secret" not in o.uri for o in objects)


def test_the_watched_folder_swapped_after_its_check_is_refused(
    tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = watch(tree, str(tree["root"] / "in"))
    real = WatchConfig.check_location

    def check_then_swap(self: WatchConfig) -> str:
        resolved = real(self)
        shutil.move(str(tree["root"] / "in"), str(tree["root"] / "in.old"))
        (tree["root"] / "in").symlink_to(tree["outside"], target_is_directory=True)
        return resolved

    monkeypatch.setattr(WatchConfig, "check_location", check_then_swap)
    with pytest.raises(OutsideAllowedRootsError, match="changed after it was checked"):
        w.list()


def test_a_listed_file_swapped_for_a_link_is_not_hashed(
    tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = watch(tree, str(tree["root"] / "in"), with_sha256=True)
    real = arrivals.new_objects

    def list_then_swap(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        target = tree["root"] / "in" / "day" / "a.csv"
        target.unlink()
        target.symlink_to(tree["outside"] / "top.csv")
        return result

    monkeypatch.setattr(arrivals, "new_objects", list_then_swap)
    with pytest.raises(OutsideAllowedRootsError):
        w.poll(Watermark.empty(w.config.location, w.config.pattern))
