"""The torch training loop: the device and bf16 choice, the network built from the config, the
epoch loop (best epoch by validation loss, early stopping, divergence), the validation loss and
the outputs of a trained network, and DP-SGD with its enforced epsilon budget."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from airflow_mlops.exceptions import PrivacyBudgetError, TrainingError
from airflow_mlops.training import loop
from airflow_mlops.training.config import check_config
from airflow_mlops.training.loop import (
    build_network,
    fit_network,
    fit_network_private,
    mean_loss,
    network_outputs,
    pick_device,
    to_device,
    use_bf16,
)
from airflow_mlops.training.networks import CNN, MLP
from airflow_mlops.training.trainer import train

CPU = torch.device("cpu")


def config(*, patience: int | None = None, privacy: dict | None = None, **params: Any) -> dict[str, Any]:
    """A checked trainer config (every default filled in) for a tiny, fast network."""
    raw: dict[str, Any] = {
        "target": "y",
        "device": "cpu",
        "seed": 3,
        "early_stopping_patience": patience,
        "params": {"epochs": 4, "lr": 0.05, "batch_size": 40, "hidden_units": [4], "dropout": 0.0, **params},
    }
    if privacy is not None:
        raw["privacy"] = privacy
    return check_config(raw)


def rows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three float32 features and a float32 0/1 label that the first feature mostly decides."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(np.float32)
    return x, y


def bce() -> loop.Losses:
    return torch.nn.BCEWithLogitsLoss(), torch.nn.BCEWithLogitsLoss(reduction="sum")


def mlp(seed: int = 0, outputs: int = 1) -> MLP:
    torch.manual_seed(seed)
    return MLP(3, [4], 0.0, outputs)


def fit(cfg: dict[str, Any], *, n_val: int = 40, seed: int = 3, bf16: bool = False) -> loop.FitOutcome:
    x, y = rows(120 + n_val)
    return fit_network(mlp(), x[:120], y[:120], x[120:], y[120:], bce(), CPU, seed, cfg, bf16)


def scripted_val_losses(monkeypatch: pytest.MonkeyPatch, losses: list[float]) -> None:
    values = iter(losses)
    monkeypatch.setattr(loop, "mean_loss", lambda *args: next(values))


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- the device and the precision -----------------------------------------------------------------


def test_cpu_is_used_when_asked_and_when_auto_finds_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("cpu") == CPU
    assert pick_device("auto") == CPU


def test_auto_takes_the_current_gpu_when_there_is_one_and_cpu_stays_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert pick_device("auto") == torch.device("cuda", 1)
    assert pick_device("cuda") == torch.device("cuda", 1)
    assert pick_device("cpu") == CPU


def test_cuda_without_cuda_is_refused_with_the_alternatives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TrainingError, match="CUDA is not available here; use device 'auto' or 'cpu'"):
        pick_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_requested_without_cuda(tmp_path: Path, make_frame, base_config: dict) -> None:
    base_config["device"] = "cuda"
    with pytest.raises(TrainingError, match="CUDA is not available"):
        train(make_frame(100, 13), base_config, tmp_path / "m")


@pytest.mark.parametrize(
    ("precision", "device", "supported", "expected"),
    [
        ("bf16", "cpu", False, True),  # asked for: always
        ("fp32", "cpu", True, False),
        ("fp32", "cuda", True, False),
        ("auto", "cpu", True, False),  # auto: a GPU only
        ("auto", "cuda", True, True),
        ("auto", "cuda", False, False),  # a GPU without bf16
    ],
)
def test_bf16_autocast_is_used_when_asked_or_on_a_gpu_that_supports_it(
    precision: str, device: str, supported: bool, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: supported)
    assert use_bf16(precision, torch.device(device)) is expected


def test_a_host_array_reaches_the_cpu_unchanged() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    tensor = to_device(array, CPU)
    assert tensor.device == CPU
    assert tensor.dtype == torch.float32
    assert np.array_equal(tensor.numpy(), array)


# --- the network ----------------------------------------------------------------------------------


def test_the_mlp_is_built_from_the_params_and_the_inputs() -> None:
    cfg = config(hidden_units=[5, 3], dropout=0.2)

    network = build_network(cfg, input_dim=7, outputs=4)

    assert isinstance(network, MLP)
    assert network.architecture() == {"input_dim": 7, "hidden_units": [5, 3], "dropout": 0.2, "outputs": 4}
    assert network(torch.zeros(2, 7)).shape == (2, 4)
    assert build_network(cfg, 7)(torch.zeros(2, 7)).shape == (2,)  # one output by default


def test_the_cnn_is_built_from_its_image_shape_and_channels() -> None:
    raw = {
        "target": "y",
        "model": "cnn",
        "params": {"image_shape": [1, 4, 4], "conv_channels": [2], "hidden_units": [3], "dropout": 0.0},
    }

    network = build_network(check_config(raw), input_dim=16)

    assert isinstance(network, CNN)
    assert network.architecture()["image_shape"] == [1, 4, 4]
    assert network(torch.zeros(5, 16)).shape == (5,)


# --- the epoch loop -------------------------------------------------------------------------------


def test_without_validation_rows_every_epoch_runs_and_the_last_is_kept() -> None:
    model, history, best_epoch, stopped_early, extra = fit(config(patience=1), n_val=0)

    assert [h["epoch"] for h in history] == [1, 2, 3, 4]  # patience needs validation rows
    assert all(h["val_loss"] is None for h in history)
    assert (best_epoch, stopped_early) == (4, False)
    assert not model.training  # returned ready to predict
    assert extra["samples_per_second"] > 0


def test_a_learnable_problem_lowers_the_training_loss() -> None:
    _, history, *_ = fit(config(epochs=8))
    losses = [h["train_loss"] for h in history]
    assert losses[-1] < losses[0]
    assert all(np.isfinite(losses))


def test_the_best_epoch_has_the_lowest_validation_loss_and_its_weights_are_returned() -> None:
    x, y = rows(160)
    losses = bce()

    model, history, best_epoch, _, _ = fit(config(epochs=6))

    val_losses = [h["val_loss"] for h in history]
    assert best_epoch == 1 + int(np.argmin(val_losses))
    # The model returned is the best epoch's: its validation loss is the one recorded for it.
    again = mean_loss(model, torch.from_numpy(x[120:]), torch.from_numpy(y[120:]), losses[1])
    assert again == pytest.approx(val_losses[best_epoch - 1], rel=1e-6)


def test_the_weights_returned_are_those_of_the_best_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Best at epoch 2 of 5: the weights must be those of a run of 2 epochs, not the last ones."""
    scripted_val_losses(monkeypatch, [0.5, 0.1, 0.2, 0.3, 0.4])
    best, history, best_epoch, stopped_early, _ = fit(config(epochs=5))
    monkeypatch.undo()
    last, *_ = fit(config(epochs=5))
    two, *_ = fit(config(epochs=2))

    assert (best_epoch, len(history), stopped_early) == (2, 5, False)
    assert [h["val_loss"] for h in history] == [0.5, 0.1, 0.2, 0.3, 0.4]
    assert same_weights(best, two)
    assert not same_weights(best, last)


