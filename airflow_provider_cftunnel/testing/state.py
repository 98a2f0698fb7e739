"""The simulator's world: accounts, tunnels, connectors and credentials, evaluated at a point in time.

Times are seconds since the simulator started (``now``); rendering turns them into RFC 3339 timestamps
relative to the wall-clock epoch of the start. Nothing here speaks HTTP or reads a clock.
"""

from __future__ import annotations

import copy
import threading
from bisect import bisect_right
from datetime import UTC, datetime
from typing import Any, NamedTuple

from airflow_provider_cftunnel.testing.scenario import (
    DEFAULT_ARCH,
    DEFAULT_VERSION,
    MAX_CONNECTORS_PER_TUNNEL,
    UUID_RE,
    ScenarioError,
    derived_uuid,
    fleet_tunnels,
    normalize_connector,
    normalize_token,
    normalize_tunnel,
)

__all__ = ["Connector", "SimulatorState", "Tunnel", "format_timestamp"]

_STATUSES = ("inactive", "healthy", "degraded", "down")


def format_timestamp(epoch_seconds: float) -> str:
    """Format a POSIX time as RFC 3339 in UTC with microseconds and a ``Z``, as Cloudflare does.

    :param epoch_seconds: seconds since the Unix epoch.
    """
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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

    def spec(self) -> dict[str, Any]:
        """Return the connector as a normalized scenario spec (with its current timeline)."""
        return {
            "id": self.id,
            "version": self.version,
            "arch": self.arch,
            "config_version": self.config_version,
            "features": list(self.features),
            "origin_ip": self.origin_ip,
            "colos": list(self.colos),
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


class TunnelHealth(NamedTuple):
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
        self._health_cache: tuple[Any, TunnelHealth | None] = (None, None)
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
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at,
            "deleted_at": self.deleted_at,
            "remote_config": self.remote_config,
            "config_src": self.config_src,
            "metadata": copy.deepcopy(self.metadata),
            "connectors": [c.spec() for c in self.connectors.values()],
        }

    def health(self, now: float) -> TunnelHealth:
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
        health = TunnelHealth(status, live, pending, active_at, inactive_at)
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


