"""The rules, each in one place: when a connector is ready, and when a tunnel is healthy.

The connector sensor (poke and reschedule modes) and its trigger (deferrable mode) decide readiness with
:func:`find_ready_connector`; the health operator and the health event trigger decide health with
:class:`HealthRule`. Both count live connections and data centres with :func:`live_summary`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pendulum
from pendulum import DateTime

from airflow_provider_cftunnel.exceptions import CloudflareConfigError
from airflow_provider_cftunnel.models import Tunnel, TunnelConnector, _str, _timestamp, show_value

__all__ = [
    "SERVING_STATUSES",
    "TUNNEL_STATUSES",
    "HealthRule",
    "TunnelHealth",
    "describe_connectors",
    "describe_need",
    "describe_wait",
    "find_ready_connector",
    "live_summary",
    "parse_started_after",
]

#: Cloudflare's tunnel statuses: never ran, serving, serving with a failed connection, ran before but no connection.
TUNNEL_STATUSES = ("inactive", "healthy", "degraded", "down")
#: The statuses in which a tunnel serves traffic, so it has at least one live connection (Cloudflare's definition).
SERVING_STATUSES = frozenset({"healthy", "degraded"})


def live_summary(connectors: Iterable[TunnelConnector]) -> tuple[int, list[str]]:
    """
    Live connections summed over ``connectors``, and the distinct data centres they reach (sorted).

    The one count behind both rules: a connector's readiness and a tunnel's health.

    :param connectors: One connector, or all of a tunnel's.
    """
    live = 0
    colos: set[str] = set()
    for connector in connectors:
        active = connector.active_connections
        live += len(active)
        colos.update(c.colo_name for c in active if c.colo_name)
    return live, sorted(colos)


def parse_started_after(value: Any) -> DateTime | None:
    """
    Read a ``started_after`` argument: a datetime, an ISO 8601 string (a rendered template), or ``None``/empty.

    A naive value is taken as UTC.

    :param value: What the task was given.
    :raises CloudflareConfigError: When it is neither.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        native = value
    elif isinstance(value, str):
        try:
            native = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            parsed = _timestamp(value.strip())
            if parsed is None:
                raise CloudflareConfigError(
                    f"Invalid started_after {show_value(value)}: expected an ISO 8601 date and time such as "
                    "'2026-12-01T14:00:00+00:00', or a template like '{{ dag_run.start_date }}'."
                ) from None
            return parsed
    else:
        raise CloudflareConfigError(
            f"Invalid started_after {show_value(value)}: expected a datetime or an ISO 8601 string."
        )
    return pendulum.instance(native if native.tzinfo is not None else native.replace(tzinfo=pendulum.UTC))


def find_ready_connector(
    connectors: Iterable[TunnelConnector],
    *,
    min_connections: int = 1,
    connector_id: str | None = None,
    started_after: datetime | None = None,
    min_colos: int = 1,
) -> TunnelConnector | None:
    """
    The readiness rule: of the connectors that qualify, the one with the most live connections.

    A connector qualifies when it has at least ``min_connections`` live connections reaching at least
    ``min_colos`` data centres and, with ``started_after``, when it started (``run_at``) at or after that time:
    during a rolling restart the old ``cloudflared`` stays live for a while, and must not open a deploy gate.
    The sensor's poke mode and its trigger both decide with this one function.

    :param connectors: The connectors to look at (one, or all of a tunnel's).
    :param min_connections: How many connections with ``is_pending_reconnect: false`` make it ready.
    :param connector_id: Only this connector counts; ``None`` means any connector of the tunnel.
    :param started_after: Only connectors whose ``run_at`` is at or after this count (one without ``run_at``
        does not); ``None`` means any.
    :param min_colos: How many distinct data centres its live connections must reach.
    :return: The qualifying connector with the most live connections, or ``None`` when none qualifies.
    """
    best: TunnelConnector | None = None
    best_live = -1
    for connector in connectors:
        if connector_id is not None and (connector.id or "").lower() != connector_id.lower():
            continue
        if started_after is not None and (connector.run_at is None or connector.run_at < started_after):
            continue
        live, colos = live_summary([connector])
        if live >= min_connections and len(colos) >= min_colos and live > best_live:
            best, best_live = connector, live
    return best


