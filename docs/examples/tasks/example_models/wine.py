"""A multiclass scikit-learn pipeline of your own (docs/examples/tasks/wine_pipeline.yaml)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def fit(train: pd.DataFrame, ctx: Any) -> dict[str, float]:
    """Standardise, then a multinomial logistic regression; the pipeline takes the raw feature
    columns (``ctx.x``) and the labels as they are (``ctx.save`` records its ``classes_``)."""
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=float(ctx.options.get("C", 1.0)), max_iter=1000)
    )
    model.fit(ctx.x(train), train[ctx.target])
    ctx.save(model)
    return {"train_accuracy": float(model.score(ctx.x(train), train[ctx.target]))}
