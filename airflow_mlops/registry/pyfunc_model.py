"""MLflow "models from code" wrapper for the models airflow-mlops trains, of every flavor.

MLflow copies this file into every registered model, so ``mlflow.pyfunc.load_model(
"models:/<name>@champion")`` works for serving. The model is rebuilt by
:func:`airflow_mlops.training.flavors.load_predictor` from safetensors, XGBoost's UBJSON,
LightGBM's text model or skops (with only the types the scanner trusts): nothing in a registered
model is unpickled. The model scanner trusts this file by its exact sha256.

``predict(df)`` answers, by the model's task (its ``model_config.json``):

- ``binary``: a float64 array, the positive class's probability per row;
- ``multiclass``: a DataFrame of class probabilities, one column per class (the class labels as
  text, in the model's class order), on the input's index: ``predict(df).idxmax(axis=1)`` is the
  predicted class;
- ``regression``: a float64 array of predicted values.

``predict(df, params={"output": "labels"})`` answers predicted labels instead: an array of class
labels as text (binary: at the model's operating threshold; multiclass: the most probable class;
a regression's values are its values). The serving environment needs airflow-mlops and the
flavor's library (listed in the model's ``requirements.txt``).
"""

from __future__ import annotations

from typing import Any

import mlflow  # noqa: TID253 - only ever loaded by MLflow when a model is loaded
import pandas as pd  # noqa: TID253 - the type hint MLflow reads: a table in, no schema inferred
from mlflow.pyfunc import PythonModel  # noqa: TID253

OUTPUTS = ("probabilities", "labels")


class AirflowMLOpsModel(PythonModel):
    """Class probabilities (binary: the positive class's), or values, for each row of a DataFrame."""

    def load_context(self, context: Any) -> None:
        from airflow_mlops.training.flavors import load_predictor

        self._predictor = load_predictor(context.artifacts["weights"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        output = (params or {}).get("output") or "probabilities"
        if output not in OUTPUTS:
            raise ValueError(f"params output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        predictor = self._predictor
        if output == "labels":
            return predictor.predict(frame)
        scores = predictor.predict_scores(frame)
        if predictor.task == "multiclass":
            return pd.DataFrame(scores, columns=list(predictor.classes), index=frame.index)
        return scores


mlflow.models.set_model(AirflowMLOpsModel())
