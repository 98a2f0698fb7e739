"""The health operator's real code against the local simulator."""

from __future__ import annotations

import json

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_cftunnel.exceptions import CloudflareAuthError, CloudflareConfigError
from airflow_provider_cftunnel.operators.health import HEALTH_REPORT_XCOM_KEY, CloudflareTunnelHealthOperator
from tests.support.fakes import RecordingTaskInstance

UNKNOWN_ID = "00000000-0000-4000-8000-0000000000aa"


@pytest.fixture
def fleet(ready_sim):
    """prod-web-1 and -2 healthy, prod-web-3 down, and the default tunnel (healthy, another name)."""
    sim = ready_sim
    ids = [sim.add_tunnel(name=f"prod-web-{i}") for i in (1, 2, 3)]
    for tunnel_id in ids:
        sim.add_connector(tunnel_id, live=4)
    sim.set_tunnel_status(ids[2], "down")
    sim.clear_requests()
    return sim, ids


def run(**kwargs):
    ti = RecordingTaskInstance()
    operator = CloudflareTunnelHealthOperator(task_id="check", **kwargs)
    try:
        return operator.execute({"ti": ti}), ti.pushed
    except Exception as error:
        error.pushed = ti.pushed  # type: ignore[attr-defined]
        raise


def test_all_healthy_returns_the_report(fleet):
    sim, ids = fleet
    report, pushed = run(tunnel_ids=ids[:2])
    assert report["healthy"] is True
    assert report["checked"] == 2
    assert [t["name"] for t in report["tunnels"]] == ["prod-web-1", "prod-web-2"]
    assert pushed[HEALTH_REPORT_XCOM_KEY] == report
    assert json.loads(json.dumps(report)) == report
    assert sim.api_token not in json.dumps(report)


def test_unhealthy_fails_without_retries_naming_each_tunnel_and_pushes_the_report_first(fleet):
    sim, ids = fleet
    with pytest.raises(AirflowFailException) as info:
        run(name_prefix="prod-web-")
    message = str(info.value)
    assert f"1 of 3 tunnel(s) unhealthy: prod-web-3 ({ids[2]}): status is down (needs healthy)" in message
    report = info.value.pushed[HEALTH_REPORT_XCOM_KEY]
    assert report["healthy"] is False
    assert report["unhealthy"] == [ids[2]]
    (down,) = [t for t in report["tunnels"] if not t["healthy"]]
    assert down["status"] == "down"
    assert down["conns_inactive_at"] is not None
    assert len(sim.requests) == 1  # one list request, no connections request with the default rule


def test_fail_on_unhealthy_false_only_reports(fleet):
    _, ids = fleet
    report, _ = run(name_prefix="prod-web-", fail_on_unhealthy=False)
    assert report["unhealthy"] == [ids[2]]


def test_an_unknown_id_is_reported_not_a_crash(fleet):
    _, ids = fleet
    with pytest.raises(
        AirflowFailException, match=rf"{UNKNOWN_ID}: not visible to this token, or deleted \(HTTP 404\)"
    ):
        run(tunnel_ids=f"{ids[0]}, {UNKNOWN_ID}")


def test_strict_thresholds_read_connections(fleet):
    sim, _ = fleet
    report, _ = run(name_prefix="prod-web-", min_live_connections=4, min_colos=2, fail_on_unhealthy=False)
    assert report["connections_fetched"] == 2  # the two healthy ones; the down one fails on status alone
    assert len(sim.requests_matching("/connections$")) == 2
    assert {t["name"]: t["live_connections"] for t in report["tunnels"]} == {
        "prod-web-1": 4,
        "prod-web-2": 4,
        "prod-web-3": None,
    }


def test_bad_credentials_fail_as_an_error(fleet, set_connection):
    sim, _ = fleet
    set_connection(password="revoked-token-1a2b3c", host=sim.base_url, extra={"account_id": sim.account_id})
    with pytest.raises(CloudflareAuthError) as info:
        run(name_prefix="prod-web-")
    assert HEALTH_REPORT_XCOM_KEY not in info.value.pushed  # no report: this says nothing about the fleet


def test_hook_params_reach_the_hook():
    operator = CloudflareTunnelHealthOperator(
        task_id="check", hook_params={"timeout": [1, 2], "max_retries": 0, "backoff_factor": 0.5}
    )
    assert operator.hook.timeout == (1.0, 2.0)
    assert operator.hook.max_retries == 0
    assert operator.hook.backoff_factor == 0.5


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"allowed_statuses": ["fine"]}, CloudflareConfigError, "allowed_statuses"),
        ({"min_live_connections": -1}, CloudflareConfigError, "min_live_connections"),
        ({"hook_params": {"retries": 3}}, ValueError, "unknown retries"),
        ({"max_workers": 0}, ValueError, "max_workers"),
    ],
)
def test_bad_arguments_fail_at_parse_time(kwargs, error, needle):
    with pytest.raises(error, match=needle):
        CloudflareTunnelHealthOperator(task_id="check", **kwargs)


def test_templated_fields_and_no_hook_at_init():
    operator = CloudflareTunnelHealthOperator(task_id="check", name_prefix="{{ params.prefix }}")
    assert set(operator.template_fields) == {"tunnel_ids", "name_prefix", "account_id"}
    assert "hook" not in operator.__dict__


def test_a_scoped_token_reports_hidden_tunnels_as_not_visible(fleet, set_connection):
    sim, ids = fleet
    sim.add_token("scoped-token-44ab", tunnels=ids[:1])
    set_connection(password="scoped-token-44ab", host=sim.base_url, extra={"account_id": sim.account_id})
    report, _ = run(tunnel_ids=[ids[0], ids[1], UNKNOWN_ID], fail_on_unhealthy=False)
    reasons = {t["id"]: t["reasons"] for t in report["tunnels"]}
    assert reasons == {
        ids[0]: [],
        ids[1]: ["not visible to this token (HTTP 403)"],
        UNKNOWN_ID: ["not visible to this token, or deleted (HTTP 404)"],
    }
    assert report["unhealthy"] == [ids[1], UNKNOWN_ID]
