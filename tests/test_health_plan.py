"""What a shared health poll reads: the cheapest tunnel reads, and whose ``connections`` to read again."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_cftunnel.health_plan import ConnectionsRead, Demand, Reads, connection_reads, plan_reads
from airflow_provider_cftunnel.models import Tunnel, TunnelConnector
from airflow_provider_cftunnel.rules import HealthRule


def ids(n: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


class TestPlanReads:
    def test_nothing_to_read_without_demands(self):
        assert plan_reads([]) == Reads()

    def test_two_hundred_single_id_watchers_cost_one_list(self):
        demands = [Demand(tunnel_ids=(i,)) for i in ids(200)]
        assert plan_reads(demands, account_size=1000) == Reads(whole_account=True, requests=1)

    def test_a_large_account_is_read_by_id_when_fewer_requests(self):
        demands = [Demand(tunnel_ids=(i,)) for i in ids(3)]
        assert plan_reads(demands, account_size=5000) == Reads(ids=tuple(ids(3)), requests=3)
        assert plan_reads(demands, account_size=1000).whole_account

    def test_one_id_is_read_by_id_and_a_tie_goes_to_the_narrower_read(self):
        assert plan_reads([Demand(tunnel_ids=tuple(ids(1)))]) == Reads(ids=tuple(ids(1)), requests=1)
        assert plan_reads([Demand(name_prefix="web-")]) == Reads(prefixes=("web-",), requests=1)

    def test_a_watcher_of_everything_reads_the_whole_account(self):
        demands = [Demand(name_prefix="web-"), Demand()]
        assert plan_reads(demands, account_size=2500) == Reads(whole_account=True, requests=3)

    def test_prefixes_inside_a_listed_prefix_and_ids_known_to_match_it_cost_nothing_more(self):
        a, b = ids(2)
        demands = [Demand(name_prefix="prod-"), Demand(name_prefix="prod-web-"), Demand(tunnel_ids=(a, b))]
        plan = plan_reads(demands, account_size=9000, names={a: "prod-db-1", b: "dev-1"})
        assert plan == Reads(prefixes=("prod-",), ids=(b,), requests=2)

    def test_known_prefix_sizes_price_their_pages(self):
        demands = [Demand(name_prefix="web-"), Demand(name_prefix="db-")]
        assert plan_reads(demands, account_size=3000, prefix_sizes={"web-": 2400}) == Reads(
            whole_account=True, requests=3
        )
        assert plan_reads(demands, account_size=5000, prefix_sizes={"web-": 2400}) == Reads(
            prefixes=("db-", "web-"), requests=4
        )


class TestConnectionReads:
    FIELDS = ("healthy", "2026-12-01T00:00:00Z", None)

    def test_first_read_changed_fields_and_an_expired_bound_read_again(self):
        last = {
            "same": ConnectionsRead(100.0, self.FIELDS),
            "moved": ConnectionsRead(100.0, ("degraded", *self.FIELDS[1:])),
            "old": ConnectionsRead(0.0, self.FIELDS),
        }
        need = {t: (self.FIELDS, 60.0) for t in ("new", "same", "moved", "old")}
        assert connection_reads(need, last, now=120.0) == ["new", "moved", "old"]

    def test_without_a_bound_every_poll_reads(self):
        last = {"a": ConnectionsRead(100.0, self.FIELDS)}
        assert connection_reads({"a": (self.FIELDS, None)}, last, 100.5) == ["a"]
        assert connection_reads({"a": (self.FIELDS, 0.0)}, last, 100.5) == ["a"]


# -- the differential test: reads reused within a bound against a full read at every poll --

COLOS = ("IAD", "ORD", "DFW", "AMS")
RULES = [HealthRule(min_live_connections=4), HealthRule(min_live_connections=2, min_colos=2), HealthRule(min_colos=2)]


def _connectors(live: list[tuple[str, int]]) -> list[TunnelConnector]:
    conns = [
        {"colo_name": colo, "is_pending_reconnect": False, "id": f"{colo}-{n}"}
        for colo, count in live
        for n in range(count)
    ]
    return [TunnelConnector.from_dict({"id": str(uuid.UUID(int=7)), "conns": conns})]


def _tunnel(tunnel_id: str, status: str, active_at: str | None, inactive_at: str | None) -> Tunnel:
    return Tunnel.from_dict(
        {
            "id": tunnel_id,
            "name": tunnel_id[:8],
            "status": status,
            "conns_active_at": active_at,
            "conns_inactive_at": inactive_at,
        }
    )


step = st.tuples(
    st.floats(min_value=0.0, max_value=40.0),  # seconds until the next poll
    st.lists(  # what changes before it: (tunnel index, kind, connections per colo)
        st.tuples(
            st.integers(0, 5),
            st.sampled_from(["silent", "status", "down"]),
            st.lists(st.tuples(st.sampled_from(COLOS), st.integers(0, 4)), min_size=1, max_size=3),
        ),
        max_size=4,
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    rule=st.sampled_from(RULES),
    bound=st.sampled_from([5.0, 15.0, 60.0]),
    steps=st.lists(step, min_size=1, max_size=25),
)
def test_verdicts_equal_a_full_read_whenever_the_bound_has_passed(rule, bound, steps):
    """Over random fleets and changes: a verdict from a reused read differs from the full read's only while the
    read is younger than the bound and the tunnel's status fields are what they were at the read; once the bound
    has passed (or a field changed) the verdicts are equal."""
    tunnel_ids = ids(6)
    truth = {t: [("IAD", 2), ("ORD", 2)] for t in tunnel_ids}
    fields = {t: ["healthy", "t0", None] for t in tunnel_ids}
    last: dict[str, ConnectionsRead] = {}
    cached: dict[str, list[TunnelConnector]] = {}
    now = 0.0
    for tick, (dt, changes) in enumerate(steps):
        for index, kind, live in changes:
            tunnel_id = tunnel_ids[index]
            if kind == "silent":  # connections move or drop without Cloudflare changing the status fields
                truth[tunnel_id] = live
            elif kind == "status":  # a connection failed or came back: Cloudflare's status says so
                truth[tunnel_id] = live
                fields[tunnel_id][0] = "degraded" if fields[tunnel_id][0] == "healthy" else "healthy"
            else:  # lost its last connection, then back: both timestamps move
                truth[tunnel_id] = live
                fields[tunnel_id][1:] = [f"a{tick}", f"i{tick}"]
        now += dt
        tunnels = {t: _tunnel(t, *fields[t]) for t in tunnel_ids}
        need = {
            t: ((tunnel.status, tunnel.raw["conns_active_at"], tunnel.raw["conns_inactive_at"]), bound)
            for t, tunnel in tunnels.items()
            if rule.needs_connectors(tunnel)
        }
        before = dict(last)
        for tunnel_id in connection_reads(need, last, now):
            cached[tunnel_id] = _connectors(truth[tunnel_id])
            last[tunnel_id] = ConnectionsRead(now, need[tunnel_id][0])
        for tunnel_id in need:
            reused = rule.evaluate(tunnels[tunnel_id], cached[tunnel_id])
            full = rule.evaluate(tunnels[tunnel_id], _connectors(truth[tunnel_id]))
            previous = before.get(tunnel_id)
            expired = previous is None or now - previous.at >= bound or previous.fields != need[tunnel_id][0]
            if expired:
                assert reused == full, (tunnel_id, now, previous)
            elif reused != full:
                assert now - last[tunnel_id].at < bound
                assert last[tunnel_id].fields == need[tunnel_id][0]
