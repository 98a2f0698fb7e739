"""The fleet health check (selection, request cost, verdicts, report) against the local simulator."""

from __future__ import annotations

import functools
import json

import pytest

from airflow_provider_cftunnel.exceptions import CloudflareAuthError, CloudflareConfigError, CloudflareNotFoundError
from airflow_provider_cftunnel.health import (
    check_tunnel_health,
    describe_unhealthy,
    describe_unhealthy_lines,
    health_report,
    parse_tunnel_ids,
)
from airflow_provider_cftunnel.rules import HealthRule, TunnelHealth
from tests.support.fakes import fast_hook

UNKNOWN_ID = "00000000-0000-4000-8000-0000000000aa"


@pytest.fixture
def fleet(ready_sim):
    """The default tunnel (healthy) plus prod-web-1..4 (healthy, degraded, down, inactive), prod-db-1 (healthy,
    1 connection in 1 colo) and a deleted prod-web-old."""
    sim = ready_sim
    ids = {}
    for name in ("prod-web-1", "prod-web-2", "prod-web-3", "prod-web-4", "prod-db-1", "prod-web-old"):
        ids[name] = sim.add_tunnel(name=name)
    sim.add_connector(ids["prod-web-1"], live=4)
    sim.add_connector(ids["prod-web-2"], live=3, pending=1)
    old = sim.add_connector(ids["prod-web-3"], live=4)
    sim.remove_connector(ids["prod-web-3"], old)
    sim.add_connector(ids["prod-db-1"], live=1)
    sim.add_connector(ids["prod-web-old"], live=4)
    sim.delete_tunnel(ids["prod-web-old"])
    sim.clear_requests()
    return sim, ids


hook = functools.partial(fast_hook, max_retries=1)


def statuses(verdicts):
    return {v.name: (v.status, v.healthy) for v in verdicts}


class TestSelection:
    def test_prefix_excludes_deleted_tunnels_and_other_prefixes_in_one_request(self, fleet):
        sim, _ = fleet
        verdicts = check_tunnel_health(hook(), name_prefix="prod-web-")
        assert statuses(verdicts) == {
            "prod-web-1": ("healthy", True),
            "prod-web-2": ("degraded", False),
            "prod-web-3": ("down", False),
            "prod-web-4": ("inactive", False),
        }
        requests = sim.requests
        assert len(requests) == 1
        assert requests[0].query == {
            "include_prefix": "prod-web-",
            "is_deleted": "false",
            "per_page": "1000",
            "page": "1",
        }

    def test_whole_account_without_a_selection(self, fleet):
        sim, _ = fleet
        verdicts = check_tunnel_health(hook())
        assert {v.name for v in verdicts} == {
            "cfsim-tunnel",
            "prod-web-1",
            "prod-web-2",
            "prod-web-3",
            "prod-web-4",
            "prod-db-1",
        }
        assert len(sim.requests) == 1

    def test_default_rule_makes_no_connections_request(self, fleet):
        sim, _ = fleet
        check_tunnel_health(hook(), name_prefix="prod-")
        assert sim.requests_matching("/connections$") == []

    def test_explicit_ids_keep_their_order_and_report_unknown_and_deleted_ones(self, fleet):
        sim, ids = fleet
        wanted = [ids["prod-web-3"], UNKNOWN_ID, ids["prod-web-1"].upper(), ids["prod-web-old"]]
        verdicts = check_tunnel_health(hook(), tunnel_ids=wanted)
        assert [v.id for v in verdicts] == [i.lower() for i in wanted]
        assert [v.healthy for v in verdicts] == [False, False, True, False]
        assert verdicts[1].reasons == ("not visible to this token, or deleted (HTTP 404)",)
        assert verdicts[3].reasons[0].startswith("deleted at ")  # deleted tunnels never count
        # one list request (cheaper than four reads by id), then one read of each id the list did not return
        assert [r.path.rsplit("/", 1)[-1] for r in sim.requests] == ["cfd_tunnel", UNKNOWN_ID, ids["prod-web-old"]]

    def test_one_id_is_read_by_id(self, fleet):
        sim, ids = fleet
        (verdict,) = check_tunnel_health(hook(), tunnel_ids=[ids["prod-web-1"]])
        assert (verdict.name, verdict.healthy) == ("prod-web-1", True)
        assert [r.path.rsplit("/", 1)[-1] for r in sim.requests] == [ids["prod-web-1"]]

    def test_two_ids_cost_one_list_request_when_both_are_listed(self, fleet):
        sim, ids = fleet
        verdicts = check_tunnel_health(hook(), tunnel_ids=[ids["prod-web-2"], ids["prod-web-1"]])
        assert [(v.name, v.healthy) for v in verdicts] == [("prod-web-2", False), ("prod-web-1", True)]
        assert [r.path.rsplit("/", 1)[-1] for r in sim.requests] == ["cfd_tunnel"]

    def test_a_deleted_tunnel_read_by_id_is_unhealthy(self, fleet):
        _, ids = fleet
        (verdict,) = check_tunnel_health(hook(), tunnel_ids=[ids["prod-web-old"]])
        assert not verdict.healthy
        assert any("deleted" in r or "not found" in r for r in verdict.reasons)

    def test_ids_and_prefix_together_are_refused(self, fleet):
        with pytest.raises(CloudflareConfigError, match="not both"):
            check_tunnel_health(hook(), tunnel_ids=[UNKNOWN_ID], name_prefix="prod-")


