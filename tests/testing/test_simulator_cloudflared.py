"""cloudflared's /ready in the simulator: the scenario keys ``ready`` and ``flap``, against the API's view."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_cftunnel.testing import ScenarioError, normalize_scenario
from airflow_provider_cftunnel.testing.scenario import flapping_timeline
from tests.support.fakes import FakeClock
from tests.testing.sim_helpers import Client

if TYPE_CHECKING:
    import requests

NEW = "1e1e1e1e-0000-4000-8000-000000000002"
START = FakeClock().now  # the fake clock's reading when the simulator starts


def one_connector(**connector: object) -> dict[str, object]:
    return {"accounts": [{"tunnels": [{"connectors": [{"id": NEW, **connector}]}]}]}


def views(sim, session: requests.Session) -> tuple[int, int]:
    """(/ready's HTTP status, live connections the API lists for the connector)."""
    ready = session.get(sim.ready_url(NEW), timeout=5)
    listed = Client(sim, session).result(Client(sim, session).connections_path())
    live = sum(1 for c in listed if c["id"] == NEW for conn in c["conns"] if not conn["is_pending_reconnect"])
    return ready.status_code, live


def set_time(clock: FakeClock, seconds: float) -> None:
    """Set the simulated time to ``seconds`` after the simulator started."""
    clock.now = START + seconds


@pytest.fixture
def factory(cloudflare_simulator_factory, clock: FakeClock):
    return lambda scenario: cloudflare_simulator_factory(scenario, clock=clock)


def test_flap_expands_to_a_timeline_and_both_views_flap_together(factory, clock, session) -> None:
    sim = factory(one_connector(up_after=10, connections=2, flap={"up": 5, "down": 3, "cycles": 2}))
    [connector] = sim.scenario["accounts"][0]["tunnels"][0]["connectors"]
    assert connector["timeline"] == flapping_timeline(10, up=5, down=3, cycles=2, live=2)
    seen = []
    for at in (0, 11, 16, 19, 24, 27, 40):
        set_time(clock, at)
        seen.append(views(sim, session))
    assert seen == [(503, 0), (200, 2), (503, 0), (200, 2), (503, 0), (200, 2), (200, 2)]


def test_negative_lag_is_the_api_listing_the_connector_late(factory, clock, session) -> None:
    sim = factory(one_connector(up_after=10, ready={"lag": -20}))
    set_time(clock, 0)
    assert views(sim, session) == (200, 0)  # cloudflared is ready; the API does not show it live yet
    set_time(clock, 10)
    assert views(sim, session) == (200, 4)


def test_positive_lag_is_ready_trailing_the_api(factory, clock, session) -> None:
    sim = factory(one_connector(up_after=0, ready={"mode": "follow", "lag": 15}))
    set_time(clock, 5)
    assert views(sim, session) == (503, 4)
    set_time(clock, 15)
    assert views(sim, session) == (200, 4)


def test_disagree_is_local_ready_while_the_api_shows_nothing_live(factory, clock, session) -> None:
    sim = factory(one_connector(timeline=[{"at": 0, "live": 0, "pending": 4}], ready={"mode": "disagree"}))
    assert views(sim, session) == (200, 0)
    body = session.get(sim.ready_url(NEW), timeout=5).json()
    assert body == {"status": 200, "readyConnections": 4, "connectorId": NEW}


def test_the_effective_scenario_keeps_ready_and_loads_back(factory) -> None:
    sim = factory(one_connector(up_after=0, ready={"mode": "never"}))
    [connector] = sim.scenario["accounts"][0]["tunnels"][0]["connectors"]
    assert connector["ready"] == {"mode": "never", "lag": 0.0}
    assert normalize_scenario(sim.scenario)["accounts"][0]["tunnels"][0]["connectors"][0]["ready"]["mode"] == "never"


@pytest.mark.parametrize(
    ("connector", "needle"),
    [
        ({"ready": {"mode": "sometimes"}}, r"ready.mode must be one of follow, disagree, never, bogus"),
        ({"ready": {"lag": "5s"}}, r"ready.lag must be a number"),
        ({"ready": {"delay": 5}}, r"ready must be an object with keys mode and lag"),
        ({"flap": {"up": 1, "every": 2}}, r"flap.*every"),
        ({"flap": {"up": -1}}, r"flap.up must be a number >= 0"),
        ({"flap": 3}, r"flap must be an object with keys up, down and cycles"),
        ({"flap": {"cycles": 1}, "timeline": [{"at": 0, "live": 4}]}, r"either timeline or flap"),
    ],
)
def test_bad_ready_and_flap_specs_are_named(connector, needle) -> None:
    with pytest.raises(ScenarioError, match=needle):
        normalize_scenario(one_connector(**connector))


def test_the_control_endpoint_shapes_ready(factory, session) -> None:
    sim = factory(one_connector(up_after=0))
    answer = session.post(f"{sim.control_url}/ready", json={"connector_id": NEW, "mode": "never"}, timeout=5)
    assert answer.json() == {"connector_id": NEW, "ready_url": sim.ready_url(NEW)}
    assert views(sim, session) == (503, 4)
    bad = session.post(f"{sim.control_url}/ready", json={"connector_id": NEW, "mode": "sometimes"}, timeout=5)
    assert bad.status_code == 400
    assert "ready.mode must be one of" in bad.json()["error"]
    unknown = "00000000-0000-4000-8000-000000000000"
    assert session.post(f"{sim.control_url}/ready", json={"connector_id": unknown}, timeout=5).status_code == 400
