"""Small fraud-like frames and packaged models trained on them by the project's trainer, shared by
the evaluation, holdout-check and robustness tests (and the model-evaluate operator tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FEATURES = ["amount", "age", "merchant"]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 1.0, n)
    age = rng.normal(40.0, 12.0, n)
    merchant = rng.choice(["grocery", "travel", "online"], n)
    logit = -2.0 + 2.5 * (np.log(amount) - 3.0) + 2.0 * (merchant == "online")
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame({"amount": amount, "age": age, "merchant": merchant, "label": label})


def _packaged(root: Path, train_df: pd.DataFrame) -> Path:
    """Train and lay the result out as a packaged model directory (MLmodel -> weights)."""
    from airflow_mlops.training.trainer import train

    weights = root / "artifacts" / "weights"
    config = {
        "target": "label",
        "features": FEATURES,
        "positive_label": 1,
        "params": {"epochs": 8, "lr": 0.02, "batch_size": 128, "hidden_units": [16]},
        "seed": 3,
        "device": "cpu",
    }
    train(train_df, config, weights)
    (root / "MLmodel").write_text(
        "flavors:\n  python_function:\n    artifacts:\n      weights:\n        path: artifacts/weights\n"
    )
    return root


def _holdout(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    amount = rng.normal(3.0, 1.0, n)
    age = rng.normal(40.0, 10.0, n)
    merchant = rng.choice(["grocery", "travel", "online"], n)
    logit = -1.0 + 1.5 * (amount - 3.0) + 0.05 * (age - 40.0) + 1.0 * (merchant == "online")
    y = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    return pd.DataFrame({"amount": amount, "age": age, "merchant": merchant, "label": y.astype(int)}), y
