"""How Cloudflare's answers become the provider's typed errors, and what their messages say.

:func:`error_class` is the one place that maps an HTTP status and Cloudflare's error codes to an error type
(:mod:`airflow_provider_cftunnel.exceptions`); :func:`format_errors`, :func:`hint` and
:func:`describe_transport_error` write the messages. Every message names the status, the codes and the fix,
never a response body, a secret or a connection id (Airflow's UI tests a copy of a connection under a random
id, so a message naming it would point the user at a connection that does not exist).

The hook calls these; the module imports nothing heavy (``requests`` only inside
:func:`describe_transport_error`, which the hook calls after ``requests`` failed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_cftunnel.exceptions import (
    CloudflareAPIError,
    CloudflareAuthError,
    CloudflareNotFoundError,
    CloudflareRateLimitError,
)

if TYPE_CHECKING:
    import requests

__all__ = [
    "AUTH_ERROR_CODES",
    "NO_ROUTE_CODES",
    "TUNNEL_READ_PERMISSION",
    "describe_transport_error",
    "error_class",
    "format_errors",
    "hint",
]

#: Error codes that mean "your credentials are wrong", whatever HTTP status carries them.
AUTH_ERROR_CODES = frozenset([1000, 6003, 6102, 6103, 6111, 9103, 9106, 9109, 10000, 10001])
#: Error codes that mean "no such route": almost always a wrong account id.
NO_ROUTE_CODES = frozenset([7000, 7003])
#: The permission every call of the provider needs, as the dashboard names it.
TUNNEL_READ_PERMISSION = '"Cloudflare Tunnel Read" (Account > Cloudflare Tunnel > Read)'

_MAX_MESSAGE = 200
_MAX_ERRORS = 3


def error_class(status: int, codes: Iterable[int]) -> type[CloudflareAPIError]:
    """
    The one place that maps an HTTP status and Cloudflare's error codes to an error type.

    A 429 is a rate limit; a 401/403, or any other 4xx carrying an authentication code, is an auth error; a 404
    is "not found"; anything else is a plain :class:`CloudflareAPIError`.

    :param status: The HTTP status of the answer.
    :param codes: Cloudflare's numeric error codes in the answer.
    """
    if status == 429:
        return CloudflareRateLimitError
    if status in (401, 403) or (status < 500 and AUTH_ERROR_CODES.intersection(codes)):
        return CloudflareAuthError
    if status == 404:
        return CloudflareNotFoundError
    return CloudflareAPIError


def format_errors(status: int, errors: list[dict[str, Any]]) -> str:
    """
    ``Cloudflare API error 10000 (HTTP 403): Authentication error``, for each of the first few errors.

    Each error's ``error_chain`` follows in brackets. Messages are folded to one line and shortened.

    :param status: The HTTP status of the answer.
    :param errors: Cloudflare's ``errors`` list (its dicts only).
    """
    if not errors:
        return f"Cloudflare API error (HTTP {status}): no error details in the response"
    parts = []
    for error in errors[:_MAX_ERRORS]:
        text = f"Cloudflare API error {_code(error)} (HTTP {status}): {_message(error)}"
        chain = [e for e in _list(error.get("error_chain")) if isinstance(e, dict)]
        if chain:
            text += " [" + "; ".join(f"{_code(e)}: {_message(e)}" for e in chain[:_MAX_ERRORS]) + "]"
        parts.append(text)
    if len(errors) > _MAX_ERRORS:
        parts.append(f"and {len(errors) - _MAX_ERRORS} more")
    return "; ".join(parts)


def hint(
    cls: type[CloudflareAPIError],
    codes: Iterable[int],
    path: str,
    *,
    uses_global_key: bool,
    rate_limit: tuple[int, float],
    retries: int,
) -> str:
    """
    What to do about an error answer, as a suffix for its message (``" - check ..."``), or ``""``.

    :param cls: What :func:`error_class` chose for the answer.
    :param codes: Cloudflare's error codes in the answer.
    :param path: The API path that was asked for.
    :param uses_global_key: Whether the connection uses an email and Global API Key rather than an API token.
    :param rate_limit: The connection's ``(rate_limit_requests, rate_limit_period)``.
    :param retries: How many times the request was retried before this answer (0: it was the first).
    """
    codes = set(codes)
    if cls is CloudflareAuthError:
        if codes & {6003, 6111, 6102, 6103} and not uses_global_key:
            return (
                " - the Authorization header was refused. If the password holds a Global API Key, put the "
                "account email in the connection's login (Email) field so it is sent as X-Auth-Key."
            )
        if 9103 in codes or uses_global_key:
            return " - check the connection's email (login) and Global API Key (password)."
        if 9109 in codes:
            return (
                " - the token may not be used for this account or from this IP; check its account "
                f"resources and IP filtering. It needs {TUNNEL_READ_PERMISSION}."
            )
        if 9106 in codes:
            return " - no credentials reached Cloudflare; check the connection's API token (password field)."
        return f" - check the connection's API token; the token needs {TUNNEL_READ_PERMISSION}."
    if codes & NO_ROUTE_CODES:
        return " - check the account id (32 hex characters, from the dashboard URL)."
    if cls is CloudflareNotFoundError:
        return f" - {path} is not known to Cloudflare (not registered yet, or no longer tracked)."
    if cls is CloudflareRateLimitError:
        requests_allowed, period = rate_limit
        return (
            f" - rate limited{_after(retries)}; the connection is set to {requests_allowed:,} requests per "
            f"{period:g} s (extra rate_limit_requests / rate_limit_period); Cloudflare's limit is per user, "
            "shared by every token and key of the user and the dashboard."
        )
    return ""


def describe_transport_error(error: requests.exceptions.RequestException, url: str, max_retries: int) -> str:
    """
    A one-line reason for a request that got no usable answer (never the full ``urllib3`` chain).

    :param error: What ``requests`` raised.
    :param url: The URL asked for (only its scheme and host are shown).
    :param max_retries: The hook's ``max_retries``: the retries made when ``urllib3`` gave up retrying (an
        answer cut off while its body was read is never retried, so the message says so only when it was).
    """
    import requests
    from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError, ReadTimeoutError

    where = urlsplit(url)
    target = f"{where.scheme}://{where.netloc}"
    cause: Any = error.args[0] if error.args else None
    retries = max_retries if isinstance(cause, MaxRetryError) else 0
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    if isinstance(error, requests.exceptions.ConnectTimeout):
        reason = "connecting timed out"
    elif isinstance(error, requests.exceptions.ReadTimeout) or isinstance(cause, ReadTimeoutError):
        reason = "no answer within the read timeout"
    elif isinstance(error, requests.exceptions.SSLError):
        reason = "TLS handshake failed"
    elif isinstance(error, requests.exceptions.ProxyError):
        reason = "the proxy refused or failed the request"
    elif isinstance(error, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
        reason = "the answer was cut off or garbled"
    elif isinstance(cause, NewConnectionError):
        reason = "the connection was refused or the host is unknown"
    elif isinstance(cause, ProtocolError):
        reason = "the connection was closed or reset without an answer"
    elif isinstance(error, requests.exceptions.ConnectionError):
        reason = "the connection failed"
    else:
        reason = type(error).__name__
    return (
        f"Could not reach the Cloudflare API at {target} ({reason}){_after(retries)}. "
        "Check the network, any proxy, and the connection's API base URL (host field)."
    )


def _after(retries: int) -> str:
    """``" after 3 retries"``, or nothing when the request was not retried."""
    if retries <= 0:
        return ""
    return f" after {retries} {'retry' if retries == 1 else 'retries'}"


def _list(value: Any) -> list[Any]:
    """``value`` if it is a list, else an empty one (Cloudflare's lists may come as anything, or not at all)."""
    return value if isinstance(value, list) else []


def _code(error: Mapping[str, Any]) -> str:
    code = error.get("code")
    return str(code) if isinstance(code, int) and not isinstance(code, bool) else "?"


def _message(error: Mapping[str, Any]) -> str:
    message = error.get("message")
    if not isinstance(message, str) or not message.strip():
        return "(no message)"
    message = " ".join(message.split())
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."
