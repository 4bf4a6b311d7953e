"""The torch training loop of the built-in networks: devices, bf16 autocast, the epoch loop with
early stopping on the validation loss, and DP-SGD (Opacus) with its enforced epsilon budget."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import torch

from airflow_mlops.exceptions import PrivacyBudgetError, TrainingError
from airflow_mlops.training.networks import CNN, MLP

# The trainer's logger: the job's command line sets its level (see training/job.py).
log = logging.getLogger("airflow_mlops.training.trainer")

_EVAL_CHUNK = 65536

Losses = tuple[torch.nn.Module, torch.nn.Module]


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainingError(
                "device 'cuda' was requested but CUDA is not available here; use device 'auto' or 'cpu'"
            )
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def build_network(cfg: Mapping[str, Any], input_dim: int, outputs: int = 1) -> MLP | CNN:
    params = cfg["params"]
    if cfg["model"] == "cnn":
        return CNN(
            params["image_shape"], params["conv_channels"], params["hidden_units"], params["dropout"], outputs
        )
    return MLP(input_dim, params["hidden_units"], params["dropout"], outputs)


def use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast: always for ``bf16``; for ``auto`` on a GPU that supports it."""
    if precision == "bf16":
        return True
    return precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array on ``device``; through pinned memory (an asynchronous copy) for a GPU."""
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


FitOutcome = tuple[MLP | CNN, list[dict[str, Any]], int, bool, dict[str, Any]]


def fit_network(
    model: MLP | CNN,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    losses: Losses,
    device: torch.device,
    seed: int,
    cfg: Mapping[str, Any],
    bf16: bool,
) -> FitOutcome:
    """The epoch loop. Returns the best model (by validation loss), history, best epoch, stopped
    early, and extra metrics (throughput)."""
    params = cfg["params"]
    loss_fn, sum_loss_fn = losses
    optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    shuffle = torch.Generator().manual_seed(seed)

    # The whole (small) training set moves to the device once, through pinned memory on a GPU;
    # batches are then index gathers on the device, with no host round trip per step.
    xt, yt = to_device(x_train, device), to_device(y_train, device)
    xv, yv = to_device(x_val, device), to_device(y_val, device)
    has_val = len(y_val) > 0
    n, batch_size, epochs = len(yt), params["batch_size"], params["epochs"]
    patience = cfg["early_stopping_patience"]

    history: list[dict[str, Any]] = []
    best_loss, best_epoch, best_state = math.inf, 0, None
    stopped_early = False
    train_seconds = 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        started = time.perf_counter()
        order = torch.randperm(n, generator=shuffle).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(xt[idx]).float(), yt[idx])
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        train_loss = float(total.item()) / n  # .item() waits for the device: the timing is honest
        seconds = time.perf_counter() - started
        train_seconds += seconds
        _check_finite(train_loss, epoch)
        val_loss = mean_loss(model, xv, yv, sum_loss_fn) if has_val else None
        score = val_loss if val_loss is not None else train_loss
        improved = score < best_loss if has_val else True  # without validation keep the last epoch
        if improved:
            best_loss, best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        _log_epoch(epoch, epochs, train_loss, val_loss, n / seconds, improved)
        if patience is not None and has_val and epoch - best_epoch >= patience:
            log.info("early stop: no validation improvement for %d epoch(s)", patience)
            stopped_early = True
            break
    assert best_state is not None  # epochs >= 1 and the first epoch always improves
    model.load_state_dict(best_state)
    model.eval()
    extra = {"samples_per_second": round(n * len(history) / train_seconds, 1)}
    return model, history, best_epoch, stopped_early, extra


def fit_network_private(
    model: MLP | CNN,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    losses: Losses,
    device: torch.device,
    seed: int,
    cfg: Mapping[str, Any],
) -> FitOutcome:
    """DP-SGD with Opacus: per-sample clipping, Gaussian noise, Poisson sampling, RDP accounting.

    The budget is enforced before any step: with a given noise multiplier, the epsilon the whole
    run would spend is computed first and a run above ``privacy.epsilon`` fails; without one, Opacus
    picks the smallest noise that meets the budget. The spent epsilon is logged after every epoch
    and checked again at the end. The last epoch is kept (no selection on validation loss).
    """
    try:
        from opacus import PrivacyEngine
        from opacus.accountants import RDPAccountant
    except ImportError as exc:
        raise TrainingError(
            "training.privacy needs Opacus, which is not installed here: pip install 'airflow-mlops[dp]' "
            "(in the trainer image too)"
        ) from exc
    from torch.utils.data import DataLoader, TensorDataset

    params, privacy = cfg["params"], cfg["privacy"]
    budget, delta = privacy["epsilon"], privacy["delta"]
    n, batch_size, epochs = len(y_train), params["batch_size"], params["epochs"]
    if delta >= 1.0 / n:
        raise TrainingError(
            f"privacy.delta {delta:g} is not below 1 / training rows (1/{n} = {1.0 / n:.2g}): such a delta "
            "allows leaking a whole row; lower training.privacy.delta"
        )
    loss_fn, sum_loss_fn = losses
    optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    dataset = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=device.type == "cuda",
    )
    engine = PrivacyEngine(accountant="rdp")
    sample_rate = 1.0 / len(loader)
    noise = privacy["noise_multiplier"]
    if noise is None:
        model, optimizer, loader = engine.make_private_with_epsilon(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            target_epsilon=budget,
            target_delta=delta,
            epochs=epochs,
            max_grad_norm=privacy["max_grad_norm"],
        )
        noise = float(optimizer.noise_multiplier)
    else:
        planned = RDPAccountant()
        planned.history = [(noise, sample_rate, epochs * len(loader))]
        expected = float(planned.get_epsilon(delta))
        if expected > budget:
            raise PrivacyBudgetError(
                f"DP-SGD would spend epsilon {expected:.3f} (delta {delta:g}) over {epochs} epochs with "
                f"noise_multiplier {noise:g}, above the budget training.privacy.epsilon = {budget:g}; "
                "raise noise_multiplier, lower epochs, raise batch_size, or remove noise_multiplier to "
                "let the trainer pick the noise for the budget"
            )
        model, optimizer, loader = engine.make_private(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=noise,
            max_grad_norm=privacy["max_grad_norm"],
        )
    log.info(
        "DP-SGD: budget epsilon %.3f, delta %g, noise multiplier %.4f, clipping norm %g, sample rate %.5f",
        budget,
        delta,
        noise,
        privacy["max_grad_norm"],
        sample_rate,
    )
    unwrapped = cast("MLP | CNN", model._module)  # the network inside Opacus' GradSampleModule
    xv, yv = to_device(x_val, device), to_device(y_val, device)
    has_val = len(y_val) > 0
    history: list[dict[str, Any]] = []
    train_seconds, seen, epsilon = 0.0, 0, 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        started = time.perf_counter()
        total, count = 0.0, 0
        for xb, yb in loader:
            if len(yb) == 0:  # Poisson sampling can draw an empty batch
                continue
            xb = xb.to(device, non_blocking=True)
            yb = yb.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(yb)
            count += len(yb)
        seconds = time.perf_counter() - started
        train_seconds += seconds
        seen += count
        train_loss = total / max(count, 1)
        _check_finite(train_loss, epoch)
        epsilon = float(engine.get_epsilon(delta))
        val_loss = mean_loss(unwrapped, xv, yv, sum_loss_fn) if has_val else None
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "epsilon": epsilon})
        _log_epoch(epoch, epochs, train_loss, val_loss, count / seconds, True, epsilon)
    if epsilon > budget + 1e-9:  # the accountant disagrees with the plan: never ship such a model
        raise PrivacyBudgetError(
            f"DP-SGD spent epsilon {epsilon:.3f}, above the budget training.privacy.epsilon = {budget:g}"
        )
    trained = unwrapped
    trained.eval()
    extra = {
        "samples_per_second": round(seen / train_seconds, 1),
        "dp_epsilon": epsilon,
        "dp_epsilon_budget": budget,
        "dp_delta": delta,
        "dp_noise_multiplier": noise,
        "dp_max_grad_norm": privacy["max_grad_norm"],
        "dp_accountant": "rdp",
    }
    log.info("DP-SGD: spent epsilon %.3f of the budget %.3f (delta %g)", epsilon, budget, delta)
    return trained, history, len(history), False, extra


def _check_finite(train_loss: float, epoch: int) -> None:
    if not math.isfinite(train_loss):
        raise TrainingError(
            f"training diverged at epoch {epoch} (loss is {train_loss}); lower params.lr or check the data"
        )


def _log_epoch(
    epoch: int,
    epochs: int,
    train_loss: float,
    val_loss: float | None,
    samples_per_second: float,
    improved: bool,
    epsilon: float | None = None,
) -> None:
    log.info(
        "epoch %d/%d train_loss=%.5f val_loss=%s%s %.0f samples/s%s",
        epoch,
        epochs,
        train_loss,
        "n/a" if val_loss is None else f"{val_loss:.5f}",
        "" if epsilon is None else f" epsilon={epsilon:.3f}",
        samples_per_second,
        " *" if improved else "",
    )


def mean_loss(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, sum_loss_fn: torch.nn.Module
) -> float:
    """The mean loss per row of ``(x, y)``, in chunks of :data:`_EVAL_CHUNK` rows (a weighted
    loss that has ``parts``: its weighted mean over the whole set, whatever the chunks)."""
    model.eval()

    def unweighted(out: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
        return sum_loss_fn(out, target), len(target)

    parts = getattr(sum_loss_fn, "parts", unweighted)
    total = weights = 0.0
    with torch.inference_mode():
        for start in range(0, len(y), _EVAL_CHUNK):
            chunk_total, chunk_weights = parts(
                model(x[start : start + _EVAL_CHUNK]), y[start : start + _EVAL_CHUNK]
            )
            total, weights = total + float(chunk_total), weights + float(chunk_weights)
    value = total / max(weights, 1e-12)
    if not math.isfinite(value):
        raise TrainingError("the validation loss is not finite; lower params.lr or check the data")
    return value


def network_outputs(
    model: torch.nn.Module,
    x: np.ndarray,
    device: torch.device,
    task: str,
    scaling: Mapping[str, float] | None,
) -> np.ndarray:
    """The task's output (see :mod:`airflow_mlops.metrics`) of the trained network for ``x``."""
    model.eval()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(x), _EVAL_CHUNK):
            out = model(torch.from_numpy(x[start : start + _EVAL_CHUNK]).to(device)).float()
            if task == "binary":
                out = torch.sigmoid(out)
            elif task == "multiclass":
                out = torch.softmax(out, dim=-1)
            chunks.append(out.to("cpu", torch.float64).numpy())
    if not chunks:
        return np.zeros((0, model.outputs) if task == "multiclass" else (0,), dtype=np.float64)  # type: ignore[arg-type]
    values = np.concatenate(chunks)
    if scaling is not None:
        values = scaling["mean"] + scaling["std"] * values
    return values
