"""The simulator's request log: one :class:`RequestRecord` per API request, in a bounded, thread-safe list."""

from __future__ import annotations

import re
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["REDACTED", "Headers", "RequestLog", "RequestRecord", "canonical_header"]

#: What the request log shows instead of a secret header's value.
REDACTED = "[REDACTED]"
_SECRET_HEADERS = frozenset({"Authorization", "X-Auth-Key", "X-Auth-User-Service-Key", "Cookie"})


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


class RequestLog:
    """The last ``maxlen`` records, oldest first; safe to share between the serving threads.

    :param maxlen: how many records it keeps (the oldest are dropped first).
    """

    def __init__(self, maxlen: int) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def append(self, record: RequestRecord) -> None:
        """Add a record.

        :param record: the record.
        """
        with self._lock:
            self._records.append(record)

    def records(self) -> list[RequestRecord]:
        """Return a copy of the records, oldest first."""
        with self._lock:
            return list(self._records)

    def matching(self, path_regex: str, method: str | None = None) -> list[RequestRecord]:
        """Return the records whose path matches (``re.search``) and, if given, whose method is ``method``.

        :param path_regex: a regular expression.
        :param method: an HTTP method (any case).
        """
        pattern = re.compile(path_regex)
        wanted = None if method is None else method.upper()
        return [r for r in self.records() if pattern.search(r.path) and (wanted is None or r.method == wanted)]

    def clear(self) -> int:
        """Empty the log; return how many records it held."""
        with self._lock:
            count = len(self._records)
            self._records.clear()
        return count

    def __len__(self) -> int:
        return len(self._records)
