"""The built-in networks' fit: features encoded on the training rows, the loss of each task (its
class weights), a regression target scaled for training and unscaled in the outputs, and what
the fit returns to the trainer (outputs, metrics, the record)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from airflow_mlops.exceptions import DataError
from airflow_mlops.training import network_fit
from airflow_mlops.training.config import check_config
from airflow_mlops.training.loop import network_outputs
from airflow_mlops.training.network_fit import _losses, _WeightedSumCrossEntropy, train_network
from airflow_mlops.training.networks import MLP
from airflow_mlops.training.rows import Outcome, Target, encode_target, split_rows

CPU = torch.device("cpu")
TINY = {"epochs": 2, "lr": 0.05, "batch_size": 64, "hidden_units": [4], "dropout": 0.0}


def prepare(df: pd.DataFrame, **raw: Any) -> tuple[dict[str, Any], Target, np.ndarray, np.ndarray]:
    """The checked config, the encoded target and the split, as ``trainer.train`` makes them."""
    cfg = check_config(
        {"target": "label", "device": "cpu", "seed": 5, **raw, "params": {**TINY, **raw.get("params", {})}}
    )
    data = encode_target(df["label"], cfg, "label")
    train_idx, val_idx = split_rows(data.y, data.task, cfg["validation_fraction"], np.random.default_rng(5))
    return cfg, data, train_idx, val_idx


def fit(df: pd.DataFrame, **raw: Any) -> tuple[Outcome, Target, np.ndarray, np.ndarray]:
    cfg, data, train_idx, val_idx = prepare(df, **raw)
    features = [c for c in df.columns if c != "label"]
    outcome = train_network(cfg, data, df.iloc[train_idx], df.iloc[val_idx], train_idx, val_idx, features)
    return outcome, data, train_idx, val_idx


def numbers(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})


# --- a binary network -----------------------------------------------------------------------------


def test_a_binary_fit_returns_the_network_its_outputs_and_its_record(make_frame) -> None:
    df = make_frame(300, 1)

    outcome, _, train_idx, val_idx = fit(df)

    assert isinstance(outcome.model, MLP) and not outcome.model.training
    assert outcome.preprocessor.output_names[3:] == [
        f"merchant={m}" for m in ["fuel", "grocery", "online", "travel"]
    ]
    assert len(outcome.train_sample) == len(train_idx)  # fewer rows than the metric sample
    assert outcome.train_output.shape == (len(train_idx),)
    assert outcome.val_output.shape == (len(val_idx),)
    assert np.all((outcome.val_output >= 0) & (outcome.val_output <= 1))  # probabilities
    x_val = outcome.preprocessor.transform(df.iloc[val_idx])
    np.testing.assert_allclose(outcome.val_output, network_outputs(outcome.model, x_val, CPU, "binary", None))
    assert outcome.target_scaling is None
    assert len(outcome.history) == outcome.metrics["epochs_run"] == 2
    best = outcome.history[outcome.metrics["best_epoch"] - 1]
    assert outcome.metrics["best_val_loss"] == best["val_loss"]
    assert outcome.metrics["best_train_loss"] == best["train_loss"]
    assert (outcome.metrics["device"], outcome.metrics["precision"]) == ("cpu", "fp32")
    assert outcome.metrics["stopped_early"] is False
    assert outcome.training == {
        "params": outcome.training["params"],
        "validation_fraction": 0.1,
        "early_stopping_patience": None,
        "best_epoch": outcome.metrics["best_epoch"],
    }
    assert outcome.training["params"]["hidden_units"] == [4]


def test_the_features_are_encoded_on_the_training_rows_only(make_frame) -> None:
    df = make_frame(300, 2)

    outcome, _, train_idx, _ = fit(df)

    mean, std = outcome.preprocessor.numeric["amount"]
    assert mean == pytest.approx(df["amount"].iloc[train_idx].mean())
    assert mean != pytest.approx(df["amount"].mean())
    assert std == pytest.approx(df["amount"].iloc[train_idx].std(ddof=0))


@pytest.mark.parametrize("class_weight", ["balanced", "none"])
def test_the_positive_weight_balances_the_training_rows_unless_asked_not_to(
    make_frame, class_weight: str
) -> None:
    outcome, data, train_idx, _ = fit(make_frame(300, 3), params={"class_weight": class_weight})

    positives = int(data.y[train_idx].sum())
    expected = (len(train_idx) - positives) / positives if class_weight == "balanced" else 1.0
    assert outcome.metrics["pos_weight"] == pytest.approx(expected)
    assert expected == 1.0 or expected > 3  # about 12% positives


def test_bf16_is_recorded_when_it_was_used(make_frame) -> None:
    outcome, *_ = fit(make_frame(200, 4), precision="bf16")
    assert outcome.metrics["precision"] == "bf16"


def test_dp_sgd_is_recorded_in_fp32_with_its_privacy(make_frame) -> None:
    pytest.importorskip("opacus")
    privacy = {"epsilon": 2.0, "delta": 1e-3, "noise_multiplier": 2.0}
    df = make_frame(125, 5)  # 100 training rows in batches of 10: a cheap accountant

    outcome, *_ = fit(
        df, precision="bf16", privacy=privacy, validation_fraction=0.2, params={"batch_size": 10}
    )

    assert outcome.metrics["precision"] == "fp32"  # DP-SGD runs without autocast
    assert outcome.metrics["best_epoch"] == outcome.metrics["epochs_run"] == 2
    recorded = outcome.training["privacy"]
    assert set(recorded) == {
        "dp_epsilon",
        "dp_epsilon_budget",
        "dp_delta",
        "dp_noise_multiplier",
        "dp_max_grad_norm",
        "dp_accountant",
    }
    assert recorded["dp_epsilon"] == outcome.metrics["dp_epsilon"] <= 2.0


def test_the_callers_torch_state_is_restored_even_when_the_fit_fails(
    make_frame, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any) -> None:
        torch.rand(5)  # the fit draws from the global generator
        raise RuntimeError("boom")

    monkeypatch.setattr(network_fit, "fit_network", fail)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)

    with pytest.raises(RuntimeError, match="boom"):
        fit(make_frame(100, 6))

    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert torch.equal(torch.rand(3), expected)


def test_a_cnn_whose_image_shape_does_not_match_the_features_is_refused_before_training(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(network_fit, "fit_network", lambda *a: pytest.fail("must not train"))
    df = pd.DataFrame(np.zeros((20, 9)), columns=[f"px{i}" for i in range(9)]).assign(label=[0, 1] * 10)
    params = {"image_shape": [1, 4, 4], "conv_channels": [2]}

    with pytest.raises(
        DataError, match=r"image_shape \[1, 4, 4\] holds 16 values per image but the 9 feature"
    ):
        fit(df, model="cnn", params=params)


# --- a regression network -------------------------------------------------------------------------


def test_a_regression_target_is_scaled_on_the_training_rows_and_outputs_are_in_its_units() -> None:
    df = numbers(200)
    df["label"] = 1000.0 + 10.0 * df["a"] + np.random.default_rng(1).normal(size=200)

    outcome, data, train_idx, val_idx = fit(df)

    y_train = data.y[train_idx]
    assert outcome.target_scaling == pytest.approx({"mean": y_train.mean(), "std": y_train.std()})
    assert outcome.target_scaling["mean"] != pytest.approx(data.y.mean(), abs=1e-9)
    assert "pos_weight" not in outcome.metrics and "class_weights" not in outcome.metrics
    # Without unscaling the outputs would be near 0: a network this small barely moves in 2 epochs.
    assert abs(outcome.val_output.mean() - 1000.0) < 30.0
    x_val = outcome.preprocessor.transform(df.iloc[val_idx])
    raw = network_outputs(outcome.model, x_val, CPU, "regression", None)
    np.testing.assert_allclose(outcome.val_output, y_train.mean() + y_train.std() * raw, rtol=1e-6)


def test_constant_training_targets_are_scaled_by_one() -> None:
    df = numbers(20)
    y = np.full(20, 7.0)
    y[[3, 11]] = [1.0, 2.0]  # only validation rows vary
    val_idx = np.array([3, 11])
    train_idx = np.setdiff1d(np.arange(20), val_idx)
    cfg = check_config({"target": "label", "device": "cpu", "params": TINY})

    outcome = train_network(
        cfg,
        Target("regression", y, [], None),
        df.iloc[train_idx],
        df.iloc[val_idx],
        train_idx,
        val_idx,
        ["a", "b"],
    )

    assert outcome.target_scaling == {"mean": 7.0, "std": 1.0}
    assert np.all(np.isfinite(outcome.val_output))


# --- a multiclass network -------------------------------------------------------------------------


def test_a_multiclass_fit_weights_classes_by_their_training_rows() -> None:
    df = numbers(160)
    df["label"] = np.where(df["a"] > 0.8, "c", np.where(df["a"] > -0.2, "b", "a"))

    outcome, data, train_idx, val_idx = fit(df)

    counts = np.bincount(data.y[train_idx], minlength=3)
    expected = len(train_idx) / (3 * counts)
    assert outcome.metrics["class_weights"] == pytest.approx(expected.tolist(), abs=1e-6)
    assert outcome.val_output.shape == (len(val_idx), 3)
    np.testing.assert_allclose(outcome.val_output.sum(axis=1), 1.0, rtol=1e-6)
    assert outcome.model.outputs == 3


def test_class_weights_are_one_unless_balanced_and_zero_for_a_class_without_training_rows() -> None:
    data = Target("multiclass", np.array([0, 0, 0, 1, 2]), ["a", "b", "c", "d"], ["a", "b", "c", "d"])
    y_train = np.array([0, 0, 0, 1])

    _, balanced = _losses(data, y_train, {"class_weight": "balanced"}, CPU)
    _, plain = _losses(data, y_train, {"class_weight": "none"}, CPU)

    assert balanced == {"class_weights": pytest.approx([4 / (4 * 3), 4 / (4 * 1), 0.0, 0.0])}
    assert plain == {"class_weights": [1.0, 1.0, 1.0, 1.0]}


# --- the losses -----------------------------------------------------------------------------------


def test_a_binary_loss_without_training_positives_keeps_weight_one() -> None:
    data = Target("binary", np.zeros(4, np.float32), ["0", "1"], ["0", "1"])
    (loss, sum_loss), weighting = _losses(data, np.zeros(4, np.float32), {"class_weight": "balanced"}, CPU)
    assert weighting == {"pos_weight": 1.0}
    assert float(loss.pos_weight) == float(sum_loss.pos_weight) == 1.0


def test_the_binary_sum_loss_is_the_mean_loss_times_the_rows() -> None:
    data = Target("binary", np.zeros(4, np.float32), ["0", "1"], ["0", "1"])
    y_train = np.array([1, 0, 0, 0], np.float32)
    (loss, sum_loss), weighting = _losses(data, y_train, {"class_weight": "balanced"}, CPU)
    logits, y = torch.tensor([0.3, -1.0, 2.0, 0.1]), torch.tensor([1.0, 0.0, 1.0, 0.0])

    assert weighting == {"pos_weight": 3.0}
    assert float(sum_loss(logits, y)) == pytest.approx(4 * float(loss(logits, y)), rel=1e-6)


def test_a_regression_loss_is_the_squared_error() -> None:
    data = Target("regression", np.zeros(3), [], None)
    (loss, sum_loss), weighting = _losses(data, np.zeros(3, np.float32), {"class_weight": "balanced"}, CPU)
    out, y = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 0.0, 1.0])
    assert weighting == {}
    assert float(loss(out, y)) == pytest.approx((0 + 4 + 9) / 3)
    assert float(sum_loss(out, y)) == pytest.approx(13.0)


def test_the_weighted_sum_cross_entropy_per_row_is_the_weighted_mean_of_training() -> None:
    weight = torch.tensor([0.5, 2.0, 1.0])
    logits = torch.tensor(
        [[1.0, 0.0, -1.0], [0.2, 0.1, 0.3], [-2.0, 1.0, 0.5], [0.0, 0.0, 3.0], [1.0, 1.0, 0.0]]
    )
    y = torch.tensor([0, 1, 1, 2, 0])

    total = _WeightedSumCrossEntropy(weight)(logits, y)

    mean = torch.nn.CrossEntropyLoss(weight=weight)(logits, y)
    assert float(total) / len(y) == pytest.approx(float(mean), rel=1e-6)
    plain = _WeightedSumCrossEntropy(torch.ones(3))(logits, y)
    assert float(plain) == pytest.approx(
        float(torch.nn.CrossEntropyLoss(reduction="sum")(logits, y)), rel=1e-6
    )


def test_the_weighted_sum_cross_entropy_of_rows_of_weight_zero_is_zero_not_nan() -> None:
    loss = _WeightedSumCrossEntropy(torch.tensor([1.0, 0.0]))
    assert float(loss(torch.tensor([[0.0, 1.0], [2.0, 0.0]]), torch.tensor([1, 1]))) == 0.0
