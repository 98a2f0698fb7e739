"""The deploy gate with ``ready_url`` and ``stable_for`` in poke, reschedule and deferrable mode, for real.

``airflow dags test`` runs ``dags/cftunnel_gate_modes.py``: three sensors, each on its own tunnel of the
simulator. When a sensor first polls its tunnel, that tunnel goes through a rolling restart: the old
``cloudflared`` stays live (4 connections) all along; the new one comes up, flaps, and comes back for good,
and its ``/ready`` trails the API by a second. Every gate must open on the new connector, not before both
views have agreed for ``stable_for``, and not long after. ``dags/cftunnel_gate_timeouts.py``: a gate that never
opens times out in each mode with an error naming the last reason.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI
from tests.support.dag_runs import task_rows, xfail_on_airflow_3_0_reschedule_bug

DAGS = Path(__file__).with_name("dags")
MODES = ("poke", "reschedule", "deferrable")
STABLE_FOR = 3.0
READY_LAG = 1.0
#: Airflow's own delays on top of one poll interval (``dags test`` runs one task at a time).
SLACK = 15.0
#: The task's own work after its last poll (XCom, state) on a slow machine.
FINISH = 2.0

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]


def rollout_scenario() -> tuple[dict[str, object], dict[str, tuple[str, str, str]]]:
    """One tunnel per mode: an old connector live from the start, a new one not started (its /ready: 503)."""
    tunnels, ids = [], {}
    for n, mode in enumerate(MODES, start=1):
        tunnel, old, new = (f"{n}0000000-0000-4000-8000-00000000000{d}" for d in (0, 1, 2))
        ids[mode] = (tunnel, old, new)
        tunnels.append(
            {
                "id": tunnel,
                "name": f"gate-{mode}",
                "connectors": [
                    {"id": old, "timeline": [{"at": -3600, "live": 4}]},
                    {"id": new, "up_after": 36000, "ready": {"lag": READY_LAG}},
                ],
            }
        )
    return {"accounts": [{"tunnels": tunnels}]}, ids


def roll_out_on_first_poll(sim, tunnel: str, new: str, agreed: dict[str, float]) -> threading.Thread:
    """Once ``tunnel`` is first polled: bring ``new`` up, flap it, bring it back; note when both views agree."""

    def run() -> None:
        deadline = time.monotonic() + 300
        while not sim.requests_matching(tunnel) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        sim.set_connector(tunnel, new, live=4)
        time.sleep(1.5)  # /ready says ready after READY_LAG: both agree for 0.5 s, less than stable_for
        sim.set_connector(tunnel, new, live=0, pending=4)
        time.sleep(1.0)
        sim.set_connector(tunnel, new, live=4)
        agreed[tunnel] = time.time() + READY_LAG  # the API now, /ready READY_LAG later: agreement for good

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_every_mode_opens_on_the_new_connector_after_stable_for(airflow_home, cloudflare_simulator_factory):
    scenario, ids = rollout_scenario()
    sim = cloudflare_simulator_factory(scenario)
    agreed: dict[str, float] = {}
    env = {**sim.airflow_env(), "CFTUNNEL_STABLE_FOR": str(STABLE_FOR)}
    for mode, (tunnel, _, new) in ids.items():
        env[f"CFTUNNEL_TUNNEL_{mode.upper()}"] = tunnel
        env[f"CFTUNNEL_READY_{mode.upper()}"] = sim.ready_url(new)
        roll_out_on_first_poll(sim, tunnel, new, agreed)

    result = AirflowCLI(airflow_home, DAGS, env).dags_test("cftunnel_gate_modes")
    xfail_on_airflow_3_0_reschedule_bug(result.stdout)

    rows = task_rows(airflow_home, "cftunnel_gate_modes")
    assert {task: row[0] for task, row in rows.items()} == dict.fromkeys(MODES, "success"), result.stdout[-3000:]
    for mode, (tunnel, old, new) in ids.items():
        _, ended, connector, reschedules = rows[mode]
        assert isinstance(connector, dict)
        assert connector["id"] == new, f"{mode}: opened on {connector['id']}, the old connector is {old}"
        assert ended is not None
        after = ended - agreed[tunnel]  # seconds from both views agreeing for good to the task's end
        assert after >= STABLE_FOR - 0.05, f"{mode} opened {after:.2f} s after agreement, before stable_for"
        # A try that gives its slot back comes again only when ``dags test`` gets to it (it runs one task at a
        # time, so the poke sensor can hold it for a while): the first try after agreement starts the clock and
        # the first try stable_for later opens the gate, so two of Airflow's own cycles bound the wait.
        tries = [*reschedules, ended]
        cycle = max((b - a for a, b in itertools.pairwise(tries)), default=0.0)
        bound = STABLE_FOR + max(SLACK, 2 * cycle + FINISH)
        assert after <= bound, f"{mode} opened {after:.2f} s after agreement (bound {bound:.2f} s, tries {tries})"
        if mode == "reschedule":
            assert reschedules  # it really gave its slot back while the gate was shut
    assert "running trigger in line" in result.stdout  # the deferrable one waited in the trigger
    assert "cloudflared's /ready agrees" in result.stdout


def test_every_mode_times_out_naming_the_last_reason(airflow_home, cloudflare_simulator_factory):
    sim = cloudflare_simulator_factory({"up_after": 0})  # the old connector, live: it must not open any gate
    env = {**sim.airflow_env(), "CFTUNNEL_TUNNEL_ID": sim.tunnel_id}
    urls = {}
    for mode in MODES:
        new = sim.add_connector(live=0, pending=4)  # registered, never live: its /ready answers 503
        urls[mode] = env[f"CFTUNNEL_READY_{mode.upper()}"] = sim.ready_url(new)

    result = AirflowCLI(airflow_home, DAGS, env).dags_test("cftunnel_gate_timeouts")
    xfail_on_airflow_3_0_reschedule_bug(result.stdout)

    rows = task_rows(airflow_home, "cftunnel_gate_timeouts")
    assert {task: row[0] for task, row in rows.items()} == dict.fromkeys(MODES, "failed"), result.stdout[-3000:]
    output = " ".join(result.stdout.split())
    assert output.count("AirflowSensorTimeout") >= len(MODES)
    for mode, url in urls.items():
        assert f"Last check: not ready: cloudflared at {url} not ready (HTTP 503" in output, mode
