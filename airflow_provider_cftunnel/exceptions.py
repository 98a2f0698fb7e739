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
    Cloudflare kept answering 429 after every retry.

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
