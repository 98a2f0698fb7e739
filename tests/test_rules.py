"""The readiness and health rules (pure functions of Cloudflare's JSON)."""

from __future__ import annotations

import json

import pendulum
import pytest

from airflow_provider_cftunnel.exceptions import CloudflareConfigError
from airflow_provider_cftunnel.models import Tunnel, TunnelConnector
from airflow_provider_cftunnel.rules import (
    HealthRule,
    find_ready_connector,
    live_summary,
    parse_started_after,
)

TUNNEL_ID = "c1744f8b-faa1-48a4-9e5c-02ac921467fa"


def connector(live: int, pending: int = 0, *, colos=("DFW",), run_at: str | None = None, cid="c", version=None):
    conns = [{"is_pending_reconnect": False, "colo_name": colos[i % len(colos)]} for i in range(live)]
    conns += [{"is_pending_reconnect": True, "colo_name": "ORD"}] * pending
    data = {"id": cid, "conns": conns, "run_at": run_at, "version": version}
    return TunnelConnector.from_dict({k: v for k, v in data.items() if v is not None})


def tunnel(status: str | None, **extra) -> Tunnel:
    return Tunnel.from_dict({"id": TUNNEL_ID.upper(), "name": "prod-web-1", "status": status, **extra})


class TestLiveSummary:
    def test_sums_live_connections_and_counts_distinct_colos(self):
        summary = live_summary([connector(2, 1, colos=("DFW", "IAD")), connector(2, colos=("IAD",), cid="d")])
        assert summary == (4, ["DFW", "IAD"])

    def test_pending_connections_reach_no_colo(self):
        assert live_summary([connector(0, 4)]) == (0, [])


class TestFindReadyConnector:
    def test_started_after_skips_the_old_connector(self):
        old = connector(4, run_at="2026-12-01T09:00:00Z", cid="old")
        new = connector(1, run_at="2026-12-01T10:05:00Z", cid="new")
        deploy = pendulum.datetime(2026, 12, 1, 10)
        assert find_ready_connector([old, new], min_connections=2, started_after=deploy) is None
        assert find_ready_connector([old, new], min_connections=1, started_after=deploy).id == "new"
        assert find_ready_connector([old, new], min_connections=2).id == "old"

    def test_a_connector_without_run_at_does_not_count_after_a_time(self):
        assert find_ready_connector([connector(4)], started_after=pendulum.datetime(2026, 1, 1)) is None

    def test_min_colos(self):
        one_colo = connector(4, colos=("DFW",), cid="a")
        two_colos = connector(2, colos=("DFW", "IAD"), cid="b")
        assert find_ready_connector([one_colo, two_colos], min_colos=2).id == "b"
        assert find_ready_connector([one_colo], min_colos=2) is None
        assert find_ready_connector([one_colo, two_colos], min_colos=1).id == "a"  # the most live connections


class TestParseStartedAfter:
    @pytest.mark.parametrize(
        "value",
        ["2026-12-01T10:00:00+00:00", "2026-12-01T10:00:00Z", "2026-12-01 10:00:00", "2026-12-01T11:00:00+01:00"],
    )
    def test_iso_strings(self, value):
        assert parse_started_after(value) == pendulum.datetime(2026, 12, 1, 10)

    def test_datetimes_and_empty(self):
        assert parse_started_after(pendulum.datetime(2026, 12, 1, 10)) == pendulum.datetime(2026, 12, 1, 10)
        assert parse_started_after(None) is None
        assert parse_started_after("") is None

    @pytest.mark.parametrize("value", ["yesterday", 12, ["2026-12-01"]])
    def test_garbage_is_a_clear_error(self, value):
        with pytest.raises(CloudflareConfigError, match="started_after"):
            parse_started_after(value)


