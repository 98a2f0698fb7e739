"""The request log, and the HTTP control endpoints under /__simulator__."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_cftunnel.testing import DEFAULT_GLOBAL_KEY, DEFAULT_GLOBAL_KEY_EMAIL, CloudflareSimulator

if TYPE_CHECKING:
    from tests.support.fakes import FakeClock
    from tests.testing.sim_helpers import Client


# ---- the request log ----------------------------------------------------------------------------------------


def test_records_method_path_query_headers_status_time(sim: CloudflareSimulator, client: Client) -> None:
    before = time.time()
    client.get(f"/accounts/{sim.account_id}/cfd_tunnel", params={"per_page": 5, "name": "a b"})
    client.get("/nope", method="DELETE")
    after = time.time()
    first, second = sim.requests
    assert first.method == "GET"
    assert first.path == f"/client/v4/accounts/{sim.account_id}/cfd_tunnel"
    assert first.query == {"per_page": "5", "name": "a b"}
    assert first.headers["Authorization"] == f"Bearer {sim.api_token}"
    assert first.headers["authorization"] == f"Bearer {sim.api_token}", "header lookups ignore case"
    assert "user-agent" in first.headers
    assert first.status == 200
    assert first.fault is None
    assert before <= first.time <= second.time <= after
    assert (second.method, second.path, second.query, second.status) == ("DELETE", "/client/v4/nope", {}, 404)


def test_log_is_written_before_the_answer(sim: CloudflareSimulator, client: Client) -> None:
    for n in range(1, 20):
        client.get("/user/tokens/verify")
        assert len(sim.requests) == n


def test_requests_is_a_copy(sim: CloudflareSimulator, client: Client) -> None:
    client.get("/user")
    records = sim.requests
    records.clear()
    assert len(sim.requests) == 1


def test_requests_matching_and_clear(sim: CloudflareSimulator, client: Client) -> None:
    client.get(client.connector_path())
    client.get(client.connections_path())
    client.get(client.connections_path(), method="DELETE")
    assert len(sim.requests_matching(r"/connections$")) == 2
    assert len(sim.requests_matching(r"/connections$", method="get")) == 1
    assert [r.path.rsplit("/", 2)[1] for r in sim.requests_matching("/connectors/")] == ["connectors"]
    assert sim.clear_requests() == 3
    assert sim.requests == []


def test_log_is_bounded(cloudflare_simulator_factory, make_client) -> None:
    sim = cloudflare_simulator_factory({"up_after": 0}, max_logged_requests=3)
    client = make_client(sim)
    for n in range(5):
        client.get("/user", params={"n": n})
    assert [r.query["n"] for r in sim.requests] == ["2", "3", "4"]


def test_record_redaction(sim: CloudflareSimulator, client: Client) -> None:
    client.get(
        "/user", token=None, headers={"X-Auth-Email": DEFAULT_GLOBAL_KEY_EMAIL, "X-Auth-Key": DEFAULT_GLOBAL_KEY}
    )
    record = sim.requests[0]
    assert record.headers["X-Auth-Key"] == DEFAULT_GLOBAL_KEY, "in-process records keep the values"
    shown = record.to_dict()
    assert shown["headers"]["X-Auth-Key"] == "[REDACTED]"
    assert shown["headers"]["X-Auth-Email"] == DEFAULT_GLOBAL_KEY_EMAIL
    assert record.to_dict(redact=False)["headers"]["X-Auth-Key"] == DEFAULT_GLOBAL_KEY


# ---- control endpoints ---------------------------------------------------------------------------------------


def control(client: Client, method: str, route: str, json: object = None):  # type: ignore[no-untyped-def]
    return client.session.request(method, client.sim.control_url + route, json=json, timeout=5)


def test_health(sim: CloudflareSimulator, client: Client, clock: FakeClock) -> None:
    clock.advance(7)
    health = control(client, "GET", "/health").json()
    assert health["status"] == "ok"
    assert health["base_url"] == sim.base_url
    assert health["elapsed"] == pytest.approx(7)
    assert isinstance(health["pid"], int)


def test_requests_endpoint_redacts_credentials(sim: CloudflareSimulator, client: Client) -> None:
    client.get("/user/tokens/verify")
    client.get(
        "/user", token=None, headers={"X-Auth-Email": DEFAULT_GLOBAL_KEY_EMAIL, "X-Auth-Key": DEFAULT_GLOBAL_KEY}
    )
    response = control(client, "GET", "/requests")
    assert response.status_code == 200
    assert sim.api_token not in response.text
    assert DEFAULT_GLOBAL_KEY not in response.text
    records = response.json()
    assert [r["path"] for r in records] == ["/client/v4/user/tokens/verify", "/client/v4/user"]
    assert records[0]["headers"]["Authorization"] == "Bearer [REDACTED]"
    assert records[1]["headers"]["X-Auth-Key"] == "[REDACTED]"
    assert records[0]["status"] == 200
    assert set(records[0]) == {"method", "path", "query", "headers", "status", "time", "fault"}
    assert len(sim.requests) == 2, "control requests are not logged"


def test_reset_requests(sim: CloudflareSimulator, client: Client) -> None:
    client.get("/user")
    client.get("/user")
    assert control(client, "POST", "/reset-requests").json() == {"cleared": 2}
    assert control(client, "GET", "/requests").json() == []


def test_faults_endpoint(sim: CloudflareSimulator, client: Client) -> None:
    added = control(client, "POST", "/faults", {"kind": "rate_limit", "path": "/connections$", "retry_after": 2})
    assert added.status_code == 200
    assert added.json()["faults"][0]["kind"] == "rate_limit"
    many = control(client, "POST", "/faults", [{"kind": "drop", "path": "/nowhere"}, {"kind": "null_result"}])
    assert len(many.json()["faults"]) == 2
    response = client.get(client.connections_path())
    assert (response.status_code, response.headers["Retry-After"]) == (429, "2")
    listed = control(client, "GET", "/faults").json()
    assert [(f["kind"], f["hits"], f["active"]) for f in listed] == [
        ("rate_limit", 1, False),
        ("drop", 0, True),
        ("null_result", 0, True),
    ]
    assert control(client, "DELETE", "/faults").json() == {"cleared": 3}
    assert sim.faults == []
    bad = control(client, "POST", "/faults", {"kind": "explode"})
    assert bad.status_code == 400
    assert "unknown fault kind" in bad.json()["error"]


def test_scenario_endpoint(sim: CloudflareSimulator, client: Client) -> None:
    sim.inject_fault(kind="drop", path="/x", count=2)
    scenario = control(client, "GET", "/scenario").json()
    assert scenario == sim.scenario
    assert sim.api_token in [t["token"] for t in scenario["api_tokens"]]
    assert scenario["accounts"][0]["id"] == sim.account_id
    assert scenario["accounts"][0]["tunnels"][0]["connectors"][0]["id"] == sim.connector_id
    assert scenario["faults"] == [{"kind": "drop", "path": "/x", "count": 2}]


def test_mutation_endpoints(sim: CloudflareSimulator, client: Client, clock: FakeClock) -> None:
    assert control(client, "POST", "/connectors", {"live": 2, "pending": 2}).json() == {
        "connector_id": sim.connector_id
    }
    assert sim.tunnel_status() == "degraded"
    new_id = control(client, "POST", "/connectors", {"new": True, "live": 1}).json()["connector_id"]
    assert set(sim.connector_ids()) == {sim.connector_id, new_id}
    removed = control(client, "POST", "/remove-connector", {"connector_id": new_id, "tracking": 10})
    assert removed.json() == {"removed": new_id}
    advanced = control(client, "POST", "/advance", {"seconds": 10}).json()
    assert advanced["elapsed"] == pytest.approx(10)
    assert sim.connector_ids() == [sim.connector_id]
    assert control(client, "POST", "/rate-limit", {"requests": 1, "period": 60}).json() == {
        "requests": 1,
        "period": 60.0,
    }
    assert [client.get("/user").status_code for _ in range(2)] == [200, 429]
    assert control(client, "POST", "/rate-limit", {"requests": None}).json()["requests"] is None


@pytest.mark.parametrize(
    ("method", "route", "body", "status"),
    [
        ("GET", "/nothing", None, 404),
        ("POST", "/health", None, 404),
        ("POST", "/advance", "not json", 400),
        ("POST", "/advance", [1, 2], 400),
        ("POST", "/connectors", {"live": -1}, 400),
    ],
)
def test_control_errors(client: Client, method: str, route: str, body: object, status: int) -> None:
    if isinstance(body, str):
        response = client.session.request(method, client.sim.control_url + route, data=body, timeout=5)
    else:
        response = control(client, method, route, body)
    assert response.status_code == status
    assert response.json()["error"]
