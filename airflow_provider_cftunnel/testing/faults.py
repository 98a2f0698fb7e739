"""Fault injection for the local Cloudflare simulator.

A :class:`Fault` replaces (or delays) the answer to matching API requests: ``path`` is a regular expression
searched in the request path (which includes ``/client/v4``, never the query string), ``method`` an optional
HTTP method, ``skip`` how many matching requests to let through first and ``count`` how many to spoil
(``None``: every one). Faults are checked in the order they were added; the first active match wins.
Faults never apply to the ``/__simulator__/`` control endpoints.

The kinds (:data:`FAULT_KINDS`) and their parameters are listed in docs/simulator.md ("Faults").

:meth:`Fault.render` builds the answer of the kinds that send one of their own (:data:`RENDERED_KINDS`); the
HTTP server (:mod:`airflow_provider_cftunnel.testing.http`) carries out the others, which act on the connection
or on the normal answer.
"""

from __future__ import annotations

import email.utils
import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from airflow_provider_cftunnel.testing.wire import Response, dumps, error_body

__all__ = ["FAULT_KINDS", "RENDERED_KINDS", "Fault", "FaultSet", "default_message"]

#: Every kind of fault the simulator can inject.
FAULT_KINDS = (
    "rate_limit",
    "server_error",
    "slow",
    "drop",
    "reset",
    "truncated_json",
    "short_body",
    "non_json",
    "success_false",
    "null_result",
    "error",
    "redirect",
)
#: The kinds whose answer :meth:`Fault.render` builds; the others (``slow``, ``drop``, ``reset``,
#: ``truncated_json``, ``short_body``) act on the connection or on the normal answer.
RENDERED_KINDS = frozenset(
    {"rate_limit", "server_error", "non_json", "success_false", "null_result", "error", "redirect"}
)

_GATEWAY_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1>"
    "</center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)
_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head>"
    "<body><h1>Sorry, you have been blocked</h1><p>Cloudflare Ray ID: simulated</p></body></html>"
)

_MESSAGES = {
    971: "Please wait and consider throttling your request speed",
    1000: "Invalid API Token",
    1002: "Simulated failure",
    1003: "Not found",
    6003: "Invalid request headers",
    6111: "Invalid format for Authorization header",
    7000: "No route for that URI",
    7003: "Could not route to the requested resource, perhaps your object identifier is invalid?",
    9103: "Unknown X-Auth-Key or X-Auth-Email",
    9106: "Missing X-Auth-Key, X-Auth-Email or Authorization headers",
    9109: "Unauthorized to access requested resource",
    10000: "Authentication error",
    10001: "Internal server error",
}

_SPEC_FIELDS = (
    "kind",
    "path",
    "method",
    "count",
    "skip",
    "status",
    "code",
    "message",
    "retry_after",
    "retry_after_date",
    "body",
    "delay",
    "location",
    "error_chain",
    "headers",
)

_ids = itertools.count(1)


def default_message(code: int) -> str:
    """Return Cloudflare's usual message for an error code, or a generic one.

    :param code: a Cloudflare error code.
    """
    return _MESSAGES.get(code, "Simulated error")


