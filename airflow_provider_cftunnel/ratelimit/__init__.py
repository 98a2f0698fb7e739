"""Cloudflare's rate-limit headers, and one view of the shared pool per credential in a process.

Cloudflare's limit, 1,200 requests per 5 minutes, is per *user*: every API token and key of the user, the
dashboard, the other triggerers and workers all draw from one pool, and crossing it locks all of them out for
5 minutes. No process can count what the others spend, but since September 2025 every answer (success or
error) says what is left of the pool::

    Ratelimit: "default";r=50;t=30              r: requests remaining, t: seconds until the quota resets
    Ratelimit-Policy: "default";q=1200;w=300    q: the quota, w: its window in seconds

(the first form of the announcement, and older edges, send ``X-RateLimit-Limit`` / ``-Remaining`` /
``-Reset`` instead; proxies may strip them all). So every process paces itself on the server's count:

* :func:`parse_rate_limit` reads either form from any answer; absent or malformed headers are "no
  information", and then nothing changes. When several limits are listed, the most constraining governs.
* :class:`ServerQuota` (one per credential per process, found by :func:`quota_for`, shared by every hook and
  every poller of that credential) keeps the latest observation and says how long to wait before the next
  request: it keeps a reserve (10 % of the policy's quota, at least 1) for the pool's other users, spreads
  what remains above it evenly over the time to the reset, and at the reserve waits for the reset. Processes
  that read the same count each take a share of what is left, so together they slow down as the pool drains,
  and converge instead of racing each other into the lockout.

The quota only ever adds waits: the connection's ``rate_limit_requests`` / ``rate_limit_period`` stay the
ceiling (the triggerer's :class:`~airflow_provider_cftunnel.triggers.tunnel.RequestBudget` enforces them).
Standard library only, so the trigger module can import it on the triggerer's event loop.
"""

from __future__ import annotations

from airflow_provider_cftunnel.ratelimit.headers import (
    RESERVE_SHARE,
    RateLimitObservation,
    parse_rate_limit,
    reserve_for,
)
from airflow_provider_cftunnel.ratelimit.quota import (
    MAX_WAIT,
    RECHECK,
    QuotaClaim,
    ServerQuota,
    clear_quotas,
    credential_fingerprint,
    quota_for,
)

__all__ = [
    "MAX_WAIT",
    "RECHECK",
    "RESERVE_SHARE",
    "QuotaClaim",
    "RateLimitObservation",
    "ServerQuota",
    "clear_quotas",
    "credential_fingerprint",
    "parse_rate_limit",
    "quota_for",
    "reserve_for",
]
