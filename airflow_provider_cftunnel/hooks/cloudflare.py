"""The Cloudflare hook: the only place that knows credentials and speaks HTTP to Cloudflare.

Operators and sensors import this module lazily (inside ``execute``/``poke``), so DAG files that use them
never pay for ``requests`` at parse time. The session and the retry policy live in :mod:`.session` and
:mod:`.retry` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any
from urllib.parse import quote

import requests
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_cftunnel.exceptions import (
    CloudflareAPIError,
    CloudflareAuthError,
    CloudflareConfigError,
    decode_answer,
    describe_transport_error,
)
from airflow_provider_cftunnel.hooks.credentials import DEFAULT_API_BASE_URL, CloudflareCredentials
from airflow_provider_cftunnel.hooks.retry import (
    MAX_RETRY_AFTER,
    RETRY_STATUSES,
    CloudflareRetry,
    parse_retry_after,
    retries_made,
)
from airflow_provider_cftunnel.hooks.session import USER_AGENT, build_session
from airflow_provider_cftunnel.models import Tunnel, TunnelConnector, show_value, validate_account_id, validate_uuid
from airflow_provider_cftunnel.ratelimit import (
    QuotaClaim,
    ServerQuota,
    claim_request,
    credential_fingerprint,
    quota_for,
)

__all__ = [
    "DEFAULT_API_BASE_URL",
    "MAX_RETRY_AFTER",
    "RETRY_STATUSES",
    "USER_AGENT",
    "CloudflareCredentials",
    "CloudflareHook",
    "CloudflareRetry",
    "parse_retry_after",
]

_MAX_PAGES = 1000

#: ``test_connection`` answers within about 10 s: its (connect, read) timeouts, retries, backoff and longest wait
#: are at most these (a hook asking for less keeps its own). Tasks keep the hook's full settings.
TEST_CONNECTION_TIMEOUT = (2.0, 3.0)
TEST_CONNECTION_MAX_RETRIES = 1
TEST_CONNECTION_BACKOFF_FACTOR = 0.25
TEST_CONNECTION_MAX_WAIT = 5.0


class CloudflareHook(BaseHook):
    """
    Talks to the Cloudflare API with the credentials of an Airflow connection of type ``cloudflare``.

    The connection holds an API token in ``password`` (sent as ``Authorization: Bearer``), or, when
    ``login`` holds an email, the legacy Global API Key (sent as ``X-Auth-Email`` + ``X-Auth-Key``).
    ``extra.account_id`` is the default account and ``host`` an optional API base URL (for proxies and
    the local simulator). Each hook has one ``requests.Session``; every call has connect and read
    timeouts, and 429s, 5xx answers, connection errors and read timeouts are retried with jittered
    exponential backoff that honours ``Retry-After``. Redirects are never followed, so credentials
    never reach another host.

    :param cloudflare_conn_id: The Airflow connection to use.
    :param timeout: Seconds to wait, as ``(connect, read)`` or one number for both.
    :param max_retries: How many times a failed attempt is retried before giving up (0: never).
    :param backoff_factor: Base of the exponential backoff between retries, in seconds.
    :param max_retry_after: The longest ``Retry-After`` honoured, in seconds.
    """

    conn_name_attr = "cloudflare_conn_id"
    default_conn_name = "cloudflare_default"
    conn_type = "cloudflare"
    hook_name = "Cloudflare"

    def __init__(
        self,
        cloudflare_conn_id: str = default_conn_name,
        *,
        timeout: float | tuple[float, float] = (10.0, 30.0),
        max_retries: int = 5,
        backoff_factor: float = 1.0,
        max_retry_after: float = MAX_RETRY_AFTER,
    ) -> None:
        super().__init__()
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.cloudflare_conn_id = cloudflare_conn_id
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_factor = backoff_factor
        self.max_retry_after = max_retry_after
        self._preset_credentials: CloudflareCredentials | None = None

    @classmethod
    def from_credentials(cls, credentials: CloudflareCredentials, conn_id: str, **kwargs: Any) -> CloudflareHook:
        """
        Return a hook for credentials already read (the triggerer reads connections asynchronously).

        :param credentials: What :meth:`CloudflareCredentials.from_connection` returned.
        :param conn_id: The connection they came from (for messages).
        :param kwargs: The other arguments of :class:`CloudflareHook`.
        """
        hook = cls(conn_id, **kwargs)
        hook._preset_credentials = credentials
        return hook

    def __repr__(self) -> str:
        return f"<{type(self).__name__} conn_id={self.cloudflare_conn_id!r}>"

    # -- connection form (Airflow < 3.2 reads these; 3.2+ reads conn-fields from the provider info) --

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Return the extra fields of the connection form, for Airflow 2.11 to 3.1 (2.11's form runs the validators)."""
        from airflow_provider_cftunnel.hooks.form import connection_form_widgets

        return connection_form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return which standard fields the connection form hides and how it labels them, for Airflow < 3.2."""
        from airflow_provider_cftunnel.hooks.form import ui_field_behaviour

        return ui_field_behaviour()

    # -- credentials and session --

    @cached_property
    def credentials(self) -> CloudflareCredentials:
        """The connection's credentials, read once (the first call that needs them)."""
        if self._preset_credentials is not None:
            return self._preset_credentials
        # Airflow masks the connection's password in logs when it reads the connection.
        return CloudflareCredentials.from_connection(self.get_connection(self.cloudflare_conn_id))

    def get_conn(self) -> requests.Session:
        """Return the hook's ``requests.Session``, with auth, User-Agent, retries and proxy settings."""
        return self._session

    @cached_property
    def _session(self) -> requests.Session:
        return build_session(
            self.credentials,
            max_retries=self.max_retries,
            backoff_factor=self.backoff_factor,
            max_retry_after=self.max_retry_after,
        )

    def close(self) -> None:
        """Close the session's pooled connections (the hook can still be used; it reconnects)."""
        if "_session" in self.__dict__:
            self._session.close()

    def account(self, account_id: str | None = None) -> str:
        """
        Return the account id to use: ``account_id`` if given, else the connection's ``extra.account_id``.

        :param account_id: An explicit account id, or ``None``.
        :raises CloudflareConfigError: When there is none, or it is malformed.
        """
        account_id = account_id or self.credentials.account_id
        if not account_id:
            raise CloudflareConfigError(
                'No Cloudflare account id: pass account_id=..., or set "account_id" in the extra of '
                f"connection {self.cloudflare_conn_id!r} (the 'Account ID' field of the connection form)."
            )
        return validate_account_id(account_id)

    # -- API calls --

    def get_tunnel_connector(self, tunnel_id: str, connector_id: str, account_id: str | None = None) -> TunnelConnector:
        """
        Fetch one connector (a ``cloudflared`` process) of a tunnel.

        :param tunnel_id: The tunnel's UUID.
        :param connector_id: The connector's UUID (new each time ``cloudflared`` starts).
        :param account_id: The account; defaults to the connection's ``extra.account_id``.
        :raises CloudflareNotFoundError: When Cloudflare does not know (or no longer tracks) the connector.
        """
        path = self._tunnel_path(account_id, tunnel_id, "connectors", validate_uuid(connector_id, "connector_id"))
        return TunnelConnector.from_dict(self._result_object(self.request(path), "connector"))

    def list_tunnel_connectors(self, tunnel_id: str, account_id: str | None = None) -> list[TunnelConnector]:
        """
        Fetch all connectors of a tunnel with their connections (the ``connections`` endpoint).

        :param tunnel_id: The tunnel's UUID.
        :param account_id: The account; defaults to the connection's ``extra.account_id``.
        :return: The connectors; empty when Cloudflare answers ``result: null``.
        """
        envelope = self.request(self._tunnel_path(account_id, tunnel_id, "connections"))
        return [TunnelConnector.from_dict(item) for item in self._result_list(envelope, "connector")]

    def get_tunnel(self, tunnel_id: str, account_id: str | None = None) -> Tunnel:
        """
        Fetch a tunnel: its name, status (inactive, healthy, degraded, down) and timestamps.

        :param tunnel_id: The tunnel's UUID.
        :param account_id: The account; defaults to the connection's ``extra.account_id``.
        """
        return Tunnel.from_dict(self._result_object(self.request(self._tunnel_path(account_id, tunnel_id)), "tunnel"))

    def list_tunnels(self, account_id: str | None = None, **filters: str | int | bool) -> list[Tunnel]:
        """
        Fetch every tunnel of an account, following all pages.

        :param account_id: The account; defaults to the connection's ``extra.account_id``.
        :param filters: Cloudflare's query filters, e.g. ``name="web"``, ``status="healthy"``,
            ``is_deleted=False``, ``uuid=...``, and ``per_page`` (default 100).
        """
        path = f"/accounts/{quote(self.account(account_id), safe='')}/cfd_tunnel"
        params: dict[str, str] = {}
        for key, value in filters.items():
            if not isinstance(value, str | int | bool) or key == "page":
                raise CloudflareConfigError(f"Invalid tunnel filter {key}={show_value(value)}")
            params[key] = str(value).lower() if isinstance(value, bool) else str(value)
        params.setdefault("per_page", "100")
        per_page = int(params["per_page"]) if params["per_page"].isdigit() else 0
        tunnels: list[Tunnel] = []
        previous_ids: list[Any] = []
        for page in range(1, _MAX_PAGES + 1):
            envelope = self.request(path, params={**params, "page": str(page)})
            items = self._result_list(envelope, "tunnel")
            ids = [item.get("id") for item in items]
            if not items or ids == previous_ids:  # done, or a server that ignores `page`
                break
            tunnels.extend(Tunnel.from_dict(item) for item in items)
            previous_ids = ids
            info = envelope.get("result_info")
            info = info if isinstance(info, dict) else {}
            total_pages = info.get("total_pages") if _is_number(info.get("total_pages")) else None
            total_count = info.get("total_count") if _is_number(info.get("total_count")) else None
            if len(items) < per_page:  # a short page is the last one
                break
            if total_pages is not None and page >= total_pages:
                break
            if total_count is not None and len(tunnels) >= total_count:
                break
        return tunnels

    def test_connection(self) -> tuple[bool, str]:
        """
        Check the connection's credentials without changing anything (GET requests only).

        An API token is checked with the user token verify endpoint, then the account one (account-owned
        tokens fail the user endpoint); with an account id, a one-item tunnel list also proves the token can
        read tunnels. A Global API Key is checked with a cheap authenticated read.

        It never takes long: at most :data:`TEST_CONNECTION_MAX_RETRIES` retry, with the short timeouts of
        :data:`TEST_CONNECTION_TIMEOUT`, so an unreachable or silent host answers within about 10 s.

        :return: ``(ok, message)``; the message names no secret and quotes no response body.
        """
        try:
            probe = self._bounded_for_test()
            return probe._test_connection()
        except CloudflareAPIError as error:
            return False, str(error)
        except Exception as error:  # never let a connection test raise, nor echo anything secret
            return False, self._redact(f"Connection test failed: {type(error).__name__}: {error}")

    def _bounded_for_test(self) -> CloudflareHook:
        """Return a hook on the same credentials whose timeouts, retries and waits are within ``TEST_CONNECTION_*``."""
        connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout, self.timeout)
        return type(self).from_credentials(
            self.credentials,
            self.cloudflare_conn_id,
            timeout=(min(connect, TEST_CONNECTION_TIMEOUT[0]), min(read, TEST_CONNECTION_TIMEOUT[1])),
            max_retries=min(self.max_retries, TEST_CONNECTION_MAX_RETRIES),
            backoff_factor=min(self.backoff_factor, TEST_CONNECTION_BACKOFF_FACTOR),
            max_retry_after=min(self.max_retry_after, TEST_CONNECTION_MAX_WAIT),
        )

    def _test_connection(self) -> tuple[bool, str]:
        """Make :meth:`test_connection`'s requests with this hook's settings; raise what they raise."""
        try:
            credentials = self.credentials
            account_id = self.account() if credentials.account_id else None
            if credentials.uses_global_key:
                if account_id:
                    self.request(f"/accounts/{account_id}/cfd_tunnel", params={"per_page": "1"})
                    return True, f"Global API Key accepted; tunnels of account {account_id} are readable."
                self.request("/user")
                return True, "Global API Key accepted. Set the Account ID to let tasks omit account_id."
            kind = "user"
            try:
                result = self._result_object(self.request("/user/tokens/verify"), "token")
            except CloudflareAuthError as error:
                if account_id is None or error.status_code not in (400, 401, 403):
                    raise
                kind = "account"
                result = self._result_object(self.request(f"/accounts/{account_id}/tokens/verify"), "token")
            status = result.get("status")
            if status != "active":
                return False, f"The API token is not active (status: {show_value(status)}); create or enable one."
            if account_id is None:
                return True, (f"API token is active ({kind} token). Set the Account ID to let tasks omit account_id.")
            self.request(f"/accounts/{account_id}/cfd_tunnel", params={"per_page": "1"})
            return True, f"API token is active ({kind} token) and can read tunnels of account {account_id}."
        finally:
            self.close()

    # -- plumbing --

    def _tunnel_path(self, account_id: str | None, tunnel_id: str, *rest: str) -> str:
        segments = [
            "accounts",
            self.account(account_id),
            "cfd_tunnel",
            validate_uuid(tunnel_id, "tunnel_id"),
            *rest,
        ]
        return "/" + "/".join(quote(s, safe="") for s in segments)

    def request(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """
        GET ``path`` (relative to the API base URL) and return Cloudflare's envelope.

        Retries happen inside; what comes out is either a successful envelope or a typed error. Before the
        request it waits (at most ``max_retry_after`` seconds) for what :attr:`quota` says of the pool this
        credential shares with everything else of its Cloudflare user; every answer's rate-limit headers,
        errors and 429s included, update it.

        :param path: The API path, starting with ``/``.
        :param params: Query parameters.
        :raises CloudflareAPIError: Or one of its subclasses, with a message that names no secret.
        """
        url = self.credentials.base_url + path
        claim = self._claim_quota()
        headers: Mapping[str, str] | None = None
        try:
            response = self._session.get(url, params=params, timeout=self.timeout, allow_redirects=False)
            body = response.content
            headers = response.headers
        except requests.exceptions.RequestException as error:
            raise CloudflareAPIError(self._redact(describe_transport_error(error, url, self.max_retries))) from None
        finally:
            claim.settle(headers)
        return self._envelope(response, body, path)

    @property
    def quota(self) -> ServerQuota:
        """This process's view of the credential's rate-limit pool, shared by its hooks and triggers."""
        return quota_for(self._credential_fingerprint)

    @cached_property
    def _credential_fingerprint(self) -> str:
        credentials = self.credentials
        return credential_fingerprint(credentials.base_url, credentials.email, credentials.secret)

    def _claim_quota(self) -> QuotaClaim:
        """Claim one request: the triggerer's claim (carried by the call's context), or one waited for here."""
        return claim_request(self.quota, max_wait=self.max_retry_after)

    def _envelope(self, response: requests.Response, body: bytes, path: str) -> dict[str, Any]:
        status, credentials = response.status_code, self.credentials
        return decode_answer(
            status,
            body,
            response.headers,
            path,
            uses_global_key=credentials.uses_global_key,
            rate_limit=(credentials.rate_limit_requests, credentials.rate_limit_period),
            retries=retries_made(response),
            retry_after=parse_retry_after(response.headers.get("Retry-After"), self.max_retry_after)
            if status == 429
            else None,
            redact=self._redact,
        )

    def _redact(self, text: str) -> str:
        credentials = self._preset_credentials or self.__dict__.get("credentials")
        return credentials.redact(text) if credentials is not None else text

    @staticmethod
    def _result_object(envelope: Mapping[str, Any], what: str) -> dict[str, Any]:
        result = envelope.get("result")
        if not isinstance(result, dict):
            raise CloudflareAPIError(
                f"Cloudflare API returned an unexpected {what}: expected an object, got {type(result).__name__}"
            )
        return result

    @staticmethod
    def _result_list(envelope: Mapping[str, Any], what: str) -> list[dict[str, Any]]:
        result = envelope.get("result")
        if result is None:
            return []
        if not isinstance(result, list) or not all(isinstance(item, dict) for item in result):
            raise CloudflareAPIError(f"Cloudflare API returned an unexpected {what} list: expected a list of objects")
        return result


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
