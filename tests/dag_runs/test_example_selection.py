"""Which tunnels the example health check and watcher select from the environment.

Precedence: ``CFTUNNEL_TUNNEL_IDS`` > ``CFTUNNEL_NAME_PREFIX`` > ``CFTUNNEL_TUNNEL_ID`` > every tunnel, the same in
both examples, so setting the deploy gate's ``CFTUNNEL_TUNNEL_ID`` beside a prefix never fails the check with
"Give tunnel_ids or name_prefix, not both", and the watcher watches what the check checks. The check runs for
real (``airflow dags test`` against the simulator); the selections are read from the DAG files as Airflow's
DagBag parses them, in a fresh process per environment.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI
from tests.support.dag_runs import task_states, xcoms

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ID_A = "c1744f8b-faa1-48a4-9e5c-02ac921467fa"
ID_B = "0f7c5c8e-2d44-4f53-9d1b-7b9a1c2e3f40"
ID_C = "5b3e8f9a-6c1d-4e2f-8a7b-9c0d1e2f3a4b"
ACCOUNT = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
AIRFLOW_3 = int(version("apache-airflow").split(".")[0]) >= 3

# Parses both example files with Airflow's DagBag and prints what each selects: the health check's param defaults
# and the watcher's trigger kwargs (Airflow 3; the file defines no DAG on 2.x).
SELECTION_PROBE = """
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
params = bag.dags["example_cftunnel_health_check"].params
check = {name: params.get_param(name).value for name in ("tunnel_ids", "name_prefix")}
watch = None
watcher_dag = bag.dags.get("example_cftunnel_on_health_change")
if watcher_dag is not None:
    (asset,) = watcher_dag.timetable.asset_condition.objects
    kwargs = asset.watchers[0].trigger.serialize()[1]
    watch = {"tunnel_ids": kwargs["tunnel_ids"], "name_prefix": kwargs["name_prefix"]}
print(json.dumps({"check": check, "watch": watch}))
"""


def selections(tmp_path, **env: str) -> dict:
    cli = AirflowCLI(tmp_path, EXAMPLE_DAGS, {"CFTUNNEL_ACCOUNT_ID": ACCOUNT, **env})
    result = subprocess.run(
        [sys.executable, "-c", SELECTION_PROBE, str(EXAMPLE_DAGS)], env=cli.env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("env", "tunnel_ids", "name_prefix"),
    [
        pytest.param(
            {"CFTUNNEL_TUNNEL_IDS": f"{ID_A},{ID_B}", "CFTUNNEL_NAME_PREFIX": "prod-web-", "CFTUNNEL_TUNNEL_ID": ID_C},
            [ID_A, ID_B],
            None,
            id="ids-win-over-everything",
        ),
        pytest.param(
            {"CFTUNNEL_NAME_PREFIX": "prod-web-", "CFTUNNEL_TUNNEL_ID": ID_C}, None, "prod-web-", id="prefix-over-id"
        ),
        pytest.param({"CFTUNNEL_TUNNEL_ID": ID_C}, [ID_C], None, id="the-deploy-gate-id-alone"),
        pytest.param({"CFTUNNEL_TUNNEL_ID": "", "CFTUNNEL_NAME_PREFIX": ""}, None, None, id="none-every-tunnel"),
    ],
)
def test_the_check_and_the_watcher_select_the_same_tunnels(tmp_path, env, tunnel_ids, name_prefix):
    selected = selections(tmp_path, **env)
    check_ids = selected["check"]["tunnel_ids"]
    assert (None if check_ids is None else check_ids.split(",")) == tunnel_ids
    assert selected["check"]["name_prefix"] == name_prefix
    if AIRFLOW_3:
        assert selected["watch"] == {"tunnel_ids": tunnel_ids, "name_prefix": name_prefix}
    else:
        assert selected["watch"] is None


def test_a_gate_id_beside_a_prefix_checks_the_prefix(airflow_home, cloudflare_simulator_factory):
    """The environment the issue met: both variables set used to fail every run before any request."""
    sim = cloudflare_simulator_factory({"up_after": 0, "connections": 4})
    fleet = [sim.add_tunnel(name=f"prod-web-{i}") for i in (1, 2)]
    for tunnel_id in fleet:
        sim.add_connector(tunnel_id, live=4)
    sim.clear_requests()
    env = {**sim.airflow_env(), "CFTUNNEL_TUNNEL_ID": sim.tunnel_id, "CFTUNNEL_NAME_PREFIX": "prod-web-"}
    result = AirflowCLI(airflow_home, EXAMPLE_DAGS, env).dags_test("example_cftunnel_health_check")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "not both" not in result.stdout
    assert task_states(airflow_home, "example_cftunnel_health_check")["check_tunnels"] == "success"
    report = xcoms(airflow_home, "example_cftunnel_health_check")[("check_tunnels", "return_value")]
    assert report["selection"]["name_prefix"] == "prod-web-"
    assert report["selection"]["tunnel_ids"] is None
    assert sorted(t["id"] for t in report["tunnels"]) == sorted(fleet)  # not the gate's tunnel


def test_ids_beside_a_prefix_check_the_ids(airflow_home, cloudflare_simulator_factory):
    sim = cloudflare_simulator_factory({"up_after": 0, "connections": 4})
    fleet = [sim.add_tunnel(name=f"prod-web-{i}") for i in (1, 2, 3)]
    for tunnel_id in fleet:
        sim.add_connector(tunnel_id, live=4)
    sim.set_tunnel_status(fleet[1], "down")
    env = {
        **sim.airflow_env(),
        "CFTUNNEL_TUNNEL_IDS": f"{fleet[0]}, {fleet[2]}",  # the down one is not selected
        "CFTUNNEL_NAME_PREFIX": "prod-web-",
        "CFTUNNEL_TUNNEL_ID": sim.tunnel_id,
    }
    result = AirflowCLI(airflow_home, EXAMPLE_DAGS, env).dags_test("example_cftunnel_health_check")
    assert result.returncode == 0, result.stdout[-3000:]
    report = xcoms(airflow_home, "example_cftunnel_health_check")[("check_tunnels", "return_value")]
    assert report["selection"]["tunnel_ids"] == [fleet[0], fleet[2]]
    assert report["selection"]["name_prefix"] is None
    assert (report["healthy"], report["checked"]) == (True, 2)
