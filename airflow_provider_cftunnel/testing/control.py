"""The control endpoints under ``/__simulator__``: the simulator's public methods, over HTTP, for another process.

:data:`ROUTES` maps ``(method, route)`` to a handler that takes the simulator and the request body and returns
JSON-ready data; :func:`dispatch` answers one request. Handlers use the simulator's public methods only.
Errors answer ``{"error": message}``: 404 for an unknown route (or an unknown tunnel or connector), 400 for a
body that is not a JSON object or a value the simulator refuses. Control requests are never logged or faulted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from airflow_provider_cftunnel.testing.faults import Fault
from airflow_provider_cftunnel.testing.wire import CONTROL_PREFIX, Response, dumps

__all__ = ["ROUTES", "Handler", "dispatch"]

#: What the handlers drive: a :class:`~airflow_provider_cftunnel.testing.server.CloudflareSimulator`, typed
#: ``Any`` here because the server module imports this one (the handlers use its public methods only).
CloudflareSimulator = Any

#: A control handler: ``handler(simulator, body)`` returns the JSON-ready answer.
Handler = Callable[[CloudflareSimulator, bytes], Any]

#: ``(method, route)`` -> handler; a route is the path after :data:`CONTROL_PREFIX`, e.g. ``/health``.
ROUTES: dict[tuple[str, str], Handler] = {}


def dispatch(sim: CloudflareSimulator, method: str, path: str, body: bytes) -> Response:
    """Answer one control request.

    :param sim: the simulator to control.
    :param method: the HTTP method.
    :param path: the request path, starting with :data:`CONTROL_PREFIX`.
    :param body: the request body.
    """
    route = path[len(CONTROL_PREFIX) :]
    try:
        handler = ROUTES.get((method, route))
        if handler is None:
            raise LookupError(f"no control endpoint {method} {CONTROL_PREFIX}{route}")
        result = handler(sim, body)
    except LookupError as exc:
        return Response(404, dumps({"error": str(exc)}))
    except (TypeError, ValueError) as exc:
        return Response(400, dumps({"error": str(exc)}))
    return Response(200, dumps(result))


def route(method: str, path: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``method path`` in :data:`ROUTES`.

    :param method: the HTTP method.
    :param path: the route, after :data:`CONTROL_PREFIX`.
    """

    def register(handler: Handler) -> Handler:
        ROUTES[(method, path)] = handler
        return handler

    return register


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"the body is not JSON: {exc}") from exc


def _object(body: bytes) -> Any:
    """Read the body as a JSON object (a dict; its missing keys read ``None``, which the simulator refuses)."""
    data = _json(body)
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


# ---- the log, the scenario and time ----------------------------------------------------------------------


@route("GET", "/health")
def _health(sim: CloudflareSimulator, body: bytes) -> Any:
    return {
        "status": "ok",
        "base_url": sim.base_url,
        "elapsed": sim.elapsed(),
        "pid": os.getpid(),
        "requests": len(sim.requests),
    }


@route("GET", "/requests")
def _requests(sim: CloudflareSimulator, body: bytes) -> Any:
    return [record.to_dict() for record in sim.requests]


@route("POST", "/reset-requests")
def _reset_requests(sim: CloudflareSimulator, body: bytes) -> Any:
    return {"cleared": sim.clear_requests()}


@route("GET", "/scenario")
def _scenario(sim: CloudflareSimulator, body: bytes) -> Any:
    return sim.scenario


@route("POST", "/advance")
def _advance(sim: CloudflareSimulator, body: bytes) -> Any:
    sim.advance(float(_object(body).get("seconds", 0)))
    return {"elapsed": sim.elapsed()}


# ---- faults and the rate limit ----------------------------------------------------------------------------


@route("GET", "/faults")
def _faults(sim: CloudflareSimulator, body: bytes) -> Any:
    return [fault.to_dict() for fault in sim.faults]


