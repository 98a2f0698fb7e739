"""After an outage, 100 tunnels' pollers come back inside the pool, and every tunnel is polled again soon.

One process polls 100 tunnels through the pacing path (one ``TunnelPoller`` each, one ``RequestBudget`` and
``ServerQuota`` for the credential) against a pool that slides, ``t`` meaning "until more quota" (the simulator's
default, the hardest for a client). Then every answer fails: first 503s, then no answer at all (the connection
closed), and then the API is back. Cloudflare's numbers are scaled down so the test runs in about a minute: a pool
of 300 requests per 30 s (1,200 per 300 s), a poll interval of 12 s, an outage of 24 s (60 s). What must hold:
no 429, the busiest 10 s after the recovery stay inside the pool above its reserve, and every tunnel is polled
successfully again within two poll intervals (the pollers' backoff is capped at 1.5 intervals, see
``airflow_provider_cftunnel.ratelimit.backoff``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

TUNNELS = 100
INTERVAL = 12.0
POOL_REQUESTS, POOL_PERIOD = 300, 30.0
WARM_UP = 20.0
OUTAGE = 24.0  # half 503s, half no answer
AFTER = 2 * INTERVAL + 4.0
BUSIEST = 10.0


async def poll_through_an_outage(sim: Any, tunnels: list[str]) -> tuple[float, dict[str, list[float]]]:
    """Poll every tunnel; fail every answer for :data:`OUTAGE` seconds; return when the API came back and, per
    tunnel, the times of its successful polls."""
    from airflow_provider_cftunnel.triggers.tunnel import TunnelPoller

    ok: dict[str, list[float]] = {t: [] for t in tunnels}

    async def subscribe(tunnel_id: str) -> None:
        poller = TunnelPoller.for_key(("cloudflare_default", sim.account_id, tunnel_id, ""))
        async for outcome in poller.outcomes(INTERVAL):
            if outcome.error is None:
                ok[tunnel_id].append(time.time())

    tasks = [asyncio.create_task(subscribe(t)) for t in tunnels]
    try:
        await asyncio.sleep(WARM_UP)
        sim.inject_fault(kind="server_error", status=503, count=None)
        await asyncio.sleep(OUTAGE / 2)
        sim.clear_faults()
        sim.inject_fault(kind="drop", count=None)
        await asyncio.sleep(OUTAGE / 2)
        sim.clear_faults()
        recovered = time.time()
        await asyncio.sleep(AFTER)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return recovered, ok


@pytest.mark.slow
def test_pollers_recover_from_an_outage_inside_the_pool(cloudflare_simulator_factory: Any, monkeypatch: Any) -> None:
    from airflow_provider_cftunnel.ratelimit import clear_quotas, reserve_for
    from airflow_provider_cftunnel.testing import DEFAULT_ACCOUNT_ID

    sim = cloudflare_simulator_factory({"accounts": [{"id": DEFAULT_ACCOUNT_ID, "tunnels": []}]})
    tunnels = [sim.add_tunnel(name=f"outage-{i:03d}") for i in range(TUNNELS)]
    # the connection's own ceiling says the same as the pool (the default, 1,200 per 300 s, would be slower)
    limit = {"rate_limit_requests": POOL_REQUESTS, "rate_limit_period": POOL_PERIOD}
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", sim.connection_json(extra=limit))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    sim.set_rate_limit(POOL_REQUESTS, POOL_PERIOD)
    clear_quotas()
    try:
        recovered, ok = asyncio.run(poll_through_an_outage(sim, tunnels))
    finally:
        clear_quotas()

    assert sim.rate_limited_count == 0
    before = sum(1 for t in tunnels if ok[t] and ok[t][0] < recovered - OUTAGE)
    assert before == TUNNELS, f"{before} of {TUNNELS} tunnels polled before the outage"
    late = {t: min((x for x in times if x >= recovered), default=None) for t, times in ok.items()}
    assert all(not (recovered - OUTAGE + 1 < x < recovered) for times in ok.values() for x in times), "it was out"
    waits = sorted((x - recovered) if x is not None else float("inf") for x in late.values())
    answered = sorted(r.time for r in sim.requests if r.time >= recovered and r.status not in (0, 429))
    busiest = max((sum(1 for x in answered if start <= x < start + BUSIEST) for start in answered), default=0)
    print(
        f"{TUNNELS} tunnels every {INTERVAL:g} s, pool {POOL_REQUESTS} per {POOL_PERIOD:g} s, outage {OUTAGE:g} s: "
        f"first poll after the recovery within {waits[len(waits) // 2]:.1f} s (median), {waits[-1]:.1f} s "
        f"(slowest); busiest {BUSIEST:g} s after it: {busiest} requests"
    )
    assert waits[-1] <= 2 * INTERVAL, "every tunnel is polled again within two intervals"
    assert busiest <= POOL_REQUESTS - reserve_for(POOL_REQUESTS), "the recovery stays inside the pool"
