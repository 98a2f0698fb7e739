"""
Scheduled health check of a Cloudflare Tunnel connector, every 15 minutes.

Fetches the connector and fails, with a message saying how many connections are live and where, when
fewer than ``min_live_connections`` serve traffic. Ids come from the DAG params, whose defaults come from
the environment (``CFTUNNEL_TUNNEL_ID``, ``CFTUNNEL_CONNECTOR_ID``, ``CFTUNNEL_ACCOUNT_ID``). Parsing this
file needs no connection and makes no request.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, AirflowFailException, Param, task

from airflow_provider_cftunnel.operators.tunnel import CloudflareTunnelConnectorOperator

with DAG(
    dag_id="example_cftunnel_health_check",
    description="Check every 15 minutes that a Cloudflare Tunnel connector has enough live connections",
    schedule=timedelta(minutes=15),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "tunnel_id": Param(os.environ.get("CFTUNNEL_TUNNEL_ID", ""), type="string", description="Tunnel UUID"),
        "connector_id": Param(os.environ.get("CFTUNNEL_CONNECTOR_ID", ""), type="string", description="Connector UUID"),
        "account_id": Param(
            os.environ.get("CFTUNNEL_ACCOUNT_ID", ""),
            type="string",
            description="Account id; empty for the connection's default",
        ),
        "min_live_connections": Param(int(os.environ.get("CFTUNNEL_MIN_CONNECTIONS", "2")), type="integer", minimum=1),
    },
    tags=["cloudflare", "example"],
) as dag:
    fetch_connector = CloudflareTunnelConnectorOperator(
        task_id="fetch_connector",
        tunnel_id="{{ params.tunnel_id }}",
        connector_id="{{ params.connector_id }}",
        account_id="{{ params.account_id }}",
    )

    @task
    def check_live_connections(connector: dict, params: dict | None = None) -> dict[str, Any]:
        """Fail when fewer connections than the threshold serve traffic; else return a summary."""
        from airflow_provider_cftunnel.models import TunnelConnector

        threshold = int((params or {}).get("min_live_connections", 1))
        parsed = TunnelConnector.from_dict(connector)
        live = len(parsed.active_connections)
        summary = {
            "connector_id": parsed.id,
            "live_connections": live,
            "pending_connections": len(parsed.conns) - live,
            "colos": parsed.colos,
            "threshold": threshold,
            "healthy": live >= threshold,
        }
        print(f"Tunnel health: {summary}")
        if live < threshold:
            raise AirflowFailException(
                f"Connector {parsed.id} has {live} live connection(s) ({len(parsed.conns) - live} pending "
                f"reconnect), below the threshold of {threshold}."
            )
        return summary

    check_live_connections(fetch_connector.output)
