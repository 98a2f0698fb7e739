"""Gate-open latency through the real triggerer: from the new connector's N-th live connection to the sensor's success.

Airflow's four components run on loopback (``tests/support/airflow.py``'s :class:`LocalAirflow`: SQLite, LocalExecutor,
a real triggerer); the simulator runs in this process. One DAG run holds ``2 x gates`` deferrable
``CloudflareTunnelConnectorSensor`` tasks, each on a tunnel of its own with ``ready_url`` (its new connector's
``/ready``), ``min_connections=N`` and ``poke_interval``: half with ``stable_for=0``, half with ``stable_for=S``,
side by side in the same run. Every tunnel's old connector stays live (4 connections) throughout: a gate that
opened on it would be counted as wrong. Once every task is deferred, the new connectors come up one tunnel at a
time in a shuffled order, a random fraction of a poll interval apart (so polls meet them at every phase): 1 live
connection, N live 0.3 s later (the moment measured from), 4 live 0.3 s after that.

Latency is the task instance's ``end_date`` (Airflow's record of the sensor's success) minus the moment the
N-th connection went live. It covers: waiting for the tunnel's next poll (at most one interval), the ``/ready``
read, ``stable_for``, the trigger's event, the scheduler queueing the task again, a task runner starting and
``execute_complete``. ``latency - stable_for`` is what the gate adds on top of what it was asked to wait.

Writes its section of ``docs/benchmarks.md`` between ``<!-- bench:gate:start -->`` and ``<!-- bench:gate:end -->``
(``page.write_block``; the rest of the page is ``bench/run.py``'s) and its raw figures to ``.bench/gate.json``.

Reproduce: ``.venv/bin/python bench/gate.py --gates 20 --interval 1 --stable-for 5 --min-connections 2``
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/support's launcher
sys.path.insert(0, str(ROOT / "bench"))

from common import WORK_DIR, log, machine  # noqa: E402

NAME = "gate"  # the page's block: <!-- bench:gate:start --> ... <!-- bench:gate:end -->
DAG_ID = "cftunnel_gate_bench"
#: The DAG the benchmark writes into its DAGs folder: one deferrable sensor per gate of ``CFTUNNEL_GATES``.
DAG_SOURCE = """
import json
import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_cftunnel.sensors.tunnel import CloudflareTunnelConnectorSensor

gates = json.loads(os.environ.get("CFTUNNEL_GATES") or "[]")
with DAG(dag_id="cftunnel_gate_bench", schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
         max_active_runs=1, max_active_tasks=max(1, len(gates))):
    for gate in gates:
        CloudflareTunnelConnectorSensor(
            task_id=gate["task_id"], tunnel_id=gate["tunnel_id"], ready_url=gate["ready_url"],
            stable_for=gate["stable_for"], min_connections=gate["min_connections"],
            poke_interval=gate["interval"], timeout=900, deferrable=True, retries=0,
        )
