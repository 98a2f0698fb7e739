"""The HTTP side of the local Cloudflare simulator, and :class:`CloudflareSimulator`, its public face.

The server is a standard-library :class:`~http.server.ThreadingHTTPServer` speaking HTTP/1.1 with
keep-alive: every answer carries ``Content-Length`` and is written with one ``send``, so clients reuse
connections and a benchmark gets thousands of answers per second.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import re
import selectors
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from airflow_provider_cftunnel.testing.api import (
    API_PREFIX,
    CloudflareApi,
    RateLimiter,
    Response,
    dumps,
    error_body,
)
from airflow_provider_cftunnel.testing.faults import Fault, FaultSet
from airflow_provider_cftunnel.testing.scenario import load_scenario
from airflow_provider_cftunnel.testing.state import SimulatorState, format_timestamp

__all__ = ["CONTROL_PREFIX", "CloudflareSimulator", "Headers", "RequestRecord"]

CONTROL_PREFIX = "/__simulator__"
REDACTED = "[REDACTED]"
_SECRET_HEADERS = frozenset({"Authorization", "X-Auth-Key", "X-Auth-User-Service-Key", "Cookie"})
_GATEWAY_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1>"
    "</center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)
_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head>"
    "<body><h1>Sorry, you have been blocked</h1><p>Cloudflare Ray ID: simulated</p></body></html>"
)


def canonical_header(name: str) -> str:
    """Return a header name in canonical ``Title-Case`` (``x-auth-key`` -> ``X-Auth-Key``).

    :param name: a header name in any case.
    """
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


class Headers(dict[str, str]):
    """Request headers: a plain dict keyed by canonical names (``X-Auth-Email``) whose lookups ignore case."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(canonical_header(key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(canonical_header(key))

    def get(self, key: str, default: Any = None) -> Any:
        """Return the header's value, ignoring the case of ``key``.

        :param key: a header name.
        :param default: returned when the header is absent.
        """
        return super().get(canonical_header(key), default)


