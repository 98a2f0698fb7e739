"""What the hook needs from an Airflow connection of type ``cloudflare``: :class:`CloudflareCredentials`.

Light: no ``requests`` (the triggerer reads credentials before it loads the hook module).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_cftunnel.exceptions import CloudflareConfigError

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Connection

__all__ = [
    "DEFAULT_API_BASE_URL",
    "DEFAULT_RATE_LIMIT_PERIOD",
    "DEFAULT_RATE_LIMIT_REQUESTS",
    "CloudflareCredentials",
]

DEFAULT_API_BASE_URL = "https://api.cloudflare.com/client/v4"
#: Cloudflare's rate limit per user, shared by every token and key of the user and the dashboard.
DEFAULT_RATE_LIMIT_REQUESTS = 1200
DEFAULT_RATE_LIMIT_PERIOD = 300.0

_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+")


@dataclass(frozen=True)
class CloudflareCredentials:
    """
    What the hook needs from an Airflow connection. The secret never appears in ``repr``.

    :param secret: The API token, or the Global API Key when ``email`` is set.
    :param email: The account email for legacy Global API Key auth; ``None`` for an API token.
    :param account_id: The default account id (``extra.account_id``), or ``None``.
    :param base_url: The API base URL, without a trailing slash.
    :param rate_limit_requests: Requests allowed per ``rate_limit_period`` for this credential.
    :param rate_limit_period: The rate limit's window, in seconds.
    """

    secret: str = field(repr=False)
    email: str | None = field(default=None, repr=False)
    account_id: str | None = None
    base_url: str = DEFAULT_API_BASE_URL
    rate_limit_requests: int = DEFAULT_RATE_LIMIT_REQUESTS
    rate_limit_period: float = DEFAULT_RATE_LIMIT_PERIOD

    @property
    def uses_global_key(self) -> bool:
        """Whether this is a legacy email + Global API Key pair rather than an API token."""
        return self.email is not None

    @classmethod
    def from_connection(cls, conn: Connection, extra: Mapping[str, Any] | None = None) -> CloudflareCredentials:
        """
        Read credentials from an Airflow connection of type ``cloudflare``.

        :param conn: The connection.
        :param extra: Its extra as a dict, when the caller already has it (the triggerer reads it async).
        """
        if extra is None:
            extra = conn.extra_dejson
        secret = (conn.password or "").strip()
        if not secret:
            raise CloudflareConfigError(
                "The connection has no API token: put a Cloudflare API token in its password field (shown as "
                "'API Token'), or an email in 'login' and the Global API Key in 'password'."
            )
        login = (conn.login or "").strip() or None
        if login is not None and not _EMAIL_RE.fullmatch(login):
            raise CloudflareConfigError(
                "The connection's login field is only for the account email of legacy Global API Key auth, "
                "and it does not look like an email. Leave it empty to use an API token."
            )
        try:
            raw_requests, raw_period = _extra(extra, "rate_limit_requests"), _extra(extra, "rate_limit_period")
            requests_allowed = DEFAULT_RATE_LIMIT_REQUESTS if raw_requests is None else int(raw_requests)
            period = DEFAULT_RATE_LIMIT_PERIOD if raw_period is None else float(raw_period)
        except (TypeError, ValueError):
            requests_allowed, period = 0, 0.0
        if requests_allowed < 1 or not period > 0:
            raise CloudflareConfigError(
                "The connection's rate_limit_requests must be a whole number >= 1 and rate_limit_period a "
                f"number of seconds > 0 (Cloudflare's limit: {DEFAULT_RATE_LIMIT_REQUESTS} per "
                f"{DEFAULT_RATE_LIMIT_PERIOD:g})."
            )
        return cls(
            secret=secret,
            email=login,
            account_id=_extra(extra, "account_id"),
            base_url=_base_url(conn),
            rate_limit_requests=requests_allowed,
            rate_limit_period=period,
        )

    def headers(self) -> dict[str, str]:
        """Return the authentication headers: ``Authorization: Bearer`` for a token, X-Auth-* for a Global key."""
        if self.email is not None:
            return {"X-Auth-Email": self.email, "X-Auth-Key": self.secret}
        return {"Authorization": f"Bearer {self.secret}"}

    def redact(self, text: str) -> str:
        """``text`` with the secret (and, with a Global key, the email) replaced by ``***``."""
        for value in (self.secret, self.email):
            if value and len(value) >= 5:  # as Airflow's masker: shorter values would mangle every message
                text = text.replace(value, "***")
        return text


def _extra(extra: Mapping[str, Any], name: str) -> Any:
    """Read an extra field, under its plain name or the ``extra__cloudflare__`` prefix older UIs write."""
    value = extra.get(name)
    if value in (None, ""):
        value = extra.get(f"extra__cloudflare__{name}")
    if isinstance(value, str):
        value = value.strip()
    return value if value not in (None, "") else None


def _base_url(conn: Connection) -> str:
    """Return the connection's host as a full API base URL, or Cloudflare's."""
    host = (conn.host or "").strip()
    if not host:
        return DEFAULT_API_BASE_URL
    if "://" not in host:
        scheme = (conn.schema or "https").strip() or "https"
        port = f":{conn.port}" if conn.port else ""
        host = f"{scheme}://{host}{port}"
    return host.rstrip("/")
