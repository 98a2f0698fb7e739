"""Wait here before every request of a credential: the one pacing path, for the hook and the pollers alike.

The hook's entry is synchronous, the pollers' asynchronous.

* :func:`claim_request` is the synchronous entry: the hook calls it before every request, and sends the request
  on the claim it returns.
* :meth:`RequestBudget.acquire` is the asynchronous entry: a triggerer's pollers await it on the event loop
  (every wait an ``asyncio.sleep``). The claim it returns travels with the call: it is put in the calling task's
  context (a :class:`~contextvars.ContextVar`), which ``asyncio.to_thread`` copies into the thread that runs the
  hook, where :func:`claim_request` takes it instead of waiting a second time. No claim is handed across by a
  callback or a shared queue, and a claim is sent at most once.

Both ask the same :class:`~airflow_provider_cftunnel.ratelimit.quota.ServerQuota` (the rule); the budget adds the
connection's own ceiling (``rate_limit_requests`` per ``rate_limit_period``). Standard library only.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from airflow_provider_cftunnel.ratelimit.quota import RECHECK, QuotaClaim, ServerQuota

__all__ = ["BUDGET_BURST", "BUDGET_SHARE", "RequestBudget", "carried_claim", "claim_request"]

#: Requests one credential may send back to back before the budget spaces them out.
BUDGET_BURST = 10
#: The share of a token's rate limit one triggerer process spends (headroom for jitter and other users).
BUDGET_SHARE = 0.9

#: The claim the asynchronous side waited for, carried by the task's context into the thread of its request.
_carried: ContextVar[QuotaClaim | None] = ContextVar("cftunnel_quota_claim", default=None)


def carried_claim(quota: ServerQuota) -> QuotaClaim | None:
    """
    Return the claim of ``quota`` that this context carries and no request has taken yet, taking it.

    :param quota: The credential's quota.
    """
    claim = _carried.get()
    if claim is None or claim.quota is not quota or not claim.take():
        return None
    return claim


def claim_request(
    quota: ServerQuota, *, max_wait: float | None = None, sleep: Callable[[float], Any] = time.sleep
) -> QuotaClaim:
    """
    Return the claim to send one request on.

    That is the one the caller's context carries (already waited for by :meth:`RequestBudget.acquire`), or one
    waited for here, blocking (:meth:`ServerQuota.wait`).

    The request's answer must be reported with :meth:`QuotaClaim.settle` (its headers, or ``None``).

    :param quota: The credential's quota.
    :param max_wait: The longest to wait, in seconds; then the request goes anyway.
    :param sleep: How to wait.
    """
    return carried_claim(quota) or quota.wait(max_wait=max_wait, sleep=sleep)


class RequestBudget:
    """
    Space one credential's requests in one event loop.

    No window of ``period`` seconds holds more than ``requests``, and none goes sooner than Cloudflare's shared
    pool allows.

    A generic cell rate algorithm: up to ``burst`` requests may go at once, then one every
    ``period / (requests - burst)`` seconds. Callers reserve a slot in order and sleep until it comes; before a
    request goes, the real send times of the last ``period`` seconds are checked (a sliding window), so a stalled
    event loop cannot push more than ``requests`` into one window. That is the ceiling. Below it, the
    credential's :class:`~airflow_provider_cftunnel.ratelimit.quota.ServerQuota` may ask for more waiting,
    never less.

    :param requests: Requests allowed per period (Cloudflare: 1,200).
    :param period: The window, in seconds (Cloudflare: 300).
    :param burst: Requests allowed back to back.
    :param quota: The credential's view of the shared pool, or ``None`` to pace on the ceiling alone.
    """

    def __init__(
        self, requests: int, period: float, burst: int = BUDGET_BURST, quota: ServerQuota | None = None
    ) -> None:
        if requests < 1 or period <= 0:
            raise ValueError("a request budget needs requests >= 1 and period > 0")
        self.requests = requests
        self.period = period
        self.burst = max(1, min(burst, requests // 2))
        self.spacing = period / max(1, requests - self.burst)
        self.quota = quota
        self._tolerance = self.spacing * (self.burst - 1)
        self._next = 0.0
        self._sent: deque[float] = deque()
        self._turn: asyncio.Lock | None = None
        self.granted = 0
        self.waited = 0.0
        #: Seconds of :attr:`waited` spent waiting for the shared pool (the rate-limit headers).
        self.quota_waited = 0.0

    def reserve(self) -> float:
        """Reserve the next slot; return how many seconds to wait for it (0 when it is now)."""
        now = time.monotonic()
        arrival = max(self._next, now)
        self._next = arrival + self.spacing
        self.granted += 1
        return max(0.0, arrival - self._tolerance - now)

    async def acquire(self) -> QuotaClaim | None:
        """
        Wait for this credential's next request, without blocking the loop, and return its claim.

        Waits for a slot, then until the last ``period`` seconds really hold fewer than ``requests`` sends, then
        until the shared pool's quota lets a request go. The claim (``None`` without a quota) is also put in the
        calling task's context, so the hook's request in ``asyncio.to_thread`` sends on it
        (:func:`claim_request`); a claim no request takes stops counting after a few seconds.
        """
        delay = self.reserve()
        if delay > 0:
            self.waited += delay
            await asyncio.sleep(delay)
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:  # first come, first served: no poller starves while the others win every race
            while True:
                now = time.monotonic()
                while self._sent and self._sent[0] <= now - self.period:
                    self._sent.popleft()
                if len(self._sent) >= self.requests:
                    wait = self._sent[0] + self.period - now
                    self.waited += wait
                    await asyncio.sleep(wait)
                    continue
                claim = None
                if self.quota is not None:
                    wait, claim = self.quota.try_claim(taken=False)
                    if claim is None:
                        wait = min(wait, RECHECK)  # a newer answer may bring better news
                        self.waited += wait
                        self.quota_waited += wait
                        await asyncio.sleep(wait)
                        continue
                self._sent.append(now)  # no await since the checks: both hold for this very request
                _carried.set(claim)
                return claim

    def acquire_in_thread(self, loop: asyncio.AbstractEventLoop) -> QuotaClaim | None:
        """
        Wait, from a worker thread, for this credential's next request.

        :meth:`acquire` runs on ``loop`` (the thread blocks, the loop does not), and its claim is carried in this
        thread's context, so the hook's request that follows in this thread sends on it (:func:`claim_request`).

        :param loop: The event loop the budget belongs to (not the calling thread's).
        """
        claim = asyncio.run_coroutine_threadsafe(self.acquire(), loop).result()
        _carried.set(claim)
        return claim
