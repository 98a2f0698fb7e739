"""Typed, read-only views of the Cloudflare Tunnel JSON the API returns.

Every field is optional and unknown fields are kept: Cloudflare adds fields over time, and a provider that
breaks on a new field breaks every DAG that uses it. Values of an unexpected type read as ``None`` (or an
empty list) rather than raising, and :meth:`to_dict` always gives back exactly what was received.

The rules live here too, each in one place: the readiness rule shared by the connector sensor's poke mode and
its trigger (:func:`find_ready_connector`), and the health rule shared by the health operator and the health
event trigger (:class:`HealthRule`). Both count live connections and data centres with :func:`live_summary`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pendulum
from pendulum import DateTime

from airflow_provider_cftunnel.exceptions import CloudflareConfigError

__all__ = [
    "SERVING_STATUSES",
    "TUNNEL_STATUSES",
    "HealthRule",
    "Tunnel",
    "TunnelConnection",
    "TunnelConnector",
    "TunnelHealth",
    "find_ready_connector",
    "live_summary",
    "parse_started_after",
    "show_value",
    "validate_account_id",
    "validate_uuid",
]

#: Cloudflare's tunnel statuses: never ran, serving, serving with a failed connection, ran before but no connection.
TUNNEL_STATUSES = ("inactive", "healthy", "degraded", "down")
#: The statuses in which a tunnel serves traffic, so it has at least one live connection (Cloudflare's definition).
SERVING_STATUSES = frozenset({"healthy", "degraded"})

_ACCOUNT_ID_RE = re.compile(r"[0-9a-fA-F]{32}")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def validate_account_id(account_id: Any) -> str:
    """
    Check that ``account_id`` is a Cloudflare account id (32 hex characters) and return it.

    :param account_id: The value to check.
    :raises CloudflareConfigError: When it is anything else.
    """
    if isinstance(account_id, str) and _ACCOUNT_ID_RE.fullmatch(account_id):
        return account_id.lower()
    raise CloudflareConfigError(
        f"Invalid Cloudflare account id {_show(account_id)}: expected 32 hexadecimal characters, as in "
        "the dashboard URL https://dash.cloudflare.com/<account_id>."
    )


def validate_uuid(value: Any, what: str) -> str:
    """
    Check that ``value`` is a UUID (as Cloudflare's tunnel and connector ids are) and return it.

    :param value: The value to check.
    :param what: Its name in the error message, e.g. ``"tunnel_id"``.
    :raises CloudflareConfigError: When it is anything else.
    """
    if isinstance(value, str) and _UUID_RE.fullmatch(value):
        return value.lower()
    raise CloudflareConfigError(
        f"Invalid {what} {_show(value)}: expected a UUID such as 'c1744f8b-faa1-48a4-9e5c-02ac921467fa'."
    )


def show_value(value: Any) -> str:
    """
    A short, printable rendering of a bad input value, for error messages (at most 60 characters).

    :param value: The value to show.
    """
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_show = show_value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _timestamp(value: Any) -> DateTime | None:
    """Parse an RFC 3339 timestamp; anything else (``null``, garbage) reads as ``None``."""
    if not isinstance(value, str) or not value:
        return None
    # Fast path for what Cloudflare sends (RFC 3339 with an offset): pendulum.parse costs about 8x more, and a
    # connector carries several timestamps, so parsing them was most of the hook's own work per call.
    try:
        native = datetime.fromisoformat(value)
    except ValueError:
        native = None
    if native is not None and native.tzinfo is not None:
        offset = native.utcoffset()
        tz = pendulum.UTC if not offset else pendulum.FixedTimezone(int(offset.total_seconds()))
        return DateTime(
            native.year,
            native.month,
            native.day,
            native.hour,
            native.minute,
            native.second,
            native.microsecond,
            tzinfo=tz,
        )
    try:
        parsed = pendulum.parse(value)
    except (ValueError, TypeError, OverflowError):
        return None
    return parsed if isinstance(parsed, DateTime) else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class TunnelConnection:
    """
    One connection between a ``cloudflared`` connector and a Cloudflare data centre (a ``conns[]`` item).

    Only ``is_pending_reconnect is False`` means the connection serves traffic: ``True`` means it dropped
    and Cloudflare is still tracking it, and a missing value is not taken as live.
    """

    id: str | None = None
    uuid: str | None = None
    client_id: str | None = None
    client_version: str | None = None
    colo_name: str | None = None
    is_pending_reconnect: bool | None = None
    opened_at: DateTime | None = None
    origin_ip: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TunnelConnection:
        """
        Build a connection from Cloudflare's JSON object.

        :param data: One item of a connector's ``conns`` list.
        """
        return cls(
            id=_str(data.get("id")),
            uuid=_str(data.get("uuid")),
            client_id=_str(data.get("client_id")),
            client_version=_str(data.get("client_version")),
            colo_name=_str(data.get("colo_name")),
            is_pending_reconnect=_bool(data.get("is_pending_reconnect")),
            opened_at=_timestamp(data.get("opened_at")),
            origin_ip=_str(data.get("origin_ip")),
            raw=dict(data),
        )

    @property
    def is_live(self) -> bool:
        """Whether the connection serves traffic (``is_pending_reconnect`` is exactly ``false``)."""
        return self.is_pending_reconnect is False

    def to_dict(self) -> dict[str, Any]:
        """The connection's JSON as received, unknown keys included (a deep copy)."""
        return copy.deepcopy(self.raw)


@dataclass(frozen=True)
class TunnelConnector:
    """
    One ``cloudflared`` process serving a tunnel (Cloudflare's "Client" object).

    The connector id is a fresh UUID each time ``cloudflared`` starts.
    """

    id: str | None = None
    arch: str | None = None
    config_version: int | None = None
    version: str | None = None
    run_at: DateTime | None = None
    features: list[str] = field(default_factory=list)
    conns: list[TunnelConnection] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TunnelConnector:
        """
        Build a connector from Cloudflare's JSON object.

        :param data: The ``result`` of the connector endpoint, or one item of the ``connections`` list.
        """
        conns = data.get("conns")
        features = data.get("features")
        config_version = data.get("config_version")
        return cls(
            id=_str(data.get("id")),
            arch=_str(data.get("arch")),
            config_version=(
                config_version if isinstance(config_version, int) and not isinstance(config_version, bool) else None
            ),
            version=_str(data.get("version")),
            run_at=_timestamp(data.get("run_at")),
            features=[f for f in features if isinstance(f, str)] if isinstance(features, list) else [],
            conns=(
                [TunnelConnection.from_dict(c) for c in conns if isinstance(c, dict)] if isinstance(conns, list) else []
            ),
            raw=dict(data),
        )

    @property
    def active_connections(self) -> list[TunnelConnection]:
        """The connections that serve traffic (``is_pending_reconnect`` is ``false``)."""
        return [c for c in self.conns if c.is_live]

    @property
    def colos(self) -> list[str]:
        """The data centres this connector's live connections reach, sorted, without repeats."""
        return sorted({c.colo_name for c in self.active_connections if c.colo_name})

    def to_dict(self) -> dict[str, Any]:
        """The connector's JSON as received, unknown keys included (a deep copy, safe for XCom)."""
        return copy.deepcopy(self.raw)


@dataclass(frozen=True)
class Tunnel:
    """A Cloudflare Tunnel (``cfd_tunnel``): its name, status and timestamps."""

    id: str | None = None
    name: str | None = None
    status: str | None = None
    tun_type: str | None = None
    account_tag: str | None = None
    created_at: DateTime | None = None
    deleted_at: DateTime | None = None
    conns_active_at: DateTime | None = None
    conns_inactive_at: DateTime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tunnel:
        """
        Build a tunnel from Cloudflare's JSON object.

        :param data: The ``result`` of the tunnel endpoint, or one item of the tunnel list.
        """
        return cls(
            id=_str(data.get("id")),
            name=_str(data.get("name")),
            status=_str(data.get("status")),
            tun_type=_str(data.get("tun_type")),
            account_tag=_str(data.get("account_tag")),
            created_at=_timestamp(data.get("created_at")),
            deleted_at=_timestamp(data.get("deleted_at")),
            conns_active_at=_timestamp(data.get("conns_active_at")),
            conns_inactive_at=_timestamp(data.get("conns_inactive_at")),
            metadata=dict(_mapping(data.get("metadata"))),
            raw=dict(data),
        )

    def to_dict(self) -> dict[str, Any]:
        """The tunnel's JSON as received, unknown keys included (a deep copy)."""
        return copy.deepcopy(self.raw)


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
                    f"Invalid started_after {_show(value)}: expected an ISO 8601 date and time such as "
                    "'2026-12-01T14:00:00+00:00', or a template like '{{ dag_run.start_date }}'."
                ) from None
            return parsed
    else:
        raise CloudflareConfigError(f"Invalid started_after {_show(value)}: expected a datetime or an ISO 8601 string.")
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
                f"allowed_statuses must be a non-empty list of {', '.join(TUNNEL_STATUSES)}, not {_show(statuses)}"
            )
        statuses = tuple(statuses)
        unknown = [s for s in statuses if s not in TUNNEL_STATUSES]
        if unknown:
            raise CloudflareConfigError(
                f"allowed_statuses has {_show(unknown)}: Cloudflare's tunnel statuses are {', '.join(TUNNEL_STATUSES)}."
            )
        object.__setattr__(self, "allowed_statuses", statuses)
        for name in ("min_live_connections", "min_colos"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise CloudflareConfigError(f"{name} must be a whole number of 0 or more, not {_show(value)}")

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
