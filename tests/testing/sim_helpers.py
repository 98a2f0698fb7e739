"""Helpers for the simulator's tests: a small HTTP client bound to a simulator, error checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

    from airflow_provider_cftunnel.testing import CloudflareSimulator

_DEFAULT = object()


class Client:
    """GETs against one simulator with a bearer token (or given headers); returns ``requests`` responses."""

    def __init__(self, sim: CloudflareSimulator, session: requests.Session) -> None:
        self.sim = sim
        self.session = session

    def get(
        self,
        path: str,
        *,
        token: Any = _DEFAULT,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        method: str = "GET",
        timeout: float = 5,
    ) -> requests.Response:
        all_headers = {}
        if token is _DEFAULT:
            token = self.sim.api_token
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        all_headers.update(headers or {})
        return self.session.request(
            method, self.sim.base_url + path, headers=all_headers, params=params, timeout=timeout
        )

    # paths of the default ids
    def connector_path(self, connector_id: str | None = None, tunnel_id: str | None = None) -> str:
        return (
            f"/accounts/{self.sim.account_id}/cfd_tunnel/{tunnel_id or self.sim.tunnel_id}"
            f"/connectors/{connector_id or self.sim.connector_id}"
        )

    def connections_path(self, tunnel_id: str | None = None) -> str:
        return f"/accounts/{self.sim.account_id}/cfd_tunnel/{tunnel_id or self.sim.tunnel_id}/connections"

    def tunnel_path(self, tunnel_id: str | None = None) -> str:
        return f"/accounts/{self.sim.account_id}/cfd_tunnel/{tunnel_id or self.sim.tunnel_id}"

    def result(self, path: str, **kwargs: Any) -> Any:
        response = self.get(path, **kwargs)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True
        assert body["errors"] == []
        return body["result"]


def assert_error(response: requests.Response, status: int, code: int | None = None) -> dict[str, Any]:
    """Assert an error answer: the status, a JSON error envelope with a non-empty errors list, and the code."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False
    assert body["result"] is None
    assert body["errors"], "an error body must name at least one error"
    for err in body["errors"]:
        assert isinstance(err["code"], int)
        assert isinstance(err["message"], str)
        assert err["message"]
    if code is not None:
        assert body["errors"][0]["code"] == code, body
    return body["errors"][0]
