"""A notifier used by the spec tests (importable by its dotted path)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseNotifier


class RecordingNotifier(BaseNotifier):
    template_fields = ("channel",)

    def __init__(self, channel: str = "default", **kwargs: Any) -> None:
        super().__init__()
        self.channel = channel

    def notify(self, context: Any) -> None:  # pragma: no cover - called by Airflow
        print(f"notify {self.channel}")
