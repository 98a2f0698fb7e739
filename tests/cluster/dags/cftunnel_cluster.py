"""Deferrable sensors over many tunnels, for the cluster scenario (``tests/cluster/story.py``).

Everything comes from ``CFTUNNEL_CLUSTER_PLAN`` (JSON, set by the harness), so parsing makes no request::

    {"tunnels": [{"id": "<tunnel uuid>", "connectors": ["<connector uuid>", ...]}, ...],
     "poke_interval": 5, "timeout": 600, "queue": null}

One ``CloudflareTunnelConnectorSensor(deferrable=True)`` per connector, task id
``tunnel_TT_connector_CC``; ``queue`` (e.g. ``"cloudflare"``) routes them to a Celery queue and, with
``[triggerer] queues_enabled``, their triggers to the triggerers started with ``--queues`` for it. Without the
variable the DAG has no task (and never runs by itself: ``schedule=None``).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_cftunnel.sensors.tunnel import CloudflareTunnelConnectorSensor

DAG_ID = "cftunnel_cluster"

plan: dict[str, Any] = json.loads(os.environ.get("CFTUNNEL_CLUSTER_PLAN") or "{}")
tunnels: list[dict[str, Any]] = plan.get("tunnels", [])
queue: dict[str, Any] = {"queue": plan["queue"]} if plan.get("queue") else {}
size = sum(len(tunnel["connectors"]) for tunnel in tunnels)

with DAG(
    dag_id=DAG_ID,
    description="Deferrable sensors on many tunnels, spread over several triggerers and Celery workers",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=max(1, size),
    tags=["cloudflare", "test"],
):
    for t, tunnel in enumerate(tunnels):
        for c, connector_id in enumerate(tunnel["connectors"]):
            CloudflareTunnelConnectorSensor(
                task_id=f"tunnel_{t:02d}_connector_{c:02d}",
                tunnel_id=tunnel["id"],
                connector_id=connector_id,
                poke_interval=float(plan.get("poke_interval", 5)),
                timeout=float(plan.get("timeout", 600)),
                deferrable=True,
                retries=0,
                **queue,
            )
