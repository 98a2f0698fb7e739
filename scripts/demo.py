"""``make demo``: the provider's main jobs, end to end, against the built-in Cloudflare simulator.

1. starts the simulator (``python -m airflow_provider_cftunnel.testing``) with a tunnel whose connector comes
   up about 10 seconds after the deploy gate starts waiting, and a fleet ``prod-web-1..4`` with one tunnel down;
2. runs ``example_cftunnel_deploy_gate`` with ``airflow dags test`` (its own AIRFLOW_HOME under
   ``.airflow/demo``, SQLite, the connection from the environment): the deferrable sensor waits, then the
   gate opens and the deploy runs;
3. runs ``example_cftunnel_health_check`` on the fleet (``CFTUNNEL_NAME_PREFIX=prod-web-``): the check catches
   the tunnel that is down and the ``alert`` task names it;
4. starts Airflow's components for real (api-server, scheduler, dag-processor, triggerer, on loopback, in
   ``.airflow/demo/watcher``), unpauses ``example_cftunnel_on_health_change`` (its asset watcher polls the fleet
   every 2 s in the triggerer), flips a healthy tunnel down and back through the simulator's control route, and
   shows the two runs the changes caused and the lines they printed.

Every process it starts is stopped at the end, also on Ctrl-C or failure. Full logs: ``.airflow/demo/logs``.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / ".airflow" / "demo"
LOGS = HOME / "logs"
GATE_WAIT = 10.0  # seconds the gate should visibly wait
FLEET_PREFIX = "prod-web-"
FLEET_SIZE = 4
WATCH_DAG = "example_cftunnel_on_health_change"
WATCH_TASK = "react_to_health_change"
WATCH_POLL = 2  # seconds between the watcher's polls
# lines of `airflow dags test` output worth showing (the rest goes to the log file)
SHOW_GATE = (
    "not ready",
    "is ready with",
    "Pausing task as DEFERRED",
    "running trigger in line",
    "Trigger completed",
    "Gate open",
    "Deploying",
    "ERROR",
    "Error",
)
SHOW_HEALTH = ("Cloudflare Tunnel health:", "ALERT:", "  - ")
#: lines never shown (a task's return value repeats what it printed)
HIDE = ("Returned value was",)
# lines of the triggerer's log worth showing
SHOW_TRIGGERER = ("Watching the tunnels", "Baseline of ", " went ")

sys.path.insert(0, str(ROOT))
from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI  # noqa: E402
from airflow_provider_cftunnel.testing.process import SimulatorProcess  # noqa: E402
from airflow_provider_cftunnel.testing.scenario import default_scenario, fleet_tunnel_id  # noqa: E402
from tests.support.processes import stop_popen_group  # noqa: E402


def say(text: str) -> None:
    """Print a step of the demo as a heading."""
    print(f"\n==> {text}", flush=True)


@contextlib.contextmanager
def no_interrupts() -> Iterator[None]:
    """Ignore Ctrl-C while cleaning up, so a second one cannot leave processes behind."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_group(process: subprocess.Popen[Any] | None, name: str) -> None:
    """Stop a process and its children (its own process group): SIGTERM, then SIGKILL after 10 s."""
    if process is not None and stop_popen_group(process, grace=10.0) != "exited":
        print(f"    stopped {name} (pid {process.pid})", flush=True)


def run_dag(cli: AirflowCLI, dag_id: str, log_name: str, show: tuple[str, ...]) -> tuple[int, str]:
    """Run ``airflow dags test DAG_ID`` in its own process group, echoing the lines that hold a ``show`` marker."""
    log_path = LOGS / log_name
    process = cli.popen("dags", "test", dag_id, new_session=True)
    lines: list[str] = []
    shown: set[str] = set()
    try:
        assert process.stdout is not None
        with log_path.open("w") as log:
            for line in process.stdout:
                log.write(line)
                lines.append(line)
                if any(marker in line for marker in show) and not any(marker in line for marker in HIDE):
                    text = _short(line)
                    if text not in shown:  # a multi-line log record repeats its lines
                        shown.add(text)
                        print("    " + text, flush=True)
        return process.wait(), "".join(lines)
    finally:
        stop_group(process, f"airflow dags test {dag_id}")


def _short(line: str) -> str:
    """Drop structlog's timestamp and logger suffix to keep the demo readable."""
    text = line.rstrip()
    if text[:4].isdigit() and "] " in text:
        text = text.split("] ", 1)[1]
    text = re.split(r"\s{2,}\[|\s\[airflow", text, maxsplit=1)[0]  # structlog's logger and key-value tail
    return text.rstrip()[:220]


