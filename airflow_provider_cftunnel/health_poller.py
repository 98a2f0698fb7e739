"""One health poll per (connection, account, poll interval, hook settings) for every watcher of a triggerer.

Teams model a fleet as one asset per service, so a triggerer may run hundreds of health watchers of one account.
Polled one by one they would spend the user's whole Cloudflare request pool; one tunnel list answers for 1,000
tunnels. So every :class:`~airflow_provider_cftunnel.triggers.health.CloudflareTunnelHealthTrigger` of one event
loop with the same :data:`StreamKey` registers what it selects (a
:class:`~airflow_provider_cftunnel.health_plan.Demand`) with one :class:`HealthPoller`, which polls once per
interval for all of them (:func:`~airflow_provider_cftunnel.health.poll_health`) and hands each subscriber the
same :class:`~airflow_provider_cftunnel.health.Snapshot`; each watcher then applies its own selection, rule and
state. On Airflow 3.3+ the triggerer's shared stream is the one subscriber and fans the snapshots out; before
3.3 every watcher subscribes itself. Either way the cost is the poller's, whatever the number of watchers.

The poller is keyed by the running loop (tests run several), single-flight, draws every request from the
credential's request budget, and stops when its last subscriber leaves.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_cftunnel.exceptions import CloudflareAPIError
from airflow_provider_cftunnel.pollers import LoopPoller

if TYPE_CHECKING:
    from airflow_provider_cftunnel.health import PollMemory, Snapshot
    from airflow_provider_cftunnel.health_plan import Demand

__all__ = ["HealthPoller", "PollResult", "StreamKey", "stream_key"]

log = logging.getLogger(__name__)

#: ``(conn_id, account_id or "" for the connection's, poll_interval, hook_params as sorted JSON)``
StreamKey = tuple[str, str, float, str]
#: After a demand registers, wait this long for its siblings before the first poll (the triggerer starts many
#: watchers in one go; one poll should take their baseline together).
SETTLE = 0.2


def stream_key(kwargs: dict[str, Any]) -> StreamKey:
    """
    Return the key of the poll a health trigger with these keyword arguments shares.

    :param kwargs: The trigger's serialized keyword arguments.
    """
    return (
        str(kwargs.get("cloudflare_conn_id") or "cloudflare_default"),
        str(kwargs.get("account_id") or ""),
        float(kwargs.get("poll_interval") or 60.0),
        json.dumps(kwargs.get("hook_params") or {}, sort_keys=True),
    )


@dataclass(frozen=True)
class PollResult:
    """
    One poll's outcome, as every subscriber gets it.

    :param snapshot: What the poll read, or ``None`` when it failed.
    :param error: The error that stopped it, or ``None``.
    :param round: The poll's number (1, 2, ...).
    """

    snapshot: Snapshot | None
    error: CloudflareAPIError | None
    round: int


class HealthPoller(LoopPoller[StreamKey]):
    """
    Polls tunnel health for every registered demand of one :data:`StreamKey` in one event loop.

    Found or created with :meth:`for_key`. Watchers :meth:`register` their demand and read :meth:`results`
    (directly, or through Airflow's shared stream).

    :param key: What the watchers share: connection, account, interval, hook settings.
    """

    def __init__(self, key: StreamKey) -> None:
        super().__init__(key)
        self.demands: dict[int, Demand] = {}
        self.subscribers = 0
        self.rounds = 0
        self.latest: PollResult | None = None
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._memory: PollMemory | None = None

    def register(self, demand: Demand) -> int:
        """
        Add a watcher's demand to every poll from the next one on; return its handle for :meth:`unregister`.

        :param demand: The watcher's selection, rule and ``connections`` bound.
        """
        handle = next(self._ids)
        self.demands[handle] = demand
        self._wake()
        return handle

    def unregister(self, handle: int) -> None:
        """Remove a demand (its watcher stopped)."""
        self.demands.pop(handle, None)
        self._forget_if_idle()

    async def results(self) -> AsyncGenerator[PollResult, None]:
        """Subscribe: yield every poll's result from the next one on; polling runs while anyone subscribes."""
        self.subscribers += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"cloudflare-tunnel-health-poller-{self.key[0]}")
        seen = self.rounds
        try:
            while True:
                seen, result = await self._next_round(seen)
                if result is not None:
                    yield result
        finally:
            self.subscribers -= 1
            if not self.subscribers and self._task is not None:
                self._task.cancel()
            self._forget_if_idle()

    async def _next_round(self, seen: int) -> tuple[int, PollResult | None]:
        """Wait for a poll after round ``seen``; return its number and result."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.rounds > seen)
            return self.rounds, self.latest

    def _forget_if_idle(self) -> None:
        if not (self.subscribers or self.demands):
            self.forget()

    def _wake(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        if self._task is not None and not self._task.done():
            asyncio.get_running_loop().create_task(notify())

    async def _run(self) -> None:
        from airflow_provider_cftunnel.health import PollMemory, poll_health
        from airflow_provider_cftunnel.hooks import hook_for_triggerer
        from airflow_provider_cftunnel.triggers.tunnel import TunnelPoller, poll_delay

        conn_id, account_id, interval, hook_params = self.key
        hook: Any = None
        failures = 0
        loop = asyncio.get_running_loop()
        self._memory = memory = PollMemory()
        while self.subscribers:
            if not self.demands:  # nothing to poll for yet: wait for a watcher, then briefly for its siblings
                async with self._changed:
                    await self._changed.wait_for(lambda: bool(self.demands) or not self.subscribers)
                await asyncio.sleep(SETTLE)
                continue
            error: CloudflareAPIError | None = None
            snapshot = None
            try:
                if hook is None:
                    hook = await hook_for_triggerer(conn_id, json.loads(hook_params))
                account = hook.account(account_id or None)
                acquire = _waiter(TunnelPoller.budget_for(hook.credentials), loop)
                started = time.monotonic()
                snapshot = await asyncio.to_thread(
                    poll_health, hook, account, list(self.demands.values()), memory=memory, before_request=acquire
                )
                log.debug(
                    "Polled the health of %d tunnel(s) for %d watcher(s) in %.2f s",
                    len(snapshot.tunnels),
                    len(self.demands),
                    time.monotonic() - started,
                )
                failures = 0
            except CloudflareAPIError as caught:
                error = caught
                failures += 1
            except Exception as caught:  # a bug must not leave every watcher waiting in silence
                message = f"Unexpected error while polling tunnel health: {type(caught).__name__}: {caught}"
                error = CloudflareAPIError(message, transient=False)
                failures += 1
            async with self._changed:
                self.rounds += 1
                self.latest = PollResult(snapshot, error, self.rounds)
                self._changed.notify_all()
            await asyncio.sleep(poll_delay(interval, failures, error))


def _waiter(budget: Any, loop: asyncio.AbstractEventLoop) -> Any:
    """Return a callable for a worker thread that waits, on ``loop``, for the next slot of ``budget``."""

    def acquire() -> None:
        budget.acquire_in_thread(loop)  # the claim travels in this thread's context to the hook's request

    return acquire
