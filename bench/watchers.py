"""Benchmark: many health watchers on one account, each polling alone (before) and sharing one poll (after).

How teams model a fleet: one asset per service, each with ``AssetWatcher(CloudflareTunnelHealthTrigger(
tunnel_ids=[id], poll_interval=5))``. Here a real Airflow (its four components on loopback, SQLite, one
triggerer; :class:`tests.support.watcher_fleet.WatcherFleet`) watches the first N tunnels of a
``--tunnels``-tunnel account held by the simulator (in this process, which logs every request), one DAG
scheduled on all the assets. Two ways, side by side, same DAG, same rule, same request budget:

* ``before``: ``tests.support.own_poll_trigger.OwnPollHealthTrigger``, every watcher polling on its own (no
  shared stream, a private poller): one ``GET`` of its tunnel per watcher per interval, as before issue 18;
* ``after``: ``CloudflareTunnelHealthTrigger`` as shipped: on Airflow 3.3 one shared stream per (connection,
  account, interval, hook settings), one list request for the whole selection per interval.

Measured per (way, N): the seconds until every watcher took its baseline; the tunnel requests per poll interval
over ``--intervals`` intervals (mean and busiest, from the simulator's log); then ``--flips`` tunnels go down,
``--spacing`` seconds apart (so they fall at different points of the interval), and for each one the seconds from
the change to the start of the DAG run its asset event triggered (p50/p95; from Airflow's database).

Run: ``.venv/bin/python bench/watchers.py [--watchers 200,1000] [--tunnels 1000] [--write]``; ``--write``
replaces the section between ``<!-- bench:watchers:start -->`` and ``<!-- bench:watchers:end -->`` in
``docs/benchmarks.md`` (and nothing else; ``page.write_block``); raw results go to ``.bench/watchers.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from typing import Any

from common import ROOT, WORK_DIR, log, machine, percentile
from page import write_block

sys.path.insert(0, str(ROOT))

from airflow_provider_cftunnel.testing import CloudflareSimulator
from tests.support.watcher_fleet import OWN_POLL_TRIGGER, WatcherFleet

WAYS = {"before": OWN_POLL_TRIGGER, "after": None}


def measure(way: str, watchers: int, args: argparse.Namespace) -> dict[str, Any]:
    """One Airflow with ``watchers`` watchers of one way; its figures."""
    home = WORK_DIR / f"watchers-{way}-{watchers}"
    shutil.rmtree(home, ignore_errors=True)
    with CloudflareSimulator({"up_after": 0}) as sim:
        sim.delete_tunnel(sim.tunnel_id)  # the simulator's default tunnel: the account holds the fleet alone
        ids = sim.add_fleet("svc-", args.tunnels)
        width = len(str(args.tunnels))  # the simulator's names: the prefix, then the number padded to that width
        fleet = [(f"svc-{i:0{width}d}", tunnel_id) for i, tunnel_id in enumerate(ids[:watchers], start=1)]
        run = WatcherFleet(home, sim, fleet, args.interval, trigger=WAYS[way])
        try:
            started = run.start(args.startup_timeout)
            log(f"{way} {watchers}: Airflow up in {started:.0f} s; waiting for every baseline")
            t0 = time.monotonic()
            run.wait(f"{watchers} baselines", args.baseline_timeout, lambda: run.baselines() >= watchers)
            baselines = time.monotonic() - t0
            log(f"{way} {watchers}: baselines in {baselines:.0f} s; counting requests")
            cost = run.per_interval(args.interval * args.intervals)
            log(f"{way} {watchers}: {cost}")
            flipped = [(i * watchers) // args.flips + 3 for i in range(args.flips)]
            reactions = run.flip_many(flipped, "down", args.spacing, args.run_timeout)
        finally:
            survivors = run.stop()
    latencies = [r["to_run_start_s"] for r in reactions if r["to_run_start_s"] is not None]
    result = {
        "way": way,
        "watchers": watchers,
        "tunnels": args.tunnels,
        "interval_s": args.interval,
        "startup_s": round(started, 1),
        "baselines_s": round(baselines, 1),
        "cost": cost,
        "reactions": reactions,
        "to_run_start_p50_s": round(percentile(latencies, 0.5), 1),
        "to_run_start_p95_s": round(percentile(latencies, 0.95), 1),
        "missed": len(reactions) - len(latencies),
        "survivors": survivors,
    }
    p50, p95 = result["to_run_start_p50_s"], result["to_run_start_p95_s"]
    log(f"{way} {watchers}: change -> run start p50 {p50} s, p95 {p95} s")
    return result


def section(results: list[dict[str, Any]], args: argparse.Namespace, command: str) -> list[str]:
    """The Markdown lines of the page's section (without its markers)."""
    by = {(r["way"], r["watchers"]): r for r in results}
    lines = [
        "## Many health watchers, one poll",
        "",
        f"N asset watchers, one per tunnel (`CloudflareTunnelHealthTrigger(tunnel_ids=[id], "
        f"poll_interval={args.interval:g})`), of a {args.tunnels:,}-tunnel account, in a real Airflow "
        "(its four components on loopback, SQLite, one triggerer) against the simulator. *Before*: each watcher "
        "polls on its own (one request per watcher per interval, as before issue 18); *after*: the watchers share "
        "one poll (Airflow 3.3 shared stream). Requests: the simulator's log of tunnel reads over "
        f"{args.intervals} intervals (mean per interval, busiest interval). Reaction: {args.flips} tunnels go down "
        f"{args.spacing:g} s apart; seconds from each change to the start of the DAG run its event triggered.",
        "",
        "| Watchers | Requests / interval, before (busiest) | after (busiest) | Change -> run start p50 / p95, before "
        "| after | All baselines taken, before | after |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for watchers in args.watchers:
        cells = [f"{watchers:,}"]
        b, a = by.get(("before", watchers)), by.get(("after", watchers))
        for r in (b, a):
            cells.append("-" if r is None else f"{r['cost']['mean_per_interval']:g} ({r['cost']['busiest_interval']})")
        for r in (b, a):
            if r is None:
                cells.append("-")
            else:
                missed = f", {r['missed']} missed" if r["missed"] else ""
                cells.append(f"{r['to_run_start_p50_s']:g} s / {r['to_run_start_p95_s']:g} s{missed}")
        for r in (b, a):
            cells.append("-" if r is None else f"{r['baselines_s']:g} s")
        lines.append("| " + " | ".join(cells) + " |")
    info = machine()
    lines += [
        "",
        "Before, the watchers draw from the credential's request budget (3.6 requests/s): past about "
        f"{math.floor(3.6 * args.interval)} watchers every watcher's real interval stretches to watchers / 3.6 s, "
        "and they spend the whole budget the deploy gates, sensors and workers share. After, one list request per "
        "1,000 watched tunnels per interval, whatever the number of watchers.",
        "",
        f"Command: `{command}`. Machine: {info['cpu']}, {info['usable_cores']} usable cores (shared), load "
        f"{info['load_at_start']}; Airflow {info['versions'].get('apache-airflow')}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
    ]
    return lines


def main() -> None:
    """Parse the arguments, measure each way and size, print and (with ``--write``) record the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watchers", default="200,1000", help="watcher counts, comma-separated")
    parser.add_argument("--tunnels", type=int, default=1000, help="tunnels in the account")
    parser.add_argument("--ways", default="before,after")
    parser.add_argument("--interval", type=float, default=5.0, help="every watcher's poll_interval")
    parser.add_argument("--intervals", type=int, default=6, help="intervals over which requests are counted")
    parser.add_argument("--flips", type=int, default=8, help="tunnels that go down, one after the other")
    parser.add_argument("--spacing", type=float, default=1.3, help="seconds between two of them")
    parser.add_argument("--startup-timeout", type=float, default=600.0)
    parser.add_argument("--baseline-timeout", type=float, default=900.0)
    parser.add_argument("--run-timeout", type=float, default=900.0)
    parser.add_argument("--write", action="store_true", help="write the section of docs/benchmarks.md")
    args = parser.parse_args()
    args.watchers = [int(n) for n in args.watchers.split(",")]
    command = "python bench/watchers.py " + " ".join(sys.argv[1:])
    results = []
    for watchers in args.watchers:
        for way in args.ways.split(","):
            results.append(measure(way, watchers, args))
            WORK_DIR.mkdir(exist_ok=True)
            (WORK_DIR / "watchers.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    lines = section(results, args, command.strip())
    print("\n".join(lines))
    if args.write:
        page = write_block("watchers", lines)
        log(f"wrote {page.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