class LogFollower:
    """Print the new lines of a log file that hold one of ``markers`` (the triggerer's, here)."""

    def __init__(self, path: Path, markers: tuple[str, ...]) -> None:
        self.path, self.markers, self.offset = path, markers, 0
        self.seen: list[str] = []

    def poll(self) -> None:
        """Print the marked lines added to the log since the last poll."""
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1  # whole lines only
        self.offset += end
        for line in data[:end].decode(errors="replace").splitlines():
            if any(marker in line for marker in self.markers):
                text = _short(line)
                self.seen.append(text)
                print(f"    [triggerer] {text}", flush=True)


def wait_for(what: str, timeout: float, done: Callable[[], Any], tick: Callable[[], None]) -> Any:
    """Call ``tick`` and ``done`` every 0.5 s until ``done`` returns something true; raise on the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        tick()
        if result := done():
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def printed_lines(cli: AirflowCLI, run_id: str) -> list[str]:
    """Return what the reacting task printed in one run (its log holds one JSON object per line)."""
    lines = []
    for path in cli.task_logs(WATCH_DAG, run_id, WATCH_TASK):
        for raw in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            # the example logs to the task logger ("airflow.task"); "task.stdout" is what print would give
            if isinstance(entry, dict) and entry.get("logger") in ("airflow.task", "task.stdout"):
                lines.append(str(entry.get("event")))
    return lines


def watch_health_changes(sim: SimulatorProcess) -> bool:
    """Part 4: the asset watcher in a real triggerer, a tunnel going down and back; True if both runs happened."""
    from tests.support.airflow import LocalAirflow, LocalAirflowError
    from tests.support.processes import Api

    home = HOME / "watcher"
    shutil.rmtree(home, ignore_errors=True)  # a fresh database: no runs or stored health from an earlier demo
    dags = home / "dags"
    dags.mkdir(parents=True)
    shutil.copy(ROOT / "example_dags" / f"{WATCH_DAG}.py", dags)
    airflow = LocalAirflow(
        home / "airflow",
        dags,
        {
            **sim.airflow_env(),
            "CFTUNNEL_NAME_PREFIX": FLEET_PREFIX,
            "CFTUNNEL_HEALTH_POLL_INTERVAL": str(WATCH_POLL),
            # re-parse soon after the unpause: the watcher is registered when the unpaused DAG is parsed
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
        },
        log_dir=LOGS / "components",
    )
    shutil.rmtree(airflow.log_dir, ignore_errors=True)
    api = Api(airflow.api_url)
    triggerer = LogFollower(airflow.log_dir / "triggerer.log", SHOW_TRIGGERER)

    def tick() -> None:
        airflow.check()
        triggerer.poll()

    def runs() -> list[dict[str, Any]]:
        try:
            return api.get(f"/api/v2/dags/{WATCH_DAG}/dagRuns", order_by="id", limit=20)["dag_runs"]
        except api.errors:
            return []

    def finished(count: int) -> list[dict[str, Any]] | None:
        done = [run for run in runs() if run["state"] in ("success", "failed")]
        return done if len(done) >= count else None

    def show(run: dict[str, Any]) -> None:
        print(f"    run {run['dag_run_id']}: {run['state']}", flush=True)
        for line in printed_lines(airflow.cli, run["dag_run_id"]):
            print(f"      printed: {line}", flush=True)

    try:
        started = time.monotonic()
        airflow.migrate()
        airflow.start()
        print(f"    api-server on {airflow.api_url}; logs in {airflow.log_dir.relative_to(ROOT)}/", flush=True)
        airflow.wait_until_up(api, (WATCH_DAG,), timeout=240)
        print(f"    all four components healthy after {time.monotonic() - started:.0f} s", flush=True)
        airflow.set_paused(api, WATCH_DAG, False)
        print(f"    unpaused {WATCH_DAG}: its asset watcher starts in the triggerer", flush=True)
        wait_for("the watcher's baseline", 120, lambda: any("Baseline of " in s for s in triggerer.seen), tick)

        statuses = sim.control("GET", "/tunnel-statuses")
        fleet = [fleet_tunnel_id(str(sim.account_id), FLEET_PREFIX, i) for i in range(FLEET_SIZE)]
        victim = next(tunnel for tunnel in fleet if statuses.get(tunnel) == "healthy")
        name = f"{FLEET_PREFIX}{fleet.index(victim) + 1}"
        say(f"Simulator: {name} goes down (POST /__simulator__/tunnel-status)")
        sim.control("POST", "/tunnel-status", {"tunnel_id": victim, "status": "down"})
        first = wait_for("the first run", 120, lambda: finished(1), tick)
        show(first[0])

        say(f"Simulator: {name} recovers")
        sim.control("POST", "/tunnel-status", {"tunnel_id": victim, "status": "healthy"})
        both = wait_for("the second run", 120, lambda: finished(2), tick)
        show(both[1])
        quiet_until = time.monotonic() + 3 * WATCH_POLL + 2
        wait_for("quiet polls", 30, lambda: time.monotonic() > quiet_until, tick)
        total = runs()
        print(f"    {len(total)} run(s) of {WATCH_DAG} in all, for 2 changes", flush=True)
        return len(total) == 2 and all(run["state"] == "success" for run in total)
    except (LocalAirflowError, RuntimeError) as error:
        print(
            f"    FAILED: {str(error)[:2000]}\n    (component logs in {airflow.log_dir.relative_to(ROOT)}/)", flush=True
        )
        return False
    finally:
        api.close()
        say("Stopping the Airflow components")
        with no_interrupts():
            survivors = airflow.stop(grace=10.0, term_grace=5.0)
        for group in airflow.started:
            print(f"    stopped {group.name} (pid {group.pid}, {group.stop_stage})", flush=True)
        if survivors:
            print(f"    still running: {survivors}", flush=True)


def main() -> int:
    """Run the demo; return the process exit status."""
    LOGS.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sim = SimulatorProcess(HOME / "scenario.json", log_path=LOGS / "simulator.log")
    started = time.monotonic()
    try:
        cli = AirflowCLI(HOME, ROOT / "example_dags")
        say(f"Preparing Airflow in {HOME.relative_to(ROOT)} (SQLite)")
        cli.migrate()

        # Airflow takes several seconds to start a task: the connector comes up GATE_WAIT seconds after that.
        scenario = default_scenario(up_after=GATE_WAIT + 8.0, connections=4)
        scenario["fleets"] = [{"prefix": FLEET_PREFIX, "count": FLEET_SIZE, "statuses": {"down": 1}}]
        (HOME / "scenario.json").write_text(json.dumps(scenario, indent=2))
        say(
            "Starting the Cloudflare simulator: a tunnel whose connector comes up in about 20 s, and a fleet "
            f"{FLEET_PREFIX}1..{FLEET_SIZE} with one tunnel down"
        )
        sim.start()
        print(f"    listening on {sim.base_url} (pid {sim.pid})", flush=True)
        cli.extra_env.update(sim.airflow_env())

        say("airflow dags test example_cftunnel_deploy_gate  (the sensor defers until the tunnel is up)")
        cli.extra_env.update(
            {
                "CFTUNNEL_TUNNEL_ID": str(sim.tunnel_id),
                "CFTUNNEL_POKE_INTERVAL": "3",
            }
        )
        gate_code, gate_output = run_dag(cli, "example_cftunnel_deploy_gate", "deploy_gate.log", SHOW_GATE)
        gate_ok = gate_code == 0 and "state=success" in gate_output
        print(f"    deploy gate: {'OPENED, deploy done' if gate_ok else 'FAILED'}", flush=True)

        say(f"airflow dags test example_cftunnel_health_check  (CFTUNNEL_NAME_PREFIX={FLEET_PREFIX})")
        for name in ("CFTUNNEL_TUNNEL_ID", "CFTUNNEL_POKE_INTERVAL"):
            cli.extra_env.pop(name)
        cli.extra_env["CFTUNNEL_NAME_PREFIX"] = FLEET_PREFIX
        _, health_output = run_dag(cli, "example_cftunnel_health_check", "health_check.log", SHOW_HEALTH)
        alert = re.search(r"ALERT: (\d+) of (\d+) Cloudflare Tunnel", health_output)
        health_ok = alert is not None and alert.groups() == ("1", str(FLEET_SIZE))
        verdict = "CAUGHT the tunnel that is down; the alert task named it (the run ends failed)"
        verdict = verdict if health_ok else "FAILED"
        print(f"    health check: {verdict}", flush=True)

        say(f"Real components, {WATCH_DAG}: an asset watcher in the triggerer")
        watch_ok = watch_health_changes(sim)
        print(f"    health watcher: {'2 changes, 2 runs' if watch_ok else 'FAILED'}", flush=True)

        say(f"Done in {time.monotonic() - started:.0f} s. Full logs in {LOGS.relative_to(ROOT)}/")
        return 0 if gate_ok and health_ok and watch_ok else 1
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
        return 130
    finally:
        with no_interrupts():
            was_running = sim.running
            sim.stop()
            if was_running:
                print(f"    stopped the Cloudflare simulator (pid {sim.pid})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
