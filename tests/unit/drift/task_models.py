"""Small real models of each task for the monitor's tests, trained once per test session.

Each data set is split once (seeded): the training rows are the champion's reference, the
held-out rows a clean live window. The models are fitted here and stored with
:func:`airflow_mlops.training.flavors.save_model_dir` (the format the pipeline writes), then
loaded with :func:`~airflow_mlops.training.flavors.load_predictor`, as the monitor loads them.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

TARGET = "target"


@dataclass(frozen=True)
class TaskModel:
    task: str
    reference: pd.DataFrame  # the rows the model was trained on (features and target)
    holdout: pd.DataFrame  # held-out rows of the same data set: a clean live window
    model_dir: Path
    features: list[str]

    def predictor(self) -> Any:
        from airflow_mlops.training.flavors import load_predictor

        return load_predictor(self.model_dir)


def _scratch() -> Path:
    path = Path(tempfile.mkdtemp(prefix="mlops-task-models-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def trained(name: str) -> TaskModel:
    """``wine`` (multiclass, XGBoost), ``diabetes`` (regression, LightGBM) or
    ``breast_cancer`` (binary, XGBoost; positive label 1)."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    from airflow_mlops.training.flavors import save_model_dir

    loader, task = {
        "wine": (datasets.load_wine, "multiclass"),
        "diabetes": (datasets.load_diabetes, "regression"),
        "breast_cancer": (datasets.load_breast_cancer, "binary"),
    }[name]
    frame = loader(as_frame=True).frame
    reference, holdout = train_test_split(
        frame,
        test_size=0.35,
        random_state=0,
        stratify=None if task == "regression" else frame[TARGET],
    )
    reference, holdout = reference.reset_index(drop=True), holdout.reset_index(drop=True)
    features = [c for c in frame.columns if c != TARGET]
    x, y = reference[features], reference[TARGET]
    if task == "regression":
        import lightgbm

        model: Any = lightgbm.LGBMRegressor(n_estimators=60, learning_rate=0.1, n_jobs=1, verbose=-1)
    else:
        import xgboost

        model = xgboost.XGBClassifier(n_estimators=40, max_depth=3, n_jobs=1, random_state=0)
    model.fit(x, y)
    out = _scratch() / name
    out.mkdir()
    save_model_dir(
        out,
        model,
        task=task,
        target=TARGET,
        features=features,
        positive_label=1 if task == "binary" else None,
        seed=0,
    )
    return TaskModel(task=task, reference=reference, holdout=holdout, model_dir=out, features=features)
