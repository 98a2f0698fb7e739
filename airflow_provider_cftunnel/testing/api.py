"""The simulated Cloudflare API itself: routing, authentication, answers and the emulated rate limit.

:func:`CloudflareApi.handle` maps one request (method, path, query, headers) to a :class:`Response`; it
knows nothing about sockets, faults or the request log, so it is cheap and easy to test.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_provider_cftunnel.testing.wire import ACCOUNT_ID_RE, API_PREFIX, UUID_RE, Response, error, error_body, ok

if TYPE_CHECKING:
    from airflow_provider_cftunnel.testing.state import SimulatorState, Tunnel

__all__ = [
    "RATE_LIMIT_HEADER_STYLES",
    "TUNNEL_STATUSES",
    "CloudflareApi",
    "RateDecision",
    "RateLimiter",
]

TUNNEL_STATUSES = ("inactive", "degraded", "healthy", "down")
_GLOBAL_KEY_RE = re.compile(r"^[0-9a-f]{37}$")
_MAX_PER_PAGE = 1000


def _bad_header(chain_code: int, chain_message: str) -> Response:
    return error(400, 6003, "Invalid request headers", [{"code": chain_code, "message": chain_message}])


_MISSING_AUTH = error(400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
_AUTH_ERROR = error(403, 10000, "Authentication error")
_INVALID_TOKEN = error(401, 1000, "Invalid API Token")
_UNAUTHORIZED = error(403, 9109, "Unauthorized to access requested resource")
_NO_ROUTE = error(404, 7000, "No route for that URI")
_METHOD_NOT_ALLOWED = error(405, 7001, "Method not allowed for this endpoint")


class Principal(NamedTuple):
    """Who a request authenticated as: a known token, a Global API Key, or an unknown bearer token."""

    token: dict[str, Any] | None
    global_key: dict[str, Any] | None


_UNKNOWN_TOKEN = Principal(None, None)


#: How the emulated limit describes itself on every answer: ``ietf`` (``Ratelimit`` / ``Ratelimit-Policy``,
#: as Cloudflare since 2025-09), ``legacy`` (``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset``) or ``none``
#: (stripped, as by some proxies).
RATE_LIMIT_HEADER_STYLES = ("ietf", "legacy", "none")
RATE_LIMIT_POLICY_NAME = "default"


class RateDecision(NamedTuple):
    """What the emulated limit decided for one request: ``retry_after`` is ``None`` when it may go."""

    retry_after: float | None
    remaining: int
    reset: float


class RateLimiter:
    """Cloudflare's limit per user: ``requests`` per ``period`` seconds in a sliding window, shared by every API
    token and Global API Key of the user (and the dashboard); going over locks the whole pool out for
    ``period`` seconds. Uses the caller's clock (seconds since start).

    Each answer can say what is left (``remaining`` after counting it, and ``reset``: the seconds until the
    pool would be whole again if nothing more came, i.e. until the newest counted request leaves the window,
    or until the lockout ends). A background consumer (``dashboard_rate`` requests per second, e.g. a person
    in the dashboard) can spend from the default pool; it does not back off, so when it crosses the limit it
    locks everyone out, as on Cloudflare.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: int | None = None
        self.period = 300.0
        #: ``ietf``, ``legacy`` or ``none``: see :data:`RATE_LIMIT_HEADER_STYLES`.
        self.headers = "ietf"
        #: requests per second the emulated dashboard spends from :attr:`default_pool`.
        self.dashboard_rate = 0.0
        #: the pool the dashboard spends from (the scenario's user).
        self.default_pool: str | None = None
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
        now: float | None = None,
    ) -> None:
        """Turn the limit on (``requests`` per ``period`` s) or off (``requests=None``); forgets all counts.

        :param requests: allowed requests per period and user, or ``None`` to disable.
        :param period: the window, and the lockout, in seconds.
        :param headers: how answers describe the limit: ``ietf``, ``legacy`` or ``none``.
        :param dashboard_rate: requests per second another consumer (the dashboard) spends from the default
            pool; 0 for none.
        :param now: the current time, when the dashboard starts spending (default: at the next request).
        """
        if requests is not None and (isinstance(requests, bool) or not isinstance(requests, int) or requests < 1):
            raise ValueError(f"requests must be a positive integer or None, got {requests!r}")
        if period <= 0:
            raise ValueError(f"period must be > 0, got {period!r}")
        if headers not in RATE_LIMIT_HEADER_STYLES:
            raise ValueError(f"headers must be one of {', '.join(RATE_LIMIT_HEADER_STYLES)}, got {headers!r}")
        if isinstance(dashboard_rate, bool) or not isinstance(dashboard_rate, int | float) or not dashboard_rate >= 0:
            raise ValueError(f"dashboard_rate must be a number of requests per second >= 0, got {dashboard_rate!r}")
        with self._lock:
            self.requests = requests
            self.period = float(period)
            self.headers = headers
            self.dashboard_rate = float(dashboard_rate)
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
        """What an answer to ``pool`` would say now, without counting anything.

        :param pool: the pool.
        :param now: seconds since start.
        """
        if self.requests is None:
            return RateDecision(None, 0, 0.0)
        with self._lock:
            self._run_dashboard(now)
            return self._state(pool, now)

    def status(self, now: float) -> dict[str, Any]:
        """The limit's settings and counters, and each pool's state now (JSON-ready).

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
                "dashboard_rate": self.dashboard_rate,
                "limited": self.limited,
                "lockouts": self.lockouts,
                "spent": self.spent,
                "spent_refused": self.spent_refused,
                "pools": pools,
            }

    def response_headers(self, decision: RateDecision) -> tuple[tuple[str, str], ...]:
        """The headers describing ``decision`` in the configured style (none when the limit is off).

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

    def _expire(self, pool: str, now: float) -> deque[float]:
        until = self._locked_until.get(pool)
        if until is not None and now >= until:
            del self._locked_until[pool]
            self._windows.pop(pool, None)
        window = self._windows.setdefault(pool, deque())
        horizon = now - self.period
        while window and window[0] <= horizon:
            window.popleft()
        return window

    def _window(self, pool: str, now: float) -> tuple[int, deque[float], RateDecision | None]:
        """The limit, the pool's window now, and the decision if the pool is locked out (else ``None``)."""
        limit = self.requests
        assert limit is not None
        window = self._expire(pool, now)
        until = self._locked_until.get(pool)
        return limit, window, None if until is None else RateDecision(until - now, 0, until - now)

    def _state(self, pool: str, now: float) -> RateDecision:
        limit, window, locked = self._window(pool, now)
        if locked is not None:
            return locked
        reset = window[-1] + self.period - now if window else 0.0
        return RateDecision(None, max(0, limit - len(window)), reset)

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
        return RateDecision(None, limit - len(window), window[-1] + self.period - now)


