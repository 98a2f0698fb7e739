"""Emulation of Cloudflare's per-user rate limit, its lockout, its headers and the pool's other consumers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_cftunnel.testing import (
    DEFAULT_API_TOKEN,
    DEFAULT_GLOBAL_KEY,
    DEFAULT_GLOBAL_KEY_EMAIL,
    NO_PERMISSION_API_TOKEN,
    CloudflareSimulator,
)
from tests.testing.sim_helpers import Client, assert_error

if TYPE_CHECKING:
    from tests.support.fakes import FakeClock


def test_off_by_default(sim: CloudflareSimulator, client: Client) -> None:
    assert sim.scenario["rate_limit"] is None
    assert {client.get(client.connector_path()).status_code for _ in range(60)} == {200}
    assert sim.rate_limited_count == 0


def test_over_the_limit_locks_the_credential_out(sim: CloudflareSimulator, client: Client, clock: FakeClock) -> None:
    sim.set_rate_limit(3, period=10)
    assert [client.get(client.connector_path()).status_code for _ in range(3)] == [200, 200, 200]
    limited = client.get(client.connector_path())
    assert assert_error(limited, 429, 971)["message"] == "Please wait and consider throttling your request speed"
    assert limited.headers["Retry-After"] == "10"
    clock.advance(4)
    still = client.get(client.tunnel_path())
    assert_error(still, 429, 971)
    assert still.headers["Retry-After"] == "6"
    assert sim.rate_limited_count == 2
    assert [r.fault for r in sim.requests[-2:]] == ["emulated_rate_limit"] * 2
    clock.advance(6)
    assert client.get(client.connector_path()).status_code == 200, "the lockout lasts one period"
    assert sim.rate_limited_count == 2


def test_lockout_blocks_every_endpoint_for_a_whole_period(
    sim: CloudflareSimulator, client: Client, clock: FakeClock
) -> None:
    sim.set_rate_limit(2, period=300)
    for _ in range(3):
        client.get(client.connector_path())
    clock.advance(299)
    for path in (client.tunnel_path(), client.connections_path(), "/user/tokens/verify", "/user"):
        assert client.get(path).status_code == 429
    clock.advance(1)
    assert client.get("/user/tokens/verify").status_code == 200


def test_window_slides(sim: CloudflareSimulator, client: Client, clock: FakeClock) -> None:
    sim.set_rate_limit(3, period=10)
    for _ in range(3):
        assert client.get(client.connector_path()).status_code == 200
        clock.advance(4)
    # at t=12 the request made at t=0 left the window: 2 in the window, one more is fine
    assert client.get(client.connector_path()).status_code == 200
    assert client.get(client.connector_path()).status_code == 429


def test_one_pool_per_user_whatever_the_credential(sim: CloudflareSimulator, client: Client) -> None:
    """Cloudflare counts per user: the user's token, an account token and the Global API Key share one pool."""
    sim.set_rate_limit(4, period=60)
    key = {"X-Auth-Email": DEFAULT_GLOBAL_KEY_EMAIL, "X-Auth-Key": DEFAULT_GLOBAL_KEY}
    assert client.get(client.connector_path()).status_code == 200
    assert client.get(client.connector_path(), token=sim.account_token).status_code == 200
    assert client.get("/user", token=None, headers=key).status_code == 200
    # failed requests count too: Cloudflare counts what the user sends
    assert client.get(client.tunnel_path(), token=NO_PERMISSION_API_TOKEN).status_code == 403
    assert client.get(client.connector_path(), token=sim.account_token).status_code == 429
    assert client.get("/user", token=None, headers=key).status_code == 429, "the whole user is locked out"
    assert sim.rate_limited_count == 2
    assert sim.rate_limit_status()["lockouts"] == 1


def test_other_users_and_unknown_credentials_have_their_own_pool(
    cloudflare_simulator_factory, make_client, clock: FakeClock
) -> None:
    sim = cloudflare_simulator_factory(
        {"up_after": 0, "api_tokens": [DEFAULT_API_TOKEN, {"token": "cfsim-other-user-token", "user": "bob"}]},
        clock=clock,
    )
    assert sim.scenario["api_tokens"][1]["user"] == "bob"
    client = make_client(sim)
    sim.set_rate_limit(2, period=60)
    assert [client.get(client.tunnel_path()).status_code for _ in range(3)] == [200, 200, 429]
    assert [client.get(client.tunnel_path(), token="cfsim-other-user-token").status_code for _ in range(2)] == [
        200,
        200,
    ]
    assert [client.get(client.tunnel_path(), token="cfsim-unknown-token").status_code for _ in range(3)] == [
        403,
        403,
        429,
    ]
    pools = sim.rate_limit_status()["pools"]
    assert pools["user:bob"] == {"remaining": 0, "reset": 60.0, "locked": False}
    assert [p for p in pools if p.startswith("credential:")] != []
    assert "cfsim-unknown-token" not in str(pools)  # unknown credentials are named by a hash


