"""
Deploy gate: wait until a Cloudflare Tunnel serves traffic, deploy, then record which connector served.

The sensor waits (deferred, so no worker slot is held) until a connector of the tunnel that started during
this run has at least ``CFTUNNEL_MIN_CONNECTIONS`` (default 2) live connections; the deploy runs only then.
``started_after`` matters in a rolling restart: the old ``cloudflared`` stays live for a while and must not
open the gate. Ids come from the DAG params, whose defaults come from the environment (``CFTUNNEL_TUNNEL_ID``,
``CFTUNNEL_ACCOUNT_ID``); an empty account id means the connection's ``extra.account_id``. Parsing this file
needs no connection and makes no request.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_cftunnel.operators.tunnel import CloudflareTunnelConnectorOperator
from airflow_provider_cftunnel.sensors.tunnel import CloudflareTunnelConnectorSensor

UUID = "^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"

with DAG(
    dag_id="example_cftunnel_deploy_gate",
    description="Gate a deploy on a Cloudflare Tunnel having live connections",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "tunnel_id": Param(
            os.environ.get("CFTUNNEL_TUNNEL_ID") or None,
            type=["null", "string"],
            pattern=UUID,
            description="Tunnel UUID",
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
    wait_for_tunnel = CloudflareTunnelConnectorSensor(
        task_id="wait_for_tunnel",
        tunnel_id="{{ params.tunnel_id }}",
        account_id="{{ params.account_id }}",
        min_connections=int(os.environ.get("CFTUNNEL_MIN_CONNECTIONS", "2")),
        # only a cloudflared started during this run counts (e.g. after the rollout task that restarts it)
        started_after="{{ dag_run.start_date }}",
        deferrable=True,
        poke_interval=int(os.environ.get("CFTUNNEL_POKE_INTERVAL", "5")),
        timeout=int(os.environ.get("CFTUNNEL_GATE_TIMEOUT", "600")),
    )

    @task
    def deploy(connector: dict) -> str:
        """Stand-in for the real deploy: runs only once the tunnel serves traffic."""
        live = [c for c in connector.get("conns") or [] if c.get("is_pending_reconnect") is False]
        colos = sorted({c.get("colo_name") for c in live if c.get("colo_name")})
        print(f"Gate open: connector {connector.get('id')} has {len(live)} live connection(s) via {colos}")
        print("Deploying...")
        return str(connector.get("id"))

    record_serving_connector = CloudflareTunnelConnectorOperator(
        task_id="record_serving_connector",
        tunnel_id="{{ params.tunnel_id }}",
        connector_id="{{ ti.xcom_pull(task_ids='deploy') }}",
        account_id="{{ params.account_id }}",
    )

    deploy(wait_for_tunnel.output) >> record_serving_connector
