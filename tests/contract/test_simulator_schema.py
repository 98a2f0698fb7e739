"""Every 200 body the simulator produces, in every scenario state, validated against Cloudflare's schema.

The schema and its patched defects: see :mod:`tests.support.schema`. A response hook on the HTTP session validates
EVERY answer the tests receive with :func:`~tests.support.schema.check`.

Bodies spoiled on purpose by injected faults (truncated JSON, HTML, ``result: null``...) are out of scope here;
the fault tests cover them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from airflow_provider_cftunnel.testing import (
    DEFAULT_GLOBAL_KEY,
    DEFAULT_GLOBAL_KEY_EMAIL,
    DISABLED_API_TOKEN,
    NO_PERMISSION_API_TOKEN,
    OTHER_ACCOUNT_API_TOKEN,
    OTHER_ACCOUNT_ID,
    CloudflareSimulator,
)
from tests.support.cloudflare_api import GLOBAL_KEY_HEADERS, INACTIVE_TOKEN_STATUSES
from tests.support.schema import FAILURE, OPENAPI, SPEC, Validated, check, published_spec


@pytest.fixture(scope="module")
def seen() -> Validated:
    return Validated()


@pytest.fixture
def session(seen: Validated) -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.trust_env = False
        http.hooks["response"].append(lambda response, *args, **kwargs: check(response, seen))
        yield http


@pytest.fixture
def start(session: requests.Session) -> Iterator[Callable[..., Api]]:
    started: list[CloudflareSimulator] = []

    def make(scenario: Any = None, **kwargs: Any) -> Api:
        sim = CloudflareSimulator(scenario, **kwargs).start()
        started.append(sim)
        return Api(sim, session)

    yield make
    for sim in started:
        sim.stop()


class Api:
    """Calls every read endpoint of one simulator; the session's hook validates each answer."""

    def __init__(self, sim: CloudflareSimulator, session: requests.Session) -> None:
        self.sim = sim
        self.session = session

    def get(self, path: str, token: str | None = None, method: str = "GET", **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {"Authorization": f"Bearer {token or self.sim.api_token}"})
        return self.session.request(method, self.sim.base_url + path, headers=headers, timeout=5, **kwargs)

    def tunnel(self, tunnel_id: str | None = None) -> str:
        return f"/accounts/{self.sim.account_id}/cfd_tunnel/{tunnel_id or self.sim.tunnel_id}"

    def everything(self) -> dict[str, Any]:
        """GET every read endpoint for the default tunnel and each present connector; return the results."""
        results: dict[str, Any] = {}
        for name, path in (
            ("tunnels", f"/accounts/{self.sim.account_id}/cfd_tunnel"),
            ("tunnel", self.tunnel()),
            ("connections", self.tunnel() + "/connections"),
        ):
            response = self.get(path)
            assert response.status_code == 200, response.text
            results[name] = response.json()["result"]
        for client in results["connections"]:
            assert self.get(self.tunnel() + f"/connectors/{client['id']}").status_code == 200
        results["connector"] = self.get(self.tunnel() + f"/connectors/{self.sim.connector_id}")
        return results


def timeline(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"accounts": [{"tunnels": [{"connectors": [{"timeline": list(entries)}]}]}]}


# ---- every state ----------------------------------------------------------------------------------------------


def test_before_up(start: Callable[..., Api]) -> None:
    api = start()  # default scenario: connections come up after 3 s
    state = api.everything()
    assert state["connections"] == []
    assert state["tunnel"]["status"] == "inactive"
    assert state["tunnel"]["conns_active_at"] is None
    assert state["connector"].status_code == 404


def test_up(start: Callable[..., Api]) -> None:
    state = start({"up_after": 0}).everything()
    assert state["tunnel"]["status"] == "healthy"
    assert state["connector"].status_code == 200


def test_degraded_down_and_gone(start: Callable[..., Api]) -> None:
    api = start(
        timeline(
            {"at": 0, "live": 4},
            {"at": 10, "live": 2, "pending": 2},
            {"at": 20, "live": 0, "pending": 4},
            {"at": 30, "gone": True},
        )
    )
    statuses = []
    for _ in range(4):
        state = api.everything()
        statuses.append(state["tunnel"]["status"])
        api.sim.advance(10)
    assert statuses == ["healthy", "degraded", "down", "down"]
    assert state["connections"] == []
    assert state["tunnel"]["conns_inactive_at"] is not None


