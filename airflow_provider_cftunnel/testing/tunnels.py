"""Tunnels and their connectors, each connector driven by a timeline and evaluated at a point in time.

A connector's timeline lists, from some moment on, how many of its connections are live and how many are pending
reconnect (or that it is gone); a tunnel derives its status and activity times from its connectors. Times are
seconds since the simulator started (``now``); rendering turns them into the Cloudflare JSON objects, with
RFC 3339 timestamps relative to the wall-clock epoch of the start. Nothing here speaks HTTP, reads a clock or
takes a lock (:mod:`~airflow_provider_cftunnel.testing.state` does).
"""

from __future__ import annotations

import copy
from bisect import bisect_right
from datetime import UTC, datetime
from typing import Any, NamedTuple

from airflow_provider_cftunnel.testing.scenario_values import derived_uuid

__all__ = ["Connector", "HealthSnapshot", "Tunnel", "format_timestamp"]


def format_timestamp(epoch_seconds: float) -> str:
    """Format a POSIX time as RFC 3339 in UTC with microseconds and a ``Z``, as Cloudflare does.

    :param epoch_seconds: seconds since the Unix epoch.
    """
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: the scalar fields of a connector spec, in the spec's order (its timeline and readiness follow)
_CONNECTOR_FIELDS = ("id", "version", "arch", "config_version", "features", "origin_ip", "colos")
#: the fields of a tunnel spec, in the spec's order (its connectors follow)
_TUNNEL_FIELDS = ("id", "name", "created_at", "deleted_at", "remote_config", "config_src", "metadata")


def _copied_fields(obj: object, names: tuple[str, ...]) -> dict[str, Any]:
    """Return ``{name: a deep copy of obj.name}`` for each name, in order (a spec's part no caller can mutate)."""
    return {name: copy.deepcopy(getattr(obj, name)) for name in names}


class _Conn(NamedTuple):
    slot: int
    generation: int
    live: bool
    opened_at: float


