"""One triggerer process of a shared-pool run: deferred triggers on its own tunnels, every poll's outcome counted.

``tests/reliability/test_shared_pool.py`` and ``bench/fleet.py`` (its pool rows) start several of these, as
``python -m tests.support.pool CONFIG_JSON`` (the test) or in their own child (the benchmark), with
``AIRFLOW_CONN_CLOUDFLARE_DEFAULT`` pointing at the simulator.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

__all__ = ["triggerer_process"]


async def triggerer_process(cfg: dict[str, Any]) -> dict[str, Any]:
    """
    Run deferred triggers on this process's own tunnels for ``seconds``, counting every poll's outcome.

    It prints ``READY`` and starts at the time the parent writes as ``GO <time.time()>`` on its standard input;
    it returns the counts (``ok``, ``rate_limited``, ``other_errors``), the requests and what the budget waited.

    :param cfg: ``tunnels``, ``account_id``, ``interval`` and ``seconds``.
    """
    from airflow_provider_cftunnel.exceptions import CloudflareRateLimitError
    from airflow_provider_cftunnel.triggers.tunnel import CloudflareTunnelConnectorTrigger, TunnelPoller

    print("READY", flush=True)
    start_at = float(sys.stdin.readline().split()[1])  # "GO <time.time() to start at>"
    await asyncio.sleep(max(0.0, start_at - time.time()))
    started = time.monotonic()
    deadline = started + cfg["seconds"]
    counts = {"ok": 0, "rate_limited": 0, "other_errors": 0}
    ok_times: list[float] = []

    async def trigger(tunnel_id: str) -> None:
        run = CloudflareTunnelConnectorTrigger(
            tunnel_id=tunnel_id, account_id=cfg["account_id"], poll_interval=cfg["interval"]
        ).run()
        async for event in run:  # the tunnels never get a connector: an event is an error
            counts["other_errors"] += 1
            print(f"unexpected event {event.payload.get('status')}", file=sys.stderr, flush=True)
            return

    async def count(poller: TunnelPoller) -> None:
        async for outcome in poller.outcomes(cfg["interval"]):
            if outcome.error is None:
                counts["ok"] += 1
                ok_times.append(time.monotonic() - started)
            elif isinstance(outcome.error, CloudflareRateLimitError):
                counts["rate_limited"] += 1
            else:
                counts["other_errors"] += 1

    tasks = [asyncio.create_task(trigger(t)) for t in cfg["tunnels"]]
    while len(TunnelPoller.active()) < len(cfg["tunnels"]) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    pollers = list(TunnelPoller.active().values())
    tasks += [asyncio.create_task(count(poller)) for poller in pollers]
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    budget = TunnelPoller.budget_for(_credentials())  # the one every poller of this process drew from
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    quota = budget.quota
    latest = quota.latest if quota is not None else None
    return {
        **counts,
        "requests": sum(poller.requests for poller in pollers),
        "ok_times": ok_times,
        "quota_waited_s": budget.quota_waited,
        "waited_s": budget.waited,
        "pacing_episodes": quota.episodes if quota is not None else None,
        "latest_remaining": latest.remaining if latest is not None else None,
    }


def _credentials() -> Any:
    """The credentials of ``AIRFLOW_CONN_CLOUDFLARE_DEFAULT``, as the triggers' hooks read them."""
    from airflow_provider_cftunnel.hooks.cloudflare import CloudflareCredentials

    conn = json.loads(os.environ["AIRFLOW_CONN_CLOUDFLARE_DEFAULT"])
    return CloudflareCredentials(secret=conn["password"], account_id=conn["extra"]["account_id"], base_url=conn["host"])


if __name__ == "__main__":
    print(json.dumps(asyncio.run(triggerer_process(json.loads(sys.argv[1])))), flush=True)