class TestConnectionsOnlyWhereNeeded:
    def test_thresholds_fetch_connections_only_for_tunnels_whose_status_passes(self, fleet):
        sim, ids = fleet
        rule = HealthRule(("healthy", "degraded"), min_live_connections=2)
        verdicts = {v.name: v for v in check_tunnel_health(hook(), name_prefix="prod-", rule=rule)}
        fetched = sorted(r.path.split("/")[-2] for r in sim.requests_matching("/connections$"))
        assert fetched == sorted([ids["prod-web-1"], ids["prod-web-2"], ids["prod-db-1"]])
        assert verdicts["prod-web-1"].healthy
        assert verdicts["prod-web-1"].live_connections == 4
        assert verdicts["prod-web-1"].colos == ("DFW", "IAD")
        assert verdicts["prod-web-2"].healthy  # degraded allowed, 3 live
        assert verdicts["prod-db-1"].reasons == ("1 live connection(s), needs 2",)
        assert verdicts["prod-web-3"].live_connections is None  # down: not fetched, not guessed

    def test_min_colos(self, fleet):
        rule = HealthRule(min_colos=2)
        verdicts = {v.name: v for v in check_tunnel_health(hook(), name_prefix="prod-", rule=rule)}
        assert verdicts["prod-web-1"].healthy
        assert verdicts["prod-db-1"].reasons == ("1 data centre(s) (DFW), needs 2",)


class TestErrors:
    def test_bad_credentials_are_an_error_not_unhealthy(self, fleet, set_connection):
        sim, _ = fleet
        set_connection(password="revoked-token-9f8e7d", host=sim.base_url, extra={"account_id": sim.account_id})
        with pytest.raises(CloudflareAuthError):
            check_tunnel_health(hook(), name_prefix="prod-")

    def test_wrong_account_is_an_error(self, fleet):
        with pytest.raises(CloudflareNotFoundError, match="account"):
            check_tunnel_health(hook(), account_id="f" * 32, tunnel_ids=[UNKNOWN_ID])
        with pytest.raises(CloudflareNotFoundError, match="account"):
            check_tunnel_health(hook(), account_id="f" * 32)

    @pytest.mark.parametrize("value", [["not-a-uuid"], "x,y", [], "[1"])
    def test_malformed_ids_are_an_error(self, value):
        with pytest.raises(CloudflareConfigError):
            parse_tunnel_ids(value)


def test_parse_tunnel_ids_accepts_lists_and_strings():
    a, b = "c1744f8b-faa1-48a4-9e5c-02ac921467fa", "1bedc50d-42b3-473c-b108-ff3d10c0d925"
    assert parse_tunnel_ids(None) is None
    assert parse_tunnel_ids([a, b, a.upper()]) == [a, b]
    assert parse_tunnel_ids(f"{a}, {b}") == [a, b]
    assert parse_tunnel_ids(f'["{a}", "{b}"]') == [a, b]


def test_report_is_plain_json_with_no_secret(fleet):
    sim, ids = fleet
    rule = HealthRule(min_live_connections=2)
    verdicts = check_tunnel_health(hook(), name_prefix="prod-web-", rule=rule)
    report = health_report(verdicts, rule=rule, account_id=sim.account_id, name_prefix="prod-web-")
    text = json.dumps(report)
    assert json.loads(text) == report
    assert sim.api_token not in text
    assert report["healthy"] is False
    assert report["checked"] == 4
    assert report["healthy_count"] == 1
    assert sorted(report["unhealthy"]) == sorted(ids[n] for n in ("prod-web-2", "prod-web-3", "prod-web-4"))
    assert report["connections_fetched"] == 1
    assert report["selection"] == {"account_id": sim.account_id, "tunnel_ids": None, "name_prefix": "prod-web-"}
    assert report["rule"] == {"allowed_statuses": ["healthy"], "min_live_connections": 2, "min_colos": 1}


def test_describe_unhealthy_names_each_and_shortens_past_the_limit():
    rule = HealthRule()
    verdicts = [HealthRule.unknown(f"00000000-0000-4000-8000-{i:012d}") for i in range(25)]
    text = describe_unhealthy(verdicts, limit=20)
    assert text.startswith("25 of 25 tunnel(s) unhealthy: 00000000-0000-4000-8000-000000000000: not found")
    assert "000000000019" in text
    assert "000000000020" not in text
    assert text.endswith("; and 5 more")
    assert describe_unhealthy([]) == "all 0 tunnel(s) healthy"
    assert rule.allowed_statuses == ("healthy",)