def test_requests_without_credentials_are_not_counted(sim: CloudflareSimulator, client: Client) -> None:
    sim.set_rate_limit(1, period=60)
    assert {client.get(client.connector_path(), token=None).status_code for _ in range(5)} == {400}
    assert sim.rate_limited_count == 0


def test_scenario_rate_limit(cloudflare_simulator_factory, make_client) -> None:
    sim = cloudflare_simulator_factory({"up_after": 0, "rate_limit": {"requests": 1200, "period": 300}})
    client = make_client(sim)
    assert sim.scenario["rate_limit"] == {"requests": 1200, "period": 300.0}
    sim.set_rate_limit(1, 300)
    assert [client.get("/user/tokens/verify").status_code for _ in range(2)] == [200, 429]


def test_turning_off_and_resetting(sim: CloudflareSimulator, client: Client) -> None:
    sim.set_rate_limit(1, 60)
    client.get(client.connector_path())
    assert client.get(client.connector_path()).status_code == 429
    sim.reset_rate_limit()
    assert sim.rate_limited_count == 0
    assert client.get(client.connector_path()).status_code == 200
    sim.set_rate_limit(None)
    assert {client.get(client.connector_path()).status_code for _ in range(5)} == {200}
    with pytest.raises(ValueError, match="positive"):
        sim.set_rate_limit(0)
    with pytest.raises(ValueError, match="period"):
        sim.set_rate_limit(5, period=0)


def test_injected_faults_come_before_the_limit(sim: CloudflareSimulator, client: Client) -> None:
    sim.set_rate_limit(1, 60)
    sim.inject_fault(kind="server_error", status=503, count=3)
    assert [client.get(client.connector_path()).status_code for _ in range(5)] == [503, 503, 503, 200, 429]
    assert sim.rate_limited_count == 1


def test_every_answer_describes_the_pool(sim: CloudflareSimulator, client: Client, clock: FakeClock) -> None:
    sim.set_rate_limit(3, period=10, reset="full")
    first = client.get(client.connector_path())
    assert first.headers["Ratelimit"] == '"default";r=2;t=10'
    assert first.headers["Ratelimit-Policy"] == '"default";q=3;w=10'
    clock.advance(4)
    error = client.get(client.connector_path(connector_id="00000000-0000-4000-8000-000000000000"))
    assert error.status_code == 404
    assert error.headers["Ratelimit"] == '"default";r=1;t=10', "error answers count and say so too"
    client.get(client.connector_path())
    clock.advance(2.5)
    limited = client.get(client.connector_path())
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "10"
    assert limited.headers["Ratelimit"] == '"default";r=0;t=10'
    assert limited.headers["Ratelimit-Policy"] == '"default";q=3;w=10'
    clock.advance(7.5)
    assert client.get(client.tunnel_path()).headers["Ratelimit"] == '"default";r=0;t=3'
    assert "Ratelimit" not in client.get(client.tunnel_path(), token=None).headers, "not counted, not described"


def test_reset_is_when_the_pool_would_be_whole_again(
    sim: CloudflareSimulator, client: Client, clock: FakeClock
) -> None:
    """A sliding window with ``reset="full"``: ``t`` counts to the moment the newest counted request leaves it."""
    sim.set_rate_limit(5, period=10, reset="full")
    client.get(client.tunnel_path())
    clock.advance(6)
    assert client.get(client.tunnel_path()).headers["Ratelimit"] == '"default";r=3;t=10'
    clock.advance(4.5)  # the first request left the window
    assert client.get(client.tunnel_path()).headers["Ratelimit"] == '"default";r=3;t=10'
    assert sim.rate_limit_status()["pools"][f"user:{sim.scenario['user']['id']}"] == {
        "remaining": 3,
        "reset": 10.0,
        "locked": False,
    }


def test_reset_is_when_more_quota_comes_by_default(sim: CloudflareSimulator, client: Client, clock: FakeClock) -> None:
    """The default (draft -10): a sliding window whose ``t`` counts to the moment the oldest request leaves it."""
    sim.set_rate_limit(5, period=10)
    assert sim.scenario["rate_limit"] == {"requests": 5, "period": 10.0}
    client.get(client.tunnel_path())
    clock.advance(6)
    assert client.get(client.tunnel_path()).headers["Ratelimit"] == '"default";r=3;t=4', "one more in 4 s"
    clock.advance(4.5)  # the first request left the window; the second leaves it in 5.5 s
    assert client.get(client.tunnel_path()).headers["Ratelimit"] == '"default";r=3;t=6'


