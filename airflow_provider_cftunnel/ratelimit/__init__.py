"""Cloudflare's rate-limit headers, and one view of the shared pool per credential in a process.

Cloudflare's limit, 1,200 requests per 5 minutes, is per *user*: every API token and key of the user, the
dashboard, the other triggerers and workers all draw from one pool, and crossing it locks all of them out for
5 minutes. No process can count what the others spend, but since September 2025 every answer (success or
error) says what is left of the pool::

    Ratelimit: "default";r=50;t=30              r: requests remaining, t: seconds until the quota resets
    Ratelimit-Policy: "default";q=1200;w=300    q: the quota, w: its window in seconds

(the first form of the announcement, and older edges, send ``X-RateLimit-Limit`` / ``-Remaining`` /
``-Reset`` instead; proxies may strip them all). What ``t`` means is not settled: revision 10 of the IETF
draft made it "the seconds until *additional* quota is made available" (a sliding window may give back a little
long before the whole window clears), and Cloudflare does not say whether its window is fixed or sliding. So
the pacing never assumes a refill that no answer has shown:

* :func:`parse_rate_limit` (:mod:`.headers`) reads either form from any answer; absent or malformed headers are
  "no information", and then nothing changes. When several limits are listed, the most constraining governs.
* :class:`ServerQuota` (:mod:`.quota`: the rule; one per credential per process, found by :func:`quota_for`)
  keeps the latest answer and decides when the next request may go: it spends only ``r`` above a reserve (10 %
  of the quota), shared with the pool's other consumers it infers from how fast ``r`` falls, and at the reserve
  sends one probe at a time to learn whether quota came back.
* :mod:`.budget` is the one path every request takes: :func:`claim_request` for the hook (synchronous) and
  :meth:`RequestBudget.acquire` for the triggerer's pollers (asynchronous; it adds the connection's own ceiling,
  ``rate_limit_requests`` per ``rate_limit_period``).
* :mod:`.backoff` holds the waits after errors: the hook's :func:`retry_backoff` and the pollers'
  :func:`poll_delay`.

docs/reliability.md has the figures. Standard library only, so the trigger module can import it on the
triggerer's event loop.
"""

from __future__ import annotations

from airflow_provider_cftunnel.ratelimit.backoff import MAX_BACKOFF, poll_delay, retry_backoff
from airflow_provider_cftunnel.ratelimit.budget import BUDGET_BURST, BUDGET_SHARE, RequestBudget, claim_request
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
    "BUDGET_BURST",
    "BUDGET_SHARE",
    "MAX_BACKOFF",
    "MAX_WAIT",
    "RECHECK",
    "RESERVE_SHARE",
    "QuotaClaim",
    "RateLimitObservation",
    "RequestBudget",
    "ServerQuota",
    "claim_request",
    "clear_quotas",
    "credential_fingerprint",
    "parse_rate_limit",
    "poll_delay",
    "quota_for",
    "reserve_for",
    "retry_backoff",
]
