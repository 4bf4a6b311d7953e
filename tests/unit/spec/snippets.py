"""The smallest valid spec, which a spec test appends the section under test to, and the two
helpers the spec tests share: load the text, or collect the issues it is refused with."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_mlops.exceptions import SpecError
from airflow_mlops.spec.loader import load_spec_text

MINIMAL = """\
apiVersion: mlops/v1
pipeline: churn
data:
  source: /data/{{ ds }}.parquet
  target: churned
registry:
  model_name: churn-model
"""


def load(text: str, base: str = MINIMAL) -> Any:
    """The spec ``base + text`` (imports of user code are not checked)."""
    return load_spec_text(base + text, "spec.yaml", check_imports=False)


def issues(text: str, base: str = MINIMAL) -> list[Any]:
    """The issues ``base + text`` is refused with (the test fails if it loads)."""
    with pytest.raises(SpecError) as info:
        load(text, base)
    return info.value.issues
