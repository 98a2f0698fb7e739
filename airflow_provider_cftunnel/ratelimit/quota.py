"""One view of Cloudflare's shared rate-limit pool per credential in a process, and how long to wait for it.

See :mod:`airflow_provider_cftunnel.ratelimit` for the model and docs/reliability.md for the figures. Standard
library only.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from airflow_provider_cftunnel.ratelimit.claim import QuotaClaim
from airflow_provider_cftunnel.ratelimit.headers import (
    RateLimitObservation,
    horizon,
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
#: A claim that no request took (its caller never sent it) stops counting after this many seconds.
_UNTAKEN_TTL = 5.0
#: The largest number of consumers of the pool the estimate believes in.
MAX_CONSUMERS = 50.0
#: How much one new sample moves the estimate of the pool's consumers (an exponential average).
_CONSUMERS_WEIGHT = 0.3
#: A process divides what it may spend by ``consumers ** SHARE_EXPONENT`` (damped so that processes converge to
#: equal shares; docs/reliability.md).
SHARE_EXPONENT = 0.75


class ServerQuota:
    """
    One credential's view of Cloudflare's shared pool, from the rate-limit headers of its answers.

    Thread-safe; one per credential per process (:func:`quota_for`). Callers ask :meth:`try_claim` before each
    request (or block in :meth:`wait`) and :meth:`QuotaClaim.settle` the claim with the answer's headers. It
    spends only the latest answer's ``r`` above the reserve (:func:`reserve_for`), shared with the pool's other
    consumers, and at or under the reserve sends one probe at a time; it never assumes a refill that no answer
    has shown. docs/reliability.md ("The rule") gives the reasoning.

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
        self._last_id = 0
        #: claim id -> (claimed at, taken)
        self._pending: dict[int, tuple[float, bool]] = {}
        self._latest: RateLimitObservation | None = None
        self._latest_id = 0
        self._reset_at = 0.0
        self._largest_remaining = 0
        self._consumers = 1.0
        #: Whether an answer has shown quota back before the previous answer's ``t`` (a sliding window).
        self._refills_early = False
        self._last_claim_at = -1e18
        self._tokens = 0.0
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
        """The latest observation (``None`` when nothing is known). It stays in force until a newer answer."""
        with self._lock:
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

    @property
    def consumers(self) -> float:
        """How many consumers (this process included) seem to spend from the pool, from the answers (>= 1)."""
        with self._lock:
            return self._consumers

    def reserve(self) -> int:
        """Return the number of requests of the pool kept for its other users, from the latest observation."""
        with self._lock:
            return self._reserve()

    def spendable(self) -> int:
        """
        Return what this process may still spend on the latest answer (may be negative).

        That is ``r`` above the reserve, less its own requests since that answer's request.
        """
        with self._lock:
            self._prune(self._clock())
            return self._spendable()

    def record(self, headers: Mapping[str, str] | None) -> RateLimitObservation | None:
        """
        Record an answer's rate-limit headers (for answers that were not claimed; claims settle themselves).

        :param headers: The answer's headers; ``None`` records nothing.
        :return: The observation, if the headers held one.
        """
        observation = parse_rate_limit(headers)
        if headers is not None:
            with self._lock:
                self._observe(observation, self._last_id)
        return observation

    def forget(self) -> None:
        """Forget every observation and claim (tests; a credential's pool changed hands)."""
        with self._lock:
            self._latest = None
            self._latest_id = self._last_id
            self._pending.clear()
            self._largest_remaining = 0
            self._consumers = 1.0
            self._refills_early = False
            self._headers_seen = None
            self._pacing = False
            self._tokens = 0.0

    # -- asking --

    def delay(self) -> float:
        """Seconds to wait before the next request may go (0: now). Claims nothing."""
        with self._lock:
            return self._delay(self._clock())[0]

    def try_claim(self, *, taken: bool = True) -> tuple[float, QuotaClaim | None]:
        """
        Claim the next request if it may go now.

        :param taken: Whether the caller sends the request itself (``False``: the claim is carried to the
            request that will :meth:`QuotaClaim.take` it; untaken, it stops counting after a few seconds).
        :return: ``(0.0, claim)``, or ``(seconds to wait, None)``: wait (at most :data:`RECHECK` at a time, as
            an answer may bring better news) and ask again.
        """
        with self._lock:
            now = self._clock()
            wait, tokens = self._delay(now)
            if wait > 0:
                self._note_pacing(now)
                return wait, None
            return 0.0, self._claim(now, tokens, taken)

    def claim(self) -> QuotaClaim:
        """Claim a request whatever the quota says (a caller that has waited long enough)."""
        with self._lock:
            now = self._clock()
            return self._claim(now, self._delay(now)[1], True)

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

    # -- internals (lock held) --

    def _reserve(self) -> int:
        quota = self._latest.quota if self._latest is not None else None
        return reserve_for(quota, self._largest_remaining)

    def _prune(self, now: float) -> None:
        if self._pending:
            stale = [
                claim_id
                for claim_id, (at, taken) in self._pending.items()
                if now - at > (_PENDING_TTL if taken else _UNTAKEN_TTL)
            ]
            for claim_id in stale:
                del self._pending[claim_id]

    def _sent_since_latest(self) -> int:
        """
        Count this process's requests the latest answer may not have counted.

        Every later claim counts, and earlier ones still in flight (they may reach the server after the answered one).
        """
        later = self._last_id - self._latest_id
        earlier = sum(1 for claim_id in self._pending if claim_id < self._latest_id)
        return later + earlier

    def _share(self) -> float:
        """Return what this process divides the pool by: the estimated consumers, damped (:data:`SHARE_EXPONENT`)."""
        return float(self._consumers**SHARE_EXPONENT)

    def _others(self) -> int:
        """Return what the other consumers may spend before this process's next answer (one each per own in flight)."""
        return max(0, round(self._share()) - 1) * max(1, len(self._pending))

    def _spendable(self) -> int:
        observation = self._latest
        if observation is None:
            return 0
        return observation.remaining - self._reserve() - self._sent_since_latest()

    def _delay(self, now: float) -> tuple[float, float]:
        """Return ``(seconds to wait, burst tokens available now)``."""
        self._prune(now)
        observation = self._latest
        if observation is None:
            if self._headers_seen is not False and self._pending:  # one request finds out first
                patience = min(at for at, _ in self._pending.values()) + PROBE_PATIENCE - now
                if patience > 0:
                    return min(_PROBE_POLL, patience), 0.0
            return 0.0, 0.0
        # what may go before the next answer: r above the reserve, less this process's requests since and one
        # request of each other consumer (they may be sending at this very moment)
        available = self._spendable() - self._others()
        window = observation.window or observation.reset
        every = max(window / self._reserve(), 1.0)
        if not self._refills_early:  # no answer has shown quota back before t: wait for t (a fixed window)
            every = max(every, observation.reset)
        every = min(self.max_wait, every)
        if available < 1:
            # at or under the reserve: one probe per max(t, window / reserve), then the answer says more
            since = max(self._last_claim_at, observation.observed_at)
            if self._pending:
                since = max(since, now)  # a request is in flight (the probe, or one sent before the answer)
            return max(0.0, since + every - now), 0.0
        spread = horizon(max(0.0, self._reset_at - now), observation.window)
        share = self._share()
        spacing = min(every, spread * share / available)  # above the reserve, never slower than a probe
        capacity = min(MAX_BURST, max(1.0, available / 10)) / share
        tokens = min(max(1.0, capacity), self._tokens + (now - self._last_claim_at) / spacing)
        return (0.0 if tokens >= 1 - 1e-9 else (1 - tokens) * spacing), tokens

    def _claim(self, now: float, tokens: float, taken: bool) -> QuotaClaim:
        self._tokens = max(0.0, tokens - 1) if self._latest is not None else 0.0
        self._last_claim_at = now
        claim_id = next(self._ids)
        self._last_id = claim_id
        self._pending[claim_id] = (now, taken)
        self.claims += 1
        return QuotaClaim(self, claim_id, taken=taken)

    def _take(self, claim: QuotaClaim) -> bool:
        with self._lock:
            if claim._taken:
                return False
            claim._taken = True
            entry = self._pending.get(claim._id)
            if entry is not None:
                self._pending[claim._id] = (entry[0], True)
            return True

    def _note_pacing(self, now: float) -> None:
        observation = self._latest
        if self._pacing or observation is None:
            return
        if observation.remaining * 2 > self._quota_estimate(observation):
            return  # spacing a pool more than half full is not news
        self._pacing = True
        self.episodes += 1
        log.info(
            "Cloudflare reports %d requests left (more in %.0f s, how many unknown); pacing requests of "
            "credential %s (keeping %d in reserve for the pool's other users: dashboard, other workers and tools)",
            observation.remaining,
            max(0.0, self._reset_at - now),
            self.label,
            self._reserve(),
        )

    def _quota_estimate(self, observation: RateLimitObservation) -> int:
        return observation.quota if observation.quota is not None else max(self._largest_remaining, 1)

    def _estimate_consumers(
        self, previous: RateLimitObservation, previous_id: int, new: RateLimitObservation, new_id: int
    ) -> None:
        """Update the estimate of the pool's consumers from two answers: own requests between them, and ``r``."""
        own = new_id - previous_id
        if own < 1:
            return
        fallen = previous.remaining - new.remaining
        sample = min(MAX_CONSUMERS, max(1.0, fallen / own))
        self._consumers += _CONSUMERS_WEIGHT * (sample - self._consumers)

    def _observe(self, observation: RateLimitObservation | None, claim_id: int) -> None:
        now = self._clock()
        if observation is None:
            self._headers_seen = False  # an answer without headers: nothing is known from it
            return
        self._headers_seen = True
        previous, previous_id = self._latest, self._latest_id
        if previous is not None and claim_id < previous_id:
            # an older request's answer, come late: it may only bring worse news
            if observation.remaining >= previous.remaining - (previous_id - claim_id):
                return
            claim_id = previous_id
        observation = replace(observation, observed_at=now)
        if previous is not None and previous.quota == observation.quota:
            self._estimate_consumers(previous, previous_id, observation, claim_id)
            if observation.remaining > previous.remaining and now < self._reset_at - 1.0:
                self._refills_early = True  # ``t`` is rounded up: 1 s of margin before calling it early
        self._latest = observation
        self._latest_id = claim_id
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
                self._observe(observation, claim_id)
        return observation


# -- one quota per credential per process ------------------------------------------------------------------


_quotas: dict[str, ServerQuota] = {}
_quotas_lock = threading.Lock()


def credential_fingerprint(base_url: str, email: str | None, secret: str) -> str:
    """
    Return a hash that identifies a credential (base URL, email if any and secret), never the secret.

    :param base_url: The API base URL.
    :param email: The account email of a Global API Key, or ``None`` for a token.
    :param secret: The token or key.
    """
    return hashlib.sha256("\0".join([base_url, email or "", secret]).encode()).hexdigest()


def quota_for(fingerprint: str) -> ServerQuota:
    """
    Return this process's :class:`ServerQuota` for a credential, created on first use.

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
