"""The health event trigger's real code against the local simulator: changes, cost, errors, state, AssetWatcher."""

from __future__ import annotations

import asyncio
import json
from importlib.metadata import version

import pytest

from airflow_provider_cftunnel.exceptions import CloudflareAuthError, CloudflareConfigError, CloudflareNotFoundError
from airflow_provider_cftunnel.triggers.health import CloudflareTunnelHealthTrigger, health_changes
from tests.support.fakes import FakeStore
from tests.support.triggers import Collector, wait_for

TRIGGER_PATH = "airflow_provider_cftunnel.triggers.health.CloudflareTunnelHealthTrigger"
AIRFLOW_3 = int(version("apache-airflow").split(".")[0]) >= 3


@pytest.fixture
def fleet(ready_sim):
    """prod-web-1 (healthy) and prod-web-2 (healthy), plus the default tunnel."""
    sim = ready_sim
    ids = [sim.add_tunnel(name=f"prod-web-{i}") for i in (1, 2)]
    for tunnel_id in ids:
        sim.add_connector(tunnel_id, live=4)
    sim.clear_requests()
    return sim, ids


def polls(sim) -> int:
    return len(sim.requests_matching(r"/cfd_tunnel$"))


class TestChanges:
    async def test_steady_state_fires_nothing(self, fleet):
        sim, _ = fleet
        run = Collector(CloudflareTunnelHealthTrigger(name_prefix="prod-web-", poll_interval=0.1))
        await wait_for(lambda: polls(sim) >= 10)
        await run.stop()
        assert run.events == []
        assert run.error is None

    async def test_down_and_back_fires_exactly_two_events(self, fleet):
        sim, ids = fleet
        run = Collector(CloudflareTunnelHealthTrigger(name_prefix="prod-web-", poll_interval=0.1))
        await wait_for(lambda: polls(sim) >= 2)  # the baseline is taken
        sim.set_tunnel_status(ids[0], "down")
        await wait_for(lambda: len(run.events) == 1)
        await wait_for(lambda: polls(sim) >= polls(sim) + 0 and len(sim.requests) > 0)
        start = polls(sim)
        await wait_for(lambda: polls(sim) >= start + 3)  # still down: nothing more
        sim.set_tunnel_status(ids[0], "healthy")
        await wait_for(lambda: len(run.events) == 2)
        start = polls(sim)
        await wait_for(lambda: polls(sim) >= start + 3)
        await run.stop()
        down, up = run.events
        assert (down["tunnel_id"], down["tunnel_name"]) == (ids[0], "prod-web-1")
        assert (down["previous_status"], down["status"]) == ("healthy", "down")
        assert (down["previous_healthy"], down["healthy"]) == (True, False)
        assert down["reasons"] == ["status is down (needs healthy)"]
        assert down["change"] == "changed"
        assert (up["previous_status"], up["status"], up["healthy"], up["reasons"]) == ("down", "healthy", True, [])
        assert set(down) == {
            "tunnel_id",
            "tunnel_name",
            "account_id",
            "status",
            "previous_status",
            "healthy",
            "previous_healthy",
            "reasons",
            "live_connections",
            "colos",
            "change",
            "observed_at",
        }
        assert json.loads(json.dumps(run.events)) == run.events
        assert sim.api_token not in json.dumps(run.events)

    async def test_a_status_change_with_the_same_verdict_fires_too(self, fleet):
        sim, ids = fleet
        run = Collector(CloudflareTunnelHealthTrigger(name_prefix="prod-web-", poll_interval=0.1))
        sim.set_tunnel_status(ids[1], "degraded")
        await wait_for(lambda: polls(sim) >= 2)
        sim.set_tunnel_status(ids[1], "down")  # unhealthy before and after
        await wait_for(lambda: len(run.events) == 1)
        await run.stop()
        assert (run.events[0]["previous_status"], run.events[0]["status"]) == ("degraded", "down")

    async def test_appearing_and_disappearing_tunnels_are_changes(self, fleet):
        sim, ids = fleet
        run = Collector(CloudflareTunnelHealthTrigger(name_prefix="prod-web-", poll_interval=0.1))
        await wait_for(lambda: polls(sim) >= 2)
        new = sim.add_tunnel(name="prod-web-3")
        await wait_for(lambda: len(run.events) == 1)
        sim.delete_tunnel(ids[1])
        await wait_for(lambda: len(run.events) == 2)
        await run.stop()
        appeared, gone = run.events
        assert (appeared["tunnel_id"], appeared["change"], appeared["status"]) == (new, "appeared", "inactive")
        assert appeared["previous_status"] is None
        assert (gone["tunnel_id"], gone["change"], gone["status"], gone["previous_status"]) == (
            ids[1],
            "disappeared",
            None,
            "healthy",
        )

    def test_health_changes_is_pure(self):
        from airflow_provider_cftunnel.rules import TunnelHealth

        previous = {"a": ["healthy", True, "web"]}
        same = [TunnelHealth(id="a", name="web", status="healthy", healthy=True)]
        assert health_changes(previous, same, observed_at="t", account_id="x") == []


