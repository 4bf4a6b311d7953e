"""A torch module of your own and the fit that trains it (breast_cancer_torch_module.yaml).

The module takes the project's prepared matrix (``Preprocessor``: standardised numbers, one-hot
categories) and returns one logit per row for a binary task (``(rows,)``), one per class for a
multiclass task (``(rows, classes)``) or one value per row for a regression. ``ctx.save`` stores
its weights as safetensors with ``init_kwargs`` and the class's import path: the model is rebuilt
by importing this module, never by unpickling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from airflow_mlops.training.model import Preprocessor


class ResidualNet(nn.Module):
    def __init__(self, input_dim: int, hidden: int = 32, outputs: int = 1) -> None:
        super().__init__()
        self.inp = nn.Linear(input_dim, hidden)
        self.block = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.out = nn.Linear(hidden, outputs)
        self.outputs = outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        y = self.out(torch.relu(h + self.block(h)))
        return y.squeeze(-1) if self.outputs == 1 else y


def fit(train: pd.DataFrame, ctx: Any) -> dict[str, float]:
    torch.manual_seed(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    val = rng.random(len(train)) < 0.2
    fit_rows, val_rows = train[~val], train[val]
    pre = Preprocessor.fit(fit_rows, ctx.feature_columns)
    x = torch.from_numpy(pre.transform(fit_rows))
    y = torch.from_numpy(ctx.y(fit_rows)).float()
    hidden = int(ctx.options.get("hidden", 32))
    net = ResidualNet(x.shape[1], hidden)
    optimizer = torch.optim.Adam(net.parameters(), lr=float(ctx.options.get("lr", 0.01)), weight_decay=1e-4)
    loss = torch.zeros(())
    for _ in range(int(ctx.options.get("epochs", 150))):
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(net(x), y)
        loss.backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        scores = torch.sigmoid(net(torch.from_numpy(pre.transform(val_rows)))).numpy()
    threshold = ctx.choose_threshold(ctx.y(val_rows), scores)
    ctx.save(net, pre, init_kwargs={"input_dim": int(x.shape[1]), "hidden": hidden})
    return {"final_loss": float(loss), "threshold": threshold}
