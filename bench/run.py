"""Run every benchmark and write ``docs/benchmarks.md`` with its plots in ``docs/img/``.

``make bench`` runs this with the ``bench`` extra installed. Options:

* ``--quick`` (or ``BENCH_QUICK=1``): a smoke run of a couple of minutes: fewer samples, smaller fleets;
* ``--only import,throughput,fleet,health``: run some benchmarks (the page shows only those);
* ``--report-only``: rewrite the page and plots from ``.bench/results.json`` without measuring.

Every process it starts (simulators, fleet processes, import probes) is its own child and is stopped before
it returns; everything binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import WORK_DIR, log, machine

FULL = {
    "import_runs": 15,
    "throughput_seconds": 10.0,
    "fleet_sizes": [10, 100, 500, 1000, 2000, 5000],
    "per_sensor_cap": 1000,
    "interval": 2.0,
    "window": 3.0,
    "memory_sizes": [100, 1000],
    "budget_n": 1000,
    "budget_window": 10.0,
    "health_sizes": [1000, 5000],
    "health_repeats": 3,
}
QUICK = {
    "import_runs": 5,
    "throughput_seconds": 3.0,
    "fleet_sizes": [10, 100, 1000],
    "per_sensor_cap": 100,
    "interval": 2.0,
    "window": 2.0,
    "memory_sizes": [100],
    "budget_n": 500,
    "budget_window": 8.0,
    "health_sizes": [1000],
    "health_repeats": 1,
}


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks and write docs/benchmarks.md.")
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK", "") not in ("", "0"))
    parser.add_argument("--only", default="import,throughput,fleet,health")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()

    import report

    results_path = WORK_DIR / "results.json"
    if args.report_only:
        results = json.loads(results_path.read_text())
        log(f"wrote {report.write(results).relative_to(report.ROOT)} from {results_path}")
        return 0

    settings = QUICK if args.quick else FULL
    only = {name.strip() for name in args.only.split(",")}
    started = time.time()
    WORK_DIR.mkdir(exist_ok=True)
    results: dict = {"started_at": started, "quick": args.quick, "settings": settings, "machine": machine()}
    log(f"{'quick' if args.quick else 'full'} run: {', '.join(sorted(only))}")

    if "import" in only:
        import import_cost

        results["import_cost"] = import_cost.run(settings["import_runs"])
    if "throughput" in only:
        import throughput

        results["throughput"] = throughput.run(settings["throughput_seconds"])
    if "fleet" in only:
        import fleet

        results["fleet"] = fleet.run(
            settings["fleet_sizes"],
            settings["per_sensor_cap"],
            settings["interval"],
            settings["window"],
            settings["memory_sizes"],
            settings["budget_n"],
            settings["budget_window"],
        )
    if "health" in only:
        import health

        results["health"] = health.run(settings["health_sizes"], settings["health_repeats"])
    results["wall_s"] = time.time() - started
    results_path.write_text(json.dumps(results, indent=1))
    doc = report.write(results)
    log(f"wrote {doc.relative_to(report.ROOT)} and docs/img/*.png in {results['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
