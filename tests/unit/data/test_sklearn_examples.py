"""The task examples' data from scikit-learn's bundled datasets
(``airflow_mlops/data/sklearn_examples.py``): the frames, the drifted copy and the files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.data.sklearn_examples import (
    CLEAN_DAY,
    DATASETS,
    DRIFT_DAY,
    drift,
    load_frame,
    main,
    write_example,
)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_each_frame_has_identifier_columns_its_target_and_the_drift_columns(name: str) -> None:
    frame = load_frame(name)
    _, target, scaled = DATASETS[name]
    assert frame.columns[-1] == target
    features = [c for c in frame.columns if c != target]
    assert all(re.fullmatch(r"[A-Za-z][0-9A-Za-z_]*", c) for c in features), features
    assert len(set(features)) == len(features)
    assert set(scaled) <= set(features)
    assert all(frame[c].dtype == np.float64 for c in features)
    assert frame.notna().all().all()


def test_the_targets_are_coded_as_the_examples_read_them() -> None:
    cancer = load_frame("breast_cancer")["malignant"]
    # scikit-learn codes malignant as 0 (212 of 569 rows): here it is the positive class 1.
    assert cancer.dtype == np.int64 and cancer.value_counts().to_dict() == {0: 357, 1: 212}
    iris = load_frame("iris")["species"]
    assert iris.value_counts().to_dict() == {"setosa": 50, "versicolor": 50, "virginica": 50}
    assert sorted(load_frame("wine")["cultivar"].unique()) == [0, 1, 2]
    diabetes = load_frame("diabetes")["disease_progression"]
    assert diabetes.nunique() > 100  # a regression target


def test_digits_are_named_by_pixel() -> None:
    frame = load_frame("digits")
    assert [c for c in frame.columns if c.startswith("px_")] == [
        f"px_{r}_{c}" for r in range(8) for c in range(8)
    ]
    assert sorted(frame["digit"].unique()) == list(range(10))


def test_drift_scales_the_named_columns_only_and_leaves_the_input_alone() -> None:
    frame = load_frame("iris")
    before = frame.copy()
    moved = drift(frame, "iris")
    pd.testing.assert_frame_equal(frame, before)
    for column in frame.columns:
        if column in ("petal_length_cm", "petal_width_cm"):
            np.testing.assert_allclose(moved[column], frame[column] * 1.5)
        else:
            pd.testing.assert_series_equal(moved[column], frame[column])


def test_drift_of_digits_scales_every_pixel_not_the_label() -> None:
    frame = load_frame("digits").iloc[:50]
    moved = drift(frame, "digits")
    pixels = [c for c in frame.columns if c != "digit"]
    np.testing.assert_allclose(moved[pixels].to_numpy(), frame[pixels].to_numpy() * 1.5)
    pd.testing.assert_series_equal(moved["digit"], frame["digit"])


def test_write_example_splits_the_shuffled_rows_40_40_20_and_drifts_the_live_copy(tmp_path: Path) -> None:
    root = write_example("iris", tmp_path)
    assert root == tmp_path / "iris"
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))
    assert files == [
        f"live/{CLEAN_DAY}/batch.parquet",
        f"live/{DRIFT_DAY}/batch.parquet",
        "reference.parquet",
        f"train/{CLEAN_DAY}/batch.parquet",
    ]
    reference = pd.read_parquet(root / "reference.parquet")
    train = pd.read_parquet(root / "train" / CLEAN_DAY / "batch.parquet")
    live = pd.read_parquet(root / "live" / CLEAN_DAY / "batch.parquet")
    drifted = pd.read_parquet(root / "live" / DRIFT_DAY / "batch.parquet")
    assert (len(reference), len(train), len(live)) == (60, 60, 30)
    # Together the three parts are the dataset's rows, each once, shuffled (not in the loader's order).
    together = pd.concat([reference, train, live], ignore_index=True)
    frame = load_frame("iris")
    key = list(frame.columns)
    pd.testing.assert_frame_equal(
        together.sort_values(key).reset_index(drop=True), frame.sort_values(key).reset_index(drop=True)
    )
    assert not together.equals(frame)
    assert set(reference["species"]) == {"setosa", "versicolor", "virginica"}
    pd.testing.assert_frame_equal(drifted, drift(live, "iris"))


def test_write_example_is_deterministic(tmp_path: Path) -> None:
    a, b = write_example("wine", tmp_path / "a"), write_example("wine", tmp_path / "b")
    for path in a.rglob("*.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(b / path.relative_to(a)))


def test_main_writes_the_chosen_datasets_and_names_their_folders(tmp_path: Path, capsys) -> None:
    assert main(["--out", str(tmp_path), "--only", "iris", "wine"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "iris"), str(tmp_path / "wine")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iris", "wine"]


def test_main_refuses_an_unknown_dataset_and_a_missing_out(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--out", str(tmp_path), "--only", "mnist"])
    assert info.value.code == 2 and "invalid choice: 'mnist'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--only", "iris"])
    assert list(tmp_path.iterdir()) == []
