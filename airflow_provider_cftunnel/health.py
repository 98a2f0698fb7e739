"""Tunnel and fleet health checks: which tunnels to read, at what cost, and the report.

Cloudflare keeps each tunnel's health in its ``status`` (``healthy``, ``degraded``, ``down``, ``inactive``), and
the tunnel list endpoint answers for up to 1,000 tunnels in one request, with filters applied by Cloudflare. So a
fleet check costs one request per 1,000 selected tunnels, plus one ``connections`` request for each tunnel whose
verdict depends on its connectors, which :meth:`~airflow_provider_cftunnel.rules.HealthRule.needs_connectors`
decides (never with the default rule). Checking 1,500 tunnels with the default rule costs 2 requests.

The health operator (scheduled checks) and the health event trigger (changes as they happen) both call
:func:`check_tunnel_health`; the verdict on each tunnel is the one rule in
:class:`~airflow_provider_cftunnel.rules.HealthRule`. Importing this module loads no HTTP library.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_cftunnel.exceptions import CloudflareConfigError, CloudflareNotFoundError
from airflow_provider_cftunnel.models import Tunnel, show_value, validate_uuid
from airflow_provider_cftunnel.rules import HealthRule, TunnelHealth

if TYPE_CHECKING:
    from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook
    from airflow_provider_cftunnel.models import TunnelConnector

__all__ = [
    "LIST_PAGE_SIZE",
    "MAX_IDS_FETCHED_ONE_BY_ONE",
    "check_tunnel_health",
    "describe_unhealthy",
    "describe_unhealthy_lines",
    "health_report",
    "parse_tunnel_ids",
]

log = logging.getLogger(__name__)

#: Tunnels per list request: Cloudflare's largest page.
LIST_PAGE_SIZE = 1000
#: Up to this many explicit tunnel ids are read one by one (one request each); more are read from the list.
MAX_IDS_FETCHED_ONE_BY_ONE = 2
#: Above this many ``connections`` requests in one check, a warning says what it costs.
MANY_CONNECTIONS_REQUESTS = 100
#: Unhealthy tunnels named one by one in a failure message; the rest are counted.
MAX_NAMED_IN_MESSAGE = 20
_NO_ROUTE_CODES = frozenset({7000, 7003})


def parse_tunnel_ids(value: Any) -> list[str] | None:
    """
    Read a ``tunnel_ids`` argument: a list of UUIDs, or a string (a rendered template, an environment variable)
    holding a JSON list or ids separated by commas or spaces. ``None`` means "not by id".

    :param value: What the task was given.
    :return: The ids, validated and lower-cased, without repeats, in order.
    :raises CloudflareConfigError: On a malformed id, an empty selection, or another type.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise CloudflareConfigError(f"Invalid tunnel_ids {show_value(value)}: not a JSON list") from None
        else:
            value = [part for part in text.replace(",", " ").split() if part]
    if not isinstance(value, Iterable) or isinstance(value, dict | bytes):
        raise CloudflareConfigError(f"Invalid tunnel_ids {show_value(value)}: expected a list of tunnel UUIDs")
    ids = list(dict.fromkeys(validate_uuid(item, "tunnel id in tunnel_ids") for item in value))
    if not ids:
        raise CloudflareConfigError(
            "tunnel_ids is empty: give at least one tunnel UUID, or leave it None to select by name_prefix "
            "or to check every tunnel of the account."
        )
    return ids


