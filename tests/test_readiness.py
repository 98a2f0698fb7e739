"""The readiness rule, its clock and its verdict (pure functions: every time is passed in)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
import pytest

from airflow_provider_cftunnel.exceptions import CloudflareConfigError
from airflow_provider_cftunnel.models import TunnelConnector
from airflow_provider_cftunnel.readiness import (
    GateVerdict,
    ReadinessClock,
    ReadinessRule,
    describe_wait,
    evaluate,
    parse_stable_for,
)
from airflow_provider_cftunnel.ready import ReadyAnswer

OLD = "0f0f0f0f-0000-4000-8000-000000000001"
NEW = "1e1e1e1e-0000-4000-8000-000000000002"
URL = "http://cloudflared:20241/ready"


def connector(cid: str, live: int, pending: int = 0, *, run_at: str | None = None, colos=("DFW", "IAD")):
    conns = [{"is_pending_reconnect": False, "colo_name": colos[i % len(colos)]} for i in range(live)]
    conns += [{"is_pending_reconnect": True, "colo_name": "ORD"}] * pending
    data = {"id": cid, "conns": conns, **({"run_at": run_at} if run_at else {})}
    return TunnelConnector.from_dict(data)


def ready(cid: str | None = NEW, ok: bool = True) -> ReadyAnswer:
    return ReadyAnswer(URL, ok, cid if ok else None, 4 if ok else 0, "" if ok else "HTTP 503")


class TestRule:
    def test_round_trip(self):
        rule = ReadinessRule(2, NEW.upper(), "2026-12-01T10:00:00Z", 2, timedelta(seconds=30))
        assert rule.connector_id == NEW
        assert rule.started_after == pendulum.datetime(2026, 12, 1, 10)
        assert rule.stable_for == 30.0
        assert rule.to_dict() == {
            "min_connections": 2,
            "connector_id": NEW,
            "started_after": "2026-12-01T10:00:00+00:00",
            "min_colos": 2,
            "stable_for": 30.0,
        }
        assert ReadinessRule.from_dict(rule.to_dict()) == rule

    @pytest.mark.parametrize(
        ("kwargs", "needle"),
        [
            ({"min_connections": 0}, "min_connections"),
            ({"min_connections": True}, "min_connections"),
            ({"min_colos": -1}, "min_colos"),
            ({"connector_id": "abc"}, "connector_id"),
            ({"started_after": "after lunch"}, "started_after"),
            ({"stable_for": -1}, "stable_for"),
            ({"stable_for": "thirty"}, "stable_for"),
        ],
    )
    def test_bad_values_are_clear_errors(self, kwargs, needle):
        with pytest.raises(CloudflareConfigError, match=needle):
            ReadinessRule(**kwargs)

    def test_stable_for_takes_seconds_or_a_timedelta(self):
        assert parse_stable_for(0) == 0.0
        assert parse_stable_for(2.5) == 2.5
        assert parse_stable_for(timedelta(minutes=1)) == 60.0
        assert parse_stable_for(" 30 ") == 30.0  # a rendered template
        with pytest.raises(CloudflareConfigError, match="stable_for"):
            parse_stable_for(float("nan"))


class TestClock:
    def test_runs_while_the_same_connector_holds_and_restarts_otherwise(self):
        clock = ReadinessClock().observe(NEW, 100.0)
        assert clock.observe(NEW, 110.0).held_for(110.0) == 10.0
        assert clock.observe(OLD, 110.0) == ReadinessClock(OLD, 110.0)
        assert clock.observe(None, 110.0) == ReadinessClock()
        assert ReadinessClock().held_for(50.0) == 0.0


class TestEvaluate:
    def test_stable_for_opens_only_after_every_poll_held_that_long(self):
        rule = ReadinessRule(min_connections=2, stable_for=30)
        up = [connector(NEW, 4)]
        first = evaluate(rule, up, now=1000.0)
        assert (first.ready, first.due_in, first.connector.id) == (False, 30.0, NEW)
        assert "held for 0 s of stable_for 30 s" in first.reason
        later = evaluate(rule, up, now=1020.0, clock=first.clock)
        assert (later.ready, later.due_in) == (False, 10.0)
        assert evaluate(rule, up, now=1030.0, clock=later.clock).ready
        # one poll where it did not hold starts the count again
        dropped = evaluate(rule, [connector(NEW, 1, 3)], now=1025.0, clock=later.clock)
        assert dropped.clock == ReadinessClock()
        assert dropped.due_in is None
        again = evaluate(rule, up, now=1030.0, clock=dropped.clock)
        assert not again.ready
        assert again.clock.held_since == 1030.0

    def test_without_stable_for_the_first_good_poll_opens(self):
        verdict = evaluate(ReadinessRule(), [connector(NEW, 1)], now=0.0)
        assert verdict.ready
        assert verdict.connector.id == NEW

    def test_ready_url_names_the_connector_and_the_api_must_agree(self):
        rule = ReadinessRule(min_connections=2)
        both = [connector(OLD, 4), connector(NEW, 1)]
        shut = evaluate(rule, both, now=0.0, ready=ready(NEW))
        assert not shut.ready  # the old connector is live, but /ready names the new one
        assert shut.reason.startswith(f"not ready: cloudflared at {URL} reports connector {NEW} ready")
        assert f"but in the API connector {NEW}" in shut.reason
        assert evaluate(rule, [connector(OLD, 4), connector(NEW, 2)], now=0.0, ready=ready(NEW)).connector.id == NEW

    def test_ready_url_not_ready_keeps_the_gate_shut_even_with_live_connectors(self):
        verdict = evaluate(ReadinessRule(), [connector(NEW, 4)], now=0.0, ready=ready(ok=False))
        assert verdict == GateVerdict.waiting(f"not ready: cloudflared at {URL} not ready (HTTP 503)")

    def test_local_ready_while_the_api_shows_nothing_stays_shut(self):
        verdict = evaluate(ReadinessRule(), [], now=0.0, ready=ready(NEW))
        assert not verdict.ready
        assert verdict.reason.endswith(f"but in the API connector {NEW} not registered yet")

    def test_another_connector_meeting_the_rule_restarts_the_clock(self):
        rule = ReadinessRule(stable_for=10)
        first = evaluate(rule, [connector(OLD, 4)], now=0.0)
        swapped = evaluate(rule, [connector(OLD, 0, 4), connector(NEW, 4)], now=9.0, clock=first.clock)
        assert swapped.clock == ReadinessClock(NEW, 9.0)
        assert not swapped.ready


class TestReasons:
    def test_started_after_reason_names_the_newest_run_at(self):
        connectors = [
            connector(OLD, 4, run_at="2026-12-07T13:58:40Z"),
            connector(NEW, 4, run_at="2026-12-07T13:50:00Z"),
        ]
        rule = ReadinessRule(started_after="2026-12-07T14:02:11Z")
        assert rule.explain(connectors) == (
            "not ready: 2 connector(s) registered, 2 live, none started at or after 2026-12-07T14:02:11Z; "
            "newest run_at 2026-12-07T13:58:40Z; waiting for a connector with 1 live connection(s), started at "
            "or after 2026-12-07T14:02:11Z"
        )

    def test_names_the_connector_it_waits_for(self):
        others = [connector(OLD, 4)]
        assert describe_wait(others, connector_id=NEW, min_connections=2) == (
            f"not ready: connector {NEW} not registered yet"
        )
        mine = connector(NEW, 1, run_at="2026-12-01T10:00:00Z", colos=("DFW",))
        assert describe_wait([*others, mine], connector_id=NEW, min_connections=2) == (
            f"not ready: connector {NEW} (started 2026-12-01T10:00:00Z): 1 live, 0 pending (DFW); "
            "waiting for a connector with 2 live connection(s)"
        )

    def test_whole_tunnel(self):
        assert describe_wait([], connector_id=None, min_connections=3) == "not ready: no connector registered"
        many = [
            TunnelConnector.from_dict({"id": f"c{i}", "conns": [], "run_at": "2026-12-01T11:00:00Z"}) for i in range(7)
        ]
        assert describe_wait(
            many, connector_id=None, min_connections=3, min_colos=2, started_after=pendulum.datetime(2026, 12, 1, 10)
        ) == (
            "not ready: connector c0 (started 2026-12-01T11:00:00Z): 0 live, 0 pending; "
            "connector c1 (started 2026-12-01T11:00:00Z): 0 live, 0 pending; "
            "connector c2 (started 2026-12-01T11:00:00Z): 0 live, 0 pending; "
            "connector c3 (started 2026-12-01T11:00:00Z): 0 live, 0 pending; "
            "connector c4 (started 2026-12-01T11:00:00Z): 0 live, 0 pending; "
            "and 2 more; waiting for a connector with 3 live connection(s) in 2 data centres, "
            "started at or after 2026-12-01T10:00:00Z"
        )
