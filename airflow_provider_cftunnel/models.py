"""Typed, read-only views of the Cloudflare Tunnel JSON the API returns.

Every field is optional and unknown fields are kept: Cloudflare adds fields over time, and a provider that
breaks on a new field breaks every DAG that uses it. Values of an unexpected type read as ``None`` (or an
empty list) rather than raising, and :meth:`to_dict` always gives back exactly what was received.

The rules that decide on these views (readiness, health) live in :mod:`airflow_provider_cftunnel.rules`.
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
    "Tunnel",
    "TunnelConnection",
    "TunnelConnector",
    "as_str",
    "live_summary",
    "parse_timestamp",
    "show_value",
    "validate_account_id",
    "validate_uuid",
]

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
    Render a bad input value short and printable, for error messages (at most 60 characters).

    :param value: The value to show.
    """
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_show = show_value


def as_str(value: Any) -> str | None:
    """
    ``value`` when it is a string, else ``None`` (how every view reads a string field).

    :param value: A JSON value.
    """
    return value if isinstance(value, str) else None


_str = as_str


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def parse_timestamp(value: Any) -> DateTime | None:
    """
    Parse an RFC 3339 timestamp; anything else (``null``, garbage) reads as ``None``.

    :param value: A JSON value, e.g. a connector's ``run_at``.
    """
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


def _fields(data: Mapping[str, Any], strings: Iterable[str], timestamps: Iterable[str] = ()) -> dict[str, Any]:
    """
    Read a view's string and timestamp fields from its JSON object, by key.

    :param data: The JSON object.
    :param strings: The keys read with :func:`as_str`.
    :param timestamps: The keys read with :func:`parse_timestamp`.
    """
    return {
        **{key: _str(data.get(key)) for key in strings},
        **{key: parse_timestamp(data.get(key)) for key in timestamps},
    }


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
            **_fields(data, ("id", "uuid", "client_id", "client_version", "colo_name", "origin_ip"), ("opened_at",)),
            is_pending_reconnect=_bool(data.get("is_pending_reconnect")),
            raw=dict(data),
        )

    @property
    def is_live(self) -> bool:
        """Whether the connection serves traffic (``is_pending_reconnect`` is exactly ``false``)."""
        return self.is_pending_reconnect is False

    def to_dict(self) -> dict[str, Any]:
        """Return the connection's JSON as received, unknown keys included (a deep copy)."""
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
            **_fields(data, ("id", "arch", "version"), ("run_at",)),
            config_version=(
                config_version if isinstance(config_version, int) and not isinstance(config_version, bool) else None
            ),
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
        """Return the connector's JSON as received, unknown keys included (a deep copy, safe for XCom)."""
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
            **_fields(
                data,
                ("id", "name", "status", "tun_type", "account_tag"),
                ("created_at", "deleted_at", "conns_active_at", "conns_inactive_at"),
            ),
            metadata=dict(_mapping(data.get("metadata"))),
            raw=dict(data),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the tunnel's JSON as received, unknown keys included (a deep copy)."""
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
