"""Deadline callbacks for the validate/loader parity tests."""

from __future__ import annotations

from typing import Any


async def late_async(**kwargs: Any) -> None:  # pragma: no cover - never run by the tests
    return None


def late_sync(**kwargs: Any) -> None:  # pragma: no cover - never run by the tests
    return None


NOT_CALLABLE = 42
