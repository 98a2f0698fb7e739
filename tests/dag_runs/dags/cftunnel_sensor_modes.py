"""Test DAG: the sensor in reschedule mode, and in poke mode timing out with soft_fail (ids from env)."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_cftunnel.sensors.tunnel import CloudflareTunnelConnectorSensor

with DAG(dag_id="cftunnel_sensor_modes", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    CloudflareTunnelConnectorSensor(
        task_id="rescheduled",
        tunnel_id=os.environ.get("CFTUNNEL_TUNNEL_ID", ""),
        min_connections=4,
        mode="reschedule",
        poke_interval=1,
        timeout=120,
    )
    CloudflareTunnelConnectorSensor(
        task_id="never_ready_soft_fail",
        tunnel_id=os.environ.get("CFTUNNEL_OTHER_TUNNEL_ID", ""),
        mode="poke",
        poke_interval=1,
        timeout=3,
        soft_fail=True,
    )
