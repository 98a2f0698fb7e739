"""cloudflared's own ``/ready``, served by the simulator for every connector it knows.

A real ``cloudflared`` started with ``--metrics ADDR`` answers ``GET http://ADDR/ready`` with ``{"status": 200,
"readyConnections": N, "connectorId": "<uuid>"}`` while it holds a live edge connection, else 503. The
simulator serves the same answer for each connector at ``/cloudflared/<connector_id>/ready`` (one URL per
connector, as one metrics port per replica), computed from the connector's timeline, so the API and
``/ready`` tell one story. A connector's scenario keys ``ready`` and ``flap`` (docs/simulator.md) shape it:

* ``{"mode": "follow", "lag": 0}`` (the default): 200 while the connector has a live connection, ``lag``
  seconds late (``/ready`` trails the API) or, negative, early (the API lists the connector late: the
  registration-to-routing lag of 15-30 s reported in 2026).
* ``{"mode": "disagree"}``: 200 with 4 ready connections whatever the API shows (cloudflared's metrics claimed
  4 connections while the API showed none, in a 2026 report).
* ``{"mode": "never"}``: always 503.
* ``{"mode": "bogus"}``: 200 with an HTML page (a URL that is not cloudflared's metrics server).

A flapping connector (``flap``: its timeline alternates live and pending) flaps on ``/ready`` too. A connector
that has not started or is gone answers 503, where a real stopped ``cloudflared`` refuses the connection
(inject a ``drop`` fault on the path to get that).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from airflow_provider_cftunnel.testing.wire import Response

if TYPE_CHECKING:
    from airflow_provider_cftunnel.testing.state import Connector, SimulatorState

__all__ = ["READY_PREFIX", "ReadyServer"]

#: The path prefix of the connectors' ``/ready`` endpoints.
READY_PREFIX = "/cloudflared/"
_PATH_RE = re.compile(r"/cloudflared/([0-9a-f-]{36})/ready")


def _json(status: int, ready: int, connector_id: str) -> Response:
    body = {"status": status, "readyConnections": ready, "connectorId": connector_id}
    return Response(status, json.dumps(body).encode())


class ReadyServer:
    """
    Answers ``GET /cloudflared/<connector_id>/ready`` from the simulator's state.

    :param state: the simulator's world.
    :param now: returns simulated seconds since start.
    """

    def __init__(self, state: SimulatorState, now: Any) -> None:
        self._state = state
        self._now = now

    def _connector(self, connector_id: str) -> Connector | None:
        with self._state.lock:
            for tunnel in self._state.tunnels.values():
                connector = tunnel.connectors.get(connector_id)
                if connector is not None:
                    return connector
        return None

    def answer(self, method: str, path: str) -> Response | None:
        """
        Return the ``/ready`` answer for ``path``, or ``None`` when ``path`` is not a ``/ready`` path.

        :param method: the HTTP method.
        :param path: the request path.
        """
        if not path.startswith(READY_PREFIX):
            return None
        match = _PATH_RE.fullmatch(path)
        connector = None if match is None or method not in ("GET", "HEAD") else self._connector(match.group(1))
        if connector is None:
            return Response(404, b"404 page not found\n", "text/plain; charset=utf-8")
        spec = connector.ready or {"mode": "follow", "lag": 0.0}
        mode = spec["mode"]
        if mode == "bogus":
            return Response(200, b"<html><body>It works!</body></html>", "text/html")
        if mode == "disagree":
            return _json(200, 4, connector.id)
        if mode == "never":
            return _json(503, 0, connector.id)
        present, live, _ = connector.counts(self._now() - spec["lag"])
        if present and live > 0:
            return _json(200, live, connector.id)
        return _json(503, 0, connector.id)