@route("POST", "/faults")
def _add_faults(sim: CloudflareSimulator, body: bytes) -> Any:
    data = _json(body)
    if not isinstance(data, dict | list):
        raise ValueError("the body must be a JSON object")
    faults = [Fault.from_dict(spec) for spec in (data if isinstance(data, list) else [data])]  # all valid, or none
    return {"faults": [sim.add_fault(fault).to_dict() for fault in faults]}


@route("DELETE", "/faults")
def _clear_faults(sim: CloudflareSimulator, body: bytes) -> Any:
    count = len(sim.faults)
    sim.clear_faults()
    return {"cleared": count}


@route("POST", "/rate-limit")
def _set_rate_limit(sim: CloudflareSimulator, body: bytes) -> Any:
    data = _object(body)
    period = float(data.get("period", 300.0))
    sim.set_rate_limit(
        data.get("requests"),
        period,
        headers=data.get("headers", "ietf"),
        dashboard_rate=data.get("dashboard_rate", 0.0),
        window=data.get("window", "sliding"),
        reset=data.get("reset", "more"),
    )
    return sim.rate_limit or {"requests": None, "period": period}


@route("GET", "/rate-limit")
def _rate_limit_status(sim: CloudflareSimulator, body: bytes) -> Any:
    return sim.rate_limit_status()


@route("POST", "/rate-limit/spend")
def _spend_rate_limit(sim: CloudflareSimulator, body: bytes) -> Any:
    data = _object(body)
    return {"accepted": sim.spend_rate_limit(data.get("count", 1), data.get("user"))}


@route("POST", "/rate-limit/reset")
def _reset_rate_limit(sim: CloudflareSimulator, body: bytes) -> Any:
    sim.reset_rate_limit()
    return sim.rate_limit_status()


# ---- the world --------------------------------------------------------------------------------------------


@route("POST", "/connectors")
def _set_connector(sim: CloudflareSimulator, body: bytes) -> Any:
    data = _object(body)
    counts = {"live": data.get("live", 4), "pending": data.get("pending", 0)}
    if data.get("new", False):
        connector_id = sim.add_connector(data.get("tunnel_id"), connector_id=data.get("connector_id"), **counts)
    else:
        connector_id = sim.set_connector(data.get("tunnel_id"), data.get("connector_id"), **counts)
    return {"connector_id": connector_id}


@route("POST", "/remove-connector")
def _remove_connector(sim: CloudflareSimulator, body: bytes) -> Any:
    data = _object(body)
    sim.remove_connector(data.get("tunnel_id"), data.get("connector_id"), tracking=float(data.get("tracking", 0.0)))
    return {"removed": data.get("connector_id") or sim.connector_id}


@route("POST", "/ready")
def _set_ready(sim: CloudflareSimulator, body: bytes) -> Any:
    data = _object(body)
    connector_id = data.get("connector_id") or sim.connector_id
    sim.set_ready(connector_id, mode=data.get("mode", "follow"), lag=data.get("lag", 0.0))
    return {"connector_id": connector_id, "ready_url": sim.ready_url(connector_id)}


@route("POST", "/fleets")
def _add_fleet(sim: CloudflareSimulator, body: bytes) -> Any:
    data = _object(body)
    options = ("account_id", "up_after", "connections", "replicas", "statuses")
    ids = sim.add_fleet(data.get("prefix"), data.get("count"), **{k: data[k] for k in options if k in data})
    return {"tunnel_ids": ids}


@route("POST", "/tunnel-status")
def _set_tunnel_status(sim: CloudflareSimulator, body: bytes) -> Any:
    data = _object(body)
    tunnel_id = data.get("tunnel_id")
    status = sim.set_tunnel_status(tunnel_id, data.get("status"), at=data.get("at"), tracking=data.get("tracking"))
    return {"tunnel_id": tunnel_id or sim.tunnel_id, "status": status}


@route("GET", "/tunnel-statuses")
def _tunnel_statuses(sim: CloudflareSimulator, body: bytes) -> Any:
    return sim.tunnel_statuses()