@dataclass(eq=False)
class Fault:
    """One injected fault; see the module docstring for the kinds and their parameters.

    :ivar hits: how many requests this fault has spoiled so far.
    :ivar seen: how many requests matched it (including the ``skip`` ones let through).
    """

    kind: str
    path: str | None = None
    method: str | None = None
    count: int | None = 1
    skip: int = 0
    status: int | None = None
    code: int | None = None
    message: str | None = None
    retry_after: int | float | str | None = None
    retry_after_date: float | None = None
    body: str | None = None
    delay: float = 0.0
    location: str | None = None
    error_chain: list[dict[str, Any]] | None = None
    headers: dict[str, str] | None = None
    id: int = field(default_factory=lambda: next(_ids))
    hits: int = 0
    seen: int = 0

    def __post_init__(self) -> None:
        self._validate()
        self._regex = re.compile(self.path) if self.path is not None else None
        if self.method is not None:
            self.method = self.method.upper()

    def _validate(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(FAULT_KINDS)}")
        if self.path is not None:
            if not isinstance(self.path, str):
                raise TypeError(f"path must be a regular expression string, got {self.path!r}")
            try:
                re.compile(self.path)
            except re.error as exc:
                raise ValueError(f"path {self.path!r} is not a valid regular expression: {exc}") from exc
        if self.count is not None and (not _is_int(self.count) or self.count < 1):
            raise ValueError(f"count must be a positive integer or None, got {self.count!r}")
        if not _is_int(self.skip) or self.skip < 0:
            raise ValueError(f"skip must be an integer >= 0, got {self.skip!r}")
        if self.status is not None and (not _is_int(self.status) or not 100 <= self.status <= 599):
            raise ValueError(f"status must be an HTTP status code, got {self.status!r}")
        if self.code is not None and (not _is_int(self.code) or self.code < 1):
            raise ValueError(f"code must be a positive integer, got {self.code!r}")
        if self.retry_after is not None and (
            isinstance(self.retry_after, bool) or not isinstance(self.retry_after, int | float | str)
        ):
            raise ValueError(f"retry_after must be a number of seconds or a string, got {self.retry_after!r}")
        if self.retry_after is not None and self.retry_after_date is not None:
            raise ValueError("give retry_after or retry_after_date, not both")
        if self.kind == "server_error":
            if self.status is not None and not 500 <= self.status <= 599:
                raise ValueError(f"server_error needs a 5xx status, got {self.status}")
            if self.body not in (None, "json", "html"):
                raise ValueError(f"server_error body must be 'json' or 'html', got {self.body!r}")
        if self.kind == "slow" and (
            isinstance(self.delay, bool) or not isinstance(self.delay, int | float) or self.delay <= 0
        ):
            raise ValueError(f"slow needs delay > 0 seconds, got {self.delay!r}")
        if self.kind == "error" and (self.status is None or self.code is None):
            raise ValueError("error needs status and code")
        if self.kind == "redirect":
            if not self.location:
                raise ValueError("redirect needs location")
            if self.status is not None and self.status not in (301, 302, 303, 307, 308):
                raise ValueError(f"redirect status must be 301, 302, 303, 307 or 308, got {self.status}")
        if self.error_chain is not None and not (
            isinstance(self.error_chain, list)
            and all(isinstance(e, dict) and _is_int(e.get("code")) for e in self.error_chain)
        ):
            raise ValueError(f"error_chain must be a list of {{code, message}} objects, got {self.error_chain!r}")
        if self.headers is not None and not (
            isinstance(self.headers, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items())
        ):
            raise ValueError(f"headers must map strings to strings, got {self.headers!r}")

    @classmethod
    def from_dict(cls, spec: Any) -> Fault:
        """Build a fault from a JSON spec (the keys are the constructor's parameters).

        :param spec: a dict with at least ``kind``.
        :raises ValueError: on an unknown key or an invalid value.
        """
        if not isinstance(spec, dict):
            raise ValueError(f"a fault spec must be an object, got {spec!r}")
        unknown = sorted(set(spec) - set(_SPEC_FIELDS))
        if unknown:
            raise ValueError(f"unknown fault key(s) {', '.join(unknown)}")
        if "kind" not in spec:
            raise ValueError("a fault spec needs a kind")
        return cls(**spec)

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON spec that recreates this fault (without its counters)."""
        defaults = Fault.__dataclass_fields__
        spec: dict[str, Any] = {"kind": self.kind}
        for name in _SPEC_FIELDS[1:]:
            value = getattr(self, name)
            if value != defaults[name].default:
                spec[name] = value
        return spec

    def to_dict(self) -> dict[str, Any]:
        """Return the spec plus ``id``, ``hits``, ``seen`` and ``active`` (what the control endpoint shows)."""
        return {**self.to_spec(), "id": self.id, "hits": self.hits, "seen": self.seen, "active": self.active}

    @property
    def active(self) -> bool:
        """Whether this fault will still spoil a matching request."""
        return self.count is None or self.hits < self.count

    @property
    def remaining(self) -> int | None:
        """How many more requests it will spoil (``None``: unlimited)."""
        return None if self.count is None else max(self.count - self.hits, 0)

    def matches(self, method: str, path: str) -> bool:
        """Whether a request with this method and path (no query string) is one this fault targets.

        :param method: the HTTP method.
        :param path: the request path.
        """
        if self.method is not None and method != self.method:
            return False
        return self._regex is None or self._regex.search(path) is not None

    @property
    def effective_status(self) -> int:
        """The HTTP status this fault answers with (for kinds that send their own response)."""
        if self.status is not None:
            return self.status
        return {"rate_limit": 429, "server_error": 500, "redirect": 302}.get(self.kind, 200)

    @property
    def effective_code(self) -> int:
        """The Cloudflare error code this fault reports (for kinds that send an error envelope)."""
        if self.code is not None:
            return self.code
        return {"rate_limit": 971, "server_error": 10001, "success_false": 1002}.get(self.kind, 10000)

    @property
    def effective_message(self) -> str:
        """The error message this fault reports."""
        return self.message if self.message is not None else default_message(self.effective_code)

    def render(self, path: str) -> Response:
        """Return the answer this fault sends instead of the normal one (a kind of :data:`RENDERED_KINDS`).

        :param path: the request path (``error`` with code 7003 names it in its default message).
        :raises ValueError: for a kind that sends no answer of its own.
        """
        kind = self.kind
        status = self.effective_status
        headers: list[tuple[str, str]] = []
        if kind == "rate_limit":
            headers.extend(self._retry_after())
            resp = Response(429, error_body(self.effective_code, self.effective_message))
        elif kind == "server_error" and self.body == "html":
            page = _GATEWAY_PAGE.format(status=status, reason=_reason(status))
            resp = Response(status, page.encode(), "text/html")
        elif kind in ("server_error", "success_false"):
            resp = Response(status, error_body(self.effective_code, self.effective_message))
        elif kind == "non_json":
            resp = Response(status, (self.body or _HTML_PAGE).encode(), "text/html; charset=UTF-8")
        elif kind == "null_result":
            resp = Response(status, dumps({"success": True, "errors": [], "messages": [], "result": None}))
        elif kind == "error":
            chain = self.error_chain
            if chain is None and self.effective_code == 6003:
                chain = [{"code": 6111, "message": "Invalid format for Authorization header"}]
            message = self.message
            if message is None and self.effective_code == 7003:
                message = f"Could not route to {path}, perhaps your object identifier is invalid?"
            resp = Response(status, error_body(self.effective_code, message or self.effective_message, chain))
        elif kind == "redirect":
            assert self.location is not None
            resp = Response(status, b"", "text/plain", (("Location", self.location),))
        else:
            raise ValueError(f"a {kind} fault sends no answer of its own")
        headers.extend((self.headers or {}).items())
        return resp._replace(headers=resp.headers + tuple(headers)) if headers else resp

    def _retry_after(self) -> list[tuple[str, str]]:
        if self.retry_after is not None:
            value = self.retry_after
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            return [("Retry-After", str(value))]
        if self.retry_after_date is not None:
            return [("Retry-After", email.utils.formatdate(time.time() + self.retry_after_date, usegmt=True))]
        return []


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class FaultSet:
    """The simulator's ordered, thread-safe list of faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        """Append a fault and return it.

        :param fault: the fault.
        """
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def all(self) -> list[Fault]:
        """Return the faults (the objects themselves, in order)."""
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str) -> Fault | None:
        """Return the fault that spoils this request, counting the hit, or ``None``.

        :param method: the HTTP method.
        :param path: the request path (no query string).
        """
        if not self._faults:
            return None
        with self._lock:
            for fault in self._faults:
                if not fault.active or not fault.matches(method, path):
                    continue
                fault.seen += 1
                if fault.seen <= fault.skip:
                    continue
                fault.hits += 1
                return fault
        return None
