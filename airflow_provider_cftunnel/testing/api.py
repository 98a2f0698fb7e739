"""The simulated Cloudflare API itself: routing, authentication, and answers under the emulated rate limit.

The limit lives in :mod:`~airflow_provider_cftunnel.testing.rate_limit`.

:func:`CloudflareApi.handle` maps one request (method, path, query, headers) to a :class:`Response`; it
knows nothing about sockets, faults or the request log, so it is cheap and easy to test.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_provider_cftunnel.testing.rate_limit import (
    RATE_LIMIT_HEADER_STYLES,
    RateDecision,
    RateLimiter,
)
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
        """
        Return the rate-limit pool of a user.

        ``None`` is the scenario's user, who owns every credential that names no other.

        :param user: a user name from a credential's ``user`` field, or ``None``.
        """
        return f"user:{user if user is not None else self.state.user['id']}"

    def rate_limit_pool(self, headers: Mapping[str, str]) -> str | None:
        """
        Return the pool a request draws from.

        Its user's for a known token or Global API Key (Cloudflare counts per user, whatever token, key or
        dashboard session), its own for an unknown credential, ``None`` without credentials (not counted).

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
                headers, account_id, path, lambda scope: self._list_tunnels(account_id, query, scope)
            )
        tunnel_id = parts[3]
        if n == 4:
            return self._guard(method, ("GET",)) or self._account_call(
                headers, account_id, path, lambda scope: self._get_tunnel(account_id, tunnel_id, scope)
            )
        if n == 5 and parts[4] == "connections":
            if method == "DELETE":
                return self._account_call(
                    headers,
                    account_id,
                    path,
                    lambda scope: self._clean_connections(account_id, tunnel_id, query, scope),
                )
            return self._guard(method, ("GET",)) or self._account_call(
                headers, account_id, path, lambda scope: self._list_connectors(account_id, tunnel_id, scope)
            )
        if n == 6 and parts[4] == "connectors":
            connector_id = parts[5]
            return self._guard(method, ("GET",)) or self._account_call(
                headers, account_id, path, lambda scope: self._get_connector(account_id, tunnel_id, connector_id, scope)
            )
        return _NO_ROUTE

    @staticmethod
    def _guard(method: str, allowed: tuple[str, ...]) -> Response | None:
        return None if method in allowed else _METHOD_NOT_ALLOWED

    def _account_call(
        self,
        headers: Mapping[str, str],
        account_id: str,
        path: str,
        answer: Callable[[frozenset[str] | None], Response],
    ) -> Response:
        """
        Authenticate and authorize an account call, then return ``answer(scope)``.

        ``scope`` is the tunnel ids a token with per-tunnel permissions may read, or ``None`` (every tunnel of
        the account).
        """
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
        scope = (
            None if principal.token is None or principal.token.get("tunnels") is None else principal.token["tunnels"]
        )
        return answer(None if scope is None else frozenset(scope))

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

    def _list_tunnels(self, account_id: str, query: Mapping[str, str], scope: frozenset[str] | None) -> Response:
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
                if scope is not None and tunnel.id not in scope:  # per-tunnel permissions: hidden, not an error
                    continue
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

    def _find_tunnel(self, account_id: str, tunnel_id: str, scope: frozenset[str] | None) -> Tunnel | Response:
        if not UUID_RE.match(tunnel_id):
            return error(400, 1001, f"Invalid tunnel id {tunnel_id!r}: must be a UUID")
        try:
            tunnel = self.state.tunnel(tunnel_id, account_id)
        except KeyError:
            return error(404, 1003, "Tunnel not found")
        if scope is not None and tunnel.id not in scope:
            return _UNAUTHORIZED
        return tunnel

    def _get_tunnel(self, account_id: str, tunnel_id: str, scope: frozenset[str] | None) -> Response:
        with self.state.lock:
            tunnel = self._find_tunnel(account_id, tunnel_id, scope)
            if isinstance(tunnel, Response):
                return tunnel
            result = tunnel.render(
                self.now(), self.wall_epoch(), legacy_connections=self.state.legacy_tunnel_connections
            )
        return self._ok_cached(("tunnel", tunnel_id), (result,), lambda: ok(result))

    def _list_connectors(self, account_id: str, tunnel_id: str, scope: frozenset[str] | None) -> Response:
        with self.state.lock:
            tunnel = self._find_tunnel(account_id, tunnel_id, scope)
            if isinstance(tunnel, Response):
                return tunnel
            clients = tunnel.clients(self.now(), self.wall_epoch())
        count = len(clients)
        info = {"page": 1, "per_page": count, "count": count, "total_count": count, "total_pages": 1}
        return self._ok_cached(("connections", tunnel_id), tuple(clients), lambda: ok(clients, result_info=info))

    def _get_connector(
        self, account_id: str, tunnel_id: str, connector_id: str, scope: frozenset[str] | None
    ) -> Response:
        if not UUID_RE.match(connector_id):
            return error(400, 1001, f"Invalid connector id {connector_id!r}: must be a UUID")
        with self.state.lock:
            tunnel = self._find_tunnel(account_id, tunnel_id, scope)
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

    def _clean_connections(
        self, account_id: str, tunnel_id: str, query: Mapping[str, str], scope: frozenset[str] | None
    ) -> Response:
        client_id = query.get("client_id")
        if client_id is not None and not UUID_RE.match(client_id):
            return error(400, 1001, "client_id must be a UUID")
        with self.state.lock:
            tunnel = self._find_tunnel(account_id, tunnel_id, scope)
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
