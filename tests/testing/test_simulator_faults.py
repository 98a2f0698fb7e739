"""Every fault kind the simulator can inject, and how faults are matched, counted and loaded."""

from __future__ import annotations

import email.utils
import json
import socket
import time

import pytest
import requests

from airflow_provider_cftunnel.testing import FAULT_KINDS, CloudflareSimulator, Fault
from tests.testing.sim_helpers import Client, assert_error


@pytest.fixture
def sim(cloudflare_simulator_factory) -> CloudflareSimulator:
    return cloudflare_simulator_factory({"up_after": 0})


@pytest.fixture
def client(sim: CloudflareSimulator, make_client) -> Client:
    return make_client(sim)


def raw_exchange(sim: CloudflareSimulator, path: str) -> tuple[bytes, BaseException | None]:
    """Send one GET over a raw socket; return everything received until EOF and the error that ended it."""
    sock = socket.create_connection((sim.host, sim.port), timeout=5)
    received = b""
    try:
        sock.sendall(
            f"GET /client/v4{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {sim.api_token}\r\n\r\n".encode()
        )
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return received, None
            received += chunk
    except OSError as exc:
        return received, exc
    finally:
        sock.close()


def test_every_kind_is_tested() -> None:
    tested = {name.removeprefix("test_kind_").split("_with")[0] for name in globals() if name.startswith("test_kind_")}
    assert tested == set(FAULT_KINDS)


def test_kind_rate_limit(sim: CloudflareSimulator, client: Client) -> None:
    fault = sim.inject_fault(path=r"/connections$", kind="rate_limit", count=2, retry_after=1)
    for _ in range(2):
        response = client.get(client.connections_path())
        assert assert_error(response, 429, 971)["message"] == "Please wait and consider throttling your request speed"
        assert response.headers["Retry-After"] == "1"
    assert client.get(client.connections_path()).status_code == 200
    assert client.get(client.connector_path()).status_code == 200, "the path regex limits the fault"
    assert fault.hits == 2
    assert not fault.active
    assert fault.remaining == 0


def test_kind_rate_limit_with_http_date(sim: CloudflareSimulator, client: Client) -> None:
    sim.inject_fault(kind="rate_limit", retry_after_date=30)
    response = client.get(client.tunnel_path())
    assert_error(response, 429, 971)
    when = email.utils.parsedate_to_datetime(response.headers["Retry-After"]).timestamp()
    assert 25 <= when - time.time() <= 31


def test_kind_rate_limit_with_absent_or_verbatim_header(sim: CloudflareSimulator, client: Client) -> None:
    sim.inject_fault(kind="rate_limit")
    sim.inject_fault(kind="rate_limit", retry_after="soon", code=10100, message="old code")
    first = client.get(client.tunnel_path())
    assert_error(first, 429, 971)
    assert "Retry-After" not in first.headers
    second = client.get(client.tunnel_path())
    assert assert_error(second, 429, 10100)["message"] == "old code"
    assert second.headers["Retry-After"] == "soon"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_kind_server_error(sim: CloudflareSimulator, client: Client, status: int) -> None:
    sim.inject_fault(kind="server_error", status=status)
    assert_error(client.get(client.tunnel_path()), status, 10001)
    assert client.get(client.tunnel_path()).status_code == 200


def test_kind_server_error_with_html_gateway_page(sim: CloudflareSimulator, client: Client) -> None:
    sim.inject_fault(kind="server_error", status=502, body="html")
    response = client.get(client.tunnel_path())
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text
    with pytest.raises(requests.JSONDecodeError):
        response.json()


def test_kind_slow(sim: CloudflareSimulator, client: Client) -> None:
    fault = sim.inject_fault(kind="slow", delay=0.3)
    started = time.monotonic()
    result = client.result(client.connector_path())
    assert time.monotonic() - started >= 0.3
    assert result["id"] == sim.connector_id, "a slow answer is still the normal answer"
    assert fault.hits == 1
    sim.inject_fault(kind="slow", delay=2)
    with pytest.raises(requests.ReadTimeout):
        client.get(client.connector_path(), timeout=0.2)


def test_kind_drop(sim: CloudflareSimulator, client: Client) -> None:
    sim.inject_fault(kind="drop")
    with pytest.raises(requests.ConnectionError, match="without response"):
        client.get(client.connector_path())
    sim.inject_fault(kind="drop")
    received, exc = raw_exchange(sim, client.connector_path())
    assert (received, exc) == (b"", None), "closed cleanly without one byte of response"
    assert client.get(client.connector_path()).status_code == 200
    assert [(r.status, r.fault) for r in sim.requests] == [(0, "drop"), (0, "drop"), (200, None)]


