"""The simulator's HTTP server: sockets, keep-alive, and the faults that act on the connection.

:class:`SimulatorHTTPServer` is a standard-library :class:`~http.server.ThreadingHTTPServer` speaking HTTP/1.1
with keep-alive: every answer carries ``Content-Length`` and is written with one ``send``, so clients reuse
connections and a benchmark gets thousands of answers per second. It knows the simulator only through a
:class:`Backend`: four callables that answer an API request, pick its fault, log it, and answer a control
request.
"""

from __future__ import annotations

import contextlib
import email.utils
import selectors
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from airflow_provider_cftunnel.testing.request_log import Headers, RequestRecord, canonical_header
from airflow_provider_cftunnel.testing.wire import CONTROL_PREFIX, Response, error_body

if TYPE_CHECKING:
    from airflow_provider_cftunnel.testing.faults import Fault

__all__ = ["Backend", "SimulatorHTTPServer"]


@dataclass(frozen=True)
class Backend:
    """What the HTTP server asks of the simulator.

    :ivar answer: ``answer(method, path, query, headers)`` returns ``(response, rate_limited)``: the normal
        answer to an API request, after the emulated rate limit.
    :ivar take_fault: ``take_fault(method, path)`` returns the fault that spoils this request (counting the
        hit), or ``None``.
    :ivar record: ``record(request_record)`` logs an API request, before its answer is sent.
    :ivar control: ``control(method, path, body)`` answers a request under ``/__simulator__``.
    """

    answer: Callable[[str, str, dict[str, str], Headers], tuple[Response, bool]]
    take_fault: Callable[[str, str], Fault | None]
    record: Callable[[RequestRecord], None]
    control: Callable[[str, str, bytes], Response]


class SimulatorHTTPServer(ThreadingHTTPServer):
    """Serves a :class:`Backend` on ``address`` (bound at once) from a thread per connection.

    :param address: ``(host, port)``; port ``0`` picks a free one (see ``server_address``).
    :param backend: what answers the requests.
    """

    daemon_threads = True
    block_on_close = False
    request_queue_size = 4096  # a fleet of per-sensor clients connects all at once

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        self.backend = backend
        #: set when the server stops: a ``slow`` fault stops waiting.
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._thread: threading.Thread | None = None
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.server_address[1])

    def server_bind(self) -> None:
        """Bind without the reverse DNS lookup ``HTTPServer`` does."""
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); we only need the address.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def start(self) -> None:
        """Accept connections from a background thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._serve_until_woken, name="cloudflare-simulator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, release the port and close every client connection.

        :param timeout: seconds to wait for the accepting thread.
        """
        self.stopping.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def track(self, conn: socket.socket) -> None:
        """Remember a client connection, to close it on :meth:`stop`.

        :param conn: the connection.
        """
        with self._connections_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        """Forget a client connection (it closed).

        :param conn: the connection.
        """
        with self._connections_lock:
            self._connections.discard(conn)

    def _serve_until_woken(self) -> None:
        """Accept connections until :meth:`stop` (no polling: stopping is immediate)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while True:
                ready = selector.select()
                if any(key.fileobj is self._wake_reader for key, _ in ready):
                    return
                self._handle_request_noblock()  # type: ignore[attr-defined]  # socketserver, not in typeshed

    def server_close(self) -> None:
        """Close the socket and the wake-up pipe."""
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Report a handler's error, except a client that went away."""
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
    server: SimulatorHTTPServer

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
        backend = self.server.backend
        path, _, query_string = self.path.partition("?")
        body = self._read_body()
        if body is None:
            self._write(Response(411, error_body(1001, "Length Required")), close=True)
            return
        if path.startswith(CONTROL_PREFIX + "/"):
            self._write(backend.control(self.command, path, body))
            return
        headers = Headers()
        for name, value in self.headers.items():
            headers[canonical_header(name)] = value
        query = dict(parse_qsl(query_string, keep_blank_values=True)) if query_string else {}
        try:
            self._serve(backend, self.command, path, query, headers, query_string, arrived)
        except OSError:
            self.close_connection = True
        except Exception:
            traceback.print_exc()
            self._write(Response(500, error_body(10001, "Simulator bug: see its stderr")), close=True)

    def _serve(
        self,
        backend: Backend,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Headers,
        query_string: str,
        arrived: float,
    ) -> None:
        """Answer an API request, spoiled by its fault if it has one; log it before the answer goes out."""
        fault = backend.take_fault(method, path)
        kind = None if fault is None else fault.kind

        def log(status: int, kind: str | None) -> None:
            backend.record(RequestRecord(method, path, query, headers, status, arrived, kind, query_string))

        if fault is None or kind == "slow":
            if fault is not None and self.server.stopping.wait(fault.delay):
                self.close_connection = True
                return
            resp, limited = backend.answer(method, path, query, headers)
            log(resp.status, "emulated_rate_limit" if limited else kind)
            self._write(resp)
        elif kind in ("drop", "reset"):
            log(0, kind)
            if kind == "reset":
                self._reset()
            else:
                self.close_connection = True
        elif kind in ("truncated_json", "short_body"):
            resp, _ = backend.answer(method, path, query, headers)
            log(resp.status, kind)
            cut = resp._replace(body=resp.body[: max(1, len(resp.body) // 2)])
            if kind == "truncated_json":
                self._write(cut)
            else:
                self._write(cut, declared_length=len(resp.body), close=True)
        else:
            resp = fault.render(path)
            log(resp.status, kind)
            self._write(resp)