@dataclass(frozen=True)
class TunnelHealth:
    """
    One tunnel's health verdict, as the health operator reports it and the health trigger compares it.

    Fields that were not fetched are ``None``, never guessed: ``live_connections``, ``colos``, ``connectors``
    and ``versions`` come from the ``connections`` endpoint, which is called only when the rule needs it.

    :param id: The tunnel's UUID.
    :param name: Its name, or ``None`` when Cloudflare does not know it.
    :param status: Cloudflare's status (``inactive``, ``healthy``, ``degraded``, ``down``), or ``None``.
    :param healthy: The verdict.
    :param reasons: Why it is not healthy (empty when it is).
    """

    id: str
    name: str | None
    status: str | None
    healthy: bool
    reasons: tuple[str, ...] = ()
    live_connections: int | None = None
    colos: tuple[str, ...] | None = None
    connectors: int | None = None
    versions: tuple[str, ...] | None = None
    conns_active_at: str | None = None
    conns_inactive_at: str | None = None
    deleted_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The verdict as plain JSON (lists, strings, numbers, ``null``)."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "healthy": self.healthy,
            "reasons": list(self.reasons),
            "live_connections": self.live_connections,
            "colos": None if self.colos is None else list(self.colos),
            "connectors": self.connectors,
            "versions": None if self.versions is None else list(self.versions),
            "conns_active_at": self.conns_active_at,
            "conns_inactive_at": self.conns_inactive_at,
            "deleted_at": self.deleted_at,
        }

    @property
    def label(self) -> str:
        """``name (id)``, or the id alone when the name is unknown (for messages)."""
        return f"{self.name} ({self.id})" if self.name else self.id


