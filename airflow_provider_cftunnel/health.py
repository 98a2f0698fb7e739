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
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_cftunnel.exceptions import (
    CloudflareAPIError,
    CloudflareAuthError,
    CloudflareConfigError,
    CloudflareNotFoundError,
)
from airflow_provider_cftunnel.health_plan import (
    LIST_PAGE_SIZE,
    ConnectionsRead,
    Demand,
    Reads,
    check_max_age,
    connection_reads,
    plan_reads,
)
from airflow_provider_cftunnel.models import Tunnel, show_value, validate_uuid
from airflow_provider_cftunnel.rules import HealthRule, TunnelHealth

if TYPE_CHECKING:
    from airflow_provider_cftunnel import models
    from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook
    from airflow_provider_cftunnel.models import TunnelConnector

__all__ = [
    "LIST_PAGE_SIZE",
    "PollMemory",
    "Snapshot",
    "check_tunnel_health",
    "describe_unhealthy",
    "describe_unhealthy_lines",
    "health_report",
    "make_demand",
    "not_visible",
    "parse_tunnel_ids",
    "poll_health",
]

log = logging.getLogger(__name__)

#: Above this many ``connections`` requests in one check, a warning says what it costs.
MANY_CONNECTIONS_REQUESTS = 100
#: Unhealthy tunnels named one by one in a failure message; the rest are counted.
MAX_NAMED_IN_MESSAGE = 20
_NO_ROUTE_CODES = frozenset({7000, 7003})
#: Codes of a 403 that refuse the credentials themselves, not one tunnel (a scoped token's refusal is 9109).
_CREDENTIAL_CODES = frozenset({1000, 6003, 6102, 6103, 6111, 9103, 9106, 10000, 10001})


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
    the account; deleted tunnels never count. Cost: the list endpoint (``per_page=1000``, ``is_deleted=false``
    and ``include_prefix`` passed to Cloudflare) reads every selected tunnel, one request per 1,000, unless
    reading explicit ids one by one costs fewer requests (:func:`~airflow_provider_cftunnel.health_plan.plan_reads`).
    An explicit id the list does not return is read by id once: a tunnel a scoped token may not read is reported
    ``not visible to this token (HTTP 403)``, an unknown one ``not visible to this token, or deleted (HTTP 404)``.
    Then the ``connections`` endpoint is called only for the tunnels :meth:`HealthRule.needs_connectors` names,
    ``max_workers`` at a time.

    :param hook: The hook to call Cloudflare with (its retries apply to every request).
    :param account_id: The account; defaults to the connection's ``extra.account_id``.
    :param tunnel_ids: Tunnel UUIDs to check, or ``None``.
    :param name_prefix: Check the tunnels whose name starts with this, or ``None``.
    :param rule: The health rule (default: status ``healthy``, 1 live connection, 1 data centre).
    :param max_workers: Concurrent ``connections`` requests at most.
    :param before_request: Called (in the calling thread, or a worker thread) before each request, e.g. to wait
        for a request budget; once before each tunnel list, whatever its page count.
    :return: One verdict per selected tunnel: explicit ids in the order given, else in Cloudflare's order.
    :raises CloudflareAPIError: On bad credentials, a wrong account, a malformed id, or errors that outlived the
        hook's retries: they say nothing about the fleet's health.
    """
    demand = make_demand(tunnel_ids, name_prefix, rule or HealthRule())
    account = hook.account(account_id)
    snapshot = poll_health(hook, account, [demand], max_workers=max_workers, before_request=before_request)
    verdicts = snapshot.verdicts(demand)
    if verdicts is None:  # pragma: no cover - a poll for one demand always covers it
        raise CloudflareAPIError("The health poll did not cover its own selection", transient=False)
    return verdicts


def make_demand(
    tunnel_ids: Any, name_prefix: str | None, rule: HealthRule, connections_max_age: float | None = None
) -> Demand:
    """
    A :class:`~airflow_provider_cftunnel.health_plan.Demand` from a task's or a watcher's arguments.

    :param tunnel_ids: As :func:`parse_tunnel_ids` reads them, or ``None``.
    :param name_prefix: A name prefix, or ``None``.
    :param rule: The health rule.
    :param connections_max_age: See :class:`~airflow_provider_cftunnel.health_plan.Demand`.
    :raises CloudflareConfigError: On malformed ids, or ids and a prefix together.
    """
    ids = parse_tunnel_ids(tunnel_ids)
    if ids is not None and name_prefix:
        raise CloudflareConfigError("Give tunnel_ids or name_prefix, not both.")
    return Demand(
        tunnel_ids=None if ids is None else tuple(ids),
        name_prefix=name_prefix or None,
        rule=rule,
        connections_max_age=check_max_age(connections_max_age),
    )


@dataclass
class PollMemory:
    """
    What a poller keeps from one poll to the next: the counts that price the next plan, each known tunnel's
    name, and each tunnel's last ``connections`` read (reused within its bound, see
    :func:`~airflow_provider_cftunnel.health_plan.connection_reads`).
    """

    account_size: int | None = None
    prefix_sizes: dict[str, int] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    reads: dict[str, ConnectionsRead] = field(default_factory=dict)
    connectors: dict[str, list[TunnelConnector] | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """
    One poll's answer for every demand it was made for: the tunnels read, the ids no read could see, and the
    connectors read (or reused) for the tunnels some rule needed them for.

    :param account_id: The account polled.
    :param observed_at: When the poll was made (ISO 8601).
    :param reads: What was read.
    :param tunnels: Every tunnel read, by lower-case id.
    :param listed: The ids the lists returned (not deleted), in Cloudflare's order.
    :param hidden: Explicit ids no read returned, with the HTTP status of their own read (403 or 404).
    :param connectors: Connectors by tunnel id (``None``: the tunnel vanished between two requests).
    :param connections_read: ``connections`` requests made by this poll (the rest were reused).
    """

    account_id: str
    observed_at: str
    reads: Reads
    tunnels: Mapping[str, models.Tunnel]  # qualified: the docs' cross-reference must find one Tunnel
    listed: tuple[str, ...]
    hidden: Mapping[str, int]
    connectors: Mapping[str, list[TunnelConnector] | None]
    connections_read: int = 0

    def covers(self, demand: Demand) -> bool:
        """Whether this poll read everything ``demand`` selects (a watcher that joined late waits for one)."""
        if demand.tunnel_ids is not None:
            return all(i in self.tunnels or i in self.hidden for i in demand.tunnel_ids)
        if self.reads.whole_account:
            return True
        return demand.name_prefix is not None and any(demand.name_prefix.startswith(p) for p in self.reads.prefixes)

    def selected(self, demand: Demand) -> list[str]:
        """The ids ``demand`` selects in this poll (explicit ids as given; else listed, in Cloudflare's order)."""
        if demand.tunnel_ids is not None:
            return list(demand.tunnel_ids)
        prefix = demand.name_prefix or ""
        return [i for i in self.listed if (self.tunnels[i].name or "").startswith(prefix)]

    def verdicts(self, demand: Demand) -> list[TunnelHealth] | None:
        """
        The verdict on each tunnel ``demand`` selects, by its own rule; ``None`` when this poll does not cover it.

        :param demand: One check's or watcher's selection and rule.
        """
        if not self.covers(demand):
            return None
        rule = demand.rule
        verdicts = []
        for tunnel_id in self.selected(demand):
            if tunnel_id in self.hidden:
                verdicts.append(not_visible(tunnel_id, self.hidden[tunnel_id]))
                continue
            tunnel = self.tunnels[tunnel_id]
            if tunnel.deleted_at is None and rule.needs_connectors(tunnel):
                if tunnel_id not in self.connectors:
                    return None  # read for a rule that joined after this poll was planned
                connectors = self.connectors[tunnel_id]
                if connectors is None:  # vanished between the two requests
                    verdicts.append(HealthRule.unknown(tunnel_id))
                    continue
                verdicts.append(rule.evaluate(tunnel, connectors))
            else:
                verdicts.append(rule.evaluate(tunnel))
        return verdicts


def not_visible(tunnel_id: str, status: int) -> TunnelHealth:
    """
    The verdict on an explicit id that no read returned: unhealthy, saying what the answer allows one to tell.
    A scoped token's list leaves out the tunnels it may not read, so absence alone never means "deleted".

    :param tunnel_id: The id.
    :param status: The HTTP status of its own read: 403 (the token may not read it) or 404 (hidden or deleted).
    """
    reason = (
        "not visible to this token (HTTP 403)"
        if status == 403
        else f"not visible to this token, or deleted (HTTP {status})"
    )
    return TunnelHealth(id=tunnel_id.lower(), name=None, status=None, healthy=False, reasons=(reason,))


def poll_health(
    hook: CloudflareHook,
    account: str,
    demands: Sequence[Demand],
    *,
    memory: PollMemory | None = None,
    max_workers: int = 4,
    before_request: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Snapshot:
    """
    Poll once for every demand: the reads :func:`~airflow_provider_cftunnel.health_plan.plan_reads` picks, one
    read by id of each explicit id they did not return, then the ``connections`` that
    :func:`~airflow_provider_cftunnel.health_plan.connection_reads` picks, ``max_workers`` at a time.

    :param hook: The hook to call Cloudflare with.
    :param account: The account id.
    :param demands: What each check or watcher selects.
    :param memory: What earlier polls learnt (updated in place); ``None`` for a one-off check.
    :param max_workers: Concurrent ``connections`` requests at most.
    :param before_request: Called before each request (e.g. to wait for a request budget).
    :param clock: The clock of ``connections`` read ages.
    :raises CloudflareAPIError: As the hook raises them (a 403 or 404 on a read by id is an answer, not an error).
    """
    memory = memory if memory is not None else PollMemory()
    wait = before_request or _no_wait
    reads = plan_reads(demands, account_size=memory.account_size, prefix_sizes=memory.prefix_sizes, names=memory.names)
    observed_at = datetime.now(UTC).isoformat()
    tunnels: dict[str, Tunnel] = {}
    listed: list[str] = []
    hidden: dict[str, int] = {}

    def keep(found: Iterable[Tunnel], prefix: str | None) -> None:
        for tunnel in found:
            # Cloudflare filters already; these checks hold even behind a proxy that drops the query
            if tunnel.deleted_at is not None or (prefix and not (tunnel.name or "").startswith(prefix)):
                continue
            key = (tunnel.id or "").lower()
            if key and key not in tunnels:
                tunnels[key] = tunnel
                listed.append(key)

    if reads.whole_account:
        wait()
        keep(hook.list_tunnels(account, is_deleted=False, per_page=LIST_PAGE_SIZE), None)
        memory.account_size = len(listed)
    for prefix in reads.prefixes:
        wait()
        before = len(listed)
        keep(hook.list_tunnels(account, is_deleted=False, per_page=LIST_PAGE_SIZE, include_prefix=prefix), prefix)
        memory.prefix_sizes[prefix] = len(listed) - before
    wanted = [i for d in demands for i in d.tunnel_ids or ()]
    for tunnel_id in dict.fromkeys([*reads.ids, *wanted]):
        if tunnel_id in tunnels or tunnel_id in hidden:
            continue
        wait()
        try:
            tunnels[tunnel_id] = hook.get_tunnel(tunnel_id, account)
        except CloudflareNotFoundError as error:
            if _NO_ROUTE_CODES & set(error.codes):  # a wrong account, not a missing tunnel
                raise
            hidden[tunnel_id] = 404
        except CloudflareAuthError as error:
            if error.status_code != 403 or _CREDENTIAL_CODES & set(error.codes):
                raise  # the credentials, not this tunnel
            hidden[tunnel_id] = 403
    for tunnel_id, tunnel in tunnels.items():
        if tunnel.name:
            memory.names[tunnel_id] = tunnel.name

    need: dict[str, tuple[tuple[str | None, str | None, str | None], float | None]] = {}
    snapshot = Snapshot(account, observed_at, reads, tunnels, tuple(listed), hidden, {})
    for demand in demands:
        if not snapshot.covers(demand):
            continue
        for tunnel_id in snapshot.selected(demand):
            selected = tunnels.get(tunnel_id)
            if selected is None or selected.deleted_at is not None or not demand.rule.needs_connectors(selected):
                continue
            age = demand.connections_max_age or 0.0
            _, known = need.get(tunnel_id, (None, age))
            need[tunnel_id] = (_fields(selected), min(age, known or 0.0))
    now = clock()
    to_read = connection_reads(need, memory.reads, now)
    if len(to_read) > MANY_CONNECTIONS_REQUESTS:
        log.warning(
            "This health check reads the connections of %d tunnel(s), one request each: Cloudflare allows 1,200 "
            "requests per 5 minutes per user. Narrow the selection (name_prefix), keep min_live_connections "
            "and min_colos at 1 to check by status alone (one request per 1,000 tunnels), or let watchers reuse "
            "a read (connections_max_age).",
            len(to_read),
        )
    if to_read:
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(to_read)))) as pool:
            fetched = pool.map(lambda i: _connectors(hook, account, i, wait), to_read)
            for tunnel_id, found in zip(to_read, fetched, strict=True):
                memory.connectors[tunnel_id] = found
                memory.reads[tunnel_id] = ConnectionsRead(now, need[tunnel_id][0])
    for tunnel_id in [i for i in memory.reads if i not in need]:  # no rule needs it now: read afresh next time
        del memory.reads[tunnel_id]
        memory.connectors.pop(tunnel_id, None)
    connectors = {i: memory.connectors[i] for i in need}
    return Snapshot(account, observed_at, reads, tunnels, tuple(listed), hidden, connectors, len(to_read))


def _fields(tunnel: Tunnel) -> tuple[str | None, str | None, str | None]:
    raw = tunnel.raw
    active, inactive = raw.get("conns_active_at"), raw.get("conns_inactive_at")
    return tunnel.status, None if active is None else str(active), None if inactive is None else str(inactive)


def _no_wait() -> None:
    return None


def _connectors(
    hook: CloudflareHook, account: str, tunnel_id: str, wait: Callable[[], None]
) -> list[TunnelConnector] | None:
    """A tunnel's connectors, or ``None`` when it no longer exists."""
    wait()
    try:
        return hook.list_tunnel_connectors(tunnel_id, account)
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
