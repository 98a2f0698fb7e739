"""Run a trigger in the background of a test's event loop, as Airflow's triggerer does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

__all__ = ["Collector", "wait_for"]


class Collector:
    """
    Run a trigger in a task and keep its events' payloads (and the error that ended it, if any).

    :param trigger: The trigger (its ``run()`` is iterated); call from a running event loop.
    """

    def __init__(self, trigger: Any) -> None:
        self.trigger = trigger
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for event in self.trigger.run():
                self.events.append(event.payload)
        except Exception as error:
            self.error = error

    async def stop(self) -> None:
        """Cancel the trigger and wait until it ended."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` is true, checking every 0.05 s; fail the test after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)
