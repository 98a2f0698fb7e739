"""Benchmark 3: a triggerer's fleet of deferred sensors, N triggers on M = N/20 tunnels in one event loop.

Each measurement is one fresh fleet process (one asyncio loop, as a triggerer runs its triggers) against a
fresh simulator process whose M tunnels have no connector yet. Two fleets, side by side at each N:

* ``shared``: N ``CloudflareTunnelConnectorTrigger`` (this provider): the triggers of one tunnel share one
  ``TunnelPoller``, one request to the tunnel's ``/connections`` per poll interval;
* ``per_sensor``: N ``airflow.providers.http.triggers.http.HttpSensorTrigger`` (the generic HTTP sensor's
  trigger, unmodified), each polling its connector's ``/connectors/{id}`` on its own until it stops
  answering 404.

A fleet process creates its N triggers (20 per tunnel, each waiting for its tunnel's connector) and runs
each one's ``run()`` as a task, as the triggerer does. Phases: warm-up (until the first poll round reached
the simulator, then 1.5 intervals), then a measured window of a few poll intervals with nothing ready (CPU
time of the fleet process, requests the simulator logged, event-loop lag), then the driver brings every
tunnel's connector up through the simulator's control endpoint, noting the time per tunnel, and the fleet
process notes when each trigger yields its event (readiness latency). Memory is measured in separate, shorter
runs under ``tracemalloc`` (peak Python heap from creating the triggers to the end of the warm-up), since
tracing slows the process too much for the timed runs; those runs report the resident set's growth instead.

The shared fleet's connection sets ``rate_limit_requests`` high so that the request budget does not space
its polls in the scaling runs; a separate pair of runs keeps the defaults (1,200 requests per 300 s, as
Cloudflare) with the simulator emulating Cloudflare's limit, to show polls slowing down instead of 429s.

Cloudflare's limit is per user, shared by every triggerer, worker and the dashboard. The shared-pool rows run
2, 3 and 5 triggerer processes (4 tunnels each, polled every 0.5 s, connection at its default budget) and an
emulated dashboard (0.3 requests/s) against one small pool (30 requests per 10 s) under each window the pool may
have (``--pool-windows``: ``fixed``, ``sliding-more`` as draft -10 says ``t``, ``sliding-full``), with the
simulator's ``Ratelimit`` headers on (and, with ``--pool-stripped``, stripped): 429s served, lockouts,
successful polls per process, the longest wait of a process between two successful polls, and the share of the
pool above its reserve that was used (``--pool-only`` runs just those, ``--pool-seconds`` sets their length).

Run alone: ``.venv/bin/python bench/fleet.py [--sizes 10,100,1000] [--interval 2]``; the fleet process is
this file with ``--child CONFIG``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import page
from common import PYTHON, ROOT, WORK_DIR, SimProcess, cpu_seconds, http_json, log, loopback_env, median, percentile
from page import CF_PERIOD, CF_REQUESTS

ACCOUNT_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
SENSORS_PER_TUNNEL = 20
HTTP_CONN_ID = "cfsim_http"
CF_LIMIT_REQUESTS = 1200
CF_LIMIT_PERIOD = 300.0
#: The shared-pool rows: a small pool (30 requests per 10 s, Cloudflare's 1,200 per 300 s scaled down), an
#: emulated dashboard spending 0.3 requests/s of it, and triggerer processes polling 4 tunnels each every 0.5 s.
POOL_LIMIT = (30, 10.0)
POOL_DASHBOARD_RATE = 0.3
POOL_TUNNELS_PER_PROCESS = 4
POOL_INTERVAL = 0.5
#: The pool's windows the shared-pool rows run under: ``(window, reset)`` of the simulator's emulated limit.
POOL_WINDOWS = {"fixed": ("fixed", "full"), "sliding-more": ("sliding", "more"), "sliding-full": ("sliding", "full")}
POOL_PROCESSES = (2, 3, 5)
_NS = uuid.UUID("6c0a5d3e-8a61-4d4e-9d3c-2f1b0e9a7c55")


def tunnel_ids(m: int) -> list[str]:
    return [str(uuid.uuid5(_NS, f"tunnel-{i}")) for i in range(m)]


def connector_ids(m: int) -> list[str]:
    return [str(uuid.uuid5(_NS, f"connector-{i}")) for i in range(m)]


# ---------------------------------------------------------------------------------------------------------
# the fleet process
# ---------------------------------------------------------------------------------------------------------


def _rss_kib() -> dict[str, int]:
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out


async def _fleet(cfg: dict[str, Any]) -> dict[str, Any]:
    import tracemalloc

    n, m, interval = cfg["n"], cfg["m"], cfg["interval"]
    tunnels, connectors = cfg["tunnels"], cfg["connectors"]
    per_tunnel = max(1, n // m)
    control = cfg["control_url"]
    loop = asyncio.get_running_loop()

    if cfg["mode"] == "shared":
        from airflow_provider_cftunnel.triggers.tunnel import CloudflareTunnelConnectorTrigger, TunnelPoller

        def make(i: int) -> Any:
            t = min(i // per_tunnel, m - 1)
            return CloudflareTunnelConnectorTrigger(
                tunnel_id=tunnels[t],
                account_id=ACCOUNT_ID,
                connector_id=connectors[t],
                min_connections=1,
                poll_interval=interval,
            )
    else:
        from airflow.providers.http.triggers.http import HttpSensorTrigger

        TunnelPoller = None

        def make(i: int) -> Any:
            t = min(i // per_tunnel, m - 1)
            return HttpSensorTrigger(
                endpoint=f"accounts/{ACCOUNT_ID}/cfd_tunnel/{tunnels[t]}/connectors/{connectors[t]}",
                http_conn_id=HTTP_CONN_ID,
                method="GET",
                poke_interval=interval,
            )

    fired: list[float | None] = [None] * n
    payloads: dict[str, int] = {}

    async def watch(i: int, trigger: Any) -> None:
        async for event in trigger.run():
            payload = event.payload
            kind = payload.get("status", "?") if isinstance(payload, dict) else repr(payload)
            payloads[kind] = payloads.get(kind, 0) + 1
            if kind in ("success", "True"):  # the provider's success event; HttpSensorTrigger's TriggerEvent(True)
                fired[i] = time.time()
            return

    lags: list[float] = []

    async def ticker() -> None:  # how late the loop wakes a 50 ms sleeper: the loop's responsiveness
        while True:
            start = loop.time()
            await asyncio.sleep(0.05)
            lags.append(loop.time() - start - 0.05)

    # What every triggerer has loaded after its first trigger of each kind ran: imports and the connection
    # lookup are done once per process, not per trigger, so they stay out of the per-trigger figures.
    if cfg["mode"] == "shared":
        import airflow_provider_cftunnel.hooks.cloudflare
        import airflow_provider_cftunnel.models  # noqa: F401
    else:
        import tenacity  # noqa: F401
    from airflow.providers.common.compat.connection import get_async_connection

    await get_async_connection("cloudflare_default" if cfg["mode"] == "shared" else HTTP_CONN_ID)
    gc.collect()
    rss_before = _rss_kib()
    if cfg["trace"]:
        tracemalloc.start()
        traced_before = tracemalloc.get_traced_memory()[0]
    created_at = time.time()

    # Each tunnel's sensors defer together (one deploy, one DAG run); the tunnels' start times are spread
    # evenly over one interval, as DAG runs defer at different moments.
    async def start(i: int) -> None:
        await asyncio.sleep(min(i // per_tunnel, m - 1) / m * interval)
        await watch(i, make(i))

    tasks = [asyncio.create_task(start(i)) for i in range(n)]
    # Warm-up: until the fleet's first round reached the simulator (one request per tunnel, or per sensor),
    # then `warmup` more intervals, so that the window sees the steady state.
    first_round = m if cfg["mode"] == "shared" else n
    give_up = time.monotonic() + cfg["first_round_timeout"]
    while time.monotonic() < give_up:
        health = await asyncio.to_thread(http_json, "GET", control + "/health")
        if health["requests"] >= first_round:
            break
        await asyncio.sleep(0.1)
    first_round_s = time.time() - created_at
    await asyncio.sleep(cfg["warmup"] * interval)
    traced_peak = traced_now = None
    if cfg["trace"]:
        traced_now, peak = tracemalloc.get_traced_memory()
        traced_peak = peak - traced_before
        traced_now -= traced_before
        tracemalloc.stop()
    if cfg["memory_only"]:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {
            "n": n,
            "m": m,
            "mode": cfg["mode"],
            "interval": interval,
            "first_round_s": first_round_s,
            "traced_peak_bytes": traced_peak,
            "traced_after_warmup_bytes": traced_now,
            "rss_before_kib": rss_before,
            "rss_after_kib": _rss_kib(),
        }
    await asyncio.sleep(0.25 * interval)

    tick = asyncio.create_task(ticker())
    print("WINDOW", flush=True)
    t0, c0 = time.time(), time.process_time()
    await asyncio.sleep(cfg["window"] * interval)
    t1, c1 = time.time(), time.process_time()
    window_lags = list(lags)
    pollers = len(TunnelPoller.active()) if TunnelPoller is not None else None
    rss_after = _rss_kib()
    log_records = await asyncio.to_thread(http_json, "GET", control + "/requests", None, 120.0)
    print("FLIP", flush=True)  # the driver brings the connectors up now

    pending = [t for t in tasks if not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=cfg["deadline"])
    t_end = time.time()
    tick.cancel()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, tick, return_exceptions=True)

    in_window = [r for r in log_records if t0 <= r["time"] < t1]
    statuses: dict[str, int] = {}
    for r in in_window:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    return {
        "n": n,
        "m": m,
        "mode": cfg["mode"],
        "interval": interval,
        "created_at": created_at,
        "window": [t0, t1],
        "cpu_s": c1 - c0,
        "requests_in_window": len(in_window),
        "statuses_in_window": statuses,
        "distinct_paths_in_window": len({r["path"] for r in in_window}),
        "requests_before_window": sum(1 for r in log_records if r["time"] < t0),
        "traced_peak_bytes": traced_peak,
        "traced_after_warmup_bytes": traced_now,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "loop_lag_ms": {
            "median": median(window_lags) * 1e3,
            "p99": percentile(window_lags, 0.99) * 1e3,
            "max": max(window_lags, default=float("nan")) * 1e3,
        },
        "pollers": pollers,
        "first_round_s": first_round_s,
        "fired": fired,
        "events": payloads,
        "ended": t_end,
    }


async def _pool_fleet(cfg: dict[str, Any]) -> dict[str, Any]:
    """One triggerer of a shared-pool run: the reliability test's triggerer process, on its own tunnels."""
    sys.path.insert(0, str(ROOT))
    from tests.support.pool import triggerer_process

    return await triggerer_process({**cfg, "account_id": ACCOUNT_ID})


