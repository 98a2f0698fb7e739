"""Fleets of tunnels: the ``fleets`` scenario key and ``add_fleet``, settable tunnel status, the tunnel list's
filters and paging at fleet scale, and their control endpoints. Everything is checked over HTTP."""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_provider_cftunnel.testing import (
    DEFAULT_ACCOUNT_ID,
    OTHER_ACCOUNT_ID,
    ScenarioError,
    fleet_tunnel_id,
    normalize_scenario,
)
from airflow_provider_cftunnel.testing.__main__ import main
from tests.testing.sim_helpers import Client, assert_error

if TYPE_CHECKING:
    from airflow_provider_cftunnel.testing import CloudflareSimulator
    from tests.support.fakes import FakeClock

STATUSES = {"down": 3, "degraded": 2, "inactive": 1}
FLEET = {"prefix": "prod-web-", "count": 1000, "statuses": STATUSES}

Start = Callable[..., tuple["CloudflareSimulator", Client]]


@pytest.fixture
def start(cloudflare_simulator_factory, make_client, clock: FakeClock) -> Start:
    """Start a simulator on the fake clock with ``scenario``; return it and a client."""

    def make(scenario: dict[str, Any], **kwargs: Any) -> tuple[CloudflareSimulator, Client]:
        sim = cloudflare_simulator_factory(scenario, clock=clock, **kwargs)
        return sim, make_client(sim)

    return make


def list_path(sim: CloudflareSimulator, account_id: str | None = None) -> str:
    return f"/accounts/{account_id or sim.account_id}/cfd_tunnel"


