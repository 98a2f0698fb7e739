"""Sensor that waits until a Cloudflare Tunnel connector has enough live connections.

DAG files import this module on every parse, so it imports nothing heavy: the hook (and ``requests``) and
the trigger load only when the task runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook
    from airflow_provider_cftunnel.models import TunnelConnector

__all__ = ["CloudflareTunnelConnectorSensor"]


class CloudflareTunnelConnectorSensor(BaseSensorOperator):
    """
    Wait until a tunnel connector has at least ``min_connections`` live connections.

    A connection is live when Cloudflare reports ``is_pending_reconnect: false``. With ``connector_id`` the
    sensor watches that connector; without it, it watches the whole tunnel (connector ids change on every
    ``cloudflared`` restart) and is done when any connector qualifies. On success the XCom ``return_value``
    is that connector's object as Cloudflare returned it.

    A 404 means "not registered yet" and a transient error (429 or 5xx after the hook's retries, no answer)
    means "not ready yet": both keep the sensor waiting until its ``timeout``. Bad credentials, a wrong
    account or a malformed id fail the task at once. Works in ``poke``, ``reschedule`` and deferrable
    modes, with the standard ``timeout``, ``soft_fail`` and ``poke_interval``.

    :param tunnel_id: The tunnel's UUID. Templated.
    :param connector_id: One connector's UUID, or ``None`` for any connector of the tunnel. Templated.
    :param account_id: The account id; defaults to the connection's ``extra.account_id``. Templated.
    :param min_connections: How many live connections make the connector ready (``cloudflared`` opens 4).
    :param cloudflare_conn_id: The Airflow connection of type ``cloudflare`` to use.
    :param deferrable: Wait in the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = ("tunnel_id", "connector_id", "account_id")
    ui_color = "#f6821f"

    def __init__(
        self,
        *,
        tunnel_id: str,
        connector_id: str | None = None,
        account_id: str | None = None,
        min_connections: int = 1,
        cloudflare_conn_id: str = "cloudflare_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(min_connections, bool) or not isinstance(min_connections, int) or min_connections < 1:
            raise ValueError(f"min_connections must be a whole number of at least 1, not {min_connections!r}")
        self.tunnel_id = tunnel_id
        self.connector_id = connector_id
        self.account_id = account_id
        self.min_connections = min_connections
        self.cloudflare_conn_id = cloudflare_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> CloudflareHook:
        """The hook, built on first use (never at DAG-parse time)."""
        from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook

        return CloudflareHook(self.cloudflare_conn_id)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        from airflow_provider_cftunnel.exceptions import CloudflareAPIError, means_not_ready
        from airflow_provider_cftunnel.models import find_ready_connector

        try:
            connectors = self._fetch()
        except CloudflareAPIError as error:
            if means_not_ready(error):
                self.log.info("Tunnel %s not ready yet: %s", self.tunnel_id, error)
                return False
            raise
        ready = find_ready_connector(
            connectors, min_connections=self.min_connections, connector_id=self.connector_id or None
        )
        if ready is None:
            self.log.info(
                "Tunnel %s not ready yet: %s; waiting for %d live connection(s)",
                self.tunnel_id,
                _describe(connectors) or "no connector registered",
                self.min_connections,
            )
            return False
        self.log.info(
            "Connector %s of tunnel %s is ready with %d live connection(s) (%s)",
            ready.id,
            self.tunnel_id,
            len(ready.active_connections),
            ", ".join(ready.colos) or "no data centre named",
        )
        return PokeReturnValue(is_done=True, xcom_value=ready.to_dict())

    def _fetch(self) -> list[TunnelConnector]:
        if self.connector_id:
            return [self.hook.get_tunnel_connector(self.tunnel_id, self.connector_id, self.account_id or None)]
        return self.hook.list_tunnel_connectors(self.tunnel_id, self.account_id or None)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        result = self.poke(context)
        if isinstance(result, PokeReturnValue):
            return result.xcom_value
        from airflow_provider_cftunnel.triggers.tunnel import CloudflareTunnelConnectorTrigger

        account_id = self.hook.account(self.account_id or None)
        self.defer(  # raises TaskDeferred
            trigger=CloudflareTunnelConnectorTrigger(
                tunnel_id=self.tunnel_id,
                connector_id=self.connector_id or None,
                account_id=account_id,
                min_connections=self.min_connections,
                cloudflare_conn_id=self.cloudflare_conn_id,
                poll_interval=float(self.poke_interval),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)),
        )
        return None  # not reached: defer() raises

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """
        Resume after the trigger fired: return the ready connector, or raise on an error or missing event.

        :param context: The task's context.
        :param event: The trigger's event payload.
        """
        if not isinstance(event, dict):
            raise AirflowException(f"Cloudflare tunnel trigger ended without an event for tunnel {self.tunnel_id}")
        if event.get("status") == "success" and isinstance(event.get("connector"), dict):
            connector: dict[str, Any] = event["connector"]
            self.log.info("Connector %s of tunnel %s is ready", connector.get("id"), self.tunnel_id)
            return connector
        message = event.get("message") or "unknown error"
        raise AirflowException(f"Waiting for tunnel {self.tunnel_id} failed: {message}")


def _describe(connectors: list[TunnelConnector]) -> str:
    """``connector abc: 2 live, 2 pending`` for each connector (for the waiting log line)."""
    return "; ".join(
        f"connector {c.id}: {len(c.active_connections)} live, {len(c.conns) - len(c.active_connections)} pending"
        for c in connectors
    )
