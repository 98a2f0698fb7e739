"""The simulator's world: accounts, their tunnels and connectors, and the credentials, behind one lock.

Times are seconds since the simulator started (``now``). The tunnels and connectors themselves, and how they
render at a point in time, live in :mod:`~airflow_provider_cftunnel.testing.tunnels` (re-exported here). Nothing
here speaks HTTP or reads a clock.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow_provider_cftunnel.testing.scenario import normalize_token
from airflow_provider_cftunnel.testing.scenario_tunnels import fleet_tunnels, normalize_connector, normalize_tunnel
from airflow_provider_cftunnel.testing.scenario_values import (
    DEFAULT_ARCH,
    DEFAULT_VERSION,
    MAX_CONNECTORS_PER_TUNNEL,
    ScenarioError,
    derived_uuid,
)
from airflow_provider_cftunnel.testing.tunnels import Connector, HealthSnapshot, Tunnel, format_timestamp
from airflow_provider_cftunnel.testing.wire import UUID_RE

__all__ = ["Connector", "HealthSnapshot", "SimulatorState", "Tunnel", "format_timestamp"]

_STATUSES = ("inactive", "healthy", "degraded", "down")


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
                    connector.replan(at)
            if status == "down":
                for connector, (_, live, pending) in present:
                    if tracking == 0:
                        connector.replan(at, {"at": at, "gone": True})
                    else:
                        more = [] if tracking is None else [{"at": at + tracking, "gone": True}]
                        connector.replan(at, {"at": at, "live": 0, "pending": live + pending}, *more)
            elif status in ("healthy", "degraded"):
                shape: list[tuple[Connector | None, int]] = [
                    (c, live + pending or 4) for c, (_, live, pending) in present
                ]
                if not shape:
                    shape = [(None, total) for total in tunnel.last_live_shape(at)]
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
                        target.replan(at, entry)
            tunnel.changed()

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
                    connector.replan(now, {"at": now, "gone": True})
            tunnel.changed()

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
                connector.replan(now, entry)
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
                connector.replan(
                    now, {"at": now, "live": 0, "pending": live + pending}, {"at": now + tracking, "gone": True}
                )
            else:
                connector.replan(now, {"at": now, "gone": True})
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
                    connector.replan(now, {"at": now, "gone": True})
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
