"""Long stages log how far they are: items and bytes, throttled, with a final line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from airflow_mlops.artifacts import ArtifactStore
from airflow_mlops.progress import Progress, human_bytes


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_are_throttled_and_the_last_one_has_the_totals(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    logger = logging.getLogger("test.progress")
    progress = Progress(logger, "Copying", total_items=100, total_bytes=100 * 1024**2, every=10, clock=clock)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        for _ in range(100):
            clock.now += 1.0  # one file a second: a line every 10 files
            progress.advance(items=1, nbytes=1024**2)
        progress.done()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 11 and progress.lines == 11
    assert lines[0] == "Copying: in progress: 10/100 files, 10.0 MiB/100.0 MiB (10 %), 1.0 MiB/s, 10.0 s"
    assert lines[-1].startswith("Copying: done: 100/100 files, 100.0 MiB/100.0 MiB (100 %)")


@pytest.mark.parametrize(("n", "text"), [(0, "0 B"), (1536, "1.5 KiB"), (5 * 1024**3, "5.0 GiB")])
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


def test_storing_and_scanning_a_model_directory_log_files_and_bytes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_mlops.security.scanning import scan_model_dir

    model = tmp_path / "model"
    (model / "weights").mkdir(parents=True)
    (model / "weights" / "model.safetensors").write_bytes(b"\0" * 3000)
    (model / "MLmodel").write_text("flavors: {}\n")
    with caplog.at_level(logging.INFO):
        ArtifactStore(str(tmp_path / "store")).put_directory(model, "p/r/train/model")
        scan_model_dir(model)
    done = [r.getMessage() for r in caplog.records if ": done: " in r.getMessage()]
    assert any(m.startswith("Storing model -> ") and "2/2 files" in m and "2.9 KiB" in m for m in done), done
    assert any(m.startswith(f"Scanning model {model}") and "2 files" in m for m in done), done