def test_kind_reset(sim: CloudflareSimulator, client: Client) -> None:
    sim.inject_fault(kind="reset", count=2)
    received, exc = raw_exchange(sim, client.connector_path())
    assert received == b""
    assert isinstance(exc, ConnectionResetError)
    with pytest.raises(requests.ConnectionError, match="reset"):
        client.get(client.connector_path())
    assert client.get(client.connector_path()).status_code == 200


def test_kind_truncated_json(sim: CloudflareSimulator, client: Client) -> None:
    sim.inject_fault(kind="truncated_json")
    response = client.get(client.connector_path())
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert response.content.startswith(b'{"success":true')
    with pytest.raises(requests.JSONDecodeError):
        response.json()
    full = client.get(client.connector_path())
    assert len(response.content) == len(full.content) // 2
    assert full.content.startswith(response.content)


def test_kind_short_body(sim: CloudflareSimulator, client: Client) -> None:
    sim.inject_fault(kind="short_body", count=2)
    received, exc = raw_exchange(sim, client.connector_path())
    assert exc is None
    head, _, body = received.partition(b"\r\n\r\n")
    declared = int(next(line for line in head.split(b"\r\n") if line.startswith(b"Content-Length:")).split(b":")[1])
    assert 0 < len(body) < declared
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        client.get(client.connector_path())
    assert client.get(client.connector_path()).status_code == 200


def test_kind_non_json(sim: CloudflareSimulator, client: Client) -> None:
    sim.inject_fault(kind="non_json")
    sim.inject_fault(kind="non_json", body="<p>maintenance</p>", status=503)
    response = client.get(client.tunnel_path())
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.startswith("<!DOCTYPE html>")
    custom = client.get(client.tunnel_path())
    assert (custom.status_code, custom.text) == (503, "<p>maintenance</p>")


def test_kind_success_false(sim: CloudflareSimulator, client: Client) -> None:
    sim.inject_fault(kind="success_false", code=10000, message="Authentication error")
    sim.inject_fault(kind="success_false")
    error = assert_error(client.get(client.connector_path()), 200, 10000)
    assert error["message"] == "Authentication error"
    assert_error(client.get(client.connector_path()), 200, 1002)


def test_kind_null_result(sim: CloudflareSimulator, client: Client) -> None:
    sim.inject_fault(kind="null_result")
    response = client.get(client.connections_path())
    assert response.status_code == 200
    assert response.json() == {"success": True, "errors": [], "messages": [], "result": None}


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (401, 10000, "Authentication error"),
        (403, 10000, "Authentication error"),
        (403, 9109, "Unauthorized to access requested resource"),
        (404, 1003, "Not found"),
        (409, 1234, "Simulated error"),
    ],
)
def test_kind_error(sim: CloudflareSimulator, client: Client, status: int, code: int, message: str) -> None:
    sim.inject_fault(kind="error", status=status, code=code)
    assert assert_error(client.get(client.connector_path()), status, code)["message"] == message


def test_kind_error_with_chain_and_route_message(sim: CloudflareSimulator, client: Client) -> None:
    sim.inject_fault(kind="error", status=400, code=6003)
    sim.inject_fault(kind="error", status=404, code=7003)
    sim.inject_fault(kind="error", status=400, code=6003, error_chain=[{"code": 6103, "message": "bad key"}])
    first = assert_error(client.get(client.connector_path()), 400, 6003)
    assert first["error_chain"] == [{"code": 6111, "message": "Invalid format for Authorization header"}]
    second = assert_error(client.get(client.connector_path()), 404, 7003)
    assert second["message"] == (
        f"Could not route to /client/v4{client.connector_path()}, perhaps your object identifier is invalid?"
    )
    third = assert_error(client.get(client.connector_path()), 400, 6003)
    assert third["error_chain"] == [{"code": 6103, "message": "bad key"}]


def test_kind_redirect(cloudflare_simulator_factory, sim: CloudflareSimulator, client: Client) -> None:
    elsewhere = cloudflare_simulator_factory({"up_after": 0})
    target = elsewhere.base_url + client.connector_path()
    sim.inject_fault(kind="redirect", location=target, count=None)
    response = client.get(client.connector_path(), headers={"X-Trace": "1"}, timeout=5)
    assert response.history[0].status_code == 302
    assert response.history[0].headers["Location"] == target
    # requests drops the credentials when a redirect leaves the origin: the other server saw none
    assert_error(response, 400, 9106)
    assert "Authorization" not in elsewhere.requests[0].headers
    assert elsewhere.requests[0].headers["X-Trace"] == "1"
    unfollowed = client.session.get(
        sim.base_url + client.connector_path(), allow_redirects=False, headers={"Authorization": "Bearer x"}
    )
    assert (unfollowed.status_code, unfollowed.headers["Location"], unfollowed.content) == (302, target, b"")


