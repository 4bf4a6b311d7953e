"""One table for the built-in networks' settings: the spec's models and the trainer's check agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel, ValidationError

from airflow_mlops.exceptions import TrainingError
from airflow_mlops.spec.sections.training import PrivacyConfig, TrainingConfig, TrainingParams
from airflow_mlops.training.config import DEFAULT_PARAMS, PRIVACY_DEFAULTS, check_config
from airflow_mlops.training.params import NETWORK_PARAMS, PRIVACY, RUN_SETTINGS, Setting, defaults

REPO = Path(__file__).resolve().parents[3]


def candidates(setting: Setting) -> list[Any]:
    """Values on and beside the setting's bounds, of the setting's type."""
    if setting.kind == "choice":
        return [*setting.choices, "other", None]
    if setting.kind == "int_list":
        small = [setting.item_ge or 1] * (setting.min_items or 1)
        values: list[Any] = [None, [], small, [0, *small[1:]], [-1, *small[1:]]]
        if setting.item_le is not None:
            values += [[setting.item_le, *small[1:]], [setting.item_le + 1, *small[1:]]]
        if setting.max_items is not None:
            values += [[1] * setting.max_items, [1] * (setting.max_items + 1)]
        if setting.min_items:
            values += [[1] * (setting.min_items - 1), [1] * (setting.min_items + 1)]
        return values
    step = 1 if setting.kind == "int" else 1e-6
    values = [None, 0, 1, -1, 0.5 if setting.kind == "number" else 2]
    for bound in setting.bounds().values():
        values += [bound - step, bound, bound + step]
    return [v for v in values if setting.kind == "number" or v is None or isinstance(v, int)]


def spec_accepts(model: type[BaseModel], name: str, value: Any, base: dict[str, Any]) -> bool:
    try:
        model.model_validate({**base, name: value})
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("name", sorted(NETWORK_PARAMS))
def test_the_spec_and_the_trainer_accept_the_same_params(name: str) -> None:
    setting = NETWORK_PARAMS[name]
    for value in candidates(setting):
        spec = spec_accepts(TrainingParams, name, value, {})
        assert setting.accepts(value) == spec, (name, value)
        # cnn needs an image_shape (in the spec's TrainingConfig too); mlp takes any valid one
        model = "mlp" if name == "image_shape" else "cnn"
        config = {"target": "y", "model": model, "params": {"image_shape": [1, 2, 2], name: value}}
        try:
            check_config(config)
            trainer = True
        except TrainingError:
            trainer = False
        assert trainer == spec, (name, value)


@pytest.mark.parametrize("name", sorted(PRIVACY))
def test_the_spec_and_the_trainer_accept_the_same_privacy(name: str) -> None:
    setting = PRIVACY[name]
    for value in candidates(setting):
        spec = spec_accepts(PrivacyConfig, name, value, {"epsilon": 1.0})
        assert setting.accepts(value) == spec, (name, value)
        config = {"target": "y", "privacy": {"epsilon": 1.0, name: value}}
        try:
            check_config(config)
            trainer = True
        except TrainingError:
            trainer = False
        assert trainer == spec, (name, value)


@pytest.mark.parametrize("name", sorted(RUN_SETTINGS))
def test_the_spec_and_the_trainer_accept_the_same_run_settings(name: str) -> None:
    setting = RUN_SETTINGS[name]
    for value in candidates(setting):
        if value is None and not setting.nullable:
            continue  # the trainer reads a missing key as its default
        spec = spec_accepts(TrainingConfig, name, value, {})
        assert setting.accepts(value) == spec, (name, value)


def test_the_defaults_are_the_tables() -> None:
    assert TrainingParams().model_dump() == defaults(NETWORK_PARAMS) == DEFAULT_PARAMS
    assert PrivacyConfig(epsilon=1.0).model_dump() == {"epsilon": 1.0, **defaults(PRIVACY)}
    assert defaults(PRIVACY) == PRIVACY_DEFAULTS
    spec = TrainingConfig()
    assert {name: getattr(spec, name) for name in RUN_SETTINGS} == defaults(RUN_SETTINGS)
    checked = check_config({"target": "y"})
    assert checked["params"] == DEFAULT_PARAMS
    assert {name: checked[name] for name in RUN_SETTINGS} == defaults(RUN_SETTINGS)


def test_the_choices_are_the_tables() -> None:
    fields = TrainingParams.model_fields
    assert get_args(fields["class_weight"].annotation) == NETWORK_PARAMS["class_weight"].choices
    for name in ("device", "precision"):
        assert get_args(TrainingConfig.model_fields[name].annotation) == RUN_SETTINGS[name].choices


def test_the_table_imports_nothing_heavy() -> None:
    """The spec (in the DAG processor) imports the table: standard library only."""
    code = (
        "import sys, airflow_mlops.training.params\n"
        "heavy = {'torch', 'numpy', 'pandas', 'pyarrow', 'sklearn', 'pydantic'}\n"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules} & heavy)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True, timeout=120
    )
    assert proc.stdout.strip() == ""


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (NETWORK_PARAMS["epochs"], "a positive integer up to 10000"),
        (NETWORK_PARAMS["dropout"], "a number in [0, 1)"),
        (NETWORK_PARAMS["class_weight"], "balanced or none"),
        (NETWORK_PARAMS["hidden_units"], "a non-empty list of positive integers up to 65536"),
        (NETWORK_PARAMS["image_shape"], "[channels, height, width]: a list of 3 positive integers or null"),
        (PRIVACY["noise_multiplier"], "a positive number or null"),
        (RUN_SETTINGS["device"], "one of auto, cpu, cuda"),
    ],
)
def test_settings_describe_themselves(setting: Setting, expected: str) -> None:
    assert setting.describe() == expected
