"""Fit entrypoints (``userpkg.fits:<name>``) for the FitContext tests.

Each stores the model it saved in :data:`LAST` so a test can compare its predictions before the
save with the loaded model's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from airflow_mlops.training.model import Preprocessor

from .nets import SmallNet, TwoColumnNet

LAST: dict[str, Any] = {}


def _threshold(ctx: Any, frame: pd.DataFrame, scores: np.ndarray) -> None:
    if ctx.task == "binary":
        ctx.choose_threshold(ctx.y(frame), scores)


def pipeline_on_labels(train: pd.DataFrame, ctx: Any) -> dict[str, float]:
    """A scikit-learn pipeline fitted on the raw target column (its classes_ are the labels)."""
    if ctx.task == "regression":
        model = make_pipeline(StandardScaler(), Ridge()).fit(ctx.x(train), train[ctx.target])
    else:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(ctx.x(train), train[ctx.target])
        if ctx.task == "binary":
            positive = [str(c) for c in model.classes_].index(str(ctx.positive_label))
            _threshold(ctx, train, model.predict_proba(ctx.x(train))[:, positive])
    ctx.save(model)
    LAST.update(model=model, ctx=ctx)
    return {"rows": len(train)}


def logistic_on_y(train: pd.DataFrame, ctx: Any) -> dict[str, float]:
    """A classifier fitted on ``ctx.y`` (classes_ 0..K-1), saved without saying so."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(ctx.x(train), ctx.y(train))
    if ctx.task == "binary":
        _threshold(ctx, train, model.predict_proba(ctx.x(train))[:, 1])
    ctx.save(model, class_order=ctx.options.get("class_order"))
    LAST.update(model=model, ctx=ctx)
    return {}


def lightgbm_on_labels(train: pd.DataFrame, ctx: Any) -> dict[str, float]:
    """LightGBM's scikit-learn API fitted on the raw (string) labels."""
    import lightgbm

    model = lightgbm.LGBMClassifier(n_estimators=15, min_child_samples=5, verbose=-1, random_state=ctx.seed)
    model.fit(ctx.x(train), train[ctx.target])
    if ctx.task == "binary":
        positive = [str(c) for c in model.classes_].index(str(ctx.positive_label))
        _threshold(ctx, train, model.predict_proba(ctx.x(train))[:, positive])
    ctx.save(model)
    LAST.update(model=model, ctx=ctx)
    return {}


def torch_module(train: pd.DataFrame, ctx: Any) -> dict[str, float]:
    """A user's own torch module on the project's prepared matrix; a regression learns a
    standardised target and saves the scaling."""
    torch.manual_seed(ctx.seed)
    pre = Preprocessor.fit(train, ctx.feature_columns)
    x = torch.from_numpy(pre.transform(train))
    outputs = len(ctx.classes) if ctx.task == "multiclass" else 1
    net = SmallNet(x.shape[1], outputs)
    y = ctx.y(train)
    scaling = None
    if ctx.task == "regression":
        scaling = {"mean": float(y.mean()), "std": float(y.std())}
        y = (y - scaling["mean"]) / scaling["std"]
    target = torch.from_numpy(np.asarray(y))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(int(ctx.options.get("steps", 60))):
        optimizer.zero_grad()
        out = net(x)
        if ctx.task == "multiclass":
            loss = torch.nn.functional.cross_entropy(out, target)
        elif ctx.task == "binary":
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out, target.float())
        else:
            loss = torch.nn.functional.mse_loss(out, target.float())
        loss.backward()
        optimizer.step()
    net.eval()
    if ctx.task == "binary":
        with torch.no_grad():
            _threshold(ctx, train, torch.sigmoid(net(x)).numpy())
    ctx.save(net, pre, init_kwargs={"input_dim": int(x.shape[1]), "outputs": outputs}, target_scaling=scaling)
    LAST.update(model=net, ctx=ctx, preprocessor=pre, scaling=scaling)
    return {"loss": float(loss.detach())}


def two_column_net(train: pd.DataFrame, ctx: Any) -> dict[str, float]:
    """Saves a network with two outputs for a binary task (save cannot tell: it is your module)."""
    pre = Preprocessor.fit(train, ctx.feature_columns)
    net = TwoColumnNet(pre.output_dim)
    ctx.save(net, pre, init_kwargs={"input_dim": pre.output_dim})
    return {}


def no_threshold(train: pd.DataFrame, ctx: Any) -> dict[str, float]:
    """A binary fit that never calls ctx.choose_threshold."""
    model = LogisticRegression(max_iter=2000).fit(ctx.x(train), ctx.y(train))
    ctx.save(model)
    return {}


def threshold_on_multiclass(train: pd.DataFrame, ctx: Any) -> dict[str, float]:
    """Calls ctx.choose_threshold on a multiclass task."""
    ctx.choose_threshold(np.zeros(len(train)), np.zeros(len(train)))
    return {}


def xgboost_on_y(train: pd.DataFrame, ctx: Any) -> dict[str, float]:
    """XGBoost's scikit-learn API on the feature columns (a DataFrame) and ctx.y."""
    import xgboost

    model = xgboost.XGBClassifier(n_estimators=15, max_depth=3, random_state=ctx.seed)
    model.fit(ctx.x(train), ctx.y(train))
    if ctx.task == "binary":
        _threshold(ctx, train, model.predict_proba(ctx.x(train))[:, 1])
    ctx.save(model)
    LAST.update(model=model, ctx=ctx)
    return {}


def relabelled(train: pd.DataFrame, ctx: Any) -> dict[str, float]:
    """Fitted on labels of its own ("no"/"yes"): neither the target's nor ctx.y's."""
    model = LogisticRegression(max_iter=2000).fit(ctx.x(train), np.where(ctx.y(train) == 1, "yes", "no"))
    ctx.save(model)
    return {}


def returns(train: pd.DataFrame, ctx: Any) -> Any:
    """Returns whatever the options say (a fit must return a mapping of scalars)."""
    ctx.save(make_pipeline(StandardScaler(), LogisticRegression()).fit(ctx.x(train), train[ctx.target]))
    return ctx.options["value"]


def records_its_call(train: pd.DataFrame, ctx: Any) -> dict[str, float]:
    """Records that it ran (a fit the context should have refused to start)."""
    LAST["called"] = True
    return {}
