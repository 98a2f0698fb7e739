"""Test DAG: a deploy gate that never opens (its /ready answers 503) times out in each mode, saying why."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_cftunnel.sensors.tunnel import CloudflareTunnelConnectorSensor

with DAG(dag_id="cftunnel_gate_timeouts", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    for mode in ("poke", "reschedule", "deferrable"):
        CloudflareTunnelConnectorSensor(
            task_id=mode,
            tunnel_id=os.environ.get("CFTUNNEL_TUNNEL_ID", ""),
            ready_url=os.environ.get(f"CFTUNNEL_READY_{mode.upper()}", ""),
            mode="poke" if mode == "deferrable" else mode,
            deferrable=mode == "deferrable",
            poke_interval=1,
            timeout=4,
            retries=0,
        )
