"""The hook's retry policy: ``urllib3``'s ``Retry`` with Cloudflare's backoff and a capped ``Retry-After``.

The backoff formula itself is :func:`~airflow_provider_cftunnel.ratelimit.backoff.retry_backoff` (standard
library only); this module holds what needs ``urllib3``, so only the hook module imports it.
"""

from __future__ import annotations

from itertools import takewhile
from typing import Any

from urllib3.util.retry import Retry

from airflow_provider_cftunnel.ratelimit import retry_backoff

__all__ = ["MAX_RETRY_AFTER", "RETRY_STATUSES", "CloudflareRetry", "parse_retry_after", "retries_made"]

#: Retry-After values above this many seconds are capped (Cloudflare's lockout lasts 5 minutes).
MAX_RETRY_AFTER = 300.0
#: Statuses worth asking again: rate limited, or a server/edge error (Cloudflare's own 52x included).
RETRY_STATUSES = frozenset([429, *range(500, 600)])


class CloudflareRetry(Retry):
    """
    Retry as ``urllib3`` does, with a backoff before every retry and ``Retry-After`` capped.

    ``Retry-After`` (seconds or an HTTP date) is bounded at ``max_retry_after`` seconds. Retry N waits
    :func:`~airflow_provider_cftunnel.ratelimit.backoff.retry_backoff` of ``backoff_factor``, N,
    ``backoff_jitter`` and ``backoff_max``, the first retry included.

    :param max_retry_after: The longest ``Retry-After`` honoured, in seconds.
    """

    def __init__(self, *args: Any, max_retry_after: float = MAX_RETRY_AFTER, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_retry_after = max_retry_after

    def new(self, **kw: Any) -> CloudflareRetry:
        """Return a copy with ``kw`` changed, keeping ``max_retry_after``."""
        retry = super().new(**kw)
        retry.max_retry_after = self.max_retry_after
        return retry

    def parse_retry_after(self, retry_after: str) -> float:
        """Return the seconds a ``Retry-After`` value asks for, at most ``max_retry_after``."""
        return min(super().parse_retry_after(retry_after), self.max_retry_after)

    def get_backoff_time(self) -> float:
        """Return the seconds to wait before the next retry: ``backoff_factor * 2 ** (N - 1)`` plus jitter, capped."""
        # Only the last run of consecutive errors counts (a redirect starts a new run), as in urllib3.
        errors = len(list(takewhile(lambda entry: entry.redirect_location is None, reversed(self.history))))
        if errors == 0:
            return 0.0
        return retry_backoff(self.backoff_factor, errors, jitter=self.backoff_jitter, cap=self.backoff_max)


def parse_retry_after(value: str | None, cap: float = MAX_RETRY_AFTER) -> float | None:
    """
    Return the seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), capped.

    :param value: The header's value.
    :param cap: The longest wait honoured.
    :return: The seconds, or ``None`` if the header is absent or malformed.
    """
    if not value:
        return None
    try:
        return CloudflareRetry(max_retry_after=cap).parse_retry_after(value)
    except Exception:
        return None


def retries_made(response: Any) -> int:
    """
    Return how many times ``urllib3`` retried before this answer (0 when it is the first, or unknown).

    :param response: A ``requests.Response``.
    """
    retry = getattr(response.raw, "retries", None)
    history = getattr(retry, "history", None)
    return len(history) if isinstance(history, tuple) else 0