def test_fixed_windows(sim: CloudflareSimulator, client: Client, clock: FakeClock) -> None:
    """A fixed window: every count starts empty at the window's start; ``t`` is the time to its end."""
    sim.set_rate_limit(3, period=10, window="fixed", reset="full")
    assert sim.scenario["rate_limit"] == {"requests": 3, "period": 10.0, "window": "fixed", "reset": "full"}
    clock.advance(7)
    assert client.get(client.tunnel_path()).headers["Ratelimit"] == '"default";r=2;t=3'
    clock.advance(2)
    assert client.get(client.tunnel_path()).headers["Ratelimit"] == '"default";r=1;t=1'
    clock.advance(1.5)  # a new window: the two requests of the last one no longer count
    assert client.get(client.tunnel_path()).headers["Ratelimit"] == '"default";r=2;t=10'  # 9.5 s, rounded up
    with pytest.raises(ValueError, match="window"):
        sim.set_rate_limit(3, window="leaky")
    with pytest.raises(ValueError, match="reset"):
        sim.set_rate_limit(3, reset="some")


def test_legacy_and_stripped_headers(sim: CloudflareSimulator, client: Client) -> None:
    sim.set_rate_limit(3, period=10, headers="legacy")
    headers = client.get(client.tunnel_path()).headers
    assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"], headers["X-RateLimit-Reset"]) == (
        "3",
        "2",
        "10",
    )
    assert "Ratelimit" not in headers
    assert sim.scenario["rate_limit"] == {"requests": 3, "period": 10.0, "headers": "legacy"}
    sim.set_rate_limit(1, period=10, headers="none")
    assert not any("ratelimit" in name.lower() for name in client.get(client.tunnel_path()).headers)
    limited = client.get(client.tunnel_path())
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "10"
    assert not any("ratelimit" in name.lower() for name in limited.headers)
    with pytest.raises(ValueError, match="headers"):
        sim.set_rate_limit(3, headers="draft")


def test_another_consumer_spends_from_the_pool(sim: CloudflareSimulator, client: Client, clock: FakeClock) -> None:
    sim.set_rate_limit(10, period=10)
    assert sim.spend_rate_limit(4) == 4  # someone in the dashboard
    assert client.get(client.tunnel_path()).headers["Ratelimit"] == '"default";r=5;t=10'
    assert sim.spend_rate_limit(6) == 5, "the sixth crossed the limit"
    assert client.get(client.tunnel_path()).status_code == 429, "and locked the user's tokens out too"
    status = sim.rate_limit_status()
    assert (status["spent"], status["spent_refused"], status["lockouts"], status["limited"]) == (10, 1, 1, 1)
    with pytest.raises(ValueError, match="count"):
        sim.spend_rate_limit(-1)


def test_a_dashboard_spends_at_its_rate(sim: CloudflareSimulator, client: Client, clock: FakeClock) -> None:
    sim.set_rate_limit(10, period=10, dashboard_rate=0.5, reset="full")
    assert sim.scenario["rate_limit"] == {"requests": 10, "period": 10.0, "dashboard_rate": 0.5, "reset": "full"}
    clock.advance(8)  # 4 dashboard requests, at 2, 4, 6 and 8 s
    assert client.get(client.tunnel_path()).headers["Ratelimit"] == '"default";r=5;t=10'
    clock.advance(5)  # at 13 s: the one at 2 s left the window, two more came at 10 and 12 s
    assert client.get(client.tunnel_path()).headers["Ratelimit"] == '"default";r=3;t=10'
    assert sim.rate_limit_status()["spent"] == 6
    clock.advance(1000)  # it never stops, nor backs off
    assert sim.rate_limit_status()["pools"][f"user:{sim.scenario['user']['id']}"]["remaining"] == 5
    sim.set_rate_limit(2, period=10, dashboard_rate=1)
    clock.advance(3)
    assert client.get(client.tunnel_path()).status_code == 429, "a greedy dashboard locks everyone out"
    assert sim.rate_limit_status()["spent_refused"] >= 1


def test_control_routes(sim: CloudflareSimulator, client: Client, clock: FakeClock) -> None:
    def control(method: str, route: str, body: object = None):
        response = client.session.request(method, sim.control_url + route, json=body, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    legacy = {"requests": 5, "period": 10, "headers": "legacy", "dashboard_rate": 0.1}
    legacy_settings = {"requests": 5, "period": 10.0, "headers": "legacy", "dashboard_rate": 0.1}
    assert control("POST", "/rate-limit", legacy) == legacy_settings
    assert control("POST", "/rate-limit", {"requests": 5, "period": 10, "window": "fixed"})["window"] == "fixed"
    # settings without a window go back to the default (sliding) one
    assert control("POST", "/rate-limit", legacy) == legacy_settings
    assert control("POST", "/rate-limit/spend", {"count": 2}) == {"accepted": 2}
    assert client.get(client.tunnel_path()).headers["X-RateLimit-Remaining"] == "2"
    status = control("GET", "/rate-limit")
    assert (status["requests"], status["spent"], status["limited"]) == (5, 2, 0)
    assert (status["window"], status["reset"]) == ("sliding", "more")
    assert control("POST", "/rate-limit/reset")["spent"] == 0
    assert client.get(client.tunnel_path()).headers["X-RateLimit-Remaining"] == "4"
    bad = client.session.request("POST", sim.control_url + "/rate-limit", json={"requests": 5, "headers": 1}, timeout=5)
    assert bad.status_code == 400
