"""The words of the deploy gate's wait: what it waits for, and why no connector qualifies yet."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pendulum

if TYPE_CHECKING:
    from datetime import datetime

    from airflow_provider_cftunnel.models import TunnelConnector

__all__ = ["describe_connectors", "describe_need", "describe_wait"]


def _utc(moment: datetime) -> str:
    """Return ``moment`` as ``2026-12-07T14:02:11Z``."""
    return pendulum.instance(moment).in_timezone("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_connectors(connectors: list[TunnelConnector]) -> str:
    """
    Describe each connector as ``connector abc (started ...): 2 live, 2 pending (DFW, IAD)``, for waiting logs.

    :param connectors: A tunnel's connectors.
    """
    parts = []
    for c in connectors[:5]:
        live = c.active_connections
        colos = f" ({', '.join(c.colos)})" if c.colos else ""
        started = f" (started {_utc(c.run_at)})" if c.run_at is not None else ""
        parts.append(f"connector {c.id}{started}: {len(live)} live, {len(c.conns) - len(live)} pending{colos}")
    if len(connectors) > 5:
        parts.append(f"and {len(connectors) - 5} more")
    return "; ".join(parts)


def describe_need(min_connections: int, min_colos: int, started_after: datetime | None) -> str:
    """
    Say what the readiness rule waits for, e.g. ``a connector with 2 live connection(s) in 2 data centres``.

    :param min_connections: As for the sensor.
    :param min_colos: As for the sensor.
    :param started_after: As parsed, or ``None``.
    """
    need = f"a connector with {min_connections} live connection(s)"
    if min_colos > 1:
        need += f" in {min_colos} data centres"
    if started_after is not None:
        need += f", started at or after {_utc(started_after)}"
    return need


def describe_wait(
    connectors: list[TunnelConnector],
    *,
    connector_id: str | None,
    min_connections: int,
    min_colos: int = 1,
    started_after: datetime | None = None,
) -> str:
    """
    Say why no connector qualifies, e.g. ``2 connector(s) live, none started after 14:02:11Z; newest run_at ...``.

    :param connectors: The tunnel's connectors (or the one asked for).
    :param connector_id: The connector the task waits for, or ``None`` for any.
    :param min_connections: As for the sensor.
    :param min_colos: As for the sensor.
    :param started_after: As parsed, or ``None``.
    """
    if connector_id is not None:
        connectors = [c for c in connectors if (c.id or "").lower() == connector_id.lower()]
        if not connectors:
            return f"not ready: connector {connector_id} not registered yet"
    elif not connectors:
        return "not ready: no connector registered"
    need = describe_need(min_connections, min_colos, started_after)
    if started_after is not None and not any(c.run_at is not None and c.run_at >= started_after for c in connectors):
        live = sum(1 for c in connectors if c.active_connections)
        starts = [c.run_at for c in connectors if c.run_at is not None]
        newest = f"; newest run_at {_utc(max(starts))}" if starts else "; none reports run_at"
        return (
            f"not ready: {len(connectors)} connector(s) registered, {live} live, none started at or after "
            f"{_utc(started_after)}{newest}; waiting for {need}"
        )
    return f"not ready: {describe_connectors(connectors)}; waiting for {need}"
