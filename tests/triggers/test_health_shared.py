"""Many health watchers, one poll: the in-process poller (Airflow < 3.3) and Airflow 3.3's own shared stream.

Each test runs the real trigger code against the local simulator and counts the simulator's request log.
"""

from __future__ import annotations

import asyncio
import contextlib
from importlib.metadata import version

import pytest

from airflow_provider_cftunnel.exceptions import CloudflareConfigError
from airflow_provider_cftunnel.health_poller import HealthPoller
from airflow_provider_cftunnel.triggers.health import CloudflareTunnelHealthTrigger

AIRFLOW = tuple(int(part) for part in version("apache-airflow").split(".")[:2])
UNKNOWN_ID = "00000000-0000-4000-8000-0000000000aa"


async def wait_for(predicate, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


class Watchers:
    """Runs triggers the way a triggerer does: ``run()`` each (before 3.3), or through a ``SharedStreamManager``."""

    def __init__(self, triggers: list[CloudflareTunnelHealthTrigger], *, shared_stream: bool = False) -> None:
        self.triggers = triggers
        self.events: dict[int, list[dict]] = {i: [] for i in range(len(triggers))}
        self.errors: dict[int, BaseException] = {}
        self.manager = None
        if shared_stream:
            from airflow.triggers.shared_stream import SharedStreamManager

            self.manager = SharedStreamManager()
        self.tasks = [asyncio.create_task(self._run(i, t)) for i, t in enumerate(triggers)]

    async def _run(self, index: int, trigger: CloudflareTunnelHealthTrigger) -> None:
        try:
            if self.manager is None:
                events = trigger.run()
            else:  # what Airflow 3.3's TriggerRunner.run_trigger does with a shared_stream_key
                key = trigger.shared_stream_key()
                stream = self.manager.subscribe(trigger_id=index, trigger=trigger, key=key)
                events = trigger.filter_shared_stream(stream)
            try:
                async for event in events:
                    self.events[index].append(event.payload)
            finally:
                if self.manager is not None:
                    await self.manager.unsubscribe(index, key)
        except Exception as error:
            self.errors[index] = error

    def all_events(self) -> list[tuple[int, dict]]:
        return [(i, e) for i, events in self.events.items() for e in events]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.manager is not None:
            await self.manager.stop_all()


def tunnel_reads(sim) -> list:
    return sim.requests_matching(r"/cfd_tunnel(/[0-9a-f-]{36})?$")


MODES = [pytest.param(False, id="in-process")]
if AIRFLOW >= (3, 3):
    MODES.append(pytest.param(True, id="airflow-shared-stream"))


@pytest.fixture
def fleet(ready_sim):
    sim = ready_sim
    ids = sim.add_fleet("svc-", 60)
    sim.clear_requests()
    return sim, ids


@pytest.mark.parametrize("shared_stream", MODES)
async def test_sixty_watchers_one_per_tunnel_cost_one_list_per_interval(fleet, shared_stream):
    sim, ids = fleet
    triggers = [CloudflareTunnelHealthTrigger(tunnel_ids=[i], poll_interval=0.3) for i in ids]
    run = Watchers(triggers, shared_stream=shared_stream)
    await wait_for(lambda: len(tunnel_reads(sim)) >= 3)  # the baseline, and two polls more
    flipped = ids[17]
    sim.set_tunnel_status(flipped, "down")
    await wait_for(lambda: run.all_events())
    settled = len(tunnel_reads(sim))
    await wait_for(lambda: len(tunnel_reads(sim)) >= settled + 3)
    await run.stop()
    assert run.errors == {}
    # one event, on the flipped tunnel's own watcher
    assert [(i, e["tunnel_id"], e["status"]) for i, e in run.all_events()] == [(17, flipped, "down")]
    reads = tunnel_reads(sim)
    assert all(r.path.endswith("/cfd_tunnel") for r in reads), "a tunnel was read by id: the poll is not shared"
    assert len({r.query.get("page") for r in reads}) == 1
    assert sim.requests_matching("/connections$") == []
    assert HealthPoller.active() == {}  # the poller stopped with its last watcher


@pytest.mark.parametrize("shared_stream", MODES)
async def test_watchers_keep_their_own_selection_rule_and_events(ready_sim, shared_stream):
    sim = ready_sim
    web = sim.add_fleet("web-", 3)
    db = sim.add_fleet("db-", 2)
    sim.clear_requests()
    triggers = [
        CloudflareTunnelHealthTrigger(name_prefix="web-", poll_interval=0.3),
        CloudflareTunnelHealthTrigger(name_prefix="db-", poll_interval=0.3),
        # the same tunnels as the first, with another rule: "degraded" counts as healthy
        CloudflareTunnelHealthTrigger(name_prefix="web-", allowed_statuses=["healthy", "degraded"], poll_interval=0.3),
        CloudflareTunnelHealthTrigger(tunnel_ids=[db[1], web[0]], poll_interval=0.3),
    ]
    run = Watchers(triggers, shared_stream=shared_stream)
    await wait_for(lambda: len(tunnel_reads(sim)) >= 3)
    sim.set_tunnel_status(web[0], "degraded")
    await wait_for(lambda: len(run.events[0]) == 1 and len(run.events[2]) == 1 and len(run.events[3]) == 1)
    sim.set_tunnel_status(db[1], "down")
    await wait_for(lambda: len(run.events[1]) == 1 and len(run.events[3]) == 2)
    settled = len(tunnel_reads(sim))
    await wait_for(lambda: len(tunnel_reads(sim)) >= settled + 3)
    await run.stop()
    assert run.errors == {}
    summary = {i: [(e["tunnel_id"], e["status"], e["healthy"]) for e in events] for i, events in run.events.items()}
    assert summary == {
        0: [(web[0], "degraded", False)],
        1: [(db[1], "down", False)],
        2: [(web[0], "degraded", True)],  # its own rule: still healthy, but the status changed
        3: [(web[0], "degraded", False), (db[1], "down", False)],
    }
    # two prefixes and two ids: the account's one list is the cheapest read that answers them all
    assert {r.query.get("include_prefix") for r in tunnel_reads(sim)} == {None}


async def test_a_watcher_that_joins_later_takes_its_baseline_from_the_next_poll(fleet):
    sim, ids = fleet
    first = Watchers([CloudflareTunnelHealthTrigger(tunnel_ids=[ids[0]], poll_interval=0.2)])
    await wait_for(lambda: len(tunnel_reads(sim)) >= 2)
    sim.set_tunnel_status(ids[5], "down")  # before the second watcher starts: its baseline, not an event
    second = Watchers([CloudflareTunnelHealthTrigger(tunnel_ids=[ids[5]], poll_interval=0.2)])
    await asyncio.sleep(0.8)
    assert second.events[0] == []
    sim.set_tunnel_status(ids[5], "healthy")
    await wait_for(lambda: second.events[0])
    await second.stop()
    await first.stop()
    assert [(e["previous_status"], e["status"]) for e in second.events[0]] == [("down", "healthy")]
    assert first.events[0] == []
    assert len(HealthPoller.active()) == 0


async def test_different_intervals_or_connections_poll_apart(fleet):
    _, ids = fleet
    run = Watchers(
        [
            CloudflareTunnelHealthTrigger(tunnel_ids=[ids[0]], poll_interval=0.2),
            CloudflareTunnelHealthTrigger(tunnel_ids=[ids[1]], poll_interval=0.25),
        ]
    )
    await wait_for(lambda: len(HealthPoller.active()) == 2)
    await run.stop()
    assert run.errors == {}


async def test_a_malformed_watcher_ends_alone(fleet):
    sim, ids = fleet
    run = Watchers(
        [
            CloudflareTunnelHealthTrigger(tunnel_ids=["nope"], poll_interval=0.2),
            CloudflareTunnelHealthTrigger(tunnel_ids=[ids[0]], poll_interval=0.2),
        ]
    )
    await wait_for(lambda: 0 in run.errors and len(tunnel_reads(sim)) >= 3)
    await run.stop()
    assert isinstance(run.errors[0], CloudflareConfigError)
    assert 1 not in run.errors


async def test_a_scoped_token_watcher_reports_hidden_ids_once_never_as_deleted(fleet, set_connection, capsys):
    sim, ids = fleet
    sim.add_token("scoped-watch-token-19", tunnels=ids[:3])
    set_connection(password="scoped-watch-token-19", host=sim.base_url, extra={"account_id": sim.account_id})
    sim.clear_requests()
    trigger = CloudflareTunnelHealthTrigger(tunnel_ids=[ids[0], ids[1], ids[2], ids[40]], poll_interval=0.2)
    run = Watchers([trigger])
    await wait_for(lambda: len(sim.requests_matching("/cfd_tunnel$")) >= 4)
    sim.set_tunnel_status(ids[1], "down")
    await wait_for(lambda: run.events[0])
    await run.stop()
    assert [(e["tunnel_id"], e["status"]) for e in run.events[0]] == [(ids[1], "down")]
    hidden = sim.requests_matching(ids[40] + "$")
    assert hidden
    assert {r.status for r in hidden} == {403}
    logged = capsys.readouterr().out
    assert "Watching 4 tunnel(s) of the connection's account every 0.2 s" in logged
    assert "Baseline of 4 tunnel(s) of the connection's account: 1 of 4 tunnel(s) unhealthy" in logged
    assert f"{ids[40]}: not visible to this token (HTTP 403)" in logged  # the baseline says so
    assert "deleted" not in logged


class TestStrictRules:
    @pytest.fixture
    def strict(self, ready_sim):
        sim = ready_sim
        ids = sim.add_fleet("edge-", 4, connections=4)
        sim.clear_requests()
        return sim, ids

    async def test_connections_are_read_once_per_tunnel_for_every_watcher(self, strict):
        sim, ids = strict
        triggers = [
            CloudflareTunnelHealthTrigger(tunnel_ids=[i], min_live_connections=4, poll_interval=0.3) for i in ids
        ]
        triggers.append(CloudflareTunnelHealthTrigger(name_prefix="edge-", min_colos=2, poll_interval=0.3))
        run = Watchers(triggers)
        await wait_for(lambda: len(sim.requests_matching("/cfd_tunnel$")) >= 3)
        await run.stop()
        lists = len(sim.requests_matching("/cfd_tunnel$"))
        per_tunnel = [len(sim.requests_matching(f"{i}/connections$")) for i in ids]
        assert all(lists - 1 <= n <= lists for n in per_tunnel), (lists, per_tunnel)

    async def test_a_bound_reuses_reads_until_the_status_fields_change_or_it_passes(self, strict):
        sim, ids = strict
        trigger = CloudflareTunnelHealthTrigger(
            name_prefix="edge-", min_live_connections=4, poll_interval=0.2, connections_max_age=3600
        )
        run = Watchers([trigger])
        await wait_for(lambda: len(sim.requests_matching("/cfd_tunnel$")) >= 4)
        assert len(sim.requests_matching("/connections$")) == len(ids)  # the first poll only
        sim.set_tunnel_status(ids[2], "degraded")  # a status change: that tunnel is read again
        await wait_for(lambda: run.events[0])
        sim.set_connector(ids[3], live=2)  # 2 of 4 connections, status still healthy: unseen within the bound
        start = len(sim.requests_matching("/cfd_tunnel$"))
        await wait_for(lambda: len(sim.requests_matching("/cfd_tunnel$")) >= start + 3)
        await run.stop()
        reads = [len(sim.requests_matching(f"{i}/connections$")) for i in ids]
        assert reads[2] == 1  # degraded: its status alone fails it, no read needed
        assert reads[0] == reads[1] == reads[3] == 1
        assert [(e["tunnel_id"], e["status"]) for e in run.events[0]] == [(ids[2], "degraded")]

    async def test_without_a_bound_every_poll_reads_them(self, strict):
        sim, ids = strict
        run = Watchers([CloudflareTunnelHealthTrigger(name_prefix="edge-", min_live_connections=4, poll_interval=0.2)])
        await wait_for(lambda: len(sim.requests_matching("/cfd_tunnel$")) >= 3)
        sim.set_connector(ids[3], live=2)
        await wait_for(lambda: run.events[0])
        await run.stop()
        assert [(e["tunnel_id"], e["healthy"], e["reasons"]) for e in run.events[0]] == [
            (ids[3], False, ["2 live connection(s), needs 4"])
        ]

    def test_a_bad_bound_is_refused(self):
        from airflow_provider_cftunnel.health_plan import check_max_age

        with pytest.raises(CloudflareConfigError, match="connections_max_age"):
            check_max_age(-1)
        with pytest.raises(CloudflareConfigError, match="connections_max_age"):
            check_max_age("300")
        assert check_max_age(300) == 300.0
