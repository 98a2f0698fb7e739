"""Operator that checks the health of Cloudflare Tunnels, one or a whole fleet, in one task.

DAG files import this module on every parse, so it imports nothing heavy: the hook (and ``requests``) load
inside :meth:`CloudflareTunnelHealthOperator.execute`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

from airflow_provider_cftunnel.hooks import check_hook_params, hook_kwargs

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook

__all__ = ["HEALTH_REPORT_XCOM_KEY", "CloudflareTunnelHealthOperator"]

#: The XCom key under which the report is pushed, also when the task fails (for an alert task downstream).
HEALTH_REPORT_XCOM_KEY = "health_report"


class CloudflareTunnelHealthOperator(BaseOperator):
    """
    Check the health of Cloudflare Tunnels by tunnel, not by connector.

    ``cloudflared`` restarts (which give connectors new ids) never fail a healthy tunnel.

    A tunnel is healthy when its Cloudflare ``status`` is one of ``allowed_statuses`` and its live connections,
    summed over its connectors, number at least ``min_live_connections`` and reach at least ``min_colos``
    distinct data centres (:class:`~airflow_provider_cftunnel.rules.HealthRule`). A tunnel id Cloudflare does
    not know, or a deleted tunnel, is reported unhealthy with the reason.

    The report (plain JSON) is the XCom ``return_value`` and is also pushed under the key ``health_report``
    before the task fails, so an alert task with ``trigger_rule="one_failed"`` or ``"all_done"`` can read it::

        {"healthy": false, "checked": 40, "healthy_count": 39, "unhealthy": ["<id>"],
         "tunnels": [{"id", "name", "status", "healthy", "reasons": [...], "live_connections", "colos",
                      "connectors", "versions", "conns_active_at", "conns_inactive_at", "deleted_at"}, ...],
         "rule": {...}, "selection": {...}, "connections_fetched": 0, "checked_at": "..."}

    Fields that were not fetched (``live_connections``, ``colos``, ``connectors``, ``versions`` when the rule
    did not need the ``connections`` endpoint) are ``null``, never guessed.

    Request cost: the tunnel list endpoint reads every selected tunnel, 1,000 per request (``per_page=1000``,
    with ``is_deleted=false`` and ``include_prefix`` applied by Cloudflare); up to 2 explicit ids are read one
    by one instead. The ``connections`` endpoint is called only for tunnels whose verdict depends on it: when
    ``min_live_connections`` or ``min_colos`` is above 1, and only for tunnels whose status already passes,
    ``max_workers`` at a time. With the defaults, checking 1,500 tunnels costs 2 requests; a stricter rule over a
    whole account of 5,000 healthy tunnels costs about 5,000 (four times Cloudflare's 1,200 per 5 minutes per
    user), so narrow such checks with ``name_prefix`` (a warning is logged above 100 ``connections`` requests).

    Bad credentials, a wrong account, a malformed id, or errors that outlive the hook's retries fail the task
    as an error (they say nothing about the fleet's health, and Airflow's retries apply). Unhealthy tunnels fail
    it with ``AirflowFailException`` (no retries) when ``fail_on_unhealthy``, naming each one (the first 20).

    :param tunnel_ids: Tunnel UUIDs to check: a list, or a string of ids separated by commas or spaces, or a
        JSON list. Templated. ``None`` to select by ``name_prefix`` or to check every tunnel of the account.
    :param name_prefix: Check the tunnels whose name starts with this (e.g. ``prod-web-``). Templated.
    :param account_id: The account id; defaults to the connection's ``extra.account_id``. Templated.
    :param allowed_statuses: The Cloudflare statuses that count as healthy (default ``("healthy",)``; add
        ``"degraded"`` to accept a tunnel that serves with a failed connection).
    :param min_live_connections: Live connections a tunnel needs, summed over its connectors (default 1).
    :param min_colos: Distinct data centres its live connections must reach (default 1).
    :param fail_on_unhealthy: Fail the task when any tunnel is unhealthy (default ``True``); else only report.
    :param cloudflare_conn_id: The Airflow connection of type ``cloudflare`` to use.
    :param hook_params: Keyword arguments of :class:`~airflow_provider_cftunnel.hooks.cloudflare.CloudflareHook`
        (``timeout``, ``max_retries``, ``backoff_factor``, ``max_retry_after``).
    :param max_workers: Concurrent ``connections`` requests at most (default 4).
    """

    template_fields: Sequence[str] = ("tunnel_ids", "name_prefix", "account_id")
    ui_color = "#f6821f"

    def __init__(
        self,
        *,
        tunnel_ids: Sequence[str] | str | None = None,
        name_prefix: str | None = None,
        account_id: str | None = None,
        allowed_statuses: Sequence[str] = ("healthy",),
        min_live_connections: int = 1,
        min_colos: int = 1,
        fail_on_unhealthy: bool = True,
        cloudflare_conn_id: str = "cloudflare_default",
        hook_params: dict[str, Any] | None = None,
        max_workers: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from airflow_provider_cftunnel.rules import HealthRule

        # checked now, so a DAG with a bad rule fails to parse with a clear message rather than at run time
        self.rule = HealthRule(allowed_statuses, min_live_connections, min_colos)  # type: ignore[arg-type]
        self.tunnel_ids = tunnel_ids
        self.name_prefix = name_prefix
        self.account_id = account_id
        self.allowed_statuses = self.rule.allowed_statuses
        self.min_live_connections = min_live_connections
        self.min_colos = min_colos
        self.fail_on_unhealthy = fail_on_unhealthy
        self.cloudflare_conn_id = cloudflare_conn_id
        self.hook_params = check_hook_params(hook_params)
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be a whole number of at least 1, not {max_workers!r}")
        self.max_workers = max_workers

    @cached_property
    def hook(self) -> CloudflareHook:
        """The hook, built on first use (never at DAG-parse time)."""
        from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook

        return CloudflareHook(self.cloudflare_conn_id, **hook_kwargs(self.hook_params))

    def execute(self, context: Context) -> dict[str, Any]:
        """Check the selected tunnels; return the report and fail the task if any tunnel is unhealthy."""
        from airflow_provider_cftunnel.health import (
            check_tunnel_health,
            describe_unhealthy,
            describe_unhealthy_lines,
            health_report,
            parse_tunnel_ids,
        )

        tunnel_ids = parse_tunnel_ids(self.tunnel_ids if self.tunnel_ids not in ("", []) else None)
        account_id = self.hook.account(self.account_id or None)
        verdicts = check_tunnel_health(
            self.hook,
            account_id=account_id,
            tunnel_ids=tunnel_ids,
            name_prefix=self.name_prefix or None,
            rule=self.rule,
            max_workers=self.max_workers,
        )
        report = health_report(
            verdicts, rule=self.rule, account_id=account_id, tunnel_ids=tunnel_ids, name_prefix=self.name_prefix
        )
        context["ti"].xcom_push(key=HEALTH_REPORT_XCOM_KEY, value=report)
        summary = describe_unhealthy(verdicts)
        self.log.info(
            "Cloudflare Tunnel health: %d of %d tunnel(s) healthy (%d connections request(s))",
            report["healthy_count"],
            report["checked"],
            report["connections_fetched"],
        )
        for line in describe_unhealthy_lines(verdicts):  # one log line per tunnel: the UI cuts long lines
            self.log.warning("%s", line)
        if not report["healthy"] and self.fail_on_unhealthy:
            raise AirflowFailException(f"Cloudflare Tunnel health check failed: {summary}")
        return report
