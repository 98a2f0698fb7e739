"""
Deploy gate: wait until a Cloudflare Tunnel serves traffic, deploy, then record which connector served.

By default the gate opens as soon as any connector of the tunnel has ``CFTUNNEL_MIN_CONNECTIONS`` (default 2) live
connections: on a tunnel that is already up, at once. Turn on the ``rollout`` param when the run also rolls out
``cloudflared``: the gate then waits for the NEW connector (the one cloudflared's ``/ready`` names when
``ready_url`` is set, from ``CFTUNNEL_READY_URL``; else one started after this run began) to hold for
``stable_for`` seconds (``CFTUNNEL_STABLE_FOR``, default 30). Parsing this file needs no connection and makes no
request. docs/gate.md says which mode to use when.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_cftunnel.operators.tunnel import CloudflareTunnelConnectorOperator
from airflow_provider_cftunnel.sensors.tunnel import CloudflareTunnelConnectorSensor

UUID = "^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
log = logging.getLogger(__name__)

DOC_MD = """
### Deploy gate on a Cloudflare Tunnel

`wait_for_tunnel` waits, deferred (no worker slot held), until the tunnel has a connector with enough live
connections; `deploy` runs only then and gets that connector; `record_serving_connector` reads it back.

* **rollout off** (default): any connector counts, so a tunnel already up opens the gate at once.
* **rollout on**: only the new `cloudflared` counts. With **ready_url** (its metrics server's `/ready`, e.g.
  `http://cloudflared:20241/ready` for `cloudflared tunnel --metrics 0.0.0.0:20241 run`), the connector it
  names, once the API shows it live too. Without, a connector started after this run began. Either way it
  must hold for **stable_for** seconds on every poll (a flap starts the count again).

A timeout says why the gate stayed shut (the last check's reason). See docs/gate.md.
"""

with DAG(
    dag_id="example_cftunnel_deploy_gate",
    description="Gate a deploy on a Cloudflare Tunnel serving traffic (optionally on a new cloudflared)",
    doc_md=DOC_MD,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "tunnel_id": Param(
            os.environ.get("CFTUNNEL_TUNNEL_ID") or None,
            type=["null", "string"],
            pattern=UUID,
            title="Tunnel id",
            description="The tunnel's UUID (Zero Trust > Networks > Tunnels).",
        ),
        "account_id": Param(
            os.environ.get("CFTUNNEL_ACCOUNT_ID") or None,
            type=["null", "string"],
            pattern="^[0-9a-fA-F]{32}$",
            title="Account id",
            description="Empty: the connection's extra.account_id.",
        ),
        "rollout": Param(
            False,
            type="boolean",
            title="Wait for a new cloudflared",
            description="Off: open as soon as the tunnel serves. On: wait for the connector of a cloudflared "
            "rollout (ready_url's, else one started after this run began), held for stable_for seconds.",
        ),
        "ready_url": Param(
            os.environ.get("CFTUNNEL_READY_URL") or None,
            type=["null", "string"],
            pattern="^https?://",
            title="cloudflared /ready URL",
            description="Rollout only: the new cloudflared's metrics /ready, e.g. http://cloudflared:20241/ready "
            "(cloudflared --metrics 0.0.0.0:20241). Empty: wait for a connector started after this run began.",
        ),
        "stable_for": Param(
            int(os.environ.get("CFTUNNEL_STABLE_FOR", "30")),
            type="integer",
            minimum=0,
            title="Stable for (seconds)",
            description="Rollout only: how long the new connector must stay ready on every poll.",
        ),
    },
    render_template_as_native_obj=True,
    tags=["cloudflare", "example"],
) as dag:
    wait_for_tunnel = CloudflareTunnelConnectorSensor(
        task_id="wait_for_tunnel",
        tunnel_id="{{ params.tunnel_id }}",
        account_id="{{ params.account_id }}",
        min_connections=int(os.environ.get("CFTUNNEL_MIN_CONNECTIONS", "2")),
        ready_url="{{ params.ready_url if params.rollout and params.ready_url else '' }}",
        started_after="{{ dag_run.start_date if params.rollout and not params.ready_url else '' }}",
        stable_for="{{ params.stable_for if params.rollout else 0 }}",
        deferrable=True,
        poke_interval=int(os.environ.get("CFTUNNEL_POKE_INTERVAL", "5")),
        timeout=int(os.environ.get("CFTUNNEL_GATE_TIMEOUT", "600")),
    )

    @task
    def deploy(connector: dict) -> str:
        """Stand-in for the real deploy: runs only once the tunnel serves traffic."""
        live = [c for c in connector.get("conns") or [] if c.get("is_pending_reconnect") is False]
        colos = sorted({c.get("colo_name") for c in live if c.get("colo_name")})
        log.info("Gate open: connector %s has %d live connection(s) via %s", connector.get("id"), len(live), colos)
        log.info("Deploying...")
        return str(connector.get("id"))

    record_serving_connector = CloudflareTunnelConnectorOperator(
        task_id="record_serving_connector",
        tunnel_id="{{ params.tunnel_id }}",
        connector_id="{{ ti.xcom_pull(task_ids='deploy') }}",
        account_id="{{ params.account_id }}",
    )

    deploy(wait_for_tunnel.output) >> record_serving_connector
