"""The rules as objects: when a connector is ready, and when a tunnel is healthy.

The connector sensor (every mode) and its trigger decide readiness with :class:`ReadinessRule` and
:func:`evaluate` (defined in :mod:`airflow_provider_cftunnel.readiness`, re-exported here); the health
operator and the health event trigger decide health with :class:`HealthRule`. Both count live connections
and data centres with :func:`~airflow_provider_cftunnel.models.live_summary`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from airflow_provider_cftunnel.exceptions import CloudflareConfigError
from airflow_provider_cftunnel.models import Tunnel, TunnelConnector, as_str, live_summary, show_value
from airflow_provider_cftunnel.readiness import (
    GateVerdict,
    ReadinessClock,
    ReadinessRule,
    describe_connectors,
    describe_need,
    describe_wait,
    evaluate,
    find_ready_connector,
    parse_started_after,
)

__all__ = [
    "SERVING_STATUSES",
    "TUNNEL_STATUSES",
    "GateVerdict",
    "HealthRule",
    "ReadinessClock",
    "ReadinessRule",
    "TunnelHealth",
    "describe_connectors",
    "describe_need",
    "describe_wait",
    "evaluate",
    "find_ready_connector",
    "live_summary",
    "parse_started_after",
]

#: Cloudflare's tunnel statuses: never ran, serving, serving with a failed connection, ran before but no connection.
TUNNEL_STATUSES = ("inactive", "healthy", "degraded", "down")
#: The statuses in which a tunnel serves traffic, so it has at least one live connection (Cloudflare's definition).
SERVING_STATUSES = frozenset({"healthy", "degraded"})


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
        """Return the verdict as plain JSON (lists, strings, numbers, ``null``)."""
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
        Tell whether ``tunnel``'s verdict depends on its connectors.

        It does when its status passes, it serves, and the rule is stricter than the status. Only then is its
        ``connections`` endpoint worth a request.

        :param tunnel: The tunnel as listed.
        """
        return self.strict and tunnel.status in self.allowed_statuses and tunnel.status in SERVING_STATUSES

    def evaluate(self, tunnel: Tunnel, connectors: list[TunnelConnector] | None = None) -> TunnelHealth:
        """
        Judge ``tunnel``.

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
            conns_active_at=as_str(tunnel.raw.get("conns_active_at")),
            conns_inactive_at=as_str(tunnel.raw.get("conns_inactive_at")),
            deleted_at=as_str(tunnel.raw.get("deleted_at")),
        )

    @staticmethod
    def unknown(tunnel_id: str) -> TunnelHealth:
        """
        Judge a tunnel id Cloudflare does not know: unhealthy, with the reason.

        :param tunnel_id: The id that was asked for.
        """
        return TunnelHealth(
            id=tunnel_id.lower(),
            name=None,
            status=None,
            healthy=False,
            reasons=("not found: Cloudflare does not know this tunnel id in this account (deleted, or a typo)",),
        )
