"""``make demo``: the provider's main job, end to end, against the built-in Cloudflare simulator.

1. starts the simulator (``python -m airflow_provider_cftunnel.testing``) with a tunnel whose connector comes
   up about 10 seconds after the deploy gate starts waiting;
2. runs ``example_cftunnel_deploy_gate`` with ``airflow dags test`` (its own AIRFLOW_HOME under
   ``.airflow/demo``, SQLite, the connection from the environment): the deferrable sensor waits, then the
   gate opens and the deploy runs;
3. runs ``example_cftunnel_health_check`` and prints its result.

Every process it starts is stopped at the end, also on Ctrl-C or failure. Full logs: ``.airflow/demo/logs``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / ".airflow" / "demo"
LOGS = HOME / "logs"
GATE_WAIT = 10.0  # seconds the gate should visibly wait
# lines of `airflow dags test` output worth showing (the rest goes to the log file)
SHOW = (
    "not ready",
    "is ready with",
    "Pausing task as DEFERRED",
    "running trigger in line",
    "Trigger completed",
    "Gate open",
    "Deploying",
    "connections live",
    "Tunnel health",
    "below the threshold",
    "DagRun Finished",
    "ERROR",
    "Error",
)

sys.path.insert(0, str(ROOT))
from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI  # noqa: E402
from airflow_provider_cftunnel.testing.scenario import default_scenario  # noqa: E402


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def stop_group(process: subprocess.Popen[Any] | None, name: str) -> None:
    """Stop a process and its children (its own process group): SIGTERM, then SIGKILL after 10 s."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    except ProcessLookupError:
        pass
    print(f"    stopped {name} (pid {process.pid})", flush=True)


def run_dag(cli: AirflowCLI, dag_id: str, log_name: str) -> tuple[int, str]:
    """Run ``airflow dags test DAG_ID`` in its own process group, echoing the interesting lines."""
    log_path = LOGS / log_name
    process = subprocess.Popen(
        [cli.airflow, "dags", "test", dag_id],
        env=cli.env(),
        cwd=cli.home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        with log_path.open("w") as log:
            for line in process.stdout:
                log.write(line)
                lines.append(line)
                if any(marker in line for marker in SHOW):
                    print("    " + _short(line), flush=True)
        return process.wait(), "".join(lines)
    finally:
        stop_group(process, f"airflow dags test {dag_id}")


def _short(line: str) -> str:
    """Drop structlog's timestamp and logger suffix to keep the demo readable."""
    text = line.strip()
    if text[:4].isdigit() and "] " in text:
        text = text.split("] ", 1)[1]
    text = re.split(r"\s{2,}\[|\s\[airflow", text, maxsplit=1)[0]  # structlog's logger and key-value tail
    return text[:220]


def main() -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    simulator: subprocess.Popen[Any] | None = None
    try:
        cli = AirflowCLI(HOME, ROOT / "example_dags")
        say(f"Preparing Airflow in {HOME.relative_to(ROOT)} (SQLite)")
        cli.migrate()

        # Airflow takes several seconds to start a task: the connector comes up GATE_WAIT seconds after that.
        scenario = default_scenario(up_after=GATE_WAIT + 8.0, connections=4)
        scenario_path = HOME / "scenario.json"
        scenario_path.write_text(json.dumps(scenario, indent=2))
        ready_file = HOME / "simulator.json"
        ready_file.unlink(missing_ok=True)
        say("Starting the Cloudflare simulator (a tunnel whose connector comes up in about 20 s)")
        simulator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow_provider_cftunnel.testing",
                "--port",
                "0",
                "--scenario",
                str(scenario_path),
                "--ready-file",
                str(ready_file),
            ],
            stdout=(LOGS / "simulator.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not ready_file.exists():
            if simulator.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not start; see {LOGS / 'simulator.log'}")
            time.sleep(0.1)
        sim = json.loads(ready_file.read_text())
        print(f"    listening on {sim['base_url']} (pid {sim['pid']})", flush=True)
        connection = {
            "conn_type": "cloudflare",
            "host": sim["base_url"],
            "password": sim["api_token"],
            "extra": {"account_id": sim["account_id"]},
        }
        cli.extra_env.update(
            {
                "AIRFLOW_CONN_CLOUDFLARE_DEFAULT": json.dumps(connection),
                "CFTUNNEL_TUNNEL_ID": sim["tunnel_id"],
                "CFTUNNEL_CONNECTOR_ID": sim["connector_id"],
                "CFTUNNEL_POKE_INTERVAL": "3",
            }
        )

        say("airflow dags test example_cftunnel_deploy_gate  (the sensor defers until the tunnel is up)")
        gate_code, gate_output = run_dag(cli, "example_cftunnel_deploy_gate", "deploy_gate.log")
        gate_ok = gate_code == 0 and "state=success" in gate_output
        print(f"    deploy gate: {'OPENED, deploy done' if gate_ok else 'FAILED'}", flush=True)

        say("airflow dags test example_cftunnel_health_check")
        health_code, health_output = run_dag(cli, "example_cftunnel_health_check", "health_check.log")
        health_ok = health_code == 0 and "state=success" in health_output
        summary = next((line for line in health_output.splitlines() if "Tunnel health:" in line), "")
        print(f"    health check: {'HEALTHY' if health_ok else 'FAILED'} {summary.split('Tunnel health:')[-1].strip()}")

        say(f"Done. Full logs in {LOGS.relative_to(ROOT)}/")
        return 0 if gate_ok and health_ok else 1
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
        return 130
    finally:
        stop_group(simulator, "the Cloudflare simulator")


if __name__ == "__main__":
    sys.exit(main())