def test_describe_unhealthy_lines_is_a_table_one_tunnel_per_line():
    down = TunnelHealth(
        "c1744f8b-faa1-48a4-9e5c-02ac921467fa", "prod-web-2", "down", False, ("status is down (needs healthy)",)
    )
    thin = TunnelHealth(
        "c1744f8b-faa1-48a4-9e5c-02ac921467fb",
        "prod-web-long-name-3",
        "healthy",
        False,
        ("1 live connection(s) (needs 2)", "1 data centre(s) (needs 2)"),
        live_connections=1,
    )
    fine = TunnelHealth("c1744f8b-faa1-48a4-9e5c-02ac921467fc", "prod-web-1", "healthy", True)
    lines = describe_unhealthy_lines([down, fine, thin, HealthRule.unknown(UNKNOWN_ID)])
    assert lines == [
        "NAME                  ID                                    STATUS   LIVE  WHY",
        "prod-web-2            c1744f8b-faa1-48a4-9e5c-02ac921467fa  down     -     status is down (needs healthy)",
        "prod-web-long-name-3  c1744f8b-faa1-48a4-9e5c-02ac921467fb  healthy  1     "
        "1 live connection(s) (needs 2); 1 data centre(s) (needs 2)",
        f"(unknown)             {UNKNOWN_ID}  -        -     "
        "not found: Cloudflare does not know this tunnel id in this account (deleted, or a typo)",
    ]
    assert describe_unhealthy_lines([fine]) == []
    many = describe_unhealthy_lines([HealthRule.unknown(f"00000000-0000-4000-8000-{i:012d}") for i in range(5)], 2)
    assert len(many) == 4
    assert many[-1] == "... and 3 more unhealthy tunnel(s) (all of them in the report's XCom)"


def test_a_costly_strict_check_warns(ready_sim, caplog):
    ready_sim.add_fleet("wide-", 101)
    with caplog.at_level("WARNING", logger="airflow_provider_cftunnel.health"):
        verdicts = check_tunnel_health(hook(), name_prefix="wide-", rule=HealthRule(min_live_connections=2))
    assert all(v.healthy for v in verdicts)
    assert "reads the connections of 101 tunnel(s), one request each" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="airflow_provider_cftunnel.health"):
        check_tunnel_health(hook(), name_prefix="wide-")
    assert caplog.text == ""


class TestScopedTokens:
    """Per-tunnel permissions (2026-09): the list returns only what the token may read; absence is not deletion."""

    @pytest.fixture
    def scoped(self, fleet, set_connection):
        sim, ids = fleet
        visible = [ids["prod-web-1"], ids["prod-web-2"]]
        sim.add_token("scoped-token-7f1e", tunnels=visible)
        set_connection(password="scoped-token-7f1e", host=sim.base_url, extra={"account_id": sim.account_id})
        return sim, ids

    def test_a_hidden_id_is_read_once_and_reported_not_visible_not_deleted(self, scoped):
        sim, ids = scoped
        wanted = [ids["prod-web-1"], ids["prod-web-2"], ids["prod-web-3"], UNKNOWN_ID]
        verdicts = check_tunnel_health(hook(), tunnel_ids=wanted)
        assert [(v.id, v.healthy) for v in verdicts] == [
            (ids["prod-web-1"], True),
            (ids["prod-web-2"], False),
            (ids["prod-web-3"], False),
            (UNKNOWN_ID, False),
        ]
        assert verdicts[2].reasons == ("not visible to this token (HTTP 403)",)
        assert verdicts[3].reasons == ("not visible to this token, or deleted (HTTP 404)",)
        assert [(r.path.rsplit("/", 1)[-1], r.status) for r in sim.requests] == [
            ("cfd_tunnel", 200),
            (ids["prod-web-3"], 403),
            (UNKNOWN_ID, 404),
        ]
        assert not any("deleted" in v.reasons[0] and "not visible" not in v.reasons[0] for v in verdicts[2:])

    def test_one_hidden_id_read_by_id(self, scoped):
        _, ids = scoped
        (verdict,) = check_tunnel_health(hook(), tunnel_ids=[ids["prod-db-1"]])
        assert verdict.reasons == ("not visible to this token (HTTP 403)",)

    def test_a_prefix_sees_only_the_visible_tunnels(self, scoped):
        _, ids = scoped
        verdicts = check_tunnel_health(hook(), name_prefix="prod-web-")
        assert {v.id for v in verdicts} == {ids["prod-web-1"], ids["prod-web-2"]}

    def test_a_token_without_tunnel_read_still_fails_as_an_error(self, fleet, set_connection):
        sim, ids = fleet
        from airflow_provider_cftunnel.testing import NO_PERMISSION_API_TOKEN

        set_connection(password=NO_PERMISSION_API_TOKEN, host=sim.base_url, extra={"account_id": sim.account_id})
        with pytest.raises(CloudflareAuthError):
            check_tunnel_health(hook(), tunnel_ids=[ids["prod-web-1"]])
