"""The sensor's reschedule mode and soft_fail timeout, run for real with ``airflow dags test``."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI
from tests.support.dag_runs import (
    AIRFLOW_3_0,
    AIRFLOW_3_0_RESCHEDULE_BUG,
    bring_up_after_first_poll,
    task_states,
    xcoms,
)

DAGS = Path(__file__).with_name("dags")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.mark.xfail(AIRFLOW_3_0, strict=False, reason=AIRFLOW_3_0_RESCHEDULE_BUG)
def test_reschedule_mode_and_soft_fail(airflow_home, cloudflare_simulator_factory):
    sim = cloudflare_simulator_factory({"up_after": 3600})
    never = sim.add_tunnel(name="never-up")
    bring_up_after_first_poll(sim, 3.0)
    env = {**sim.airflow_env(), "CFTUNNEL_TUNNEL_ID": sim.tunnel_id, "CFTUNNEL_OTHER_TUNNEL_ID": never}
    cli = AirflowCLI(airflow_home, DAGS, env)
    result = cli.dags_test("cftunnel_sensor_modes")
    states = task_states(airflow_home, "cftunnel_sensor_modes")
    assert states == {"rescheduled": "success", "never_ready_soft_fail": "skipped"}, result.stdout[-3000:]
    assert xcoms(airflow_home, "cftunnel_sensor_modes")[("rescheduled", "return_value")]["id"] == sim.connector_id
    main_polls = [r for r in sim.requests_matching("/connections$") if sim.tunnel_id in r.path]
    assert len(main_polls) >= 2  # not ready at the first poke: rescheduled, then poked again
    assert "reschedule" in result.stdout.lower()
