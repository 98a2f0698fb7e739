"""The simulator's traffic controls: injected faults, the emulated rate limit and the request log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_cftunnel.testing.faults import Fault

if TYPE_CHECKING:
    from airflow_provider_cftunnel.testing.api import CloudflareApi
    from airflow_provider_cftunnel.testing.faults import FaultSet
    from airflow_provider_cftunnel.testing.rate_limit import RateLimiter
    from airflow_provider_cftunnel.testing.request_log import RequestLog, RequestRecord

__all__ = ["TrafficControlsMixin"]


class TrafficControlsMixin:
    """
    Give a simulator methods over its faults, its emulated rate limit and its request log.

    The simulator class sets ``_faults``, ``_rate_limiter``, ``_api`` and ``_log`` and provides ``elapsed()``
    (simulated seconds since start); this adds the methods below.
    """

    _faults: FaultSet
    _rate_limiter: RateLimiter
    _api: CloudflareApi
    _log: RequestLog

    def elapsed(self) -> float:
        """Return simulated seconds since start (the simulator class provides it)."""
        raise NotImplementedError

    # ---- faults and rate limit ------------------------------------------------------------------------

    def inject_fault(
        self,
        path: str | None = None,
        *,
        kind: str,
        count: int | None = 1,
        method: str | None = None,
        skip: int = 0,
        status: int | None = None,
        code: int | None = None,
        message: str | None = None,
        retry_after: float | str | None = None,
        retry_after_date: float | None = None,
        body: str | None = None,
        delay: float = 0.0,
        location: str | None = None,
        error_chain: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """Spoil the answers to matching requests; see :mod:`airflow_provider_cftunnel.testing.faults`.

        :param path: a regular expression searched in the request path (``/client/v4/...``); ``None``: all.
        :param kind: the fault kind (``rate_limit``, ``server_error``, ``slow``, ``drop``, ``reset``,
            ``truncated_json``, ``short_body``, ``non_json``, ``success_false``, ``null_result``, ``error``,
            ``redirect``).
        :param count: how many requests to spoil; ``None`` for every one.
        :param method: only requests with this HTTP method.
        :param skip: let this many matching requests through first.
        :param status: the HTTP status (``error``, ``server_error``, ``redirect``, ``non_json``).
        :param code: the Cloudflare error code in the body.
        :param message: the error message in the body.
        :param retry_after: ``rate_limit``: the ``Retry-After`` value (seconds or a verbatim string).
        :param retry_after_date: ``rate_limit``: send ``Retry-After`` as an HTTP date this many seconds ahead.
        :param body: ``server_error``: ``"json"`` or ``"html"``; ``non_json``: the page to send.
        :param delay: ``slow``: seconds to wait before answering.
        :param location: ``redirect``: the ``Location`` header.
        :param error_chain: ``error``: nested errors attached to the error.
        :param headers: extra response headers.
        :returns: the :class:`Fault`; its ``hits`` count the spoiled requests.
        """
        return self._faults.add(
            Fault(
                kind=kind,
                path=path,
                count=count,
                method=method,
                skip=skip,
                status=status,
                code=code,
                message=message,
                retry_after=retry_after,
                retry_after_date=retry_after_date,
                body=body,
                delay=delay,
                location=location,
                error_chain=error_chain,
                headers=headers,
            )
        )

    def add_fault(self, spec: dict[str, Any] | Fault) -> Fault:
        """Add a fault from its JSON spec (as in a scenario's ``faults`` list), or a :class:`Fault`.

        :param spec: the spec, with at least ``kind``; or a fault.
        :returns: the :class:`Fault` added.
        """
        return self._faults.add(spec if isinstance(spec, Fault) else Fault.from_dict(spec))

    @property
    def faults(self) -> list[Fault]:
        """The faults, in the order they apply (exhausted ones included)."""
        return self._faults.all()

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    def set_rate_limit(
        self,
        requests: int | None,
        period: float = 300.0,
        *,
        headers: str = "ietf",
        dashboard_rate: float = 0.0,
        window: str = "sliding",
        reset: str = "more",
    ) -> None:
        """Emulate Cloudflare's rate limit: ``requests`` per ``period`` seconds per user.

        The limit is shared by all of the user's tokens and keys (by default every credential of the scenario
        belongs to its one user); going over answers 429 (code 971, ``Retry-After``) and locks the whole pool
        out for ``period`` seconds. Every counted answer describes the pool (``Ratelimit: "default";r=..;t=..``
        and ``Ratelimit-Policy: "default";q=..;w=..``). Forgets all counts.

        :param requests: allowed requests per period; ``None`` turns the emulation off.
        :param period: window and lockout, in seconds (Cloudflare: 1200 per 300 s).
        :param headers: ``"ietf"`` (the headers above), ``"legacy"`` (``X-RateLimit-Limit`` / ``-Remaining`` /
            ``-Reset``) or ``"none"`` (stripped, as by a proxy).
        :param dashboard_rate: another consumer of the scenario user's pool (a person in the dashboard, another
            tool), in requests per second, starting now; it does not back off.
        :param window: ``"sliding"`` (the last ``period`` seconds) or ``"fixed"`` (consecutive windows from now).
        :param reset: what a sliding window's ``t`` counts to: ``"more"`` (until one more request is allowed,
            draft-ietf-httpapi-ratelimit-headers-10; the default, the hardest for a client) or ``"full"`` (until
            the whole quota is back if nothing more comes).
        """
        self._rate_limiter.configure(
            requests,
            period,
            headers=headers,
            dashboard_rate=dashboard_rate,
            window=window,
            reset=reset,
            now=self.elapsed(),
        )

    @property
    def rate_limited_count(self) -> int:
        """How many 429 answers the emulated rate limit has served (injected faults not included)."""
        return self._rate_limiter.limited

    def reset_rate_limit(self) -> None:
        """Forget the emulated rate limit's counts, lockouts and :attr:`rate_limited_count`."""
        self._rate_limiter.reset()

    def spend_rate_limit(self, count: int, user: str | None = None) -> int:
        """Spend ``count`` requests of a user's pool now, as the dashboard or another tool would.

        :param count: how many requests.
        :param user: the user (a credential's ``user`` field); default: the scenario's user.
        :returns: how many the limit accepted; the others were refused and may have locked the pool out.
        """
        return self._rate_limiter.spend(self._api.user_pool(user), count, self.elapsed())

    def rate_limit_status(self) -> dict[str, Any]:
        """Return the emulated limit now.

        Its settings, ``limited`` (429s served), ``lockouts``, ``spent`` and ``spent_refused`` (the dashboard's
        requests), and each pool's ``remaining`` / ``reset`` / ``locked``. Pools are named ``user:<name>``, or
        ``credential:<hash>`` for unknown credentials.
        """
        return self._rate_limiter.status(self.elapsed())

    @property
    def rate_limit(self) -> dict[str, Any] | None:
        """The emulated limit's settings as a scenario's ``rate_limit`` holds them, or ``None`` when it is off.

        That is ``{"requests", "period"}``, plus ``headers``, ``dashboard_rate``, ``window`` and ``reset`` when
        not the default.
        """
        return self._rate_limiter.settings()

    # ---- request log ----------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first (API requests only)."""
        return self._log.records()

    def requests_matching(self, path_regex: str, method: str | None = None) -> list[RequestRecord]:
        """Return the logged requests whose path matches (``re.search``) and whose method is ``method``.

        Without ``method``, every method matches.

        :param path_regex: a regular expression.
        :param method: an HTTP method.
        """
        return self._log.matching(path_regex, method)

    def clear_requests(self) -> int:
        """Empty the request log; return how many records it held."""
        return self._log.clear()
