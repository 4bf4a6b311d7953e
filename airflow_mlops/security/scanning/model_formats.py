"""The serialisation format of each model flavor's weights file.

``model_config.json``'s ``format`` and the ML-BOM's: the trainer writes these files
(:mod:`airflow_mlops.training.flavors`), the scanner reads every one of them without loading it
(:mod:`.formats`) and the ML-BOM names them (:mod:`airflow_mlops.security.mlbom`). The table lives
here, below both, so that the security package never imports the trainer. Standard library only.
"""

from __future__ import annotations

__all__ = ["FORMATS"]

#: Serialisation format per flavor (the ML-BOM's ``format``).
FORMATS = {"torch": "safetensors", "xgboost": "ubjson", "lightgbm": "lightgbm-text", "sklearn": "skops"}
