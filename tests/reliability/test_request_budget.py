"""The per-credential request budget must hold Cloudflare's limit in real time, not only on paper.

The soak test (``test_soak.py``) once saw 103 requests in one 10-s window for a limit of 100 while the machine was
busy, and the emulated lockout then answered 40 requests with 429. This shows why, deterministically: the budget
hands out time slots, but a request goes when the event loop gets to it; after the loop stalls (a blocking call
in some trigger, a long garbage collection, a busy host) every overdue slot fires at once while later slots keep
their schedule, so one window holds more than the limit.
"""

from __future__ import annotations

import asyncio
import time

from airflow_provider_cftunnel.triggers.tunnel import RequestBudget

REQUESTS, PERIOD = 20, 1.0


def busiest_window(times: list[float], period: float) -> int:
    """The most grants in any window of ``period`` seconds."""
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t < start + period) for i, start in enumerate(times)), default=0)


async def saturate(budget: RequestBudget, *, pollers: int, stall: float) -> list[float]:
    """``pollers`` coroutines that always want a request; the loop is blocked for ``stall`` s after 1.5 s."""
    grants: list[float] = []

    async def poller() -> None:
        while True:
            await budget.acquire()
            grants.append(time.monotonic())
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(poller()) for _ in range(pollers)]
    try:
        await asyncio.sleep(1.5)
        time.sleep(stall)  # the event loop is blocked, as by any blocking call in any trigger
        await asyncio.sleep(2.0)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return grants


async def test_the_budget_holds_the_limit_on_a_steady_loop() -> None:
    grants = await saturate(RequestBudget(REQUESTS, PERIOD, burst=5), pollers=20, stall=0.0)
    assert len(grants) > 2 * REQUESTS  # the pollers really were held back, over more than one window
    assert busiest_window(grants, PERIOD) <= REQUESTS


async def test_the_budget_holds_the_limit_when_the_event_loop_stalls() -> None:
    grants = await saturate(RequestBudget(REQUESTS, PERIOD, burst=5), pollers=20, stall=1.0)
    assert busiest_window(grants, PERIOD) <= REQUESTS  # measured: 30 for a limit of 20
