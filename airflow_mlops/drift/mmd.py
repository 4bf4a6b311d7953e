"""Maximum mean discrepancy (MMD) two-sample test with a permutation p-value, on torch.

The test sees all numeric features together, so it catches a change in how features move
*together* (a correlation shift) that leaves every marginal distribution, and so every univariate
test, unchanged.

* Kernel: Gaussian RBF ``k(x, y) = exp(-|x - y|^2 / (2 sigma^2))`` on the features standardised
  with the reference's mean and std; ``sigma`` is the median pairwise distance of (a subsample of
  at most 1,000 rows of) the pooled data (the median heuristic).
* Statistic: the **unbiased** estimator of MMD^2 (diagonal terms left out), as alibi-detect's
  ``MMDDrift`` uses.
* One ``(n + m)^2`` kernel matrix is built once. A permutation only relabels its rows, so all
  permutations are evaluated together as one matrix product ``K @ S``, where column ``b`` of ``S``
  holds ``+1/n`` for the rows permutation ``b`` calls "reference" and ``-1/m`` for the others
  (column 0 is the observed split). ``S^T K S`` gives the biased statistics with little
  cancellation even in float32; the unbiased ones follow from them and the kernel's row sums.
* p-value: ``(1 + #{permuted >= observed}) / (1 + permutations)``, a valid test at any alpha.

torch is imported inside the function; float32 on every device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_mlops.exceptions import DriftInputError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MMDResult", "mmd_permutation_test", "resolve_device"]

_BANDWIDTH_ROWS = 1000


@dataclass(frozen=True)
class MMDResult:
    statistic: float
    p_value: float
    bandwidth: float
    permutations: int
    device: str


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; anything else is checked."""
    try:
        import torch
    except ImportError as exc:
        raise DriftInputError(
            "multivariate drift (MMD) needs torch, which is not installed: install the 'train' extra "
            "(pip install 'airflow-mlops[train]') or pass multivariate=False"
        ) from exc
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DriftInputError(
            f"device {device!r} is not a torch device; use 'auto', 'cpu' or 'cuda[:N]'"
        ) from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise DriftInputError(
            f"device {device!r} was asked for but torch sees no GPU; use device='auto' or 'cpu'"
        )
    if parsed.type not in ("cpu", "cuda"):
        raise DriftInputError(f"device {device!r} is not supported; use 'auto', 'cpu' or 'cuda[:N]'")
    return str(parsed)


def mmd_permutation_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    permutations: int = 100,
    seed: int = 0,
    device: str = "auto",
    batch: int = 128,
) -> MMDResult:
    """Unbiased MMD^2 of two ``(rows, features)`` float arrays (already standardised, no NaN) and
    its permutation p-value. Both need at least 2 rows."""
    import numpy as np
    import torch

    n, m = len(reference), len(current)
    if n < 2 or m < 2:
        raise DriftInputError(f"MMD needs at least 2 rows in each window, got {n} and {m}")
    dev = torch.device(resolve_device(device))
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    x = torch.from_numpy(np.concatenate([reference, current]).astype(np.float32, copy=False)).to(dev)
    total = n + m

    with torch.no_grad():
        sample = torch.randperm(total, generator=gen)[:_BANDWIDTH_ROWS].to(dev)
        distances = torch.pdist(x[sample])
        sigma = float(distances.median()) if distances.numel() else 0.0
        if not sigma > 0:
            positive = distances[distances > 0]
            sigma = float(positive.mean()) if positive.numel() else 1.0

        sq = (x * x).sum(dim=1)
        kernel = x @ x.T  # squared distances |a|^2 + |b|^2 - 2 a.b, in place
        kernel.mul_(-2.0).add_(sq[:, None]).add_(sq[None, :])
        kernel.clamp_(min=0.0).fill_diagonal_(0.0)
        kernel.mul_(-1.0 / (2.0 * sigma * sigma)).exp_()
        row_sums = kernel.sum(dim=1).double()  # float32 cascade sums
        grand = float(row_sums.sum())

        stats = []
        # Column 0: the observed split; then the permutations, `batch` columns per product.
        splits = [torch.arange(total)[None, :]]
        perms = torch.argsort(torch.rand(permutations, total, generator=gen), dim=1)
        splits += list(perms.split(batch))
        flat = torch.cat(splits)
        for lo in range(0, flat.shape[0], batch):
            order = flat[lo : lo + batch].to(dev)
            is_ref = torch.zeros(order.shape, dtype=torch.bool, device=dev)
            is_ref.scatter_(1, order[:, :n], True)
            weights = torch.where(is_ref, 1.0 / n, -1.0 / m).to(torch.float32).T  # (total, b)
            product = kernel @ weights
            biased = (weights.double() * product.double()).sum(dim=0)  # s^T K s
            ref_proj = (is_ref.T.double() * product.double()).sum(dim=0)  # a^T K s
            r_a = (is_ref.double() * row_sums[None, :]).sum(dim=1)  # a^T K 1
            k_xx = (ref_proj + r_a / m) / (1.0 / n + 1.0 / m)
            k_xy = r_a - k_xx
            k_yy = grand - 2.0 * k_xy - k_xx
            # unbiased = biased - (diagonal terms) + (n^2 -> n(n-1) normalisation): small corrections
            unbiased = (
                biased + k_xx / (n * n * (n - 1)) - 1.0 / (n - 1) + k_yy / (m * m * (m - 1)) - 1.0 / (m - 1)
            )
            stats.append(unbiased.cpu())
        values = torch.cat(stats)
    observed = float(values[0])
    exceed = int((values[1:] >= observed).sum())
    return MMDResult(
        statistic=observed,
        p_value=(1 + exceed) / (1 + permutations),
        bandwidth=sigma,
        permutations=permutations,
        device=str(dev),
    )
