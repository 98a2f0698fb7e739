"""``make ui``: Airflow's UI on this machine with the example DAGs, against the built-in Cloudflare simulator.

1. starts the simulator (``python -m airflow_provider_cftunnel.testing``, on 127.0.0.1) with a tunnel for the
   deploy gate whose connector comes up a few minutes after the start (or at once, with the printed command),
   and a fleet ``prod-web-1..4`` with one tunnel down, for the health check and the watcher;
2. starts Airflow's components one by one on 127.0.0.1 (api-server, scheduler, dag-processor, triggerer, in
   ``.airflow/ui``, SQLite; ``airflow standalone`` would bind the log servers on every interface), with the
   example DAGs and the connection ``cloudflare_default`` pointing at the simulator;
3. prints the URL, the login (simple auth manager: user ``admin``, a password made for this start) and what to
   try, then waits.

Ctrl-C (or SIGTERM) stops everything it started, each process group by pid, and says so. A fresh Airflow home
each start: ``.airflow/ui`` is emptied first. Options: ``--port`` (default 8080, or a free port when taken),
``--home`` (another directory than ``.airflow/ui``; the test uses one of its own).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Everything this script writes (emptied at each start): the Airflow home, the logs.
HOME = ROOT / ".airflow" / "ui"
EXAMPLE_DAGS = ROOT / "example_dags"
DAG_IDS = ("example_cftunnel_deploy_gate", "example_cftunnel_health_check", "example_cftunnel_on_health_change")
USER = "admin"
FLEET_PREFIX = "prod-web-"
FLEET_SIZE = 4
#: Seconds after the start when the deploy gate's connector comes up by itself (time to trigger and watch it wait).
GATE_UP_AFTER = 300.0
#: Seconds between the health watcher's polls.
WATCH_POLL = 10

sys.path.insert(0, str(ROOT))
from airflow_provider_cftunnel.testing.process import SimulatorProcess  # noqa: E402
from airflow_provider_cftunnel.testing.scenario import default_scenario, fleet_tunnel_id  # noqa: E402


class Stop(Exception):
    """SIGTERM: stop like Ctrl-C."""


@contextlib.contextmanager
def no_interrupts() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while stopping, so a second one cannot leave processes behind."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def pick_port(wanted: int) -> int:
    """Return ``wanted`` if it is free on 127.0.0.1, else (or for 0) a free port."""
    from tests.support.processes import free_port

    if wanted == 0:
        return free_port()
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", wanted))
        except OSError:
            return free_port()
    return wanted


def scenario() -> dict[str, object]:
    """Build the world: the deploy gate's tunnel (up after ``GATE_UP_AFTER`` s) and the fleet, one tunnel down."""
    world = default_scenario(up_after=GATE_UP_AFTER, connections=4)
    world["fleets"] = [{"prefix": FLEET_PREFIX, "count": FLEET_SIZE, "statuses": {"down": 1}}]
    return world


