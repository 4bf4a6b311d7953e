"""The names models packaged by the first release import: their MLflow wrapper calls
``airflow_mlops.training.model.load_predictor``, so this module keeps that name (and the networks
it used to hold) for them to load. New code imports :mod:`airflow_mlops.training.networks` and
:func:`airflow_mlops.training.flavors.load_predictor`.
"""

from __future__ import annotations

from airflow_mlops.training.flavors import load_predictor
from airflow_mlops.training.networks import CNN, MAX_CATEGORIES, MLP, MODEL_TYPES, Preprocessor

__all__ = ["CNN", "MAX_CATEGORIES", "MLP", "MODEL_TYPES", "Preprocessor", "load_predictor"]
