"""Test that the health trigger's stored state belongs to its own selection.

Watchers sharing an asset (``Asset(watchers=[a, b])``, so one state store) or a watcher whose selection changed
never take other tunnels for theirs (which fired a "disappeared" event per tunnel of the other selection and an
"appeared" one per own tunnel, at every start).
"""

from __future__ import annotations

import pytest

from airflow_provider_cftunnel.triggers.health import CloudflareTunnelHealthTrigger
from tests.support.fakes import FakeStore
from tests.support.triggers import Collector, wait_for


@pytest.fixture
def two_fleets(ready_sim):
    """prod-web-1..2 and prod-api-1..2, all healthy."""
    sim = ready_sim
    ids = {name: sim.add_tunnel(name=name) for name in ("prod-web-1", "prod-web-2", "prod-api-1", "prod-api-2")}
    for tunnel_id in ids.values():
        sim.add_connector(tunnel_id, live=4)
    sim.clear_requests()
    return sim, ids


def polls(sim) -> int:
    """Tunnel reads: the list (by prefix) or one tunnel (by id), one per poll either way."""
    return len(sim.requests_matching(r"/cfd_tunnel(/[0-9a-f-]{36})?$"))


async def run_for(trigger: CloudflareTunnelHealthTrigger, sim, store: FakeStore, count: int = 3) -> list[dict]:
    """Run ``trigger`` on ``store`` for ``count`` polls; return its events."""
    trigger.asset_state_store = store
    start = polls(sim)
    run = Collector(trigger)
    await wait_for(lambda: polls(sim) >= start + count)
    await run.stop()
    assert run.error is None
    return run.events


async def test_two_watchers_on_one_asset_keep_their_own_state(two_fleets):
    sim, ids = two_fleets
    store = FakeStore()  # one asset: one store for both watchers
    web = dict(name_prefix="prod-web-", poll_interval=0.1)
    api = dict(name_prefix="prod-api-", poll_interval=0.1)
    assert await run_for(CloudflareTunnelHealthTrigger(**web), sim, store) == []  # the baseline
    assert await run_for(CloudflareTunnelHealthTrigger(**api), sim, store) == []  # its own baseline, no burst
    assert await run_for(CloudflareTunnelHealthTrigger(**web), sim, store) == []  # a restart: nothing changed

    sim.set_tunnel_status(ids["prod-web-2"], "down")  # while no watcher runs: the store must still tell
    events = await run_for(CloudflareTunnelHealthTrigger(**web), sim, store)
    assert [(e["tunnel_name"], e["previous_status"], e["status"]) for e in events] == [
        ("prod-web-2", "healthy", "down")
    ]
    assert await run_for(CloudflareTunnelHealthTrigger(**api), sim, store) == []


async def test_a_changed_selection_takes_a_new_baseline(two_fleets):
    sim, ids = two_fleets
    store = FakeStore()
    assert await run_for(CloudflareTunnelHealthTrigger(name_prefix="prod-web-", poll_interval=0.1), sim, store) == []
    narrowed = CloudflareTunnelHealthTrigger(tunnel_ids=[ids["prod-web-1"]], poll_interval=0.1)
    assert await run_for(narrowed, sim, store) == []  # not "prod-web-2 disappeared"


class CountingStore(FakeStore):
    """A store that counts its reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    async def aget(self, key, default=None):
        self.reads.append(key)
        return await super().aget(key, default)


async def test_a_watcher_of_one_id_reads_one_shard_and_resumes_from_it(two_fleets):
    sim, ids = two_fleets
    store = CountingStore()
    one = dict(tunnel_ids=[ids["prod-web-1"].upper()], poll_interval=0.1)  # ids are matched in lower case
    assert await run_for(CloudflareTunnelHealthTrigger(**one), sim, store) == []  # the baseline
    assert len(store.reads) == 1
    assert store.reads[0].endswith(f"-{ids['prod-web-1'][0]}")

    sim.set_tunnel_status(ids["prod-web-1"], "down")  # while no watcher runs: its one shard must tell
    events = await run_for(CloudflareTunnelHealthTrigger(**one), sim, store)
    assert [(e["tunnel_name"], e["previous_status"], e["status"]) for e in events] == [
        ("prod-web-1", "healthy", "down")
    ]
    assert len(store.reads) == 2
