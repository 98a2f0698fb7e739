"""The readiness rule of the deploy gate: when a tunnel connector is ready, and for how long it has been.

:class:`ReadinessRule` says what "ready" means (live connections, data centres, which connector, started
when, held how long); :func:`evaluate` applies it to one poll (the API's connectors, and optionally
cloudflared's own ``/ready`` answer) and returns a :class:`GateVerdict` with the :class:`ReadinessClock` to
carry to the next poll. The sensor's poke and reschedule modes and its trigger all decide with these, so the
gate opens on the same evidence in every mode. Times are POSIX seconds, passed in: every branch runs without
a clock or a sleep.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pendulum
from pendulum import DateTime

from airflow_provider_cftunnel.exceptions import CloudflareConfigError
from airflow_provider_cftunnel.models import TunnelConnector, live_summary, parse_timestamp, show_value, validate_uuid

if TYPE_CHECKING:
    from airflow_provider_cftunnel.ready import ReadyAnswer

__all__ = [
    "CLOCK_TOLERANCE",
    "GateVerdict",
    "ReadinessClock",
    "ReadinessRule",
    "describe_connectors",
    "describe_need",
    "describe_wait",
    "evaluate",
    "find_ready_connector",
    "parse_stable_for",
    "parse_started_after",
]

#: Seconds by which ``stable_for`` may fall short when the gate decides: timers fire a little early, and a
#: decision due exactly at ``held_since + stable_for`` must not wait another poll interval for rounding.
CLOCK_TOLERANCE = 0.001


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
            parsed = parse_timestamp(value.strip())
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


def parse_stable_for(value: Any) -> float:
    """
    Read a ``stable_for`` argument.

    It is seconds (a number, or a string of one: a rendered template) or a :class:`~datetime.timedelta`.

    :param value: What the task was given.
    :raises CloudflareConfigError: When it is negative or none of these.
    """
    if isinstance(value, timedelta):
        value = value.total_seconds()
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d*)?\s*", value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 or value == float("inf"):
        raise CloudflareConfigError(
            f"Invalid stable_for {show_value(value)}: expected seconds (0 or more) or a timedelta, e.g. 30."
        )
    return float(value)


def _utc(moment: datetime) -> str:
    return pendulum.instance(moment).in_timezone("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def find_ready_connector(
    connectors: Iterable[TunnelConnector],
    *,
    min_connections: int = 1,
    connector_id: str | None = None,
    started_after: datetime | None = None,
    min_colos: int = 1,
) -> TunnelConnector | None:
    """
    Find the connector that qualifies with the most live connections, or ``None``.

    A connector qualifies when it has at least ``min_connections`` live connections reaching at least
    ``min_colos`` data centres and, with ``started_after``, when it started (``run_at``) at or after that time:
    during a rolling restart the old ``cloudflared`` stays live for a while, and must not open a deploy gate.

    :param connectors: The connectors to look at (one, or all of a tunnel's).
    :param min_connections: How many connections with ``is_pending_reconnect: false`` make it ready.
    :param connector_id: Only this connector counts; ``None`` means any connector of the tunnel.
    :param started_after: Only connectors whose ``run_at`` is at or after this count (one without ``run_at``
        does not); ``None`` means any.
    :param min_colos: How many distinct data centres its live connections must reach.
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


@dataclass(frozen=True)
class ReadinessRule:
    """
    The readiness rule: when a tunnel connector is ready to take traffic.

    A connector is ready when it has at least ``min_connections`` live connections in at least ``min_colos``
    data centres, is ``connector_id`` when given, started at or after ``started_after`` when given, and has
    met all that on every poll for at least ``stable_for`` seconds. Validated at construction; serialized
    once (:meth:`to_dict`) into the trigger's arguments.

    :param min_connections: Live connections the connector needs (1 or more; cloudflared opens 4).
    :param connector_id: The connector's UUID, or ``None`` for any connector of the tunnel.
    :param started_after: Only a connector whose ``run_at`` is at or after this counts: a datetime or an ISO
        8601 string; ``None`` for any.
    :param min_colos: Distinct data centres its live connections must reach (0 or more).
    :param stable_for: Seconds (or a timedelta) the rule must have held on every poll before it opens.
    """

    min_connections: int = 1
    connector_id: str | None = None
    started_after: DateTime | None = None
    min_colos: int = 1
    stable_for: float = 0.0

    def __post_init__(self) -> None:
        if (
            isinstance(self.min_connections, bool)
            or not isinstance(self.min_connections, int)
            or self.min_connections < 1
        ):
            raise CloudflareConfigError(
                f"min_connections must be a whole number of at least 1, not {show_value(self.min_connections)}"
            )
        if isinstance(self.min_colos, bool) or not isinstance(self.min_colos, int) or self.min_colos < 0:
            raise CloudflareConfigError(
                f"min_colos must be a whole number of 0 or more, not {show_value(self.min_colos)}"
            )
        connector_id = self.connector_id or None
        if connector_id is not None:
            connector_id = validate_uuid(connector_id, "connector_id")
        object.__setattr__(self, "connector_id", connector_id)
        object.__setattr__(self, "started_after", parse_started_after(self.started_after))
        object.__setattr__(self, "stable_for", parse_stable_for(self.stable_for))

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as plain JSON, for trigger arguments (:meth:`from_dict` reads it back)."""
        return {
            "min_connections": self.min_connections,
            "connector_id": self.connector_id,
            "started_after": None if self.started_after is None else self.started_after.isoformat(),
            "min_colos": self.min_colos,
            "stable_for": self.stable_for,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReadinessRule:
        """
        Read a rule written by :meth:`to_dict`.

        :param data: The rule's JSON.
        :raises CloudflareConfigError: When a value is invalid.
        """
        return cls(
            min_connections=data.get("min_connections", 1),
            connector_id=data.get("connector_id"),
            started_after=data.get("started_after"),
            min_colos=data.get("min_colos", 1),
            stable_for=data.get("stable_for", 0.0),
        )

    def find(self, connectors: Iterable[TunnelConnector], connector_id: str | None = None) -> TunnelConnector | None:
        """
        Return the connector that meets the rule on this poll (ignoring ``stable_for``), or ``None``.

        :param connectors: The tunnel's connectors (or the one asked for).
        :param connector_id: Overrides :attr:`connector_id` (the id cloudflared's ``/ready`` named).
        """
        return find_ready_connector(
            connectors,
            min_connections=self.min_connections,
            connector_id=connector_id or self.connector_id,
            started_after=self.started_after,
            min_colos=self.min_colos,
        )

    def explain(self, connectors: list[TunnelConnector], connector_id: str | None = None) -> str:
        """
        Say why no connector meets the rule on this poll.

        :param connectors: The tunnel's connectors.
        :param connector_id: Overrides :attr:`connector_id`.
        """
        return describe_wait(
            connectors,
            connector_id=connector_id or self.connector_id,
            min_connections=self.min_connections,
            min_colos=self.min_colos,
            started_after=self.started_after,
        )


@dataclass(frozen=True)
class ReadinessClock:
    """
    The ``stable_for`` clock: since when one connector has met the rule on every poll.

    A poll where the rule fails, or where another connector meets it, starts the clock again.

    :param connector_id: The connector the clock runs for, or ``None`` when it is stopped.
    :param held_since: POSIX time of the first poll of the current run, or ``None`` when stopped.
    """

    connector_id: str | None = None
    held_since: float | None = None

    def observe(self, connector_id: str | None, now: float) -> ReadinessClock:
        """
        Return the clock after a poll at ``now`` where ``connector_id`` met the rule (``None``: none did).

        :param connector_id: The connector that met the rule on this poll.
        :param now: The poll's time (POSIX seconds).
        """
        if connector_id is None:
            return ReadinessClock()
        if self.held_since is not None and self.connector_id == connector_id.lower():
            return self
        return ReadinessClock(connector_id.lower(), now)

    def held_for(self, now: float) -> float:
        """
        Seconds the rule has held at ``now`` (0 when the clock is stopped).

        :param now: POSIX seconds.
        """
        return 0.0 if self.held_since is None else max(0.0, now - self.held_since)


@dataclass(frozen=True)
class GateVerdict:
    """
    The gate's decision after one poll.

    :param ready: Whether the gate opens.
    :param reason: Why it is shut (or what opened it), e.g. ``2 connector(s) registered, 2 live, none started
        at or after 2026-12-07T14:02:11Z; newest run_at 2026-12-07T13:58:40Z; ...``.
    :param connector: The connector that met the rule on this poll (also while ``stable_for`` runs), or ``None``.
    :param clock: The ``stable_for`` clock to carry to the next poll.
    :param due_in: Seconds until ``stable_for`` is met if every poll until then holds; ``None`` when no
        connector meets the rule.
    """

    ready: bool
    reason: str
    connector: TunnelConnector | None = None
    clock: ReadinessClock = field(default_factory=ReadinessClock)
    due_in: float | None = None

    @classmethod
    def waiting(cls, reason: str) -> GateVerdict:
        """
        Return a shut gate whose poll gave no evidence (e.g. the API did not answer): the clock starts again.

        :param reason: Why, for the waiting log and the timeout message.
        """
        return cls(False, reason)


def evaluate(
    rule: ReadinessRule,
    connectors: list[TunnelConnector],
    *,
    now: float,
    clock: ReadinessClock | None = None,
    ready: ReadyAnswer | None = None,
) -> GateVerdict:
    """
    Decide one poll: whether the gate opens.

    With ``ready`` (cloudflared's ``/ready`` answer), only the connector it names may open the gate, and only
    once the API shows that connector meeting the rule: both views must agree. Then the rule must have held
    on every poll for ``rule.stable_for`` seconds, counted by ``clock``.

    :param rule: The readiness rule.
    :param connectors: The tunnel's connectors as the API listed them on this poll.
    :param now: The poll's time (POSIX seconds).
    :param clock: The clock carried from the previous poll (``None``: stopped).
    :param ready: cloudflared's ``/ready`` answer on this poll, when the gate reads it.
    """
    clock = clock or ReadinessClock()
    target = rule.connector_id
    if ready is not None:
        if not ready.ready:
            return GateVerdict.waiting(f"not ready: {ready.describe()}")
        target = ready.connector_id
    connector = rule.find(connectors, target)
    if connector is None:
        reason = rule.explain(connectors, target)
        if ready is not None:
            reason = f"not ready: {ready.describe()}, but in the API {reason.removeprefix('not ready: ')}"
        return GateVerdict.waiting(reason)
    clock = clock.observe(connector.id or "", now)
    held = clock.held_for(now)
    live, colos = live_summary([connector])
    what = f"connector {connector.id} has {live} live connection(s) ({', '.join(colos) or 'no data centre named'})"
    if ready is not None:
        what += " and cloudflared's /ready agrees"
    if held + CLOCK_TOLERANCE >= rule.stable_for:
        suffix = f", held for {held:.0f} s" if rule.stable_for else ""
        return GateVerdict(True, what + suffix, connector, clock, 0.0)
    due = rule.stable_for - held
    reason = f"not ready: {what}, held for {held:.0f} s of stable_for {rule.stable_for:g} s"
    return GateVerdict(False, reason, connector, clock, due)
