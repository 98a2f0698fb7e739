"""Benchmark 1: what importing each choice adds to a process that has already loaded Airflow's task SDK.

Every sample is a fresh ``python -X importtime`` process that first imports what the DAG processor has
loaded before it parses a DAG file (``airflow.sdk`` and its ``DAG``, ``BaseOperator``,
``BaseSensorOperator``), then the target. The target's cost is the sum of the cumulative times of the
top-level import lines ``-X importtime`` prints between two markers around the target's import statement
(everything the target pulled in that was not loaded yet). A ``perf_counter`` around the same statement and
the number of modules it added are recorded too. Targets alternate within each run to cancel drift; the
figure is the median of the runs.

Run alone: ``.venv/bin/python bench/import_cost.py [--runs 21]``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from typing import Any

from common import PYTHON, ROOT, iqr, log, loopback_env, median

PRELOAD = "import airflow.sdk\nfrom airflow.sdk import DAG, BaseOperator, BaseSensorOperator\n"

#: name -> (import statement, what it is)
TARGETS: dict[str, tuple[str, str]] = {
    "cftunnel": (
        "import airflow_provider_cftunnel.operators.tunnel, airflow_provider_cftunnel.sensors.tunnel",
        "this provider's operator + sensor modules",
    ),
    "http_sensor": ("import airflow.providers.http.sensors.http", "`airflow.providers.http.sensors.http` (HttpSensor)"),
    "cloudflare_sdk": (
        "from cloudflare import Cloudflare",
        "official SDK client (`from cloudflare import Cloudflare`)",
    ),
}

PROBE = """
import sys, time, json
{preload}
before = set(sys.modules)
sys.stderr.write("@@BEGIN@@\\n"); sys.stderr.flush()
t0 = time.perf_counter()
{target}
t1 = time.perf_counter()
sys.stderr.write("@@END@@\\n"); sys.stderr.flush()
added = sorted(set(sys.modules) - before)
print(json.dumps({{"wall_ms": (t1 - t0) * 1e3, "modules": len(added),
                  "heavy": [m for m in added if m.split(".")[0] in ("requests", "urllib3", "httpx", "aiohttp",
                            "pydantic", "cloudflare", "pendulum", "anyio")]}}))
"""

_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S.*)$")


def parse_importtime(stderr: str) -> tuple[float, list[tuple[str, float, float]]]:
    """Sum the cumulative µs of top-level imports between the markers; also return (module, self, cum) rows."""
    inside = False
    total_us = 0
    rows: list[tuple[str, float, float]] = []
    for line in stderr.splitlines():
        if line.startswith("@@BEGIN@@"):
            inside = True
            continue
        if line.startswith("@@END@@"):
            break
        if not inside:
            continue
        match = _LINE.match(line)
        if not match:
            continue
        self_us, cumulative_us, indent, name = int(match[1]), int(match[2]), match[3], match[4]
        rows.append((name.strip(), self_us / 1e3, cumulative_us / 1e3))
        if len(indent) <= 1:  # top level: "| name" (one space after the bar)
            total_us += cumulative_us
    return total_us / 1e3, rows


def sample(name: str) -> dict[str, Any]:
    statement = TARGETS[name][0]
    code = PROBE.format(preload=PRELOAD, target=statement)
    done = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=loopback_env(),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"import probe for {name} failed:\n{done.stderr[-3000:]}")
    importtime_ms, rows = parse_importtime(done.stderr)
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    return {"importtime_ms": importtime_ms, "rows": rows, **probe}


def run(runs: int = 21) -> dict[str, Any]:
    names = list(TARGETS)
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for i in range(runs):
        order = names[i % len(names) :] + names[: i % len(names)]  # rotate: each target goes first in turn
        for name in order:
            samples[name].append(sample(name))
        if (i + 1) % 5 == 0 or i + 1 == runs:
            log(f"import cost: {i + 1}/{runs} runs")
    results: dict[str, Any] = {"runs": runs, "preload": PRELOAD.strip().splitlines(), "targets": {}}
    for name in names:
        values = [s["importtime_ms"] for s in samples[name]]
        walls = [s["wall_ms"] for s in samples[name]]
        # the modules that cost most, from the median sample (by -X importtime self time)
        typical = sorted(samples[name], key=lambda s: s["importtime_ms"])[len(values) // 2]
        top = sorted(typical["rows"], key=lambda r: -r[1])[:6]
        results["targets"][name] = {
            "statement": TARGETS[name][0],
            "what": TARGETS[name][1],
            "median_ms": median(values),
            "iqr_ms": iqr(values),
            "min_ms": min(values),
            "max_ms": max(values),
            "wall_median_ms": median(walls),
            "modules_added": int(median([s["modules"] for s in samples[name]])),
            "heavy_modules": typical["heavy"][:12],
            "heavy_count": len(typical["heavy"]),
            "top_self": [{"module": m, "self_ms": round(s, 2), "cumulative_ms": round(c, 2)} for m, s, c in top],
            "samples_ms": values,
        }
    base = results["targets"]["cftunnel"]["median_ms"]
    for name in names:
        results["targets"][name]["ratio_to_cftunnel"] = results["targets"][name]["median_ms"] / base
    # per-run ratios (same run, side by side), to show the spread of the ratio itself
    results["http_ratio_per_run"] = [
        h["importtime_ms"] / c["importtime_ms"]
        for h, c in zip(samples["http_sensor"], samples["cftunnel"], strict=True)
        if c["importtime_ms"] > 0
    ]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    results = run(args.runs)
    for name, r in results["targets"].items():
        print(f"{name:15s} {r['median_ms']:8.1f} ms  x{r['ratio_to_cftunnel']:.1f}  modules {r['modules_added']}")


if __name__ == "__main__":
    main()
