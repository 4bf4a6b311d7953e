"""A torch module of a user's own (rebuilt from ``module_class`` and ``init_kwargs``)."""

from __future__ import annotations

import torch
from torch import nn


class SmallNet(nn.Module):
    """Linear -> ReLU -> Linear; one output per row is returned as ``(rows,)``."""

    def __init__(self, input_dim: int, outputs: int = 1, hidden: int = 8) -> None:
        super().__init__()
        self.outputs = outputs
        self.body = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out.squeeze(-1) if self.outputs == 1 else out


class TwoColumnNet(SmallNet):
    """Returns ``(rows, 2)`` whatever the task: wrong for a binary or regression model."""

    def __init__(self, input_dim: int) -> None:
        super().__init__(input_dim, outputs=2)
