"""What both simulators share: the ``with`` protocol, and their credentials as an Airflow connection."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol, Self

__all__ = ["AirflowConnectionMixin", "StartStopMixin"]


class StartStopMixin:
    """Start a simulator on entering a ``with`` block and stop it on leaving it.

    The class provides ``start()``, which returns the simulator, and ``stop()``.
    """

    def start(self) -> Self:
        """Start, and return this simulator."""
        raise NotImplementedError

    def stop(self) -> Any:
        """Stop."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _Served(Protocol):
    """What a simulator that serves tells about itself."""

    @property
    def base_url(self) -> str: ...

    @property
    def api_token(self) -> str | None: ...

    @property
    def account_token(self) -> str | None: ...

    @property
    def global_key_email(self) -> str | None: ...

    @property
    def global_key(self) -> str | None: ...

    @property
    def account_id(self) -> str | None: ...


class AirflowConnectionMixin:
    """
    Give a simulator Airflow connection helpers.

    The simulator class provides ``base_url``, ``api_token``, ``account_token``, ``global_key_email``,
    ``global_key`` and ``account_id``; this adds :meth:`connection_json` and :meth:`airflow_env`.
    """

    def connection_json(
        self: _Served, auth: str = "token", *, account_id: str | None = None, extra: Mapping[str, Any] | None = None
    ) -> str:
        """Return an Airflow connection, as the JSON that ``AIRFLOW_CONN_<ID>`` accepts, for this simulator.

        ``{"conn_type": "cloudflare", "host": base_url, "password": ..., "login": ..., "extra":
        {"account_id": ...}}``; ``login`` is present only for ``global_key``.

        :param auth: ``"token"`` (``api_token``), ``"account_token"`` (``account_token``) or ``"global_key"``
            (``global_key_email`` as login, ``global_key`` as password).
        :param account_id: the account to put in ``extra`` (default ``account_id``).
        :param extra: more ``extra`` fields, e.g. ``{"rate_limit_requests": 100}``.
        """
        return _connection_json(self, auth, account_id, extra)

    def airflow_env(self: _Served, conn_id: str = "cloudflare_default", auth: str = "token") -> dict[str, str]:
        """Return ``{"AIRFLOW_CONN_<CONN_ID>": connection_json(auth)}`` to merge into an environment.

        :param conn_id: the Airflow connection id.
        :param auth: see :meth:`connection_json`.
        """
        return {f"AIRFLOW_CONN_{conn_id.upper()}": _connection_json(self, auth, None, None)}


def _connection_json(served: _Served, auth: str, account_id: str | None, extra: Mapping[str, Any] | None) -> str:
    conn: dict[str, Any] = {"conn_type": "cloudflare", "host": served.base_url}
    if auth == "token":
        secret = served.api_token
    elif auth == "account_token":
        secret = served.account_token
    elif auth == "global_key":
        secret = served.global_key
        conn["login"] = served.global_key_email
    else:
        raise ValueError(f"auth must be 'token', 'account_token' or 'global_key', got {auth!r}")
    if secret is None:
        raise ValueError(f"the scenario has no credential for auth={auth!r}")
    conn["password"] = secret
    conn["extra"] = {"account_id": account_id or served.account_id, **(extra or {})}
    return json.dumps(conn)
