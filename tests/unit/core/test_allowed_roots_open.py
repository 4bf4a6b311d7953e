"""What is opened is what was checked, when a source is read (airflow_mlops.data.io): no link followed
between the check and the open, and an S3 source names an object."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_mlops.allowed_roots import OutsideAllowedRootsError, ensure_within_roots
from airflow_mlops.data.io import read_source, read_table
from airflow_mlops.exceptions import DataError
from tests.unit.core.open_helpers import _FakeS3, swap_for_link


def test_a_file_swapped_for_a_link_after_the_check_is_not_read(open_tree: dict[str, Path]) -> None:
    checked = ensure_within_roots(str(open_tree["root"] / "in" / "a.csv"), [str(open_tree["root"])])
    os.unlink(checked)
    os.symlink(open_tree["outside"] / "a.csv", checked)
    with pytest.raises(OutsideAllowedRootsError, match="symbolic link"):
        read_table(checked, checked=True)


def test_read_source_opens_what_it_checked(
    open_tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap happens right after the check returns: the open still refuses."""
    import airflow_mlops.allowed_roots as roots_module

    real = roots_module.check_runtime

    def check_then_swap(*args: object, **kwargs: object) -> str:
        resolved = real(*args, **kwargs)  # type: ignore[arg-type]
        swap_for_link(open_tree["root"] / "in", open_tree["outside"])
        return resolved

    monkeypatch.setattr(roots_module, "check_runtime", check_then_swap)
    with pytest.raises(OutsideAllowedRootsError):
        read_source(
            str(open_tree["root"] / "in" / "a.csv"), open_tree["tmp"], allowed_roots=[str(open_tree["root"])]
        )


@pytest.mark.parametrize("uri", ["s3://bucket/data/..", "s3://bucket/data/.", "s3://bucket/data/"])
def test_an_s3_source_must_name_an_object(open_tree: dict[str, Path], uri: str) -> None:
    with pytest.raises(DataError, match="does not name an object"):
        read_source(uri, open_tree["tmp"], "csv", s3_client=_FakeS3([]))
