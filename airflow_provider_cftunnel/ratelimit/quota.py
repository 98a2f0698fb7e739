"""One view of Cloudflare's shared rate-limit pool per credential in a process, and how long to wait for it.

See :mod:`airflow_provider_cftunnel.ratelimit` for the model. Standard library only.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from airflow_provider_cftunnel.ratelimit.headers import (
    RateLimitObservation,
    parse_rate_limit,
    reserve_for,
)

__all__ = [
    "MAX_WAIT",
    "RECHECK",
    "QuotaClaim",
    "ServerQuota",
    "clear_quotas",
    "credential_fingerprint",
    "quota_for",
]

log = logging.getLogger("airflow_provider_cftunnel.ratelimit")

#: The longest a reset is believed, and so the longest one wait for the quota lasts (Cloudflare's lockout).
MAX_WAIT = 300.0
#: Requests that may go back to back while the pool is comfortable (fewer as it drains).
MAX_BURST = 10.0
#: Callers re-check at least this often while they wait (an answer may bring better news).
RECHECK = 1.0
#: While nothing is known, one request goes first and the others wait this long for its answer at most.
PROBE_PATIENCE = 5.0
_PROBE_POLL = 0.05
#: A claim whose request never reported back stops counting as in flight after this many seconds.
_PENDING_TTL = 600.0


class QuotaClaim:
    """
    One request's place in a :class:`ServerQuota`: counted as in flight until :meth:`settle` reports its
    answer (or that there was none).
    """

    __slots__ = ("_id", "quota")

    def __init__(self, quota: ServerQuota, claim_id: int) -> None:
        self.quota = quota
        self._id = claim_id

    def settle(self, headers: Mapping[str, str] | None) -> RateLimitObservation | None:
        """
        The request is over: stop counting it as in flight and record what its answer said.

        Safe to call more than once (only the first call counts).

        :param headers: The answer's headers (an error answer's too), or ``None`` when there was no answer.
        :return: The observation recorded, if the headers held one.
        """
        return self.quota._settle(self._id, headers)

    def __repr__(self) -> str:
        return f"<QuotaClaim {self._id} of {self.quota.label}>"


class ServerQuota:
    """
    One credential's view of Cloudflare's shared pool, from the rate-limit headers of its answers.

    Thread-safe; one per credential per process (:func:`quota_for`). Callers ask :meth:`try_claim` before each
    request (or block in :meth:`wait`) and :meth:`QuotaClaim.settle` the claim with the answer's headers. The
    decision: nothing known, no wait (but while the first answer is awaited, one request at a time);
    otherwise keep :func:`reserve_for` requests in reserve, spread the rest (less the requests in flight)
    evenly over the time to the reset, allowing short bursts while the pool is comfortable, and at the
    reserve wait for the reset. An observation is forgotten once its reset time has passed.

    :param label: How logs name the credential (a fingerprint prefix, never the secret).
    :param max_wait: The longest a reset is believed, in seconds.
    :param clock: Monotonic seconds (a test may pass a fake clock).
    """

    def __init__(self, label: str = "", *, max_wait: float = MAX_WAIT, clock: Callable[[], float] = time.monotonic):
        self.label = label
        self.max_wait = max_wait
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._latest: RateLimitObservation | None = None
        self._reset_at = 0.0
        self._largest_remaining = 0
        self._pending: dict[int, float] = {}
        self._handed: deque[QuotaClaim] = deque()
        self._tokens = 0.0
        self._tokens_at = 0.0
        self._headers_seen: bool | None = None
        self._pacing = False
        #: Answers whose headers were recorded.
        self.observations = 0
        #: Requests claimed.
        self.claims = 0
        #: Pacing episodes started (each logged once).
        self.episodes = 0

    def __repr__(self) -> str:
        return f"<ServerQuota {self.label}>"

    # -- what is known --

    @property
    def latest(self) -> RateLimitObservation | None:
        """The latest observation still in force (``None`` when nothing is known or its reset has passed)."""
        with self._lock:
            self._expire(self._clock())
            return self._latest

    @property
    def pacing(self) -> bool:
        """Whether the quota is pacing requests because the shared pool is low."""
        with self._lock:
            return self._pacing

    @property
    def in_flight(self) -> int:
        """Requests claimed whose answer has not been reported yet."""
        with self._lock:
            self._prune(self._clock())
            return len(self._pending)

    def reserve(self) -> int:
        """The number of requests of the pool kept for its other users, from the latest observation."""
        with self._lock:
            quota = self._latest.quota if self._latest is not None else None
            return reserve_for(quota, self._largest_remaining)

    def record(self, headers: Mapping[str, str] | None) -> RateLimitObservation | None:
        """
        Record an answer's rate-limit headers (for answers that were not claimed; claims settle themselves).

        :param headers: The answer's headers; ``None`` records nothing.
        :return: The observation, if the headers held one.
        """
        observation = parse_rate_limit(headers)
        if headers is not None:
            with self._lock:
                self._observe(observation)
        return observation

    def forget(self) -> None:
        """Forget every observation and claim (tests; a credential's pool changed hands)."""
        with self._lock:
            self._latest = None
            self._pending.clear()
            self._handed.clear()
            self._largest_remaining = 0
            self._headers_seen = None
            self._pacing = False
            self._tokens = 0.0

    # -- asking --

    def delay(self) -> float:
        """Seconds to wait before the next request may go (0: now). Claims nothing."""
        with self._lock:
            return self._delay(self._clock())[0]

    def try_claim(self) -> tuple[float, QuotaClaim | None]:
        """
        Claim the next request if it may go now.

        :return: ``(0.0, claim)``, or ``(seconds to wait, None)``: wait (at most :data:`RECHECK` at a time, as
            an answer may bring better news) and ask again.
        """
        with self._lock:
            now = self._clock()
            wait, tokens = self._delay(now)
            if wait > 0:
                self._note_pacing(now)
                return wait, None
            return 0.0, self._claim(now, tokens)

    def claim(self) -> QuotaClaim:
        """Claim a request whatever the quota says (a caller that has waited long enough)."""
        with self._lock:
            now = self._clock()
            return self._claim(now, self._delay(now)[1])

    def wait(self, max_wait: float | None = None, sleep: Callable[[float], Any] = time.sleep) -> QuotaClaim:
        """
        Block until the next request may go, then claim it.

        :param max_wait: The longest to wait in all, in seconds; then the request goes anyway (the reserve is
            there for it). ``None``: as long as the quota says (at most :attr:`max_wait` per reset).
        :param sleep: How to wait.
        """
        deadline = None if max_wait is None else self._clock() + max_wait
        while True:
            wait, claim = self.try_claim()
            if claim is not None:
                return claim
            if deadline is not None:
                left = deadline - self._clock()
                if left <= 0:
                    return self.claim()
                wait = min(wait, left)
            sleep(min(wait, RECHECK))

    def hand_over(self, claim: QuotaClaim) -> None:
        """
        Leave a claim, already waited for, to the next request of this quota.

        The triggerer's budget waits for the quota on the event loop (``asyncio.sleep``), then the hook runs in a
        thread: its request takes the claim with :meth:`take_handed_over` instead of waiting (blocking) a second
        time. Claims are interchangeable: a claim whose request never went is taken by the next one.

        :param claim: A claim of this quota.
        """
        with self._lock:
            self._handed.append(claim)

    def take_handed_over(self) -> QuotaClaim | None:
        """The oldest claim handed over and not yet taken (nor settled), or ``None``."""
        with self._lock:
            while self._handed:
                claim = self._handed.popleft()
                if claim._id in self._pending:
                    return claim
            return None

    # -- internals (lock held) --

    def _prune(self, now: float) -> None:
        if self._pending:
            stale = [claim_id for claim_id, at in self._pending.items() if now - at > _PENDING_TTL]
            for claim_id in stale:
                del self._pending[claim_id]

    def _expire(self, now: float) -> None:
        if self._latest is not None and now >= self._reset_at:
            self._latest = None
            self._pacing = False  # the window has reset: a new episode logs again

    def _quota_estimate(self, observation: RateLimitObservation) -> int:
        return observation.quota if observation.quota is not None else max(self._largest_remaining, 1)

    def _delay(self, now: float) -> tuple[float, float]:
        """``(seconds to wait, burst tokens available now)``."""
        self._prune(now)
        self._expire(now)
        observation = self._latest
        if observation is None:
            if self._headers_seen is not False and self._pending:  # one request finds out first
                patience = min(self._pending.values()) + PROBE_PATIENCE - now
                if patience > 0:
                    return min(_PROBE_POLL, patience), 0.0
            return 0.0, 0.0
        left = self._reset_at - now
        above_reserve = observation.remaining - reserve_for(observation.quota, self._largest_remaining)
        if above_reserve <= 0:
            return left, 0.0  # at the reserve: wait for the reset
        available = above_reserve - len(self._pending)
        if available <= 0:
            return min(left, _PROBE_POLL * 2), 0.0  # the rest is in flight: its answers tell more
        spacing = left / available
        capacity = min(MAX_BURST, max(1.0, available / 10))
        tokens = min(capacity, self._tokens + (now - self._tokens_at) / spacing)
        return (0.0 if tokens >= 1 else (1 - tokens) * spacing), tokens

    def _claim(self, now: float, tokens: float) -> QuotaClaim:
        self._tokens = tokens - 1 if self._latest is not None else 0.0
        self._tokens_at = now
        claim_id = next(self._ids)
        self._pending[claim_id] = now
        self.claims += 1
        return QuotaClaim(self, claim_id)

    def _note_pacing(self, now: float) -> None:
        observation = self._latest
        if self._pacing or observation is None:
            return
        if observation.remaining * 2 > self._quota_estimate(observation):
            return  # spacing a pool more than half full is not news
        self._pacing = True
        self.episodes += 1
        log.info(
            "Cloudflare reports %d requests left for %.0f s; pacing requests of credential %s (keeping %d in "
            "reserve for the pool's other users: dashboard, other workers and tools)",
            observation.remaining,
            max(0.0, self._reset_at - now),
            self.label,
            reserve_for(observation.quota, self._largest_remaining),
        )

    def _observe(self, observation: RateLimitObservation | None) -> None:
        now = self._clock()
        if observation is None:
            self._headers_seen = False  # an answer without headers: nothing is known from it
            return
        self._headers_seen = True
        self._latest = replace(observation, observed_at=now)
        self._reset_at = now + min(observation.reset, self.max_wait)
        self._largest_remaining = max(self._largest_remaining, observation.remaining)
        self.observations += 1
        if self._pacing and observation.remaining * 4 > self._quota_estimate(observation) * 3:
            self._pacing = False  # three quarters left: the episode is over (a half would flap)
            log.debug("Cloudflare's pool for credential %s is comfortable again; pacing ends", self.label)

    def _settle(self, claim_id: int, headers: Mapping[str, str] | None) -> RateLimitObservation | None:
        observation = parse_rate_limit(headers) if headers is not None else None
        with self._lock:
            if self._pending.pop(claim_id, None) is None:
                return None  # settled before (or forgotten)
            if headers is not None:
                self._observe(observation)
        return observation


# -- one quota per credential per process ------------------------------------------------------------------


_quotas: dict[str, ServerQuota] = {}
_quotas_lock = threading.Lock()


def credential_fingerprint(base_url: str, email: str | None, secret: str) -> str:
    """
    A hash that identifies a credential (the API base URL, the email if any and the secret), never the secret.

    :param base_url: The API base URL.
    :param email: The account email of a Global API Key, or ``None`` for a token.
    :param secret: The token or key.
    """
    return hashlib.sha256("\0".join([base_url, email or "", secret]).encode()).hexdigest()


def quota_for(fingerprint: str) -> ServerQuota:
    """
    This process's :class:`ServerQuota` for a credential, created on first use.

    :param fingerprint: What :func:`credential_fingerprint` returned for it.
    """
    quota = _quotas.get(fingerprint)
    if quota is None:
        with _quotas_lock:
            quota = _quotas.setdefault(fingerprint, ServerQuota(fingerprint[:12]))
    return quota


def clear_quotas() -> None:
    """Forget every credential's quota (for tests that reuse a simulator's address)."""
    with _quotas_lock:
        _quotas.clear()
