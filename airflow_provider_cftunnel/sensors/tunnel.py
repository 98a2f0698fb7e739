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

from airflow_provider_cftunnel.hooks import check_hook_params, hook_kwargs

if TYPE_CHECKING:
    from datetime import datetime

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

    During a rolling restart the old ``cloudflared`` stays live for a while: with ``started_after`` (e.g.
    ``"{{ dag_run.start_date }}"`` or the deploy task's end) only a connector that started at or after that
    time counts, so the gate waits for the new one. The rule is
    :func:`~airflow_provider_cftunnel.rules.find_ready_connector`, the same in every mode.

    A 404 means "not registered yet" and a transient error (429 or 5xx after the hook's retries, no answer)
    means "not ready yet": both keep the sensor waiting until its ``timeout``. Bad credentials, a wrong
    account or a malformed id fail the task at once, with the same typed error
    (:class:`~airflow_provider_cftunnel.exceptions.CloudflareAuthError`...) in every mode. Works in ``poke``,
    ``reschedule`` and deferrable modes, with the standard ``timeout``, ``soft_fail`` and ``poke_interval``.

    :param tunnel_id: The tunnel's UUID. Templated.
    :param connector_id: One connector's UUID, or ``None`` for any connector of the tunnel. Templated.
    :param account_id: The account id; defaults to the connection's ``extra.account_id``. Templated.
    :param min_connections: How many live connections make the connector ready (``cloudflared`` opens 4).
    :param min_colos: How many distinct data centres its live connections must reach (default 1).
    :param started_after: Only a connector whose ``run_at`` is at or after this counts: a datetime or an ISO
        8601 string. Templated. ``None`` (default): any.
    :param cloudflare_conn_id: The Airflow connection of type ``cloudflare`` to use.
    :param hook_params: Keyword arguments of :class:`~airflow_provider_cftunnel.hooks.cloudflare.CloudflareHook`
        (``timeout``, ``max_retries``, ``backoff_factor``, ``max_retry_after``), used in every mode.
    :param deferrable: Wait in the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = ("tunnel_id", "connector_id", "account_id", "started_after")
    ui_color = "#f6821f"

    def __init__(
        self,
        *,
        tunnel_id: str,
        connector_id: str | None = None,
        account_id: str | None = None,
        min_connections: int = 1,
        min_colos: int = 1,
        started_after: datetime | str | None = None,
        cloudflare_conn_id: str = "cloudflare_default",
        hook_params: dict[str, Any] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(min_connections, bool) or not isinstance(min_connections, int) or min_connections < 1:
            raise ValueError(f"min_connections must be a whole number of at least 1, not {min_connections!r}")
        if isinstance(min_colos, bool) or not isinstance(min_colos, int) or min_colos < 0:
            raise ValueError(f"min_colos must be a whole number of 0 or more, not {min_colos!r}")
        self.tunnel_id = tunnel_id
        self.connector_id = connector_id
        self.account_id = account_id
        self.min_connections = min_connections
        self.min_colos = min_colos
        self.started_after = started_after
        self.cloudflare_conn_id = cloudflare_conn_id
        self.hook_params = check_hook_params(hook_params)
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> CloudflareHook:
        """The hook, built on first use (never at DAG-parse time)."""
        from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook

        return CloudflareHook(self.cloudflare_conn_id, **hook_kwargs(self.hook_params))

    def poke(self, context: Context) -> bool | PokeReturnValue:
        from airflow_provider_cftunnel.exceptions import CloudflareAPIError, means_not_ready
        from airflow_provider_cftunnel.rules import (
            describe_wait,
            find_ready_connector,
            parse_started_after,
        )

        started_after = parse_started_after(self.started_after)
        try:
            connectors = self._fetch()
        except CloudflareAPIError as error:
            if means_not_ready(error):
                self.log.info("Tunnel %s not ready yet: %s", self.tunnel_id, error)
                return False
            raise
        ready = find_ready_connector(
            connectors,
            min_connections=self.min_connections,
            connector_id=self.connector_id or None,
            started_after=started_after,
            min_colos=self.min_colos,
        )
        if ready is None:
            self.log.info(
                "Tunnel %s %s",
                self.tunnel_id,
                describe_wait(
                    connectors,
                    connector_id=self.connector_id or None,
                    min_connections=self.min_connections,
                    min_colos=self.min_colos,
                    started_after=started_after,
                ),
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
        from airflow_provider_cftunnel.rules import parse_started_after
        from airflow_provider_cftunnel.triggers.tunnel import CloudflareTunnelConnectorTrigger

        account_id = self.hook.account(self.account_id or None)
        started_after = parse_started_after(self.started_after)
        self.defer(  # raises TaskDeferred
            trigger=CloudflareTunnelConnectorTrigger(
                tunnel_id=self.tunnel_id,
                connector_id=self.connector_id or None,
                account_id=account_id,
                min_connections=self.min_connections,
                min_colos=self.min_colos,
                started_after=None if started_after is None else started_after.isoformat(),
                cloudflare_conn_id=self.cloudflare_conn_id,
                poll_interval=float(self.poke_interval),
                hook_params=self.hook_params,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)),
        )
        return None  # not reached: defer() raises

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """
        Resume after the trigger fired: return the ready connector, or raise on an error or missing event.

        An error event raises the same typed error as poke mode would (e.g. ``CloudflareAuthError``).

        :param context: The task's context.
        :param event: The trigger's event payload.
        """
        from airflow_provider_cftunnel.exceptions import error_from_event

        if not isinstance(event, dict):
            raise AirflowException(f"Cloudflare tunnel trigger ended without an event for tunnel {self.tunnel_id}")
        if event.get("status") == "success" and isinstance(event.get("connector"), dict):
            connector: dict[str, Any] = event["connector"]
            self.log.info("Connector %s of tunnel %s is ready", connector.get("id"), self.tunnel_id)
            return connector
        if event.get("status") == "error":
            raise error_from_event(event)
        raise AirflowException(f"Waiting for tunnel {self.tunnel_id} ended with an unexpected event: {event!r}")
