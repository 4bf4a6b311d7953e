"""The MMD permutation test against a direct float64 computation."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_mlops.drift.mmd import mmd_permutation_test, resolve_device
from airflow_mlops.exceptions import DriftInputError

torch = pytest.importorskip("torch")


def unbiased_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    z = np.concatenate([x, y]).astype(np.float64)
    n, m = len(x), len(y)
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    k = np.exp(-d2 / (2 * sigma**2))
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    return float(
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )


def permutation_p_value(x: np.ndarray, y: np.ndarray, sigma: float, permutations: int, seed: int) -> float:
    """The same permutations as the implementation, evaluated one by one in float64."""
    z = np.concatenate([x, y])
    n = len(x)
    gen = torch.Generator().manual_seed(seed)
    torch.randperm(len(z), generator=gen)  # the bandwidth subsample draws first
    perms = torch.argsort(torch.rand(permutations, len(z), generator=gen), dim=1).numpy()
    observed = unbiased_mmd2(x, y, sigma)
    hits = sum(unbiased_mmd2(z[p[:n]], z[p[n:]], sigma) >= observed for p in perms)
    return (1 + hits) / (1 + permutations)


@pytest.mark.parametrize(("shift", "n", "m"), [(0.0, 120, 90), (0.25, 150, 130), (1.0, 60, 80)])
def test_statistic_and_p_value_equal_a_float64_loop(shift: float, n: int, m: int) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 4))
    y = rng.normal(size=(m, 4))
    y[:, 0] += shift
    result = mmd_permutation_test(x, y, permutations=40, seed=9, device="cpu", batch=16)
    expected = unbiased_mmd2(x, y, result.bandwidth)
    assert result.statistic == pytest.approx(expected, rel=1e-4, abs=1e-7)
    assert result.p_value == pytest.approx(permutation_p_value(x, y, result.bandwidth, 40, 9))
    z = np.concatenate([x, y])
    pooled = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))[np.triu_indices(len(z), 1)]
    assert result.bandwidth == pytest.approx(np.median(pooled), rel=1e-4)  # all rows < 1000: exact median
    assert result.device == "cpu" and result.permutations == 40


def test_a_correlation_shift_gets_the_smallest_p_value() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 2))
    a = rng.normal(size=800)
    y = np.c_[a, 0.9 * a + np.sqrt(1 - 0.81) * rng.normal(size=800)]
    assert mmd_permutation_test(x, y, permutations=30, device="cpu").p_value == pytest.approx(1 / 31)


def test_bad_devices_and_tiny_windows_are_errors() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DriftInputError, match="not a torch device"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(DriftInputError, match="torch sees no GPU"):
            resolve_device("cuda")
    with pytest.raises(DriftInputError, match="at least 2 rows"):
        mmd_permutation_test(np.zeros((1, 2)), np.zeros((5, 2)), device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_cuda_gives_the_cpu_decision() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(500, 3)), rng.normal(0.2, 1, size=(500, 3))
    cpu = mmd_permutation_test(x, y, permutations=50, device="cpu")
    gpu = mmd_permutation_test(x, y, permutations=50, device="cuda")
    assert gpu.device.startswith("cuda") and gpu.p_value == cpu.p_value
    assert gpu.statistic == pytest.approx(cpu.statistic, rel=1e-3)
