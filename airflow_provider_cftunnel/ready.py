"""Read ``cloudflared``'s own readiness: ``GET /ready`` on its metrics server.

``cloudflared`` started with ``--metrics ADDR`` answers ``/ready`` with ``{"status": 200, "readyConnections": N,
"connectorId": "<uuid>"}`` once it holds a live edge connection, else 503. The ``connectorId`` is the id the
API lists, so the deploy gate ties "the cloudflared I just started" to the API's view of exactly that connector
(see :mod:`airflow_provider_cftunnel.readiness`). A refused connection, a timeout or a 503 only mean "not
ready yet"; an answer that is not cloudflared's (another status, a 200 that is not its JSON) is a wrong URL and
fails the task at once.

:func:`read_ready` is the blocking read (poke and reschedule modes); :func:`read_ready_shared` runs it in a
thread for the triggerer, and every trigger of one event loop that reads the same URL shares one read.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_cftunnel.exceptions import CloudflareConfigError
from airflow_provider_cftunnel.models import show_value

__all__ = ["READY_TIMEOUT", "ReadyAnswer", "check_ready_url", "interpret_ready", "read_ready", "read_ready_shared"]

#: Seconds to connect to, then to read from, cloudflared's metrics server (it answers from memory).
READY_TIMEOUT = (3.0, 5.0)
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_FIX = (
    "Point ready_url at cloudflared's metrics server, e.g. http://cloudflared:20241/ready for a cloudflared "
    "started with --metrics 0.0.0.0:20241."
)


def shown_url(url: str) -> str:
    """
    ``url`` without credentials or query string, for messages and logs.

    :param url: A ``ready_url``.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def check_ready_url(url: Any) -> str:
    """
    Check that ``url`` is an ``http(s)://`` URL and return it stripped.

    :param url: The sensor's rendered ``ready_url``.
    :raises CloudflareConfigError: When it is anything else, or carries a user or password (shown in neither
        the message nor anywhere else).
    """
    shown = show_value(url)
    if isinstance(url, str):
        url = url.strip()
        try:
            parts = urlsplit(url)
            shown = show_value(shown_url(url))
        except ValueError:  # e.g. an unclosed [IPv6 bracket
            parts, shown = urlsplit(""), "(not a URL)"
        if parts.username is not None or parts.password is not None:
            raise CloudflareConfigError(
                f"ready_url {shown} carries a user or password: cloudflared's /ready takes none, and the URL is "
                "kept in the task's rendered fields and the trigger's arguments. Remove them, and keep the "
                "metrics port on a private network instead."
            )
        if parts.scheme in ("http", "https") and parts.hostname:
            return url
    raise CloudflareConfigError(f"Invalid ready_url {shown}: expected an http:// URL. {_FIX}")


@dataclass(frozen=True)
class ReadyAnswer:
    """
    What cloudflared's ``/ready`` said.

    :param url: The URL read (shown without credentials in messages).
    :param ready: Whether it answered 200 with its JSON.
    :param connector_id: The ``connectorId`` it named (lowercase), when it did.
    :param ready_connections: Its ``readyConnections``, when given.
    :param detail: Why it is not ready (``HTTP 503``, ``connection refused``...), for the waiting reason.
    """

    url: str
    ready: bool
    connector_id: str | None = None
    ready_connections: int | None = None
    detail: str = ""

    def describe(self) -> str:
        """``cloudflared at URL reports connector X ready (4 connections)``, or why it is not ready."""
        where = f"cloudflared at {shown_url(self.url)}"
        if not self.ready:
            return f"{where} not ready ({self.detail})"
        count = "" if self.ready_connections is None else f" ({self.ready_connections} connection(s))"
        return f"{where} reports connector {self.connector_id} ready{count}"