class SimulatorState:
    """Everything the simulated API knows, behind one lock.

    :param scenario: a normalized scenario (see :func:`~airflow_provider_cftunnel.testing.scenario.
        normalize_scenario`).
    """

    def __init__(self, scenario: dict[str, Any]) -> None:
        self.lock = threading.RLock()
        self.tokens: dict[str, dict[str, Any]] = {t["token"]: dict(t) for t in scenario["api_tokens"]}
        self.global_keys: dict[str, dict[str, Any]] = {k["email"].lower(): dict(k) for k in scenario["global_keys"]}
        self.global_key_values = {k["key"] for k in scenario["global_keys"]}
        self.user: dict[str, Any] = dict(scenario["user"])
        self.legacy_tunnel_connections: bool = scenario["legacy_tunnel_connections"]
        #: the tunnel list without ``is_deleted`` lists deleted tunnels too (Cloudflare before 2025-12-01)
        self.legacy_list_deleted: bool = scenario.get("legacy_list_deleted", False)
        self.accounts: dict[str, dict[str, Any]] = {}
        self.tunnels: dict[str, Tunnel] = {}
        for account in scenario["accounts"]:
            self.accounts[account["id"]] = {"id": account["id"], "name": account["name"], "tunnels": []}
            for tunnel_spec in account["tunnels"]:
                tunnel = Tunnel(tunnel_spec, account["id"])
                self.tunnels[tunnel.id] = tunnel
                self.accounts[account["id"]]["tunnels"].append(tunnel.id)

    def to_scenario(self) -> dict[str, Any]:
        """Return the current world as a normalized scenario (without ``rate_limit`` and ``faults``)."""
        with self.lock:
            return {
                "api_tokens": [dict(t) for t in self.tokens.values()],
                "global_keys": [dict(k) for k in self.global_keys.values()],
                "user": dict(self.user),
                "accounts": [
                    {
                        "id": account["id"],
                        "name": account["name"],
                        "tunnels": [self.tunnels[t].spec() for t in account["tunnels"]],
                    }
                    for account in self.accounts.values()
                ],
                "legacy_tunnel_connections": self.legacy_tunnel_connections,
                "legacy_list_deleted": self.legacy_list_deleted,
            }

    # ---- lookups -------------------------------------------------------------------------------------

    def tunnel(self, tunnel_id: str, account_id: str | None = None) -> Tunnel:
        """Return a tunnel by id.

        :param tunnel_id: the tunnel's UUID.
        :param account_id: if given, the tunnel must belong to this account.
        :raises KeyError: if there is no such tunnel.
        """
        tunnel = self.tunnels.get(tunnel_id)
        if tunnel is None or (account_id is not None and tunnel.account_id != account_id):
            raise KeyError(f"no tunnel {tunnel_id}" + (f" in account {account_id}" if account_id else ""))
        return tunnel

    def account_tunnels(self, account_id: str) -> list[Tunnel]:
        """Return an account's tunnels in creation order.

        :param account_id: the account id.
        """
        return [self.tunnels[t] for t in self.accounts[account_id]["tunnels"]]

    # ---- mutations (callers hold no lock; these take it) ---------------------------------------------

    def add_account(self, account_id: str, name: str) -> None:
        """Add an account without tunnels.

        :param account_id: 32 hex digits.
        :param name: the account's name.
        """
        with self.lock:
            if account_id in self.accounts:
                raise ValueError(f"account {account_id} already exists")
            self.accounts[account_id] = {"id": account_id, "name": name, "tunnels": []}

    def add_tunnel(self, account_id: str, spec: dict[str, Any]) -> str:
        """Add a tunnel to an account.

        :param account_id: the owning account (must exist).
        :param spec: a tunnel spec (normalized here).
        """
        with self.lock:
            if account_id not in self.accounts:
                raise KeyError(f"no account {account_id}")
            count = len(self.tunnels)
            normalized = normalize_tunnel(
                spec, "tunnel", derived_uuid(account_id, "added-tunnel", count), f"cfsim-tunnel-{count + 1}"
            )
            if normalized["id"] in self.tunnels:
                raise ValueError(f"tunnel {normalized['id']} already exists")
            self.tunnels[normalized["id"]] = Tunnel(normalized, account_id)
            self.accounts[account_id]["tunnels"].append(normalized["id"])
            return str(normalized["id"])

    def add_fleet(self, fleet: dict[str, Any], now: float) -> list[str]:
        """
        Add a fleet of tunnels made at ``now`` and return their ids in order.

        See :func:`~airflow_provider_cftunnel.testing.scenario.fleet_tunnels`.

        :param fleet: a normalized fleet (its account must exist).
        :param now: seconds since start.
        :raises KeyError: if the account does not exist.
        :raises ValueError: if a tunnel id exists already (the same fleet twice).
        """
        specs = [
            normalize_tunnel(spec, f"tunnel {spec['name']}", spec["id"], spec["name"])
            for spec in fleet_tunnels(fleet, base=now)
        ]
        with self.lock:
            account = self.accounts.get(fleet["account_id"])
            if account is None:
                raise KeyError(f"no account {fleet['account_id']}")
            clash = next((spec["id"] for spec in specs if spec["id"] in self.tunnels), None)
            if clash is not None:
                raise ValueError(f"tunnel {clash} already exists (a fleet with that prefix was added before?)")
            for spec in specs:
                self.tunnels[spec["id"]] = Tunnel(spec, account["id"])
                account["tunnels"].append(spec["id"])
        return [spec["id"] for spec in specs]

    def set_tunnel_status(self, tunnel_id: str, status: str, *, at: float, tracking: float | None = None) -> None:
        """Change a tunnel's connectors from ``at`` on so that its derived status becomes ``status``.

        Whatever the connectors' timelines planned after ``at`` is dropped. The connectors change as they would
        on Cloudflare, so the tunnel's ``status`` and its ``/connections`` never disagree:

        * ``down``: every connection of every present connector drops (pending reconnect); with ``tracking``
          the connectors vanish that many seconds later (``0``: at once), else they stay tracked;
        * ``healthy``: every connection of every present connector is live (dropped ones reconnect, with new
          ids); a tunnel without a present connector gets new connectors shaped as the last time it had live
          connections (or one connector with 4 connections);
        * ``degraded``: as ``healthy``, then one connection of the first connector pending;
        * ``inactive``: only for a tunnel that never ran (Cloudflare's meaning); cancels its planned runs.

        :param tunnel_id: the tunnel.
        :param status: ``healthy``, ``degraded``, ``down`` or ``inactive``.
        :param at: seconds since start when the change happens.
        :param tracking: ``down`` only: seconds until the dropped connectors vanish; ``None``: they stay.
        :raises KeyError: if there is no such tunnel.
        :raises ValueError: on an unknown status, a deleted tunnel, ``inactive`` for a tunnel that ran, or
            ``down`` for one that never ran.
        """
        if status not in _STATUSES:
            raise ValueError(f"status must be one of {', '.join(_STATUSES)}, got {status!r}")
        bad_tracking = isinstance(tracking, bool) or not isinstance(tracking, int | float) or tracking < 0
        if tracking is not None and bad_tracking:
            raise ValueError(f"tracking must be a number of seconds >= 0 or None, got {tracking!r}")
        with self.lock:
            tunnel = self.tunnel(tunnel_id)
            if tunnel.deleted_at is not None:
                raise ValueError(f"tunnel {tunnel_id} is deleted")
            connectors = list(tunnel.connectors.values())
            ran = any(c.appeared_by(at) for c in connectors)
            present = [(c, c.counts(at)) for c in connectors if c.counts(at)[0]]
            if status == "inactive" and ran:
                raise ValueError(f"tunnel {tunnel_id} ran before: Cloudflare's inactive means it never ran")
            if status == "down" and not ran:
                raise ValueError(f"tunnel {tunnel_id} never ran: down means it ran before (make it healthy first)")
            for connector in connectors:  # forget what was planned after `at`
                if connector.ats and connector.ats[-1] > at:
                    connector.set_timeline([e for e in connector.timeline if e["at"] <= at])
            if status == "down":
                for connector, (_, live, pending) in present:
                    if tracking == 0:
                        self._append(connector, {"at": at, "gone": True}, at)
                    else:
                        more = [] if tracking is None else [{"at": at + tracking, "gone": True}]
                        self._append(connector, {"at": at, "live": 0, "pending": live + pending}, at, *more)
            elif status in ("healthy", "degraded"):
                shape: list[tuple[Connector | None, int]] = [
                    (c, live + pending or 4) for c, (_, live, pending) in present
                ]
                if not shape:
                    shape = [(None, total) for total in self._last_live_shape(tunnel, at)]
                for index, (target, total) in enumerate(shape):
                    live, pending = total, 0
                    if index == 0 and status == "degraded":
                        live, pending = max(1, total - 1), 1
                    entry = {"at": at, "live": live, "pending": pending}
                    if target is None:
                        new_id = derived_uuid(tunnel.id, "status-connector", len(tunnel.connectors), at)
                        spec = normalize_connector({"id": new_id, "timeline": [entry]}, "connector", new_id)
                        tunnel.connectors[new_id] = Connector(spec)
                    else:
                        self._append(target, entry, at)
            tunnel.changed()

    @staticmethod
    def _last_live_shape(tunnel: Tunnel, at: float) -> list[int]:
        """Return the connections of each connector present the last time (up to ``at``) the tunnel had live ones."""
        for moment in reversed([t for t in tunnel._event_times if t <= at]):
            counts = [c.counts(moment) for c in tunnel.connectors.values()]
            if any(live for _, live, _ in counts):
                return [live + pending for present, live, pending in counts if present and live + pending]
        return [4]

    def statuses(self, now: float, *, account_id: str | None = None, prefix: str | None = None) -> dict[str, str]:
        """Return ``{tunnel id: derived status}`` at ``now`` for the tunnels that are not deleted.

        :param now: seconds since start.
        :param account_id: only this account's tunnels; ``None``: every account.
        :param prefix: only tunnels whose name starts with this.
        """
        with self.lock:
            ids = self.accounts[account_id]["tunnels"] if account_id is not None else list(self.tunnels)
            return {
                tunnel.id: tunnel.health(now).status
                for tunnel in (self.tunnels[t] for t in ids)
                if tunnel.deleted_at is None and (prefix is None or tunnel.name.startswith(prefix))
            }

    def delete_tunnel(self, tunnel_id: str, deleted_at: str, now: float) -> None:
        """Mark a tunnel deleted; its connectors vanish now.

        :param tunnel_id: the tunnel.
        :param deleted_at: the RFC 3339 deletion time.
        :param now: seconds since start.
        """
        with self.lock:
            tunnel = self.tunnel(tunnel_id)
            tunnel.deleted_at = deleted_at
            for connector in tunnel.connectors.values():
                if connector.counts(now)[0] or any(at > now for at in connector.ats):
                    self._append(connector, {"at": now, "gone": True}, now)
            tunnel.changed()

    @staticmethod
    def _append(connector: Connector, entry: dict[str, Any], now: float, *more: dict[str, Any]) -> None:
        kept = [e for e in connector.timeline if e["at"] <= now]
        connector.set_timeline([*kept, entry, *more])

    def set_connector(
        self,
        tunnel_id: str,
        connector_id: str | None,
        *,
        live: int,
        pending: int,
        now: float,
        version: str | None = None,
        arch: str | None = None,
    ) -> str:
        """Give a connector ``live`` and ``pending`` connections from ``now`` on (creating it if new).

        Entries of its timeline later than ``now`` are dropped.

        :param tunnel_id: the tunnel.
        :param connector_id: the connector's UUID; ``None`` creates one with a fresh id.
        :param live: connections serving traffic.
        :param pending: connections pending reconnect.
        :param now: seconds since start.
        :param version: the ``cloudflared`` version (new connectors; default ``2026.11.0``).
        :param arch: the architecture (new connectors; default ``linux_amd64``).
        :returns: the connector id.
        """
        if isinstance(live, bool) or not isinstance(live, int) or live < 0:
            raise ValueError(f"live must be an integer >= 0, got {live!r}")
        if isinstance(pending, bool) or not isinstance(pending, int) or pending < 0:
            raise ValueError(f"pending must be an integer >= 0, got {pending!r}")
        with self.lock:
            tunnel = self.tunnel(tunnel_id)
            entry = {"at": now, "live": live, "pending": pending}
            if connector_id is None:
                connector_id = derived_uuid(tunnel_id, "set-connector", len(tunnel.connectors), now)
            connector = tunnel.connectors.get(connector_id)
            if connector is None:
                if not UUID_RE.match(connector_id):
                    raise ValueError(f"connector id must be a lowercase UUID, got {connector_id!r}")
                present = sum(1 for c in tunnel.connectors.values() if c.counts(now)[0])
                if present >= MAX_CONNECTORS_PER_TUNNEL:
                    raise ValueError(
                        f"tunnel {tunnel_id} already has {present} connectors; Cloudflare allows "
                        f"{MAX_CONNECTORS_PER_TUNNEL}"
                    )
                spec = normalize_connector(
                    {
                        "id": connector_id,
                        "version": version or DEFAULT_VERSION,
                        "arch": arch or DEFAULT_ARCH,
                        "timeline": [entry],
                    },
                    "connector",
                    connector_id,
                )
                tunnel.connectors[connector_id] = Connector(spec)
            else:
                if version is not None:
                    connector.version = version
                if arch is not None:
                    connector.arch = arch
                self._append(connector, entry, now)
            tunnel.changed()
            return connector_id

    def remove_connector(self, tunnel_id: str, connector_id: str, *, now: float, tracking: float = 0.0) -> None:
        """Stop a connector: with ``tracking`` > 0 its connections go pending now and it vanishes later.

        :param tunnel_id: the tunnel.
        :param connector_id: the connector.
        :param now: seconds since start.
        :param tracking: seconds Cloudflare keeps tracking the dropped connections before forgetting the
            connector.
        """
        if tracking < 0:
            raise ValueError(f"tracking must be >= 0, got {tracking!r}")
        with self.lock:
            tunnel = self.tunnel(tunnel_id)
            connector = tunnel.connectors.get(connector_id)
            if connector is None:
                raise KeyError(f"no connector {connector_id} in tunnel {tunnel_id}")
            present, live, pending = connector.counts(now)
            if tracking > 0 and present:
                self._append(
                    connector,
                    {"at": now, "live": 0, "pending": live + pending},
                    now,
                    {"at": now + tracking, "gone": True},
                )
            else:
                self._append(connector, {"at": now, "gone": True}, now)
            tunnel.changed()

    def clean_connections(self, tunnel_id: str, client_id: str | None, now: float) -> None:
        """Do what ``DELETE .../connections`` does: forget one connector (or all) of the tunnel now.

        :param tunnel_id: the tunnel.
        :param client_id: the connector to forget; ``None`` for all.
        :param now: seconds since start.
        """
        with self.lock:
            tunnel = self.tunnel(tunnel_id)
            for connector in tunnel.connectors.values():
                if (client_id is None or connector.id == client_id) and connector.counts(now)[0]:
                    self._append(connector, {"at": now, "gone": True}, now)
            tunnel.changed()

    def add_token(self, spec: dict[str, Any] | str, default_account_id: str | None) -> dict[str, Any]:
        """Add (or replace) an API token.

        :param spec: a token string or spec (see the scenario format).
        :param default_account_id: the owner of an account-owned token that names none.
        """
        try:
            token = normalize_token(spec, "token", default_account_id)
        except ScenarioError as exc:
            raise ValueError(str(exc)) from exc
        with self.lock:
            if token["token"] in self.global_key_values:
                raise ValueError("that value is a Global API Key")
            self.tokens[token["token"]] = token
        return dict(token)

    def set_token_status(self, token: str, status: str) -> None:
        """Change a token's status (``active``, ``disabled`` or ``expired``).

        :param token: the token value.
        :param status: the new status.
        """
        if status not in ("active", "disabled", "expired"):
            raise ValueError(f"status must be active, disabled or expired, got {status!r}")
        with self.lock:
            if token not in self.tokens:
                raise KeyError("unknown token")
            self.tokens[token]["status"] = status
