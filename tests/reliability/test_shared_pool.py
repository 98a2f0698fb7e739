"""Several triggerer processes share one Cloudflare pool and stay out of its lockout, thanks to its headers.

Cloudflare's limit is per user, shared by every process, token and dashboard session of that user; no process can
count what the others spend, and each triggerer's own budget (90 % of the connection's limit, default 1,200 per
300 s) assumes it owns the pool. Here 2, 3 or 5 separate OS processes, each with deferred
``CloudflareTunnelConnectorTrigger``s on their own tunnels polling every 0.3 s, and an emulated dashboard, share
the simulator's pool of 30 requests per 10 s, with the connection left at its default 1,200 per 300 s, under
each window the pool may have: (a) fixed windows, (b) a sliding window whose ``t`` is "until more quota" (draft
-10, the simulator's default) and (c) a sliding window whose ``t`` is "until the whole window clears". With the
``Ratelimit`` headers, every process paces itself on the server's remaining count: no 429 at all, and every
process keeps polling. The same run with the headers stripped (as by a proxy) shows what the budget alone does.

Each triggerer process is ``python -m tests.support.pool CONFIG_JSON`` (:func:`tests.support.pool.triggerer_process`).
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 3
TUNNELS_PER_PROCESS = 4
POLL_INTERVAL = 0.3
POOL_REQUESTS, POOL_PERIOD = 30, 10.0
DASHBOARD_RATE = 0.3  # requests per second someone spends in the dashboard: 3 of every 10-s window
RUN_SECONDS = 20.0
#: The pool's windows: ``(window, reset)`` as ``set_rate_limit`` takes them, by the issue's letter.
WINDOWS = {"a-fixed": ("fixed", "full"), "b-sliding-more": ("sliding", "more"), "c-sliding-full": ("sliding", "full")}
START_TIMEOUT = 120.0


# -- the test ---------------------------------------------------------------------------------------------


def _lines(child: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The child's stdout lines, read by a thread (so every wait has a timeout); ``None`` at its end."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def run_processes(
    sim: Any, *, processes: int, seconds: float, before_go: Callable[[], None] | None = None
) -> list[dict[str, Any]]:
    """
    Start ``processes`` triggerer processes on their own tunnels, run them together, stop them by pid.

    :param before_go: Called once every process is ready, just before they start (e.g. to set the pool's limit,
        so that fixed windows start with the run).
    """
    tunnels = [[sim.add_tunnel(name=f"p{p}-t{t}") for t in range(TUNNELS_PER_PROCESS)] for p in range(processes)]
    env = {**os.environ, "AIRFLOW_CONN_CLOUDFLARE_DEFAULT": sim.connection_json(), "PYTHONPATH": str(ROOT)}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    children: list[subprocess.Popen[str]] = []
    try:
        for mine in tunnels:
            cfg = {"tunnels": mine, "account_id": sim.account_id, "interval": POLL_INTERVAL, "seconds": seconds}
            children.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tests.support.pool", json.dumps(cfg)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    cwd=ROOT,
                    env=env,
                )
            )
        lines = [_lines(child) for child in children]
        ready_by = time.monotonic() + START_TIMEOUT
        for queue in lines:
            line = queue.get(timeout=max(0.1, ready_by - time.monotonic()))
            while line is not None and line.strip() != "READY":
                line = queue.get(timeout=max(0.1, ready_by - time.monotonic()))
            assert line is not None, "a triggerer process exited before it started"
        if before_go is not None:
            before_go()
        start_at = time.time() + 0.5
        for child in children:
            assert child.stdin is not None
            child.stdin.write(f"GO {start_at}\n")
            child.stdin.flush()
        results = []
        done_by = time.monotonic() + seconds + 60
        for child, queue in zip(children, lines, strict=True):
            output = []
            while (line := queue.get(timeout=max(0.1, done_by - time.monotonic()))) is not None:
                output.append(line)
            assert child.wait(timeout=max(0.1, done_by - time.monotonic())) == 0, "a triggerer process failed"
            results.append(json.loads(output[-1]))
        return results
    finally:
        for child in children:  # stopped by pid, whatever happened
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)


def longest_gap(times: list[float], seconds: float) -> float:
    """The longest time without a successful poll, from the run's start to its end."""
    edges = [0.0, *sorted(times), seconds]
    return max(later - earlier for earlier, later in itertools.pairwise(edges))