@dataclass(frozen=True)
class HealthRule:
    """
    The health rule: when a tunnel counts as healthy.

    A tunnel is healthy when its Cloudflare ``status`` is one of ``allowed_statuses`` and its live connections
    (summed over its connectors) number at least ``min_live_connections`` and reach at least ``min_colos``
    distinct data centres. Cloudflare's status already says whether a tunnel serves (``healthy``/``degraded``:
    at least one live connection; ``down``/``inactive``: none), so with thresholds of 1 the status alone
    answers, and the ``connections`` endpoint is needed only for stricter thresholds, and only for tunnels whose
    status passes (:meth:`needs_connectors`). The health operator and the health event trigger both decide with
    this class.

    :param allowed_statuses: The statuses that pass (default: ``healthy`` only).
    :param min_live_connections: Live connections the tunnel needs, summed over its connectors (0 or more).
    :param min_colos: Distinct data centres its live connections must reach (0 or more).
    """

    allowed_statuses: tuple[str, ...] = ("healthy",)
    min_live_connections: int = 1
    min_colos: int = 1

    def __post_init__(self) -> None:
        statuses = self.allowed_statuses
        if isinstance(statuses, str):
            statuses = (statuses,)
        if not isinstance(statuses, Iterable) or not statuses:
            raise CloudflareConfigError(
                f"allowed_statuses must be a non-empty list of {', '.join(TUNNEL_STATUSES)}, not {show_value(statuses)}"
            )
        statuses = tuple(statuses)
        unknown = [s for s in statuses if s not in TUNNEL_STATUSES]
        if unknown:
            raise CloudflareConfigError(
                f"allowed_statuses has {show_value(unknown)}: "
                f"Cloudflare's tunnel statuses are {', '.join(TUNNEL_STATUSES)}."
            )
        object.__setattr__(self, "allowed_statuses", statuses)
        for name in ("min_live_connections", "min_colos"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise CloudflareConfigError(f"{name} must be a whole number of 0 or more, not {show_value(value)}")

    @property
    def strict(self) -> bool:
        """Whether a threshold asks more than Cloudflare's status says (then connections must be fetched)."""
        return self.min_live_connections > 1 or self.min_colos > 1

    def needs_connectors(self, tunnel: Tunnel) -> bool:
        """
        Whether ``tunnel``'s verdict depends on its connectors: its status passes, it serves, and the rule is
        stricter than the status. Only then is its ``connections`` endpoint worth a request.

        :param tunnel: The tunnel as listed.
        """
        return self.strict and tunnel.status in self.allowed_statuses and tunnel.status in SERVING_STATUSES

    def evaluate(self, tunnel: Tunnel, connectors: list[TunnelConnector] | None = None) -> TunnelHealth:
        """
        The verdict on ``tunnel``.

        :param tunnel: The tunnel (from the list or the tunnel endpoint).
        :param connectors: Its connectors, when they were fetched; ``None`` when not.
        """
        reasons: list[str] = []
        status = tunnel.status
        if tunnel.deleted_at is not None:
            reasons.append(f"deleted at {tunnel.raw.get('deleted_at')}")
        if status not in self.allowed_statuses:
            allowed = " or ".join(self.allowed_statuses)
            reasons.append(f"status is {status or 'unknown'} (needs {allowed})")
        live: int | None = None
        colos: list[str] | None = None
        versions: list[str] | None = None
        if connectors is not None:
            live, colos = live_summary(connectors)
            versions = sorted({c.version for c in connectors if c.version})
            if live < self.min_live_connections:
                reasons.append(f"{live} live connection(s), needs {self.min_live_connections}")
            if len(colos) < self.min_colos:
                where = f" ({', '.join(colos)})" if colos else ""
                reasons.append(f"{len(colos)} data centre(s){where}, needs {self.min_colos}")
        elif status in self.allowed_statuses and status not in SERVING_STATUSES and self.min_live_connections:
            reasons.append(f"status {status} means no live connection, needs {self.min_live_connections}")
        return TunnelHealth(
            id=(tunnel.id or "").lower(),
            name=tunnel.name,
            status=status,
            healthy=not reasons,
            reasons=tuple(reasons),
            live_connections=live,
            colos=None if colos is None else tuple(colos),
            connectors=None if connectors is None else len(connectors),
            versions=None if versions is None else tuple(versions),
            conns_active_at=_str(tunnel.raw.get("conns_active_at")),
            conns_inactive_at=_str(tunnel.raw.get("conns_inactive_at")),
            deleted_at=_str(tunnel.raw.get("deleted_at")),
        )

    @staticmethod
    def unknown(tunnel_id: str) -> TunnelHealth:
        """
        The verdict on a tunnel id Cloudflare does not know: unhealthy, with the reason.

        :param tunnel_id: The id that was asked for.
        """
        return TunnelHealth(
            id=tunnel_id.lower(),
            name=None,
            status=None,
            healthy=False,
            reasons=("not found: Cloudflare does not know this tunnel id in this account (deleted, or a typo)",),
        )


def describe_connectors(connectors: list[TunnelConnector]) -> str:
    """
    ``connector abc (started ...): 2 live, 2 pending (DFW, IAD)`` for each connector, for the waiting log lines.

    :param connectors: A tunnel's connectors.
    """
    parts = []
    for c in connectors[:5]:
        live = c.active_connections
        colos = f" ({', '.join(c.colos)})" if c.colos else ""
        started = f" (started {c.run_at.isoformat()})" if c.run_at is not None else ""
        parts.append(f"connector {c.id}{started}: {len(live)} live, {len(c.conns) - len(live)} pending{colos}")
    if len(connectors) > 5:
        parts.append(f"and {len(connectors) - 5} more")
    return "; ".join(parts)


def describe_need(min_connections: int, min_colos: int, started_after: datetime | None) -> str:
    """
    What the readiness rule waits for, e.g. ``a connector with 2 live connection(s) in 2 data centre(s)``.

    :param min_connections: As for the sensor.
    :param min_colos: As for the sensor.
    :param started_after: As parsed, or ``None``.
    """
    need = f"a connector with {min_connections} live connection(s)"
    if min_colos > 1:
        need += f" in {min_colos} data centres"
    if started_after is not None:
        need += f", started at or after {started_after.isoformat()}"
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
    Why a tunnel is not ready yet, for the waiting log lines of the sensor (every mode) and its trigger.

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
    return f"not ready: {describe_connectors(connectors)}; waiting for {need}"
