"""Trainer throughput against a hand-written torch loop, on the same model and data, in one run.

    .venv/bin/python benchmarks/train_gpu.py [--rows 2000000] [--epochs 3] [--device auto]

Both sides train the built-in MLP on the same synthetic fraud-like table, preprocessed once,
with the same batch size, optimiser and (on a GPU) bf16 autocast. The trainer side is
``airflow_mlops.training.trainer.train`` as the pod runs it (its ``samples_per_second`` metric
covers the training passes only); the peer is the plainest loop a person would write: the
tensors on the device, a shuffled index per epoch, forward/backward/step. Printed: samples/s of
both, their ratio (target on a GPU: >= 0.9x), and the time each needs to reach the target
validation ROC AUC. Without a CUDA device it runs on the CPU and says so: CPU numbers say
nothing about the GPU target.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_mlops.training.model import MLP, Preprocessor  # noqa: E402
from airflow_mlops.training.ranking import roc_auc  # noqa: E402
from airflow_mlops.training.trainer import train  # noqa: E402

FEATURES = ["amount", "age", "hour", "merchant"]


def make_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 1.0, n)
    age = rng.normal(40.0, 12.0, n)
    hour = rng.integers(0, 24, n).astype(float)
    merchant = rng.choice(["grocery", "travel", "online", "fuel"], n, p=[0.4, 0.2, 0.25, 0.15])
    logit = -3.6 + 2.0 * (np.log(amount) - 3.0) + 2.0 * (merchant == "online") - 0.05 * (age - 40.0)
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame({"amount": amount, "age": age, "hour": hour, "merchant": merchant, "label": label})


def plain_loop(
    x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, params: dict[str, Any], device: torch.device,
    bf16: bool, target: float,
) -> dict[str, Any]:  # fmt: skip
    """The hand-written peer: same network, optimiser, batch size and precision."""
    torch.manual_seed(0)
    model = MLP(x.shape[1], params["hidden_units"], params["dropout"]).to(device)
    pos_weight = torch.tensor(float((len(y) - y.sum()) / y.sum()), device=device)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    opt = torch.optim.Adam(model.parameters(), lr=params["lr"])
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    xvt = torch.from_numpy(xv).to(device)
    n, bs = len(yt), params["batch_size"]
    train_seconds, reached_at, started = 0.0, None, time.perf_counter()
    for epoch in range(1, params["epochs"] + 1):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(n, device=device)
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(xt[idx]).float(), yt[idx])
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_seconds += time.perf_counter() - t0
        model.eval()
        with torch.inference_mode():
            auc = roc_auc(yv, torch.sigmoid(model(xvt)).float().cpu().numpy())
        if reached_at is None and auc >= target:
            reached_at = (epoch, time.perf_counter() - started)
    return {
        "samples_per_second": n * params["epochs"] / train_seconds,
        "val_roc_auc": auc,
        "reached_target": reached_at,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--target-auc", type=float, default=0.85)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available() and args.device != "cpu"
    device = torch.device("cuda" if cuda else "cpu")
    note = (
        f"CUDA device: {torch.cuda.get_device_name(device)}"
        if cuda
        else "no CUDA device: ran on the CPU; these numbers say nothing about the GPU target (>= 0.9x)"
    )
    print(note)
    df = make_frame(args.rows, 1)
    params = {"epochs": args.epochs, "lr": 2e-3, "batch_size": args.batch_size, "hidden_units": [256, 128],
              "dropout": 0.0, "weight_decay": 0.0, "class_weight": "balanced"}  # fmt: skip
    config = {"target": "label", "features": FEATURES, "params": params, "seed": 0,
              "device": "cuda" if cuda else "cpu", "precision": "auto", "validation_fraction": 0.1}  # fmt: skip

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        metrics = train(df, config, Path(tmp) / "model")
    trainer_wall = time.perf_counter() - started

    # The peer gets the same preprocessed matrix (the trainer's preprocessing is not timed in
    # its samples/s either).
    split = int(len(df) * 0.9)
    prep = Preprocessor.fit(df.iloc[:split], FEATURES)
    x, xv = prep.transform(df.iloc[:split]), prep.transform(df.iloc[split:])
    y = df["label"].to_numpy()[:split].astype(np.float32)
    yv = df["label"].to_numpy()[split:].astype(np.float32)
    peer = plain_loop(x, y, xv, yv, params, device, metrics["precision"] == "bf16", args.target_auc)

    ratio = metrics["samples_per_second"] / peer["samples_per_second"]
    reached = peer["reached_target"]
    results = {
        "device": note,
        "rows": args.rows,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "precision": metrics["precision"],
        "trainer_samples_per_second": round(metrics["samples_per_second"], 1),
        "plain_samples_per_second": round(peer["samples_per_second"], 1),
        "ratio": round(ratio, 3),
        "trainer_val_roc_auc": metrics["val_roc_auc"],
        "trainer_wall_seconds": round(trainer_wall, 2),
        "trainer_reached_target": bool(metrics["val_roc_auc"] is not None and metrics["val_roc_auc"] >= args.target_auc),
        "plain_val_roc_auc": round(peer["val_roc_auc"], 4),
        "plain_seconds_to_target": None if reached is None else round(reached[1], 2),
    }  # fmt: skip
    print(
        f"trainer {results['trainer_samples_per_second']:,.0f} samples/s vs plain torch loop "
        f"{results['plain_samples_per_second']:,.0f} samples/s: ratio {results['ratio']:.2f}x ({metrics['precision']})"
    )
    print(
        f"time to val roc_auc >= {args.target_auc}: trainer whole run {trainer_wall:.1f}s "
        f"(val roc_auc {metrics['val_roc_auc']:.4f}); plain loop "
        + ("not reached" if reached is None else f"epoch {reached[0]}, {reached[1]:.1f}s")
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if math.isfinite(ratio) else 1


if __name__ == "__main__":
    sys.exit(main())
