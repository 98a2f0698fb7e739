"""Operator that fetches a Cloudflare Tunnel connector and pushes it to XCom.

DAG files import this module on every parse, so it imports nothing heavy: the hook (and ``requests``)
load inside :meth:`CloudflareTunnelConnectorOperator.execute`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.common.compat.sdk import BaseOperator, BaseOperatorLink, XCom

from airflow_provider_cftunnel.hooks import check_hook_params, hook_kwargs

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, TaskInstanceKey

    from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook

__all__ = ["CloudflareTunnelConnectorOperator", "CloudflareTunnelLink", "tunnel_dashboard_url"]

DASHBOARD_URL = "https://one.dash.cloudflare.com/{account_id}/networks/tunnels/cfd_tunnel/{tunnel_id}/edit"


def tunnel_dashboard_url(account_id: str, tunnel_id: str) -> str:
    """
    Build the URL of the tunnel's page in the Cloudflare Zero Trust dashboard (locally, no request made).

    :param account_id: The account id (32 hex characters).
    :param tunnel_id: The tunnel's UUID.
    """
    return DASHBOARD_URL.format(account_id=quote(account_id, safe=""), tunnel_id=quote(tunnel_id, safe=""))


class CloudflareTunnelLink(BaseOperatorLink):
    """
    "Cloudflare Tunnel": a link from the task to the tunnel's page in the Cloudflare dashboard.

    The task stores the URL in XCom when it runs (with the ids as rendered), so the link costs no request.
    """

    name = "Cloudflare Tunnel"

    @property
    def xcom_key(self) -> str:
        """The XCom key of the stored URL: Airflow 3's default, spelled out since 2.11's base class has none."""
        return f"_link_{type(self).__name__}"

    @staticmethod
    def persist(context: Context, account_id: str, tunnel_id: str) -> None:
        """
        Store the tunnel's dashboard URL for this task instance.

        :param context: The running task's context.
        :param account_id: The account id the task used.
        :param tunnel_id: The tunnel id the task used.
        """
        context["ti"].xcom_push(key=CloudflareTunnelLink().xcom_key, value=tunnel_dashboard_url(account_id, tunnel_id))

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        """Return the stored URL, or an empty string before the task has run."""
        return XCom.get_value(ti_key=ti_key, key=self.xcom_key) or ""


class CloudflareTunnelConnectorOperator(BaseOperator):
    """
    Fetch one connector of a Cloudflare Tunnel and return it.

    XCom ``return_value`` is Cloudflare's connector object (``id``, ``conns`` with each connection's
    ``is_pending_reconnect``, ``version``...).

    Calls ``GET /accounts/{account_id}/cfd_tunnel/{tunnel_id}/connectors/{connector_id}``.

    :param tunnel_id: The tunnel's UUID. Templated.
    :param connector_id: The connector's UUID (new each time ``cloudflared`` starts). Templated.
    :param account_id: The account id; defaults to the connection's ``extra.account_id``. Templated.
    :param cloudflare_conn_id: The Airflow connection of type ``cloudflare`` to use.
    :param hook_params: Keyword arguments of :class:`~airflow_provider_cftunnel.hooks.cloudflare.CloudflareHook`
        (``timeout``, ``max_retries``, ``backoff_factor``, ``max_retry_after``).
    """

    template_fields: Sequence[str] = ("tunnel_id", "connector_id", "account_id")
    operator_extra_links = (CloudflareTunnelLink(),)
    ui_color = "#f6821f"

    def __init__(
        self,
        *,
        tunnel_id: str,
        connector_id: str,
        account_id: str | None = None,
        cloudflare_conn_id: str = "cloudflare_default",
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tunnel_id = tunnel_id
        self.connector_id = connector_id
        self.account_id = account_id
        self.cloudflare_conn_id = cloudflare_conn_id
        self.hook_params = check_hook_params(hook_params)

    @cached_property
    def hook(self) -> CloudflareHook:
        """The hook, built on first use (never at DAG-parse time)."""
        from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook

        return CloudflareHook(self.cloudflare_conn_id, **hook_kwargs(self.hook_params))

    def execute(self, context: Context) -> dict[str, Any]:
        """Fetch the connector and return it (pushed to XCom as ``return_value``)."""
        account_id = self.hook.account(self.account_id or None)
        connector = self.hook.get_tunnel_connector(self.tunnel_id, self.connector_id, account_id)
        CloudflareTunnelLink.persist(context, account_id, self.tunnel_id)
        self.log.info(
            "Connector %s of tunnel %s: %d of %d connections live (%s)",
            connector.id,
            self.tunnel_id,
            len(connector.active_connections),
            len(connector.conns),
            ", ".join(connector.colos) or "no data centre",
        )
        return connector.to_dict()