class TestCost:
    async def test_a_prefix_over_300_tunnels_costs_one_request_per_interval(self, ready_sim):
        sim = ready_sim
        sim.add_fleet("fleet-", 300, statuses={"down": 3})
        sim.clear_requests()
        run = Collector(CloudflareTunnelHealthTrigger(name_prefix="fleet-", poll_interval=0.5))
        await asyncio.sleep(2.2)
        await run.stop()
        assert run.events == []
        assert 4 <= len(sim.requests) <= 6  # ~one per 0.5 s interval, every one a list request
        assert all(r.path.endswith("/cfd_tunnel") for r in sim.requests)

    async def test_strict_rule_reads_connections_of_passing_tunnels_only(self, fleet):
        sim, ids = fleet
        sim.set_tunnel_status(ids[1], "down")
        trigger = CloudflareTunnelHealthTrigger(name_prefix="prod-web-", min_live_connections=4, poll_interval=10)
        run = Collector(trigger)
        await wait_for(lambda: polls(sim) >= 1 and len(sim.requests_matching("/connections$")) >= 1)
        await asyncio.sleep(0.3)
        await run.stop()
        assert [r.path.split("/")[-2] for r in sim.requests_matching("/connections$")] == [ids[0]]


class TestErrors:
    async def test_transient_errors_fire_nothing_and_polling_goes_on(self, fleet):
        sim, ids = fleet
        run = Collector(CloudflareTunnelHealthTrigger(name_prefix="prod-web-", poll_interval=0.05))
        await wait_for(lambda: polls(sim) >= 2)
        sim.inject_fault("/cfd_tunnel$", kind="server_error", count=2, status=502)
        sim.inject_fault("/cfd_tunnel$", kind="rate_limit", count=1, retry_after=0, skip=2)
        await wait_for(lambda: sum(1 for r in sim.requests_matching("/cfd_tunnel$") if r.status >= 500) >= 2, 20)
        sim.set_tunnel_status(ids[0], "down")
        await wait_for(lambda: len(run.events) == 1, 30)
        await run.stop()
        assert run.error is None
        assert run.events[0]["status"] == "down"  # the errors were no change; the real change was seen

    async def test_bad_credentials_end_the_watcher(self, fleet, set_connection):
        sim, _ = fleet
        set_connection(password="revoked-token-99cc", host=sim.base_url, extra={"account_id": sim.account_id})
        run = Collector(CloudflareTunnelHealthTrigger(name_prefix="prod-web-", poll_interval=0.1))
        await asyncio.wait_for(run.task, 10)
        assert isinstance(run.error, CloudflareAuthError)
        assert "revoked-token-99cc" not in str(run.error)
        assert len(sim.requests) == 1  # no silent loop

    async def test_a_wrong_account_ends_the_watcher(self, fleet):
        run = Collector(CloudflareTunnelHealthTrigger(account_id="f" * 32, poll_interval=0.1))
        await asyncio.wait_for(run.task, 10)
        assert isinstance(run.error, CloudflareNotFoundError)

    async def test_malformed_arguments_end_it(self, fleet):
        run = Collector(CloudflareTunnelHealthTrigger(tunnel_ids=["nope"], poll_interval=0.1))
        await asyncio.wait_for(run.task, 10)
        assert isinstance(run.error, CloudflareConfigError)