def listed(client: Client, **params: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    response = client.get(list_path(client.sim), params={"per_page": 1000, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["result"], body["result_info"]


def list_all(client: Client, **params: Any) -> list[dict[str, Any]]:
    """Every page, as a client following total_pages does."""
    tunnels: list[dict[str, Any]] = []
    page = 1
    while True:
        result, info = listed(client, page=page, **params)
        tunnels += result
        if page >= info["total_pages"]:
            return tunnels
        page += 1


def expected_status(client: Client, tunnel: dict[str, Any]) -> str:
    """Cloudflare's definition, computed from the connections endpoint and the tunnel's activity times."""
    clients = client.result(client.connections_path(tunnel["id"]))
    conns = [conn for connector in clients for conn in connector["conns"]]
    live = sum(1 for conn in conns if conn["is_pending_reconnect"] is False)
    if live:
        return "degraded" if len(conns) > live else "healthy"
    return "down" if tunnel["conns_active_at"] or clients else "inactive"


def assert_agrees(client: Client, tunnel_id: str) -> str:
    """The tunnel endpoint, the list and the connections endpoint tell one story; return the status."""
    tunnel = client.result(client.tunnel_path(tunnel_id))
    (in_list,) = client.result(list_path(client.sim), params={"uuid": tunnel_id})
    assert in_list == tunnel
    assert tunnel["status"] == expected_status(client, tunnel) == client.sim.tunnel_status(tunnel_id)
    return str(tunnel["status"])


# ---- the fleets scenario key -----------------------------------------------------------------------------------


def test_fleet_scenario_makes_named_tunnels_with_those_statuses(start: Start) -> None:
    sim, client = start({"up_after": 0, "fleets": [FLEET]})
    tunnels, info = listed(client, include_prefix="prod-web-")
    assert info == {"page": 1, "per_page": 1000, "count": 1000, "total_count": 1000, "total_pages": 1}
    assert [t["name"] for t in tunnels] == [f"prod-web-{i:04d}" for i in range(1, 1001)]
    assert [t["id"] for t in tunnels] == [fleet_tunnel_id(DEFAULT_ACCOUNT_ID, "prod-web-", i) for i in range(1000)]
    assert Counter(t["status"] for t in tunnels) == {"healthy": 994, **STATUSES}
    assert sim.tunnel_statuses("prod-web-") == {t["id"]: t["status"] for t in tunnels}
    # the default tunnel is still there, first
    assert [t["name"] for t in listed(client)[0]][:2] == ["cfsim-tunnel", "prod-web-0001"]


def test_fleet_statuses_match_their_connectors(start: Start) -> None:
    _, client = start({"up_after": 0, "fleets": [{**FLEET, "replicas": 2}]})
    tunnels = {t["id"]: t for t in listed(client, include_prefix="prod-web-")[0]}
    odd = [tid for tid, t in tunnels.items() if t["status"] != "healthy"]
    for tunnel_id in [*odd, next(iter(tunnels))]:
        status = assert_agrees(client, tunnel_id)
        clients = client.result(client.connections_path(tunnel_id))
        tunnel = tunnels[tunnel_id]
        if status == "healthy":
            assert [len(c["conns"]) for c in clients] == [4, 4]
        elif status == "degraded":
            pending = [conn for c in clients for conn in c["conns"] if conn["is_pending_reconnect"]]
            assert len(pending) == 1
            assert len(clients) == 2
        elif status == "down":
            assert clients == []  # Cloudflare stopped tracking its connectors
            assert tunnel["conns_active_at"] < tunnel["conns_inactive_at"]  # it ran before
        else:
            assert clients == []
            assert tunnel["conns_active_at"] is None


def test_fleets_are_deterministic_and_spread(start: Start) -> None:
    first = normalize_scenario({"fleets": [FLEET]})
    assert normalize_scenario({"fleets": [FLEET]}) == first
    assert normalize_scenario(first) == first, "the normalized scenario loads back as itself"
    names = {
        t["name"]: bool(t["connectors"] and len(t["connectors"][0]["timeline"]) == 1)
        for t in first["accounts"][0]["tunnels"][1:]
    }
    special = sorted(int(name.removeprefix("prod-web-")) for name, plain in names.items() if not plain)
    assert len(special) == 4  # down (3) and inactive (1); degraded differs only in its counts
    assert special[-1] - special[0] > 100, "the odd tunnels are spread over the fleet, not bunched"


def test_fleet_in_another_account_with_up_after(start: Start, clock: FakeClock) -> None:
    scenario = {
        "accounts": [{"tunnels": []}, {"id": OTHER_ACCOUNT_ID}],
        "fleets": [{"prefix": "edge-", "count": 12, "account_id": OTHER_ACCOUNT_ID, "up_after": 5, "connections": 2}],
    }
    sim, client = start(scenario)
    assert sim.tunnel_statuses(account_id=DEFAULT_ACCOUNT_ID) == {}
    path = list_path(sim, OTHER_ACCOUNT_ID)
    before = client.result(path, params={"per_page": 100})
    assert [t["name"] for t in before][:2] == ["edge-01", "edge-02"]
    assert {t["status"] for t in before} == {"inactive"}
    clock.advance(5)
    after = client.result(path, params={"per_page": 100})
    assert {t["status"] for t in after} == {"healthy"}
    connectors = client.result(f"{path}/{after[0]['id']}/connections")
    assert [len(c["conns"]) for c in connectors] == [2]


@pytest.mark.parametrize(
    ("fleet", "message"),
    [
        ({"count": 3}, "prefix"),
        ({"prefix": "a-"}, "count"),
        ({"prefix": "a-", "count": 0}, "count"),
        ({"prefix": "a-", "count": 3, "size": 1}, "size"),
        ({"prefix": "a-", "count": 3, "replicas": 26}, "replicas"),
        ({"prefix": "a-", "count": 3, "connections": 0}, "connections"),
        ({"prefix": "a-", "count": 3, "statuses": {"healthy": 1}}, "healthy"),
        ({"prefix": "a-", "count": 3, "statuses": {"down": 2, "inactive": 2}}, "fleet has 3"),
        ({"prefix": "a-", "count": 3, "account_id": "nope"}, "account_id"),
        ({"prefix": "a-", "count": 3, "account_id": OTHER_ACCOUNT_ID}, "not an account"),
    ],
)
def test_invalid_fleets(fleet: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        normalize_scenario({"fleets": [fleet]})


def test_the_same_fleet_twice_is_an_error() -> None:
    with pytest.raises(ScenarioError, match="used twice"):
        normalize_scenario({"fleets": [FLEET, FLEET]})


def test_timelines_may_start_before_the_simulator(start: Start) -> None:
    timeline = [{"at": -7200, "live": 4}, {"at": -60, "live": 0, "pending": 4}]
    _, client = start({"accounts": [{"tunnels": [{"connectors": [{"timeline": timeline}]}]}]})
    tunnel = client.result(client.tunnel_path())
    assert tunnel["status"] == "down"
    assert tunnel["created_at"] < tunnel["conns_active_at"] < tunnel["conns_inactive_at"]
    (connector,) = client.result(client.connections_path())
    assert connector["run_at"] == tunnel["conns_active_at"]
    with pytest.raises(ScenarioError, match="at must be a number"):
        normalize_scenario({"accounts": [{"tunnels": [{"connectors": [{"timeline": [{"at": float("nan")}]}]}]}]})


# ---- add_fleet ---------------------------------------------------------------------------------------------------


def test_add_fleet_at_runtime(sim: CloudflareSimulator, client: Client, clock: FakeClock) -> None:
    clock.advance(100)
    ids = sim.add_fleet("batch-", 50, up_after=10, statuses={"down": 2})
    assert ids == [fleet_tunnel_id(sim.account_id, "batch-", i) for i in range(50)]
    assert Counter(sim.tunnel_statuses("batch-").values()) == {"inactive": 48, "down": 2}
    clock.advance(10)
    tunnels, info = listed(client, include_prefix="batch-")
    assert info["total_count"] == 50
    assert Counter(t["status"] for t in tunnels) == {"healthy": 48, "down": 2}
    for tunnel in tunnels:
        assert_agrees(client, tunnel["id"])
    with pytest.raises(ValueError, match="already exists"):
        sim.add_fleet("batch-", 50)
    with pytest.raises(ValueError, match="count"):
        sim.add_fleet("other-", 0)
    with pytest.raises(KeyError):
        sim.add_fleet("other-", 1, account_id=OTHER_ACCOUNT_ID)


# ---- set_tunnel_status -----------------------------------------------------------------------------------------


def test_set_status_round_trip(sim: CloudflareSimulator, client: Client, clock: FakeClock) -> None:
    tunnel_id = sim.tunnel_id
    assert assert_agrees(client, tunnel_id) == "healthy"
    before = client.result(client.connections_path())

    clock.advance(1)
    assert sim.set_tunnel_status(tunnel_id, "down") == "down"
    assert assert_agrees(client, tunnel_id) == "down"
    (dropped,) = client.result(client.connections_path())
    assert dropped["id"] == before[0]["id"]
    assert [c["is_pending_reconnect"] for c in dropped["conns"]] == [True] * 4
    assert client.result(client.tunnel_path())["conns_inactive_at"] is not None

    clock.advance(1)
    assert sim.set_tunnel_status(tunnel_id, "degraded") == "degraded"
    assert assert_agrees(client, tunnel_id) == "degraded"
    (degraded,) = client.result(client.connections_path())
    assert [c["is_pending_reconnect"] for c in degraded["conns"]] == [False, False, False, True]

    clock.advance(1)
    assert sim.set_tunnel_status(tunnel_id, "healthy") == "healthy"
    assert assert_agrees(client, tunnel_id) == "healthy"
    (healthy,) = client.result(client.connections_path())
    assert healthy["id"] == before[0]["id"], "the same cloudflared, its connections reopened"
    assert {c["id"] for c in healthy["conns"]}.isdisjoint(c["id"] for c in before[0]["conns"])
    assert client.result(client.tunnel_path())["conns_inactive_at"] is None


def test_down_with_tracking_then_back_up(sim: CloudflareSimulator, client: Client, clock: FakeClock) -> None:
    sim.add_connector(live=2)  # two replicas: 4 + 2 connections
    clock.advance(1)
    sim.set_tunnel_status(None, "down", tracking=30)
    assert len(client.result(client.connections_path())) == 2
    clock.advance(30)
    assert client.result(client.connections_path()) == []
    assert assert_agrees(client, sim.tunnel_id) == "down"
    sim.set_tunnel_status(None, "healthy")
    clients = client.result(client.connections_path())
    assert sorted(len(c["conns"]) for c in clients) == [2, 4], "shaped as when it was last live"
    assert {c["id"] for c in clients}.isdisjoint({sim.connector_id}), "new cloudflared processes, new ids"
    assert assert_agrees(client, sim.tunnel_id) == "healthy"
    clock.advance(1)
    sim.set_tunnel_status(None, "down", tracking=0)
    assert client.result(client.connections_path()) == []
    clock.advance(1)
    sim.set_tunnel_status(None, "degraded")
    assert assert_agrees(client, sim.tunnel_id) == "degraded"


def test_inactive_only_for_a_tunnel_that_never_ran(sim: CloudflareSimulator, client: Client) -> None:
    with pytest.raises(ValueError, match="ran before"):
        sim.set_tunnel_status(None, "inactive")
    fresh = sim.add_tunnel(name="fresh")
    with pytest.raises(ValueError, match="never ran"):
        sim.set_tunnel_status(fresh, "down")
    assert sim.set_tunnel_status(fresh, "inactive") == "inactive"
    assert assert_agrees(client, fresh) == "inactive"
    assert sim.set_tunnel_status(fresh, "healthy") == "healthy"
    assert [len(c["conns"]) for c in client.result(client.connections_path(fresh))] == [4]


def test_a_planned_run_is_cancelled(start: Start, clock: FakeClock) -> None:
    sim, client = start({"up_after": 5})
    assert sim.set_tunnel_status(None, "inactive") == "inactive"
    clock.advance(10)
    assert assert_agrees(client, sim.tunnel_id) == "inactive"


def test_status_change_at_a_later_time(sim: CloudflareSimulator, client: Client, clock: FakeClock) -> None:
    assert sim.set_tunnel_status(None, "down", at=sim.elapsed() + 20) == "healthy"
    clock.advance(19)
    assert assert_agrees(client, sim.tunnel_id) == "healthy"
    clock.advance(1)
    assert assert_agrees(client, sim.tunnel_id) == "down"
    with pytest.raises(ValueError, match="past"):
        sim.set_tunnel_status(None, "healthy", at=sim.elapsed() - 1)


def test_set_status_errors(sim: CloudflareSimulator) -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        sim.set_tunnel_status(None, "sleeping")
    with pytest.raises(ValueError, match="tracking"):
        sim.set_tunnel_status(None, "down", tracking=-1)
    with pytest.raises(KeyError):
        sim.set_tunnel_status("00000000-0000-4000-8000-000000000000", "down")
    sim.delete_tunnel(sim.tunnel_id)
    with pytest.raises(ValueError, match="deleted"):
        sim.set_tunnel_status(None, "healthy")


def test_fleet_tunnels_flip_and_the_list_follows(start: Start) -> None:
    sim, client = start({"up_after": 0, "fleets": [FLEET]})
    statuses = sim.tunnel_statuses("prod-web-")
    healthy = [tid for tid, status in statuses.items() if status == "healthy"][:5]
    down = [tid for tid, status in statuses.items() if status == "down"]
    for tunnel_id in healthy:
        sim.set_tunnel_status(tunnel_id, "down")
    for tunnel_id in down:
        sim.set_tunnel_status(tunnel_id, "healthy")
    listed_down = {t["id"] for t in listed(client, include_prefix="prod-web-", status="down")[0]}
    assert listed_down == set(healthy)
    for tunnel_id in [*healthy, *down]:
        assert_agrees(client, tunnel_id)


# ---- the list: filters and paging ------------------------------------------------------------------------------


@pytest.fixture
def big(start: Start) -> tuple[CloudflareSimulator, Client]:
    """5,001 tunnels: the default one, 4,000 prod-web-, 1,000 prod-db- (4 of them deleted)."""
    sim, client = start(
        {
            "up_after": 0,
            "fleets": [
                {"prefix": "prod-web-", "count": 4000, "statuses": {"down": 30, "degraded": 20, "inactive": 10}},
                {"prefix": "prod-db-", "count": 1000, "statuses": {"down": 1}},
            ],
        }
    )
    for index in (0, 10, 500, 999):
        sim.delete_tunnel(fleet_tunnel_id(sim.account_id, "prod-db-", index))
    return sim, client


def test_all_pages_of_per_page_1000(big: tuple[CloudflareSimulator, Client]) -> None:
    _, client = big
    infos = [listed(client, page=page)[1] for page in range(1, 8)]
    assert [i["count"] for i in infos] == [1000, 1000, 1000, 1000, 997, 0, 0]
    assert {(i["total_count"], i["total_pages"], i["per_page"]) for i in infos} == {(4997, 5, 1000)}
    everything = list_all(client)
    assert len({t["id"] for t in everything}) == 4997
    assert all(t["deleted_at"] is None for t in everything)


def test_prefix_filters(big: tuple[CloudflareSimulator, Client]) -> None:
    _, client = big
    web = list_all(client, include_prefix="prod-web-")
    assert len(web) == 4000
    assert all(t["name"].startswith("prod-web-") for t in web)
    assert len(list_all(client, include_prefix="prod-", exclude_prefix="prod-web-")) == 996
    assert [t["name"] for t in list_all(client, exclude_prefix="prod-")] == ["cfsim-tunnel"]
    assert [t["name"] for t in list_all(client, include_prefix="prod-web-4")] == ["prod-web-4000"]
    assert len(list_all(client, include_prefix="prod-web-3")) == 1000


def test_status_filter_with_paging(big: tuple[CloudflareSimulator, Client]) -> None:
    sim, client = big
    expected = Counter(sim.tunnel_statuses().values())
    assert expected["down"] >= 30
    assert (expected["degraded"], expected["inactive"]) == (20, 10)
    for status in ("down", "degraded", "inactive", "healthy"):
        found = list_all(client, status=status)
        assert len(found) == expected[status], status
        assert {t["status"] for t in found} == {status}
    healthy = expected["healthy"]
    page, info = listed(client, status="healthy", page=5)
    assert (len(page), info["total_count"], info["total_pages"]) == (healthy - 4000, healthy, 5)


def test_deleted_tunnels_and_is_deleted(big: tuple[CloudflareSimulator, Client]) -> None:
    sim, client = big
    deleted = list_all(client, is_deleted="true")
    assert sorted(t["name"] for t in deleted) == ["prod-db-0001", "prod-db-0011", "prod-db-0501", "prod-db-1000"]
    assert all(t["deleted_at"] for t in deleted)
    assert len(list_all(client, is_deleted="false")) == len(list_all(client)) == 4997
    assert len(list_all(client, is_deleted="false", include_prefix="prod-db-")) == 996
    assert len(list_all(client, is_deleted="True", include_prefix="prod-db-")) == 4
    # a deleted tunnel is still there by id (the tunnel endpoint), just not listed by default
    assert client.result(client.tunnel_path(deleted[0]["id"]))["deleted_at"] == deleted[0]["deleted_at"]
    assert sim.tunnel_statuses("prod-db-").keys().isdisjoint(t["id"] for t in deleted)


def test_legacy_default_lists_deleted_tunnels(start: Start) -> None:
    sim, client = start({"up_after": 0, "fleets": [{"prefix": "x-", "count": 3}], "legacy_list_deleted": True})
    sim.delete_tunnel(fleet_tunnel_id(sim.account_id, "x-", 1))
    assert len(listed(client)[0]) == 4
    assert len(listed(client, is_deleted="false")[0]) == 3
    assert sim.scenario["legacy_list_deleted"] is True


def test_name_and_uuid_filters(big: tuple[CloudflareSimulator, Client]) -> None:
    sim, client = big
    tunnel_id = fleet_tunnel_id(sim.account_id, "prod-web-", 1233)
    assert [t["id"] for t in list_all(client, name="prod-web-1234")] == [tunnel_id]
    assert [t["name"] for t in list_all(client, uuid=tunnel_id)] == ["prod-web-1234"]
    assert list_all(client, name="prod-web-1234", exclude_prefix="prod-web-") == []
    assert list_all(client, name="prod-web-") == []  # name is an exact match, not a prefix


@pytest.mark.parametrize("params", [{"per_page": 1001}, {"page": -1}, {"is_deleted": "yes"}, {"status": "up"}])
def test_bad_list_parameters(big: tuple[CloudflareSimulator, Client], params: dict[str, Any]) -> None:
    _, client = big
    assert_error(client.get(list_path(client.sim), params=params), 400, 1001)


def test_a_page_of_1000_is_fast(big: tuple[CloudflareSimulator, Client], clock: FakeClock) -> None:
    """A generous bound: a page of 1,000 out of 5,001 tunnels was about 6 ms on a shared 2-core machine."""
    _, client = big
    times = []
    for page in (1, 2, 3, 4, 5, 1, 2, 3, 4, 5):
        clock.advance(1)
        started = time.perf_counter()
        listed(client, page=page, include_prefix="prod-", is_deleted="false")
        times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.25, times


# ---- control endpoints and the command line --------------------------------------------------------------------


def control(sim: CloudflareSimulator, method: str, route: str, body: Any = None) -> requests.Response:
    with requests.Session() as http:
        http.trust_env = False
        return http.request(method, sim.control_url + route, json=body, timeout=10)


def test_control_fleets_and_tunnel_status(sim: CloudflareSimulator, client: Client) -> None:
    response = control(sim, "POST", "/fleets", {"prefix": "ctl-", "count": 20, "statuses": {"degraded": 1}})
    assert response.status_code == 200, response.text
    ids = response.json()["tunnel_ids"]
    assert ids == [fleet_tunnel_id(sim.account_id, "ctl-", i) for i in range(20)]
    statuses = control(sim, "GET", "/tunnel-statuses").json()
    assert Counter(statuses[i] for i in ids) == {"healthy": 19, "degraded": 1}
    assert statuses[sim.tunnel_id] == "healthy"

    response = control(sim, "POST", "/tunnel-status", {"tunnel_id": ids[3], "status": "down"})
    assert response.json() == {"tunnel_id": ids[3], "status": "down"}
    assert assert_agrees(client, ids[3]) == "down"
    response = control(sim, "POST", "/tunnel-status", {"status": "down", "tracking": 0})
    assert response.json() == {"tunnel_id": sim.tunnel_id, "status": "down"}
    assert client.result(client.connections_path()) == []


@pytest.mark.parametrize(
    ("route", "body", "status"),
    [
        ("/fleets", {"prefix": "x-"}, 400),
        ("/fleets", {"prefix": "x-", "count": 2, "statuses": {"down": 3}}, 400),
        ("/tunnel-status", {"status": "sleeping"}, 400),
        ("/tunnel-status", {"tunnel_id": "00000000-0000-4000-8000-000000000000", "status": "down"}, 404),
        ("/tunnel-status", {"status": "inactive"}, 400),
    ],
)
def test_control_errors(sim: CloudflareSimulator, route: str, body: dict[str, Any], status: int) -> None:
    response = control(sim, "POST", route, body)
    assert response.status_code == status, response.text
    assert response.json()["error"]


NO_CREDENTIALS = {"api_tokens": [], "global_keys": []}  # --print-scenario prints the scenario's credentials


def test_cli_fleet_flag(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps({**NO_CREDENTIALS, "up_after": 0}))
    assert main(["--scenario", str(path), "--fleet", "prod-web-:12", "--fleet", "a:b:3", "--print-scenario"]) == 0
    tunnels = json.loads(capsys.readouterr().out)["accounts"][0]["tunnels"]
    names = ["cfsim-tunnel", *(f"prod-web-{i:02d}" for i in range(1, 13)), "a:b1", "a:b2", "a:b3"]
    assert [t["name"] for t in tunnels] == names
    with pytest.raises(SystemExit) as exit_info:
        main(["--fleet", "prod-web-", "--print-scenario"])
    assert exit_info.value.code == 2
    assert "PREFIX:COUNT" in capsys.readouterr().err


def test_cli_fleet_flag_adds_to_the_fleets_of_a_scenario_file(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "scenario.json"
    scenario = {**NO_CREDENTIALS, "accounts": [{"tunnels": []}], "fleets": [{"prefix": "a-", "count": 2}]}
    path.write_text(json.dumps(scenario))
    assert main(["--scenario", str(path), "--fleet", "b-:2", "--print-scenario"]) == 0
    tunnels = json.loads(capsys.readouterr().out)["accounts"][0]["tunnels"]
    assert [t["name"] for t in tunnels] == ["a-1", "a-2", "b-1", "b-2"]


def test_fleet_answers_validate_against_cloudflares_schema(start: Start, session: requests.Session) -> None:
    from tests.support.schema import Validated, check

    sim, client = start({"up_after": 0, "fleets": [FLEET]})
    seen = Validated()
    session.hooks["response"].append(lambda response, *args, **kwargs: check(response, seen))
    tunnels, _ = listed(client, include_prefix="prod-web-")
    for tunnel in tunnels:
        if tunnel["status"] != "healthy":
            client.get(client.connections_path(tunnel["id"]))
            client.get(client.tunnel_path(tunnel["id"]))
    sim.set_tunnel_status(tunnels[0]["id"], "down", tracking=60)
    client.get(client.connections_path(tunnels[0]["id"]))
    assert seen.tunnel_statuses == {"healthy", "degraded", "down", "inactive"}
    assert len(seen.operations) == 3