def pool_child_main(config_path: str) -> None:
    cfg = json.loads(Path(config_path).read_text())
    os.environ.update(cfg["env"])
    result = asyncio.run(_pool_fleet(cfg))
    Path(cfg["result_path"]).write_text(json.dumps(result))


def child_main(config_path: str) -> None:
    cfg = json.loads(Path(config_path).read_text())
    os.environ.update(cfg["env"])
    result = asyncio.run(_fleet(cfg))
    Path(cfg["result_path"]).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------------------


def run_fleet(
    mode: str,
    n: int,
    interval: float,
    *,
    window: float = 3.0,
    warmup: float = 1.5,
    cloudflare_limit: bool = False,
    default_budget: bool = False,
    deadline: float | None = None,
    memory_only: bool = False,
) -> dict[str, Any]:
    """One fleet process against one simulator process; returns the measurements."""
    m = max(1, n // SENSORS_PER_TUNNEL)
    tunnels, connectors = tunnel_ids(m), connector_ids(m)
    scenario: dict[str, Any] = {
        "accounts": [
            {
                "id": ACCOUNT_ID,
                "tunnels": [{"id": t, "name": f"bench-{i}", "connectors": []} for i, t in enumerate(tunnels)],
            }
        ]
    }
    if cloudflare_limit:
        scenario["rate_limit"] = {"requests": CF_LIMIT_REQUESTS, "period": CF_LIMIT_PERIOD}
    tag = f"{mode}-{n}{'-cflimit' if cloudflare_limit else ''}{'-memory' if memory_only else ''}"
    WORK_DIR.mkdir(exist_ok=True)
    with SimProcess(scenario, log_name=f"simulator-fleet-{tag}") as sim:
        extra = {} if default_budget else {"rate_limit_requests": 10**9, "rate_limit_period": 1}
        http_conn = json.dumps(
            {
                "conn_type": "http",
                "host": sim.info["base_url"],
                "extra": {"Authorization": f"Bearer {sim.info['api_token']}"},
            }
        )
        cfg = {
            "mode": mode,
            "n": n,
            "m": m,
            "interval": interval,
            "warmup": warmup,
            "window": window,
            "deadline": deadline if deadline is not None else 3 * interval + 10,
            "trace": memory_only,
            "memory_only": memory_only,
            "first_round_timeout": 60.0,
            "tunnels": tunnels,
            "connectors": connectors,
            "control_url": sim.info["control_url"],
            "result_path": str(WORK_DIR / f"fleet-{tag}.json"),
            "env": loopback_env(
                {
                    "AIRFLOW_CONN_CLOUDFLARE_DEFAULT": sim.connection(**extra),
                    f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}": http_conn,
                }
            ),
        }
        config_path = WORK_DIR / f"fleet-{tag}.config.json"
        config_path.write_text(json.dumps(cfg))
        with open(WORK_DIR / f"fleet-{tag}.log", "wb") as child_log:
            child = subprocess.Popen(
                [PYTHON, str(Path(__file__).resolve()), "--child", str(config_path)],
                stdout=subprocess.PIPE,
                stderr=child_log,
                cwd=ROOT,
                env=loopback_env(),
            )
            try:
                assert child.stdout is not None
                sim_cpu: list[float] = []
                ready_at: list[float] = []
                log_lines = 0  # Airflow's default logging writes to stdout: the triggers' log lines end here
                for raw in child.stdout:
                    line = raw.decode(errors="replace").strip()
                    if line not in ("WINDOW", "FLIP"):
                        log_lines += 1
                    if line == "WINDOW":
                        sim_cpu.append(cpu_seconds(sim.pid))
                    elif line == "FLIP":
                        sim_cpu.append(cpu_seconds(sim.pid))
                        for t, c in zip(tunnels, connectors, strict=True):
                            ready_at.append(time.time())
                            sim.control("POST", "/connectors", {"tunnel_id": t, "connector_id": c, "live": 4})
                code = child.wait(timeout=600)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        if code != 0:
            raise RuntimeError(f"fleet process {tag} exited with {code}; see {child_log.name}")
        limited = sim.control("GET", "/health")
        if os.environ.get("BENCH_DUMP_REQUESTS"):
            records = sim.control("GET", "/requests")
            (WORK_DIR / f"fleet-{tag}.requests.json").write_text(json.dumps({"ready_at": ready_at, "log": records}))
    result = json.loads(Path(cfg["result_path"]).read_text())
    if memory_only:
        result["peak_bytes_per_trigger"] = result["traced_peak_bytes"] / n
        return result
    per_tunnel = max(1, n // m)
    latencies = []
    for i, when in enumerate(result.pop("fired")):
        if when is not None:
            latencies.append(when - ready_at[min(i // per_tunnel, m - 1)])
    t0, t1 = result["window"]
    seconds = t1 - t0
    intervals_in_window = seconds / interval
    result.update(
        {
            "default_budget": default_budget,
            "cloudflare_limit": cloudflare_limit,
            "requests_per_interval": result["requests_in_window"] / intervals_in_window,
            "requests_per_second": result["requests_in_window"] / seconds,
            "cpu_ms_per_interval": result["cpu_s"] * 1e3 / intervals_in_window,
            "cpu_share_of_core": result["cpu_s"] / seconds,
            # CPU to check one sensor once: a shared request answers every sensor of its tunnel
            "cpu_us_per_sensor_check": result["cpu_s"]
            * 1e6
            / max(1, result["requests_in_window"] * (per_tunnel if mode == "shared" else 1)),
            "expected_per_interval": m if mode == "shared" else n,
            "sim_cpu_share_of_core": (sim_cpu[1] - sim_cpu[0]) / seconds if len(sim_cpu) == 2 else None,
            "fired_count": len(latencies),
            "latency_s": {
                "median": median(latencies),
                "p95": percentile(latencies, 0.95),
                "max": max(latencies, default=float("nan")),
            },
            "ready_spread_s": (ready_at[-1] - ready_at[0]) if ready_at else 0.0,
            "log_lines": log_lines,
            "sim_requests_total": limited.get("requests"),
        }
    )
    before, after = result["rss_before_kib"].get("VmRSS"), result["rss_after_kib"].get("VmHWM")
    if before and after:
        result["rss_delta_bytes_per_trigger"] = (after - before) * 1024 / n
    # kept its interval: every expected request of the window was made (5% slack for phase)
    result["kept_up"] = result["requests_per_interval"] >= 0.95 * result["expected_per_interval"]
    result["achieved_interval_s"] = (
        interval * result["expected_per_interval"] / result["requests_per_interval"]
        if result["requests_per_interval"]
        else float("inf")
    )
    return result


def run_shared_pool(
    processes: int,
    headers: bool,
    seconds: float,
    *,
    window: str = "sliding-more",
    tunnels_per_process: int = POOL_TUNNELS_PER_PROCESS,
    interval: float = POOL_INTERVAL,
) -> dict[str, Any]:
    """``processes`` triggerer processes, each with deferred triggers on its own tunnels, and an emulated dashboard,
    sharing one small pool of the simulator (in its own process); the connection keeps its default budget."""
    tunnels = [str(uuid.uuid5(_NS, f"pool-tunnel-{i}")) for i in range(processes * tunnels_per_process)]
    requests, period = POOL_LIMIT
    scenario: dict[str, Any] = {
        "accounts": [
            {
                "id": ACCOUNT_ID,
                "tunnels": [{"id": t, "name": f"pool-{i}", "connectors": []} for i, t in enumerate(tunnels)],
            }
        ],
        "rate_limit": {
            "requests": requests,
            "period": period,
            "headers": "ietf" if headers else "none",
            "dashboard_rate": POOL_DASHBOARD_RATE,
        },
    }
    kind, reset = POOL_WINDOWS[window]
    tag = f"pool-{processes}-{window}-{'headers' if headers else 'stripped'}"
    WORK_DIR.mkdir(exist_ok=True)
    children: list[subprocess.Popen[bytes]] = []
    with SimProcess(scenario, log_name=f"simulator-fleet-{tag}") as sim:
        env = loopback_env({"AIRFLOW_CONN_CLOUDFLARE_DEFAULT": sim.connection()})
        results_paths = []
        try:
            for p in range(processes):
                result_path = WORK_DIR / f"fleet-{tag}-{p}.json"
                result_path.unlink(missing_ok=True)
                cfg = {
                    "tunnels": tunnels[p * tunnels_per_process : (p + 1) * tunnels_per_process],
                    "interval": interval,
                    "seconds": seconds,
                    "env": env,
                    "result_path": str(result_path),
                }
                config_path = WORK_DIR / f"fleet-{tag}-{p}.config.json"
                config_path.write_text(json.dumps(cfg))
                results_paths.append(result_path)
                with open(WORK_DIR / f"fleet-{tag}-{p}.log", "wb") as child_log:
                    children.append(
                        subprocess.Popen(
                            [PYTHON, str(Path(__file__).resolve()), "--pool-child", str(config_path)],
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE,
                            stderr=child_log,
                            cwd=ROOT,
                            env=env,
                        )
                    )
            for child in children:  # each prints READY once its imports are done
                assert child.stdout is not None
                for raw in child.stdout:
                    if raw.strip() == b"READY":
                        break
                else:
                    raise RuntimeError(f"a shared-pool triggerer exited with {child.wait()} before it started")
            # the dashboard has spent since the simulator started: start from a clean count (and fixed windows
            # from now), all together
            spec = {**scenario["rate_limit"], "window": kind, "reset": reset}
            sim.control("POST", "/rate-limit", spec)
            sim.control("POST", "/rate-limit/reset")
            start_at = time.time() + 0.5
            for child in children:
                assert child.stdin is not None
                child.stdin.write(f"GO {start_at}\n".encode())
                child.stdin.flush()
            for child in children:
                if child.wait(timeout=seconds + 120) != 0:
                    raise RuntimeError(f"a shared-pool triggerer of {tag} exited with {child.returncode}")
        finally:
            for child in children:  # stopped by pid, whatever happened
                if child.poll() is None:
                    child.kill()
                    child.wait()
        status = sim.control("GET", "/rate-limit")
    per_process = [json.loads(path.read_text()) for path in results_paths]
    ok = [r["ok"] for r in per_process]
    gaps = [
        max(b - a for a, b in zip([0.0, *r["ok_times"]], [*r["ok_times"], seconds], strict=True)) for r in per_process
    ]
    # the share of the pool above its reserve used in the run's whole windows (they start 0.5 s before the run)
    windows = int((seconds + 0.5) // period)
    in_windows = sum(1 for r in per_process for t in r["ok_times"] if t < windows * period - 0.5)
    above_reserve = requests - max(1, -(-requests // 10))
    pool_used = (in_windows + POOL_DASHBOARD_RATE * windows * period) / (windows * above_reserve) if windows else None
    return {
        "window": window,
        "longest_gap_s": max(gaps),
        "pool_used": pool_used,
        "processes": processes,
        "headers": headers,
        "seconds": seconds,
        "interval": interval,
        "tunnels_per_process": tunnels_per_process,
        "pool": [requests, period],
        "dashboard_rate": POOL_DASHBOARD_RATE,
        "served_429": status["limited"],
        "lockouts": status["lockouts"],
        "dashboard_spent": status["spent"],
        "dashboard_refused": status["spent_refused"],
        "ok_per_process": ok,
        "limited_seen_per_process": [r["rate_limited"] for r in per_process],
        "polls_per_interval": sum(ok) / (seconds / interval),
        "quota_waited_s": [r["quota_waited_s"] for r in per_process],
    }


def _logged(
    summary: Callable[[dict[str, Any]], str], measure: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """
    Run one measurement, log its summary with the seconds it took, and return its result.

    :param summary: The log line's text, from the result.
    :param measure: The measurement (:func:`run_fleet`, :func:`run_shared_pool`).
    :param args: Its positional arguments.
    :param kwargs: Its keyword arguments.
    """
    started = time.monotonic()
    result = measure(*args, **kwargs)
    log(f"{summary(result)} ({time.monotonic() - started:.0f} s)")
    return result


def _fleet_summary(r: dict[str, Any]) -> str:
    """Return the log line's text for one fleet run (see :func:`run_fleet`)."""
    return (
        f"fleet {r['mode']:10s} N={r['n']:5d} M={r['m']:4d}: {r['requests_per_interval']:7.1f} req/interval, "
        f"{r['cpu_ms_per_interval']:7.1f} ms CPU/interval, "
        f"RSS {r.get('rss_delta_bytes_per_trigger', 0) / 1024:6.1f} KiB/trigger, "
        f"latency median {r['latency_s']['median']:.2f} s max {r['latency_s']['max']:.2f} s, "
        f"loop lag max {r['loop_lag_ms']['max']:.0f} ms, "
        f"fired {r['fired_count']}/{r['n']}"
    )


def _pool_summary(r: dict[str, Any]) -> str:
    """Return the log line's text for one shared-pool row (see :func:`run_shared_pool`)."""
    return (
        f"fleet pool: {r['processes']} processes, {r['window']}, headers {'on' if r['headers'] else 'stripped'}: "
        f"{r['served_429']} 429s, {r['lockouts']} lockouts, ok polls per process {r['ok_per_process']}, "
        f"longest gap {r['longest_gap_s']:.1f} s, pool used {r['pool_used']:.0%}, dashboard refused "
        f"{r['dashboard_refused']} of {r['dashboard_spent']}"
    )


def run_pool_rows(
    seconds: float,
    windows: list[str] | None = None,
    processes_list: list[int] | None = None,
    stripped: bool = False,
) -> list[dict[str, Any]]:
    """The cross-process rows: 2, 3 and 5 triggerer processes sharing one pool under each window (and, with
    ``stripped``, 3 processes with the headers stripped, under the default window)."""
    cells = [(w, p, True) for w in windows or list(POOL_WINDOWS) for p in processes_list or POOL_PROCESSES]
    if stripped:
        cells.append(("sliding-more", 3, False))
    rows = []
    for window, processes, headers in cells:
        rows.append(_logged(_pool_summary, run_shared_pool, processes, headers, seconds, window=window))
    return rows


def run(
    sizes: list[int],
    per_sensor_cap: int,
    interval: float,
    window: float,
    memory_sizes: list[int],
    budget_n: int | None,
    budget_window: float,
    pool_seconds: float = 25.0,
) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for k, n in enumerate(sizes):
        modes = ["shared", "per_sensor"] if n <= per_sensor_cap else ["shared"]
        if k % 2:
            modes.reverse()  # neither fleet always runs first
        for mode in modes:
            runs.append(_logged(_fleet_summary, run_fleet, mode, n, interval, window=window))
    memory_runs: list[dict[str, Any]] = []
    for n in memory_sizes:
        for mode in ("shared", "per_sensor"):
            r = run_fleet(mode, n, interval, memory_only=True)
            log(f"fleet {mode:10s} N={n:5d} traced peak {r['traced_peak_bytes'] / 2**20:.1f} MiB")
            memory_runs.append(r)
    budget_runs: list[dict[str, Any]] = []
    if budget_n:
        m = max(1, budget_n // SENSORS_PER_TUNNEL)
        for mode in ("shared", "per_sensor"):
            started = time.monotonic()
            r = run_fleet(
                mode,
                budget_n,
                interval,
                window=budget_window / interval,
                warmup=0.0,
                cloudflare_limit=True,
                default_budget=True,
                # a round of the budgeted fleet takes about M / 4 s (Cloudflare's 4 requests/s): wait for one
                deadline=m / 3 + interval + 3,
            )
            log(
                f"fleet {mode:10s} N={budget_n} with Cloudflare's limit: {r['requests_in_window']} requests in "
                f"{budget_window:.0f} s, 429s {r['statuses_in_window'].get('429', 0)}, fired {r['fired_count']}"
                f"/{budget_n} ({time.monotonic() - started:.0f} s)"
            )
            budget_runs.append(r)
    return {
        "interval": interval,
        "window_intervals": window,
        "sensors_per_tunnel": SENSORS_PER_TUNNEL,
        "per_sensor_cap": per_sensor_cap,
        "runs": runs,
        "memory_runs": memory_runs,
        "budget_runs": budget_runs,
        "budget_n": budget_n,
        "budget_window_s": budget_window,
        "pool_runs": run_pool_rows(pool_seconds, stripped=True) if pool_seconds > 0 else [],
    }


# ---- the page (docs/benchmarks.md) --------------------------------------------------------------------------

KEY = "fleet"
INTERVALS = (30.0, 60.0)  # poll intervals the crossing points are given for
LABELS = {"shared": "this provider (shared poller)", "per_sensor": "per-sensor (HttpSensorTrigger)"}
COLORS = {"shared": "#f6821f", "per_sensor": "#4c72b0"}


def fleet_runs(fleet: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    """Return the timed runs of one fleet (``shared`` or ``per_sensor``), smallest N first."""
    return sorted((r for r in fleet["runs"] if r["mode"] == mode), key=lambda r: r["n"])


def requests_per_sensor(fleet: dict[str, Any], mode: str) -> float | None:
    """
    Upstream requests per sensor per poll interval, from the runs that kept their interval.

    Measured as requests per interval over the expected count (one per tunnel, or one per sensor), median over
    runs, then per sensor (a tunnel has ``sensors_per_tunnel`` sensors).
    """
    runs = [r for r in fleet_runs(fleet, mode) if r["kept_up"]] or fleet_runs(fleet, mode)
    if not runs:
        return None
    # to two decimals: a window a few milliseconds longer than its intervals reads 0.9998 for 1
    ratio = round(median([r["requests_per_interval"] / r["expected_per_interval"] for r in runs]), 2)
    return ratio / fleet["sensors_per_tunnel"] if mode == "shared" else ratio


def crossing_n(per_sensor_rate: float, interval: float) -> float:
    """The number of sensors at which the fleet sends Cloudflare's 1,200 requests per 5 minutes."""
    allowed_per_interval = CF_REQUESTS * interval / CF_PERIOD
    return allowed_per_interval / per_sensor_rate


def memory_slope(fleet: dict[str, Any], mode: str) -> float | None:
    """Bytes of traced peak heap per extra trigger, between the smallest and largest memory run."""
    runs = sorted((r for r in fleet.get("memory_runs", []) if r["mode"] == mode), key=lambda r: r["n"])
    if len(runs) < 2:
        return runs[0]["peak_bytes_per_trigger"] if runs else None
    low, high = runs[0], runs[-1]
    return (high["traced_peak_bytes"] - low["traced_peak_bytes"]) / (high["n"] - low["n"])


def targets(fleet: dict[str, Any]) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """Return this benchmark's rows of the page's target table, and the keys of the targets it missed."""
    rows = []
    missed = []
    shared = fleet_runs(fleet, "shared")
    # one request per tunnel per interval, within 5 %: a poll round that straddles the window's edge is
    # counted in one window or the next, so a window can hold slightly fewer than M
    exact = [r for r in shared if 0.95 * r["m"] <= r["requests_per_interval"] <= 1.05 * r["m"]]
    worst = max(shared, key=lambda r: abs(r["requests_per_interval"] - r["m"]) / r["m"])
    ok = len(exact) == len(shared)
    rows.append(
        (
            "3",
            "upstream requests per poll interval: M (tunnels), not N (sensors)",
            f"M (within 5 %) at {len(exact)} of {len(shared)} sizes (N {shared[0]['n']:,} to "
            f"{shared[-1]['n']:,}); furthest {worst['requests_per_interval']:.1f} for M = {worst['m']}",
            page.verdict(ok),
        )
    )
    if not ok:
        missed.append("fleet_requests")
    return rows, missed


def _line(
    ax: Any,
    mode: str,
    runs: list[dict[str, Any]],
    value: Callable[[dict[str, Any]], float],
    suffix: str = "",
    **style: Any,
) -> None:
    """
    Plot one figure of each run against its N, in the mode's colour, labelled with the mode's name.

    :param ax: The axes to plot on.
    :param mode: ``shared`` or ``per_sensor`` (its colour and name: :data:`COLORS`, :data:`LABELS`).
    :param runs: The runs, in order of N.
    :param value: The figure plotted, read from a run.
    :param suffix: Text after the mode's name in the legend.
    :param style: Further keyword arguments for ``ax.plot`` (``marker``, ``linestyle``...).
    """
    ax.plot([r["n"] for r in runs], [value(r) for r in runs], color=COLORS[mode], label=LABELS[mode] + suffix, **style)


def _finish(fig: Any, ax: Any, ylabel: str, name: str, *, log_y: bool = True, **legend: Any) -> str:
    """
    Label a figure whose x axis is N (log scale), add its legend, save it; return its path relative to the page.

    :param fig: The figure.
    :param ax: Its axes.
    :param ylabel: The y axis's label.
    :param name: The image's file name (see :func:`page.save`).
    :param log_y: Whether the y axis is on a log scale too.
    :param legend: Where the legend goes (keyword arguments for ``ax.legend``, besides the font size).
    """
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("deferred sensors N (M = N/20 tunnels)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, **legend)
    return page.save(fig, name)


def plot(fleet: dict[str, Any]) -> dict[str, str]:
    """Draw the fleet's four figures (requests, CPU, memory, latency); return their paths by name."""
    plt = page.plt()
    out = {}
    interval = fleet["interval"]
    modes = [m for m in ("shared", "per_sensor") if fleet_runs(fleet, m)]
    all_n = sorted({r["n"] for r in fleet["runs"]})

    # requests per poll interval
    fig, ax = plt.subplots(figsize=(7, 5.2))
    xs = [min(all_n), max(all_n)]
    ax.plot(xs, xs, color="#4c72b0", linestyle=":", linewidth=1, label="N (one request per sensor)")
    ax.plot(
        xs,
        [x / fleet["sensors_per_tunnel"] for x in xs],
        color="#f6821f",
        linestyle=":",
        linewidth=1,
        label=f"M = N/{fleet['sensors_per_tunnel']} (one request per tunnel)",
    )
    for mode in modes:
        runs = fleet_runs(fleet, mode)
        _line(ax, mode, runs, lambda r: r["requests_per_interval"], " (measured)", marker="o")
        late = [r for r in runs if not r["kept_up"]]
        if late:
            ax.annotate(
                f"from here on it could not\nkeep its {interval:g} s interval",
                (late[0]["n"], late[0]["requests_per_interval"]),
                textcoords="offset points",
                xytext=(-30, 45),
                fontsize=7,
                ha="right",
                arrowprops={"arrowstyle": "->", "linewidth": 0.6},
            )
    for p, style in zip(INTERVALS, ("--", "-."), strict=True):
        limit = CF_REQUESTS * p / CF_PERIOD
        ax.axhline(
            limit,
            color="red",
            linestyle=style,
            linewidth=1,
            label=f"Cloudflare's 1,200/5 min at a {p:g} s interval ({limit:g} per interval)",
        )
    out["requests"] = _finish(
        fig,
        ax,
        "upstream requests per poll interval",
        "bench-fleet-requests.png",
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=2,
    )

    # CPU per poll round
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for mode in modes:
        _line(ax, mode, fleet_runs(fleet, mode), lambda r: r["cpu_ms_per_interval"], marker="o")
    ax.axhline(
        interval * 1e3, color="grey", linestyle="--", linewidth=1, label=f"one core for the whole {interval:g} s"
    )
    out["cpu"] = _finish(fig, ax, f"fleet CPU ms per poll round ({interval:g} s)", "bench-fleet-cpu.png")

    # memory per trigger
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for mode in modes:
        runs = [r for r in fleet_runs(fleet, mode) if r.get("rss_delta_bytes_per_trigger") is not None]
        _line(
            ax, mode, runs, lambda r: r["rss_delta_bytes_per_trigger"] / 1024, ": resident set growth / N", marker="o"
        )
        mem = sorted((r for r in fleet.get("memory_runs", []) if r["mode"] == mode), key=lambda r: r["n"])
        if mem:
            _line(
                ax,
                mode,
                mem,
                lambda r: r["peak_bytes_per_trigger"] / 1024,
                ": peak Python heap / N",
                marker="s",
                linestyle="--",
                alpha=0.7,
            )
    out["memory"] = _finish(
        fig, ax, "KiB per trigger", "bench-fleet-memory.png", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2
    )

    # readiness latency
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for mode in modes:
        runs = fleet_runs(fleet, mode)
        _line(ax, mode, runs, lambda r: r["latency_s"]["median"], ": median", marker="o")
        _line(ax, mode, runs, lambda r: r["latency_s"]["max"], ": max", marker="^", linestyle="--")
    ax.axhline(interval, color="grey", linestyle=":", linewidth=1, label=f"one poll interval ({interval:g} s)")
    ax.set_ylim(bottom=0)
    out["latency"] = _finish(fig, ax, "connector ready -> trigger event (s)", "bench-fleet-latency.png", log_y=False)
    return out


def section(fleet: dict[str, Any], plots: dict[str, str]) -> list[str]:
    """Return the page's section on the triggerer fleet, with the figures :func:`plot` drew."""
    interval = fleet["interval"]
    per = fleet["sensors_per_tunnel"]
    lines = [
        "## 3. The triggerer fleet",
        "",
        f"N deferred sensors on M = N/{per} tunnels, all in one event loop of one process (as a triggerer runs "
        "them), against the simulator in another process. Each size is a fresh fleet process and a fresh "
        "simulator whose tunnels have no connector yet. Each tunnel's sensors defer together (one deploy), and "
        "the tunnels' start times are spread evenly over one interval (DAG runs defer at different moments). "
        f"After the first poll round plus 1.5 intervals, a window of {fleet['window_intervals']:g} poll "
        f"intervals ({interval:g} s each) is measured with nothing ready: the simulator's request log, the fleet "
        "process's CPU time (`time.process_time`, all threads) and how late the loop wakes a 50 ms sleeper. Then "
        "every tunnel's connector comes up (simulator control endpoint, time noted per tunnel) and each trigger's "
        "event time is noted.",
        "",
        "- **this provider**: `CloudflareTunnelConnectorTrigger` (connector id given, `min_connections=1`); the "
        "triggers of a tunnel share one `TunnelPoller`, one `GET .../connections` per interval. The connection's "
        "`rate_limit_requests` is set high here so the request budget does not space the polls (see the budget "
        "runs below for the default).",
        "- **per-sensor**: `airflow.providers.http.triggers.http.HttpSensorTrigger` unmodified (what a generic "
        "HTTP sensor defers to), one per sensor, each polling `GET .../connectors/{id}` with `poke_interval` = "
        f"the same {interval:g} s until the answer is not a 404. It was run up to N = "
        f"{fleet['per_sensor_cap']:,} to keep the benchmark bounded.",
        "",
        f"The poll interval is {interval:g} s to keep the run short; requests per interval and CPU per round do "
        "not depend on it as long as the process keeps its interval (column *kept up*: it made every request "
        "the window called for). Both fleets log through Airflow's default logging (the per-sensor trigger a "
        "warning on every 404, the provider's trigger a line when a tunnel's state changes). The simulator runs "
        "with a listen backlog of 4,096, so that bursts of new connections from per-sensor triggers are not "
        "dropped, as Cloudflare's edge would not drop them.",
        "",
        f"Reproduce: `.venv/bin/python bench/fleet.py --sizes "
        f"{','.join(str(n) for n in sorted({r['n'] for r in fleet['runs']}))} --per-sensor-cap "
        f"{fleet['per_sensor_cap']} --interval {interval:g}`",
        "",
        "| N | M | fleet | upstream requests per interval | kept up | CPU ms per round | CPU µs per sensor "
        "check | RSS growth per trigger (KiB) | ready -> event median / p95 / max (s) | loop lag max (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(fleet["runs"], key=lambda r: (r["n"], r["mode"] != "shared")):
        kept = "yes" if r["kept_up"] else f"no: every {r['achieved_interval_s']:.1f} s"
        fired = "" if r["fired_count"] == r["n"] else f" ({r['fired_count']:,} of {r['n']:,} fired)"
        errors = sum(v for k, v in r.get("events", {}).items() if k not in ("success", "True"))
        fired += f" ({errors:,} error events)" if errors else ""
        lines.append(
            f"| {r['n']:,} | {r['m']:,} | {LABELS[r['mode']]} | {r['requests_per_interval']:,.1f} | {kept} | "
            f"{r['cpu_ms_per_interval']:,.1f} | {r['cpu_us_per_sensor_check']:,.0f} | "
            f"{page.fmt(r.get('rss_delta_bytes_per_trigger', float('nan')) / 1024)} | "
            f"{page.fmt(r['latency_s']['median'], 2)} / {page.fmt(r['latency_s']['p95'], 2)} / "
            f"{page.fmt(r['latency_s']['max'], 2)}{fired} | {r['loop_lag_ms']['max']:,.0f} |"
        )
    lines += ["", f"![requests per interval]({plots['requests']})", ""]

    # crossing points
    rs, rp = requests_per_sensor(fleet, "shared"), requests_per_sensor(fleet, "per_sensor")
    lines += [
        "### Where each fleet crosses Cloudflare's limit",
        "",
        "Cloudflare allows 1,200 requests per 5 minutes per user (4 per second), shared by every token and key of "
        "the user and the dashboard, and blocks all their calls for 5 minutes beyond. From the measured requests "
        "per sensor per interval (runs that kept their interval), the number of sensors of one user at which each "
        "fleet reaches the "
        f"limit (the provider's with {per} sensors per tunnel):",
        "",
        "| fleet | requests per sensor per interval (measured) | "
        + " | ".join(f"crosses at N = (interval {p:g} s)" for p in (interval, *INTERVALS))
        + " |",
        "|---|---|" + "---|" * (1 + len(INTERVALS)),
    ]
    for mode, rate in (("shared", rs), ("per_sensor", rp)):
        if rate:
            cells = " | ".join(f"{crossing_n(rate, p):,.0f}" for p in (interval, *INTERVALS))
            lines.append(f"| {LABELS[mode]} | {rate:.3f} | {cells} |")
    if rs and rp:
        lines += [
            "",
            f"The per-sensor fleet crosses the limit {rp / rs:.0f}x sooner. At a {INTERVALS[1]:g} s interval one "
            f"user serves about {crossing_n(rs, INTERVALS[1]):,.0f} shared sensors "
            f"({crossing_n(rs, INTERVALS[1]) / per:,.0f} tunnels) but only {crossing_n(rp, INTERVALS[1]):,.0f} "
            "per-sensor ones. Beyond its crossing point the provider's fleet does not draw 429s: its "
            "per-credential request budget (sized from the connection's limit, by default Cloudflare's) "
            "spaces the polls out (a round of M tunnels takes about M / 4 seconds), so they slow down instead "
            "(next table).",
        ]
    lines += [""]

    # budget runs
    budget = fleet.get("budget_runs") or []
    if budget:
        n = budget[0]["n"]
        m = budget[0]["m"]
        lines += [
            "### With Cloudflare's limit in force",
            "",
            f"N = {n:,} sensors on M = {m} tunnels, {interval:g} s interval, the simulator emulating Cloudflare's "
            "limit (1,200 requests per 300 s per user, then 429 for the rest of the 300 s) and the provider's "
            f"connection left at its default budget. Window: {fleet['budget_window_s']:g} s from the moment the "
            "fleet's first poll round reached the simulator; then the connectors come up.",
            "",
            f"Reproduce: `.venv/bin/python bench/fleet.py --sizes '' --memory-sizes '' --budget-n {n} "
            f"--budget-window {fleet['budget_window_s']:g}`",
            "",
            "| fleet | requests in window | of which 429 | requests/s | each tunnel polled every | "
            "events after ready (within the wait) | ready -> event median / max (s) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in budget:
            seconds = r["window"][1] - r["window"][0]
            limited = r["statuses_in_window"].get("429", 0)
            every = (
                f"{r['m'] * seconds / max(1, r['requests_in_window']):.1f} s"
                if r["mode"] == "shared"
                else f"n/a: each sensor every {r['n'] * seconds / max(1, r['requests_in_window']):.1f} s"
            )
            lines.append(
                f"| {LABELS[r['mode']]} | {r['requests_in_window']:,} | {limited:,} | "
                f"{r['requests_in_window'] / seconds:.1f} | {every} | {r['fired_count']:,} of {r['n']:,} | "
                f"{page.fmt(r['latency_s']['median'], 2)} / {page.fmt(r['latency_s']['max'], 2)} |"
            )
        per_sensor = next((r for r in budget if r["mode"] == "per_sensor"), None)
        if per_sensor and per_sensor["statuses_in_window"].get("429", 0):
            rounds = math.ceil(CF_REQUESTS / per_sensor["n"])
            ordinal = {1: "first", 2: "second", 3: "third", 4: "fourth"}.get(rounds, f"{rounds}th")
            lines += [
                "",
                f"The per-sensor fleet ({per_sensor['n']:,} requests per round) used up the user's 1,200 requests in "
                f"its {ordinal} round; from then on every call of that user, whatever token, gets 429 for 5 minutes, "
                "so no sensor can see the connector come up. `HttpSensorTrigger` also retries a 429 at once, "
                "without waiting for `Retry-After` or its interval (it only sleeps after a 404), which is why it "
                "kept sending requests into the lockout.",
            ]
        shared_run = next((r for r in budget if r["mode"] == "shared"), None)
        if shared_run and not shared_run["statuses_in_window"].get("429", 0):
            seconds = shared_run["window"][1] - shared_run["window"][0]
            spacing = shared_run["m"] * seconds / max(1, shared_run["requests_in_window"])
            lines[-1] += (
                " The provider's fleet drew no 429: its budget spaced the polls (each tunnel every "
                f"{spacing:.1f} s instead of {interval:g} s), and {shared_run['fired_count']:,} of "
                f"{shared_run['n']:,} sensors got their event, later by that spacing."
            )
        lines += [""]

    lines += pool_section(fleet.get("pool_runs") or [])

    # CPU, memory, latency
    shared = fleet_runs(fleet, "shared")
    per_runs = fleet_runs(fleet, "per_sensor")
    big = shared[-1]
    lines += [
        "### CPU per poll round",
        "",
        f"At N = {big['n']:,} the provider's fleet used {big['cpu_ms_per_interval']:,.0f} ms of CPU per round "
        f"({big['cpu_share_of_core'] * 100:.0f}% of one core at a {interval:g} s interval), "
        f"{big['cpu_us_per_sensor_check']:.0f} µs per sensor checked.",
    ]
    common_n = sorted({r["n"] for r in shared} & {r["n"] for r in per_runs})
    if common_n:
        n = common_n[-1]
        a = next(r for r in shared if r["n"] == n)
        b = next(r for r in per_runs if r["n"] == n)
        lines[-1] += (
            f" At N = {n:,} the per-sensor fleet used {b['cpu_ms_per_interval']:,.0f} ms per round against "
            f"{a['cpu_ms_per_interval']:,.0f} ms ({b['cpu_us_per_sensor_check'] / a['cpu_us_per_sensor_check']:.0f}x "
            "per sensor check)"
            + (
                f", and could not keep its interval: its requests came every {b['achieved_interval_s']:.1f} s per "
                f"sensor and the loop stalled up to {b['loop_lag_ms']['max'] / 1e3:.1f} s."
                if not b["kept_up"]
                else "."
            )
            + " Where the per-sensor fleet's CPU goes (py-spy of its loop during development): a new aiohttp "
            "session and TCP connection per poll, a tenacity retry controller per poll, and a warning log line per "
            "404; the provider's pollers reuse one keep-alive session per tunnel and log only state changes."
        )
    lines += ["", f"![CPU per round]({plots['cpu']})", ""]

    slopes = {mode: memory_slope(fleet, mode) for mode in ("shared", "per_sensor")}
    mem_runs = sorted(fleet.get("memory_runs", []), key=lambda r: (r["n"], r["mode"] != "shared"))
    lines += [
        "### Memory per trigger",
        "",
        "Two measures: the resident set's growth from before the triggers were created to the end of the "
        "measured window, divided by N (timed runs, above), and the peak Python heap (`tracemalloc`) from "
        "creating the triggers through their first poll round and 1.5 intervals more, divided by N (separate "
        "runs, since tracing slows the process). Imports and the first connection lookup are done before either "
        "measure starts: a triggerer pays them once.",
        "",
        "| N | fleet | peak Python heap (MiB) | per trigger (KiB) |",
        "|---|---|---|---|",
    ]
    for r in mem_runs:
        lines.append(
            f"| {r['n']:,} | {LABELS[r['mode']]} | {r['traced_peak_bytes'] / 2**20:.1f} | "
            f"{r['peak_bytes_per_trigger'] / 1024:.1f} |"
        )
    if all(slopes.values()) and len(mem_runs) > 2:
        lines += [
            "",
            f"Marginal peak heap per extra trigger (between the smallest and largest memory run): this provider "
            f"{slopes['shared'] / 1024:.1f} KiB, per-sensor {slopes['per_sensor'] / 1024:.1f} KiB "
            f"({slopes['per_sensor'] / slopes['shared']:.1f}x).",
        ]
    lines += ["", f"![memory per trigger]({plots['memory']})", ""]

    lines += [
        "### Time from a connector becoming ready to its sensors' events",
        "",
        "Any poller sees a change on its next poll, so the latency is spread over one interval (the median about "
        "half of it) when the process keeps up. All sensors of a tunnel get the event from the same poll. "
        "Latency grows beyond one interval only when the process cannot keep its interval.",
        "",
        f"![readiness latency]({plots['latency']})",
        "",
    ]
    return lines


def pool_section(pool_runs: list[dict[str, Any]]) -> list[str]:
    """Return the section on several triggerers and a dashboard sharing one pool, under each window, with and
    without its headers."""
    if not pool_runs:
        return []
    first = pool_runs[0]
    requests, period = first["pool"]
    stripped = any(not r["headers"] for r in pool_runs)
    lines = [
        "### Several triggerers sharing one pool",
        "",
        "Cloudflare's limit is per user: every triggerer, worker, token and dashboard session of the user draws from "
        "one pool, and crossing it locks all of them out. Here 2, 3 and 5 triggerer processes (each with deferred "
        f"sensors on {first['tunnels_per_process']} tunnels of its own, polled every {first['interval']:g} s, the "
        "connection at its default budget of 1,200 per 300 s) and an emulated dashboard spending "
        f"{first['dashboard_rate']:g} requests/s share the simulator's pool of {requests} requests per "
        f"{period:g} s, for {first['seconds']:g} s, under each window the pool may have: fixed, sliding with `t` "
        "until more quota (draft-ietf-httpapi-ratelimit-headers-10), sliding with `t` until the whole window "
        "clears; with the `Ratelimit` headers on" + (", and stripped (as by a proxy)." if stripped else "."),
        "",
        f"Reproduce: `.venv/bin/python bench/fleet.py --pool-only --pool-seconds {first['seconds']:g}`",
        "",
        "| window | triggerer processes | `Ratelimit` headers | 429s served | lockouts | dashboard requests refused | "
        "successful polls per process | longest wait for a poll | pool above the reserve used |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(pool_runs, key=lambda r: (not r["headers"], r.get("window", ""), r["processes"])):
        used = r.get("pool_used")
        gap = r.get("longest_gap_s")
        lines.append(
            f"| {r.get('window', 'sliding-full')} | {r['processes']} | {'on' if r['headers'] else 'stripped'} | "
            f"{r['served_429']:,} | {r['lockouts']} | {r['dashboard_refused']} of {r['dashboard_spent']} | "
            f"{', '.join(str(n) for n in r['ok_per_process'])} | {f'{gap:.1f} s' if gap is not None else '-'} | "
            f"{f'{used:.0%}' if used is not None and r.get('window') == 'fixed' else '-'} |"
        )
    lines += [
        "",
        "With the headers every process paces on the server's remaining count: it spends only what the latest answer "
        "shows above a reserve of 10 % of the quota, shares it with the consumers it infers from how fast the count "
        "falls, and at the reserve sends one probe at a time, never assuming that `t` brings the whole quota back. "
        "Together they slow down as the pool drains and never lock the user out, whatever the window."
        + (
            " Without the headers each process only has its own budget, which assumes it owns the pool: they cross "
            "the limit, and each lockout hits the dashboard as well."
            if stripped
            else ""
        ),
        "",
    ]
    return lines


def explain(fleet: dict[str, Any], key: str) -> list[str]:
    """Return the page's lines on why a target of this benchmark was missed."""
    return [
        "- **Fleet requests**: some sizes made more or fewer requests than M per interval; see the "
        "table (a poll round that straddles the window's edge counts in one window or the next)."
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--per-sensor-cap", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--window", type=float, default=3.0, help="measured window, in poll intervals")
    parser.add_argument("--memory-sizes", default="100,1000")
    parser.add_argument("--budget-n", type=int, default=0, help="N of the runs under Cloudflare's limit (0: skip)")
    parser.add_argument("--budget-window", type=float, default=20.0)
    parser.add_argument("--pool-child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--pool-seconds", type=float, default=25.0, help="length of each shared-pool run (0: skip them)"
    )
    parser.add_argument("--pool-only", action="store_true", help="run only the shared-pool rows")
    parser.add_argument(
        "--pool-windows", default=",".join(POOL_WINDOWS), help=f"the pool's windows, of {', '.join(POOL_WINDOWS)}"
    )
    parser.add_argument("--pool-processes", default="2,3,5", help="triggerer processes per shared-pool run")
    parser.add_argument("--pool-stripped", action="store_true", help="also run 3 processes with the headers stripped")
    args = parser.parse_args()
    if args.child:
        child_main(args.child)
        return
    if args.pool_child:
        pool_child_main(args.pool_child)
        return
    windows = [w for w in args.pool_windows.split(",") if w]
    unknown = sorted(set(windows) - set(POOL_WINDOWS))
    if unknown:
        parser.error(f"--pool-windows takes {', '.join(POOL_WINDOWS)}, got {', '.join(unknown)}")
    processes_list = [int(p) for p in args.pool_processes.split(",") if p]
    if args.pool_only:
        rows = run_pool_rows(args.pool_seconds, windows, processes_list, args.pool_stripped)
        pool = {"pool_runs": rows, "pool_seconds": args.pool_seconds}
        (WORK_DIR / "fleet-pool.json").write_text(json.dumps(pool, indent=1))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    memory_sizes = [int(s) for s in args.memory_sizes.split(",") if s]
    results = run(
        sizes,
        args.per_sensor_cap,
        args.interval,
        args.window,
        memory_sizes,
        args.budget_n,
        args.budget_window,
        args.pool_seconds,
    )
    (WORK_DIR / "fleet.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