def test_restart_and_replicas(start: Callable[..., Api]) -> None:
    api = start({"up_after": 0, "replicas": 3})
    api.sim.restart_connector(tracking=30)
    state = api.everything()
    assert len(state["connections"]) == 4
    assert state["tunnel"]["status"] == "degraded"
    api.sim.advance(30)
    state = api.everything()
    assert len(state["connections"]) == 3
    assert state["connector"].status_code == 404


def test_twenty_five_replicas(start: Callable[..., Api]) -> None:
    state = start({"up_after": 0, "replicas": 25}).everything()
    assert len(state["connections"]) == 25


def test_legacy_connections_and_deleted_tunnels(start: Callable[..., Api]) -> None:
    api = start({"up_after": 0, "legacy_tunnel_connections": True})
    assert len(api.everything()["tunnel"]["connections"]) == 4
    api.sim.delete_tunnel(api.sim.tunnel_id)
    state = api.everything()
    assert state["tunnel"]["deleted_at"] is not None
    assert api.get(f"/accounts/{api.sim.account_id}/cfd_tunnel", params={"is_deleted": "true"}).status_code == 200


def test_lists_paginated_filtered_and_empty(start: Callable[..., Api]) -> None:
    tunnels = [{"name": f"t{i}", "connectors": [{"up_after": 0}] if i % 2 else []} for i in range(7)]
    api = start({"accounts": [{"tunnels": tunnels}, {"id": OTHER_ACCOUNT_ID}]})
    path = f"/accounts/{api.sim.account_id}/cfd_tunnel"
    counts = [len(api.get(path, params={"per_page": 3, "page": page}).json()["result"]) for page in (1, 2, 3, 4)]
    assert counts == [3, 3, 1, 0]
    for params in ({"status": "healthy"}, {"status": "inactive"}, {"name": "t3"}, {"is_deleted": "false"}):
        assert api.get(path, params=params).json()["result"]
    empty = api.get(f"/accounts/{OTHER_ACCOUNT_ID}/cfd_tunnel").json()
    assert (empty["result"], empty["result_info"]["total_count"]) == ([], 0)


def test_verify_endpoints(start: Callable[..., Api]) -> None:
    api = start()
    for token, status in {None: "active", **INACTIVE_TOKEN_STATUSES}.items():
        assert api.get("/user/tokens/verify", token).json()["result"]["status"] == status
    assert api.get(f"/accounts/{api.sim.account_id}/tokens/verify", api.sim.account_token).status_code == 200
    assert api.get("/user", headers=GLOBAL_KEY_HEADERS).status_code == 200


def test_delete_connections(start: Callable[..., Api]) -> None:
    api = start({"up_after": 0})
    assert api.get(api.tunnel() + "/connections", method="DELETE").status_code == 200
    assert api.everything()["connections"] == []


