"""Shared plumbing of the benchmarks: the simulator in its own process, statistics, machine facts.

Standard library and the simulator only (the benchmark modules import what they measure themselves).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from airflow_provider_cftunnel.testing.process import SimulatorProcess

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
WORK_DIR = ROOT / ".bench"  # raw results and logs (git-ignored)
PYTHON = sys.executable

# Loopback must never go through a proxy, whatever the environment says.
_NO_PROXY = "127.0.0.1,localhost"


def loopback_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for child processes: this one, with loopback exempt from proxies."""
    env = dict(os.environ)
    for name in ("NO_PROXY", "no_proxy"):
        current = env.get(name, "")
        env[name] = f"{current},{_NO_PROXY}" if current else _NO_PROXY
    env.setdefault("PYTHONHASHSEED", "0")
    env.update(extra or {})
    return env


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_json(method: str, url: str, body: Any = None, timeout: float = 30.0) -> Any:
    """A JSON request to the simulator's control endpoints (no proxy, stdlib only)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with _opener.open(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


class SimProcess(SimulatorProcess):
    """
    The local Cloudflare simulator in a process of its own (:class:`SimulatorProcess`), logging to
    ``.bench/<log_name>.log``.

    ``with SimProcess(scenario) as sim:`` gives ``sim.info`` (the ready file: ``base_url``, ``api_token``,
    ``account_id``, ``tunnel_id``, ``connector_id``...), ``sim.pid`` and ``sim.control(method, route, body)``.
    """

    def __init__(self, scenario: dict[str, Any], *, log_name: str = "simulator") -> None:
        WORK_DIR.mkdir(exist_ok=True)
        super().__init__(
            scenario, env=loopback_env(), cwd=ROOT, log_path=WORK_DIR / f"{log_name}.log", start_timeout=60.0
        )

    def connection(self, **extra: Any) -> str:
        """The JSON of an Airflow ``cloudflare`` connection to this simulator (API token)."""
        return self.connection_json(extra=extra)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks
    except (OSError, ValueError, IndexError):
        return 0.0


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def iqr(values: list[float]) -> tuple[float, float]:
    return percentile(values, 0.25), percentile(values, 0.75)


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "load_at_start": [round(x, 2) for x in load],
        "versions": {
            name: _version(name)
            for name in (
                "apache-airflow",
                "apache-airflow-task-sdk",
                "airflow-provider-cftunnel",
                "apache-airflow-providers-http",
                "apache-airflow-providers-common-compat",
                "cloudflare",
                "requests",
                "urllib3",
                "httpx",
                "aiohttp",
                "matplotlib",
            )
        },
    }


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)