def test_kind_redirect_with_other_status(sim: CloudflareSimulator, client: Client) -> None:
    sim.inject_fault(kind="redirect", location="https://example.invalid/", status=307)
    response = client.session.get(sim.base_url + "/user", allow_redirects=False)
    assert response.status_code == 307


def test_unlimited_count_skip_and_method(sim: CloudflareSimulator, client: Client) -> None:
    unlimited = sim.inject_fault(path="/connectors/", kind="error", status=503, code=10001, count=None, skip=2)
    statuses = [client.get(client.connector_path()).status_code for _ in range(6)]
    assert statuses == [200, 200, 503, 503, 503, 503]
    assert (unlimited.hits, unlimited.seen, unlimited.active, unlimited.remaining) == (4, 6, True, None)
    sim.clear_faults()
    assert sim.faults == []
    post_only = sim.inject_fault(kind="error", status=500, code=10001, method="post")
    assert client.get(client.connector_path()).status_code == 200
    assert client.get(client.connector_path(), method="POST").status_code == 500
    assert post_only.hits == 1


def test_first_matching_fault_wins(sim: CloudflareSimulator, client: Client) -> None:
    first = sim.inject_fault(path="/connections", kind="error", status=418, code=1001)
    second = sim.inject_fault(path="/connections", kind="error", status=503, code=10001)
    assert client.get(client.connections_path()).status_code == 418
    assert client.get(client.connections_path()).status_code == 503
    assert (first.hits, second.hits) == (1, 1)
    assert [f.id for f in sim.faults] == [first.id, second.id]


def test_fault_adds_headers(sim: CloudflareSimulator, client: Client) -> None:
    sim.inject_fault(kind="rate_limit", retry_after=2, headers={"CF-RAY": "abc-SIM"})
    response = client.get(client.tunnel_path())
    assert (response.headers["Retry-After"], response.headers["CF-RAY"]) == ("2", "abc-SIM")


def test_faults_never_touch_control_endpoints(sim: CloudflareSimulator, client: Client) -> None:
    fault = sim.inject_fault(kind="drop", count=None)
    assert client.session.get(sim.control_url + "/health").json()["status"] == "ok"
    assert fault.hits == 0


def test_faults_from_the_scenario(cloudflare_simulator_factory, make_client) -> None:
    sim = cloudflare_simulator_factory(
        {
            "up_after": 0,
            "faults": [
                {"kind": "rate_limit", "path": "/connections$", "count": 1, "retry_after": 3},
                {"kind": "server_error", "status": 502, "body": "html", "path": "/cfd_tunnel$", "count": None},
            ],
        }
    )
    client = make_client(sim)
    response = client.get(client.connections_path())
    assert (response.status_code, response.headers["Retry-After"]) == (429, "3")
    assert client.get(client.connections_path()).status_code == 200
    assert [client.get(f"/accounts/{sim.account_id}/cfd_tunnel").status_code for _ in range(2)] == [502, 502]
    assert [f.hits for f in sim.faults] == [1, 2]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "explode"}, "unknown fault kind"),
        ({"kind": "server_error", "status": 404}, "5xx"),
        ({"kind": "server_error", "body": "xml"}, "json"),
        ({"kind": "slow"}, "delay"),
        ({"kind": "slow", "delay": -1}, "delay"),
        ({"kind": "redirect"}, "location"),
        ({"kind": "redirect", "location": "/x", "status": 200}, "301"),
        ({"kind": "error", "status": 403}, "status and code"),
        ({"kind": "drop", "count": 0}, "count"),
        ({"kind": "drop", "skip": -1}, "skip"),
        ({"kind": "drop", "path": "("}, "regular expression"),
        ({"kind": "rate_limit", "retry_after": 1, "retry_after_date": 1}, "not both"),
        ({"kind": "rate_limit", "retry_after": True}, "retry_after"),
        ({"kind": "error", "status": 403, "code": 1, "error_chain": [{"message": "x"}]}, "error_chain"),
        ({"kind": "drop", "headers": {"a": 1}}, "headers"),
        ({"kind": "drop", "colour": "red"}, "unknown fault key"),
        ({"path": "/x"}, "needs a kind"),
    ],
)
def test_invalid_fault_specs(spec: dict, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        Fault.from_dict(spec)


def test_fault_spec_round_trip() -> None:
    spec = {"kind": "rate_limit", "path": "/x", "count": None, "retry_after": 5, "headers": {"A": "b"}}
    fault = Fault.from_dict(spec)
    assert fault.to_spec() == spec
    assert Fault.from_dict(fault.to_spec()).to_spec() == spec
    shown = fault.to_dict()
    assert (shown["hits"], shown["active"], shown["kind"]) == (0, True, "rate_limit")
    assert json.loads(json.dumps(shown)) == shown