def login_token(api_url: str, password: str) -> str:
    """Log in through the simple auth manager's endpoint; return a JWT for the REST API."""
    import httpx

    response = httpx.post(
        f"{api_url}/auth/token", json={"username": USER, "password": password}, timeout=30.0, trust_env=False
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def wait_for_api(api_url: str, airflow: object, timeout: float = 240.0) -> None:
    """Wait until the api-server answers its public health endpoint (raise if a component exited)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        airflow.check()  # type: ignore[attr-defined]
        try:
            if httpx.get(f"{api_url}/api/v2/monitor/health", timeout=5.0, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"the api-server did not answer within {timeout:.0f} s")


def print_guide(api_url: str, password: str, sim: SimulatorProcess, root: Path) -> None:
    """Print the URL, the login and what to try."""
    statuses = sim.control("GET", "/tunnel-statuses")
    fleet = [fleet_tunnel_id(str(sim.account_id), FLEET_PREFIX, i) for i in range(FLEET_SIZE)]
    down = next((f"{FLEET_PREFIX}{i + 1}" for i, t in enumerate(fleet) if statuses.get(t) == "down"), "one")
    healthy = next((t for t in fleet if statuses.get(t) == "healthy"), fleet[0])
    control = sim.control_url
    print(
        f"""
Airflow UI:   {api_url}
Login:        {USER} / {password}
Simulator:    {sim.base_url}  (connection cloudflare_default; Admin > Connections)

Try:
  * example_cftunnel_deploy_gate: Trigger. The sensor defers (the triggerer waits) until the tunnel has a live
    connector: it comes up {GATE_UP_AFTER / 60:.0f} min after this start; or start a new one now (which also opens
    the gate with the rollout param on):
      curl -s -X POST {control}/connectors -d '{{"live": 4, "new": true}}'
  * example_cftunnel_health_check: unpause or Trigger. {down} of {FLEET_PREFIX}1..{FLEET_SIZE} is down: check_tunnels
    fails with a table of the unhealthy tunnel, alert logs it, all_healthy is upstream_failed.
  * example_cftunnel_on_health_change: unpause (its watcher polls the fleet every {WATCH_POLL} s), then take a
    healthy tunnel down and back; each change is one run:
      curl -s -X POST {control}/tunnel-status -d '{{"tunnel_id": "{healthy}", "status": "down"}}'
      curl -s -X POST {control}/tunnel-status -d '{{"tunnel_id": "{healthy}", "status": "healthy"}}'
  * test the connection (3.3's UI has no working Test button), from a shell, or through the REST API (docs/ui.md):
      AIRFLOW_HOME={root / "home"} AIRFLOW__CORE__TEST_CONNECTION=Enabled \\
        {Path(sys.executable).parent / "airflow"} connections test cloudflare_default

Logs: {root / "logs"}/   Ctrl-C stops everything.""",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="the UI's port on 127.0.0.1 (default 8080, if free)")
    parser.add_argument("--home", type=Path, default=HOME, help="its directory, emptied first (default .airflow/ui)")
    args = parser.parse_args(argv)
    root: Path = args.home.resolve()

    def on_sigterm(*_: object) -> None:
        raise Stop

    signal.signal(signal.SIGTERM, on_sigterm)
    # Ctrl-C stops it even when started where SIGINT is ignored (a background job of a non-interactive shell)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from tests.support.airflow import LocalAirflow, LocalAirflowError, api_server
    from tests.support.processes import Api

    shutil.rmtree(root, ignore_errors=True)
    logs = root / "logs"
    logs.mkdir(parents=True)
    sim = SimulatorProcess(scenario(), log_path=logs / "simulator.log")
    airflow: LocalAirflow | None = None
    code = 0
    started = time.monotonic()
    try:
        sim.start()
        print(f"started the Cloudflare simulator on {sim.base_url} (pid {sim.pid})", flush=True)
        port = pick_port(args.port)
        api_url = f"http://127.0.0.1:{port}"
        password = secrets.token_urlsafe(12)
        home = root / "home"
        home.mkdir()
        passwords = home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({USER: password}) + "\n", encoding="utf-8")
        passwords.chmod(0o600)
        airflow = LocalAirflow(
            home,
            EXAMPLE_DAGS,
            {
                "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__API__BASE_URL": api_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                # what the example DAGs read: the gate's tunnel, the fleet for the check and the watcher
                "CFTUNNEL_ACCOUNT_ID": str(sim.account_id),
                "CFTUNNEL_TUNNEL_ID": str(sim.tunnel_id),
                "CFTUNNEL_NAME_PREFIX": FLEET_PREFIX,
                "CFTUNNEL_HEALTH_POLL_INTERVAL": str(WATCH_POLL),
                "CFTUNNEL_POKE_INTERVAL": "10",
            },
            log_dir=logs,
        )
        # LocalAirflow picks a free port: put the api-server on the one chosen here (its env says so above)
        airflow.api_port = port
        airflow.components["api-server"].args = api_server(port)
        print(f"preparing Airflow in {home} (SQLite)", flush=True)
        airflow.migrate()
        added = airflow.cli.run("connections", "add", "cloudflare_default", "--conn-json", sim.connection_json())
        if added.returncode != 0:
            raise RuntimeError(f"airflow connections add failed:\n{added.stdout[-2000:]}")
        airflow.start()
        for group in airflow.started:
            print(f"started {group.name} (pid {group.pid})", flush=True)
        wait_for_api(api_url, airflow)
        api = Api(api_url)
        try:
            api.client.headers["Authorization"] = f"Bearer {login_token(api_url, password)}"
            airflow.wait_until_up(api, DAG_IDS, timeout=300)
        finally:
            api.close()
        print(f"Airflow is up, the example DAGs parsed ({time.monotonic() - started:.0f} s)", flush=True)
        print_guide(api_url, password, sim, root)
        while True:
            airflow.check()
            time.sleep(1.0)
    except (KeyboardInterrupt, Stop):
        print("\nstopping", flush=True)
    except (LocalAirflowError, RuntimeError, OSError) as error:
        print(f"FAILED: {str(error)[-3000:]}\n(logs in {logs}/)", flush=True)
        code = 1
    finally:
        with no_interrupts():
            if airflow is not None:
                survivors = airflow.stop(grace=10.0, term_grace=5.0)
                for group in airflow.started:
                    print(f"stopped {group.name} (pid {group.pid}, {group.stop_stage})", flush=True)
                if survivors:
                    print(f"still running: {survivors}", flush=True)
                    code = 1
            if sim.running:
                sim.stop()
                print(f"stopped the Cloudflare simulator (pid {sim.pid})", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
