"""``training.watermark`` in the spec: its defaults, its bounds, and where it applies."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from airflow_mlops.security import watermark as wm
from airflow_mlops.spec.sections.training import TrainingConfig


def test_defaults_are_the_watermark_modules() -> None:
    config = TrainingConfig(model="xgboost", watermark={})
    assert config.watermark is not None
    assert config.watermark.trigger_rows == wm.DEFAULT_TRIGGER_ROWS
    assert config.watermark.alpha == wm.DEFAULT_ALPHA
    assert config.watermark.key_connection == wm.WATERMARK_CONN_ID
    assert config.watermark.enabled and config.watermark.p0 is None
    assert TrainingConfig(model="mlp").watermark is None


@pytest.mark.parametrize(
    ("watermark", "message"),
    [
        ({"trigger_rows": 5}, "greater than or equal to 16"),
        ({"alpha": 0.7}, "less than 0.5"),
        ({"p0": 1.0}, "less than 1"),
        ({"key": "secret"}, "Extra inputs are not permitted"),  # the key itself never goes in a spec
    ],
)
def test_bounds(watermark: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrainingConfig(model="xgboost", watermark=watermark)


def test_every_model_kind_takes_it() -> None:
    for model in ("mlp", "xgboost", "sklearn.ensemble.RandomForestClassifier", "pkg.fits:fit"):
        assert TrainingConfig(model=model, watermark={}).watermark is not None