class TestHealthRule:
    def test_defaults(self):
        rule = HealthRule()
        assert (rule.allowed_statuses, rule.min_live_connections, rule.min_colos) == (("healthy",), 1, 1)
        assert not rule.strict

    @pytest.mark.parametrize("status", ["healthy", "degraded", "down", "inactive"])
    def test_default_rule_needs_no_connectors(self, status):
        assert not HealthRule().needs_connectors(tunnel(status))

    def test_strict_rule_needs_connectors_only_where_the_status_passes_and_serves(self):
        rule = HealthRule(("healthy", "degraded", "down"), min_live_connections=4)
        assert rule.needs_connectors(tunnel("healthy"))
        assert rule.needs_connectors(tunnel("degraded"))
        assert not rule.needs_connectors(tunnel("down"))  # no connection: nothing to count
        assert not HealthRule(min_colos=2).needs_connectors(tunnel("down"))  # fails on status already

    def test_status_alone(self):
        assert HealthRule().evaluate(tunnel("healthy")).healthy
        verdict = HealthRule().evaluate(tunnel("degraded"))
        assert not verdict.healthy
        assert verdict.reasons == ("status is degraded (needs healthy)",)
        assert HealthRule(("healthy", "degraded")).evaluate(tunnel("degraded")).healthy

    def test_allowed_but_not_serving_status_has_no_live_connection(self):
        verdict = HealthRule(("down",)).evaluate(tunnel("down"))
        assert verdict.reasons == ("status down means no live connection, needs 1",)
        assert HealthRule(("down",), min_live_connections=0, min_colos=0).evaluate(tunnel("down")).healthy

    def test_thresholds_with_connectors(self):
        rule = HealthRule(min_live_connections=4, min_colos=2)
        ok = rule.evaluate(tunnel("healthy"), [connector(2, colos=("DFW", "IAD")), connector(2, cid="d")])
        assert ok.healthy
        assert (ok.live_connections, ok.colos, ok.connectors) == (4, ("DFW", "IAD"), 2)
        bad = rule.evaluate(tunnel("healthy"), [connector(3, 1, version="2026.11.0")])
        assert bad.reasons == ("3 live connection(s), needs 4", "1 data centre(s) (DFW), needs 2")
        assert bad.versions == ("2026.11.0",)

    def test_fields_not_fetched_are_null(self):
        report = HealthRule().evaluate(tunnel("healthy", conns_inactive_at=None, conns_active_at="x")).to_dict()
        assert report["live_connections"] is None
        assert report["colos"] is None
        assert report["connectors"] is None
        assert report["versions"] is None
        assert report["conns_active_at"] == "x"
        assert report["id"] == TUNNEL_ID  # lower-cased
        assert json.loads(json.dumps(report)) == report

    def test_deleted_is_unhealthy(self):
        verdict = HealthRule().evaluate(tunnel("healthy", deleted_at="2026-12-01T10:00:00Z"))
        assert verdict.reasons == ("deleted at 2026-12-01T10:00:00Z",)

    def test_unknown_status(self):
        assert HealthRule().evaluate(tunnel(None)).reasons == ("status is unknown (needs healthy)",)

    def test_unknown_id(self):
        verdict = HealthRule.unknown(TUNNEL_ID.upper())
        assert not verdict.healthy
        assert verdict.id == TUNNEL_ID
        assert "not found" in verdict.reasons[0]

    @pytest.mark.parametrize(
        ("kwargs", "needle"),
        [
            ({"allowed_statuses": ("healthy", "up")}, "allowed_statuses has ['up']"),
            ({"allowed_statuses": ()}, "non-empty"),
            ({"min_live_connections": -1}, "min_live_connections"),
            ({"min_colos": 1.5}, "min_colos"),
            ({"min_colos": True}, "min_colos"),
        ],
    )
    def test_bad_rules_are_clear_errors(self, kwargs, needle):
        with pytest.raises(CloudflareConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
            HealthRule(**kwargs)

    def test_a_single_status_string_and_lists(self):
        assert HealthRule("degraded").allowed_statuses == ("degraded",)
        assert HealthRule(["healthy", "degraded"]).allowed_statuses == ("healthy", "degraded")
