"""
### React to Cloudflare Tunnel health the moment it changes (Airflow 3.0+)

An asset watched by the tunnel health trigger, and a DAG that runs on each **change** of a tunnel's health. A
scheduled check (`example_cftunnel_health_check`) learns of an outage up to one schedule interval late and runs
even when nothing happened. Here the triggerer polls the selected tunnels every `CFTUNNEL_HEALTH_POLL_INTERVAL`
seconds (default 60; one tunnel list request per 1,000 tunnels) and turns each change of a tunnel's health into
an asset event: this DAG runs once when a tunnel goes down and once when it recovers, and never while nothing
changes. The first poll is the baseline and fires nothing (the triggerer's log says what it watches and the
baseline). On Airflow 3.3+ the last seen health is kept in the asset's state store, so a triggerer restart
neither repeats nor misses a change. **The watcher runs only while this DAG is unpaused.**

`react_to_health_change` logs one line per change, e.g.
`FAILOVER: tunnel prod-web-2 (id) went healthy -> down (status is down (needs healthy))`: the stand-in for a
failover or a page. It reads each event's payload (`event.extra["payload"]`: `tunnel_id`, `tunnel_name`,
`status`, `previous_status`, `healthy`, `previous_healthy`, `reasons`...).

**What it watches** is read from the environment of the DAG processor, with the same precedence as the
health check's defaults, so both look at the same tunnels:

| variable | meaning |
|---|---|
| `CFTUNNEL_TUNNEL_IDS` | tunnel UUIDs separated by commas: watch exactly these |
| `CFTUNNEL_NAME_PREFIX` | e.g. `prod-web-`: every tunnel whose name starts with it |
| `CFTUNNEL_TUNNEL_ID` | one tunnel UUID, used when neither of the above is set |
| none of them | every tunnel of the account |
| `CFTUNNEL_ACCOUNT_ID` | the account; unset means the connection's `extra.account_id` |
| `CFTUNNEL_HEALTH_POLL_INTERVAL` | seconds between polls (default 60) |

Parsing this file needs no connection and makes no request (the trigger only keeps its arguments until the
triggerer runs it); a malformed tunnel id fails the parse, so it shows as an import error. Airflow 2.11 has no
asset watchers: there this file defines no DAG (it imports cleanly and is skipped); use the scheduled
`example_cftunnel_health_check` instead.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

try:  # Airflow 3.0+
    from airflow.sdk import Asset, AssetWatcher
except ImportError:  # Airflow 2.x: no asset watchers, so no DAG in this file
    AssetWatcher = None

#: What the task says lands in the task log (``print`` would end in the collapsed "Post Execute" group).
log = logging.getLogger("airflow.task")

DAG_ID = "example_cftunnel_on_health_change"
#: The asset whose events are the health changes.
ASSET_NAME = "cftunnel_tunnel_health"


def selection_from_env() -> dict[str, object]:
    """
    Choose the tunnels to watch from the environment, first match wins.

    ``CFTUNNEL_TUNNEL_IDS``, else ``CFTUNNEL_NAME_PREFIX``, else ``CFTUNNEL_TUNNEL_ID``, else every tunnel (the
    health check's precedence, so both look at the same tunnels). A malformed id fails the parse, so it shows
    as an import error.
    """
    from airflow_provider_cftunnel.health import parse_tunnel_ids

    ids = (os.environ.get("CFTUNNEL_TUNNEL_IDS") or "").strip()
    prefix = os.environ.get("CFTUNNEL_NAME_PREFIX") or None
    if not ids and not prefix:
        ids = (os.environ.get("CFTUNNEL_TUNNEL_ID") or "").strip()
    return {
        "tunnel_ids": parse_tunnel_ids(ids) if ids else None,
        "name_prefix": None if ids else prefix,
        "account_id": os.environ.get("CFTUNNEL_ACCOUNT_ID") or None,
    }


def describe_change(payload: dict) -> str:
    """
    One line for one health change: ``FAILOVER: tunnel NAME (ID) went healthy -> down (reasons)``.

    ``FAILOVER`` when the tunnel became unhealthy, ``RECOVERED`` when it became healthy, ``CHANGED`` for a status
    change the rule judges the same both ways; ``APPEARED`` and ``GONE`` for a tunnel that entered or left the
    selection (created, deleted or renamed).

    :param payload: The event payload of the tunnel health trigger.
    """
    healthy, before = payload.get("healthy"), payload.get("previous_healthy")
    status, previous = payload.get("status"), payload.get("previous_status")
    label = f"tunnel {payload.get('tunnel_name') or '(unnamed)'} ({payload.get('tunnel_id')})"
    reasons = "; ".join(payload.get("reasons") or [])
    why = f" ({reasons})" if reasons else ""
    if payload.get("change") == "appeared":
        return f"APPEARED: {label} is {status or 'unknown'}{why}"
    if payload.get("change") == "disappeared":
        return f"GONE: {label} was {previous or 'unknown'}{why}"
    if before and not healthy:
        verb = "FAILOVER"
    elif healthy and not before:
        verb = "RECOVERED"
    else:
        verb = "CHANGED"
    return f"{verb}: {label} went {previous or 'unknown'} -> {status or 'unknown'}{why}"


if AssetWatcher is not None:
    from airflow_provider_cftunnel.triggers.health import CloudflareTunnelHealthTrigger

    tunnel_health = Asset(
        ASSET_NAME,
        watchers=[
            AssetWatcher(
                name="cftunnel_health_watcher",
                trigger=CloudflareTunnelHealthTrigger(
                    **selection_from_env(),
                    # "degraded" serves traffic with a failed connection: count it as a change by leaving it out
                    allowed_statuses=["healthy"],
                    poll_interval=float(os.environ.get("CFTUNNEL_HEALTH_POLL_INTERVAL", "60")),
                ),
            )
        ],
    )

    with DAG(
        dag_id=DAG_ID,
        description="Runs on each change of a Cloudflare Tunnel's health: fail over when down, all clear when healthy",
        doc_md=__doc__,
        schedule=[tunnel_health],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["cloudflare", "example"],
    ) as dag:

        @task
        def react_to_health_change(triggering_asset_events=None) -> list[str]:
            """One line per health change that triggered this run (send it to your failover or pager)."""
            lines = []
            for events in (triggering_asset_events or {}).values():
                for event in events:
                    payload = (event.extra or {}).get("payload")
                    if isinstance(payload, dict):
                        line = describe_change(payload)
                        log.info("%s", line)
                        lines.append(line)
            return lines

        react_to_health_change()