def pool_share(sim: Any, started: float, seconds: float) -> float:
    """The share of the pool above the reserve that was spent in the run's whole windows (processes and dashboard;
    meaningful under fixed windows that start at ``started``)."""
    windows = int(seconds // POOL_PERIOD)
    end = started + windows * POOL_PERIOD
    served = sum(1 for r in sim.requests if started <= r.time < end and r.status != 429)
    reserve = max(1, -(-POOL_REQUESTS // 10))
    return (served + DASHBOARD_RATE * windows * POOL_PERIOD) / (windows * (POOL_REQUESTS - reserve))


def describe(label: str, sim: Any, results: list[dict[str, Any]], seconds: float) -> str:
    status = sim.rate_limit_status()
    polls = ", ".join(f"{r['ok']} ok / {r['rate_limited']} limited" for r in results)
    intervals = seconds / POLL_INTERVAL
    per_interval = sum(r["ok"] for r in results) / intervals
    return (
        f"{label}: {len(results)} triggerer processes x {TUNNELS_PER_PROCESS} tunnels every {POLL_INTERVAL} s, "
        f"dashboard {DASHBOARD_RATE}/s, pool {POOL_REQUESTS} per {POOL_PERIOD:g} s ({status['window']}, t until "
        f"{status['reset']}), {seconds:g} s: {sim.rate_limited_count} 429s served, {status['lockouts']} lockouts, "
        f"dashboard refused {status['spent_refused']} of {status['spent']}; successful polls per process: {polls} "
        f"({per_interval:.2f} per poll interval in all)"
    )


@pytest.fixture
def pool_sim(cloudflare_simulator_factory: Any) -> Any:
    from airflow_provider_cftunnel.testing import DEFAULT_ACCOUNT_ID

    return cloudflare_simulator_factory({"accounts": [{"id": DEFAULT_ACCOUNT_ID, "tunnels": []}]})


@pytest.mark.slow
@pytest.mark.parametrize("processes", [2, 3, 5])
@pytest.mark.parametrize("window", list(WINDOWS))
def test_processes_share_the_pool_without_a_429(pool_sim: Any, window: str, processes: int) -> None:
    kind, reset = WINDOWS[window]
    started: list[float] = []

    def set_pool() -> None:  # the windows (and the dashboard) start with the run
        pool_sim.set_rate_limit(POOL_REQUESTS, POOL_PERIOD, dashboard_rate=DASHBOARD_RATE, window=kind, reset=reset)
        started.append(time.time())

    results = run_processes(pool_sim, processes=processes, seconds=RUN_SECONDS, before_go=set_pool)
    share = pool_share(pool_sim, started[0], RUN_SECONDS)
    print(describe(f"with Ratelimit headers, {window}", pool_sim, results, RUN_SECONDS), f"pool used {share:.0%}")
    status = pool_sim.rate_limit_status()
    if pool_sim.rate_limited_count:  # say when, to tell a burst from a slow leak
        first = next(r.time for r in pool_sim.requests if r.status == 429) - started[0]
        print(
            f"first 429 at {first:.1f} s; requests answered before it, by second:",
            [
                sum(1 for r in pool_sim.requests if int(r.time - started[0]) == s and r.status != 429)
                for s in range(int(first) + 1)
            ],
        )
    assert pool_sim.rate_limited_count == 0
    assert status["lockouts"] == 0
    assert status["spent_refused"] == 0, "the dashboard was locked out"
    assert status["spent"] >= DASHBOARD_RATE * RUN_SECONDS * 0.8
    assert all(r["rate_limited"] == 0 and r["other_errors"] == 0 for r in results)
    # every process kept polling all along: a fair share each, and never a whole window of the pool (plus the
    # rounding of t and a poll interval) without a successful poll
    oks = [r["ok"] for r in results]
    assert min(oks) >= 0.4 * sum(oks) / len(oks), oks
    gaps = [longest_gap(r["ok_times"], RUN_SECONDS) for r in results]
    print(f"longest gap between two successful polls of one process: {max(gaps):.1f} s")
    assert max(gaps) <= POOL_PERIOD + 1.5, [r["ok_times"] for r in results]
    # and they did wait for the pool: without it each process would make ~13 requests per second
    assert sum(oks) <= POOL_REQUESTS * (RUN_SECONDS / POOL_PERIOD + 1)
    assert all(r["quota_waited_s"] > 0 for r in results)
    if kind == "fixed":
        assert share >= 0.5, "a fixed window's pool above the reserve is mostly used"


@pytest.mark.slow
def test_without_headers_the_processes_only_have_their_own_budget(pool_sim: Any) -> None:
    seconds = 20.0
    pool_sim.set_rate_limit(POOL_REQUESTS, POOL_PERIOD, headers="none", dashboard_rate=DASHBOARD_RATE)
    results = run_processes(pool_sim, processes=PROCESSES, seconds=seconds)
    print(describe("headers stripped", pool_sim, results, seconds))
    assert sum(r["ok"] + r["rate_limited"] + r["other_errors"] for r in results) > 0  # the scenario ran
    # nothing to pace on: only the first requests waited for the first answer (to learn whether headers come)
    assert all(r["quota_waited_s"] < 2.0 for r in results)
