"""Sensor that waits until a Cloudflare Tunnel connector is ready to take traffic (the deploy gate).

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
    AirflowSensorTimeout,
    AirflowSkipException,
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
    from airflow_provider_cftunnel.readiness import GateVerdict, ReadinessClock, ReadinessRule

#: Extra seconds Airflow's own deferral timeout allows after the sensor's ``timeout``, so that the trigger
#: times out first and says why (Airflow's own timeout says only "Trigger timeout").
TRIGGER_TIMEOUT_GRACE = 60.0

__all__ = ["CloudflareTunnelConnectorSensor"]


class CloudflareTunnelConnectorSensor(BaseSensorOperator):
    """
    Wait until a tunnel connector has at least ``min_connections`` live connections (the deploy gate).

    A connection is live when Cloudflare reports ``is_pending_reconnect: false``. With ``connector_id`` the
    sensor watches that connector; without it, it watches the whole tunnel (connector ids change on every
    ``cloudflared`` restart) and is done when any connector qualifies. On success the XCom ``return_value``
    is that connector's object as Cloudflare returned it.

    During a rolling restart the old ``cloudflared`` stays live for a while. ``ready_url`` (cloudflared's
    ``/ready``) names the new connector, which must then be live in the API: both views agree, or the gate
    stays shut. Without it, ``started_after`` (e.g. the rollout task's end) counts only a connector started at
    or after that time. ``stable_for`` keeps the gate shut until the rule has held on every poll for that long.
    The rule is :class:`~airflow_provider_cftunnel.readiness.ReadinessRule`, decided by
    :func:`~airflow_provider_cftunnel.readiness.evaluate` in every mode; docs/gate.md says which to use when.

    A 404 means "not registered yet" and a transient error (429 or 5xx after the hook's retries, no answer)
    means "not ready yet", as do a refused, timed-out or 503 ``/ready``: all keep the sensor waiting until its
    ``timeout``, whose error names the last reason. Bad credentials, a wrong account, a malformed id or a
    ``ready_url`` that is not cloudflared's fail the task at once, with the same typed error
    (:class:`~airflow_provider_cftunnel.exceptions.CloudflareAuthError`...) in every mode. Works in ``poke``,
    ``reschedule`` and deferrable modes, with the standard ``timeout``, ``soft_fail`` and ``poke_interval``.
    Airflow clears a task's XComs at each reschedule, so in ``reschedule`` mode, once the rule holds, the
    sensor keeps its slot and polls every ``poke_interval`` for up to ``stable_for`` rather than rescheduling.

    :param tunnel_id: The tunnel's UUID. Templated.
    :param connector_id: One connector's UUID, or ``None`` for any connector of the tunnel. Templated.
    :param account_id: The account id; defaults to the connection's ``extra.account_id``. Templated.
    :param min_connections: How many live connections make the connector ready (``cloudflared`` opens 4).
    :param min_colos: How many distinct data centres its live connections must reach (default 1).
    :param started_after: Only a connector whose ``run_at`` is at or after this counts: a datetime or an ISO
        8601 string. Templated. ``None`` (default): any.
    :param stable_for: Seconds (or a timedelta) the rule must hold on every poll before the gate opens; a
        poll where it does not hold starts the count again. Default 0: open on the first good poll. Templated
        (a template must render to a number of seconds).
    :param ready_url: The new cloudflared's ``/ready`` URL (``http://HOST:PORT/ready`` of ``cloudflared
        --metrics HOST:PORT``); only the connector it names may open the gate. Templated. Not together with
        ``connector_id``.
    :param cloudflare_conn_id: The Airflow connection of type ``cloudflare`` to use.
    :param hook_params: Keyword arguments of :class:`~airflow_provider_cftunnel.hooks.cloudflare.CloudflareHook`
        (``timeout``, ``max_retries``, ``backoff_factor``, ``max_retry_after``), used in every mode.
    :param deferrable: Wait in the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = (
        "tunnel_id",
        "connector_id",
        "account_id",
        "started_after",
        "ready_url",
        "stable_for",
    )
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
        stable_for: float | timedelta | str = 0,
        ready_url: str | None = None,
        cloudflare_conn_id: str = "cloudflare_default",
        hook_params: dict[str, Any] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from airflow_provider_cftunnel.exceptions import CloudflareConfigError
        from airflow_provider_cftunnel.readiness import ReadinessRule, parse_stable_for

        # the untemplated part of the rule fails at DAG-parse time, with the same messages as at run time;
        # a stable_for template is checked once rendered
        ReadinessRule(min_connections=min_connections, min_colos=min_colos)
        self.stable_for: float | str = (
            stable_for if isinstance(stable_for, str) and "{{" in stable_for else parse_stable_for(stable_for)
        )
        if connector_id and ready_url:
            raise CloudflareConfigError(
                "Give either ready_url or connector_id, not both: cloudflared's /ready names the connector "
                "(its id changes on every restart), so ready_url replaces connector_id."
            )
        self.tunnel_id = tunnel_id
        self.connector_id = connector_id
        self.account_id = account_id
        self.min_connections = min_connections
        self.min_colos = min_colos
        self.started_after = started_after
        self.ready_url = ready_url
        self.cloudflare_conn_id = cloudflare_conn_id
        self.hook_params = check_hook_params(hook_params)
        self.deferrable = deferrable
        self._clock: ReadinessClock | None = None
        self._last_reason: str | None = None

    @cached_property
    def hook(self) -> CloudflareHook:
        """The hook, built on first use (never at DAG-parse time)."""
        from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook

        return CloudflareHook(self.cloudflare_conn_id, **hook_kwargs(self.hook_params))

    def rule(self) -> ReadinessRule:
        """Build the readiness rule from the rendered arguments."""
        from airflow_provider_cftunnel.exceptions import CloudflareConfigError
        from airflow_provider_cftunnel.readiness import ReadinessRule, parse_stable_for, parse_started_after

        if self.connector_id and self.ready_url:
            raise CloudflareConfigError("Give either ready_url or connector_id, not both (ready_url names it).")
        return ReadinessRule(
            min_connections=self.min_connections,
            connector_id=self.connector_id or None,
            started_after=parse_started_after(self.started_after),
            min_colos=self.min_colos,
            stable_for=parse_stable_for(self.stable_for),
        )

    def _ready_url(self) -> str | None:
        from airflow_provider_cftunnel.ready import check_ready_url

        return check_ready_url(self.ready_url) if self.ready_url else None

    def check(self, rule: ReadinessRule, ready_url: str | None) -> GateVerdict:
        """
        Poll once (the API, then cloudflared's ``/ready`` when set) and decide.

        The ``stable_for`` clock is carried from the previous poll of this task.

        :param rule: The readiness rule.
        :param ready_url: cloudflared's ``/ready``, or ``None``.
        """
        import time

        from airflow_provider_cftunnel.exceptions import CloudflareAPIError, means_not_ready
        from airflow_provider_cftunnel.readiness import GateVerdict, evaluate
        from airflow_provider_cftunnel.ready import read_ready

        now = time.time()
        try:
            connectors = self._fetch(rule.connector_id)
        except CloudflareAPIError as error:
            if not means_not_ready(error):
                raise
            verdict = GateVerdict.waiting(f"not ready yet: {error}")
        else:
            ready = read_ready(ready_url) if ready_url else None
            verdict = evaluate(rule, connectors, now=now, clock=self._clock, ready=ready)
        self._clock = verdict.clock
        if verdict.reason != self._last_reason and not verdict.ready:
            self.log.info("Tunnel %s %s", self.tunnel_id, verdict.reason)
        self._last_reason = verdict.reason
        return verdict

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Poll once; return the connector when the gate opens (poke and reschedule modes)."""
        import time

        rule = self.rule()
        ready_url = self._ready_url()
        verdict = self.check(rule, ready_url)
        # The rule holds but has not held for stable_for yet: keep polling here, since a reschedule would lose
        # the clock (Airflow clears the task's XComs), and poll again exactly when it falls due.
        while not verdict.ready and verdict.due_in is not None and not self.deferrable:
            time.sleep(min(float(self.poke_interval), verdict.due_in))
            verdict = self.check(rule, ready_url)
        if not verdict.ready or verdict.connector is None:
            return False
        self.log.info("Tunnel %s ready: %s", self.tunnel_id, verdict.reason)
        return PokeReturnValue(is_done=True, xcom_value=verdict.connector.to_dict())

    def _fetch(self, connector_id: str | None) -> list[TunnelConnector]:
        if connector_id:
            return [self.hook.get_tunnel_connector(self.tunnel_id, connector_id, self.account_id or None)]
        return self.hook.list_tunnel_connectors(self.tunnel_id, self.account_id or None)

    def _why(self, error: BaseException) -> str:
        return f"{error} Last check: {self._last_reason}" if self._last_reason else str(error)

    def execute(self, context: Context) -> Any:
        """Wait for the gate: poke or reschedule, or defer to the trigger (``deferrable=True``)."""
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as error:
                raise AirflowSensorTimeout(self._why(error)) from error
            except AirflowSkipException as error:
                if "timed out" not in str(error):
                    raise
                raise AirflowSkipException(self._why(error)) from error
        import time

        rule = self.rule()
        ready_url = self._ready_url()
        verdict = self.check(rule, ready_url)
        if verdict.ready and verdict.connector is not None:
            self.log.info("Tunnel %s ready: %s", self.tunnel_id, verdict.reason)
            return verdict.connector.to_dict()
        from airflow_provider_cftunnel.triggers.tunnel import CloudflareTunnelConnectorTrigger

        account_id = self.hook.account(self.account_id or None)
        self.defer(  # raises TaskDeferred
            trigger=CloudflareTunnelConnectorTrigger(
                tunnel_id=self.tunnel_id,
                account_id=account_id,
                rule=rule.to_dict(),
                ready_url=ready_url,
                cloudflare_conn_id=self.cloudflare_conn_id,
                poll_interval=float(self.poke_interval),
                hook_params=self.hook_params,
                timeout_at=time.time() + float(self.timeout),
                last_reason=verdict.reason,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + float(self.poke_interval) + TRIGGER_TIMEOUT_GRACE),
        )
        return None  # not reached: defer() raises

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """
        Resume after the trigger fired: return the ready connector, or raise.

        It raises on an error, a timeout or a missing event.

        An error event raises the same typed error as poke mode would (e.g. ``CloudflareAuthError``); a
        timeout event raises ``AirflowSensorTimeout`` naming the last reason the gate stayed shut.

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
        if event.get("status") == "timeout":
            raise AirflowSensorTimeout(
                f"Tunnel {self.tunnel_id} not ready within the sensor's timeout of {self.timeout} s. "
                f"Last check: {event.get('reason') or 'none'}"
            )
        raise AirflowException(f"Waiting for tunnel {self.tunnel_id} ended with an unexpected event: {event!r}")