class CloudflareApi:
    """Answers ``/client/v4`` requests from a :class:`~airflow_provider_cftunnel.testing.state.SimulatorState`.

    :param state: the world.
    :param now: returns seconds since the simulator started.
    :param wall_epoch: returns the POSIX time of the start.
    :param limiter: the emulated rate limit that :meth:`answer` applies (``None``: a fresh one, off).
    """

    def __init__(
        self,
        state: SimulatorState,
        now: Callable[[], float],
        wall_epoch: Callable[[], float],
        limiter: RateLimiter | None = None,
    ) -> None:
        self.state = state
        self.now = now
        self.wall_epoch = wall_epoch
        self.limiter = limiter if limiter is not None else RateLimiter()
        self.limiter.default_pool = self.user_pool(None)
        self._bodies: dict[tuple[str, str], tuple[tuple[Any, ...], Response]] = {}

    # ---- the rate limit -------------------------------------------------------------------------------

    def user_pool(self, user: str | None) -> str:
        """The rate-limit pool of a user: ``None`` is the scenario's user (who owns every credential that
        names no other).

        :param user: a user name from a credential's ``user`` field, or ``None``.
        """
        return f"user:{user if user is not None else self.state.user['id']}"

    def rate_limit_pool(self, headers: Mapping[str, str]) -> str | None:
        """The pool a request draws from: its user's for a known token or Global API Key (Cloudflare counts
        per user, whatever token, key or dashboard session), its own for an unknown credential, ``None``
        without credentials (not counted).

        :param headers: request headers (case-insensitive mapping).
        """
        authorization = headers.get("Authorization")
        if authorization is not None:
            scheme, _, value = authorization.strip().partition(" ")
            token = self.state.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
            if token is not None:
                return self.user_pool(token.get("user"))
            return "credential:" + _digest(authorization)
        key = headers.get("X-Auth-Key")
        if key is None:
            return None
        email = headers.get("X-Auth-Email") or ""
        global_key = self.state.global_keys.get(email.strip().lower())
        if global_key is not None and global_key["key"] == key.strip():
            return self.user_pool(global_key.get("user"))
        return "credential:" + _digest(f"{email}\n{key}")

    def answer(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str]
    ) -> tuple[Response, bool]:
        """Answer one API request under the emulated rate limit; return ``(response, rate_limited)``.

        Over the limit (or during the lockout): 429 code 971 with ``Retry-After``. Every answer to a counted
        request, 429 included, describes the pool in the limiter's header style.

        :param method: the HTTP method.
        :param path: the path including ``/client/v4``, without the query string.
        :param query: query parameters (last value wins).
        :param headers: request headers (case-insensitive mapping).
        """
        limiter = self.limiter
        pool = self.rate_limit_pool(headers) if limiter.requests is not None else None
        if pool is None:
            return self.handle(method, path, query, headers), False
        decision = limiter.take(pool, self.now())
        described = limiter.response_headers(decision)
        if decision.retry_after is not None:
            retry = str(max(1, int(decision.retry_after + 0.999)))
            body = error_body(971, "Please wait and consider throttling your request speed")
            return Response(429, body, headers=(("Retry-After", retry), *described)), True
        response = self.handle(method, path, query, headers)
        return (response._replace(headers=response.headers + described) if described else response), False

    # ---- auth -----------------------------------------------------------------------------------------

    def authenticate(self, headers: Mapping[str, str]) -> Principal | Response:
        """Identify the caller, or return the error Cloudflare sends for bad or missing credentials.

        An unknown bearer token is not an error here (its error depends on the endpoint).

        :param headers: request headers (case-insensitive mapping).
        """
        authorization = headers.get("Authorization")
        if authorization is not None:
            scheme, _, value = authorization.strip().partition(" ")
            value = value.strip()
            if scheme.lower() != "bearer" or not value or " " in value:
                return _bad_header(6111, "Invalid format for Authorization header")
            token = self.state.tokens.get(value)
            if token is not None:
                return Principal(token, None)
            if value in self.state.global_key_values:
                return _bad_header(6111, "Invalid format for Authorization header")
            return _UNKNOWN_TOKEN
        email = headers.get("X-Auth-Email")
        key = headers.get("X-Auth-Key")
        if not email or not key:
            return _MISSING_AUTH
        global_key = self.state.global_keys.get(email.strip().lower())
        if global_key is not None and global_key["key"] == key.strip():
            return Principal(None, global_key)
        if "@" not in email:
            return _bad_header(6102, "Invalid format for X-Auth-Email header")
        if not _GLOBAL_KEY_RE.match(key.strip()):
            return _bad_header(6103, "Invalid format for X-Auth-Key header")
        return error(403, 9103, "Unknown X-Auth-Key or X-Auth-Email")

    @staticmethod
    def _allowed(principal: Principal, account_id: str) -> bool:
        if principal.token is not None:
            token = principal.token
            if token["owner"] == "account":
                return bool(token["account_id"] == account_id)
            return token["accounts"] is None or account_id in token["accounts"]
        assert principal.global_key is not None
        accounts = principal.global_key["accounts"]
        return accounts is None or account_id in accounts

    # ---- dispatch -------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str]) -> Response:
        """Answer one API request.

        :param method: the HTTP method.
        :param path: the path including ``/client/v4``, without the query string.
        :param query: query parameters (last value wins).
        :param headers: request headers (case-insensitive mapping).
        """
        if not path.startswith(API_PREFIX + "/"):
            return _NO_ROUTE
        parts = path[len(API_PREFIX) + 1 :].split("/")
        n = len(parts)
        if parts[0] == "user":
            if n == 1:
                return self._guard(method, ("GET",)) or self._user(headers)
            if n == 3 and parts[1] == "tokens" and parts[2] == "verify":
                return self._guard(method, ("GET",)) or self._verify_user_token(headers)
            return _NO_ROUTE
        if parts[0] != "accounts" or n < 3:
            return _NO_ROUTE
        account_id = parts[1]
        if n == 4 and parts[2] == "tokens" and parts[3] == "verify":
            return self._guard(method, ("GET",)) or self._verify_account_token(headers, account_id, path)
        if parts[2] != "cfd_tunnel":
            return _NO_ROUTE
        if n == 3:
            return self._guard(method, ("GET",)) or self._account_call(
                headers, account_id, path, lambda: self._list_tunnels(account_id, query)
            )
        tunnel_id = parts[3]
        if n == 4:
            return self._guard(method, ("GET",)) or self._account_call(
                headers, account_id, path, lambda: self._get_tunnel(account_id, tunnel_id)
            )
        if n == 5 and parts[4] == "connections":
            if method == "DELETE":
                return self._account_call(
                    headers, account_id, path, lambda: self._clean_connections(account_id, tunnel_id, query)
                )
            return self._guard(method, ("GET",)) or self._account_call(
                headers, account_id, path, lambda: self._list_connectors(account_id, tunnel_id)
            )
        if n == 6 and parts[4] == "connectors":
            connector_id = parts[5]
            return self._guard(method, ("GET",)) or self._account_call(
                headers, account_id, path, lambda: self._get_connector(account_id, tunnel_id, connector_id)
            )
        return _NO_ROUTE

    @staticmethod
    def _guard(method: str, allowed: tuple[str, ...]) -> Response | None:
        return None if method in allowed else _METHOD_NOT_ALLOWED

    def _account_call(
        self, headers: Mapping[str, str], account_id: str, path: str, answer: Callable[[], Response]
    ) -> Response:
        principal = self.authenticate(headers)
        if isinstance(principal, Response):
            return principal
        if principal.token is None and principal.global_key is None:
            return _AUTH_ERROR
        if principal.token is not None and principal.token["status"] != "active":
            return _AUTH_ERROR
        if not ACCOUNT_ID_RE.match(account_id):
            return self._no_route_to(400, path)
        if account_id not in self.state.accounts:
            return self._no_route_to(404, path)
        if not self._allowed(principal, account_id):
            return _UNAUTHORIZED
        if principal.token is not None and not principal.token["tunnel_read"]:
            return _AUTH_ERROR
        return answer()

    @staticmethod
    def _no_route_to(status: int, path: str) -> Response:
        return error(status, 7003, f"Could not route to {path}, perhaps your object identifier is invalid?")

    # ---- endpoints ------------------------------------------------------------------------------------

    def _user(self, headers: Mapping[str, str]) -> Response:
        principal = self.authenticate(headers)
        if isinstance(principal, Response):
            return principal
        token = principal.token
        if token is None and principal.global_key is None:
            return _AUTH_ERROR
        if token is not None:
            if token["status"] != "active":
                return _AUTH_ERROR
            if token["owner"] == "account":
                return _UNAUTHORIZED
        user = self.state.user
        return ok(
            {
                "id": user["id"],
                "email": user["email"],
                "first_name": "Simulated",
                "last_name": "User",
                "username": user["id"],
                "telephone": None,
                "country": None,
                "zipcode": None,
                "two_factor_authentication_enabled": False,
                "two_factor_authentication_locked": False,
                "has_pro_zones": False,
                "has_business_zones": False,
                "has_enterprise_zones": False,
                "suspended": False,
            }
        )

    @staticmethod
    def _verify_result(token: dict[str, Any]) -> Response:
        result = {"id": token["id"], "status": token["status"]}
        if token["expires_on"] is not None:
            result["expires_on"] = token["expires_on"]
        if token["not_before"] is not None:
            result["not_before"] = token["not_before"]
        text = {
            "active": "This API Token is valid and active",
            "disabled": "This API Token is disabled",
            "expired": "This API Token has expired",
        }[token["status"]]
        return ok(result, messages=[{"code": 10000, "message": text, "type": None}])

    def _verify_user_token(self, headers: Mapping[str, str]) -> Response:
        principal = self.authenticate(headers)
        if isinstance(principal, Response):
            return principal
        token = principal.token
        if token is None or token["owner"] != "user":
            return _INVALID_TOKEN
        return self._verify_result(token)

    def _verify_account_token(self, headers: Mapping[str, str], account_id: str, path: str) -> Response:
        principal = self.authenticate(headers)
        if isinstance(principal, Response):
            return principal
        if not ACCOUNT_ID_RE.match(account_id):
            return self._no_route_to(400, path)
        token = principal.token
        if token is None or token["owner"] != "account" or token["account_id"] != account_id:
            return _INVALID_TOKEN
        return self._verify_result(token)

    def _list_tunnels(self, account_id: str, query: Mapping[str, str]) -> Response:
        page = _positive_int(query.get("page", "1"))
        if page is None:
            return error(400, 1001, "page must be a positive integer")
        per_page = _positive_int(query.get("per_page", "20"))
        if per_page is None or per_page > _MAX_PER_PAGE:
            return error(400, 1001, f"per_page must be an integer from 1 to {_MAX_PER_PAGE}")
        status = query.get("status")
        if status is not None and status not in TUNNEL_STATUSES:
            return error(400, 1001, f"status must be one of {', '.join(TUNNEL_STATUSES)}")
        is_deleted = query.get("is_deleted")
        if is_deleted is not None and is_deleted.lower() not in ("true", "false"):
            return error(400, 1001, "is_deleted must be true or false")
        uuid = query.get("uuid")
        if uuid is not None and not UUID_RE.match(uuid):
            return error(400, 1001, "uuid must be a UUID")
        name = query.get("name")
        include_prefix = query.get("include_prefix")
        exclude_prefix = query.get("exclude_prefix")
        now, epoch = self.now(), self.wall_epoch()
        legacy = self.state.legacy_tunnel_connections
        # Since 2025-12-01 Cloudflare lists only tunnels that are not deleted unless is_deleted is given
        deleted: bool | None = None if self.state.legacy_list_deleted else False
        if is_deleted is not None:
            deleted = is_deleted.lower() == "true"
        with self.state.lock:
            selected: list[Tunnel] = []
            for tunnel in self.state.account_tunnels(account_id):
                if name is not None and tunnel.name != name:
                    continue
                if uuid is not None and tunnel.id != uuid:
                    continue
                if deleted is not None and (tunnel.deleted_at is not None) != deleted:
                    continue
                if include_prefix is not None and not tunnel.name.startswith(include_prefix):
                    continue
                if exclude_prefix is not None and tunnel.name.startswith(exclude_prefix):
                    continue
                if status is not None and tunnel.health(now).status != status:
                    continue
                selected.append(tunnel)
            start = (page - 1) * per_page
            result = [t.render(now, epoch, legacy_connections=legacy) for t in selected[start : start + per_page]]
        total = len(selected)
        return ok(
            result,
            result_info={
                "page": page,
                "per_page": per_page,
                "count": len(result),
                "total_count": total,
                "total_pages": math.ceil(total / per_page),
            },
        )

    def _find_tunnel(self, account_id: str, tunnel_id: str) -> Tunnel | Response:
        if not UUID_RE.match(tunnel_id):
            return error(400, 1001, f"Invalid tunnel id {tunnel_id!r}: must be a UUID")
        try:
            return self.state.tunnel(tunnel_id, account_id)
        except KeyError:
            return error(404, 1003, "Tunnel not found")

    def _get_tunnel(self, account_id: str, tunnel_id: str) -> Response:
        with self.state.lock:
            tunnel = self._find_tunnel(account_id, tunnel_id)
            if isinstance(tunnel, Response):
                return tunnel
            result = tunnel.render(
                self.now(), self.wall_epoch(), legacy_connections=self.state.legacy_tunnel_connections
            )
        return self._ok_cached(("tunnel", tunnel_id), (result,), lambda: ok(result))

    def _list_connectors(self, account_id: str, tunnel_id: str) -> Response:
        with self.state.lock:
            tunnel = self._find_tunnel(account_id, tunnel_id)
            if isinstance(tunnel, Response):
                return tunnel
            clients = tunnel.clients(self.now(), self.wall_epoch())
        count = len(clients)
        info = {"page": 1, "per_page": count, "count": count, "total_count": count, "total_pages": 1}
        return self._ok_cached(("connections", tunnel_id), tuple(clients), lambda: ok(clients, result_info=info))

    def _get_connector(self, account_id: str, tunnel_id: str, connector_id: str) -> Response:
        if not UUID_RE.match(connector_id):
            return error(400, 1001, f"Invalid connector id {connector_id!r}: must be a UUID")
        with self.state.lock:
            tunnel = self._find_tunnel(account_id, tunnel_id)
            if isinstance(tunnel, Response):
                return tunnel
            connector = tunnel.connectors.get(connector_id)
            client = None if connector is None else connector.render(self.now(), self.wall_epoch())
        if client is None:
            return error(404, 1003, "Connector not found")
        return self._ok_cached(("connector", connector_id), (client,), lambda: ok(client))

    def _ok_cached(self, key: tuple[str, str], parts: tuple[Any, ...], build: Callable[[], Response]) -> Response:
        """Reuse the encoded body while the rendered objects it was built from are the same objects.

        Rendered objects are cached by the state and replaced, never mutated, when anything changes; the
        cache holds them, so their identities cannot be reused by other objects meanwhile.
        """
        hit = self._bodies.get(key)
        if hit is not None and len(hit[0]) == len(parts) and all(a is b for a, b in zip(hit[0], parts, strict=True)):
            return hit[1]
        response = build()
        self._bodies[key] = (parts, response)
        return response

    def _clean_connections(self, account_id: str, tunnel_id: str, query: Mapping[str, str]) -> Response:
        client_id = query.get("client_id")
        if client_id is not None and not UUID_RE.match(client_id):
            return error(400, 1001, "client_id must be a UUID")
        with self.state.lock:
            tunnel = self._find_tunnel(account_id, tunnel_id)
            if isinstance(tunnel, Response):
                return tunnel
            self.state.clean_connections(tunnel.id, client_id, self.now())
        return ok({})


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _positive_int(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 1 else None
