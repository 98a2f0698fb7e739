"""The simulator's endpoints, authentication, timelines, tunnel status, pagination and mutation API."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from airflow_provider_cftunnel.testing import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_ACCOUNT_TOKEN,
    DEFAULT_API_TOKEN,
    DEFAULT_CONNECTOR_ID,
    DEFAULT_GLOBAL_KEY,
    DEFAULT_GLOBAL_KEY_EMAIL,
    DEFAULT_TUNNEL_ID,
    DISABLED_API_TOKEN,
    EXPIRED_API_TOKEN,
    NO_PERMISSION_API_TOKEN,
    OTHER_ACCOUNT_API_TOKEN,
    OTHER_ACCOUNT_ID,
    CloudflareSimulator,
    ScenarioError,
)
from tests.support.cloudflare_api import CONNECTION_KEYS, GLOBAL_KEY_HEADERS, INACTIVE_TOKEN_STATUSES
from tests.testing.sim_helpers import Client, assert_error

if TYPE_CHECKING:
    from tests.support.fakes import FakeClock

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def parse_ts(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)


def start_time(sim: CloudflareSimulator) -> datetime:
    """The wall-clock time the simulator counts from (what ``at: 0`` renders as)."""
    return datetime.fromtimestamp(sim._wall_epoch, UTC)


# ---- endpoints --------------------------------------------------------------------------------------------


def test_attributes_name_the_default_scenario(sim: CloudflareSimulator) -> None:
    assert sim.base_url == f"http://127.0.0.1:{sim.port}/client/v4"
    assert sim.port > 0
    assert sim.host == "127.0.0.1"
    assert sim.running
    assert (sim.account_id, sim.tunnel_id, sim.connector_id) == (
        DEFAULT_ACCOUNT_ID,
        DEFAULT_TUNNEL_ID,
        DEFAULT_CONNECTOR_ID,
    )
    assert sim.api_token == DEFAULT_API_TOKEN
    assert sim.account_token == DEFAULT_ACCOUNT_TOKEN
    assert (sim.global_key_email, sim.global_key) == (DEFAULT_GLOBAL_KEY_EMAIL, DEFAULT_GLOBAL_KEY)
    assert len(DEFAULT_ACCOUNT_ID) == 32
    assert UUID.match(DEFAULT_TUNNEL_ID)
    assert UUID.match(DEFAULT_CONNECTOR_ID)


def test_connector_endpoint_returns_a_client_object(sim: CloudflareSimulator, client: Client) -> None:
    response = client.get(client.connector_path())
    assert response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.content)
    body = response.json()
    assert set(body) == {"success", "errors", "messages", "result"}
    assert body["success"] is True
    connector = body["result"]
    assert connector["id"] == sim.connector_id
    assert connector["version"] == "2026.11.0"
    assert connector["arch"] == "linux_amd64"
    assert connector["config_version"] == 0
    assert isinstance(connector["features"], list)
    assert parse_ts(connector["run_at"]) == start_time(sim)
    conns = connector["conns"]
    assert len(conns) == 4
    assert len({c["id"] for c in conns}) == 4
    for conn in conns:
        assert set(conn) == set(CONNECTION_KEYS)
        assert UUID.match(conn["id"])
        assert conn["uuid"] == conn["id"]
        assert conn["client_id"] == sim.connector_id
        assert conn["client_version"] == "2026.11.0"
        assert conn["is_pending_reconnect"] is False
        assert conn["origin_ip"] == "203.0.113.10"
        assert parse_ts(conn["opened_at"]) == start_time(sim)
    assert [c["colo_name"] for c in conns] == ["DFW", "IAD", "DFW", "IAD"]


def test_connections_endpoint_lists_the_tunnel_connectors(sim: CloudflareSimulator, client: Client) -> None:
    body = client.get(client.connections_path()).json()
    assert [c["id"] for c in body["result"]] == [sim.connector_id]
    assert body["result"][0] == client.result(client.connector_path())
    assert body["result_info"] == {"page": 1, "per_page": 1, "count": 1, "total_count": 1, "total_pages": 1}


def test_tunnel_endpoint_returns_the_tunnel(sim: CloudflareSimulator, client: Client) -> None:
    tunnel = client.result(client.tunnel_path())
    assert tunnel["id"] == sim.tunnel_id
    assert tunnel["account_tag"] == sim.account_id
    assert tunnel["name"] == "cfsim-tunnel"
    assert tunnel["status"] == "healthy"
    assert tunnel["tun_type"] == "cfd_tunnel"
    assert tunnel["deleted_at"] is None
    assert tunnel["conns_inactive_at"] is None
    assert parse_ts(tunnel["conns_active_at"]) == start_time(sim)
    assert parse_ts(tunnel["created_at"]) < start_time(sim)
    assert tunnel["remote_config"] is False
    assert tunnel["config_src"] == "local"
    assert tunnel["metadata"] == {}
    assert "connections" not in tunnel, "Cloudflare dropped `connections` from tunnel objects on 2026-10-05"


def test_legacy_tunnel_connections_can_be_switched_on(cloudflare_simulator_factory, make_client) -> None:
    sim = cloudflare_simulator_factory({"up_after": 0, "legacy_tunnel_connections": True})
    client = make_client(sim)
    tunnel = client.result(client.tunnel_path())
    assert len(tunnel["connections"]) == 4
    assert {c["client_id"] for c in tunnel["connections"]} == {sim.connector_id}


def test_list_tunnels(sim: CloudflareSimulator, client: Client) -> None:
    body = client.get(f"/accounts/{sim.account_id}/cfd_tunnel").json()
    assert [t["id"] for t in body["result"]] == [sim.tunnel_id]
    assert body["result"][0] == client.result(client.tunnel_path())
    assert body["result_info"] == {"page": 1, "per_page": 20, "count": 1, "total_count": 1, "total_pages": 1}


def test_user_token_verify(client: Client) -> None:
    body = client.get("/user/tokens/verify").json()
    assert body["success"] is True
    assert re.fullmatch(r"[0-9a-f]{32}", body["result"]["id"])
    assert body["result"]["status"] == "active"
    assert body["messages"][0]["message"] == "This API Token is valid and active"


def test_account_token_verify(sim: CloudflareSimulator, client: Client) -> None:
    result = client.result(f"/accounts/{sim.account_id}/tokens/verify", token=sim.account_token)
    assert result["status"] == "active"
    assert result["id"] != client.result("/user/tokens/verify")["id"]


def test_user_endpoint_with_global_key_and_token(client: Client) -> None:
    by_key = client.result("/user", token=None, headers=GLOBAL_KEY_HEADERS)
    assert by_key["email"] == DEFAULT_GLOBAL_KEY_EMAIL
    assert re.fullmatch(r"[0-9a-f]{32}", by_key["id"])
    assert client.result("/user") == by_key


def test_global_key_reads_tunnel_endpoints(sim: CloudflareSimulator, client: Client) -> None:
    connector = client.result(client.connector_path(), token=None, headers=GLOBAL_KEY_HEADERS)
    assert connector["id"] == sim.connector_id
    assert client.result(client.tunnel_path(), token=None, headers=GLOBAL_KEY_HEADERS)["status"] == "healthy"


def test_account_token_reads_its_account(sim: CloudflareSimulator, client: Client) -> None:
    assert client.result(client.connections_path(), token=sim.account_token)[0]["id"] == sim.connector_id


def test_unknown_path_is_7000(client: Client) -> None:
    assert_error(client.get("/accounts"), 404, 7000)
    assert_error(client.get("/zones/abc"), 404, 7000)
    response = client.session.get(client.sim.root_url + "/v4/user")
    assert_error(response, 404, 7000)


def test_wrong_method_is_405(client: Client) -> None:
    assert_error(client.get(client.connector_path(), method="POST"), 405, 7001)
    assert_error(client.get("/user/tokens/verify", method="PUT"), 405, 7001)


def test_head_request_gets_headers_without_body(client: Client) -> None:
    response = client.get(client.tunnel_path(), method="HEAD")
    assert response.status_code == 405
    assert response.content == b""
    # the connection stays usable: the next answer is not mixed up with a stray body
    assert client.result(client.tunnel_path())["id"] == client.sim.tunnel_id


def test_delete_connections_forgets_a_connector(sim: CloudflareSimulator, client: Client) -> None:
    response = client.get(client.connections_path(), method="DELETE", params={"client_id": sim.connector_id})
    assert response.status_code == 200
    assert response.json() == {"success": True, "errors": [], "messages": [], "result": {}}
    assert_error(client.get(client.connector_path()), 404, 1003)
    assert client.result(client.connections_path()) == []


def test_keep_alive_connection_is_reused(sim: CloudflareSimulator, client: Client) -> None:
    import http.client

    conn = http.client.HTTPConnection(sim.host, sim.port, timeout=5)
    try:
        local_ports = set()
        for _ in range(5):
            conn.request("GET", "/client/v4" + client.connector_path(), headers={"Authorization": "Bearer x"})
            response = conn.getresponse()
            assert response.getheader("Content-Length") == str(len(response.read()))
            assert response.getheader("Connection") is None
            assert not response.will_close
            local_ports.add(conn.sock.getsockname()[1])
        assert len(local_ports) == 1, "all five requests went over one connection"
    finally:
        conn.close()


# ---- authentication -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "token", "headers", "status", "code"),
    [
        pytest.param("connector", None, {}, 400, 9106, id="no-credentials-account-endpoint"),
        pytest.param("/user/tokens/verify", None, {}, 400, 9106, id="no-credentials-verify"),
        pytest.param("/user", None, {}, 400, 9106, id="no-credentials-user"),
        pytest.param("connector", "no-such-token", {}, 403, 10000, id="unknown-token-account-endpoint"),
        pytest.param("tunnels", "no-such-token", {}, 403, 10000, id="unknown-token-list"),
        pytest.param("/user", "no-such-token", {}, 403, 10000, id="unknown-token-user"),
        pytest.param("/user/tokens/verify", "no-such-token", {}, 401, 1000, id="unknown-token-verify"),
        pytest.param("/user/tokens/verify", DEFAULT_ACCOUNT_TOKEN, {}, 401, 1000, id="account-token-user-verify"),
        pytest.param("account-verify", DEFAULT_API_TOKEN, {}, 401, 1000, id="user-token-account-verify"),
        pytest.param("/user", DEFAULT_ACCOUNT_TOKEN, {}, 403, 9109, id="account-token-user"),
        pytest.param("connector", DEFAULT_GLOBAL_KEY, {}, 400, 6003, id="global-key-as-bearer"),
        pytest.param("/user/tokens/verify", DEFAULT_GLOBAL_KEY, {}, 400, 6003, id="global-key-as-bearer-verify"),
        pytest.param("connector", OTHER_ACCOUNT_API_TOKEN, {}, 403, 9109, id="token-for-another-account"),
        pytest.param("connector", DISABLED_API_TOKEN, {}, 403, 10000, id="disabled-token"),
        pytest.param("connector", EXPIRED_API_TOKEN, {}, 403, 10000, id="expired-token"),
        pytest.param("connector", NO_PERMISSION_API_TOKEN, {}, 403, 10000, id="token-without-tunnel-read"),
        pytest.param(
            "connector",
            None,
            {"X-Auth-Email": DEFAULT_GLOBAL_KEY_EMAIL, "X-Auth-Key": "f" * 37},
            403,
            9103,
            id="wrong-global-key",
        ),
        pytest.param(
            "connector",
            None,
            {"X-Auth-Email": "someone@example.com", "X-Auth-Key": DEFAULT_GLOBAL_KEY},
            403,
            9103,
            id="wrong-email",
        ),
        pytest.param(
            "connector",
            None,
            {"X-Auth-Email": DEFAULT_GLOBAL_KEY_EMAIL, "X-Auth-Key": DEFAULT_API_TOKEN},
            400,
            6003,
            id="token-sent-as-global-key",
        ),
        pytest.param("connector", None, {"X-Auth-Email": DEFAULT_GLOBAL_KEY_EMAIL}, 400, 9106, id="email-without-key"),
        pytest.param(
            "connector", None, {"X-Auth-Email": "no-at-sign", "X-Auth-Key": "f" * 37}, 400, 6003, id="bad-email"
        ),
        pytest.param("/user/tokens/verify", None, GLOBAL_KEY_HEADERS, 401, 1000, id="global-key-cannot-verify-a-token"),
        pytest.param("connector", None, {"Authorization": "Basic dXNlcjpwYXNz"}, 400, 6003, id="basic-auth"),
        pytest.param("connector", None, {"Authorization": "Bearer"}, 400, 6003, id="empty-bearer"),
    ],
)
def test_auth_outcomes(
    client: Client, path: str, token: str | None, headers: dict[str, str], status: int, code: int
) -> None:
    paths = {
        "connector": client.connector_path(),
        "tunnels": f"/accounts/{DEFAULT_ACCOUNT_ID}/cfd_tunnel",
        "account-verify": f"/accounts/{DEFAULT_ACCOUNT_ID}/tokens/verify",
    }
    error = assert_error(client.get(paths.get(path, path), token=token, headers=headers), status, code)
    if code == 6003:
        assert error["message"] == "Invalid request headers"
        assert error["error_chain"][0]["code"] in (6102, 6103, 6111)


def test_auth_messages_match_cloudflare(client: Client) -> None:
    assert assert_error(client.get(client.connector_path(), token=None), 400)["message"] == (
        "Missing X-Auth-Key, X-Auth-Email or Authorization headers"
    )
    assert assert_error(client.get(client.connector_path(), token="nope"), 403)["message"] == "Authentication error"
    assert assert_error(client.get("/user/tokens/verify", token="nope"), 401)["message"] == "Invalid API Token"
    bearer_key = assert_error(client.get(client.connector_path(), token=DEFAULT_GLOBAL_KEY), 400)
    assert bearer_key["error_chain"] == [{"code": 6111, "message": "Invalid format for Authorization header"}]
    wrong_key = {"X-Auth-Email": DEFAULT_GLOBAL_KEY_EMAIL, "X-Auth-Key": "0" * 37}
    assert assert_error(client.get(client.connector_path(), token=None, headers=wrong_key), 403)["message"] == (
        "Unknown X-Auth-Key or X-Auth-Email"
    )
    other = assert_error(client.get(client.connector_path(), token=OTHER_ACCOUNT_API_TOKEN), 403)
    assert other["message"] == "Unauthorized to access requested resource"


def test_account_token_verifies_only_on_its_account(sim: CloudflareSimulator, client: Client) -> None:
    assert client.result(f"/accounts/{sim.account_id}/tokens/verify", token=sim.account_token)["status"] == "active"
    assert_error(client.get(f"/accounts/{OTHER_ACCOUNT_ID}/tokens/verify", token=sim.account_token), 401, 1000)
    assert_error(client.get("/accounts/not-an-account/tokens/verify", token=sim.account_token), 400, 7003)


@pytest.mark.parametrize(("token", "status"), list(INACTIVE_TOKEN_STATUSES.items()))
def test_inactive_tokens_verify_with_their_status(client: Client, token: str, status: str) -> None:
    result = client.result("/user/tokens/verify", token=token)
    assert result["status"] == status
    assert_error(client.get(client.tunnel_path(), token=token), 403, 10000)


def test_expired_token_reports_expires_on(client: Client) -> None:
    assert client.result("/user/tokens/verify", token=EXPIRED_API_TOKEN)["expires_on"] == "2020-01-01T00:00:00Z"


def test_token_without_permission_still_verifies(client: Client) -> None:
    assert client.result("/user/tokens/verify", token=NO_PERMISSION_API_TOKEN)["status"] == "active"


def test_tokens_are_never_validated_by_shape(cloudflare_simulator_factory, make_client) -> None:
    odd = "v1.0-0123abc_~+/="
    sim = cloudflare_simulator_factory({"up_after": 0, "api_tokens": [odd, "x"]})
    client = make_client(sim)
    assert client.result("/user/tokens/verify", token=odd)["status"] == "active"
    assert client.result(client.connector_path(), token="x")["id"] == sim.connector_id


def test_global_key_restricted_to_accounts(cloudflare_simulator_factory, make_client) -> None:
    sim = cloudflare_simulator_factory(
        {"up_after": 0, "global_keys": [{"email": "a@example.com", "key": "k" * 37, "accounts": [OTHER_ACCOUNT_ID]}]}
    )
    client = make_client(sim)
    headers = {"X-Auth-Email": "A@Example.com", "X-Auth-Key": "k" * 37}
    assert_error(client.get(client.connector_path(), token=None, headers=headers), 403, 9109)
    assert client.result("/user", token=None, headers=headers)["email"] == "a@example.com"


def test_header_names_are_case_insensitive(sim: CloudflareSimulator, client: Client) -> None:
    headers = {"authorization": f"Bearer {sim.api_token}"}
    assert client.result(client.connector_path(), token=None, headers=headers)["id"] == sim.connector_id
    lower = {"x-auth-email": DEFAULT_GLOBAL_KEY_EMAIL, "x-auth-key": DEFAULT_GLOBAL_KEY}
    assert client.result(client.connector_path(), token=None, headers=lower)["id"] == sim.connector_id


def test_token_status_can_change_mid_test(sim: CloudflareSimulator, client: Client) -> None:
    assert client.get(client.connector_path()).status_code == 200
    sim.set_token_status(sim.api_token, "disabled")
    assert_error(client.get(client.connector_path()), 403, 10000)
    assert client.result("/user/tokens/verify")["status"] == "disabled"


def test_add_token(sim: CloudflareSimulator, client: Client) -> None:
    token_id = sim.add_token("late-token", owner="account")
    assert client.result(f"/accounts/{sim.account_id}/tokens/verify", token="late-token")["id"] == token_id
    sim.add_token("reader", accounts=[OTHER_ACCOUNT_ID])
    assert_error(client.get(client.tunnel_path(), token="reader"), 403, 9109)
    with pytest.raises(ValueError, match="Global API Key"):
        sim.add_token(DEFAULT_GLOBAL_KEY)


# ---- identifiers ------------------------------------------------------------------------------------------


def test_unknown_account_is_404_7003(client: Client) -> None:
    path = f"/accounts/{OTHER_ACCOUNT_ID}/cfd_tunnel/{DEFAULT_TUNNEL_ID}"
    error = assert_error(client.get(path), 404, 7003)
    assert error["message"] == (f"Could not route to /client/v4{path}, perhaps your object identifier is invalid?")


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        pytest.param(f"/accounts/XYZ/cfd_tunnel/{DEFAULT_TUNNEL_ID}", 400, 7003, id="malformed-account"),
        pytest.param(f"/accounts/{DEFAULT_ACCOUNT_ID.upper()}/cfd_tunnel", 400, 7003, id="uppercase-account"),
        pytest.param(f"/accounts/{DEFAULT_ACCOUNT_ID}/cfd_tunnel/not-a-uuid", 400, 1001, id="malformed-tunnel"),
        pytest.param(f"/accounts/{DEFAULT_ACCOUNT_ID}/cfd_tunnel/", 400, 1001, id="empty-tunnel"),
        pytest.param(
            f"/accounts/{DEFAULT_ACCOUNT_ID}/cfd_tunnel/{DEFAULT_TUNNEL_ID}/connectors/123",
            400,
            1001,
            id="malformed-connector",
        ),
        pytest.param(
            f"/accounts/{DEFAULT_ACCOUNT_ID}/cfd_tunnel/{DEFAULT_CONNECTOR_ID}", 404, 1003, id="unknown-tunnel"
        ),
        pytest.param(
            f"/accounts/{DEFAULT_ACCOUNT_ID}/cfd_tunnel/{DEFAULT_CONNECTOR_ID}/connections",
            404,
            1003,
            id="unknown-tunnel-connections",
        ),
        pytest.param(
            f"/accounts/{DEFAULT_ACCOUNT_ID}/cfd_tunnel/{DEFAULT_TUNNEL_ID}/connectors/{DEFAULT_TUNNEL_ID}",
            404,
            1003,
            id="unknown-connector",
        ),
    ],
)
def test_identifier_errors(client: Client, path: str, status: int, code: int) -> None:
    assert_error(client.get(path), status, code)


def test_not_found_messages(sim: CloudflareSimulator, client: Client) -> None:
    assert assert_error(client.get(client.tunnel_path(DEFAULT_CONNECTOR_ID)), 404)["message"] == "Tunnel not found"
    unknown = client.connector_path(connector_id=DEFAULT_TUNNEL_ID)
    assert assert_error(client.get(unknown), 404)["message"] == "Connector not found"


def test_tunnel_of_another_account_is_not_found(cloudflare_simulator_factory, make_client) -> None:
    sim = cloudflare_simulator_factory(
        {"accounts": [{"tunnels": [{}]}, {"id": OTHER_ACCOUNT_ID, "tunnels": [{"name": "elsewhere"}]}]}
    )
    client = make_client(sim)
    other_tunnel = sim.scenario["accounts"][1]["tunnels"][0]["id"]
    assert_error(client.get(client.tunnel_path(other_tunnel)), 404, 1003)
    assert client.result(f"/accounts/{OTHER_ACCOUNT_ID}/cfd_tunnel/{other_tunnel}")["name"] == "elsewhere"


# ---- timelines and tunnel status ---------------------------------------------------------------------------


def test_default_scenario_comes_up_after_three_seconds(
    cloudflare_simulator_factory, make_client, clock: FakeClock
) -> None:
    sim = cloudflare_simulator_factory(clock=clock)
    client = make_client(sim)
    assert_error(client.get(client.connector_path()), 404, 1003)
    assert client.result(client.connections_path()) == []
    tunnel = client.result(client.tunnel_path())
    assert tunnel["status"] == "inactive"
    assert tunnel["conns_active_at"] is None
    assert tunnel["conns_inactive_at"] is None
    clock.advance(2.9)
    assert client.get(client.connector_path()).status_code == 404
    clock.advance(0.1)
    connector = client.result(client.connector_path())
    assert [c["is_pending_reconnect"] for c in connector["conns"]] == [False] * 4
    assert parse_ts(connector["run_at"]) == start_time(sim) + timedelta(seconds=3)
    assert client.result(client.tunnel_path())["status"] == "healthy"


TIMELINE = [{"at": 3, "live": 4}, {"at": 60, "live": 2, "pending": 2}, {"at": 240, "gone": True}]


def timeline_scenario(*connectors: list[dict]) -> dict:
    return {"accounts": [{"tunnels": [{"connectors": [{"timeline": t} for t in connectors]}]}]}


def test_timeline_up_degraded_gone(cloudflare_simulator_factory, make_client, clock: FakeClock) -> None:
    sim = cloudflare_simulator_factory(timeline_scenario(TIMELINE), clock=clock)
    client = make_client(sim)
    clock.advance(10)
    up = client.result(client.connector_path())
    assert client.result(client.tunnel_path())["status"] == "healthy"

    clock.advance(50)  # t=60
    degraded = client.result(client.connector_path())
    assert [c["is_pending_reconnect"] for c in degraded["conns"]] == [False, False, True, True]
    assert [c["id"] for c in degraded["conns"]] == [c["id"] for c in up["conns"]], "ids stay while open"
    assert [c["opened_at"] for c in degraded["conns"]] == [c["opened_at"] for c in up["conns"]]
    tunnel = client.result(client.tunnel_path())
    assert tunnel["status"] == "degraded"
    assert parse_ts(tunnel["conns_active_at"]) == start_time(sim) + timedelta(seconds=3)

    clock.advance(180)  # t=240
    assert_error(client.get(client.connector_path()), 404, 1003)
    assert client.result(client.connections_path()) == []
    tunnel = client.result(client.tunnel_path())
    assert tunnel["status"] == "down"
    assert parse_ts(tunnel["conns_inactive_at"]) == start_time(sim) + timedelta(seconds=240)
    assert parse_ts(tunnel["conns_active_at"]) == start_time(sim) + timedelta(seconds=3)


def test_all_pending_is_down(cloudflare_simulator_factory, make_client, clock: FakeClock) -> None:
    sim = cloudflare_simulator_factory(
        timeline_scenario([{"at": 0, "live": 4}, {"at": 5, "live": 0, "pending": 4}]), clock=clock
    )
    client = make_client(sim)
    clock.advance(5)
    connector = client.result(client.connector_path())
    assert [c["is_pending_reconnect"] for c in connector["conns"]] == [True] * 4
    tunnel = client.result(client.tunnel_path())
    assert tunnel["status"] == "down"
    assert parse_ts(tunnel["conns_inactive_at"]) == start_time(sim) + timedelta(seconds=5)


def test_reconnect_opens_new_connections(cloudflare_simulator_factory, make_client, clock: FakeClock) -> None:
    timeline = [{"at": 0, "live": 4}, {"at": 10, "live": 2, "pending": 2}, {"at": 20, "live": 4}]
    sim = cloudflare_simulator_factory(timeline_scenario(timeline), clock=clock)
    client = make_client(sim)
    before = client.result(client.connector_path())["conns"]
    clock.advance(20)
    after = client.result(client.connector_path())["conns"]
    assert [c["id"] for c in after[:2]] == [c["id"] for c in before[:2]]
    assert {c["id"] for c in after[2:]}.isdisjoint(c["id"] for c in before)
    assert all(parse_ts(c["opened_at"]) == start_time(sim) + timedelta(seconds=20) for c in after[2:])
    assert client.result(client.tunnel_path())["status"] == "healthy"


def test_fewer_connections_than_four(cloudflare_simulator_factory, make_client) -> None:
    sim = cloudflare_simulator_factory({"up_after": 0, "connections": 2})
    client = make_client(sim)
    assert [c["colo_name"] for c in client.result(client.connector_path())["conns"]] == ["DFW", "IAD"]


def test_restart_replaces_the_connector(cloudflare_simulator_factory, make_client, clock: FakeClock) -> None:
    sim = cloudflare_simulator_factory({"up_after": 0}, clock=clock)
    client = make_client(sim)
    new_id = sim.restart_connector()
    assert new_id != sim.connector_id
    assert UUID.match(new_id)
    assert_error(client.get(client.connector_path()), 404, 1003)
    assert [c["id"] for c in client.result(client.connections_path())] == [new_id]
    assert client.result(client.connector_path(new_id))["conns"][0]["client_id"] == new_id
    assert client.result(client.tunnel_path())["status"] == "healthy"


def test_restart_with_tracking_period(cloudflare_simulator_factory, make_client, clock: FakeClock) -> None:
    sim = cloudflare_simulator_factory({"up_after": 0}, clock=clock)
    client = make_client(sim)
    new_id = sim.restart_connector(tracking=30, live=4)
    old = client.result(client.connector_path())
    assert [c["is_pending_reconnect"] for c in old["conns"]] == [True] * 4
    assert [c["id"] for c in client.result(client.connections_path())] == [sim.connector_id, new_id]
    assert client.result(client.tunnel_path())["status"] == "degraded"
    clock.advance(30)
    assert_error(client.get(client.connector_path()), 404, 1003)
    assert [c["id"] for c in client.result(client.connections_path())] == [new_id]
    assert client.result(client.tunnel_path())["status"] == "healthy"


def test_restart_in_a_scenario_timeline(cloudflare_simulator_factory, make_client, clock: FakeClock) -> None:
    old = [{"at": 0, "live": 4}, {"at": 30, "live": 0, "pending": 4}, {"at": 90, "gone": True}]
    new = [{"at": 45, "live": 4}]
    sim = cloudflare_simulator_factory(timeline_scenario(old, new), clock=clock)
    client = make_client(sim)
    clock.advance(31)
    assert client.result(client.tunnel_path())["status"] == "down"
    assert len(client.result(client.connections_path())) == 1
    clock.advance(14)
    ids = [c["id"] for c in client.result(client.connections_path())]
    assert len(ids) == 2
    assert client.result(client.tunnel_path())["status"] == "degraded"
    clock.advance(45)
    assert [c["id"] for c in client.result(client.connections_path())] == ids[1:]
    tunnel = client.result(client.tunnel_path())
    assert tunnel["status"] == "healthy"
    assert parse_ts(tunnel["conns_active_at"]) == start_time(sim) + timedelta(seconds=45)


def test_twenty_five_replicas(cloudflare_simulator_factory, make_client) -> None:
    sim = cloudflare_simulator_factory({"up_after": 0, "replicas": 25})
    client = make_client(sim)
    clients = client.result(client.connections_path())
    assert len(clients) == 25
    assert clients[0]["id"] == DEFAULT_CONNECTOR_ID
    assert len({c["id"] for c in clients}) == 25
    conn_ids = [conn["id"] for c in clients for conn in c["conns"]]
    assert len(conn_ids) == len(set(conn_ids)) == 100
    with pytest.raises(ValueError, match="25"):
        sim.add_connector(live=1)


def test_more_than_25_replicas_is_rejected() -> None:
    with pytest.raises(ScenarioError, match="at most 25"):
        CloudflareSimulator({"replicas": 26})


def test_one_replica_pending_makes_tunnel_degraded(cloudflare_simulator_factory, make_client) -> None:
    sim = cloudflare_simulator_factory({"up_after": 0, "replicas": 3})
    client = make_client(sim)
    second = client.result(client.connections_path())[1]["id"]
    sim.set_connector(connector_id=second, live=3, pending=1)
    assert client.result(client.tunnel_path())["status"] == "degraded"
    sim.set_connector(connector_id=second, live=4)
    assert client.result(client.tunnel_path())["status"] == "healthy"


def test_set_connector_creates_and_takes_effect_now(
    cloudflare_simulator_factory, make_client, clock: FakeClock
) -> None:
    sim = cloudflare_simulator_factory(clock=clock)  # default connector comes up at t=3
    client = make_client(sim)
    sim.set_connector(sim.tunnel_id, sim.connector_id, live=1, pending=0)
    assert [c["is_pending_reconnect"] for c in client.result(client.connector_path())["conns"]] == [False]
    clock.advance(10)  # the timeline's "up at 3 with 4" was dropped: the change holds
    assert len(client.result(client.connector_path())["conns"]) == 1
    created = sim.add_connector(live=2, pending=2)
    assert created in sim.connector_ids()
    assert len(client.result(client.connector_path(created))["conns"]) == 4
    assert sim.tunnel_status() == "degraded"


def test_set_connector_cancels_a_planned_gone(cloudflare_simulator_factory, make_client, clock: FakeClock) -> None:
    sim = cloudflare_simulator_factory(timeline_scenario(TIMELINE), clock=clock)
    client = make_client(sim)
    clock.advance(100)
    sim.set_connector(live=4)
    clock.advance(1000)
    assert len(client.result(client.connector_path())["conns"]) == 4


def test_remove_connector(sim: CloudflareSimulator, client: Client) -> None:
    sim.remove_connector()
    assert_error(client.get(client.connector_path()), 404, 1003)
    assert sim.connector_ids() == []
    assert client.result(client.tunnel_path())["status"] == "down"
    with pytest.raises(KeyError):
        sim.remove_connector(connector_id=DEFAULT_TUNNEL_ID)


def test_connector_reappearing_after_gone_is_a_new_run(sim: CloudflareSimulator, client: Client, clock) -> None:
    first = client.result(client.connector_path())
    sim.remove_connector()
    clock.advance(5)
    sim.set_connector(connector_id=sim.connector_id, live=4)
    again = client.result(client.connector_path())
    assert parse_ts(again["run_at"]) == parse_ts(first["run_at"]) + timedelta(seconds=5)
    assert {c["id"] for c in again["conns"]}.isdisjoint(c["id"] for c in first["conns"])


def test_advance_moves_simulated_time(cloudflare_simulator_factory, make_client) -> None:
    sim = cloudflare_simulator_factory(timeline_scenario(TIMELINE))  # real clock
    client = make_client(sim)
    assert client.get(client.connector_path()).status_code == 404
    sim.advance(60)
    assert sim.elapsed() >= 60
    assert client.result(client.tunnel_path())["status"] == "degraded"
    with pytest.raises(ValueError, match="forward"):
        sim.advance(-1)


def test_add_tunnel(sim: CloudflareSimulator, client: Client) -> None:
    tunnel_id = sim.add_tunnel(name="second")
    assert UUID.match(tunnel_id)
    tunnel = client.result(client.tunnel_path(tunnel_id))
    assert tunnel["name"] == "second"
    assert tunnel["status"] == "inactive"
    assert abs(parse_ts(tunnel["created_at"]) - start_time(sim)) < timedelta(seconds=1)
    assert client.result(client.connections_path(tunnel_id)) == []
    chosen = sim.add_tunnel(sim.account_id, "third", "11111111-2222-4333-8444-555555555555")
    assert chosen == "11111111-2222-4333-8444-555555555555"
    with pytest.raises(ValueError, match="no connector"):
        sim.set_connector(chosen, live=4)
    connector = sim.add_connector(chosen, live=4)
    assert client.result(client.connector_path(connector, chosen))["id"] == connector
    with pytest.raises(KeyError):
        sim.add_tunnel(account_id=OTHER_ACCOUNT_ID)
    with pytest.raises(ValueError, match="already exists"):
        sim.add_tunnel(tunnel_id=chosen)


def test_add_account_and_tunnel(sim: CloudflareSimulator, client: Client) -> None:
    account = sim.add_account(OTHER_ACCOUNT_ID)
    tunnel_id = sim.add_tunnel(account_id=account, name="other")
    assert client.result(f"/accounts/{account}/cfd_tunnel/{tunnel_id}")["account_tag"] == account
    assert client.result(f"/accounts/{account}/cfd_tunnel", token=OTHER_ACCOUNT_API_TOKEN)[0]["id"] == tunnel_id


def test_delete_tunnel(sim: CloudflareSimulator, client: Client) -> None:
    sim.delete_tunnel(sim.tunnel_id)
    tunnel = client.result(client.tunnel_path())
    assert tunnel["deleted_at"] is not None
    assert tunnel["status"] == "down"
    assert client.result(client.connections_path()) == []


# ---- pagination and filters -----------------------------------------------------------------------------


@pytest.fixture
def many(cloudflare_simulator_factory, make_client) -> Client:
    tunnels = [{"name": f"t-{i:02d}"} for i in range(46)]  # 45 listed by default: t-04 is deleted
    tunnels[3]["connectors"] = [{"up_after": 0}]
    tunnels[4]["deleted_at"] = "2026-01-02T03:04:05Z"
    tunnels[5]["name"] = "vpc1-edge"
    sim = cloudflare_simulator_factory({"accounts": [{"tunnels": tunnels}, {"id": OTHER_ACCOUNT_ID}]})
    return make_client(sim)


def list_path(client: Client, account: str | None = None) -> str:
    return f"/accounts/{account or client.sim.account_id}/cfd_tunnel"


def test_pagination(many: Client) -> None:
    pages = [many.get(list_path(many), params={"page": p}).json() for p in (1, 2, 3, 4)]
    assert [len(p["result"]) for p in pages] == [20, 20, 5, 0]
    assert [p["result_info"]["page"] for p in pages] == [1, 2, 3, 4]
    assert all(p["result_info"]["per_page"] == 20 for p in pages)
    assert all(p["result_info"]["total_count"] == 45 for p in pages)
    assert all(p["result_info"]["total_pages"] == 3 for p in pages)
    assert [p["result_info"]["count"] for p in pages] == [20, 20, 5, 0]
    names = [t["name"] for p in pages for t in p["result"]]
    assert len(set(names)) == 45


def test_per_page(many: Client) -> None:
    body = many.get(list_path(many), params={"per_page": 1000}).json()
    assert len(body["result"]) == 45
    assert body["result_info"]["total_pages"] == 1
    body = many.get(list_path(many), params={"per_page": 7, "page": 7}).json()
    assert body["result_info"] == {"page": 7, "per_page": 7, "count": 3, "total_count": 45, "total_pages": 7}


@pytest.mark.parametrize(
    "params",
    [
        {"per_page": 1001},
        {"per_page": 0},
        {"per_page": "x"},
        {"page": 0},
        {"status": "sleeping"},
        {"is_deleted": "maybe"},
        {"uuid": "nope"},
    ],
)
def test_invalid_list_parameters(many: Client, params: dict) -> None:
    assert_error(many.get(list_path(many), params=params), 400, 1001)


def test_filters(many: Client) -> None:
    def names(**params: object) -> list[str]:
        return [t["name"] for t in many.result(list_path(many), params={"per_page": 100, **params})]

    assert names(name="t-07") == ["t-07"]
    assert names(name="nope") == []
    assert names(status="healthy") == ["t-03"]
    assert len(names(status="inactive")) == 44
    assert names(is_deleted="true") == ["t-04"]
    assert len(names(is_deleted="false")) == 45
    assert len(names()) == 45  # without is_deleted, Cloudflare lists no deleted tunnel (since 2025-12-01)
    assert names(include_prefix="vpc1-") == ["vpc1-edge"]
    assert len(names(exclude_prefix="t-")) == 1
    tunnel_id = many.result(list_path(many), params={"name": "t-09"})[0]["id"]
    assert names(uuid=tunnel_id) == ["t-09"]


def test_empty_list(many: Client) -> None:
    body = many.get(list_path(many, OTHER_ACCOUNT_ID)).json()
    assert body["success"] is True
    assert body["result"] == []
    assert body["result_info"] == {"page": 1, "per_page": 20, "count": 0, "total_count": 0, "total_pages": 0}


# ---- lifecycle -------------------------------------------------------------------------------------------


def test_start_stop_and_restart(session) -> None:
    sim = CloudflareSimulator({"up_after": 0})
    assert not sim.running
    assert "stopped" in repr(sim)
    sim.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            sim.start()
        url = sim.base_url + "/user/tokens/verify"
        assert session.get(url, headers={"Authorization": f"Bearer {sim.api_token}"}).status_code == 200
        assert sim.base_url in repr(sim)
    finally:
        sim.stop()
    sim.stop()  # twice is fine
    assert not sim.running
    with pytest.raises(Exception, match=r"(?i)connect"):
        session.get(url, headers={"Authorization": f"Bearer {sim.api_token}"}, timeout=2)


def test_stop_closes_idle_keep_alive_connections(session) -> None:
    import socket

    sim = CloudflareSimulator({"up_after": 0}).start()
    raw = socket.create_connection((sim.host, sim.port), timeout=5)
    try:
        raw.sendall(b"GET /client/v4/user HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.recv(4096).startswith(b"HTTP/1.1 400")
        sim.stop()
        assert raw.recv(4096) == b"", "the server closed the idle connection"
    finally:
        raw.close()
        sim.stop()


def test_connection_json_and_airflow_env(sim: CloudflareSimulator) -> None:
    import json

    token = json.loads(sim.connection_json())
    assert token == {
        "conn_type": "cloudflare",
        "host": sim.base_url,
        "password": sim.api_token,
        "extra": {"account_id": sim.account_id},
    }
    key = json.loads(sim.connection_json(auth="global_key"))
    assert (key["login"], key["password"]) == (sim.global_key_email, sim.global_key)
    assert json.loads(sim.connection_json("account_token"))["password"] == sim.account_token
    assert json.loads(sim.connection_json(account_id=OTHER_ACCOUNT_ID))["extra"] == {"account_id": OTHER_ACCOUNT_ID}
    env = sim.airflow_env()
    assert list(env) == ["AIRFLOW_CONN_CLOUDFLARE_DEFAULT"]
    assert json.loads(env["AIRFLOW_CONN_CLOUDFLARE_DEFAULT"]) == token
    assert json.loads(sim.airflow_env("cf_prod", auth="global_key")["AIRFLOW_CONN_CF_PROD"]) == key
    with pytest.raises(ValueError, match="auth"):
        sim.connection_json(auth="password")


def test_api_token_attribute_prefers_a_token_that_can_read_the_first_account() -> None:
    sim = CloudflareSimulator(
        {
            "api_tokens": [
                {"token": "elsewhere", "accounts": [OTHER_ACCOUNT_ID]},
                {"token": "off", "status": "disabled"},
                {"token": "blind", "tunnel_read": False},
                "reader",
                {"token": "acct", "owner": "account"},
            ],
            "global_keys": [],
        }
    )
    assert (sim.api_token, sim.account_token) == ("reader", "acct")
    assert (sim.global_key_email, sim.global_key) == (None, None)
    with pytest.raises(ValueError, match="no credential"):
        sim.connection_json(auth="global_key")
    empty = CloudflareSimulator({"accounts": [], "api_tokens": []})
    assert (empty.api_token, empty.account_id, empty.tunnel_id, empty.connector_id) == (None, None, None, None)


def test_add_connector_with_id_version_and_arch(sim: CloudflareSimulator, client: Client) -> None:
    chosen = "99999999-8888-4777-8666-555555555555"
    assert sim.add_connector(connector_id=chosen, live=1, version="2025.1.0", arch="linux_arm64") == chosen
    connector = client.result(client.connector_path(chosen))
    assert (connector["version"], connector["arch"]) == ("2025.1.0", "linux_arm64")
    assert connector["conns"][0]["client_version"] == "2025.1.0"
    with pytest.raises(ValueError, match="already exists"):
        sim.add_connector(connector_id=chosen)
    with pytest.raises(ValueError, match="UUID"):
        sim.add_connector(connector_id="not-a-uuid")
    with pytest.raises(ValueError, match="live"):
        sim.set_connector(live=-1)
    sim.set_connector(connector_id=chosen, live=2, version="2025.2.0")
    assert client.result(client.connector_path(chosen))["version"] == "2025.2.0"
