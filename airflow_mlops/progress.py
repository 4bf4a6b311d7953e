"""Progress lines for long stages: items (files, rows, epochs) and bytes, at most every few seconds.

A stage that moves or reads a lot (scanning a model of many GB, copying a model directory to or
from S3, signing) says how far it is, so its task log shows movement rather than silence::

    progress = Progress(log, "Scanning model /tmp/m", total_items=12, total_bytes=4_300_000_000)
    for path in files:
        ...
        progress.advance(items=1, nbytes=path.stat().st_size)
    progress.done()

Lines are throttled (``every`` seconds, default 10); ``done`` always logs the totals and the rate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: Seconds between two progress lines of one stage.
DEFAULT_EVERY = 10.0


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop returns


class Progress:
    """Counts items and bytes of one stage and logs them, throttled."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        unit: str = "files",
        total_items: int | None = None,
        total_bytes: int | None = None,
        every: float = DEFAULT_EVERY,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.log = logger
        self.what = what
        self.unit = unit
        self.total_items = total_items
        self.total_bytes = total_bytes
        self.every = every
        self._clock: Callable[[], float] = clock or time.monotonic
        self.items = 0
        self.nbytes = 0
        self.started = self._clock()
        self._last = self.started
        self.lines = 0

    def advance(self, *, items: int = 0, nbytes: int = 0) -> None:
        self.items += items
        self.nbytes += nbytes
        now = self._clock()
        if now - self._last >= self.every:
            self._last = now
            self._emit("in progress")

    def done(self) -> None:
        self._emit("done")

    def line(self, state: str) -> str:
        elapsed = max(self._clock() - self.started, 1e-9)
        parts = [
            f"{self.items}"
            + (f"/{self.total_items}" if self.total_items is not None else "")
            + f" {self.unit}"
        ]
        if self.nbytes or self.total_bytes:
            size = human_bytes(self.nbytes)
            if self.total_bytes:
                size += f"/{human_bytes(self.total_bytes)} ({100 * self.nbytes / self.total_bytes:.0f} %)"
            parts.append(size)
            parts.append(f"{human_bytes(self.nbytes / elapsed)}/s")
        return f"{self.what}: {state}: {', '.join(parts)}, {elapsed:.1f} s"

    def _emit(self, state: str) -> None:
        self.lines += 1
        self.log.info("%s", self.line(state))
