"""The example DAGs, run for real with ``airflow dags test`` against the local Cloudflare simulator."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from airflow_provider_cftunnel.operators.tunnel import CloudflareTunnelLink, tunnel_dashboard_url
from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI
from tests.support.dag_runs import bring_up_after_first_poll, task_states, xcoms

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def cli_for(airflow_home: Path, sim, **env: str) -> AirflowCLI:
    environment = {
        **sim.airflow_env(),
        "CFTUNNEL_TUNNEL_ID": sim.tunnel_id,
        "CFTUNNEL_POKE_INTERVAL": "1",
        **env,
    }
    return AirflowCLI(airflow_home, EXAMPLE_DAGS, environment)


def flat(text: str) -> str:
    """Output with box drawing (Airflow 3.0's rich tracebacks wrap messages in boxes) and line breaks folded."""
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", text).split())


def shown(output: str) -> str:
    """Output without Airflow 3.0's own debug echo of the secrets it masks (``msg=MaskSecret(value=...)``).

    Airflow 3.0's ``dags test`` logs every mask request with the secret in it (fixed in later releases): that
    is Airflow's leak, not the provider's, and the provider sends none of its own.
    """
    return "\n".join(line for line in output.splitlines() if "MaskSecret(" not in line)


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


def health_fleet(cloudflare_simulator_factory, *, down: bool):
    """A simulator with prod-web-1..3 (healthy) and, with ``down``, prod-web-2 down; plus the default tunnel."""
    sim = cloudflare_simulator_factory({"up_after": 0, "connections": 4})
    ids = [sim.add_tunnel(name=f"prod-web-{i}") for i in (1, 2, 3)]
    for tunnel_id in ids:
        sim.add_connector(tunnel_id, live=4)
    if down:
        sim.set_tunnel_status(ids[1], "down")
    sim.clear_requests()
    return sim, ids


def test_health_check_passes_when_every_tunnel_is_healthy(airflow_home, cloudflare_simulator_factory):
    sim, ids = health_fleet(cloudflare_simulator_factory, down=False)
    cli = cli_for(airflow_home, sim, CFTUNNEL_NAME_PREFIX="prod-web-", CFTUNNEL_TUNNEL_ID="")
    result = cli.dags_test("example_cftunnel_health_check")
    assert result.returncode == 0, result.stdout[-3000:]
    assert task_states(airflow_home, "example_cftunnel_health_check") == {
        "check_tunnels": "success",
        "alert": "skipped",
        "all_healthy": "success",
    }
    report = xcoms(airflow_home, "example_cftunnel_health_check")[("check_tunnels", "return_value")]
    assert (report["healthy"], report["checked"], report["unhealthy"]) == (True, 3, [])
    assert sorted(t["id"] for t in report["tunnels"]) == sorted(ids)
    assert "All 3 Cloudflare Tunnel(s) healthy." in result.stdout
    assert [r.path.rsplit("/", 1)[-1] for r in sim.requests] == ["cfd_tunnel"]  # one request for the fleet
    assert sim.api_token not in shown(result.stdout)


def test_health_check_fails_and_the_alert_names_the_tunnel_that_is_down(airflow_home, cloudflare_simulator_factory):
    sim, ids = health_fleet(cloudflare_simulator_factory, down=True)
    cli = cli_for(airflow_home, sim, CFTUNNEL_NAME_PREFIX="prod-web-", CFTUNNEL_TUNNEL_ID="")
    result = cli.dags_test("example_cftunnel_health_check")
    output = flat(result.stdout)
    assert task_states(airflow_home, "example_cftunnel_health_check") == {
        "check_tunnels": "failed",
        "alert": "success",
        "all_healthy": "upstream_failed",
    }
    assert f"1 of 3 tunnel(s) unhealthy: prod-web-2 ({ids[1]}): status is down (needs healthy)" in output
    assert "Cloudflare Tunnel health: 2 of 3 tunnel(s) healthy" in output
    # the table: a line of its own per unhealthy tunnel, columns aligned under the header
    header = re.search(r"NAME +ID +STATUS +LIVE +WHY", result.stdout)
    row = re.search(rf"prod-web-2 +{ids[1]} +down +- +status is down \(needs healthy\)", result.stdout)
    assert header is not None, result.stdout[-3000:]
    assert row is not None, result.stdout[-3000:]
    assert "ALERT: 1 of 3 Cloudflare Tunnel(s) unhealthy" in output
    assert f"- prod-web-2 ({ids[1]}): status is down (needs healthy)" in output
    stored = xcoms(airflow_home, "example_cftunnel_health_check")
    assert stored[("check_tunnels", "health_report")]["unhealthy"] == [ids[1]]
    assert sim.api_token not in shown(result.stdout)


def test_health_check_by_id_survives_a_connector_restart(airflow_home, cloudflare_simulator_factory):
    sim = cloudflare_simulator_factory({"up_after": 0, "connections": 4})
    sim.restart_connector(live=4)  # the connector id known before the restart is gone: the tunnel is fine
    result = cli_for(airflow_home, sim).dags_test("example_cftunnel_health_check")
    assert result.returncode == 0, result.stdout[-3000:]
    report = xcoms(airflow_home, "example_cftunnel_health_check")[("check_tunnels", "return_value")]
    assert report["tunnels"][0]["id"] == sim.tunnel_id
    assert report["healthy"] is True


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
    expected = ["example_cftunnel_deploy_gate", "example_cftunnel_health_check"]
    if int(version("apache-airflow").split(".")[0]) >= 3:  # asset watchers: none on 2.x, so no DAG there
        expected.append("example_cftunnel_on_health_change")
    assert parsed == {"dags": sorted(expected), "errors": {}}


def test_providers_list_shows_the_package(airflow_home):
    result = AirflowCLI(airflow_home, EXAMPLE_DAGS).run("providers", "list", "-o", "json", check=True)
    assert "airflow-provider-cftunnel" in result.stdout
