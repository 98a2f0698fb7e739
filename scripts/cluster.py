"""``make cluster``: the provider on a distributed Airflow, step by step, on this machine.

Starts a throwaway PostgreSQL, Redis, and Airflow with the CeleryExecutor (api-server, scheduler,
dag-processor, two Celery workers, two triggerers; each its own AIRFLOW_HOME, all on 127.0.0.1), then runs the
scenario of ``tests/cluster/story.py`` against the built-in Cloudflare simulator: 100 deferrable sensors on 10
tunnels, one triggerer SIGKILLed while they wait, a health watcher (``AssetWatcher``) beside them. It prints
each step and the figures, stops every process it started (also on Ctrl-C or failure) and keeps the logs in
``.airflow/cluster``.

Variants (for the comparison in docs/deployment.md)::

    python scripts/cluster.py                    # the default: 2 triggerers, one killed
    python scripts/cluster.py --queues           # sensors on queue "cloudflare", ONE triggerer runs them
    python scripts/cluster.py --share none       # no rate-limit extras on the connection (default budget)
    python scripts/cluster.py --pool-headers none --share none   # a proxy strips Cloudflare's rate-limit headers
    python scripts/cluster.py --pool none --share none   # no emulated pool: what the fleet asks for

Needs PostgreSQL's server binaries, ``redis-server`` and the ``cluster`` extra (``make cluster`` installs the
extra; ``apt-get install -y postgresql redis-server`` the rest).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cluster.harness import ClusterSpec, missing_requirements  # noqa: E402
from tests.cluster.story import StoryConfig, run_story  # noqa: E402

HOME = ROOT / ".airflow" / "cluster"


def _pair(text: str) -> tuple[int, float] | None:
    """``"300/60"`` -> ``(300, 60.0)``; ``"none"`` -> ``None``."""
    if text.lower() == "none":
        return None
    requests, _, period = text.partition("/")
    try:
        return int(requests), float(period or 300)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected REQUESTS/SECONDS or none, not {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queues", action="store_true", help="sensors on queue 'cloudflare', one triggerer for it")
    parser.add_argument("--no-kill", action="store_true", help="do not kill a triggerer")
    parser.add_argument("--no-watch", action="store_true", help="no health watcher")
    parser.add_argument("--pool", type=_pair, default=(300, 60.0), help="simulator's pool REQ/SECONDS or none")
    parser.add_argument("--share", type=_pair, default=(140, 60.0), help="connection extras REQ/SECONDS or none")
    parser.add_argument(
        "--pool-headers",
        choices=("ietf", "legacy", "none"),
        default="ietf",
        help="rate-limit headers on the pool's answers (none: stripped, as by a proxy)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the scenario once; return 0 when every check passed."""
    args = build_parser().parse_args(argv)
    binaries, packages = missing_requirements()
    if binaries or packages:
        print(f"Missing: {', '.join(binaries + packages)}.")
        print("Install: apt-get install -y postgresql redis-server; .venv/bin/pip install -e '.[cluster]'")
        return 2
    common = {"watch": not args.no_watch, "pool": args.pool, "share": args.share, "pool_headers": args.pool_headers}
    if args.queues:
        # the sensors' queue: a Celery queue both workers serve, and a triggerer of its own (--queues); the other
        # triggerer, started without --queues, runs what has no queue (the health watcher)
        spec = ClusterSpec(worker_queues=("default", "cloudflare"), triggerer_queues=("cloudflare", None))
        config = StoryConfig(spec=spec, sensor_queue="cloudflare", kill=False, **common)
    else:
        config = StoryConfig(kill=not args.no_kill, **common)

    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir(parents=True)
    began = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f} s] {text}", flush=True)

    def on_term(signum: int, frame: FrameType | None) -> None:
        print("SIGTERM: stopping every process started", flush=True)
        raise KeyboardInterrupt  # unwinds through the harness, which stops everything

    signal.signal(signal.SIGTERM, on_term)
    say(f"cluster scenario in {HOME} (logs stay there)")
    try:
        result = run_story(config, HOME, say=say)
    except KeyboardInterrupt:
        print("interrupted: every process started was stopped", flush=True)
        return 130
    figures = {k: v for k, v in result.figures.items() if k != "listening"}
    print("\nfigures:")
    for key, value in figures.items():
        print(f"  {key}: {json.dumps(value)}")
    print(f"  listening: {json.dumps(result.figures.get('listening'))}")
    if args.json:
        Path(args.json).write_text(json.dumps(result.figures, indent=2) + "\n", encoding="utf-8")
    if result.problems:
        print(f"\nFAILED: {len(result.problems)} problem(s):")
        for problem in result.problems:
            print(f"  - {problem}")
        print(f"component logs: {HOME / 'component-logs'}")
        return 1
    print(f"\nOK: every check passed in {result.figures['wall_s']:.0f} s; nothing left running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
