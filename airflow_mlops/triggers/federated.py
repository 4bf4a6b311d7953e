"""The trigger that waits for a federated run on a Flower SuperLink.

:class:`FlowerRunTrigger` asks the SuperLink for the run's status (``flwr ls --run-id``) every
``poll_interval`` seconds and fires one event when the run has finished (completed, failed or
stopped) or when ``deadline`` (epoch seconds) has passed. When a user kills the deferred task
(mark failed, clear), :meth:`FlowerRunTrigger.on_kill` stops the run (``flwr stop``). It reads the
SuperLink's address from the Airflow connection in the triggerer, never from its own arguments.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_mlops.training.federated import flower_cli

log = logging.getLogger(__name__)


class FlowerRunTrigger(BaseTrigger):
    """Wait for Flower run ``run_id`` to finish.

    :param run_id: the run ``flwr run`` started.
    :param flower_conn_id: the Airflow connection of the SuperLink (see
        :class:`~airflow_mlops.hooks.flower.FlowerHook`).
    :param poll_interval: seconds between two status requests.
    :param deadline: epoch seconds after which the trigger fires a ``timeout`` event.

    Events: ``{"run_id", "status", "details"}``; ``status`` is ``finished:completed``,
    ``finished:failed``, ``finished:stopped``, ``timeout`` or ``error`` (the SuperLink could not be
    asked; ``details`` says why).
    """

    def __init__(self, *, run_id: int, flower_conn_id: str, poll_interval: float, deadline: float) -> None:
        super().__init__()
        if not float(poll_interval) > 0:
            raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval!r}")
        self.run_id = int(run_id)
        self.flower_conn_id = str(flower_conn_id)
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "run_id": self.run_id,
                "flower_conn_id": self.flower_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
            },
        )

    async def _superlink(self) -> flower_cli.SuperLink:
        from airflow_mlops.hooks.flower import FlowerHook, superlink_settings

        conn = await FlowerHook.aget_connection(self.flower_conn_id)
        return flower_cli.SuperLink(
            **superlink_settings(self.flower_conn_id, conn.host, conn.port, conn.extra_dejson or {})
        )

    async def _flwr(self, superlink: flower_cli.SuperLink, command: str) -> str:
        """Run ``flwr ls`` / ``flwr stop`` for the run with a private Flower home; its stdout."""
        with tempfile.TemporaryDirectory(prefix="mlops-flwr-") as home:
            env = flower_cli.write_flower_home(Path(home), superlink)
            argv = (
                flower_cli.list_command(superlink, self.run_id)
                if command == "ls"
                else flower_cli.stop_command(superlink, self.run_id)
            )
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={**_base_env(), **env},
            )
            out, _ = await proc.communicate()
            return out.decode(errors="replace")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            superlink = await self._superlink()
        except Exception as exc:
            yield TriggerEvent({"run_id": self.run_id, "status": "error", "details": str(exc)})
            return
        while True:
            try:
                state = flower_cli.parse_status(await self._flwr(superlink, "ls"), self.run_id)
            except Exception as exc:
                yield TriggerEvent({"run_id": self.run_id, "status": "error", "details": str(exc)})
                return
            if flower_cli.is_finished(state["status"]):
                yield TriggerEvent(
                    {"run_id": self.run_id, "status": state["status"], "details": state["details"]}
                )
                return
            if time.time() > self.deadline:
                yield TriggerEvent(
                    {"run_id": self.run_id, "status": "timeout", "details": f"still {state['status']}"}
                )
                return
            log.info("Flower run %s: %s (%.0fs)", self.run_id, state["status"], state.get("elapsed") or 0)
            await asyncio.sleep(self.poll_interval)

    async def on_kill(self) -> None:
        """The task was killed by a user: stop the run on the SuperLink."""
        superlink = await self._superlink()
        log.info(
            "stopping Flower run %s: %s", self.run_id, (await self._flwr(superlink, "stop")).strip()[-300:]
        )


def _base_env() -> dict[str, str]:
    """PATH, HOME and the locale only: the Flower CLI gets nothing else of the triggerer's environment."""
    import os

    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