@dataclass(frozen=True)
class RequestRecord:
    """One request the simulator received on ``/client/v4`` (control requests are not recorded).

    :ivar method: the HTTP method.
    :ivar path: the path, without the query string.
    :ivar query: the query parameters (the last value of a repeated one).
    :ivar headers: the request headers (:class:`Headers`: lookups ignore case).
    :ivar status: the HTTP status answered; ``0`` when the connection was dropped or reset.
    :ivar time: ``time.time()`` when the request arrived.
    :ivar fault: the kind of the fault that spoiled it, ``"emulated_rate_limit"``, or ``None``.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    status: int
    time: float
    fault: str | None = None
    query_string: str = field(default="", repr=False)

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """Return the record as JSON-ready data.

        :param redact: replace the values of credential headers (``Authorization`` keeps its scheme).
        """
        headers = dict(self.headers)
        if redact:
            for name in _SECRET_HEADERS.intersection(headers):
                value = headers[name]
                scheme, sep, _ = value.partition(" ")
                headers[name] = f"{scheme} {REDACTED}" if name == "Authorization" and sep else REDACTED
        return {
            "method": self.method,
            "path": self.path,
            "query": dict(self.query),
            "headers": headers,
            "status": self.status,
            "time": self.time,
            "fault": self.fault,
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 4096  # a fleet of per-sensor clients connects all at once

    def __init__(self, address: tuple[str, int], sim: CloudflareSimulator) -> None:
        self.sim = sim
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._wake_reader, self._wake_writer = socket.socketpair()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); we only need the address.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def track(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def serve_until_woken(self) -> None:
        """Accept connections until :meth:`wake` is called (no polling: stopping is immediate)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while True:
                ready = selector.select()
                if any(key.fileobj is self._wake_reader for key, _ in ready):
                    return
                self._handle_request_noblock()  # type: ignore[attr-defined]  # socketserver, not in typeshed

    def wake(self) -> None:
        """Make :meth:`serve_until_woken` return."""
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # the client went away: nothing to report
            return
        super().handle_error(request, client_address)


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cloudflare-simulator"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log line (the simulator keeps its own request log)."""

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    # ---- plumbing -------------------------------------------------------------------------------------

    def _write(self, resp: Response, *, declared_length: int | None = None, close: bool = False) -> None:
        body = resp.body
        reason = self.responses.get(resp.status, ("Unknown",))[0]
        lines = [
            f"HTTP/1.1 {resp.status} {reason}",
            f"Date: {_http_date()}",
            "Server: cloudflare",
            f"Content-Type: {resp.content_type}",
            f"Content-Length: {len(body) if declared_length is None else declared_length}",
        ]
        lines.extend(f"{name}: {value}" for name, value in resp.headers)
        if close or self.close_connection:
            self.close_connection = True
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + body)

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return None
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            return None
        return self.rfile.read(size) if size > 0 else b""

    def _reset(self) -> None:
        conn = self.connection
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # Closing rfile drops the makefile reference, so conn.close() really closes (and sends the RST).
        # wfile stays open: http.server flushes it after the handler returns.
        self.rfile.close()
        conn.close()
        self.close_connection = True

    # ---- dispatch -------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        arrived = time.time()
        sim = self.server.sim
        path, _, query_string = self.path.partition("?")
        body = self._read_body()
        if body is None:
            self._write(Response(411, error_body(1001, "Length Required")), close=True)
            return
        if path.startswith(CONTROL_PREFIX + "/"):
            self._write(sim._control(self.command, path, body))
            return
        headers = Headers()
        for name, value in self.headers.items():
            headers[canonical_header(name)] = value
        query = dict(parse_qsl(query_string, keep_blank_values=True)) if query_string else {}
        try:
            self._serve(sim, self.command, path, query, headers, query_string, arrived)
        except OSError:
            self.close_connection = True
        except Exception:
            traceback.print_exc()
            self._write(Response(500, error_body(10001, "Simulator bug: see its stderr")), close=True)

    def _serve(
        self,
        sim: CloudflareSimulator,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Headers,
        query_string: str,
        arrived: float,
    ) -> None:
        fault = sim._faults.take(method, path)

        def log(status: int, kind: str | None) -> None:
            sim._record(RequestRecord(method, path, query, headers, status, arrived, kind, query_string))

        if fault is not None:
            kind = fault.kind
            if kind == "drop":
                log(0, kind)
                self.close_connection = True
                return
            if kind == "reset":
                log(0, kind)
                self._reset()
                return
            if kind == "slow":
                if sim._stopping.wait(fault.delay):
                    self.close_connection = True
                    return
            elif kind in ("truncated_json", "short_body"):
                resp, _ = sim._answer(method, path, query, headers)
                log(resp.status, kind)
                cut = resp.body[: max(1, len(resp.body) // 2)]
                if kind == "truncated_json":
                    self._write(resp._replace(body=cut))
                else:
                    self._write(resp._replace(body=cut), declared_length=len(resp.body), close=True)
                return
            else:
                resp = _fault_response(fault, path)
                log(resp.status, kind)
                self._write(resp)
                return
        resp, limited = sim._answer(method, path, query, headers)
        log(resp.status, "emulated_rate_limit" if limited else (fault.kind if fault else None))
        self._write(resp)


def _fault_response(fault: Fault, path: str) -> Response:
    kind = fault.kind
    status = fault.effective_status
    extra: list[tuple[str, str]] = []
    if kind == "rate_limit":
        if fault.retry_after is not None:
            value = fault.retry_after
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            extra.append(("Retry-After", str(value)))
        elif fault.retry_after_date is not None:
            extra.append(("Retry-After", email.utils.formatdate(time.time() + fault.retry_after_date, usegmt=True)))
        resp = Response(429, error_body(fault.effective_code, fault.effective_message))
    elif kind == "server_error":
        if fault.body == "html":
            reason = BaseHTTPRequestHandler.responses.get(status, ("Error",))[0]
            page = _GATEWAY_PAGE.format(status=status, reason=reason)
            resp = Response(status, page.encode(), "text/html")
        else:
            resp = Response(status, error_body(fault.effective_code, fault.effective_message))
    elif kind == "non_json":
        resp = Response(status, (fault.body or _HTML_PAGE).encode(), "text/html; charset=UTF-8")
    elif kind == "success_false":
        resp = Response(status, error_body(fault.effective_code, fault.effective_message))
    elif kind == "null_result":
        resp = Response(status, dumps({"success": True, "errors": [], "messages": [], "result": None}))
    elif kind == "error":
        chain = fault.error_chain
        if chain is None and fault.effective_code == 6003:
            chain = [{"code": 6111, "message": "Invalid format for Authorization header"}]
        message = fault.message
        if message is None and fault.effective_code == 7003:
            message = f"Could not route to {path}, perhaps your object identifier is invalid?"
        resp = Response(status, error_body(fault.effective_code, message or fault.effective_message, chain))
    else:  # redirect
        assert fault.location is not None
        resp = Response(status, b"", "text/plain", (("Location", fault.location),))
    if fault.headers:
        resp = resp._replace(headers=resp.headers + tuple(extra) + tuple(fault.headers.items()))
    elif extra:
        resp = resp._replace(headers=resp.headers + tuple(extra))
    return resp


class CloudflareSimulator:
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
            )
        self._api = CloudflareApi(self._state, self.elapsed, lambda: self._wall_epoch, self._rate_limiter)
        self._log: deque[RequestRecord] = deque(maxlen=max_logged_requests)
        self._log_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

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
        server = _Server((self.host, self.port), self)
        self._server = server
        self.port = int(server.server_address[1])
        self._stopping.clear()
        self._epoch = self._clock()
        self._wall_epoch = time.time()
        self._thread = threading.Thread(target=server.serve_until_woken, name="cloudflare-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every client connection and release the port. Safe to call twice."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.wake()
        if thread is not None:
            thread.join(timeout=5)
        server.server_close()
        server.close_connections()
        self._server = None
        self._thread = None

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    def __enter__(self) -> CloudflareSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"listening on {self.base_url}" if self.running else "stopped"
        return f"<CloudflareSimulator {state}>"

    # ---- addresses and credentials --------------------------------------------------------------------

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

    def connection_json(self, auth: str = "token", *, account_id: str | None = None) -> str:
        """Return an Airflow connection, as the JSON that ``AIRFLOW_CONN_<ID>`` accepts, for this simulator.

        ``{"conn_type": "cloudflare", "host": base_url, "password": ..., "login": ..., "extra":
        {"account_id": ...}}``; ``login`` is present only for ``global_key``.

        :param auth: ``"token"`` (:attr:`api_token`), ``"account_token"`` (:attr:`account_token`) or
            ``"global_key"`` (:attr:`global_key_email` as login, :attr:`global_key` as password).
        :param account_id: the account to put in ``extra`` (default :attr:`account_id`).
        """
        conn: dict[str, Any] = {"conn_type": "cloudflare", "host": self.base_url}
        if auth == "token":
            secret = self.api_token
        elif auth == "account_token":
            secret = self.account_token
        elif auth == "global_key":
            secret = self.global_key
            conn["login"] = self.global_key_email
        else:
            raise ValueError(f"auth must be 'token', 'account_token' or 'global_key', got {auth!r}")
        if secret is None:
            raise ValueError(f"the scenario has no credential for auth={auth!r}")
        conn["password"] = secret
        conn["extra"] = {"account_id": account_id or self.account_id}
        return json.dumps(conn)

    def airflow_env(self, conn_id: str = "cloudflare_default", auth: str = "token") -> dict[str, str]:
        """Return ``{"AIRFLOW_CONN_<CONN_ID>": connection_json(auth)}`` to merge into an environment.

        :param conn_id: the Airflow connection id.
        :param auth: see :meth:`connection_json`.
        """
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.connection_json(auth)}

    # ---- time ----------------------------------------------------------------------------------------

    def elapsed(self) -> float:
        """Simulated seconds since :meth:`start` (clock time plus everything :meth:`advance` added)."""
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
        """The effective scenario now: the world with its current timelines, the rate limit and active faults
        (their ``count`` is what remains)."""
        scenario = self._state.to_scenario()
        scenario["rate_limit"] = self._rate_limit_spec()
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
        from airflow_provider_cftunnel.testing.scenario import ACCOUNT_ID_RE, derived_hex32

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
        """Start a new connector (a new ``cloudflared`` replica) now, with ``live`` and ``pending``
        connections.

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
        """Stop a connector. With ``tracking`` > 0 its connections turn pending now and it disappears
        ``tracking`` seconds later (as Cloudflare keeps tracking dropped connections); else it disappears now
        (its endpoint answers 404).

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
        """Restart ``cloudflared``: the old connector stops (see :meth:`remove_connector`) and a new connector
        id appears now with ``live`` connections.

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
        from airflow_provider_cftunnel.testing.scenario import ScenarioError, normalize_fleet

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
    ) -> str:
        """Accept another API token (or replace one).

        :param token: its value (any string without spaces).
        :param owner: ``"user"`` or ``"account"``.
        :param account_id: an account-owned token's account (default :attr:`account_id`).
        :param accounts: accounts a user token may read (``None``: all).
        :param status: ``"active"``, ``"disabled"`` or ``"expired"``.
        :param tunnel_read: whether it holds "Cloudflare Tunnel Read".
        :returns: the token's id (what the verify endpoints report).
        """
        spec: dict[str, Any] = {"token": token, "owner": owner, "status": status, "tunnel_read": tunnel_read}
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

    # ---- faults and rate limit ------------------------------------------------------------------------

    def inject_fault(
        self,
        path: str | None = None,
        *,
        kind: str,
        count: int | None = 1,
        method: str | None = None,
        skip: int = 0,
        status: int | None = None,
        code: int | None = None,
        message: str | None = None,
        retry_after: float | str | None = None,
        retry_after_date: float | None = None,
        body: str | None = None,
        delay: float = 0.0,
        location: str | None = None,
        error_chain: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """Spoil the answers to matching requests; see :mod:`airflow_provider_cftunnel.testing.faults`.

        :param path: a regular expression searched in the request path (``/client/v4/...``); ``None``: all.
        :param kind: the fault kind (``rate_limit``, ``server_error``, ``slow``, ``drop``, ``reset``,
            ``truncated_json``, ``short_body``, ``non_json``, ``success_false``, ``null_result``, ``error``,
            ``redirect``).
        :param count: how many requests to spoil; ``None`` for every one.
        :param method: only requests with this HTTP method.
        :param skip: let this many matching requests through first.
        :param status: the HTTP status (``error``, ``server_error``, ``redirect``, ``non_json``).
        :param code: the Cloudflare error code in the body.
        :param message: the error message in the body.
        :param retry_after: ``rate_limit``: the ``Retry-After`` value (seconds or a verbatim string).
        :param retry_after_date: ``rate_limit``: send ``Retry-After`` as an HTTP date this many seconds ahead.
        :param body: ``server_error``: ``"json"`` or ``"html"``; ``non_json``: the page to send.
        :param delay: ``slow``: seconds to wait before answering.
        :param location: ``redirect``: the ``Location`` header.
        :param error_chain: ``error``: nested errors attached to the error.
        :param headers: extra response headers.
        :returns: the :class:`Fault`; its ``hits`` count the spoiled requests.
        """
        return self._faults.add(
            Fault(
                kind=kind,
                path=path,
                count=count,
                method=method,
                skip=skip,
                status=status,
                code=code,
                message=message,
                retry_after=retry_after,
                retry_after_date=retry_after_date,
                body=body,
                delay=delay,
                location=location,
                error_chain=error_chain,
                headers=headers,
            )
        )

    def add_fault(self, spec: dict[str, Any]) -> Fault:
        """Add a fault from its JSON spec (as in a scenario's ``faults`` list).

        :param spec: the spec, with at least ``kind``.
        """
        return self._faults.add(Fault.from_dict(spec))

    @property
    def faults(self) -> list[Fault]:
        """The faults, in the order they apply (exhausted ones included)."""
        return self._faults.all()

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    def set_rate_limit(
        self,
        requests: int | None,
        period: float = 300.0,
        *,
        headers: str = "ietf",
        dashboard_rate: float = 0.0,
    ) -> None:
        """Emulate Cloudflare's rate limit: ``requests`` per ``period`` seconds per user, shared by all of the
        user's tokens and keys (by default every credential of the scenario belongs to its one user); going
        over answers 429 (code 971, ``Retry-After``) and locks the whole pool out for ``period`` seconds.
        Every counted answer describes the pool (``Ratelimit: "default";r=..;t=..`` and
        ``Ratelimit-Policy: "default";q=..;w=..``). Forgets all counts.

        :param requests: allowed requests per period; ``None`` turns the emulation off.
        :param period: window and lockout, in seconds (Cloudflare: 1200 per 300 s).
        :param headers: ``"ietf"`` (the headers above), ``"legacy"`` (``X-RateLimit-Limit`` / ``-Remaining`` /
            ``-Reset``) or ``"none"`` (stripped, as by a proxy).
        :param dashboard_rate: another consumer of the scenario user's pool (a person in the dashboard, another
            tool), in requests per second, starting now; it does not back off.
        """
        self._rate_limiter.configure(
            requests, period, headers=headers, dashboard_rate=dashboard_rate, now=self.elapsed()
        )

    @property
    def rate_limited_count(self) -> int:
        """How many 429 answers the emulated rate limit has served (injected faults not included)."""
        return self._rate_limiter.limited

    def reset_rate_limit(self) -> None:
        """Forget the emulated rate limit's counts, lockouts and :attr:`rate_limited_count`."""
        self._rate_limiter.reset()

    def spend_rate_limit(self, count: int, user: str | None = None) -> int:
        """Spend ``count`` requests of a user's pool now, as the dashboard or another tool would.

        :param count: how many requests.
        :param user: the user (a credential's ``user`` field); default: the scenario's user.
        :returns: how many the limit accepted; the others were refused and may have locked the pool out.
        """
        return self._rate_limiter.spend(self._api.user_pool(user), count, self.elapsed())

    def rate_limit_status(self) -> dict[str, Any]:
        """The emulated limit now: its settings, ``limited`` (429s served), ``lockouts``, ``spent`` and
        ``spent_refused`` (the dashboard's requests), and each pool's ``remaining`` / ``reset`` / ``locked``.
        Pools are named ``user:<name>``, or ``credential:<hash>`` for unknown credentials."""
        return self._rate_limiter.status(self.elapsed())

    def _rate_limit_spec(self) -> dict[str, Any] | None:
        rate = self._rate_limiter
        if rate.requests is None:
            return None
        spec: dict[str, Any] = {"requests": rate.requests, "period": rate.period}
        if rate.headers != "ietf":
            spec["headers"] = rate.headers
        if rate.dashboard_rate:
            spec["dashboard_rate"] = rate.dashboard_rate
        return spec

    # ---- request log ----------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first (API requests only)."""
        with self._log_lock:
            return list(self._log)

    def requests_matching(self, path_regex: str, method: str | None = None) -> list[RequestRecord]:
        """Return the logged requests whose path matches (``re.search``) and, if given, whose method is
        ``method``.

        :param path_regex: a regular expression.
        :param method: an HTTP method.
        """
        pattern = re.compile(path_regex)
        return [r for r in self.requests if pattern.search(r.path) and (method is None or r.method == method.upper())]

    def clear_requests(self) -> int:
        """Empty the request log; return how many records it held."""
        with self._log_lock:
            count = len(self._log)
            self._log.clear()
        return count

    def _record(self, record: RequestRecord) -> None:
        with self._log_lock:
            self._log.append(record)

    # ---- serving internals ----------------------------------------------------------------------------

    def _answer(self, method: str, path: str, query: dict[str, str], headers: Headers) -> tuple[Response, bool]:
        """The normal answer, after the emulated rate limit; returns ``(response, rate_limited)``."""
        return self._api.answer(method, path, query, headers)

    def _control(self, method: str, path: str, body: bytes) -> Response:
        try:
            result = self._control_result(method, path[len(CONTROL_PREFIX) :], body)
        except LookupError as exc:
            return Response(404, dumps({"error": str(exc)}))
        except (TypeError, ValueError) as exc:
            return Response(400, dumps({"error": str(exc)}))
        return Response(200, dumps(result))

    def _control_result(self, method: str, route: str, body: bytes) -> Any:
        def payload(*, allow_list: bool = False) -> Any:
            try:
                data = json.loads(body or b"{}")
            except json.JSONDecodeError as exc:
                raise ValueError(f"the body is not JSON: {exc}") from exc
            if not isinstance(data, dict) and not (allow_list and isinstance(data, list)):
                raise ValueError("the body must be a JSON object")
            return data

        if method == "GET" and route == "/health":
            return {
                "status": "ok",
                "base_url": self.base_url,
                "elapsed": self.elapsed(),
                "pid": os.getpid(),
                "requests": len(self._log),
            }
        if method == "GET" and route == "/requests":
            return [r.to_dict() for r in self.requests]
        if method == "POST" and route == "/reset-requests":
            return {"cleared": self.clear_requests()}
        if method == "GET" and route == "/scenario":
            return self.scenario
        if route == "/faults":
            if method == "GET":
                return [f.to_dict() for f in self.faults]
            if method == "DELETE":
                count = len(self.faults)
                self.clear_faults()
                return {"cleared": count}
            if method == "POST":
                data = payload(allow_list=True)
                specs: Iterable[Any] = data if isinstance(data, list) else [data]
                faults = [Fault.from_dict(spec) for spec in specs]
                return {"faults": [self._faults.add(f).to_dict() for f in faults]}
        if route == "/rate-limit" and method == "POST":
            data = payload()
            self.set_rate_limit(
                data.get("requests"),
                float(data.get("period", 300.0)),
                headers=data.get("headers", "ietf"),
                dashboard_rate=data.get("dashboard_rate", 0.0),
            )
            return self._rate_limit_spec() or {"requests": None, "period": self._rate_limiter.period}
        if route == "/rate-limit" and method == "GET":
            return self.rate_limit_status()
        if route == "/rate-limit/spend" and method == "POST":
            data = payload()
            return {"accepted": self.spend_rate_limit(data.get("count", 1), data.get("user"))}
        if route == "/rate-limit/reset" and method == "POST":
            self.reset_rate_limit()
            return self.rate_limit_status()
        if method == "POST" and route == "/connectors":
            data = payload()
            counts = {"live": data.get("live", 4), "pending": data.get("pending", 0)}
            if data.get("new", False):
                connector_id = self.add_connector(
                    data.get("tunnel_id"), connector_id=data.get("connector_id"), **counts
                )
            else:
                connector_id = self.set_connector(data.get("tunnel_id"), data.get("connector_id"), **counts)
            return {"connector_id": connector_id}
        if method == "POST" and route == "/remove-connector":
            data = payload()
            self.remove_connector(
                data.get("tunnel_id"), data.get("connector_id"), tracking=float(data.get("tracking", 0.0))
            )
            return {"removed": data.get("connector_id") or self.connector_id}
        if method == "POST" and route == "/fleets":
            data = payload()
            ids = self.add_fleet(
                data.get("prefix"),
                data.get("count"),
                **{k: data[k] for k in ("account_id", "up_after", "connections", "replicas", "statuses") if k in data},
            )
            return {"tunnel_ids": ids}
        if method == "POST" and route == "/tunnel-status":
            data = payload()
            tunnel_id = data.get("tunnel_id")
            status = self.set_tunnel_status(
                tunnel_id, data.get("status"), at=data.get("at"), tracking=data.get("tracking")
            )
            return {"tunnel_id": tunnel_id or self.tunnel_id, "status": status}
        if method == "GET" and route == "/tunnel-statuses":
            return self.tunnel_statuses()
        if method == "POST" and route == "/advance":
            self.advance(float(payload().get("seconds", 0)))
            return {"elapsed": self.elapsed()}
        raise LookupError(f"no control endpoint {method} {CONTROL_PREFIX}{route}")
