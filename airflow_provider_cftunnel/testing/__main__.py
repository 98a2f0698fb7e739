"""Command line: serve the local Cloudflare simulator until SIGTERM or SIGINT.

``python -m airflow_provider_cftunnel.testing [--host 127.0.0.1] [--port 8787] [--scenario FILE]
[--fleet PREFIX:COUNT ...] [--rate-limit REQUESTS/PERIOD] [--rate-limit-window sliding|fixed]
[--rate-limit-reset more|full] [--print-scenario] [--ready-file PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from airflow_provider_cftunnel.testing.scenario import ScenarioError, load_scenario
from airflow_provider_cftunnel.testing.server import CloudflareSimulator


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_cftunnel.testing",
        description="Serve a local imitation of Cloudflare's Tunnel API (under /client/v4) until SIGTERM/SIGINT.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; keep it local)")
    parser.add_argument("--port", type=int, default=8787, help="port to bind; 0 picks a free one (default 8787)")
    parser.add_argument("--scenario", metavar="FILE", help="JSON scenario file (default: the default scenario)")
    parser.add_argument(
        "--fleet",
        action="append",
        default=[],
        metavar="PREFIX:COUNT",
        help="add COUNT healthy tunnels named PREFIX0001... to the first account (repeatable; the scenario key "
        "'fleets' also sets statuses)",
    )
    parser.add_argument(
        "--rate-limit",
        metavar="REQUESTS/PERIOD",
        help="emulate Cloudflare's limit per user, e.g. 1200/300 (overrides the scenario's rate_limit numbers)",
    )
    parser.add_argument(
        "--rate-limit-window",
        choices=("sliding", "fixed"),
        help="how the emulated limit counts: the last PERIOD seconds (sliding, default) or fixed windows",
    )
    parser.add_argument(
        "--rate-limit-reset",
        choices=("more", "full"),
        help="what a sliding window's Ratelimit t counts to: until more quota (default) or the whole quota",
    )
    parser.add_argument("--print-scenario", action="store_true", help="print the effective scenario as JSON and exit")
    parser.add_argument(
        "--ready-file",
        metavar="PATH",
        help="once listening, write JSON {base_url, pid, api_token, account_id, tunnel_id, connector_id, ...}",
    )
    return parser


def _write_ready_file(path: str, sim: CloudflareSimulator) -> None:
    info = {
        "base_url": sim.base_url,
        "control_url": sim.control_url,
        "host": sim.host,
        "port": sim.port,
        "pid": os.getpid(),
        "api_token": sim.api_token,
        "account_token": sim.account_token,
        "global_key_email": sim.global_key_email,
        "global_key": sim.global_key,
        "account_id": sim.account_id,
        "tunnel_id": sim.tunnel_id,
        "connector_id": sim.connector_id,
    }
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(info, handle)
    os.replace(temporary, path)  # readers never see a half-written file


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    :param argv: the arguments (default ``sys.argv[1:]``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    fleets = []
    for value in args.fleet:
        prefix, colon, count = value.rpartition(":")
        if not colon or not count.isdigit():
            parser.error(f"--fleet takes PREFIX:COUNT, e.g. prod-web-:1000, got {value!r}")
        fleets.append({"prefix": prefix, "count": int(count)})
    rate_limit: dict[str, object] = {}
    if args.rate_limit is not None:
        count, slash, period = args.rate_limit.partition("/")
        try:
            rate_limit.update(requests=int(count), period=float(period) if slash else 300.0)
        except ValueError:
            parser.error(f"--rate-limit takes REQUESTS/PERIOD, e.g. 1200/300, got {args.rate_limit!r}")
    for key, value in (("window", args.rate_limit_window), ("reset", args.rate_limit_reset)):
        if value is not None:
            rate_limit[key] = value
    try:
        scenario = args.scenario
        if fleets or rate_limit:
            scenario = load_scenario(args.scenario)
        if fleets:
            scenario["fleets"] = fleets
        if rate_limit:
            if args.rate_limit is None and scenario.get("rate_limit") is None:
                parser.error("--rate-limit-window and --rate-limit-reset need --rate-limit (or a scenario rate_limit)")
            scenario["rate_limit"] = {**(scenario.get("rate_limit") or {}), **rate_limit}
        sim = CloudflareSimulator(scenario, host=args.host, port=args.port)
    except (OSError, ScenarioError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_scenario:
        print(json.dumps(sim.scenario, indent=2))
        return 0

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        sim.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.ready_file:
            _write_ready_file(args.ready_file, sim)
        print(f"Cloudflare simulator listening on {sim.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
