"""
### Cloudflare Tunnel health check, every 15 minutes

Checks **tunnels, not connectors**, so a `cloudflared` restart (which gives its connector a new id) never fails a
healthy tunnel: one tunnel, a list, every tunnel whose name starts with a prefix, or the whole account. The
check reads every selected tunnel's Cloudflare status from the tunnel list (1,000 tunnels per request) and logs
one line per unhealthy tunnel.

**When a tunnel is unhealthy** `check_tunnels` fails, naming each one and why. `alert` runs only then
(`trigger_rule="one_failed"`): it reads the report from XCom and logs a summary, the stand-in for Slack or
PagerDuty. `all_healthy` needs the check's result, so it shows as **upstream_failed**: that is expected, and the
failed run is what makes the outage visible in the UI.

**What it checks** comes from the params (Trigger DAG w/ config), whose defaults come from the environment of
the DAG processor, first match wins:

| variable | meaning |
|---|---|
| `CFTUNNEL_TUNNEL_IDS` | tunnel UUIDs separated by commas: check exactly these |
| `CFTUNNEL_NAME_PREFIX` | e.g. `prod-web-`: every tunnel whose name starts with it |
| `CFTUNNEL_TUNNEL_ID` | one tunnel UUID (the deploy gate's variable), used when neither of the above is set |
| none of them | every tunnel of the account |
| `CFTUNNEL_ACCOUNT_ID` | the account; unset means the connection's `extra.account_id` |
| `CFTUNNEL_MIN_CONNECTIONS` | live connections each tunnel needs (default 1; above 1 costs a request per tunnel) |

The connection is `cloudflare_default`. Parsing this file needs no connection and makes no request.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_cftunnel.operators.health import CloudflareTunnelHealthOperator

#: What the tasks say lands in the task log (``print`` would end in the collapsed "Post Execute" group).
log = logging.getLogger("airflow.task")

UUID = "[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
#: One UUID or more, separated by commas or spaces: an empty or blank value is refused (leave the field empty).
UUID_LIST = rf"^\s*{UUID}([ ,]+{UUID})*[ ,]*$"


def selection_from_env() -> dict[str, str | None]:
    """
    Choose the default tunnels from the environment, first match wins.

    ``CFTUNNEL_TUNNEL_IDS``, else ``CFTUNNEL_NAME_PREFIX``, else ``CFTUNNEL_TUNNEL_ID``, else every tunnel. Only
    one of ``tunnel_ids`` and ``name_prefix`` is ever set, so no mix of variables makes the check fail with
    "Give tunnel_ids or name_prefix, not both".
    """
    ids = (os.environ.get("CFTUNNEL_TUNNEL_IDS") or "").strip()
    prefix = os.environ.get("CFTUNNEL_NAME_PREFIX") or ""
    single = (os.environ.get("CFTUNNEL_TUNNEL_ID") or "").strip()
    if ids:
        return {"tunnel_ids": ids, "name_prefix": None}
    if prefix:
        return {"tunnel_ids": None, "name_prefix": prefix}
    return {"tunnel_ids": single or None, "name_prefix": None}


SELECTION = selection_from_env()

with DAG(
    dag_id="example_cftunnel_health_check",
    description="Every 15 minutes, check that Cloudflare Tunnels are healthy; alert with a readable summary if not",
    doc_md=__doc__,
    schedule=timedelta(minutes=15),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "tunnel_ids": Param(
            SELECTION["tunnel_ids"],
            type=["null", "string"],
            minLength=36,
            pattern=UUID_LIST,
            title="Tunnel ids",
            description="Tunnel UUIDs separated by commas. Leave empty to select by name prefix (or every tunnel).",
        ),
        "name_prefix": Param(
            SELECTION["name_prefix"],
            type=["null", "string"],
            minLength=1,
            title="Tunnel name prefix",
            description="Check every tunnel whose name starts with this, e.g. prod-web-. Leave empty when "
            "tunnel ids are given; both empty: every tunnel of the account.",
        ),
        "account_id": Param(
            os.environ.get("CFTUNNEL_ACCOUNT_ID") or None,
            type=["null", "string"],
            minLength=32,
            maxLength=32,
            pattern="^[0-9a-fA-F]{32}$",
            title="Account ID",
            description="32 hex characters, from the dashboard URL. Leave empty for the connection's Account ID.",
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
            log.error("%s", message)
            return message
        lines = [f"ALERT: {len(report['unhealthy'])} of {report['checked']} Cloudflare Tunnel(s) unhealthy"]
        for tunnel in report["tunnels"]:
            if not tunnel["healthy"]:
                name = tunnel["name"] or "(unknown)"
                lines.append(f"  - {name} ({tunnel['id']}): {'; '.join(tunnel['reasons'])}")
        for line in lines:  # one log line each: the UI shows every tunnel on its own line
            log.warning("%s", line)
        return "\n".join(lines)

    @task
    def all_healthy(report: dict) -> None:
        """Runs only when every tunnel is healthy."""
        log.info("All %d Cloudflare Tunnel(s) healthy.", report["checked"])

    check_tunnels >> alert()
    all_healthy(check_tunnels.output)
