"""Errors raised by the Cloudflare Tunnel provider.

Each class is one thing a caller handles differently: a credential problem fails a task at once, a
missing object may only mean "not registered yet", and a rate limit is worth waiting for. Messages
never carry a credential or a raw response body.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowException

__all__ = [
    "CloudflareAPIError",
    "CloudflareAuthError",
    "CloudflareConfigError",
    "CloudflareNotFoundError",
    "CloudflareRateLimitError",
    "error_from_event",
    "error_to_event",
    "means_not_ready",
]


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


def means_not_ready(error: CloudflareAPIError) -> bool:
    """
    Whether a readiness check that hit ``error`` should keep waiting rather than fail.

    A 404 means "not registered yet" (or no longer tracked) and a transient error (no answer, a 429 or a
    5xx that outlived the retries) may pass; bad credentials, a wrong account (a 404 with no-route code
    7000/7003) or any other bad request fail at once. The sensor's poke mode and its trigger both use this.

    :param error: The error a hook call raised.
    """
    if isinstance(error, CloudflareNotFoundError):
        return not {7000, 7003} & set(error.codes)
    return not isinstance(error, CloudflareAuthError | CloudflareConfigError) and error.is_transient


_ERROR_TYPES: dict[str, type[CloudflareAPIError]] = {
    cls.__name__: cls
    for cls in (
        CloudflareAPIError,
        CloudflareAuthError,
        CloudflareConfigError,
        CloudflareNotFoundError,
        CloudflareRateLimitError,
    )
}


def error_to_event(error: CloudflareAPIError) -> dict[str, Any]:
    """
    A trigger's error event for ``error``: plain JSON that keeps the error's kind, status and codes.

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
    The typed error an error event (from :func:`error_to_event`) describes.

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
