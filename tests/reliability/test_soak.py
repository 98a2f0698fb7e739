"""Soak: 1,000 deferred sensors on 50 simulated tunnels, under Cloudflare's rate limit emulated at scale.

1,000 ``CloudflareTunnelConnectorTrigger``s run in one asyncio event loop, as one triggerer runs them: 20 on each
of 50 tunnels, polling every second. The simulator runs in its own process (so this process's memory is the
triggerer side's alone) and emulates the rate limit at 100 requests per 10 s per token, which 50 tunnels polled
every second would exceed five times over; the connection's ``rate_limit_requests``/``rate_limit_period`` say the
same, so the provider's ``RequestBudget`` is what keeps the triggers under it. Connectors come up, drop to
pending, vanish and get replaced on a timeline; ``docs/reliability.md`` has the table of scenarios and the figures
of a run. What must hold:

* no 429 is served (the emulated limit never fires), no trigger sends an error event;
* every trigger ends as its scenario says: one success event, never before its connector was ready, or no event
  at all (still waiting, as Airflow's defer timeout would end it) when it never was;
* none is lost (a run that ends without an event) or duplicated (two events);
* the triggerer's traced memory stays flat, and every tunnel's poller is gone once its triggers are.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
import tracemalloc
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_cftunnel.testing import DEFAULT_ACCOUNT_ID, DEFAULT_API_TOKEN, SimulatorProcess
from airflow_provider_cftunnel.triggers.tunnel import CloudflareTunnelConnectorTrigger, TunnelPoller

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

TUNNELS_PER_KIND = 10
TRIGGERS_PER_TUNNEL = 20
POLL_INTERVAL = 1.0
#: Cloudflare allows 1,200 requests per 300 s (4/s); scaled: 100 per 10 s (10/s), locked out for 10 s if crossed.
RATE_LIMIT_REQUESTS, RATE_LIMIT_PERIOD = 100, 10.0
#: When the run ends (simulated seconds): triggers still waiting then "time out", as Airflow would end them.
RUN_UNTIL = 110.0
#: Memory samples: every SAMPLE_EVERY seconds from FIRST_SAMPLE on; later samples may exceed the first by
#: less than MEMORY_BOUND bytes.
FIRST_SAMPLE, SAMPLE_EVERY, MEMORY_BOUND = 15.0, 5.0, 5 * 1024 * 1024
NAMESPACE = uuid.UUID("6f1c0d2e-5a4b-4c3d-9e8f-7a6b5c4d3e2f")


def _id(*parts: Any) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(map(str, parts))))


@dataclass(frozen=True)
class Seen:
    """One event a trigger sent, reduced to what the checks need (the payload is not kept alive)."""

    at: float
    status: str | None
    connector_id: str | None
    live: int


@dataclass
class Watch:
    """One trigger: what it watches and what its scenario says should happen."""

    tunnel: str
    kind: str
    connector_id: str | None
    min_connections: int
    #: Simulated second from which it is ready, or None: it never is ("timeout").
    ready_from: float | None
    #: Connectors it may legitimately report as ready.
    acceptable: set[str]
    events: list[Seen] = field(default_factory=list)
    ended_by_itself: bool = False


def build_world() -> tuple[dict[str, Any], list[Watch]]:
    """The simulator's scenario and the 1,000 watches, from the five kinds of tunnel."""
    tunnels: list[dict[str, Any]] = []
    watches: list[Watch] = []
    for n in range(TUNNELS_PER_KIND * 5):
        kind = ("early", "late", "flapping", "restart", "never")[n // TUNNELS_PER_KIND]
        tunnel_id = _id("tunnel", n)
        a, b = _id("connector", n, "a"), _id("connector", n, "b")
        if kind == "early":
            connectors = [{"id": a, "timeline": [{"at": 5, "live": 4}]}]
        elif kind == "late":
            connectors = [{"id": a, "timeline": [{"at": 60, "live": 4}]}]
        elif kind == "flapping":
            timeline = [
                {"at": 5, "live": 1, "pending": 3},
                {"at": 30, "live": 0, "pending": 4},
                {"at": 50, "live": 1, "pending": 3},
                {"at": 75, "live": 4},
            ]
            connectors = [{"id": a, "timeline": timeline}]
        elif kind == "restart":
            old = [{"at": 5, "live": 1}, {"at": 35, "live": 0, "pending": 1}, {"at": 50, "gone": True}]
            connectors = [{"id": a, "timeline": old}, {"id": b, "timeline": [{"at": 55, "live": 4}]}]
        else:  # never: no connector at all, or one whose connections all stay pending (down)
            connectors = [] if n % 2 else [{"id": a, "timeline": [{"at": 5, "live": 0, "pending": 4}]}]
        tunnels.append({"id": tunnel_id, "name": f"soak-{kind}-{n}", "connectors": connectors})
        for i in range(TRIGGERS_PER_TUNNEL):
            watches.append(watch_for(kind, tunnel_id, a, b, i))
    scenario = {
        "accounts": [{"id": DEFAULT_ACCOUNT_ID, "tunnels": tunnels}],
        "rate_limit": {"requests": RATE_LIMIT_REQUESTS, "period": RATE_LIMIT_PERIOD},
    }
    return scenario, watches


def watch_for(kind: str, tunnel: str, a: str, b: str, i: int) -> Watch:
    """The ``i``-th trigger of a tunnel of ``kind``, with what it should see."""
    minimum = 1 + i % 4
    own = a if i % 2 else None  # half watch the connector, half the whole tunnel
    if kind in ("early", "late"):
        return Watch(tunnel, kind, own, minimum, 5.0 if kind == "early" else 60.0, {a})
    if kind == "flapping":
        minimum = 1 if i % 4 == 0 else minimum
        return Watch(tunnel, kind, own, minimum, 5.0 if minimum == 1 else 75.0, {a})
    if kind == "restart":
        role = i % 5
        if role == 0:  # the old connector never had 2 live connections
            return Watch(tunnel, kind, a, 2, None, set())
        if role == 1:
            return Watch(tunnel, kind, a, 1, 5.0, {a})
        if role == 2:
            return Watch(tunnel, kind, b, minimum, 55.0, {b})
        if role == 3:
            return Watch(tunnel, kind, None, 1, 5.0, {a, b})
        return Watch(tunnel, kind, None, max(2, minimum), 55.0, {b})
    return Watch(tunnel, kind, own, minimum, None, set())


@pytest.fixture
def simulator() -> Any:
    scenario, watches = build_world()
    with SimulatorProcess(scenario, start_timeout=60.0, stop_timeout=15.0) as process:
        yield process, watches


def started_at(sim: SimulatorProcess) -> float:
    """The wall-clock time of the simulator's second 0."""
    before = time.time()
    elapsed = sim.control("GET", "/health")["elapsed"]
    return (before + time.time()) / 2 - elapsed


async def drive(trigger: CloudflareTunnelConnectorTrigger, watch: Watch) -> None:
    async for event in trigger.run():
        connector = event.payload.get("connector") or {}
        live = sum(1 for conn in connector.get("conns") or [] if conn.get("is_pending_reconnect") is False)
        watch.events.append(Seen(time.time(), event.payload.get("status"), connector.get("id"), live))
    watch.ended_by_itself = True


def rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def test_thousand_deferred_sensors(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sim, watches = simulator
    assert len(watches) == 1000
    assert (sim.api_token, sim.account_id) == (DEFAULT_API_TOKEN, DEFAULT_ACCOUNT_ID)
    rate_limit = {"rate_limit_requests": RATE_LIMIT_REQUESTS, "rate_limit_period": RATE_LIMIT_PERIOD}
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", sim.connection_json(extra=rate_limit))
    zero = started_at(sim)
    tracemalloc.start()
    tasks = []
    for watch in watches:
        trigger = CloudflareTunnelConnectorTrigger(
            tunnel_id=watch.tunnel,
            account_id=DEFAULT_ACCOUNT_ID,
            connector_id=watch.connector_id,
            min_connections=watch.min_connections,
            poll_interval=POLL_INTERVAL,
        )
        tasks.append(asyncio.create_task(drive(trigger, watch)))
    started = time.time() - zero
    samples: list[tuple[float, int, int]] = []  # (simulated second, traced bytes, RSS bytes)
    next_sample = FIRST_SAMPLE
    while (now := time.time() - zero) < RUN_UNTIL:
        if now >= next_sample:
            samples.append((round(now, 1), tracemalloc.get_traced_memory()[0], rss()))
            next_sample += SAMPLE_EVERY
        await asyncio.sleep(0.5)
    waiting = [task for task in tasks if not task.done()]
    for task in waiting:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    for _ in range(3):
        await asyncio.sleep(0)
    pollers_left = TunnelPoller.active()

    log = sim.control("GET", "/requests")
    api = [r for r in log if r["path"].startswith("/client/v4/")]
    limited = [r for r in api if r["status"] == 429]
    times = sorted(r["time"] for r in api)
    busiest = max(
        (sum(1 for t in times[i:] if t < start + RATE_LIMIT_PERIOD) for i, start in enumerate(times)), default=0
    )

    figures = summarize(watches, samples, api, busiest, zero, started, peak)
    print("\nSOAK FIGURES " + json.dumps(figures, indent=1))

    # one shared poll per tunnel: only its connections endpoint, never more often than the poll interval
    assert all(r["path"].endswith("/connections") for r in api)
    by_tunnel: dict[str, list[float]] = {}
    for record in api:
        by_tunnel.setdefault(record["path"].split("/")[-2], []).append(record["time"])
    gaps = [b - a for polls in by_tunnel.values() for a, b in itertools.pairwise(sorted(polls))]
    assert min(gaps) >= POLL_INTERVAL * 0.9, min(gaps)
    # nothing crashed
    assert [r for r in results if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError)] == []
    # no 429 reached a sensor: every trigger ended as its scenario says (one success event, never early; or none
    # at all), none with an error event, none lost, none duplicated
    wrong = []
    for watch in watches:
        if watch.ready_from is None:
            ok = not watch.events and not watch.ended_by_itself
        else:
            ok = (
                [seen.status for seen in watch.events] == ["success"]
                and watch.ended_by_itself
                and watch.events[0].connector_id in watch.acceptable
                and watch.events[0].live >= watch.min_connections
                and watch.events[0].at - zero >= watch.ready_from - 0.2
            )
        if not ok:
            wrong.append((watch.kind, watch.connector_id, watch.min_connections, watch.ready_from, watch.events))
    assert wrong == [], f"{len(wrong)} triggers ended unlike their scenario, e.g. {wrong[:3]}"
    # the pollers of finished tunnels are gone, and memory stayed flat
    assert pollers_left == {}
    assert len(samples) >= 10
    growth = max(traced for _, traced, _ in samples[1:]) - samples[0][1]
    assert growth < MEMORY_BOUND, f"traced memory grew by {growth / 2**20:.1f} MiB: {samples}"
    # The budget kept the token under Cloudflare's limit: the simulator never had to answer 429, even when the
    # event loop lagged (the budget checks real send times, and spends 90 % of the limit).
    assert limited == [], f"{len(limited)} requests answered 429"
    assert busiest <= RATE_LIMIT_REQUESTS


def summarize(
    watches: list[Watch],
    samples: list[tuple[float, int, int]],
    api: list[dict[str, Any]],
    busiest: int,
    zero: float,
    started: float,
    peak: int,
) -> dict[str, Any]:
    """The run's figures, for docs/reliability.md."""
    latencies: dict[str, list[float]] = {}
    for watch in watches:
        if watch.events and watch.ready_from is not None:
            latencies.setdefault(watch.kind, []).append(watch.events[0].at - zero - watch.ready_from)
    mib = 2**20
    span = (max(r["time"] for r in api) - min(r["time"] for r in api)) if api else 0.0
    return {
        "triggers": len(watches),
        "successes": sum(1 for w in watches if w.events),
        "still waiting at the end (timeout)": sum(1 for w in watches if not w.events),
        "all triggers created by (s)": round(started, 2),
        "run (simulated s)": RUN_UNTIL,
        "API requests": len(api),
        "requests per second": round(len(api) / span, 2) if span else None,
        "busiest 10-s window": busiest,
        "429s served": sum(1 for r in api if r["status"] == 429),
        "seconds from ready to event, per kind (median, max)": {
            kind: [round(statistics.median(values), 1), round(max(values), 1)] for kind, values in latencies.items()
        },
        "traced memory MiB (simulated s: MiB)": {t: round(traced / mib, 2) for t, traced, _ in samples},
        "traced peak MiB": round(peak / mib, 2),
        "RSS MiB (simulated s: MiB)": {t: round(resident / mib, 1) for t, _, resident in samples},
    }
