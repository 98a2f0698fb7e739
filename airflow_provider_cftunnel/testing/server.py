"""The local Cloudflare simulator's public face: :class:`CloudflareSimulator`.

The simulator is four parts, each in a module of its own; this facade builds them from a scenario and gives a
test one object to drive them through:

* :mod:`~airflow_provider_cftunnel.testing.state` (the world: accounts, tunnels, connectors, credentials) and
  :mod:`~airflow_provider_cftunnel.testing.api` (the API's answers and the emulated rate limit);
* :mod:`~airflow_provider_cftunnel.testing.faults` (injected faults and their answers);
* :mod:`~airflow_provider_cftunnel.testing.http` (the HTTP server, which sees only a
  :class:`~airflow_provider_cftunnel.testing.http.Backend`) and
  :mod:`~airflow_provider_cftunnel.testing.request_log` (what it received);
* :mod:`~airflow_provider_cftunnel.testing.control` (the same methods over HTTP, for another process).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from airflow_provider_cftunnel.testing.api import CloudflareApi
from airflow_provider_cftunnel.testing.cloudflared import READY_PREFIX, ReadyServer
from airflow_provider_cftunnel.testing.connection import AirflowConnectionMixin, StartStopMixin
from airflow_provider_cftunnel.testing.control import dispatch
from airflow_provider_cftunnel.testing.faults import Fault, FaultSet
from airflow_provider_cftunnel.testing.http import Backend, SimulatorHTTPServer
from airflow_provider_cftunnel.testing.rate_limit import RateLimiter
from airflow_provider_cftunnel.testing.request_log import Headers, RequestLog, RequestRecord
from airflow_provider_cftunnel.testing.scenario import load_scenario
from airflow_provider_cftunnel.testing.scenario_tunnels import normalize_ready
from airflow_provider_cftunnel.testing.state import SimulatorState, format_timestamp
from airflow_provider_cftunnel.testing.traffic import TrafficControlsMixin
from airflow_provider_cftunnel.testing.wire import API_PREFIX, CONTROL_PREFIX, Response

__all__ = ["CONTROL_PREFIX", "CloudflareSimulator", "Headers", "RequestRecord"]


class CloudflareSimulator(StartStopMixin, AirflowConnectionMixin, TrafficControlsMixin):
    """A local, stateful imitation of Cloudflare's Tunnel API, served on loopback.

    Use it as a context manager (or :meth:`start` / :meth:`stop`); it serves from a background thread::

        with CloudflareSimulator(scenario={"up_after": 0}) as sim:
            requests.get(f"{sim.base_url}/accounts/{sim.account_id}/cfd_tunnel/{sim.tunnel_id}/connections",
                         headers={"Authorization": f"Bearer {sim.api_token}"})

    :param scenario: ``None`` (the default scenario), a scenario dict (missing keys take defaults) or the
        path of a JSON scenario file; see :mod:`airflow_provider_cftunnel.testing.scenario`.
    :param host: the address to bind; keep it on loopback.
    :param port: the port to bind; ``0`` picks a free one (read it from :attr:`port` after :meth:`start`).
    :param clock: returns the current time in seconds (default :func:`time.monotonic`); timelines and the
        rate limit run on it, so a test can drive time with a fake clock (or :meth:`advance`).
    :param max_logged_requests: how many requests the log keeps (oldest dropped first).
    """

    def __init__(
        self,
        scenario: str | os.PathLike[str] | dict[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] | None = None,
        max_logged_requests: int = 100_000,
    ) -> None:
        initial = load_scenario(scenario)
        self.host = host
        self.port = port
        self._clock: Callable[[], float] = clock or time.monotonic
        self._epoch = self._clock()
        self._wall_epoch = time.time()
        self._offset = 0.0
        self._state = SimulatorState(initial)
        self._faults = FaultSet()
        for spec in initial["faults"]:
            self._faults.add(Fault.from_dict(spec))
        self._rate_limiter = RateLimiter()
        if initial["rate_limit"] is not None:
            limit = initial["rate_limit"]
            self._rate_limiter.configure(
                limit["requests"],
                limit["period"],
                headers=limit.get("headers", "ietf"),
                dashboard_rate=limit.get("dashboard_rate", 0.0),
                window=limit.get("window", "sliding"),
                reset=limit.get("reset", "more"),
            )
        self._api = CloudflareApi(self._state, self.elapsed, lambda: self._wall_epoch, self._rate_limiter)
        self._log = RequestLog(max_logged_requests)
        self._ready = ReadyServer(self._state, self.elapsed)
        self._server: SimulatorHTTPServer | None = None

        accounts = initial["accounts"]
        first = accounts[0]["id"] if accounts else None

        def rank(token: dict[str, Any]) -> int:  # tokens that can read the first account come first
            if token["owner"] == "account":
                return 0 if token["account_id"] == first else 1
            return 0 if token["accounts"] is None or first in token["accounts"] else 1

        usable = sorted((t for t in initial["api_tokens"] if t["status"] == "active" and t["tunnel_read"]), key=rank)
        #: the first active user-owned API token with tunnel read access (one that may read the first
        #: account, if any); ``None`` if the scenario has none.
        self.api_token: str | None = next((t["token"] for t in usable if t["owner"] == "user"), None)
        #: the first active account-owned API token (preferably the first account's).
        self.account_token: str | None = next((t["token"] for t in usable if t["owner"] == "account"), None)
        keys = initial["global_keys"]
        #: the e-mail and Global API Key of the first global key.
        self.global_key_email: str | None = keys[0]["email"] if keys else None
        self.global_key: str | None = keys[0]["key"] if keys else None
        tunnels = accounts[0]["tunnels"] if accounts else []
        connectors = tunnels[0]["connectors"] if tunnels else []
        #: the first account, its first tunnel and that tunnel's first connector (``None`` if absent).
        self.account_id: str | None = accounts[0]["id"] if accounts else None
        self.tunnel_id: str | None = tunnels[0]["id"] if tunnels else None
        self.connector_id: str | None = connectors[0]["id"] if connectors else None

    # ---- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> CloudflareSimulator:
        """Bind the port and serve from a background thread; simulated time starts now.

        :returns: the simulator itself.
        :raises RuntimeError: if it is already running.
        """
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        backend = Backend(
            answer=self._answer,
            take_fault=self._faults.take,
            record=self._log.append,
            control=partial(dispatch, self),
        )
        server = SimulatorHTTPServer((self.host, self.port), backend)
        self._server = server
        self.port = server.port
        self._epoch = self._clock()
        self._wall_epoch = time.time()
        server.start()
        return self

    def _answer(self, method: str, path: str, query: dict[str, str], headers: Headers) -> tuple[Response, bool]:
        """Answer from the API, or from a connector's cloudflared ``/ready`` (not rate-limited: not the API)."""
        ready = self._ready.answer(method, path)
        if ready is not None:
            return ready, False
        return self._api.answer(method, path, query, headers)

    def stop(self) -> None:
        """Stop serving, close every client connection and release the port. Safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    def __repr__(self) -> str:
        state = f"listening on {self.base_url}" if self.running else "stopped"
        return f"<CloudflareSimulator {state}>"

    # ---- addresses and credentials (connection_json and airflow_env: AirflowConnectionMixin) -----------

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT`` (no path)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base URL, ``http://HOST:PORT/client/v4`` (what a hook puts before ``/accounts/...``)."""
        return self.root_url + API_PREFIX

    @property
    def control_url(self) -> str:
        """``http://HOST:PORT/__simulator__``, the control endpoints' prefix."""
        return self.root_url + CONTROL_PREFIX

    # ---- time ----------------------------------------------------------------------------------------

    def elapsed(self) -> float:
        """Return simulated seconds since :meth:`start` (clock time plus everything :meth:`advance` added)."""
        return self._clock() - self._epoch + self._offset

    def advance(self, seconds: float) -> None:
        """Move simulated time forward: timelines and rate-limit windows see ``seconds`` more.

        :param seconds: how far, >= 0.
        """
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._offset += seconds

    # ---- the world ------------------------------------------------------------------------------------

    @property
    def scenario(self) -> dict[str, Any]:
        """The effective scenario now.

        The world with its current timelines, the rate limit and the active faults (their ``count`` is what
        remains).
        """
        scenario = self._state.to_scenario()
        scenario["rate_limit"] = self.rate_limit
        faults = []
        for fault in self._faults.all():
            if fault.active:
                spec = fault.to_spec()
                spec["count"] = fault.remaining
                faults.append(spec)
        scenario["faults"] = faults
        order = ("api_tokens", "global_keys", "user", "accounts", "rate_limit", "faults")
        return {key: scenario[key] for key in (*order, "legacy_tunnel_connections", "legacy_list_deleted")}

    def add_account(self, account_id: str | None = None, name: str = "Simulated account") -> str:
        """Add an account without tunnels.

        :param account_id: 32 lowercase hex digits; default: a fresh one.
        :param name: its name.
        :returns: the account id.
        """
        from airflow_provider_cftunnel.testing.scenario_values import derived_hex32
        from airflow_provider_cftunnel.testing.wire import ACCOUNT_ID_RE

        account_id = account_id or derived_hex32("added-account", len(self._state.accounts), time.time())
        if not ACCOUNT_ID_RE.match(account_id):
            raise ValueError(f"account id must be 32 lowercase hex digits, got {account_id!r}")
        self._state.add_account(account_id, name)
        return account_id

    def add_tunnel(self, account_id: str | None = None, name: str | None = None, tunnel_id: str | None = None) -> str:
        """Add a tunnel without connectors (status ``inactive``), created now.

        :param account_id: the account (default :attr:`account_id`).
        :param name: its name (default ``cfsim-tunnel-N``).
        :param tunnel_id: its UUID (default: a fresh one).
        :returns: the tunnel id.
        """
        spec: dict[str, Any] = {"created_at": format_timestamp(self._wall_epoch + self.elapsed())}
        if name is not None:
            spec["name"] = name
        if tunnel_id is not None:
            spec["id"] = tunnel_id
        account = account_id or self.account_id
        if account is None:
            raise ValueError("the scenario has no account: pass account_id")
        return self._state.add_tunnel(account, spec)

    def delete_tunnel(self, tunnel_id: str) -> None:
        """Mark a tunnel deleted now (``deleted_at`` set, connectors gone).

        :param tunnel_id: the tunnel.
        """
        now = self.elapsed()
        self._state.delete_tunnel(tunnel_id, format_timestamp(self._wall_epoch + now), now)

    def set_connector(
        self,
        tunnel_id: str | None = None,
        connector_id: str | None = None,
        *,
        live: int = 4,
        pending: int = 0,
        version: str | None = None,
        arch: str | None = None,
    ) -> str:
        """From now on, give a connector ``live`` serving and ``pending`` dropped connections.

        Creates the connector if the id is new; drops whatever its timeline had planned after now.

        :param tunnel_id: the tunnel (default :attr:`tunnel_id`).
        :param connector_id: the connector (default: the tunnel's first connector, i.e.
            :attr:`connector_id` for the default tunnel). Use :meth:`add_connector` for a fresh id.
        :param live: connections with ``is_pending_reconnect: false``.
        :param pending: connections with ``is_pending_reconnect: true``.
        :param version: the ``cloudflared`` version it reports.
        :param arch: the architecture it reports.
        :returns: the connector id.
        """
        tunnel = self._tunnel(tunnel_id)
        if connector_id is None:
            with self._state.lock:
                known = list(self._state.tunnel(tunnel).connectors)
            if not known:
                raise ValueError(f"tunnel {tunnel} has no connector: pass connector_id or use add_connector")
            connector_id = known[0]
        return self._state.set_connector(
            tunnel, connector_id, live=live, pending=pending, now=self.elapsed(), version=version, arch=arch
        )

    def add_connector(
        self,
        tunnel_id: str | None = None,
        *,
        live: int = 4,
        pending: int = 0,
        connector_id: str | None = None,
        version: str | None = None,
        arch: str | None = None,
    ) -> str:
        """Start a new connector (a new ``cloudflared`` replica) now, with ``live`` and ``pending`` connections.

        :param tunnel_id: the tunnel (default :attr:`tunnel_id`).
        :param live: connections with ``is_pending_reconnect: false``.
        :param pending: connections with ``is_pending_reconnect: true``.
        :param connector_id: its UUID (default: a fresh one).
        :param version: the ``cloudflared`` version it reports (default ``2026.11.0``).
        :param arch: the architecture it reports (default ``linux_amd64``).
        :returns: the new connector id.
        :raises ValueError: if the id exists, or the tunnel already has 25 connectors.
        """
        tunnel = self._tunnel(tunnel_id)
        with self._state.lock:
            if connector_id is not None and connector_id in self._state.tunnel(tunnel).connectors:
                raise ValueError(f"connector {connector_id} already exists")
            return self._state.set_connector(
                tunnel, connector_id, live=live, pending=pending, now=self.elapsed(), version=version, arch=arch
            )

    def remove_connector(
        self, tunnel_id: str | None = None, connector_id: str | None = None, *, tracking: float = 0.0
    ) -> None:
        """Stop a connector.

        With ``tracking`` > 0 its connections turn pending now and it disappears ``tracking`` seconds later (as
        Cloudflare keeps tracking dropped connections); else it disappears now (its endpoint answers 404).

        :param tunnel_id: the tunnel (default :attr:`tunnel_id`).
        :param connector_id: the connector (default :attr:`connector_id`).
        :param tracking: seconds the dropped connections stay visible as pending.
        """
        connector = connector_id or self.connector_id
        if connector is None:
            raise ValueError("pass connector_id")
        self._state.remove_connector(self._tunnel(tunnel_id), connector, now=self.elapsed(), tracking=tracking)

    def restart_connector(
        self,
        tunnel_id: str | None = None,
        connector_id: str | None = None,
        *,
        live: int = 4,
        tracking: float = 0.0,
        new_connector_id: str | None = None,
    ) -> str:
        """Restart ``cloudflared``: stop the old connector and start a new connector id now.

        The old connector stops as :meth:`remove_connector` says; the new one has ``live`` connections.

        :param tunnel_id: the tunnel (default :attr:`tunnel_id`).
        :param connector_id: the old connector (default :attr:`connector_id`).
        :param live: connections of the new connector.
        :param tracking: seconds the old connector's connections stay visible as pending.
        :param new_connector_id: the new id (default: a fresh one).
        :returns: the new connector id.
        """
        tunnel = self._tunnel(tunnel_id)
        self.remove_connector(tunnel, connector_id, tracking=tracking)
        return self.add_connector(tunnel, live=live, connector_id=new_connector_id)

    def ready_url(self, connector_id: str | None = None) -> str:
        """Return the URL of a connector's cloudflared ``/ready`` (see ``testing/cloudflared.py``).

        :param connector_id: the connector (default :attr:`connector_id`).
        """
        connector = connector_id or self.connector_id
        if connector is None:
            raise ValueError("pass connector_id")
        return f"{self.root_url}{READY_PREFIX}{connector}/ready"

    def set_ready(self, connector_id: str | None = None, *, mode: str = "follow", lag: float = 0.0) -> None:
        """Shape a connector's ``/ready`` from now on.

        ``follow`` its timeline ``lag`` seconds late (negative: early), ``disagree`` (200 whatever the API
        shows), ``never`` (503) or ``bogus`` (200 with HTML).

        :param connector_id: the connector (default :attr:`connector_id`).
        :param mode: one of :data:`~airflow_provider_cftunnel.testing.scenario.READY_MODES`.
        :param lag: seconds ``/ready`` trails the API (``follow`` only).
        """
        spec = normalize_ready({"mode": mode, "lag": lag}, "set_ready")
        connector = connector_id or self.connector_id
        with self._state.lock:
            for tunnel in self._state.tunnels.values():
                if connector in tunnel.connectors:
                    tunnel.connectors[connector].ready = spec
                    return
        raise ValueError(f"no connector {connector}")

    def connector_ids(self, tunnel_id: str | None = None) -> list[str]:
        """Return the ids of the connectors present now (what ``/connections`` lists).

        :param tunnel_id: the tunnel (default :attr:`tunnel_id`).
        """
        now = self.elapsed()
        with self._state.lock:
            tunnel = self._state.tunnel(self._tunnel(tunnel_id))
            return [c.id for c in tunnel.connectors.values() if c.counts(now)[0]]

    def tunnel_status(self, tunnel_id: str | None = None) -> str:
        """Return the tunnel's derived status now (``inactive``, ``healthy``, ``degraded`` or ``down``).

        :param tunnel_id: the tunnel (default :attr:`tunnel_id`).
        """
        now = self.elapsed()
        with self._state.lock:
            return self._state.tunnel(self._tunnel(tunnel_id)).health(now).status

    def add_fleet(
        self,
        prefix: str,
        count: int,
        *,
        account_id: str | None = None,
        up_after: float = 0.0,
        connections: int = 4,
        replicas: int = 1,
        statuses: dict[str, int] | None = None,
    ) -> list[str]:
        """Add ``count`` tunnels named ``prefix0001``... at once, as the scenario key ``fleets`` does.

        Tunnel ``i`` (from 0) has the id ``fleet_tunnel_id(account_id, prefix, i)``. ``statuses`` gives that many
        tunnels (a deterministic spread) another status now; the others are ``healthy`` ``up_after`` seconds
        from now. See :func:`~airflow_provider_cftunnel.testing.scenario.fleet_tunnels`.

        :param prefix: the start of every name (what ``include_prefix`` selects).
        :param count: how many tunnels (1 or more).
        :param account_id: the account (default :attr:`account_id`).
        :param up_after: seconds from now until the healthy and degraded tunnels' connections come up.
        :param connections: connections per connector.
        :param replicas: connectors per tunnel (1 to 25).
        :param statuses: ``{"down": n, "degraded": n, "inactive": n}`` (each optional).
        :returns: the new tunnel ids, in name order.
        :raises ValueError: on a bad argument, or tunnels that exist already (the same fleet twice).
        """
        from airflow_provider_cftunnel.testing.scenario_tunnels import normalize_fleet
        from airflow_provider_cftunnel.testing.scenario_values import ScenarioError

        spec: dict[str, Any] = {
            "prefix": prefix,
            "count": count,
            "up_after": up_after,
            "connections": connections,
            "replicas": replicas,
            "statuses": statuses or {},
        }
        try:
            fleet = normalize_fleet(spec, "fleet", account_id or self.account_id)
        except ScenarioError as exc:
            raise ValueError(str(exc)) from exc
        return self._state.add_fleet(fleet, self.elapsed())

    def set_tunnel_status(
        self, tunnel_id: str | None, status: str, *, at: float | None = None, tracking: float | None = None
    ) -> str:
        """Change the tunnel's connectors so that Cloudflare's derived status becomes ``status``.

        ``down``: every connection drops (its connectors stay tracked with pending connections, or vanish after
        ``tracking`` seconds); ``degraded``: one connection of one connector pending, the others live;
        ``healthy``: every connection live again (a tunnel without connectors gets new ones, shaped as when it
        was last live); ``inactive``: only for a tunnel that never ran. The ``status`` of the tunnel endpoints
        and the ``/connections`` answer always agree. Plans of the timelines after the change are dropped.

        :param tunnel_id: the tunnel (``None``: :attr:`tunnel_id`).
        :param status: ``healthy``, ``degraded``, ``down`` or ``inactive``.
        :param at: simulated seconds since start when the change happens (default: now; not in the past).
        :param tracking: ``down`` only: seconds until the dropped connectors vanish; ``None``: they stay.
        :returns: the tunnel's derived status now (``status``, unless ``at`` is later).
        :raises KeyError: if there is no such tunnel.
        :raises ValueError: on an unknown status, a time in the past, a deleted tunnel, ``inactive`` for a tunnel
            that ran, or ``down`` for one that never ran.
        """
        tunnel = self._tunnel(tunnel_id)
        now = self.elapsed()
        when = now if at is None else float(at)
        if when < now:
            raise ValueError(f"at ({when:g}) is in the past (now {now:g})")
        self._state.set_tunnel_status(tunnel, status, at=when, tracking=tracking)
        return self.tunnel_status(tunnel)

    def tunnel_statuses(self, prefix: str | None = None, *, account_id: str | None = None) -> dict[str, str]:
        """Return ``{tunnel id: derived status now}`` of the tunnels that are not deleted, in creation order.

        :param prefix: only tunnels whose name starts with this.
        :param account_id: only this account's tunnels (default: every account).
        """
        return self._state.statuses(self.elapsed(), account_id=account_id, prefix=prefix)

    def add_token(
        self,
        token: str,
        *,
        owner: str = "user",
        account_id: str | None = None,
        accounts: list[str] | None = None,
        status: str = "active",
        tunnel_read: bool = True,
        tunnels: list[str] | None = None,
    ) -> str:
        """Accept another API token (or replace one).

        :param token: its value (any string without spaces).
        :param owner: ``"user"`` or ``"account"``.
        :param account_id: an account-owned token's account (default :attr:`account_id`).
        :param accounts: accounts a user token may read (``None``: all).
        :param status: ``"active"``, ``"disabled"`` or ``"expired"``.
        :param tunnel_read: whether it holds "Cloudflare Tunnel Read".
        :param tunnels: per-tunnel permissions: the tunnel ids it may read (``None``: all). The list leaves out
            the others; reading one of them answers 403 (code 9109), an unknown id 404.
        :returns: the token's id (what the verify endpoints report).
        """
        spec: dict[str, Any] = {"token": token, "owner": owner, "status": status, "tunnel_read": tunnel_read}
        if tunnels is not None:
            spec["tunnels"] = [t.lower() for t in tunnels]
        if owner == "account":
            spec["account_id"] = account_id or self.account_id
        elif accounts is not None:
            spec["accounts"] = accounts
        return str(self._state.add_token(spec, self.account_id)["id"])

    def set_token_status(self, token: str, status: str) -> None:
        """Change a token's status (e.g. revoke it mid-test with ``"disabled"``).

        :param token: the token value.
        :param status: ``"active"``, ``"disabled"`` or ``"expired"``.
        """
        self._state.set_token_status(token, status)

    def _tunnel(self, tunnel_id: str | None) -> str:
        tunnel = tunnel_id or self.tunnel_id
        if tunnel is None:
            raise ValueError("the scenario has no tunnel: pass tunnel_id")
        return tunnel
