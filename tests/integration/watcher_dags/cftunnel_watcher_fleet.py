"""One asset per service, each watched by its own tunnel health trigger (Airflow 3.0+), and one reacting DAG.

How teams model a fleet: ``Asset("<name>-health", watchers=[AssetWatcher(trigger=CloudflareTunnelHealthTrigger(
tunnel_ids=["<id>"]))])`` per tunnel. The tunnels come from the JSON file ``CFTUNNEL_WATCHER_FLEET`` names
(``[[name, id], ...]``, written by the test or benchmark); ``CFTUNNEL_WATCHER_INTERVAL`` is every watcher's poll
interval; ``CFTUNNEL_WATCHER_TRIGGER`` (optional) another trigger class's dotted path, e.g. the benchmark's
unshared baseline. ``cftunnel_watcher_fleet_reaction`` runs once per asset event (any of the assets) and returns what
changed. Parsing reads the local file only.
"""

from __future__ import annotations

import importlib
import json
import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Asset, AssetAny, AssetWatcher, task

from airflow_provider_cftunnel.triggers.health import CloudflareTunnelHealthTrigger

DAG_ID = "cftunnel_watcher_fleet_reaction"
FLEET = json.loads(Path(os.environ["CFTUNNEL_WATCHER_FLEET"]).read_text(encoding="utf-8"))
INTERVAL = float(os.environ.get("CFTUNNEL_WATCHER_INTERVAL", "5"))
if path := os.environ.get("CFTUNNEL_WATCHER_TRIGGER"):
    module, _, name = path.rpartition(".")
    Trigger = getattr(importlib.import_module(module), name)
else:
    Trigger = CloudflareTunnelHealthTrigger

assets = [
    Asset(
        f"{name}-health",
        watchers=[
            AssetWatcher(
                name=f"{name}_health",
                trigger=Trigger(tunnel_ids=[tunnel_id], poll_interval=INTERVAL),
            )
        ],
    )
    for name, tunnel_id in FLEET
]

with DAG(
    dag_id=DAG_ID,
    schedule=AssetAny(*assets),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=64,
    tags=["cftunnel-test"],
):

    @task
    def react(triggering_asset_events=None) -> list[str]:
        """One line per health change that triggered this run."""
        lines = []
        for asset, events in (triggering_asset_events or {}).items():
            for event in events:
                payload = (event.extra or {}).get("payload") or {}
                lines.append(f"{asset.name}: {payload.get('tunnel_id')} -> {payload.get('status')}")
        print("\n".join(lines))
        return lines

    react()
