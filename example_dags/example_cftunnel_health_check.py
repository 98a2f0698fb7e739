"""
Scheduled health check of Cloudflare Tunnels, every 15 minutes: one tunnel, a list, or a whole fleet by name.

Checks tunnels, not connectors, so a ``cloudflared`` restart (which gives its connector a new id) never fails a
healthy tunnel. The check reads every selected tunnel's Cloudflare status from the tunnel list (1,000 tunnels
per request) and fails, naming each unhealthy tunnel and why, when any is not healthy. The ``alert`` task runs
only then: it reads the report from XCom and prints a summary, the stand-in for Slack or PagerDuty. The run
itself still ends failed (``all_healthy`` is then ``upstream_failed``), so the failure shows in the UI too.
``CFTUNNEL_MIN_CONNECTIONS`` (default 1) asks each tunnel for that many live connections: above 1 the check
also reads the ``connections`` endpoint of the tunnels whose status passes.

The selection comes from the DAG params, whose defaults come from the environment: ``CFTUNNEL_TUNNEL_IDS``
(UUIDs separated by commas; or ``CFTUNNEL_TUNNEL_ID``) or ``CFTUNNEL_NAME_PREFIX`` (e.g. ``prod-web-``);
neither checks every tunnel of the account. ``CFTUNNEL_ACCOUNT_ID`` unset means the connection's
``extra.account_id``. Parsing this file needs no connection and makes no request.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_cftunnel.operators.health import CloudflareTunnelHealthOperator

UUID_LIST = r"^([0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}([ ,]+|$))*$"

with DAG(
    dag_id="example_cftunnel_health_check",
    description="Every 15 minutes, check that Cloudflare Tunnels are healthy; alert with a readable summary if not",
    schedule=timedelta(minutes=15),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "tunnel_ids": Param(
            os.environ.get("CFTUNNEL_TUNNEL_IDS") or os.environ.get("CFTUNNEL_TUNNEL_ID") or None,
            type=["null", "string"],
            pattern=UUID_LIST,
            description="Tunnel UUIDs separated by commas; empty to select by name prefix",
        ),
        "name_prefix": Param(
            os.environ.get("CFTUNNEL_NAME_PREFIX") or None,
            type=["null", "string"],
            description="Check the tunnels whose name starts with this; empty with no ids: every tunnel",
        ),
        "account_id": Param(
            os.environ.get("CFTUNNEL_ACCOUNT_ID") or None,
            type=["null", "string"],
            pattern="^[0-9a-fA-F]{32}$",
            description="Account id; empty for the connection's default",
        ),
    },
    render_template_as_native_obj=True,
    tags=["cloudflare", "example"],
) as dag:
    check_tunnels = CloudflareTunnelHealthOperator(
        task_id="check_tunnels",
        tunnel_ids="{{ params.tunnel_ids }}",
        name_prefix="{{ params.name_prefix }}",
        account_id="{{ params.account_id }}",
        # "degraded" serves traffic with a failed connection: alert on it too by leaving it out
        allowed_statuses=("healthy",),
        min_live_connections=int(os.environ.get("CFTUNNEL_MIN_CONNECTIONS", "1")),
    )

    @task(trigger_rule="one_failed")
    def alert(ti=None) -> str:
        """Runs only when the check failed: a readable summary from the report (send it to Slack, PagerDuty...)."""
        report = ti.xcom_pull(task_ids="check_tunnels", key="health_report")
        if not report:  # the check failed before it could report (credentials, network): its log says why
            message = "Cloudflare Tunnel health check failed without a report; see the check_tunnels log."
        else:
            lines = [f"ALERT: {len(report['unhealthy'])} of {report['checked']} Cloudflare Tunnel(s) unhealthy"]
            for tunnel in report["tunnels"]:
                if not tunnel["healthy"]:
                    name = tunnel["name"] or "(unknown)"
                    lines.append(f"  - {name} ({tunnel['id']}): {'; '.join(tunnel['reasons'])}")
            message = "\n".join(lines)
        print(message)
        return message

    @task
    def all_healthy(report: dict) -> None:
        """Runs only when every tunnel is healthy."""
        print(f"All {report['checked']} Cloudflare Tunnel(s) healthy.")

    check_tunnels >> alert()
    all_healthy(check_tunnels.output)
