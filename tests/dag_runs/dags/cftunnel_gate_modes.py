"""Test DAG: the deploy gate with ready_url and stable_for in each mode (poke, reschedule, deferrable).

Each sensor watches its own tunnel (ids and /ready URLs from the environment), so each meets its own rolling
restart.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_cftunnel.sensors.tunnel import CloudflareTunnelConnectorSensor

with DAG(dag_id="cftunnel_gate_modes", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    for mode in ("poke", "reschedule", "deferrable"):
        CloudflareTunnelConnectorSensor(
            task_id=mode,
            tunnel_id=os.environ.get(f"CFTUNNEL_TUNNEL_{mode.upper()}", ""),
            ready_url=os.environ.get(f"CFTUNNEL_READY_{mode.upper()}", ""),
            stable_for=float(os.environ.get("CFTUNNEL_STABLE_FOR", "3")),
            min_connections=2,
            mode="poke" if mode == "deferrable" else mode,
            deferrable=mode == "deferrable",
            poke_interval=1,
            timeout=120,
        )