def test_error_bodies(start: Callable[..., Api], seen: Validated) -> None:
    api = start({"up_after": 0})
    sim = api.sim
    before = len(seen.errors)
    cases = [
        api.get(api.tunnel(), headers={}),
        api.get(api.tunnel(), "unknown"),
        api.get("/user/tokens/verify", "unknown"),
        api.get("/user/tokens/verify", sim.account_token),
        api.get(api.tunnel(), DEFAULT_GLOBAL_KEY),
        api.get(api.tunnel(), headers={"X-Auth-Email": DEFAULT_GLOBAL_KEY_EMAIL, "X-Auth-Key": "0" * 37}),
        api.get(api.tunnel(), OTHER_ACCOUNT_API_TOKEN),
        api.get(api.tunnel(), DISABLED_API_TOKEN),
        api.get(api.tunnel(), NO_PERMISSION_API_TOKEN),
        api.get(f"/accounts/{OTHER_ACCOUNT_ID}/cfd_tunnel"),
        api.get("/accounts/bad/cfd_tunnel"),
        api.get(api.tunnel("not-a-uuid")),
        api.get(api.tunnel(sim.connector_id)),
        api.get(api.tunnel() + f"/connectors/{sim.tunnel_id}"),
        api.get(f"/accounts/{sim.account_id}/cfd_tunnel", params={"per_page": 5000}),
        api.get("/no/such/route"),
        api.get(api.tunnel(), method="PATCH"),
    ]
    sim.inject_fault(kind="rate_limit", retry_after=1)
    sim.inject_fault(kind="server_error", status=503)
    sim.inject_fault(kind="error", status=403, code=9109)
    sim.inject_fault(kind="success_false")
    cases += [api.get(api.tunnel()) for _ in range(4)]
    sim.set_rate_limit(1, 60)
    cases += [api.get(api.tunnel()) for _ in range(2)]
    assert [r.status_code for r in cases[-6:]] == [429, 503, 403, 200, 200, 429]
    assert seen.errors[before:] == [
        9106,
        10000,
        1000,
        1000,
        6003,
        9103,
        9109,
        10000,
        10000,
        7003,
        7003,
        1001,
        1003,
        1003,
        1001,
        7000,
        7001,
        971,
        10001,
        9109,
        1002,
        971,
    ]


# ---- the checks themselves -------------------------------------------------------------------------------------


def test_every_schema_operation_was_validated() -> None:
    """Self-contained: drives every operation of the patched schema, in every tunnel status, through a validating
    session of its own, so the coverage holds whichever tests run before it, or none."""
    mine = Validated()
    sim = CloudflareSimulator(
        timeline({"at": 10, "live": 4}, {"at": 20, "live": 2, "pending": 2}, {"at": 30, "live": 0, "pending": 4})
    ).start()
    try:
        with requests.Session() as http:
            http.trust_env = False
            http.hooks["response"].append(lambda response, *args, **kwargs: check(response, mine))
            api = Api(sim, http)
            statuses = []
            for _ in range(4):  # before the first connection, then up, degraded and down
                statuses.append(api.everything()["tunnel"]["status"])
                sim.advance(10)
            assert api.get("/user/tokens/verify").status_code == 200
            assert api.get(f"/accounts/{sim.account_id}/tokens/verify", sim.account_token).status_code == 200
            assert api.get(api.tunnel() + "/connections", method="DELETE").status_code == 200
    finally:
        sim.stop()
    assert statuses == ["inactive", "healthy", "degraded", "down"]
    expected = {f"{method.upper()} {path}" for path, item in SPEC["paths"].items() for method in item}
    assert expected - mine.operations == set()
    assert mine.tunnel_statuses == {"inactive", "healthy", "degraded", "down"}


def test_the_timestamp_defect_is_real(start: Callable[..., Api]) -> None:
    """The published schema rejects what the real API sends for an inactive tunnel (null timestamps)."""
    unpatched = published_spec()
    unpatched["servers"] = SPEC["servers"]
    api = start()
    response = api.get(api.tunnel())
    assert response.json()["result"]["conns_active_at"] is None
    validator = OpenAPI.from_dict(unpatched)
    with pytest.raises(Exception, match="not valid under any of the given schemas"):
        validator.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))
    # the nulls are the only problem: with timestamps in their place the published schema accepts the body
    body = response.json()
    for key in ("deleted_at", "conns_active_at", "conns_inactive_at"):
        body["result"][key] = "2026-01-01T00:00:00Z"
    response._content = json.dumps(body).encode()
    validator.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))


def test_the_validator_catches_drift(start: Callable[..., Api]) -> None:
    """A body that drifts from the schema fails validation, so the checks above have teeth."""
    api = start({"up_after": 0})
    response = api.get(api.tunnel() + "/connections")
    body = response.json()
    body["result"][0]["conns"][0]["is_pending_reconnect"] = "false"
    response._content = json.dumps(body).encode()
    with pytest.raises(Exception, match="is not of type 'boolean'"):
        OPENAPI.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))
    with pytest.raises(Exception, match=r"should be non-empty|is too short"):
        FAILURE.validate({"success": False, "errors": [], "messages": [], "result": None})