def check_tunnel_health(
    hook: CloudflareHook,
    *,
    account_id: str | None = None,
    tunnel_ids: Sequence[str] | None = None,
    name_prefix: str | None = None,
    rule: HealthRule | None = None,
    max_workers: int = 4,
    before_request: Callable[[], None] | None = None,
) -> list[TunnelHealth]:
    """
    The verdict on each selected tunnel, fetched at the least cost.

    Selection: ``tunnel_ids``, or the tunnels whose name starts with ``name_prefix``, or (neither) every tunnel of
    the account; deleted tunnels never count (an explicit id of a deleted or unknown tunnel gets an unhealthy
    verdict with the reason). Cost: the list endpoint (``per_page=1000``, ``is_deleted=false`` and
    ``include_prefix`` passed to Cloudflare) reads every selected tunnel, one request per 1,000; up to
    :data:`MAX_IDS_FETCHED_ONE_BY_ONE` explicit ids are read one by one instead. Then the ``connections``
    endpoint is called only for the tunnels :meth:`HealthRule.needs_connectors` names, ``max_workers`` at a time.

    :param hook: The hook to call Cloudflare with (its retries apply to every request).
    :param account_id: The account; defaults to the connection's ``extra.account_id``.
    :param tunnel_ids: Tunnel UUIDs to check, or ``None``.
    :param name_prefix: Check the tunnels whose name starts with this, or ``None``.
    :param rule: The health rule (default: status ``healthy``, 1 live connection, 1 data centre).
    :param max_workers: Concurrent ``connections`` requests at most.
    :param before_request: Called (in the calling thread, or a worker thread) before each request, e.g. to wait
        for a request budget; once before the tunnel list, whatever its page count.
    :return: One verdict per selected tunnel: explicit ids in the order given, else in Cloudflare's order.
    :raises CloudflareAPIError: On bad credentials, a wrong account, a malformed id, or errors that outlived the
        hook's retries: they say nothing about the fleet's health.
    """
    rule = rule or HealthRule()
    ids = parse_tunnel_ids(tunnel_ids)
    if ids is not None and name_prefix:
        raise CloudflareConfigError("Give tunnel_ids or name_prefix, not both.")
    account = hook.account(account_id)
    wait = before_request or _no_wait
    tunnels, missing = _select(hook, account, ids, name_prefix or None, wait)
    need = [tunnel for tunnel in tunnels if rule.needs_connectors(tunnel)]
    if len(need) > MANY_CONNECTIONS_REQUESTS:
        log.warning(
            "This health check reads the connections of %d tunnel(s), one request each: Cloudflare allows 1,200 "
            "requests per 5 minutes per user. Narrow the selection (name_prefix) or keep min_live_connections "
            "and min_colos at 1 to check by status alone (one request per 1,000 tunnels).",
            len(need),
        )
    connectors: dict[str, list[TunnelConnector] | None] = {}
    if need:
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(need)))) as pool:
            for tunnel, fetched in zip(
                need, pool.map(lambda t: _connectors(hook, account, t, wait), need), strict=True
            ):
                connectors[tunnel.id or ""] = fetched
    verdicts: dict[str, TunnelHealth] = {}
    for tunnel in tunnels:
        key = (tunnel.id or "").lower()
        if tunnel.id in connectors and connectors[tunnel.id] is None:  # vanished between the two requests
            verdicts[key] = HealthRule.unknown(key)
        else:
            verdicts[key] = rule.evaluate(tunnel, connectors.get(tunnel.id or ""))
    for tunnel_id in missing:
        verdicts[tunnel_id] = HealthRule.unknown(tunnel_id)
    if ids is not None:
        return [verdicts[tunnel_id] for tunnel_id in ids]
    return list(verdicts.values())


def _no_wait() -> None:
    return None


def _select(
    hook: CloudflareHook, account: str, ids: list[str] | None, name_prefix: str | None, wait: Callable[[], None]
) -> tuple[list[Tunnel], list[str]]:
    """The selected tunnels that exist and are not deleted, and the explicit ids that are missing."""
    if ids is not None and len(ids) <= MAX_IDS_FETCHED_ONE_BY_ONE:
        found: list[Tunnel] = []
        missing: list[str] = []
        for tunnel_id in ids:
            wait()
            try:
                found.append(hook.get_tunnel(tunnel_id, account))
            except CloudflareNotFoundError as error:
                if _NO_ROUTE_CODES & set(error.codes):  # a wrong account, not a missing tunnel
                    raise
                missing.append(tunnel_id)
        return found, missing
    filters: dict[str, str | int | bool] = {"is_deleted": False, "per_page": LIST_PAGE_SIZE}
    if name_prefix:
        filters["include_prefix"] = name_prefix
    wait()
    listed = [
        tunnel
        for tunnel in hook.list_tunnels(account, **filters)
        # Cloudflare filters already; these checks hold even behind a proxy that drops the query
        if tunnel.deleted_at is None and (not name_prefix or (tunnel.name or "").startswith(name_prefix))
    ]
    if ids is None:
        return listed, []
    by_id = {(tunnel.id or "").lower(): tunnel for tunnel in listed}
    return [by_id[i] for i in ids if i in by_id], [i for i in ids if i not in by_id]


def _connectors(
    hook: CloudflareHook, account: str, tunnel: Tunnel, wait: Callable[[], None]
) -> list[TunnelConnector] | None:
    """A tunnel's connectors, or ``None`` when it no longer exists."""
    wait()
    try:
        return hook.list_tunnel_connectors(tunnel.id or "", account)
    except CloudflareNotFoundError as error:
        if _NO_ROUTE_CODES & set(error.codes):
            raise
        return None


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
    The report of a health check, as plain JSON (safe for XCom; no secret in it).

    ``{"healthy", "checked", "healthy_count", "unhealthy": [ids], "tunnels": [verdicts], "rule", "selection",
    "connections_fetched", "checked_at"}``.

    :param verdicts: What :func:`check_tunnel_health` returned.
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
    ``2 of 40 tunnels unhealthy: prod-web-3 (id): status is down (needs healthy); ...``, naming at most ``limit``.

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