class TestState:
    async def test_a_restart_neither_refires_a_known_state_nor_misses_a_change(self, fleet):
        sim, ids = fleet
        store = FakeStore()
        first = CloudflareTunnelHealthTrigger(name_prefix="prod-web-", poll_interval=0.1)
        first.asset_state_store = store
        run = Collector(first)
        await wait_for(lambda: polls(sim) >= 2)
        sim.set_tunnel_status(ids[0], "down")
        await wait_for(lambda: len(run.events) == 1)
        await run.stop()  # the triggerer dies while prod-web-1 is down
        assert store.data  # what it saw is stored

        sim.set_tunnel_status(ids[1], "down")  # a change while no triggerer runs it
        second = CloudflareTunnelHealthTrigger(name_prefix="prod-web-", poll_interval=0.1)
        second.asset_state_store = store
        run = Collector(second)
        await wait_for(lambda: len(run.events) >= 1)
        start = polls(sim)
        await wait_for(lambda: polls(sim) >= start + 3)
        await run.stop()
        assert [(e["tunnel_id"], e["status"]) for e in run.events] == [(ids[1], "down")]  # not prod-web-1 again

    async def test_without_a_store_a_restart_takes_a_new_baseline(self, fleet):
        sim, ids = fleet
        sim.set_tunnel_status(ids[0], "down")
        run = Collector(CloudflareTunnelHealthTrigger(name_prefix="prod-web-", poll_interval=0.1))
        await wait_for(lambda: polls(sim) >= 3)
        await run.stop()
        assert run.events == []


class TestSerialize:
    def test_exact_output_and_round_trip(self):
        try:
            from airflow.sdk.serde import deserialize, serialize
        except ImportError:  # Airflow 2.11
            from airflow.serialization.serde import deserialize, serialize

        trigger = CloudflareTunnelHealthTrigger(name_prefix="prod-", hook_params={"timeout": 5})
        path, kwargs = trigger.serialize()
        assert path == TRIGGER_PATH
        assert kwargs == {
            "tunnel_ids": None,
            "name_prefix": "prod-",
            "account_id": None,
            "allowed_statuses": ["healthy"],
            "min_live_connections": 1,
            "min_colos": 1,
            "cloudflare_conn_id": "cloudflare_default",
            "poll_interval": 60.0,
            "hook_params": {"timeout": 5},
            "connections_max_age": None,
        }
        restored = deserialize(serialize(kwargs))
        assert CloudflareTunnelHealthTrigger(**restored).serialize() == (path, kwargs)

    def test_no_secret_in_kwargs(self, ready_sim):
        _, kwargs = CloudflareTunnelHealthTrigger(tunnel_ids=[ready_sim.tunnel_id]).serialize()
        assert ready_sim.api_token not in json.dumps(kwargs)


@pytest.mark.skipif(not AIRFLOW_3, reason="AssetWatcher exists from Airflow 3.0")
def test_usable_in_an_asset_watcher():
    from airflow.sdk import Asset, AssetWatcher
    from airflow.triggers.base import BaseEventTrigger

    trigger = CloudflareTunnelHealthTrigger(name_prefix="prod-web-")
    assert isinstance(trigger, BaseEventTrigger)
    asset = Asset("cftunnel-prod-web", watchers=[AssetWatcher(name="prod_web_health", trigger=trigger)])
    assert asset.watchers[0].trigger is trigger
