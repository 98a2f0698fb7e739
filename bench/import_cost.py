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

import page
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
    """Import one target in a fresh interpreter; return its wall time, module count and ``-X importtime`` rows."""
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
    """Sample every target ``runs`` times, the order rotating; return the medians and ratios by target."""
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


# ---- the page (docs/benchmarks.md) --------------------------------------------------------------------------

KEY = "import_cost"
#: The targets: the operator + sensor import adds at most this many ms, and is this many times lighter than
#: the HTTP provider's sensor.
IMPORT_LIMIT_MS = 15.0
IMPORT_RATIO = 10.0


def targets(imp: dict[str, Any]) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """Return this benchmark's rows of the page's target table, and the keys of the targets it missed."""
    t = imp["targets"]
    ours = t["cftunnel"]["median_ms"]
    ratio = t["http_sensor"]["median_ms"] / ours
    return page.targets(
        "1",
        [
            (
                "import_ms",
                f"operator + sensor import adds at most {IMPORT_LIMIT_MS:.0f} ms",
                f"{ours:.1f} ms",
                ours <= IMPORT_LIMIT_MS,
                f"by {ours - IMPORT_LIMIT_MS:.1f} ms",
            ),
            (
                "import_ratio",
                f"at least {IMPORT_RATIO:.0f}x lighter than `airflow.providers.http.sensors.http`",
                f"{ratio:.0f}x ({t['http_sensor']['median_ms']:.0f} ms vs {ours:.1f} ms)",
                ratio >= IMPORT_RATIO,
                f"by {IMPORT_RATIO / ratio:.2f}x",
            ),
        ],
    )


def plot(imp: dict[str, Any]) -> str:
    """Draw the import-cost figure; return its path relative to the page."""
    plt = page.plt()
    names = list(imp["targets"])
    values = [imp["targets"][n]["median_ms"] for n in names]
    labels = ["this provider\n(operator + sensor)", "HttpSensor\n(providers-http)", "cloudflare SDK\nclient"]
    fig, ax = plt.subplots(figsize=(5.5, 3))
    bars = ax.barh(labels[: len(names)], values, color=["#f6821f", "#4c72b0", "#8172b3"][: len(names)])
    ax.axvline(IMPORT_LIMIT_MS, color="red", linestyle="--", linewidth=1, label=f"target: {IMPORT_LIMIT_MS:.0f} ms")
    for bar, value in zip(bars, values, strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:.1f} ms", va="center")
    ax.set_xlabel("import time added (ms, median of -X importtime runs)")
    ax.set_title("after airflow.sdk is loaded (what a DAG file parse pays)", fontsize=9)
    ax.set_xlim(0, max(values) * 1.25)
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    return page.save(fig, "bench-import.png")


def section(imp: dict[str, Any], figure: str) -> list[str]:
    """Return the page's section on import cost, with the figure :func:`plot` drew."""
    t = imp["targets"]
    ours = t["cftunnel"]["median_ms"]
    lines = [
        "## 1. Import cost",
        "",
        "What a DAG file pays on every parse for importing each choice, in a process that has already loaded "
        "what the DAG processor has (`import airflow.sdk` and `from airflow.sdk import DAG, BaseOperator, "
        "BaseSensorOperator`). Each sample is a fresh `python -X importtime` process; the figure is the sum of "
        "the cumulative times of the top-level import lines between two markers around the target's import "
        f"statement, median of {imp['runs']} runs, targets interleaved within each run.",
        "",
        "Reproduce: `.venv/bin/python bench/import_cost.py --runs " + str(imp["runs"]) + "`",
        "",
        "| import | median (ms) | IQR (ms) | vs this provider | modules added | of which HTTP/model stacks |",
        "|---|---|---|---|---|---|",
    ]
    for name in t:
        r = t[name]
        heavy = ", ".join(sorted({m.split(".")[0] for m in r["heavy_modules"]})) or "none"
        lines.append(
            f"| {r['what']}: `{r['statement']}` | {r['median_ms']:.1f} | {r['iqr_ms'][0]:.1f} to "
            f"{r['iqr_ms'][1]:.1f} | {r['median_ms'] / ours:.1f}x | {r['modules_added']} | "
            f"{r['heavy_count']} ({heavy}) |"
        )
    per_run = sorted(imp["http_ratio_per_run"])
    lines += [
        "",
        f"Per run, HttpSensor / this provider ranged from {per_run[0]:.0f}x to {per_run[-1]:.0f}x. "
        "The provider's modules import only Airflow's common-compat SDK shim; the hook (`requests`), "
        "the models (`pendulum`) and the trigger load when a task runs, never at parse time. "
        "The costliest modules of each import (self time, median sample):",
        "",
    ]
    for name in t:
        top = ", ".join(f"`{row['module']}` {row['self_ms']:.1f} ms" for row in t[name]["top_self"][:4])
        lines.append(f"- {t[name]['what']}: {top}")
    lines += ["", f"![import cost]({figure})", ""]
    return lines


def explain(imp: dict[str, Any], key: str) -> list[str]:
    """Return the page's lines on why a target of this benchmark was missed."""
    t = imp["targets"]["cftunnel"]
    top = ", ".join(f"`{row['module']}` {row['self_ms']:.1f} ms" for row in t["top_self"][:4])
    return [f"- **Import cost** ({t['median_ms']:.1f} ms): the costliest modules were {top}."]


def main() -> None:
    """Run the import-cost benchmark from the command line and print each target's median."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    results = run(args.runs)
    for name, r in results["targets"].items():
        print(f"{name:15s} {r['median_ms']:8.1f} ms  x{r['ratio_to_cftunnel']:.1f}  modules {r['modules_added']}")


if __name__ == "__main__":
    main()
