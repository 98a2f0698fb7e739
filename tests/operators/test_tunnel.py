"""The operator's real code against the local simulator."""

from __future__ import annotations

import pytest

from airflow_provider_cftunnel.exceptions import CloudflareNotFoundError
from airflow_provider_cftunnel.operators.tunnel import (
    CloudflareTunnelConnectorOperator,
    CloudflareTunnelLink,
    tunnel_dashboard_url,
)
from tests.support.fakes import RecordingTaskInstance


def test_returns_the_connector_as_cloudflare_sent_it(ready_sim):
    ti = RecordingTaskInstance()
    operator = CloudflareTunnelConnectorOperator(
        task_id="fetch", tunnel_id=ready_sim.tunnel_id, connector_id=ready_sim.connector_id
    )
    result = operator.execute({"ti": ti})
    assert result["id"] == ready_sim.connector_id
    assert all(c["is_pending_reconnect"] is False for c in result["conns"])
    assert set(result) >= {"id", "arch", "config_version", "conns", "features", "run_at", "version"}
    assert ti.pushed[CloudflareTunnelLink().xcom_key] == tunnel_dashboard_url(ready_sim.account_id, ready_sim.tunnel_id)


def test_link_is_stored_for_the_rendered_ids_at_no_extra_request(ready_sim):
    """The extra link is the dashboard page of the ids the task used (as rendered, account id as validated), and
    storing it costs no request: the task's only request is the connector's."""
    ti = RecordingTaskInstance()
    operator = CloudflareTunnelConnectorOperator(
        task_id="fetch",
        tunnel_id="{{ params.tunnel }}",
        connector_id="{{ params.connector }}",
        account_id="{{ params.account }}",
    )
    params = {"tunnel": ready_sim.tunnel_id, "connector": ready_sim.connector_id, "account": ready_sim.account_id}
    params["account"] = params["account"].upper()  # valid, and used lowercased
    context = {"params": params, "ti": ti}
    operator.render_template_fields(context)
    operator.execute(context)
    assert ti.pushed == {
        CloudflareTunnelLink().xcom_key: (
            f"https://one.dash.cloudflare.com/{ready_sim.account_id}/networks/tunnels/cfd_tunnel/"
            f"{ready_sim.tunnel_id}/edit"
        )
    }
    assert [(r.method, r.path) for r in ready_sim.requests] == [
        (
            "GET",
            f"/client/v4/accounts/{ready_sim.account_id}/cfd_tunnel/{ready_sim.tunnel_id}"
            f"/connectors/{ready_sim.connector_id}",
        )
    ]


def test_unknown_connector_fails_clearly(ready_sim):
    operator = CloudflareTunnelConnectorOperator(
        task_id="fetch", tunnel_id=ready_sim.tunnel_id, connector_id="00000000-0000-4000-8000-000000000000"
    )
    with pytest.raises(CloudflareNotFoundError, match="HTTP 404"):
        operator.execute({"ti": RecordingTaskInstance()})


def test_templated_fields_and_no_hook_at_init():
    operator = CloudflareTunnelConnectorOperator(task_id="fetch", tunnel_id="{{ params.t }}", connector_id="{{ x }}")
    assert set(operator.template_fields) == {"tunnel_id", "connector_id", "account_id"}
    assert "hook" not in operator.__dict__  # built on first use, never at DAG-parse time
    assert [link.name for link in operator.operator_extra_links] == ["Cloudflare Tunnel"]
