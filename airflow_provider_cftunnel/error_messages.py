"""The words of the provider's errors: Cloudflare's error list and a failed request, each as one short line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import requests

__all__ = ["after_retries", "describe_transport_error", "format_errors"]

_MAX_MESSAGE = 200
_MAX_ERRORS = 3


def format_errors(status: int, errors: list[dict[str, Any]]) -> str:
    """
    Describe the first few errors as ``Cloudflare API error 10000 (HTTP 403): Authentication error``.

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
        f"Could not reach the Cloudflare API at {target} ({reason}){after_retries(retries)}. "
        "Check the network, any proxy, and the connection's API base URL (host field)."
    )


def after_retries(retries: int) -> str:
    """
    Return ``" after 3 retries"``, or ``""`` when the request was not retried.

    :param retries: How many times the request was retried.
    """
    if retries <= 0:
        return ""
    return f" after {retries} {'retry' if retries == 1 else 'retries'}"


def _list(value: Any) -> list[Any]:
    """Return ``value`` if it is a list, else an empty one (Cloudflare's lists may come as anything, or not at all)."""
    return value if isinstance(value, list) else []


def _code(error: Mapping[str, Any]) -> str:
    """Return the error's code as text, or ``?`` when it has none."""
    code = error.get("code")
    return str(code) if isinstance(code, int) and not isinstance(code, bool) else "?"


def _message(error: Mapping[str, Any]) -> str:
    """Return the error's message folded to one line and shortened, or ``(no message)``."""
    message = error.get("message")
    if not isinstance(message, str) or not message.strip():
        return "(no message)"
    message = " ".join(message.split())
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."
