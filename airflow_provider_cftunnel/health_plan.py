"""What one health poll reads: which tunnel reads answer every watcher, and whose ``connections`` to read again.

Pure functions of what the watchers ask for and of what the last poll saw; no I/O, so every choice is testable
without a server. :func:`plan_reads` picks the cheapest tunnel reads that cover every selection (the whole
account's list, one list per name prefix, or ids one by one); :func:`connection_reads` picks the tunnels whose
``connections`` endpoint must be read this poll. The figures behind the choices are in docs/deployment.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from airflow_provider_cftunnel.exceptions import CloudflareConfigError
from airflow_provider_cftunnel.models import show_value
from airflow_provider_cftunnel.rules import HealthRule

__all__ = [
    "LIST_PAGE_SIZE",
    "ConnectionsRead",
    "Demand",
    "Reads",
    "check_max_age",
    "connection_reads",
    "plan_reads",
]

#: Tunnels per list request: Cloudflare's largest page.
LIST_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Demand:
    """
    What one check or watcher needs of a poll: its selection, its rule, and how old a ``connections`` read may be.

    :param tunnel_ids: Tunnel ids (lower-case UUIDs), or ``None``.
    :param name_prefix: A name prefix, or ``None``; neither: every tunnel of the account.
    :param rule: The health rule; it decides which tunnels need their ``connections`` read.
    :param connections_max_age: Seconds a ``connections`` read stays good while the tunnel's ``status``,
        ``conns_active_at`` and ``conns_inactive_at`` stay the same; ``None`` or 0: read every poll.
    """

    tunnel_ids: tuple[str, ...] | None = None
    name_prefix: str | None = None
    rule: HealthRule = field(default_factory=HealthRule)
    connections_max_age: float | None = None

    @property
    def whole_account(self) -> bool:
        """Whether it selects every tunnel of the account."""
        return self.tunnel_ids is None and not self.name_prefix


@dataclass(frozen=True)
class Reads:
    """
    The tunnel reads of one poll.

    :param whole_account: List every tunnel of the account (then ``prefixes`` and ``ids`` are empty).
    :param prefixes: List the tunnels of each of these name prefixes.
    :param ids: Read these tunnels one by one.
    :param requests: What it costs, as far as the last poll's counts tell (a list page per 1,000 tunnels).
    """

    whole_account: bool = False
    prefixes: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    requests: int = 0


def _pages(count: int | None) -> int:
    return max(1, math.ceil((count or 0) / LIST_PAGE_SIZE))


def plan_reads(
    demands: Iterable[Demand],
    *,
    account_size: int | None = None,
    prefix_sizes: Mapping[str, int] | None = None,
    names: Mapping[str, str] | None = None,
) -> Reads:
    """
    The cheapest reads that answer every demand: the whole account's list, or one list per name prefix plus the
    ids that no listed prefix covers one by one, whichever costs fewer requests (a tie goes to the narrower
    reads: smaller answers). An id whose tunnel a selected list does not return is read by id afterwards (see
    :func:`~airflow_provider_cftunnel.health.read_tunnels`): a scoped token hides it, or it was deleted.

    :param demands: What each check or watcher selects.
    :param account_size: Tunnels in the account, when a whole-account list told (else one page is assumed).
    :param prefix_sizes: Tunnels per name prefix, when known (else one page each).
    :param names: Each known tunnel's name by id, from earlier polls: an id whose name starts with a listed
        prefix comes with that list, at no extra cost.
    """
    demands = list(demands)
    if not demands:
        return Reads()
    whole = Reads(whole_account=True, requests=_pages(account_size))
    if any(d.whole_account for d in demands):
        return whole
    prefixes = sorted({d.name_prefix for d in demands if d.tunnel_ids is None and d.name_prefix})
    # a prefix inside another listed prefix is answered by the shorter one's list
    prefixes = [p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes)]
    known = names or {}
    ids = []
    for demand in demands:
        for tunnel_id in demand.tunnel_ids or ():
            name = known.get(tunnel_id)
            if name is not None and any(name.startswith(p) for p in prefixes):
                continue
            ids.append(tunnel_id)
    ids = list(dict.fromkeys(ids))
    sizes = prefix_sizes or {}
    narrow = Reads(
        prefixes=tuple(prefixes),
        ids=tuple(ids),
        requests=sum(_pages(sizes.get(p)) for p in prefixes) + len(ids),
    )
    return narrow if narrow.requests <= whole.requests else whole


@dataclass(frozen=True)
class ConnectionsRead:
    """
    What a poll remembers of a tunnel's last ``connections`` read.

    :param at: When it was read (seconds, the poller's clock).
    :param fields: The tunnel's ``(status, conns_active_at, conns_inactive_at)`` at that read.
    """

    at: float
    fields: tuple[str | None, str | None, str | None]


def connection_reads(
    need: Mapping[str, tuple[tuple[str | None, str | None, str | None], float | None]],
    last: Mapping[str, ConnectionsRead],
    now: float,
) -> list[str]:
    """
    The tunnels whose ``connections`` must be read this poll: every tunnel that needs them, except one whose
    last read is younger than its bound and whose ``status``, ``conns_active_at`` and ``conns_inactive_at`` are
    what they were then. Cloudflare changes those fields when a tunnel gains its first or loses its last
    connection, or a connection fails; a change they do not show (a connector moving to another data centre,
    one of several connections dropping without a status change) is seen once the bound has passed.

    :param need: ``{tunnel_id: ((status, conns_active_at, conns_inactive_at), max_age)}`` for each tunnel some
        rule needs the connections of; ``max_age`` ``None`` or 0 means every poll.
    :param last: The last read of each tunnel.
    :param now: The poller's clock.
    :return: The tunnel ids to read, in ``need``'s order.
    """
    reads = []
    for tunnel_id, (fields, max_age) in need.items():
        before = last.get(tunnel_id)
        if not max_age or before is None or before.fields != fields or now - before.at >= max_age:
            reads.append(tunnel_id)
    return reads


def check_max_age(value: object) -> float | None:
    """
    Validate a ``connections_max_age`` argument.

    :param value: Seconds (0 or more), or ``None``.
    :raises CloudflareConfigError: On anything else.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise CloudflareConfigError(
            f"connections_max_age must be a number of seconds (0 or more) or None, not {show_value(value)}"
        )
    return float(value)
