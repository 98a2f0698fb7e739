"""Emulation of Cloudflare's per-credential rate limit and its lockout."""

from __future__ import annotations

import pytest

from airflow_provider_cftunnel.testing import (
    DEFAULT_GLOBAL_KEY,
    DEFAULT_GLOBAL_KEY_EMAIL,
    NO_PERMISSION_API_TOKEN,
    CloudflareSimulator,
)
from tests.testing.sim_helpers import Client, FakeClock, assert_error


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


def test_limit_is_per_credential(sim: CloudflareSimulator, client: Client) -> None:
    sim.set_rate_limit(2, period=60)
    for _ in range(3):
        client.get(client.connector_path())
    assert client.get(client.connector_path()).status_code == 429
    assert client.get(client.connector_path(), token=sim.account_token).status_code == 200
    key = {"X-Auth-Email": DEFAULT_GLOBAL_KEY_EMAIL, "X-Auth-Key": DEFAULT_GLOBAL_KEY}
    assert [client.get("/user", token=None, headers=key).status_code for _ in range(3)] == [200, 200, 429]
    # failed requests count too: Cloudflare counts what the credential sends
    assert [client.get(client.tunnel_path(), token=NO_PERMISSION_API_TOKEN).status_code for _ in range(3)] == [
        403,
        403,
        429,
    ]


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
