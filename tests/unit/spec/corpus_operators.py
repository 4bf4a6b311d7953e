"""An operator for the spec corpus tests: its signature accepts what it then refuses at build time."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator


class PickyOperator(BaseOperator):
    """Takes ``level`` (any int by its signature) and refuses levels above 3 when it is built."""

    def __init__(self, *, level: int = 1, **kwargs: Any) -> None:
        if level > 3:
            raise ValueError(f"level must be at most 3, got {level}")
        super().__init__(**kwargs)
        self.level = level

    def execute(self, context: Any) -> None:  # pragma: no cover - never run by the tests
        return None
