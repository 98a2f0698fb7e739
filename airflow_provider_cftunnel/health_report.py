"""The report of a health check: the JSON report, the one-line summary and the table of unhealthy tunnels."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_cftunnel.rules import HealthRule, TunnelHealth

__all__ = ["MAX_NAMED_IN_MESSAGE", "describe_unhealthy", "describe_unhealthy_lines", "health_report"]

#: Unhealthy tunnels named one by one in a failure message; the rest are counted.
MAX_NAMED_IN_MESSAGE = 20


def health_report(
    verdicts: Sequence[TunnelHealth],
    *,
    rule: HealthRule,
    account_id: str,
    tunnel_ids: Sequence[str] | None = None,
    name_prefix: str | None = None,
    checked_at: datetime | None = None,
) -> dict[str, Any]:
    """
    Return the report of a health check, as plain JSON (safe for XCom; no secret in it).

    ``{"healthy", "checked", "healthy_count", "unhealthy": [ids], "tunnels": [verdicts], "rule", "selection",
    "connections_fetched", "checked_at"}``.

    :param verdicts: What :func:`~airflow_provider_cftunnel.health.check_tunnel_health` returned.
    :param rule: The rule it applied.
    :param account_id: The account checked.
    :param tunnel_ids: The explicit ids, if the selection was by id.
    :param name_prefix: The name prefix, if the selection was by prefix.
    :param checked_at: When the check ran (default: now).
    """
    unhealthy = [v.id for v in verdicts if not v.healthy]
    return {
        "healthy": not unhealthy,
        "checked": len(verdicts),
        "healthy_count": len(verdicts) - len(unhealthy),
        "unhealthy": unhealthy,
        "tunnels": [v.to_dict() for v in verdicts],
        "rule": {
            "allowed_statuses": list(rule.allowed_statuses),
            "min_live_connections": rule.min_live_connections,
            "min_colos": rule.min_colos,
        },
        "selection": {
            "account_id": account_id,
            "tunnel_ids": None if tunnel_ids is None else list(tunnel_ids),
            "name_prefix": name_prefix or None,
        },
        "connections_fetched": sum(1 for v in verdicts if v.connectors is not None),
        "checked_at": (checked_at or datetime.now(UTC)).isoformat(),
    }


def describe_unhealthy(verdicts: Iterable[TunnelHealth], limit: int = MAX_NAMED_IN_MESSAGE) -> str:
    """
    Summarize one check: ``2 of 40 tunnel(s) unhealthy: prod-web-3 (id): status is down (needs healthy); ...``.

    At most ``limit`` unhealthy tunnels are named.

    :param verdicts: The verdicts of one check.
    :param limit: How many unhealthy tunnels to name; the rest are counted.
    """
    verdicts = list(verdicts)
    bad = [v for v in verdicts if not v.healthy]
    if not bad:
        return f"all {len(verdicts)} tunnel(s) healthy"
    named = "; ".join(f"{v.label}: {', '.join(v.reasons)}" for v in bad[:limit])
    more = f"; and {len(bad) - limit} more" if len(bad) > limit else ""
    return f"{len(bad)} of {len(verdicts)} tunnel(s) unhealthy: {named}{more}"


def describe_unhealthy_lines(verdicts: Iterable[TunnelHealth], limit: int = MAX_NAMED_IN_MESSAGE) -> list[str]:
    """
    Describe the unhealthy tunnels as a table, one line per tunnel (a log line each, which a log view never cuts).

    For example::

        NAME        ID                                    STATUS  LIVE  WHY
        prod-web-2  c1744f8b-faa1-48a4-9e5c-02ac921467fa  down    -     status is down (needs healthy)

    At most ``limit`` rows, then ``... and N more``; no line at all when every tunnel is healthy.

    :param verdicts: The verdicts of one check.
    :param limit: How many unhealthy tunnels to list; the rest are counted.
    """
    bad = [v for v in verdicts if not v.healthy]
    if not bad:
        return []
    rows = [("NAME", "ID", "STATUS", "LIVE", "WHY")]
    for v in bad[:limit]:
        live = "-" if v.live_connections is None else str(v.live_connections)
        rows.append((v.name or "(unknown)", v.id, v.status or "-", live, "; ".join(v.reasons)))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[4]]) for row in rows
    ]
    if len(bad) > limit:
        lines.append(f"... and {len(bad) - limit} more unhealthy tunnel(s) (all of them in the report's XCom)")
    return lines
