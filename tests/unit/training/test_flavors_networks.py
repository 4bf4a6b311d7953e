"""The built-in network's flavor: the safetensors-only loader of a trained network."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from airflow_mlops.exceptions import ArtifactError, DataError
from airflow_mlops.training.flavors import CONFIG_FILE, WEIGHTS_FILES, load_predictor
from airflow_mlops.training.trainer import train


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, make_frame) -> Path:
    out = tmp_path_factory.mktemp("model") / "m"
    config = {
        "target": "label",
        "features": ["amount", "age", "hour", "merchant"],
        "positive_label": 1,
        "params": {"epochs": 3, "lr": 0.01, "batch_size": 128, "hidden_units": [8], "dropout": 0.0},
        "seed": 3,
        "device": "cpu",
    }
    train(make_frame(500, 30), config, out)
    return out


@pytest.fixture
def model_copy(model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(model_dir, target)
    return target


def edit_config(directory: Path, **changes) -> None:
    path = directory / CONFIG_FILE
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


# --- load_predictor -------------------------------------------------------------------------------


def test_load_predictor_never_unpickles(model_dir: Path, make_frame, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("the loader must not unpickle")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)

    predictor = load_predictor(model_dir)
    scores = predictor.predict_proba(make_frame(50, 31))

    assert scores.shape == (50,)
    assert scores.dtype == np.float64
    assert ((scores > 0) & (scores < 1)).all()
    assert not predictor.backend.model.training


def test_predictions_match_between_loads(model_dir: Path, make_frame) -> None:
    df = make_frame(100, 32)
    np.testing.assert_array_equal(
        load_predictor(model_dir).predict_proba(df), load_predictor(model_dir).predict_proba(df)
    )


def test_predicts_in_batches(model_dir: Path, make_frame, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_mlops.training import flavors

    predictor = load_predictor(model_dir)
    df = make_frame(100, 33)
    whole = predictor.predict_proba(df)
    monkeypatch.setattr(flavors, "_PREDICT_CHUNK", 7)
    np.testing.assert_allclose(predictor.predict_proba(df), whole, rtol=1e-6)


def test_unknown_category_and_missing_values_still_predict(model_dir: Path, make_frame) -> None:
    df = make_frame(20, 34)
    df.loc[:9, "merchant"] = "casino"  # never seen in training
    df.loc[10:, "amount"] = np.nan
    scores = load_predictor(model_dir).predict_proba(df)
    assert np.isfinite(scores).all()


def test_extra_columns_and_column_order_do_not_matter(model_dir: Path, make_frame) -> None:
    df = make_frame(30, 35)
    predictor = load_predictor(model_dir)
    shuffled = df[["merchant", "label", "hour", "age", "amount"]].assign(extra=1)
    np.testing.assert_array_equal(predictor.predict_proba(shuffled), predictor.predict_proba(df))


def test_missing_column_raises_data_error_naming_it(model_dir: Path, make_frame) -> None:
    with pytest.raises(DataError, match="lacks feature column\\(s\\) 'merchant'"):
        load_predictor(model_dir).predict_proba(make_frame(10, 36).drop(columns="merchant"))


@pytest.mark.parametrize("version", [3, 0, "1", None, True])
def test_unknown_format_version_is_rejected(model_copy: Path, version) -> None:
    edit_config(model_copy, format_version=version)
    with pytest.raises(ArtifactError, match="unsupported format_version"):
        load_predictor(model_copy)


def test_pickled_weights_are_refused_not_loaded(model_copy: Path) -> None:
    """A pickle disguised as the safetensors file fails to parse; it is never unpickled."""
    state = {"net.0.weight": torch.zeros(1)}
    torch.save(state, model_copy / WEIGHTS_FILES["torch"])
    with pytest.raises(ArtifactError, match="not a readable safetensors file"):
        load_predictor(model_copy)


def test_weights_not_matching_the_architecture_are_refused(model_copy: Path) -> None:
    config = json.loads((model_copy / CONFIG_FILE).read_text())
    edit_config(model_copy, architecture={**config["architecture"], "hidden_units": [9]})
    with pytest.raises(ArtifactError, match="does not match the architecture"):
        load_predictor(model_copy)


def test_preprocessing_not_matching_the_network_is_refused(model_copy: Path) -> None:
    config = json.loads((model_copy / CONFIG_FILE).read_text())
    config["preprocessing"]["categorical"]["merchant"].append("casino")
    (model_copy / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="preprocessing yields 8 columns but the network expects 7"):
        load_predictor(model_copy)


def test_missing_files_and_malformed_config(model_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"model_config\.json not found"):
        load_predictor(tmp_path / "nowhere")
    edit_config(model_copy, preprocessing={"features": ["a"]})
    with pytest.raises(ArtifactError, match="is malformed"):
        load_predictor(model_copy)
    (model_copy / CONFIG_FILE).write_text("[1, 2")
    with pytest.raises(ArtifactError, match="is not valid JSON"):
        load_predictor(model_copy)
