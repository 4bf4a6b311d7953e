"""Callables a tampered ``module_class`` may name: each records a call, none may happen."""

from __future__ import annotations

from typing import Any

CALLS: list[str] = []


class Trap:
    """Not a torch module: the loader must refuse it without instantiating it."""

    def __init__(self, **kwargs: Any) -> None:
        CALLS.append(f"Trap({kwargs})")


def make_module(**kwargs: Any) -> Any:
    """A function that returns a module: not a class, so refused without a call."""
    CALLS.append(f"make_module({kwargs})")
    import torch

    return torch.nn.Linear(1, 1)
