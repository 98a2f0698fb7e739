"""A tunnel health watcher and the DAG it runs, for the cluster scenario (``tests/cluster/story.py``).

The asset ``cftunnel-cluster-health`` carries an ``AssetWatcher`` whose trigger,
:class:`~airflow_provider_cftunnel.triggers.health.CloudflareTunnelHealthTrigger`, polls the health of the
tunnels named ``CFTUNNEL_CLUSTER_PLAN["watch"]["name_prefix"]``* and yields one event per change of a tunnel's
health. The DAG ``cftunnel_cluster_react`` is scheduled on that asset: each run returns (XCom) the payloads of
the events that triggered it, so the scenario can check that every change fired once and was handled once.

Without a ``watch`` entry in ``CFTUNNEL_CLUSTER_PLAN`` the file defines no DAG (nothing is watched).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_cftunnel.triggers.health import CloudflareTunnelHealthTrigger

DAG_ID = "cftunnel_cluster_react"
ASSET_NAME = "cftunnel-cluster-health"

watch: dict[str, Any] | None = json.loads(os.environ.get("CFTUNNEL_CLUSTER_PLAN") or "{}").get("watch")

if watch:
    health = Asset(
        ASSET_NAME,
        watchers=[
            AssetWatcher(
                name="cluster_tunnel_health",
                trigger=CloudflareTunnelHealthTrigger(
                    name_prefix=watch["name_prefix"], poll_interval=float(watch.get("poll_interval", 5))
                ),
            )
        ],
    )

    with DAG(
        dag_id=DAG_ID,
        description="Runs once per batch of tunnel health changes seen by the watcher",
        schedule=[health],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["cloudflare", "test"],
    ):

        @task
        def record_changes(triggering_asset_events: Any = None) -> list[Any]:
            """Return the payload of every asset event that triggered this run."""
            payloads = []
            for events in (triggering_asset_events or {}).values():
                for event in events:
                    payload = (event.extra or {}).get("payload")
                    print(f"Tunnel health change: {json.dumps(payload, sort_keys=True)}")
                    payloads.append(payload)
            return payloads

        record_changes()
