"""Pickle payloads shared by the scanner's tests: objects whose unpickling would run code."""

from __future__ import annotations

import os


class _SystemCall:
    """Unpickling this runs a shell command (the classic pickle RCE)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


class _EvalCall:
    """Unpickling this evaluates Python source."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (eval, ("__import__('os').getcwd()",))
