"""The provider's errors: their types, which answer becomes which, their messages, and their event codec.

Each class is one thing a caller handles differently (a credential problem fails a task at once, a missing
object may only mean "not registered yet", a rate limit is worth waiting for). :func:`error_class` is the one
mapping of an HTTP status and Cloudflare's codes to a type; :func:`decode_answer` turns an answer into
Cloudflare's envelope or the typed error it means; :func:`error_to_event` / :func:`error_from_event` carry an
error through a trigger event. Messages name the status, the codes and the fix, never a response body, a
secret or a connection id. Nothing heavy is imported (``requests`` only inside
:func:`describe_transport_error`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import AirflowException

if TYPE_CHECKING:
    import requests

__all__ = [
    "ACCOUNT_ERROR_CODES",
    "AUTH_ERROR_CODES",
    "TUNNEL_READ_PERMISSION",
    "CloudflareAPIError",
    "CloudflareAccountError",
    "CloudflareAuthError",
    "CloudflareConfigError",
    "CloudflareNotFoundError",
    "CloudflareRateLimitError",
    "decode_answer",
    "describe_transport_error",
    "error_class",
    "error_from_event",
    "error_to_event",
    "format_errors",
    "hint",
    "means_not_ready",
]

#: Error codes that mean "your credentials are wrong", whatever HTTP status carries them.
AUTH_ERROR_CODES = frozenset([1000, 6003, 6102, 6103, 6111, 9103, 9106, 9109, 10000, 10001])
#: Error codes that mean "no such route" (with HTTP 400 or 404): almost always a wrong account id.
ACCOUNT_ERROR_CODES = frozenset([7000, 7003])
#: The permission every call of the provider needs, as the dashboard names it.
TUNNEL_READ_PERMISSION = '"Cloudflare Tunnel Read" (Account > Cloudflare Tunnel > Read)'

_MAX_MESSAGE = 200
_MAX_ERRORS = 3


class CloudflareAPIError(AirflowException):
    """
    The Cloudflare API answered with an error, or could not be reached.

    :param message: What went wrong and, where it helps, how to fix it.
    :param status_code: The HTTP status of the answer, or ``None`` when there was no answer.
    :param errors: Cloudflare's ``errors`` list (``[{"code": ..., "message": ...}]``), as received.
    :param transient: Whether asking again later may succeed; by default, when there was no answer, a 429
        or a 5xx.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        errors: list[dict[str, Any]] | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code  # type: ignore[assignment]  # AirflowException types it HTTPStatus
        self.errors: list[dict[str, Any]] = list(errors or [])
        self._transient = transient

    @property
    def codes(self) -> list[int]:
        """Cloudflare's numeric error codes, in the order received."""
        return [e["code"] for e in self.errors if isinstance(e.get("code"), int)]

    @property
    def is_transient(self) -> bool:
        """Whether waiting and asking again may give another answer (no answer, a 429 or a 5xx)."""
        if self._transient is not None:
            return self._transient
        return self.status_code is None or self.status_code == 429 or self.status_code >= 500

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default pickling of exceptions.
        return (_rebuild, (type(self), str(self), self.status_code, self.errors, self.__dict__))


def _rebuild(
    cls: type[CloudflareAPIError],
    message: str,
    status_code: int | None,
    errors: list[dict[str, Any]],
    state: dict[str, Any],
) -> CloudflareAPIError:
    error = cls(message, status_code=status_code, errors=errors)
    error.__dict__.update(state)
    return error


class CloudflareAuthError(CloudflareAPIError):
    """The credentials were refused (HTTP 400 on a malformed auth header, 401 or 403): never retried."""


class CloudflareConfigError(CloudflareAPIError, ValueError):
    """
    A request could not be made as asked: a malformed id, no account id, no credentials.

    Raised before anything is sent, so no malformed value ever reaches a URL. Never transient.
    """

    @property
    def is_transient(self) -> bool:
        """Never: the same input gives the same error."""
        return False


class CloudflareNotFoundError(CloudflareAPIError):
    """The account, tunnel or connector does not exist, or is no longer tracked (HTTP 404)."""


class CloudflareAccountError(CloudflareNotFoundError):
    """Cloudflare could not route the request: the account id is wrong (HTTP 400 or 404, code 7000 or 7003)."""