def test_early_stopping_stops_after_patience_epochs_without_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_val_losses(monkeypatch, [0.5, 0.4, 0.45, 0.41, 0.3, 0.2])

    _, history, best_epoch, stopped_early, _ = fit(config(epochs=6, patience=2))

    assert (len(history), best_epoch, stopped_early) == (4, 2, True)


def test_without_patience_every_epoch_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_val_losses(monkeypatch, [0.5, 0.4, 0.45, 0.41, 0.3, 0.2])

    _, history, best_epoch, stopped_early, _ = fit(config(epochs=6))

    assert (len(history), best_epoch, stopped_early) == (6, 6, False)


def test_an_equal_validation_loss_is_no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_val_losses(monkeypatch, [0.3, 0.3, 0.3, 0.3])

    _, history, best_epoch, stopped_early, _ = fit(config(epochs=4, patience=2))

    assert (len(history), best_epoch, stopped_early) == (3, 1, True)


def test_the_same_seed_repeats_the_run_and_another_seed_shuffles_differently() -> None:
    first = fit(config())
    again = fit(config())
    other = fit(config(), seed=4)

    assert first[1] == again[1]
    assert same_weights(first[0], again[0])
    assert first[1] != other[1]


def test_a_diverging_run_is_refused_naming_the_epoch() -> None:
    x, y = rows(60)
    x[5, 0] = np.nan  # a NaN input makes the loss NaN at once

    with pytest.raises(TrainingError, match=r"training diverged at epoch 1 \(loss is nan\); lower params.lr"):
        fit_network(mlp(), x, y, x[:0], y[:0], bce(), CPU, 3, config(), False)