"""
UNFINISHED = {None, "scheduled", "queued", "running", "deferred", "up_for_reschedule", "restarting", "none"}


def percentile(values: list[float], share: float) -> float:
    """Return the ``share`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def scenario(gates: list[dict[str, Any]]) -> dict[str, Any]:
    """Build the gates' tunnels.

    Each has its old connector live from long ago and its gates' new connectors not started yet (``/ready``: 503).
    """
    tunnels: dict[str, dict[str, Any]] = {}
    for gate in gates:
        tunnel = tunnels.setdefault(
            gate["tunnel_id"],
            {
                "id": gate["tunnel_id"],
                "name": gate["tunnel_name"],
                "connectors": [{"id": gate["old"], "timeline": [{"at": -3600, "live": 4}]}],
            },
        )
        tunnel["connectors"].append({"id": gate["new"], "up_after": 86400})
    return {"accounts": [{"tunnels": list(tunnels.values())}]}


def make_gates(
    count: int, stable_for: float, interval: float, min_connections: int, layout: str
) -> list[dict[str, Any]]:
    """Make ``count`` gates with ``stable_for=0`` and ``count`` with ``stable_for``.

    With ``layout="replicas"`` each half waits on the replicas of one tunnel (one poll per interval for all); with
    ``"tunnels"`` every gate has a tunnel of its own (one poll per gate per interval, within the token's budget).
    """
    gates = []
    for kind, stable in (("plain", 0.0), ("stable", stable_for)):
        shared = (str(uuid.uuid4()), str(uuid.uuid4()))
        for i in range(count):
            tunnel_id, old = shared if layout == "replicas" else (str(uuid.uuid4()), str(uuid.uuid4()))
            gates.append(
                {
                    "task_id": f"gate_{kind}_{i:02d}",
                    "tunnel_id": tunnel_id,
                    "tunnel_name": f"gate-{kind}" if layout == "replicas" else f"gate-{kind}-{i:02d}",
                    "old": old,
                    "new": str(uuid.uuid4()),
                    "stable_for": stable,
                    "interval": interval,
                    "min_connections": min_connections,
                }
            )
    return gates


def roll_out(sim: Any, gates: list[dict[str, Any]], interval: float, min_connections: int, seed: int) -> None:
    """Bring every new connector up, in a shuffled order; note when its N-th connection went live."""
    rng = random.Random(seed)
    order = list(gates)
    rng.shuffle(order)
    for gate in order:
        sim.set_connector(gate["tunnel_id"], gate["new"], live=1, pending=3)
        time.sleep(0.3)
        sim.set_connector(gate["tunnel_id"], gate["new"], live=min_connections, pending=4 - min_connections)
        gate["nth_live_at"] = time.time()
        time.sleep(0.3)
        sim.set_connector(gate["tunnel_id"], gate["new"], live=4)
        time.sleep(rng.uniform(0.0, interval))


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from airflow_provider_cftunnel.testing import CloudflareSimulator
    from tests.support.airflow import LocalAirflow
    from tests.support.processes import Api

    if args.layout == "replicas" and args.gates > 24:
        raise SystemExit("--layout replicas: at most 24 gates (Cloudflare allows 25 connectors per tunnel)")
    gates = make_gates(args.gates, args.stable_for, args.interval, args.min_connections, args.layout)
    work = Path(tempfile.mkdtemp(prefix="cftunnel-gate-bench-"))
    dags = work / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(DAG_SOURCE)
    result: dict[str, Any] = {"settings": vars(args), "machine": machine(), "started_at": time.time()}
    with CloudflareSimulator(scenario(gates)) as sim:
        for gate in gates:
            gate["ready_url"] = sim.ready_url(gate["new"])
        spec = [
            {k: g[k] for k in ("task_id", "tunnel_id", "ready_url", "stable_for", "interval", "min_connections")}
            for g in gates
        ]
        env = {**sim.airflow_env(), "CFTUNNEL_GATES": json.dumps(spec)}
        airflow = LocalAirflow(work / "airflow", dags, env, log_dir=WORK_DIR / "gate-components")
        api = Api(airflow.api_url)
        try:
            airflow.migrate()
            airflow.start()
            log(f"gate: Airflow starting on {airflow.api_url}")
            result["startup_s"] = airflow.wait_until_up(api, (DAG_ID,), timeout=300)
            airflow.set_paused(api, DAG_ID, False)
            run_id = f"gate-{uuid.uuid4().hex[:8]}"
            response = api.client.post(
                f"/api/v2/dags/{DAG_ID}/dagRuns", json={"dag_run_id": run_id, "logical_date": None}
            )
            response.raise_for_status()
            states = wait_states(airflow, api, run_id, {"deferred"}, len(gates), args.deadline)
            log(f"gate: all {len(gates)} sensors deferred; rolling out")
            sim.clear_requests()
            rolled = time.time()
            roll_out(sim, gates, args.interval, args.min_connections, args.seed)
            states = wait_states(airflow, api, run_id, None, len(gates), args.deadline)
            result["rollout_s"] = time.time() - rolled
            polls = [(r.time, r.path) for r in sim.requests_matching("/connections$")]
            reads = [(r.time, r.path) for r in sim.requests_matching("/cloudflared/")]
            for gate in gates:
                row = states[gate["task_id"]]
                gate["state"] = row["state"]
                gate["end"] = parse_time(row["end_date"]) if row.get("end_date") else None
                xcom = api.get(
                    f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{gate['task_id']}/xcomEntries/return_value",
                    deserialize=True,
                    tries=3,
                ).get("value")
                gate["opened_on"] = (xcom or {}).get("id") if isinstance(xcom, dict) else None
        finally:
            api.close()
            survivors = airflow.stop()
            shutil.rmtree(work, ignore_errors=True)
    result["survivors"] = survivors
    for gate in gates:  # the tunnel's first poll after the N-th connection: the trigger decides on it
        after = [at for at, path in polls if gate["tunnel_id"] in path and at >= gate["nth_live_at"]]
        gate["first_poll_at"] = min(after) if after else None
    result["requests"] = {"connections": polls, "ready": reads, "seconds": result["rollout_s"], "rolled": rolled}
    result["gates"] = gates
    return result


def wait_states(
    airflow: Any, api: Any, run_id: str, wanted: set[str] | None, count: int, deadline: float
) -> dict[str, dict[str, Any]]:
    """Wait until every task is in ``wanted`` (``None``: finished); return the task instances by task id."""
    until = time.monotonic() + deadline
    rows: dict[str, dict[str, Any]] = {}
    while time.monotonic() < until:
        airflow.check()
        try:
            listed = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]
        except (*api.errors, ValueError):
            listed = []
        rows = {row["task_id"]: row for row in listed}
        done = [r for r in rows.values() if (r["state"] in wanted if wanted else r["state"] not in UNFINISHED)]
        if len(done) == count:
            return rows
        time.sleep(0.5)
    seen = sorted({str(r["state"]) for r in rows.values()})
    raise RuntimeError(f"not every task reached {wanted or 'a final state'} in {deadline:.0f} s (states: {seen})")


def summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per ``stable_for``: how many gates opened, on which connector, and the latency quantiles."""
    rows = []
    for stable in sorted({g["stable_for"] for g in result["gates"]}):
        group = [g for g in result["gates"] if g["stable_for"] == stable]
        ok = [g for g in group if g["state"] == "success" and g["end"] is not None]
        latency = [g["end"] - g["nth_live_at"] for g in ok]
        to_poll = [g["first_poll_at"] - g["nth_live_at"] for g in ok if g["first_poll_at"] is not None]
        airflow = [g["end"] - g["first_poll_at"] - stable for g in ok if g["first_poll_at"] is not None]
        rows.append(
            {
                "stable_for": stable,
                "gates": len(group),
                "succeeded": len(ok),
                "on_new": sum(1 for g in ok if g["opened_on"] == g["new"]),
                "early": sum(1 for v in latency if v < stable),
                "p50": percentile(latency, 0.5) if latency else None,
                "p95": percentile(latency, 0.95) if latency else None,
                "max": max(latency) if latency else None,
                "poll_p50": percentile(to_poll, 0.5) if to_poll else None,
                "airflow_p50": percentile(airflow, 0.5) if airflow else None,
            }
        )
    return rows


def poll_rates(result: dict[str, Any]) -> tuple[float, float]:
    """Return polls per tunnel per interval, and ``/ready`` reads per URL per interval, while gates waited."""
    interval = result["settings"]["interval"]
    rolled = result["requests"]["rolled"]
    polls, spans = 0, 0.0
    for tunnel in {g["tunnel_id"] for g in result["gates"]}:
        gates = [g for g in result["gates"] if g["tunnel_id"] == tunnel and g["first_poll_at"] is not None]
        if not gates:
            continue
        last = max(g["first_poll_at"] + g["stable_for"] for g in gates)  # about when its last trigger fired
        spans += last - rolled
        polls += sum(1 for at, path in result["requests"]["connections"] if tunnel in path and rolled <= at <= last)
    per_url = []
    for gate in result["gates"]:
        if gate["first_poll_at"] is None:
            continue
        fired = gate["first_poll_at"] + gate["stable_for"]
        n = sum(1 for at, path in result["requests"]["ready"] if gate["new"] in path and rolled <= at <= fired)
        per_url.append(n / max(fired - rolled, 1e-9) * interval)
    return polls / max(spans, 1e-9) * interval, max(per_url, default=0.0)


def section(result: dict[str, Any]) -> list[str]:
    """Write the page's section: what was run, the command, the table and what it shows."""
    s = result["settings"]
    rows = summary(result)
    command = (
        f"`.venv/bin/python bench/gate.py --gates {s['gates']} --interval {s['interval']:g} "
        f"--stable-for {s['stable_for']:g} --min-connections {s['min_connections']} --layout {s['layout']}`"
    )
    m = result["machine"]
    load = ", ".join(f"{x:g}" for x in m.get("load_at_start", []))
    airflow_version = m.get("versions", {}).get("apache-airflow", "?")
    where = (
        "the replicas of one tunnel per `stable_for` setting (one old connector lingering live, one new "
        "connector per gate)"
        if s["layout"] == "replicas"
        else "a tunnel of their own each (its old connector lingering live)"
    )
    lines = [
        "## Deploy gate: opening latency through the real triggerer",
        "",
        f"{2 * s['gates']} deferrable deploy gates (`CloudflareTunnelConnectorSensor` with `ready_url`, "
        f"`min_connections={s['min_connections']}`, `poke_interval={s['interval']:g}`) wait on {where}, in one "
        "DAG run of a real Airflow on this machine (api-server, scheduler with the LocalExecutor, dag-processor, "
        f"triggerer; SQLite). Half have `stable_for=0`, half `stable_for={s['stable_for']:g}`, side by side. "
        "Once all are deferred, the new connectors come up one at a time, in a shuffled order, at random phases "
        "of the poll interval. Latency runs from the new connector's N-th live connection to the task's "
        "`end_date` (the sensor's success): the wait for the tunnel's next poll (\"to next poll\"), "
        '`stable_for`, then Airflow\'s part ("Airflow": the trigger event, the scheduler queueing the task '
        "again, a task runner starting `execute_complete`).",
        "",
        f"Reproduce: {command} (writes this section only; raw figures in `.bench/`). Measured "
        f"{time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(result['started_at']))} on "
        f"{m.get('usable_cores')} usable cores shared with other work (load average at start {load}), "
        f"Airflow {airflow_version}.",
        "",
        "| stable_for (s) | gates | opened | on the new connector | before stable_for | latency p50 (s) "
        "| p95 (s) | max (s) | to next poll p50 (s) | Airflow p50 (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["p50"] is None:
            lines.append(f"| {r['stable_for']:g} | {r['gates']} | {r['succeeded']} | - | - | - | - | - | - | - |")
            continue
        lines.append(
            f"| {r['stable_for']:g} | {r['gates']} | {r['succeeded']} | {r['on_new']} | {r['early']} | "
            f"{r['p50']:.1f} | {r['p95']:.1f} | {r['max']:.1f} | {r['poll_p50']:.1f} | {r['airflow_p50']:.1f} |"
        )
    per_tunnel, per_url = poll_rates(result)
    lines += [
        "",
        f"While gates waited the triggerer polled each tunnel {per_tunnel:.2f} times per interval (one shared "
        f"poll for all the gates of a tunnel) and read each `/ready` at most {per_url:.2f} times per interval.",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gates", type=int, default=20, help="gates per stable_for setting")
    parser.add_argument("--interval", type=float, default=1.0, help="the sensors' poke_interval, seconds")
    parser.add_argument("--stable-for", type=float, default=5.0, help="stable_for of the second half, seconds")
    parser.add_argument("--min-connections", type=int, default=2)
    parser.add_argument("--layout", choices=("replicas", "tunnels"), default="replicas")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds to wait for each phase")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not touch the docs page")
    parser.add_argument("--output", type=Path, default=WORK_DIR / "gate.json", help="where the raw figures go")
    parser.add_argument("--report-only", type=Path, metavar="JSON", help="rewrite the section from raw figures")
    args = parser.parse_args()
    WORK_DIR.mkdir(exist_ok=True)
    if args.report_only:
        result = json.loads(args.report_only.read_text())
    else:
        result = measure(args)
        args.output.write_text(json.dumps(result, indent=2, default=str))
    lines = section(result)
    print("\n".join(lines))
    if not args.no_write:
        import page

        doc = page.write_block(NAME, lines)
        log(f"gate: wrote its section of {doc.relative_to(ROOT)}")
    return 0 if not result.get("survivors") else 1


if __name__ == "__main__":
    sys.exit(main())
