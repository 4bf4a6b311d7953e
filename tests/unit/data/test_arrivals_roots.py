"""A new-data watch stays under the allowed roots, even when its folder is swapped for a link."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from airflow_mlops.data.arrivals import NewDataWatch, WatchConfig
from airflow_mlops.exceptions import OutsideAllowedRootsError
from airflow_mlops.triggers.new_data import NewDataTrigger


def test_a_watched_folder_that_leads_out_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "in").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.csv").write_text("x\n1\n")
    (root / "link").symlink_to(outside, target_is_directory=True)
    roots = (str(root),)
    with pytest.raises(OutsideAllowedRootsError, match="new-data location"):
        WatchConfig(
            location=str(root / "link"), pattern="*.csv", state_uri=str(tmp_path / "s"), allowed_roots=roots
        )
    with pytest.raises(OutsideAllowedRootsError):
        NewDataTrigger(location=str(root / "link"), state_uri=str(tmp_path / "s"), allowed_roots=list(roots))

    # Checked on every listing too: the folder is replaced by a link after the watch was built.
    watch = NewDataWatch(
        WatchConfig(
            location=str(root / "in"), pattern="*.csv", state_uri=str(tmp_path / "s"), allowed_roots=roots
        )
    )
    assert watch.list().objects == ()
    shutil.rmtree(root / "in")
    (root / "in").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutsideAllowedRootsError):
        watch.list()


def test_the_trigger_serializes_its_roots(tmp_path: Path) -> None:
    trigger = NewDataTrigger(
        location=str(tmp_path), state_uri=str(tmp_path / "s"), allowed_roots=[str(tmp_path)]
    )
    _, kwargs = trigger.serialize()
    assert kwargs["allowed_roots"] == [str(tmp_path)]
    assert NewDataTrigger(**kwargs) == trigger
