"""The simulator's emulated Cloudflare rate limit: one pool per user, its windows, its lockout and its headers.

Cloudflare allows 1,200 requests per 5 minutes per *user* (every token and key of the user, and the dashboard)
and does not say whether that window is fixed or sliding, nor, since the IETF draft changed the meaning of
``t`` in revision 10, whether ``t`` counts to "more quota" or to "the whole quota". A client must be safe under
every combination, so the emulation offers them all (``window`` and ``reset``), defaulting to the hardest one
for a client: a sliding window whose ``t`` is the time until *some* quota comes back.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any, NamedTuple

__all__ = [
    "RATE_LIMIT_HEADER_STYLES",
    "RATE_LIMIT_RESETS",
    "RATE_LIMIT_WINDOWS",
    "RateDecision",
    "RateLimiter",
]

#: How the emulated limit describes itself on every answer: ``ietf`` (``Ratelimit`` / ``Ratelimit-Policy``,
#: as Cloudflare since 2025-09), ``legacy`` (``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset``) or ``none``
#: (stripped, as by some proxies).
RATE_LIMIT_HEADER_STYLES = ("ietf", "legacy", "none")
#: How requests are counted: ``sliding`` (the last ``period`` seconds, at every moment) or ``fixed``
#: (consecutive windows of ``period`` seconds from the moment the limit was set, each starting empty).
RATE_LIMIT_WINDOWS = ("sliding", "fixed")
#: What ``t`` (``Reset``) counts to in a sliding window: ``more`` (until the oldest counted request leaves the
#: window, so that one more request is allowed: draft-ietf-httpapi-ratelimit-headers-10) or ``full`` (until the
#: newest leaves it, so that the whole quota is back if nothing more comes). A fixed window's ``t`` is the time
#: to its end either way.
RATE_LIMIT_RESETS = ("more", "full")
RATE_LIMIT_POLICY_NAME = "default"


class RateDecision(NamedTuple):
    """What the emulated limit decided for one request: ``retry_after`` is ``None`` when it may go."""

    retry_after: float | None
    remaining: int
    reset: float


class RateLimiter:
    """
    Cloudflare's limit per user: ``requests`` per ``period`` seconds.

    It is shared by every API token and Global API Key of the user (and the dashboard); going over locks the
    whole pool out for ``period`` seconds. It uses the caller's clock (seconds since start).

    Each answer can say what is left (``remaining`` after counting it, and ``reset``: see
    :data:`RATE_LIMIT_RESETS`, or the seconds until the lockout ends). A background consumer (``dashboard_rate``
    requests per second, e.g. a person in the dashboard) can spend from the default pool; it does not back off,
    so when it crosses the limit it locks everyone out, as on Cloudflare.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: int | None = None
        self.period = 300.0
        #: ``ietf``, ``legacy`` or ``none``: see :data:`RATE_LIMIT_HEADER_STYLES`.
        self.headers = "ietf"
        #: ``sliding`` or ``fixed``: see :data:`RATE_LIMIT_WINDOWS`.
        self.window = "sliding"
        #: ``more`` or ``full``: see :data:`RATE_LIMIT_RESETS`.
        self.reset_to = "more"
        #: requests per second the emulated dashboard spends from :attr:`default_pool`.
        self.dashboard_rate = 0.0
        #: the pool the dashboard spends from (the scenario's user).
        self.default_pool: str | None = None
        self._origin = 0.0
        self._windows: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._dashboard_next: float | None = None
        #: how many 429 answers the emulated limit has served.
        self.limited = 0
        #: how many times a pool was locked out.
        self.lockouts = 0
        #: requests the emulated dashboard (and :meth:`spend`) made, and how many of them the limit refused.
        self.spent = 0
        self.spent_refused = 0

    def configure(
        self,
        requests: int | None,
        period: float = 300.0,
        *,
        headers: str = "ietf",
        dashboard_rate: float = 0.0,
        window: str = "sliding",
        reset: str = "more",
        now: float | None = None,
    ) -> None:
        """Turn the limit on (``requests`` per ``period`` s) or off (``requests=None``); forgets all counts.

        :param requests: allowed requests per period and user, or ``None`` to disable.
        :param period: the window, and the lockout, in seconds.
        :param headers: how answers describe the limit: ``ietf``, ``legacy`` or ``none``.
        :param dashboard_rate: requests per second another consumer (the dashboard) spends from the default
            pool; 0 for none.
        :param window: ``sliding`` or ``fixed`` (fixed windows start at ``now``).
        :param reset: what a sliding window's ``t`` counts to: ``more`` or ``full``.
        :param now: the current time, when the dashboard starts spending (default: at the next request).
        """
        if requests is not None and (isinstance(requests, bool) or not isinstance(requests, int) or requests < 1):
            raise ValueError(f"requests must be a positive integer or None, got {requests!r}")
        if isinstance(period, bool) or not isinstance(period, int | float) or not period > 0:
            raise ValueError(f"period must be a number of seconds > 0, got {period!r}")
        if headers not in RATE_LIMIT_HEADER_STYLES:
            raise ValueError(f"headers must be one of {', '.join(RATE_LIMIT_HEADER_STYLES)}, got {headers!r}")
        if window not in RATE_LIMIT_WINDOWS:
            raise ValueError(f"window must be one of {', '.join(RATE_LIMIT_WINDOWS)}, got {window!r}")
        if reset not in RATE_LIMIT_RESETS:
            raise ValueError(f"reset must be one of {', '.join(RATE_LIMIT_RESETS)}, got {reset!r}")
        if isinstance(dashboard_rate, bool) or not isinstance(dashboard_rate, int | float) or not dashboard_rate >= 0:
            raise ValueError(f"dashboard_rate must be a number of requests per second >= 0, got {dashboard_rate!r}")
        with self._lock:
            self.requests = requests
            self.period = float(period)
            self.headers = headers
            self.window = window
            self.reset_to = reset
            self.dashboard_rate = float(dashboard_rate)
            self._origin = 0.0 if now is None else now
            self._dashboard_next = None if now is None else now + self._dashboard_step()
            self._windows.clear()
            self._locked_until.clear()

    def reset(self) -> None:
        """Forget every count and lockout (and the number of 429s served)."""
        with self._lock:
            self._windows.clear()
            self._locked_until.clear()
            self._dashboard_next = None
            self.limited = 0
            self.lockouts = 0
            self.spent = 0
            self.spent_refused = 0

    def settings(self) -> dict[str, Any] | None:
        """
        Return the settings as a scenario's ``rate_limit`` holds them, or ``None`` when the limit is off.

        ``requests`` and ``period`` always; the others when not their default.
        """
        if self.requests is None:
            return None
        spec: dict[str, Any] = {"requests": self.requests, "period": self.period}
        if self.headers != "ietf":
            spec["headers"] = self.headers
        if self.dashboard_rate:
            spec["dashboard_rate"] = self.dashboard_rate
        if self.window != "sliding":
            spec["window"] = self.window
        if self.reset_to != "more":
            spec["reset"] = self.reset_to
        return spec

    def check(self, credential: str, now: float) -> float | None:
        """Count a request; return ``None`` if allowed, else the seconds until the lockout ends.

        :param credential: the pool the caller draws from (a user, or an unknown credential).
        :param now: seconds since start.
        """
        return self.take(credential, now).retry_after

    def take(self, pool: str, now: float) -> RateDecision:
        """Count a request of ``pool`` (after what the dashboard spent until ``now``) and decide.

        :param pool: the pool the caller draws from.
        :param now: seconds since start.
        """
        if self.requests is None:
            return RateDecision(None, 0, 0.0)
        with self._lock:
            self._run_dashboard(now)
            decision = self._count(pool, now)
            if decision.retry_after is not None:
                self.limited += 1
            return decision

    def spend(self, pool: str | None, count: int, now: float) -> int:
        """Spend ``count`` requests of a pool now, as another consumer (the dashboard) would.

        :param pool: the pool (default: :attr:`default_pool`).
        :param count: how many requests.
        :param now: seconds since start.
        :returns: how many the limit accepted (the rest were refused, and may have locked the pool out).
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be an integer >= 0, got {count!r}")
        pool = pool or self.default_pool
        if self.requests is None or pool is None:
            return count
        with self._lock:
            self._run_dashboard(now)
            return sum(self._spend_one(pool, now) for _ in range(count))

    def pool_state(self, pool: str, now: float) -> RateDecision:
        """Say what an answer to ``pool`` would say now, without counting anything.

        :param pool: the pool.
        :param now: seconds since start.
        """
        if self.requests is None:
            return RateDecision(None, 0, 0.0)
        with self._lock:
            self._run_dashboard(now)
            return self._state(pool, now)

    def status(self, now: float) -> dict[str, Any]:
        """Return the limit's settings and counters, and each pool's state now (JSON-ready).

        :param now: seconds since start.
        """
        with self._lock:
            if self.requests is not None:
                self._run_dashboard(now)
            pools = {}
            for pool in sorted(set(self._windows) | set(self._locked_until)):
                state = self._state(pool, now)
                pools[pool] = {
                    "remaining": state.remaining,
                    "reset": state.reset,
                    "locked": state.retry_after is not None,
                }
            return {
                "requests": self.requests,
                "period": self.period,
                "headers": self.headers,
                "window": self.window,
                "reset": self.reset_to,
                "dashboard_rate": self.dashboard_rate,
                "limited": self.limited,
                "lockouts": self.lockouts,
                "spent": self.spent,
                "spent_refused": self.spent_refused,
                "pools": pools,
            }

    def response_headers(self, decision: RateDecision) -> tuple[tuple[str, str], ...]:
        """Return the headers describing ``decision`` in the configured style (none when the limit is off).

        :param decision: what :meth:`take` returned.
        """
        if self.requests is None or self.headers == "none":
            return ()
        reset = str(max(0, math.ceil(decision.reset - 1e-9)))
        if self.headers == "legacy":
            return (
                ("X-RateLimit-Limit", str(self.requests)),
                ("X-RateLimit-Remaining", str(decision.remaining)),
                ("X-RateLimit-Reset", reset),
            )
        window = int(self.period) if float(self.period).is_integer() else round(self.period, 3)
        name = f'"{RATE_LIMIT_POLICY_NAME}"'
        return (
            ("Ratelimit", f"{name};r={decision.remaining};t={reset}"),
            ("Ratelimit-Policy", f"{name};q={self.requests};w={window}"),
        )

    # ---- internals (lock held) ------------------------------------------------------------------------

    def _dashboard_step(self) -> float:
        return 1.0 / self.dashboard_rate if self.dashboard_rate > 0 else math.inf

    def _run_dashboard(self, now: float) -> None:
        """Spend what the dashboard spent since it was last accounted for, at its own times."""
        pool = self.default_pool
        if self.dashboard_rate <= 0 or pool is None:
            return
        step = self._dashboard_step()
        if self._dashboard_next is None:
            self._dashboard_next = now + step
            return
        if now - self._dashboard_next > 2 * self.period:
            # a long gap: what the dashboard spent before the last two windows no longer counts (nor can a
            # lockout it caused then still hold, unless it alone keeps crossing the limit): skip it
            self._dashboard_next += math.ceil((now - 2 * self.period - self._dashboard_next) / step) * step
        while self._dashboard_next <= now:
            self._spend_one(pool, self._dashboard_next)
            self._dashboard_next += step

    def _spend_one(self, pool: str, at: float) -> int:
        self.spent += 1
        if self._count(pool, at).retry_after is not None:
            self.spent_refused += 1
            return 0
        return 1

    def _window_end(self, now: float) -> float:
        """Return the end of the fixed window that holds ``now``."""
        return self._origin + (math.floor((now - self._origin) / self.period) + 1) * self.period

    def _expire(self, pool: str, now: float) -> deque[float]:
        until = self._locked_until.get(pool)
        if until is not None and now >= until:
            del self._locked_until[pool]
            self._windows.pop(pool, None)
        window = self._windows.setdefault(pool, deque())
        if self.window == "fixed":
            horizon = self._window_end(now) - self.period  # requests before this window's start
            while window and window[0] < horizon:
                window.popleft()
        else:
            horizon = now - self.period
            while window and window[0] <= horizon:
                window.popleft()
        return window

    def _reset(self, window: deque[float], now: float) -> float:
        """``t``: the seconds until more quota (``more``) or all of it (``full``), or to a fixed window's end."""
        if not window:
            return 0.0
        if self.window == "fixed":
            return self._window_end(now) - now
        return (window[0] if self.reset_to == "more" else window[-1]) + self.period - now

    def _window(self, pool: str, now: float) -> tuple[int, deque[float], RateDecision | None]:
        """Return the limit, the pool's window now, and the decision if the pool is locked out (else ``None``)."""
        limit = self.requests
        assert limit is not None
        window = self._expire(pool, now)
        until = self._locked_until.get(pool)
        return limit, window, None if until is None else RateDecision(until - now, 0, until - now)

    def _state(self, pool: str, now: float) -> RateDecision:
        limit, window, locked = self._window(pool, now)
        if locked is not None:
            return locked
        return RateDecision(None, max(0, limit - len(window)), self._reset(window, now))

    def _count(self, pool: str, now: float) -> RateDecision:
        limit, window, locked = self._window(pool, now)
        if locked is not None:
            return locked
        if len(window) >= limit:
            self._locked_until[pool] = now + self.period
            self.lockouts += 1
            window.clear()
            return RateDecision(self.period, 0, self.period)
        window.append(now)
        return RateDecision(None, limit - len(window), self._reset(window, now))