class Connector:
    """One ``cloudflared`` connector of a tunnel, driven by its timeline.

    :param spec: a normalized connector spec (see :mod:`airflow_provider_cftunnel.testing.scenario`).
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        self.id: str = spec["id"]
        self.version: str = spec["version"]
        self.arch: str = spec["arch"]
        self.config_version: int = spec["config_version"]
        self.features: list[str] = list(spec["features"])
        self.origin_ip: str = spec["origin_ip"]
        self.colos: list[str] = list(spec["colos"])
        #: how its ``/ready`` relates to the timeline (``testing/cloudflared.py``); ``None``: it follows it
        self.ready: dict[str, Any] | None = spec.get("ready")
        self.timeline: list[dict[str, Any]] = []
        self.ats: list[float] = []
        self._conn_ids: dict[tuple[int, int], str] = {}
        self._cache: tuple[Any, dict[str, Any] | None] = (None, None)
        self.set_timeline(spec["timeline"])

    def set_timeline(self, timeline: list[dict[str, Any]]) -> None:
        """Replace the timeline (already normalized) and forget rendered answers.

        :param timeline: the new entries.
        """
        self.timeline = [dict(e) for e in timeline]
        self.ats = [e["at"] for e in self.timeline]
        self._cache = (None, None)

    def replan(self, at: float, *entries: dict[str, Any]) -> None:
        """Keep the timeline up to ``at`` (inclusive), drop what it planned later and follow it with ``entries``.

        :param at: seconds since start.
        :param entries: the new entries (normalized), in time order, none before ``at``.
        """
        self.set_timeline([*(e for e in self.timeline if e["at"] <= at), *entries])

    def spec(self) -> dict[str, Any]:
        """Return the connector as a normalized scenario spec (with its current timeline)."""
        return {
            **_copied_fields(self, _CONNECTOR_FIELDS),
            "timeline": [dict(e) for e in self.timeline],
            **({"ready": dict(self.ready)} if self.ready is not None else {}),
        }

    def counts(self, now: float) -> tuple[bool, int, int]:
        """Return ``(present, live, pending)`` at ``now``.

        :param now: seconds since start.
        """
        pos = bisect_right(self.ats, now)
        if pos == 0:
            return False, 0, 0
        entry = self.timeline[pos - 1]
        if entry.get("gone"):
            return False, 0, 0
        return True, entry["live"], entry["pending"]

    def appeared_by(self, now: float) -> bool:
        """Whether the connector had appeared at any time up to ``now``.

        :param now: seconds since start.
        """
        return any(not e.get("gone") for e in self.timeline[: bisect_right(self.ats, now)])

    def _walk(self, pos: int) -> tuple[float, list[_Conn]] | None:
        """Replay the first ``pos`` entries; return ``(run_at, open connections)`` or ``None`` if absent."""
        states: list[_Conn | None] = []
        generations: list[int] = []
        run_at: float | None = None
        for entry in self.timeline[:pos]:
            at = entry["at"]
            if entry.get("gone"):
                states = [None] * len(states)
                run_at = None
                continue
            if run_at is None:
                run_at = at
            live, total = entry["live"], entry["live"] + entry["pending"]
            while len(states) < total:
                states.append(None)
                generations.append(0)
            for i, prev in enumerate(states):
                if i >= total:
                    states[i] = None
                elif i < live:
                    if prev is None or not prev.live:
                        generations[i] += 1
                        states[i] = _Conn(i, generations[i], True, at)
                elif prev is None:
                    generations[i] += 1
                    states[i] = _Conn(i, generations[i], False, at)
                elif prev.live:
                    states[i] = prev._replace(live=False)
        if run_at is None:
            return None
        return run_at, [s for s in states if s is not None]

    def connection_id(self, index: int, generation: int) -> str:
        """Return the stable id of connection ``index`` in its ``generation`` (each reopening is one).

        :param index: the connection slot.
        :param generation: how many times the slot has been opened.
        """
        key = (index, generation)
        conn_id = self._conn_ids.get(key)
        if conn_id is None:
            conn_id = self._conn_ids[key] = derived_uuid(self.id, "connection", index, generation)
        return conn_id

    def render(self, now: float, wall_epoch: float) -> dict[str, Any] | None:
        """Return the Client object Cloudflare would send at ``now``, or ``None`` if the connector is absent.

        The result is cached and shared: never mutate it.

        :param now: seconds since start.
        :param wall_epoch: POSIX time of the start.
        """
        pos = bisect_right(self.ats, now)
        key = (pos, wall_epoch)
        cached_key, cached = self._cache
        if cached_key == key:
            return cached
        walked = self._walk(pos)
        result: dict[str, Any] | None = None
        if walked is not None:
            run_at, conns = walked
            result = {
                "id": self.id,
                "arch": self.arch,
                "config_version": self.config_version,
                "conns": [self._render_conn(c, wall_epoch) for c in conns],
                "features": list(self.features),
                "run_at": format_timestamp(wall_epoch + run_at),
                "version": self.version,
            }
        self._cache = (key, result)
        return result

    def _render_conn(self, conn: _Conn, wall_epoch: float) -> dict[str, Any]:
        conn_id = self.connection_id(conn.slot, conn.generation)
        return {
            "id": conn_id,
            "uuid": conn_id,
            "client_id": self.id,
            "client_version": self.version,
            "colo_name": self.colos[conn.slot % len(self.colos)],
            "is_pending_reconnect": not conn.live,
            "opened_at": format_timestamp(wall_epoch + conn.opened_at),
            "origin_ip": self.origin_ip,
        }


class HealthSnapshot(NamedTuple):
    """A tunnel's derived health at one moment (times in seconds since start)."""

    status: str
    live: int
    pending: int
    active_at: float | None
    inactive_at: float | None