def test_bf16_autocast_trains_fp32_weights_with_other_losses() -> None:
    bf16 = fit(config(), bf16=True)
    fp32 = fit(config())

    assert all(p.dtype == torch.float32 for p in bf16[0].parameters())
    assert all(np.isfinite(h["train_loss"]) for h in bf16[1])
    assert bf16[1] != fp32[1]  # the autocast really ran


# Moved from test_trainer.py: early stopping and the best epoch through train().


def test_early_stopping_keeps_the_best_epoch(
    tmp_path: Path, make_frame, base_config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    losses = iter([0.5, 0.4, 0.45, 0.41, 0.3, 0.2])  # best at epoch 2, then two epochs without progress
    monkeypatch.setattr(loop, "mean_loss", lambda *args: next(losses))
    base_config["early_stopping_patience"] = 2
    metrics = train(make_frame(300, 15), base_config, tmp_path / "m")
    assert metrics["stopped_early"] is True
    assert metrics["epochs_run"] == 4
    assert metrics["best_epoch"] == 2
    assert metrics["best_val_loss"] == 0.4


def test_best_epoch_weights_are_the_ones_saved(
    tmp_path: Path, make_frame, base_config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Best epoch 1 of 6: the saved weights must differ from a run that keeps epoch 6."""
    df = make_frame(300, 16)
    losses = iter([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    monkeypatch.setattr(loop, "mean_loss", lambda *args: next(losses))
    first = train(df, base_config, tmp_path / "first")
    monkeypatch.undo()
    losses_last = iter([0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    monkeypatch.setattr(loop, "mean_loss", lambda *args: next(losses_last))
    last = train(df, base_config, tmp_path / "last")
    assert (first["best_epoch"], last["best_epoch"]) == (1, 6)
    w_first = load_file(tmp_path / "first" / "model.safetensors")
    w_last = load_file(tmp_path / "last" / "model.safetensors")
    assert not torch.equal(w_first["net.0.weight"], w_last["net.0.weight"])


# --- the validation loss and the outputs ----------------------------------------------------------


def test_the_validation_loss_is_the_mean_loss_per_row_in_any_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = rows(10)
    model = mlp()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    expected = float(torch.nn.BCEWithLogitsLoss()(model(xt).detach(), yt))
    model.train()

    whole = mean_loss(model, xt, yt, bce()[1])
    monkeypatch.setattr(loop, "_EVAL_CHUNK", 3)  # 3 + 3 + 3 + 1 rows
    chunked = mean_loss(model, xt, yt, bce()[1])

    assert whole == pytest.approx(expected, rel=1e-6)
    assert chunked == pytest.approx(expected, rel=1e-6)
    assert not model.training  # measured in eval mode (no dropout)


def test_a_class_weighted_validation_loss_is_the_weighted_mean_in_any_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each chunk rescaled by its own weight (the old sum) is not the weighted mean of the whole
    set when the chunks hold the classes in other proportions."""
    from airflow_mlops.training.network_fit import _WeightedSumCrossEntropy

    x, _ = rows(10)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    model = mlp(outputs=3)
    weight = torch.tensor([0.5, 3.0, 1.0])
    expected = float(torch.nn.CrossEntropyLoss(weight=weight)(model(torch.from_numpy(x)).detach(), y))

    whole = mean_loss(model, torch.from_numpy(x), y, _WeightedSumCrossEntropy(weight))
    monkeypatch.setattr(loop, "_EVAL_CHUNK", 3)  # chunks of other class mixes: 000 112 222 2
    chunked = mean_loss(model, torch.from_numpy(x), y, _WeightedSumCrossEntropy(weight))

    assert whole == pytest.approx(expected, rel=1e-6)
    assert chunked == pytest.approx(expected, rel=1e-6)


def test_a_non_finite_validation_loss_is_refused() -> None:
    x, y = rows(4)
    x[1, 2] = np.inf
    with pytest.raises(TrainingError, match="the validation loss is not finite"):
        mean_loss(mlp(), torch.from_numpy(x), torch.from_numpy(y), bce()[1])


def test_binary_outputs_are_probabilities_of_the_logit(monkeypatch: pytest.MonkeyPatch) -> None:
    x, _ = rows(7)
    model = mlp()
    logits = model(torch.from_numpy(x)).detach().double().numpy()

    monkeypatch.setattr(loop, "_EVAL_CHUNK", 2)
    out = network_outputs(model, x, CPU, "binary", None)

    assert out.dtype == np.float64 and out.shape == (7,)
    np.testing.assert_allclose(out, 1.0 / (1.0 + np.exp(-logits)), rtol=1e-6)


def test_multiclass_outputs_are_rows_of_class_probabilities() -> None:
    x, _ = rows(5)
    model = mlp(outputs=3)
    logits = model(torch.from_numpy(x)).detach().double().numpy()

    out = network_outputs(model, x, CPU, "multiclass", None)

    assert out.shape == (5, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(out.argmax(axis=1), logits.argmax(axis=1))


def test_regression_outputs_are_unscaled_to_the_targets_units() -> None:
    x, _ = rows(6)
    model = mlp()
    raw = model(torch.from_numpy(x)).detach().double().numpy()

    out = network_outputs(model, x, CPU, "regression", {"mean": 100.0, "std": 5.0})

    np.testing.assert_allclose(out, 100.0 + 5.0 * raw, rtol=1e-6)
    np.testing.assert_allclose(network_outputs(model, x, CPU, "regression", None), raw, rtol=1e-6)


@pytest.mark.parametrize(
    ("task", "outputs", "shape"), [("binary", 1, (0,)), ("regression", 1, (0,)), ("multiclass", 3, (0, 3))]
)
def test_no_rows_give_an_empty_output_of_the_tasks_shape(task: str, outputs: int, shape: tuple) -> None:
    out = network_outputs(
        mlp(outputs=outputs), np.zeros((0, 3), np.float32), CPU, task, {"mean": 1.0, "std": 2.0}
    )
    assert out.shape == shape
    assert out.dtype == np.float64


# --- DP-SGD ---------------------------------------------------------------------------------------


def private(noise: float | None, epsilon: float, *, delta: float = 1e-3) -> dict[str, Any]:
    """100 training rows in batches of 10 (sample rate 0.1) for 2 epochs: a cheap accountant."""
    privacy = {"epsilon": epsilon, "delta": delta, "noise_multiplier": noise}
    return config(epochs=2, batch_size=10, privacy=privacy)


def fit_private(cfg: dict[str, Any], model: MLP | None = None) -> loop.FitOutcome:
    x, y = rows(120)
    model = model if model is not None else mlp()
    return fit_network_private(model, x[:100], y[:100], x[100:], y[100:], bce(), CPU, 3, cfg)


def test_dp_sgd_within_its_budget_returns_the_plain_network_and_its_accounting() -> None:
    pytest.importorskip("opacus")

    model, history, best_epoch, stopped_early, extra = fit_private(private(2.0, 2.0))

    assert type(model) is MLP and not model.training  # unwrapped from Opacus' GradSampleModule
    assert (len(history), best_epoch, stopped_early) == (2, 2, False)  # the last epoch is kept
    epsilons = [h["epsilon"] for h in history]
    assert 0 < epsilons[0] < epsilons[1] <= 2.0
    assert all(h["val_loss"] is not None for h in history)
    assert extra["dp_epsilon"] == epsilons[-1]
    assert {k: extra[k] for k in extra if k.startswith("dp_") and k != "dp_epsilon"} == {
        "dp_epsilon_budget": 2.0,
        "dp_delta": 1e-3,
        "dp_noise_multiplier": 2.0,
        "dp_max_grad_norm": 1.0,
        "dp_accountant": "rdp",
    }
    assert extra["samples_per_second"] > 0


def test_dp_sgd_above_its_budget_is_refused_before_any_step() -> None:
    pytest.importorskip("opacus")
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    with pytest.raises(PrivacyBudgetError) as info:
        fit_private(private(0.5, 1.0), model)

    message = str(info.value)
    assert "above the budget training.privacy.epsilon = 1" in message
    assert "noise_multiplier 0.5" in message and "over 2 epochs" in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched


def test_dp_sgd_refuses_a_delta_that_allows_leaking_a_row() -> None:
    pytest.importorskip("opacus")
    with pytest.raises(TrainingError, match=r"privacy.delta 0.01 is not below 1 / training rows \(1/100"):
        fit_private(private(2.0, 2.0, delta=0.01))


def test_dp_sgd_refuses_a_spent_epsilon_above_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    opacus = pytest.importorskip("opacus")
    monkeypatch.setattr(opacus.PrivacyEngine, "get_epsilon", lambda self, delta: 2.5)

    with pytest.raises(PrivacyBudgetError, match=r"DP-SGD spent epsilon 2\.500, above the budget"):
        fit_private(private(2.0, 2.0))


def test_dp_sgd_without_opacus_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opacus", None)  # import opacus raises ImportError
    with pytest.raises(TrainingError, match=r"needs Opacus.*pip install 'airflow-mlops\[dp\]'"):
        fit_private(private(2.0, 2.0))
