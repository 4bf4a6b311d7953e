"""The smallest valid spec, which a spec test appends the section under test to, and the
helpers the spec tests share: that header for another pipeline, load the text, or collect the
issues it is refused with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from airflow_mlops.exceptions import SpecError
from airflow_mlops.spec.loader import load_spec_text


def header(
    pipeline: str = "churn",
    target: str = "churned",
    *,
    model_name: str | None = None,
    features: Sequence[str] = (),
) -> str:
    """The smallest valid spec of ``pipeline``: its data (``/data/{{ ds }}.parquet``) with
    ``target`` (and ``features``, when given) and its registered model (``<pipeline>-model``
    unless ``model_name`` is given)."""
    listed = f"  features: [{', '.join(features)}]\n" if features else ""
    return (
        "apiVersion: mlops/v1\n"
        f"pipeline: {pipeline}\n"
        "data:\n"
        "  source: /data/{{ ds }}.parquet\n"
        f"  target: {target}\n"
        f"{listed}"
        "registry:\n"
        f"  model_name: {model_name or pipeline + '-model'}\n"
    )


MINIMAL = header()


def load(text: str, base: str = MINIMAL) -> Any:
    """The spec ``base + text`` (imports of user code are not checked)."""
    return load_spec_text(base + text, "spec.yaml", check_imports=False)


def issues(text: str, base: str = MINIMAL) -> list[Any]:
    """The issues ``base + text`` is refused with (the test fails if it loads)."""
    with pytest.raises(SpecError) as info:
        load(text, base)
    return info.value.issues
