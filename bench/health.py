"""Benchmark 4: a scheduled health check of a fleet of tunnels, against one request per tunnel.

The simulator (its own process, ``python -m airflow_provider_cftunnel.testing``) holds N tunnels in one account:
N - 50 named ``prod-web-0001``... and 50 named ``prod-db-...``, a few of them down, degraded or inactive, and 5
``prod-db-`` tunnels healthy with only 2 connections (the ``fleets`` scenario key; see :func:`fleets`). Three
checks, each done two ways, side by side:

* ``fleet``: ``airflow_provider_cftunnel.health.check_tunnel_health`` (what ``CloudflareTunnelHealthOperator``
  runs): the tunnel list (``per_page=1000``, ``is_deleted=false``, ``include_prefix``) for every status, then
  ``/connections`` only for the tunnels whose verdict needs it (``HealthRule.needs_connectors``), 4 at a time;
* ``naive``: ``hook.get_tunnel(id)`` for each tunnel id (known in advance, as a DAG would list them), then
  ``hook.list_tunnel_connectors(id)`` where the same rule needs it, the same verdict
  (``HealthRule.evaluate``), on the same 4 threads: only the way of reading differs.

The checks: every tunnel with the default rule (status ``healthy``); every tunnel with a strict rule
(``min_live_connections=4``: every healthy tunnel's connections are needed); the 50 ``prod-db-`` tunnels with the
strict rule. Measured: the requests the simulator logged (by kind), the wall time of the call (median of
``repeats``), the benchmark process's CPU time; and whether both ways reached the same verdicts. The simulator's
rate limit is off: at Cloudflare's 1,200 requests per 5 minutes, what matters is the request count, from which
the report derives the least time each check needs within the limit.

Run alone: ``.venv/bin/python bench/health.py [--sizes 1000,5000] [--repeats 3]`` (prints the figures; the page
``docs/benchmarks.md`` is written by ``bench/run.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import page
from common import SimProcess, cpu_seconds, log, loopback_env

DB_TUNNELS = 50
#: Of the prod-db- tunnels, this many run ``cloudflared --ha-connections 2``: healthy, but only 2 connections.
DB_TWO_CONNECTIONS = 5
MAX_WORKERS = 4
CF_REQUESTS, CF_PERIOD = 1200, 300.0
CASES = (
    # name, selection, rule
    ("account_default", "every tunnel of the account", "default"),
    ("account_strict", "every tunnel of the account", "strict"),
    ("prefix_strict", f"the {DB_TUNNELS} `prod-db-` tunnels", "strict"),
)
RULES = {
    "default": "default (status `healthy`)",
    "strict": "`min_live_connections=4`",
}


def fleets(n: int) -> list[dict[str, Any]]:
    """N tunnels in one account: N - 50 ``prod-web-`` (0.3 % down, 0.2 % degraded, one inactive) and 50
    ``prod-db-`` (one down, one degraded, and 5 ``prod-db-ha2-`` whose status is healthy with 2 connections each,
    which only the strict rule fails)."""
    web = n - DB_TUNNELS
    return [
        {
            "prefix": "prod-web-",
            "count": web,
            "statuses": {"down": max(1, web * 3 // 1000), "degraded": max(1, web // 500), "inactive": 1},
        },
        {"prefix": "prod-db-", "count": DB_TUNNELS - DB_TWO_CONNECTIONS, "statuses": {"down": 1, "degraded": 1}},
        {"prefix": "prod-db-ha2-", "count": DB_TWO_CONNECTIONS, "connections": 2},
    ]


def _kind(path: str) -> str:
    tail = path.rsplit("/cfd_tunnel", 1)[-1]
    if not tail:
        return "list"
    return "connections" if tail.endswith("/connections") else "tunnel"


def _measure(sim: SimProcess, call: Any) -> dict[str, Any]:
    sim.control("POST", "/reset-requests")
    cpu0, sim_cpu0 = time.process_time(), cpu_seconds(sim.pid)
    started = time.perf_counter()
    verdicts = call()
    wall = time.perf_counter() - started
    cpu, sim_cpu = time.process_time() - cpu0, cpu_seconds(sim.pid) - sim_cpu0
    log_records = sim.control("GET", "/requests")
    return {
        "wall_s": wall,
        "client_cpu_s": cpu,
        "sim_cpu_s": sim_cpu,
        "requests": len(log_records),
        "by_kind": dict(Counter(_kind(r["path"]) for r in log_records)),
        "statuses": dict(Counter(str(r["status"]) for r in log_records)),
        "unhealthy": sorted(v.id for v in verdicts if not v.healthy),
        "checked": len(verdicts),
    }


def run_size(n: int, repeats: int) -> list[dict[str, Any]]:
    """Every case at fleet size ``n``: the fleet check and the naive loop, interleaved ``repeats`` times."""
    from airflow_provider_cftunnel.testing import fleet_tunnel_id

    with SimProcess({"accounts": [{"tunnels": []}], "fleets": fleets(n)}, log_name=f"simulator-health-{n}") as sim:
        os.environ.update(loopback_env({"AIRFLOW_CONN_CLOUDFLARE_DEFAULT": sim.connection()}))
        from airflow_provider_cftunnel.health import check_tunnel_health
        from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook
        from airflow_provider_cftunnel.rules import HealthRule

        account = sim.info["account_id"]
        ids = {f["prefix"]: [fleet_tunnel_id(account, f["prefix"], i) for i in range(f["count"])] for f in fleets(n)}
        db_ids = [tunnel_id for prefix, some in ids.items() if prefix.startswith("prod-db-") for tunnel_id in some]
        all_ids = [tunnel_id for some in ids.values() for tunnel_id in some]
        rules = {"default": HealthRule(), "strict": HealthRule(min_live_connections=4)}
        hook = CloudflareHook()

        def fleet(case: str) -> Any:
            rule = rules["strict" if case.endswith("strict") else "default"]
            prefix = "prod-db-" if case.startswith("prefix") else None
            return lambda: check_tunnel_health(hook, name_prefix=prefix, rule=rule, max_workers=MAX_WORKERS)

        def naive(case: str) -> Any:
            rule = rules["strict" if case.endswith("strict") else "default"]
            selected = db_ids if case.startswith("prefix") else all_ids

            def one(tunnel_id: str) -> Any:
                tunnel = hook.get_tunnel(tunnel_id)
                connectors = hook.list_tunnel_connectors(tunnel_id) if rule.needs_connectors(tunnel) else None
                return rule.evaluate(tunnel, connectors)

            def check() -> list[Any]:
                with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
                    return list(pool.map(one, selected))

            return check

        # warm up: the session's connections, lazy imports, the simulator's render caches
        fleet("account_default")()
        naive("prefix_strict")()

        results = []
        for case, selection, rule_name in CASES:
            runs: dict[str, list[dict[str, Any]]] = {"fleet": [], "naive": []}
            for attempt in range(repeats):
                order = ("fleet", "naive") if attempt % 2 == 0 else ("naive", "fleet")
                for way in order:
                    runs[way].append(_measure(sim, (fleet if way == "fleet" else naive)(case)))
            entry: dict[str, Any] = {"n": n, "case": case, "selection": selection, "rule": rule_name}
            for way, measured in runs.items():
                first = measured[0]
                entry[way] = {
                    **{k: first[k] for k in ("requests", "by_kind", "statuses", "checked")},
                    "unhealthy_count": len(first["unhealthy"]),
                    "wall_s": statistics.median(m["wall_s"] for m in measured),
                    "wall_s_all": [m["wall_s"] for m in measured],
                    "client_cpu_s": statistics.median(m["client_cpu_s"] for m in measured),
                    "sim_cpu_s": statistics.median(m["sim_cpu_s"] for m in measured),
                }
                if any(m["requests"] != first["requests"] for m in measured):
                    entry[way]["requests_varied"] = [m["requests"] for m in measured]
            entry["verdicts_agree"] = all(
                m["unhealthy"] == runs["fleet"][0]["unhealthy"] for m in runs["fleet"] + runs["naive"]
            )
            results.append(entry)
            log(
                f"health N={n:,} {case}: fleet {entry['fleet']['requests']:,} requests "
                f"{entry['fleet']['wall_s']:.2f} s, naive {entry['naive']['requests']:,} requests "
                f"{entry['naive']['wall_s']:.2f} s, verdicts agree: {entry['verdicts_agree']}"
            )
        return results


def least_seconds_within_limit(requests: int) -> float:
    """The least time ``requests`` take within Cloudflare's limit, for a token whose pool is untouched: 1,200 at
    once, then one every 0.25 s (1,200 per 300 s). Any other use of the pool makes it longer."""
    return max(0, requests - CF_REQUESTS) * CF_PERIOD / CF_REQUESTS


def run(sizes: list[int], repeats: int) -> dict[str, Any]:
    """Measure every size; the results for :func:`section`."""
    started = time.time()
    cases = [entry for n in sizes for entry in run_size(n, repeats)]
    return {
        "sizes": sizes,
        "repeats": repeats,
        "max_workers": MAX_WORKERS,
        "db_tunnels": DB_TUNNELS,
        "cases": cases,
        "wall_s": time.time() - started,
    }


# ---- the page (docs/benchmarks.md) --------------------------------------------------------------------------

KEY = "health"
HEALTH_COLORS = {"fleet": "#f6821f", "naive": "#4c72b0"}
HEALTH_LABELS = {
    "fleet": "this provider (`check_tunnel_health`)",
    "naive": "one `get_tunnel` per tunnel",
}
HEALTH_RULES = {"default": "default (status `healthy`)", "strict": "`min_live_connections=4`"}


def _times(ratio: float) -> str:
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def _share(requests: int) -> str:
    share = requests / CF_REQUESTS
    return f"{share:.1%}" if share < 0.1 else f"{share:.0%}"


def _least_cell(requests: int) -> str:
    seconds = least_seconds_within_limit(requests)
    return "no wait" if seconds == 0 else page.duration(seconds)


def _requests_cell(way: dict[str, Any]) -> str:
    """``5 list``, or ``4,942: 5 list + 4,937 connections``."""
    parts = [f"{way['by_kind'][k]:,} {k}" for k in ("list", "tunnel", "connections") if way["by_kind"].get(k)]
    if len(parts) == 1:
        return parts[0]
    return f"{way['requests']:,}: {' + '.join(parts)}"


def health_table(health: dict[str, Any]) -> list[str]:
    """The side-by-side table of the health-check benchmark."""
    lines = [
        "| tunnels | selection | rule | requests: this provider | requests: one per tunnel | ratio | wall time (s): "
        "this provider / one per tunnel | ratio | share of Cloudflare's 5-minute quota | least time within the "
        "limit | unhealthy found (same in both) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in health["cases"]:
        fleet, naive = c["fleet"], c["naive"]
        lines.append(
            f"| {c['n']:,} | {c['selection']} | {HEALTH_RULES[c['rule']]} | {_requests_cell(fleet)} | "
            f"{_requests_cell(naive)} | {_times(naive['requests'] / fleet['requests'])} | "
            f"{fleet['wall_s']:.2f} / {naive['wall_s']:.2f} | {_times(naive['wall_s'] / fleet['wall_s'])} | "
            f"{_share(fleet['requests'])} / {_share(naive['requests'])} | "
            f"{_least_cell(fleet['requests'])} / {_least_cell(naive['requests'])} | "
            f"{fleet['unhealthy_count']:,} of {fleet['checked']:,} ({'yes' if c['verdicts_agree'] else '**no**'}) |"
        )
    return lines


def plot(health: dict[str, Any]) -> str:
    """Draw the health-check figure; return its path relative to the page."""
    plt = page.plt()
    cases = health["cases"]
    scope = {"account_default": "account", "account_strict": "account", "prefix_strict": "prod-db-"}
    labels = [f"{c['n']:,} tunnels\n{scope.get(c['case'], c['case'])}, {c['rule']}" for c in cases]
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    width = 0.38
    xs = range(len(cases))
    for offset, way in ((-width / 2, "fleet"), (width / 2, "naive")):
        values = [c[way]["requests"] for c in cases]
        bars = ax.bar(
            [x + offset for x in xs], values, width, color=HEALTH_COLORS[way], label=HEALTH_LABELS[way].replace("`", "")
        )
        page.label_bars(ax, bars, [f"{value:,}" for value in values], fontsize=7)
    ax.axhline(CF_REQUESTS, color="red", linestyle="--", linewidth=1, label="Cloudflare's limit: 1,200 per 5 minutes")
    ax.set_yscale("log")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("requests per check")
    ax.set_ylim(top=max(c["naive"]["requests"] for c in cases) * 4)
    ax.legend(fontsize=7, loc="upper left")
    return page.save(fig, "bench-health.png")


def section(health: dict[str, Any], figure: str) -> list[str]:
    """Return the page's section on the health check at fleet scale, with the figure :func:`plot` drew."""
    sizes = health["sizes"]
    lines = [
        "## 4. Health check at fleet scale",
        "",
        f"One account of N tunnels in the simulator (its own process): N - {health['db_tunnels']} named "
        f"`prod-web-0001`... and {health['db_tunnels']} named `prod-db-...`, a few of them down (0.3 %), degraded "
        "(0.2 %) or inactive, and 5 `prod-db-` tunnels healthy with 2 connections instead of 4 (which only the strict "
        "rule fails), as the simulator's `fleets` scenario key makes them. Each check is done two ways, side by side "
        "in the same run, with the same hook and the same verdict (`HealthRule.evaluate`):",
        "",
        f"- **{HEALTH_LABELS['fleet']}**, what `CloudflareTunnelHealthOperator` runs: the tunnel list "
        "(`per_page=1000`, `is_deleted=false`, `include_prefix` for a prefix) gives every status, then "
        f"`/connections` only for the tunnels whose verdict needs it, {health['max_workers']} at a time;",
        f"- **{HEALTH_LABELS['naive']}** (the ids known in advance, as a DAG would list them), then its "
        "`/connections` where the same rule needs them, on the same "
        f"{health['max_workers']} threads: only the way of reading differs.",
        "",
        "Requests are what the simulator logged (all answered 200); wall time is the median of "
        f"{health['repeats']} runs, the two ways alternating. The simulator's rate limit is off; at Cloudflare's "
        "limit (1,200 requests per 5 minutes per user, everything of the user included) the request count decides: "
        "*least time within the limit* is how long the check must take at best, from a pool nobody else touches "
        "(1,200 at once, then 4 per second), and it would leave nothing to the dashboard or any other task.",
        "",
        f"Reproduce: `.venv/bin/python bench/health.py --sizes {','.join(str(n) for n in sizes)} "
        f"--repeats {health['repeats']}`",
        "",
        *health_table(health),
        "",
    ]
    by_case = {(c["n"], c["case"]): c for c in health["cases"]}
    big = max(sizes)
    default = by_case.get((big, "account_default"))
    strict = by_case.get((big, "account_strict"))
    if default:
        f, n = default["fleet"], default["naive"]
        lines.append(
            f"At {big:,} tunnels the default check read every status with {f['requests']:,} list request(s) "
            f"({f['requests'] / CF_REQUESTS:.1%} of the 5-minute quota) in {f['wall_s']:.2f} s; one request per "
            f"tunnel took {n['requests']:,} ({n['requests'] / CF_REQUESTS:.1f}x the quota) and {n['wall_s']:.1f} s "
            f"here, and would need at least {page.duration(least_seconds_within_limit(n['requests']))} against "
            "Cloudflare, leaving nothing of the user's pool to anything else meanwhile."
        )
    if strict:
        f, n = strict["fleet"], strict["naive"]
        lines[-1] += (
            f" A strict rule needs each healthy tunnel's connections, so both ways send those "
            f"{f['by_kind'].get('connections', 0):,} `/connections` requests; the list still replaces the "
            f"{n['by_kind'].get('tunnel', 0):,} `get_tunnel` requests ({n['requests'] / f['requests']:.1f}x fewer "
            "requests in all). For a strict check of a few tunnels, select them by prefix (last rows)."
        )
    return [*lines, "", f"![health check requests]({figure})", ""]


def targets(health: dict[str, Any]) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """Return this benchmark's rows of the page's target table (none: it compares, it sets no target)."""
    return [], []


def explain(health: dict[str, Any], key: str) -> list[str]:
    """Return the page's lines on a missed target (none: this benchmark has no target)."""
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description="Fleet health check vs one request per tunnel.")
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results = run(sizes, args.repeats)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    print("\n".join(health_table(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
