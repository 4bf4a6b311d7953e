"""Synthetic tabular data for the trainer and model tests."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

MERCHANTS = ["grocery", "travel", "online", "fuel"]
FEATURES = ["amount", "age", "hour", "merchant"]


def _make_frame(n: int, seed: int) -> pd.DataFrame:
    """Fraud-like data: ~12% positives, learnable from amount, age and merchant; hour has NaNs."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 1.0, n)
    age = rng.normal(40.0, 12.0, n)
    hour = rng.integers(0, 24, n).astype(float)
    hour[rng.random(n) < 0.05] = np.nan
    merchant = rng.choice(MERCHANTS, n, p=[0.4, 0.2, 0.25, 0.15])
    logit = -3.6 + 2.0 * (np.log(amount) - 3.0) + 2.0 * (merchant == "online") - 0.05 * (age - 40.0)
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame({"amount": amount, "age": age, "hour": hour, "merchant": merchant, "label": label})


@pytest.fixture(scope="session")
def make_frame() -> Callable[[int, int], pd.DataFrame]:
    """``make_frame(n, seed)`` -> a DataFrame with FEATURES and a 0/1 ``label``."""
    return _make_frame


@pytest.fixture
def base_config() -> dict:
    """A small, fast trainer config for the synthetic data."""
    return {
        "target": "label",
        "features": list(FEATURES),
        "positive_label": 1,
        "params": {"epochs": 6, "lr": 0.01, "batch_size": 128, "hidden_units": [16, 8], "dropout": 0.1},
        "seed": 7,
        "device": "cpu",
    }


USERPKG_PARENT = str(Path(__file__).resolve().parent)


def _forget_userpkg() -> None:
    """Drop ``userpkg`` from the import cache: other tests have a package of that name too."""
    for name in [m for m in sys.modules if m == "userpkg" or m.startswith("userpkg.")]:
        del sys.modules[name]


@pytest.fixture
def userpkg(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The user's package (tests/unit/training/userpkg) importable as ``userpkg``, as on a worker."""
    _forget_userpkg()
    monkeypatch.syspath_prepend(USERPKG_PARENT)
    import userpkg.fits

    userpkg.fits.LAST.clear()
    yield userpkg
    _forget_userpkg()
