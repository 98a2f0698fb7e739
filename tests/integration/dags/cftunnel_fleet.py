"""A fleet of deferrable sensors: one per connector of ONE tunnel (used by ``tests/integration/test_triggerer.py``).

Everything comes from the environment the test sets, so parsing makes no request:

* ``CFTUNNEL_FLEET_CONNECTORS``: a JSON list of connector UUIDs (one sensor each);
* ``CFTUNNEL_FLEET_TUNNEL_ID``: the tunnel they belong to;
* ``CFTUNNEL_FLEET_POKE_INTERVAL`` and ``CFTUNNEL_FLEET_TIMEOUT``: seconds.

Without ``CFTUNNEL_FLEET_CONNECTORS`` the DAG has no task (and never runs by itself: ``schedule=None``).
"""

from __future__ import annotations

import json
import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_cftunnel.sensors.tunnel import CloudflareTunnelConnectorSensor

DAG_ID = "cftunnel_fleet"

connector_ids: list[str] = json.loads(os.environ.get("CFTUNNEL_FLEET_CONNECTORS") or "[]")

with DAG(
    dag_id=DAG_ID,
    description="Deferrable sensors on every connector of one tunnel, sharing one poller in the triggerer",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=max(1, len(connector_ids)),
    tags=["cloudflare", "test"],
):
    for index, connector_id in enumerate(connector_ids):
        CloudflareTunnelConnectorSensor(
            task_id=f"wait_connector_{index:02d}",
            tunnel_id=os.environ.get("CFTUNNEL_FLEET_TUNNEL_ID", ""),
            connector_id=connector_id,
            min_connections=int(os.environ.get("CFTUNNEL_FLEET_MIN_CONNECTIONS", "1")),
            poke_interval=float(os.environ.get("CFTUNNEL_FLEET_POKE_INTERVAL", "5")),
            timeout=float(os.environ.get("CFTUNNEL_FLEET_TIMEOUT", "240")),
            deferrable=True,
            retries=0,
        )
