"""How long to wait after a failed request: the hook's retry backoff and the pollers' poll delay, side by side.

Both only ever add waits to what the pool allows (:mod:`airflow_provider_cftunnel.ratelimit.budget`), and both
honour ``Retry-After``. Standard library only.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["MAX_BACKOFF", "POLL_BACKOFF_INTERVALS", "poll_delay", "retry_backoff"]

#: Longest wait between two polls of a tunnel, in seconds, whatever the interval.
MAX_BACKOFF = 300.0
#: Longest wait between two polls after transient errors, in poll intervals: the pool already bounds what a
#: poller sends, so a longer backoff only delays the first poll after an outage.
POLL_BACKOFF_INTERVALS = 1.5


def retry_backoff(factor: float, errors: int, *, jitter: float = 0.0, cap: float = 60.0) -> float:
    """
    Return the seconds the hook waits before retry ``errors`` of one request.

    That is ``factor * 2 ** (errors - 1)`` plus up to ``jitter`` seconds of random jitter, at most ``cap`` (0
    before the first error). The hook's ``urllib3`` policy that calls it is
    :class:`~airflow_provider_cftunnel.hooks.retry.CloudflareRetry`.

    :param factor: The backoff factor (the first retry waits about this long).
    :param errors: Errors in a row so far.
    :param jitter: The most random seconds added.
    :param cap: The longest wait.
    """
    if errors <= 0:
        return 0.0
    backoff = factor * 2 ** min(errors - 1, 32)
    if jitter:
        backoff += random.random() * jitter
    return float(max(0.0, min(cap, backoff)))


def poll_delay(interval: float, failures: int, error: Any = None) -> float:
    """
    Return the seconds until the next poll of a poller that polls every ``interval`` seconds.

    After transient errors it waits a random 1 to :data:`POLL_BACKOFF_INTERVALS` intervals (the jitter spreads
    the pollers of one outage apart; what they send is bounded by the pool, not here), at most
    :data:`MAX_BACKOFF` unless the interval is longer; never sooner than the error's ``retry_after`` (a 429's
    ``Retry-After``). The connector triggers' pollers and the health trigger both wait this long.

    :param interval: The poll interval, in seconds.
    :param failures: Transient errors in a row (0: the last poll worked).
    :param error: The last poll's error, if any (its ``retry_after`` attribute, when set, is honoured).
    """
    delay = interval
    if failures:
        delay = max(interval, min(MAX_BACKOFF, interval * (1 + random.random() * (POLL_BACKOFF_INTERVALS - 1))))
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after > 0:
        delay = max(delay, float(retry_after))
    return delay
