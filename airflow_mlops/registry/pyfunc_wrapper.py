"""MLflow "models from code" wrapper for models trained by airflow-mlops.

MLflow copies this file into every registered model, so ``mlflow.pyfunc.load_model(
"models:/<name>@champion")`` works for serving. It loads weights from safetensors only: nothing in
a registered model is unpickled. The model scanner trusts this file by its exact sha256.
"""

from __future__ import annotations

from typing import Any

import mlflow  # noqa: TID253 - only ever loaded by MLflow when a model is loaded
from mlflow.pyfunc import PythonModel  # noqa: TID253


class SafetensorsTabularModel(PythonModel):
    """Predicts the positive-class probability for each row of a DataFrame."""

    def load_context(self, context: Any) -> None:
        from airflow_mlops.training.model import load_predictor

        self._predictor = load_predictor(context.artifacts["weights"])

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return self._predictor.predict_proba(model_input)


mlflow.models.set_model(SafetensorsTabularModel())
