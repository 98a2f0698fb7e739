"""Many health watchers, one poll, through the real triggerer: 200 assets, one watcher per tunnel, one DAG.

A fleet of ``WATCHERS`` tunnels (``svc-001``...) in the simulator, and ``watcher_dags/cftunnel_watcher_fleet.py``
(a folder of its own: it needs its environment to parse) giving each its own asset and
``AssetWatcher(CloudflareTunnelHealthTrigger(tunnel_ids=[id]))``, polling every
``INTERVAL`` seconds; one DAG scheduled on any of the assets. Airflow's four components run on loopback
(:class:`~tests.support.watcher_fleet.WatcherFleet`); the simulator runs in this process and logs every request.

What it checks, once every watcher has taken its baseline: the watchers together cost at most 2 tunnel requests
per poll interval (the simulator's request log, over several intervals; on Airflow 3.3 through the triggerer's
shared stream, before through the in-process poller), every one answered 200; then one tunnel goes down and
exactly one asset event follows, on that tunnel's asset, with its payload, and exactly one run of the DAG holding
it; no other event while nothing else changes; every process started is gone afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from airflow_provider_cftunnel.testing import CloudflareSimulator
from tests.leak_guard import register_secret
from tests.support.watcher_fleet import WatcherFleet

AIRFLOW_VERSION = tuple(int(part) for part in version("apache-airflow").split(".")[:2])

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(AIRFLOW_VERSION < (3, 0), reason="asset watchers exist from Airflow 3.0"),
]

WATCHERS = 200
INTERVAL = 5.0
#: Poll intervals over which the requests are counted.
MEASURED_INTERVALS = 4
#: The most tunnel requests the whole fleet of watchers may make in one interval.
MAX_PER_INTERVAL = 2
FLIPPED = 137
STARTUP_DEADLINE = 300.0
BASELINE_DEADLINE = 240.0
RUN_DEADLINE = 120.0


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[WatcherFleet]:
    """The simulator with ``WATCHERS`` healthy tunnels and Airflow watching them; everything stopped afterwards."""
    with CloudflareSimulator({"up_after": 0}) as sim:
        for secret in (sim.api_token, sim.account_token, sim.global_key):
            register_secret(secret)
        ids = sim.add_fleet("svc-", WATCHERS)
        width = len(str(WATCHERS))  # the simulator's names: the prefix, then the number padded to the count's width
        names = [f"svc-{i:0{width}d}" for i in range(1, WATCHERS + 1)]
        watched = WatcherFleet(tmp_path, sim, list(zip(names, ids, strict=True)), INTERVAL)
        try:
            watched.start(STARTUP_DEADLINE)
            yield watched
        finally:
            survivors = watched.stop()
            assert not survivors, f"processes left after stopping the Airflow components: {survivors}"


def test_200_watchers_share_one_poll_and_one_change_gives_one_event(fleet: WatcherFleet) -> None:
    fleet.wait(f"{WATCHERS} watchers' baselines", BASELINE_DEADLINE, lambda: fleet.baselines() >= WATCHERS)
    cost = fleet.per_interval(INTERVAL * MEASURED_INTERVALS)
    print(f"\n{WATCHERS} watchers, every {INTERVAL:g} s: {cost}")
    assert cost["requests"] >= MEASURED_INTERVALS - 1, f"the watchers stopped polling: {cost}"
    assert cost["busiest_interval"] <= MAX_PER_INTERVAL, f"{WATCHERS} watchers cost more than one poll: {cost}"
    assert cost["mean_per_interval"] <= MAX_PER_INTERVAL, cost
    assert cost["statuses"] == [200], cost

    name, tunnel_id = fleet.fleet[FLIPPED]
    flip = fleet.flip(FLIPPED, "down", RUN_DEADLINE)
    print(f"{name} down -> reacting run started after {flip['to_run_start_s']:.1f} s")
    fleet.per_interval(INTERVAL * 3)  # nothing else changes: no other event may follow
    runs = fleet.runs()
    assert len(runs) == 1, f"one change, yet runs: {[r['dag_run_id'] for r in runs]}"
    assert fleet.baselines() == WATCHERS, "a watcher restarted (a second baseline)"

    fleet.stop()
    db = fleet.database()
    assert [e["asset"] for e in db["events"]] == [f"{name}-health"], db["events"]
    payload = db["events"][0]["payload"]
    assert payload["tunnel_id"] == tunnel_id
    assert payload["tunnel_name"] == name
    assert (payload["previous_status"], payload["status"]) == ("healthy", "down")
    assert (payload["previous_healthy"], payload["healthy"]) == (True, False)
    assert payload["change"] == "changed"
    assert len(db["runs"]) == 1
    assert db["runs"][0]["run_type"] == "asset_triggered"
    assert db["runs"][0]["events"] == [db["events"][0]["id"]]