class CloudflareRateLimitError(CloudflareAPIError):
    """
    Cloudflare answered 429 (rate limited), after the hook's retries if it had any.

    :param retry_after: Seconds Cloudflare asked to wait (``Retry-After``), when it said.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = 429,
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, errors=errors, transient=transient)
        self.retry_after = retry_after


def error_class(status: int, codes: Iterable[int]) -> type[CloudflareAPIError]:
    """
    Map an HTTP status and Cloudflare's error codes to an error type (the one place that does).

    A 429 is a rate limit; a 401/403, or any other 4xx carrying an authentication code, is an auth error; a 400
    or 404 with a no-route code is a wrong account; a 404 is "not found"; anything else is a plain
    :class:`CloudflareAPIError`.

    :param status: The HTTP status of the answer.
    :param codes: Cloudflare's numeric error codes in the answer.
    """
    if status == 429:
        return CloudflareRateLimitError
    if status in (401, 403) or (status < 500 and AUTH_ERROR_CODES.intersection(codes)):
        return CloudflareAuthError
    if status in (400, 404) and ACCOUNT_ERROR_CODES.intersection(codes):
        return CloudflareAccountError
    if status == 404:
        return CloudflareNotFoundError
    return CloudflareAPIError


def decode_answer(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    path: str,
    *,
    uses_global_key: bool,
    rate_limit: tuple[int, float],
    retries: int = 0,
    retry_after: float | None = None,
    redact: Callable[[str], str] = str,
) -> dict[str, Any]:
    """
    Read Cloudflare's envelope from an answer, or raise the typed error the answer means.

    :param status: The HTTP status of the answer.
    :param body: Its body, as received.
    :param headers: Its headers (``Location`` and ``Content-Type`` are read).
    :param path: The API path that was asked for (named in messages).
    :param uses_global_key: As for :func:`hint`.
    :param rate_limit: As for :func:`hint`.
    :param retries: As for :func:`hint`.
    :param retry_after: Seconds a 429 asked to wait, given to :class:`CloudflareRateLimitError`.
    :param redact: Removes secrets from Cloudflare's messages (the hook passes its credentials' ``redact``).
    :return: The envelope of a successful answer.
    :raises CloudflareAPIError: Or the subclass :func:`error_class` picks, for every other answer.
    """
    if 300 <= status < 400:
        target = urlsplit(headers.get("Location", "")).netloc or "the same host"
        raise CloudflareAPIError(
            f"Cloudflare API answered HTTP {status} with a redirect to {target} for {path}; redirects "
            "are not followed, so credentials never leave the configured host. Check the connection's "
            "API base URL (host field).",
            status_code=status,
        )
    try:
        envelope = json.loads(body) if body else None
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict):
        content_type = headers.get("Content-Type", "unknown content type").split(";")[0]
        kind = "an empty response" if not body else f"a non-JSON response ({content_type}, {len(body)} bytes)"
        raise error_class(status, ())(
            f"Cloudflare API returned {kind} with HTTP {status} for {path}"
            + (" - likely a gateway or proxy error" if status >= 500 else ""),
            status_code=status,
            transient=status >= 500 or 200 <= status < 300,
        )
    errors = [e for e in _list(envelope.get("errors")) if isinstance(e, dict)]
    if 200 <= status < 300 and envelope.get("success") is not False:
        return envelope
    codes = {e["code"] for e in errors if isinstance(e.get("code"), int)}
    cls = error_class(status, codes)
    message = redact(format_errors(status, errors)) + hint(
        cls, codes, path, uses_global_key=uses_global_key, rate_limit=rate_limit, retries=retries
    )
    if cls is CloudflareRateLimitError:
        raise CloudflareRateLimitError(message, status_code=status, errors=errors, retry_after=retry_after)
    raise cls(message, status_code=status, errors=errors)


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
    Say what to do about an error answer, as a suffix for its message (``" - check ..."``), or ``""``.

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
    if cls is CloudflareAccountError:
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
    Give a one-line reason for a request that got no usable answer (never the full ``urllib3`` chain).

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


def means_not_ready(error: CloudflareAPIError) -> bool:
    """
    Whether a readiness check that hit ``error`` should keep waiting rather than fail.

    A 404 means "not registered yet" (or no longer tracked) and a transient error (no answer, a 429 or a
    5xx that outlived the retries) may pass; bad credentials, a wrong account
    (:class:`CloudflareAccountError`) or any other bad request fail at once. The sensor's poke mode and its
    trigger both use this.

    :param error: The error a hook call raised.
    """
    if isinstance(error, CloudflareNotFoundError):
        return not isinstance(error, CloudflareAccountError)
    return not isinstance(error, CloudflareAuthError | CloudflareConfigError) and error.is_transient


_ERROR_TYPES: dict[str, type[CloudflareAPIError]] = {
    cls.__name__: cls
    for cls in (
        CloudflareAPIError,
        CloudflareAccountError,
        CloudflareAuthError,
        CloudflareConfigError,
        CloudflareNotFoundError,
        CloudflareRateLimitError,
    )
}


def error_to_event(error: CloudflareAPIError) -> dict[str, Any]:
    """
    Encode ``error`` as a trigger's error event: plain JSON that keeps the error's kind, status and codes.

    :func:`error_from_event` turns it back into the same typed exception, so a deferred task fails the way
    its poke mode would (``CloudflareAuthError`` stays ``CloudflareAuthError``).

    :param error: The error that ended the wait. Its message names no secret (the hook redacts them).
    """
    return {
        "status": "error",
        "message": str(error),
        "error": {
            "type": type(error).__name__ if type(error).__name__ in _ERROR_TYPES else "CloudflareAPIError",
            "status_code": error.status_code if isinstance(error.status_code, int) else None,
            "errors": [
                {"code": e["code"], "message": str(e.get("message", ""))}
                for e in error.errors
                if isinstance(e.get("code"), int)
            ],
            "transient": error.is_transient,
        },
    }


def error_from_event(event: dict[str, Any]) -> CloudflareAPIError:
    """
    Decode an error event (from :func:`error_to_event`) into the typed error it describes.

    Events of older triggers carry only a ``message``: they give a plain :class:`CloudflareAPIError`.

    :param event: A trigger event payload with ``"status": "error"``.
    """
    message = event.get("message")
    message = message if isinstance(message, str) and message else "unknown error"
    details = event.get("error")
    details = details if isinstance(details, dict) else {}
    cls = _ERROR_TYPES.get(str(details.get("type")), CloudflareAPIError)
    status_code = details.get("status_code")
    errors = details.get("errors")
    transient = details.get("transient")
    return cls(
        message,
        status_code=status_code if isinstance(status_code, int) and not isinstance(status_code, bool) else None,
        errors=[e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else None,
        transient=transient if isinstance(transient, bool) else None,
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
