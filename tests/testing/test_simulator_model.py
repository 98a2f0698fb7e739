"""Property tests of the timeline model: what any timeline renders at any moment, against a plain oracle."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_cftunnel.testing.scenario import normalize_tunnel
from airflow_provider_cftunnel.testing.state import Tunnel

ACCOUNT = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
EPOCH = 1_800_000_000.0
#: One timeline per connector of a tunnel.
Timelines = list[list[dict[str, Any]]]

entry = st.one_of(
    st.tuples(st.integers(0, 30), st.integers(0, 6), st.integers(0, 6)),
    st.tuples(st.integers(0, 30), st.just(-1), st.just(-1)),  # gone
)


@st.composite
def timelines(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Draw one connector's timeline: entries at rising moments, each live and pending counts or gone."""
    at = 0
    timeline = []
    for step, live, pending in draw(st.lists(entry, min_size=1, max_size=6)):
        at += step
        timeline.append({"at": at, "gone": True} if live < 0 else {"at": at, "live": live, "pending": pending})
    return timeline


def tunnel_timelines(max_connectors: int) -> st.SearchStrategy[Timelines]:
    """Draw the timelines of a tunnel's connectors, one to ``max_connectors`` of them."""
    return st.lists(timelines(), min_size=1, max_size=max_connectors)


def moment_lists(min_size: int) -> st.SearchStrategy[list[float]]:
    """Draw the moments (seconds since the simulator started) at which to look at a tunnel."""
    return st.lists(st.floats(0, 200, allow_nan=False), min_size=min_size, max_size=8)


def make_tunnel(connector_timelines: Timelines) -> Tunnel:
    """Build the simulator's tunnel whose connectors follow ``connector_timelines``."""
    spec = normalize_tunnel(
        {"connectors": [{"timeline": t} for t in connector_timelines]},
        "tunnel",
        "5f3b1c2a-8d4e-4f6a-9b7c-0e1d2f3a4b5c",
        "t",
    )
    return Tunnel(spec, ACCOUNT)


def oracle_counts(timeline: list[dict[str, Any]], now: float) -> tuple[bool, int, int]:
    """Return whether the connector exists at ``now``, and its live and pending connections then."""
    past = [e for e in timeline if e["at"] <= now]
    if not past or past[-1].get("gone"):
        return False, 0, 0
    return True, past[-1]["live"], past[-1]["pending"]


@settings(max_examples=150, deadline=None)
@given(connector_timelines=tunnel_timelines(3), moments=moment_lists(1))
def test_rendering_matches_the_oracle(connector_timelines: Timelines, moments: list[float]) -> None:
    """Render connectors, connections and tunnel health at each moment exactly as the oracle says."""
    tunnel = make_tunnel(connector_timelines)
    for now in moments:
        clients = {c["id"]: c for c in tunnel.clients(now, EPOCH)}
        total_live = total_pending = 0
        for connector, timeline in zip(tunnel.connectors.values(), connector_timelines, strict=True):
            present, live, pending = oracle_counts(timeline, now)
            total_live += live
            total_pending += pending
            assert (connector.id in clients) == present
            if not present:
                continue
            conns = clients[connector.id]["conns"]
            assert [c["is_pending_reconnect"] for c in conns] == [False] * live + [True] * pending
            assert all(c["client_id"] == connector.id for c in conns)
            assert [c["colo_name"] for c in conns] == [("DFW", "IAD")[i % 2] for i in range(len(conns))]
        all_ids = [conn["id"] for c in clients.values() for conn in c["conns"]]
        assert len(all_ids) == len(set(all_ids)), "connection ids are unique"

        ever = any(e["at"] <= now and not e.get("gone") for t in connector_timelines for e in t)
        health = tunnel.health(now)
        if not ever:
            expected = "inactive"
        elif total_live:
            expected = "degraded" if total_pending else "healthy"
        else:
            expected = "down"
        assert health.status == expected
        if expected in ("healthy", "degraded"):
            assert health.active_at is not None
            assert health.active_at <= now
            assert health.inactive_at is None
        if health.inactive_at is not None:
            assert health.active_at is not None
            assert health.active_at <= health.inactive_at <= now

        rendered = tunnel.render(now, EPOCH)
        assert rendered["status"] == expected
        assert (rendered["conns_inactive_at"] is None) == (health.inactive_at is None)


@settings(max_examples=100, deadline=None)
@given(connector_timelines=tunnel_timelines(2), moments=moment_lists(2))
def test_cached_answers_equal_fresh_ones(connector_timelines: Timelines, moments: list[float]) -> None:
    """Answer a tunnel reused across moments exactly as a fresh one built at each moment."""
    reused = make_tunnel(connector_timelines)
    for now in moments:
        fresh = make_tunnel(connector_timelines)
        assert reused.clients(now, EPOCH) == fresh.clients(now, EPOCH)
        assert reused.render(now, EPOCH) == fresh.render(now, EPOCH)


@settings(max_examples=100, deadline=None)
@given(live=st.integers(1, 6), dropped=st.integers(0, 6), step=st.integers(1, 50))
def test_ids_and_opened_at_survive_a_drop_to_pending(live: int, dropped: int, step: int) -> None:
    """Keep each connection's id and ``opened_at`` when some of them drop to pending."""
    dropped = min(dropped, live)
    tunnel = make_tunnel([[{"at": 0, "live": live}, {"at": step, "live": live - dropped, "pending": dropped}]])
    before = tunnel.clients(0, EPOCH)[0]["conns"]
    after = tunnel.clients(step, EPOCH)[0]["conns"]
    assert [(c["id"], c["opened_at"]) for c in after] == [(c["id"], c["opened_at"]) for c in before]