def _ready_connections(body: Any) -> int | None:
    value = body.get("readyConnections") if isinstance(body, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def interpret_ready(url: str, status: int, body: bytes) -> ReadyAnswer:
    """
    Read one answer of ``/ready``.

    A 200 with cloudflared's JSON names the connector; 503 and other 5xx mean "not ready yet".

    :param url: The URL that answered.
    :param status: Its HTTP status.
    :param body: Its body.
    :raises CloudflareConfigError: When the answer is not cloudflared's: another status, or a 200 whose body
        is not JSON with a ``connectorId``.
    """
    try:
        data = json.loads(body.decode("utf-8", "replace")) if body else None
    except ValueError:
        data = None
    if status >= 500:
        count = _ready_connections(data)
        detail = f"HTTP {status}" + ("" if count is None else f", {count} ready connection(s)")
        return ReadyAnswer(url, False, ready_connections=count, detail=detail)
    if status != 200:
        raise CloudflareConfigError(
            f"ready_url {shown_url(url)} answered HTTP {status}: that is not cloudflared's /ready. {_FIX}"
        )
    connector_id = data.get("connectorId") if isinstance(data, dict) else None
    if not isinstance(connector_id, str) or not _UUID_RE.fullmatch(connector_id):
        what = "JSON without a connectorId" if isinstance(data, dict) else "not JSON"
        raise CloudflareConfigError(
            f"ready_url {shown_url(url)} answered HTTP 200 but {what}: that is not cloudflared's /ready "
            f'(it sends {{"status": 200, "readyConnections": N, "connectorId": "<uuid>"}}). {_FIX}'
        )
    return ReadyAnswer(url, True, connector_id=connector_id.lower(), ready_connections=_ready_connections(data))


def read_ready(url: str, timeout: float | tuple[float, float] = READY_TIMEOUT) -> ReadyAnswer:
    """
    Read cloudflared's ``/ready`` once (blocking; poke and reschedule modes).

    :param url: cloudflared's ``/ready`` URL.
    :param timeout: Connect and read timeouts, in seconds.
    :raises CloudflareConfigError: When the answer is not cloudflared's (see :func:`interpret_ready`).
    """
    import requests

    try:
        response = requests.get(url, timeout=timeout, allow_redirects=False)
    except requests.Timeout:
        return ReadyAnswer(url, False, detail="no answer in time")
    except requests.ConnectionError:
        return ReadyAnswer(url, False, detail="connection refused or closed: is cloudflared running with --metrics?")
    except requests.RequestException as error:  # e.g. an invalid URL: the user's to fix
        raise CloudflareConfigError(
            f"ready_url {shown_url(url)} cannot be read: {type(error).__name__}. {_FIX}"
        ) from None
    return interpret_ready(url, response.status_code, response.content)


@dataclass
class _SharedRead:
    at: float
    future: asyncio.Future[ReadyAnswer]


_reads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _SharedRead]] = weakref.WeakKeyDictionary()
#: Reads made by :func:`read_ready_shared` in this process (for tests and benchmarks).
shared_reads = 0


async def read_ready_shared(url: str, max_age: float) -> ReadyAnswer:
    """
    Read cloudflared's ``/ready`` from the triggerer without blocking its loop.

    Every caller of the running loop that asks for ``url`` while a read is in flight, or within ``max_age``
    seconds of the last one, gets that read's answer (one read per interval however many sensors watch the URL).

    :param url: cloudflared's ``/ready`` URL.
    :param max_age: How old (seconds) a shared answer may be.
    :raises CloudflareConfigError: When the answer is not cloudflared's.
    """
    global shared_reads
    reads = _reads.setdefault(asyncio.get_running_loop(), {})
    entry = reads.get(url)
    now = time.monotonic()
    if entry is None or (entry.future.done() and now - entry.at >= max_age):
        shared_reads += 1
        entry = reads[url] = _SharedRead(now, asyncio.ensure_future(asyncio.to_thread(read_ready, url)))
    return await asyncio.shield(entry.future)