class Tunnel:
    """One ``cfd_tunnel`` and its connectors.

    :param spec: a normalized tunnel spec.
    :param account_id: the owning account.
    """

    def __init__(self, spec: dict[str, Any], account_id: str) -> None:
        self.id: str = spec["id"]
        self.account_id = account_id
        self.name: str = spec["name"]
        self.created_at: str | None = spec["created_at"]
        self.deleted_at: str | None = spec["deleted_at"]
        self.remote_config: bool = spec["remote_config"]
        self.config_src: str = spec["config_src"]
        self.metadata: dict[str, Any] = copy.deepcopy(spec["metadata"])
        self.connectors: dict[str, Connector] = {c["id"]: Connector(c) for c in spec["connectors"]}
        self._health_cache: tuple[Any, HealthSnapshot | None] = (None, None)
        self._render_cache: tuple[Any, dict[str, Any] | None] = (None, None)
        self._event_times: list[float] = []
        self.changed()

    def changed(self) -> None:
        """Recompute what depends on the connectors' timelines or the tunnel's fields (call after changing either)."""
        self._event_times = sorted({at for c in self.connectors.values() for at in c.ats})
        self._health_cache = (None, None)
        self._render_cache = (None, None)

    def spec(self) -> dict[str, Any]:
        """Return the tunnel as a normalized scenario spec (with the connectors' current timelines)."""
        return {
            **_copied_fields(self, _TUNNEL_FIELDS),
            "connectors": [c.spec() for c in self.connectors.values()],
        }

    def last_live_shape(self, at: float) -> list[int]:
        """Return the connections of each connector present the last time (up to ``at``) the tunnel had live ones.

        A tunnel that never had a live connection gets ``[4]``: one connector with 4 connections.

        :param at: seconds since start.
        """
        for moment in reversed([t for t in self._event_times if t <= at]):
            counts = [c.counts(moment) for c in self.connectors.values()]
            if any(live for _, live, _ in counts):
                return [live + pending for present, live, pending in counts if present and live + pending]
        return [4]

    def health(self, now: float) -> HealthSnapshot:
        """Return the status and activity times derived from the connectors at ``now``.

        :param now: seconds since start.
        """
        pos = bisect_right(self._event_times, now)
        cached_key, cached = self._health_cache
        if cached_key == pos and cached is not None:
            return cached
        active_at: float | None = None
        inactive_at: float | None = None
        was_live = False
        live = pending = 0
        for at in self._event_times[:pos]:
            live = pending = 0
            for connector in self.connectors.values():
                _, c_live, c_pending = connector.counts(at)
                live += c_live
                pending += c_pending
            if live and not was_live:
                active_at, inactive_at = at, None
            elif not live and was_live:
                inactive_at = at
            was_live = live > 0
        if not any(c.appeared_by(now) for c in self.connectors.values()):
            status = "inactive"
        elif live:
            status = "degraded" if pending else "healthy"
        else:
            status = "down"
        health = HealthSnapshot(status, live, pending, active_at, inactive_at)
        self._health_cache = (pos, health)
        return health

    def render(self, now: float, wall_epoch: float, *, legacy_connections: bool = False) -> dict[str, Any]:
        """Return the tunnel object Cloudflare would send at ``now`` (cached and shared: never mutate it).

        :param now: seconds since start.
        :param wall_epoch: POSIX time of the start.
        :param legacy_connections: also include the ``connections`` array (dropped by Cloudflare on
            2026-10-05).
        """
        # every connector's state changes only at one of the tunnel's event times: their position is the key
        key = (bisect_right(self._event_times, now), wall_epoch, legacy_connections)
        cached_key, cached = self._render_cache
        if cached is not None and cached_key == key:
            return cached
        health = self.health(now)
        result: dict[str, Any] = {
            "id": self.id,
            "account_tag": self.account_id,
            "created_at": self.created_at or format_timestamp(wall_epoch - 86400),
            "deleted_at": self.deleted_at,
            "name": self.name,
            "conns_active_at": None if health.active_at is None else format_timestamp(wall_epoch + health.active_at),
            "conns_inactive_at": (
                None if health.inactive_at is None else format_timestamp(wall_epoch + health.inactive_at)
            ),
            "tun_type": "cfd_tunnel",
            "metadata": copy.deepcopy(self.metadata),
            "status": health.status,
            "remote_config": self.remote_config,
            "config_src": self.config_src,
        }
        if legacy_connections:
            result["connections"] = [conn for client in self.clients(now, wall_epoch) for conn in client["conns"]]
        self._render_cache = (key, result)
        return result

    def clients(self, now: float, wall_epoch: float) -> list[dict[str, Any]]:
        """Return the Client objects of the connectors present at ``now`` (shared: never mutate them).

        :param now: seconds since start.
        :param wall_epoch: POSIX time of the start.
        """
        clients = []
        for connector in self.connectors.values():
            rendered = connector.render(now, wall_epoch)
            if rendered is not None:
                clients.append(rendered)
        return clients
