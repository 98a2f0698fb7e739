"""The example DAGs, run for real with ``airflow dags test`` against the local Cloudflare simulator."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_cftunnel.operators.tunnel import CloudflareTunnelLink, tunnel_dashboard_url
from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def cli_for(airflow_home: Path, sim, **env: str) -> AirflowCLI:
    environment = {
        **sim.airflow_env(),
        "CFTUNNEL_TUNNEL_ID": sim.tunnel_id,
        "CFTUNNEL_CONNECTOR_ID": sim.connector_id,
        "CFTUNNEL_POKE_INTERVAL": "1",
        **env,
    }
    return AirflowCLI(airflow_home, EXAMPLE_DAGS, environment)


def xcoms(airflow_home: Path, dag_id: str) -> dict[tuple[str, str], object]:
    """The XComs of the DAG's latest run, read from the metadata database as Airflow stored them."""
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        (run_id,) = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        rows = db.execute("SELECT task_id, key, value FROM xcom WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return {
            (task, key): json.loads(value) if isinstance(value, str | bytes) else value for task, key, value in rows
        }


def task_states(airflow_home: Path, dag_id: str) -> dict[str, str]:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        (run_id,) = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        rows = db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return dict(rows)


def flat(text: str) -> str:
    """Output with box drawing (Airflow 3.0's rich tracebacks wrap messages in boxes) and line breaks folded."""
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", text).split())


def shown(output: str) -> str:
    """Output without Airflow 3.0's own debug echo of the secrets it masks (``msg=MaskSecret(value=...)``).

    Airflow 3.0's ``dags test`` logs every mask request with the secret in it (fixed in later releases): that
    is Airflow's leak, not the provider's, and the provider sends none of its own.
    """
    return "\n".join(line for line in output.splitlines() if "MaskSecret(" not in line)


def bring_up_after_first_poll(sim, delay: float) -> threading.Thread:
    """Start the connector ``delay`` seconds after the sensor's first request (Airflow's start-up varies)."""

    def run() -> None:
        deadline = time.monotonic() + 120
        while not sim.requests_matching(sim.tunnel_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(delay)
        sim.set_connector(live=4)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_deploy_gate_waits_for_the_tunnel_then_deploys(airflow_home, cloudflare_simulator_factory):
    sim = cloudflare_simulator_factory({"up_after": 3600, "connections": 4})
    bring_up_after_first_poll(sim, 4.0)
    result = cli_for(airflow_home, sim).dags_test("example_cftunnel_deploy_gate")
    output = result.stdout
    assert result.returncode == 0, output[-3000:]
    assert task_states(airflow_home, "example_cftunnel_deploy_gate") == {
        "wait_for_tunnel": "success",
        "deploy": "success",
        "record_serving_connector": "success",
    }
    assert "running trigger in line" in output  # it really deferred, and waited in the trigger
    assert "Tunnel " + sim.tunnel_id + " not ready: no connector registered" in output
    assert f"Gate open: connector {sim.connector_id} has 4 live connection(s)" in output
    stored = xcoms(airflow_home, "example_cftunnel_deploy_gate")
    gate = stored[("wait_for_tunnel", "return_value")]
    assert gate["id"] == sim.connector_id
    assert [c["is_pending_reconnect"] for c in gate["conns"]] == [False] * 4
    assert stored[("record_serving_connector", "return_value")]["id"] == sim.connector_id
    assert stored[("record_serving_connector", CloudflareTunnelLink().xcom_key)] == tunnel_dashboard_url(
        sim.account_id, sim.tunnel_id
    )
    polls = sim.requests_matching("/connections$")
    assert len(polls) >= 2
    assert polls[0].status == 200
    assert sim.api_token not in shown(output)


def test_health_check_reports_a_healthy_connector(airflow_home, cloudflare_simulator_factory):
    sim = cloudflare_simulator_factory({"up_after": 0, "connections": 4})
    result = cli_for(airflow_home, sim).dags_test("example_cftunnel_health_check")
    assert result.returncode == 0, result.stdout[-3000:]
    stored = xcoms(airflow_home, "example_cftunnel_health_check")
    assert stored[("fetch_connector", "return_value")]["id"] == sim.connector_id
    summary = stored[("check_live_connections", "return_value")]
    assert summary["live_connections"] == 4
    assert summary["healthy"] is True
    assert len(sim.requests_matching("/connectors/")) == 1


def test_health_check_fails_clearly_below_the_threshold(airflow_home, cloudflare_simulator_factory):
    sim = cloudflare_simulator_factory({"up_after": 0})
    sim.set_connector(live=1, pending=3)
    result = cli_for(airflow_home, sim).dags_test("example_cftunnel_health_check")
    assert task_states(airflow_home, "example_cftunnel_health_check") == {
        "fetch_connector": "success",
        "check_live_connections": "failed",
    }
    assert (
        f"Connector {sim.connector_id} has 1 live connection(s) (3 pending reconnect), below the threshold of 2"
        in flat(result.stdout)
    )


def test_deploy_gate_fails_at_once_on_a_wrong_token(airflow_home, cloudflare_simulator_factory):
    sim = cloudflare_simulator_factory({"up_after": 0})
    wrong = json.dumps(
        {
            "conn_type": "cloudflare",
            "host": sim.base_url,
            "password": "wrong-token-never-logged",
            "extra": {"account_id": sim.account_id},
        }
    )
    result = cli_for(airflow_home, sim, AIRFLOW_CONN_CLOUDFLARE_DEFAULT=wrong).dags_test("example_cftunnel_deploy_gate")
    states = task_states(airflow_home, "example_cftunnel_deploy_gate")
    assert states["wait_for_tunnel"] == "failed"
    assert states.get("deploy") in ("upstream_failed", None)
    assert "Cloudflare API error 10000 (HTTP 403): Authentication error" in flat(result.stdout)
    assert "wrong-token-never-logged" not in shown(result.stdout)
    assert len(sim.requests) == 1  # failed at the first answer, no polling until the timeout


PARSE_PROBE = """
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"dags": sorted(bag.dag_ids), "errors": {k: str(v) for k, v in bag.import_errors.items()}}))
"""


def test_example_dags_parse_without_any_connection(tmp_path):
    env = AirflowCLI(tmp_path, EXAMPLE_DAGS).env()  # no AIRFLOW_CONN_* at all
    out = subprocess.run(
        [sys.executable, "-c", PARSE_PROBE, str(EXAMPLE_DAGS)], env=env, capture_output=True, text=True, check=True
    ).stdout
    parsed = json.loads(out.strip().splitlines()[-1])
    assert parsed == {"dags": ["example_cftunnel_deploy_gate", "example_cftunnel_health_check"], "errors": {}}


def test_providers_list_shows_the_package(airflow_home):
    result = AirflowCLI(airflow_home, EXAMPLE_DAGS).run("providers", "list", "-o", "json", check=True)
    assert "airflow-provider-cftunnel" in result.stdout
