"""The example deploy gate's two modes, run for real with ``airflow dags test`` against the simulator.

By default it opens at once on a tunnel that is up (issue 19: it used to wait for a connector started during the
run, and timed out against a running tunnel). With its ``rollout`` param it waits for the new ``cloudflared``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI
from tests.support.dag_runs import task_states, xcoms

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
DAG_ID = "example_cftunnel_deploy_gate"
EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


def cli_for(airflow_home: Path, sim) -> AirflowCLI:
    """``airflow`` on the example DAGs, with the simulator's connection and the tunnel's id."""
    env = {**sim.airflow_env(), "CFTUNNEL_TUNNEL_ID": sim.tunnel_id, "CFTUNNEL_POKE_INTERVAL": "1"}
    return AirflowCLI(airflow_home, EXAMPLE_DAGS, env)


def test_opens_at_once_on_a_tunnel_that_is_up(airflow_home, cloudflare_simulator_factory):
    sim = cloudflare_simulator_factory({"up_after": 0, "connections": 4})  # up before the run starts
    result = cli_for(airflow_home, sim).dags_test(DAG_ID)
    assert result.returncode == 0, result.stdout[-3000:]
    assert set(task_states(airflow_home, DAG_ID).values()) == {"success"}
    assert "running trigger in line" not in result.stdout  # its first check opened it: it never deferred
    assert len(sim.requests_matching("/connections$")) == 1
    assert xcoms(airflow_home, DAG_ID)[("wait_for_tunnel", "return_value")]["id"] == sim.connector_id


def test_rollout_with_ready_url_waits_for_the_new_connector(airflow_home, cloudflare_simulator_factory):
    sim = cloudflare_simulator_factory({"up_after": 0, "connections": 4})
    old = sim.connector_id
    new = "1e1e1e1e-0000-4000-8000-000000000002"
    came_up: list[float] = []

    def roll_out() -> None:  # the new cloudflared comes up once the gate has polled, while the old one stays live
        deadline = time.monotonic() + 120
        while not sim.requests_matching("/cloudflared/") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        sim.set_connector(connector_id=new, live=4)
        came_up.append(time.time())

    sim.set_connector(connector_id=new, live=0, pending=4)  # registered, nothing live: /ready answers 503
    threading.Thread(target=roll_out, daemon=True).start()
    conf = {"rollout": True, "ready_url": sim.ready_url(new), "stable_for": 2}
    result = cli_for(airflow_home, sim).dags_test(DAG_ID, "-c", json.dumps(conf))

    assert result.returncode == 0, result.stdout[-3000:]
    stored = xcoms(airflow_home, DAG_ID)
    assert stored[("wait_for_tunnel", "return_value")]["id"] == new, f"opened on {old}, the old connector"
    assert stored[("deploy", "return_value")] == new
    assert "held for 2 s" in result.stdout or "held for 3 s" in result.stdout
    assert f"Gate open: connector {new} has 4 live connection(s)" in result.stdout
    assert came_up
