"""The hook against the local Cloudflare simulator: real HTTP on loopback, real retries and timeouts."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from airflow_provider_cftunnel.exceptions import (
    CloudflareAPIError,
    CloudflareAuthError,
    CloudflareConfigError,
    CloudflareNotFoundError,
    CloudflareRateLimitError,
)
from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook
from airflow_provider_cftunnel.testing import OTHER_ACCOUNT_ID
from tests.support.fakes import fast_hook

CONNECTOR_PATH = r"/connectors/"
CONNECTIONS_PATH = r"/connections$"


def api_requests(sim):
    return sim.requests_matching(r"^/client/v4/")


class TestCalls:
    def test_get_tunnel_connector(self, ready_sim):
        connector = fast_hook().get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        assert connector.id == ready_sim.connector_id
        assert len(connector.active_connections) == 4
        assert connector.to_dict()["id"] == ready_sim.connector_id
        (record,) = api_requests(ready_sim)
        assert record.path == (
            f"/client/v4/accounts/{ready_sim.account_id}/cfd_tunnel/{ready_sim.tunnel_id}"
            f"/connectors/{ready_sim.connector_id}"
        )

    def test_sends_bearer_token_and_user_agent(self, ready_sim):
        fast_hook().get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        (record,) = api_requests(ready_sim)
        assert record.headers["Authorization"] == f"Bearer {ready_sim.api_token}"
        assert record.headers["User-Agent"].startswith("airflow-provider-cftunnel/")
        assert "X-Auth-Key" not in record.headers

    def test_global_api_key_is_sent_as_x_auth_headers(self, ready_sim, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", ready_sim.connection_json("global_key"))
        connector = fast_hook().get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        assert connector.id == ready_sim.connector_id
        (record,) = api_requests(ready_sim)
        assert record.headers["X-Auth-Email"] == ready_sim.global_key_email
        assert record.headers["X-Auth-Key"] == ready_sim.global_key
        assert "Authorization" not in record.headers

    def test_list_tunnel_connectors(self, ready_sim):
        second = ready_sim.add_connector(live=2)
        connectors = fast_hook().list_tunnel_connectors(ready_sim.tunnel_id)
        assert {c.id for c in connectors} == {ready_sim.connector_id, second}

    def test_null_result_is_an_empty_list(self, ready_sim):
        ready_sim.inject_fault(CONNECTIONS_PATH, kind="null_result")
        assert fast_hook().list_tunnel_connectors(ready_sim.tunnel_id) == []

    def test_get_tunnel(self, ready_sim):
        tunnel = fast_hook().get_tunnel(ready_sim.tunnel_id)
        assert tunnel.id == ready_sim.tunnel_id
        assert tunnel.status == "healthy"

    def test_list_tunnels_follows_every_page(self, ready_sim):
        added = {ready_sim.add_tunnel(name=f"t{i}") for i in range(5)}
        tunnels = fast_hook().list_tunnels(per_page=2)
        assert {t.id for t in tunnels} == added | {ready_sim.tunnel_id}
        pages = [r.query["page"] for r in api_requests(ready_sim)]
        assert pages == ["1", "2", "3"]

    def test_list_tunnels_filters(self, ready_sim):
        ready_sim.add_tunnel(name="other")
        tunnels = fast_hook().list_tunnels(name="other", is_deleted=False)
        assert [t.name for t in tunnels] == ["other"]
        assert api_requests(ready_sim)[0].query["is_deleted"] == "false"

    def test_explicit_account_id_wins(self, ready_sim):
        with pytest.raises(CloudflareAPIError):
            fast_hook().get_tunnel(ready_sim.tunnel_id, account_id=OTHER_ACCOUNT_ID)
        assert OTHER_ACCOUNT_ID in api_requests(ready_sim)[0].path


class TestInputIsCheckedBeforeAnyRequest:
    @pytest.mark.parametrize(
        ("tunnel_id", "connector_id", "account_id"),
        [
            ("../../user/tokens", None, None),
            ("tunnel", None, None),
            (None, "x/../../y", None),
            (None, None, "abc"),
            (None, None, "0123456789abcdef0123456789abcdef/../x"),
        ],
    )
    def test_malformed_ids_never_reach_a_url(self, ready_sim, tunnel_id, connector_id, account_id):
        with pytest.raises(CloudflareConfigError):
            fast_hook().get_tunnel_connector(
                tunnel_id or ready_sim.tunnel_id, connector_id or ready_sim.connector_id, account_id
            )
        assert api_requests(ready_sim) == []

    def test_missing_account_id(self, ready_sim, set_connection):
        set_connection(password=ready_sim.api_token, host=ready_sim.base_url)
        with pytest.raises(CloudflareConfigError, match="No Cloudflare account id"):
            fast_hook().list_tunnel_connectors(ready_sim.tunnel_id)
        assert api_requests(ready_sim) == []


class TestRetries:
    def test_429_is_retried_after_retry_after(self, ready_sim):
        ready_sim.inject_fault(CONNECTOR_PATH, kind="rate_limit", count=2, retry_after=1)
        started = time.monotonic()
        connector = fast_hook().get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        assert connector.id == ready_sim.connector_id
        assert time.monotonic() - started >= 2.0
        records = api_requests(ready_sim)
        assert [r.status for r in records] == [429, 429, 200]
        assert records[1].time - records[0].time >= 0.95

    def test_retry_after_as_http_date(self, ready_sim):
        ready_sim.inject_fault(CONNECTOR_PATH, kind="rate_limit", count=1, retry_after=None, retry_after_date=2)
        fast_hook().get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        first, second = api_requests(ready_sim)
        assert second.time - first.time >= 0.9  # an HTTP date has 1 s resolution

    def test_429_without_retry_after_backs_off(self, ready_sim):
        ready_sim.inject_fault(CONNECTOR_PATH, kind="rate_limit", count=3, retry_after=None)
        fast_hook(backoff_factor=0.2).get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        times = [r.time for r in api_requests(ready_sim)]
        assert len(times) == 4
        assert times[1] - times[0] >= 0.2 * 0.9  # even the first retry waits
        assert times[3] - times[2] >= 0.2 * 4 * 0.9  # exponential: factor * 2 ** (n - 1)

    def test_first_retry_after_a_5xx_waits_the_backoff_factor(self, ready_sim):
        ready_sim.inject_fault(CONNECTOR_PATH, kind="server_error", status=502, count=1)
        fast_hook(backoff_factor=0.4).get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        first, second = api_requests(ready_sim)
        assert (first.status, second.status) == (502, 200)
        assert 0.4 * 0.9 <= second.time - first.time <= 0.4 * 2 + 1.0  # factor, plus up to factor of jitter

    def test_rate_limited_after_every_retry(self, ready_sim):
        ready_sim.inject_fault(CONNECTOR_PATH, kind="rate_limit", count=None, retry_after=0)
        with pytest.raises(CloudflareRateLimitError) as info:
            fast_hook(max_retries=2).get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        assert len(api_requests(ready_sim)) == 3
        assert info.value.status_code == 429
        assert info.value.codes == [971]
        assert str(info.value).startswith("Cloudflare API error 971 (HTTP 429)")
        assert str(info.value).endswith(
            " - rate limited after 2 retries; the connection is set to 1,200 requests per 300 s (extra "
            "rate_limit_requests / rate_limit_period); Cloudflare's limit is per user, shared by every token and key "
            "of the user and the dashboard."
        )

    def test_rate_limit_message_without_retries_quotes_the_configured_limit(self, ready_sim, set_connection):
        # the triggerer's hook never retries: its message must not claim it did
        extra = {"account_id": ready_sim.account_id, "rate_limit_requests": 600, "rate_limit_period": 60}
        set_connection(password=ready_sim.api_token, host=ready_sim.base_url, extra=extra)
        ready_sim.inject_fault(CONNECTOR_PATH, kind="rate_limit", count=None, retry_after=0)
        with pytest.raises(CloudflareRateLimitError) as info:
            fast_hook(max_retries=0).get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        assert len(api_requests(ready_sim)) == 1
        assert str(info.value).endswith(
            " - rate limited; the connection is set to 600 requests per 60 s (extra rate_limit_requests / "
            "rate_limit_period); Cloudflare's limit is per user, shared by every token and key of the user and the "
            "dashboard."
        )
        assert "retr" not in str(info.value)

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    @pytest.mark.parametrize("body", ["json", "html"])
    def test_5xx_is_retried(self, ready_sim, status, body):
        ready_sim.inject_fault(CONNECTOR_PATH, kind="server_error", status=status, body=body, count=2)
        connector = fast_hook().get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        assert connector.id == ready_sim.connector_id
        assert [r.status for r in api_requests(ready_sim)] == [status, status, 200]

    def test_html_gateway_page_becomes_a_short_message(self, ready_sim):
        ready_sim.inject_fault(CONNECTOR_PATH, kind="server_error", status=502, body="html", count=None)
        with pytest.raises(CloudflareAPIError) as info:
            fast_hook(max_retries=1).get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        message = str(info.value)
        assert "HTTP 502" in message
        assert "text/html" in message
        assert "<" not in message
        assert len(message) < 300
        assert info.value.is_transient

    @pytest.mark.parametrize("kind", ["drop", "reset"])
    def test_dropped_connections_are_retried(self, ready_sim, kind):
        ready_sim.inject_fault(CONNECTOR_PATH, kind=kind, count=2)
        connector = fast_hook().get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        assert connector.id == ready_sim.connector_id
        assert len(api_requests(ready_sim)) == 3

    def test_read_timeout_is_retried(self, ready_sim):
        ready_sim.inject_fault(CONNECTOR_PATH, kind="slow", delay=1.5, count=1)
        connector = fast_hook(timeout=(1.0, 0.5)).get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        assert connector.id == ready_sim.connector_id
        time.sleep(1.2)  # the simulator logs the slow request once it has answered it
        assert len(api_requests(ready_sim)) == 2

    def test_slow_answers_past_every_retry(self, ready_sim):
        ready_sim.inject_fault(CONNECTOR_PATH, kind="slow", delay=1.0, count=None)
        with pytest.raises(CloudflareAPIError, match="no answer within the read timeout") as info:
            fast_hook(max_retries=1, timeout=(1.0, 0.3)).get_tunnel_connector(
                ready_sim.tunnel_id, ready_sim.connector_id
            )
        assert info.value.status_code is None
        assert info.value.is_transient

    def test_unreachable_api(self, set_connection):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        set_connection(
            password="token-for-nowhere", host=f"http://127.0.0.1:{port}/client/v4", extra={"account_id": "a" * 32}
        )
        with pytest.raises(CloudflareAPIError) as info:
            fast_hook(max_retries=1).list_tunnel_connectors("c1744f8b-faa1-48a4-9e5c-02ac921467fa")
        message = str(info.value)
        assert message == (
            f"Could not reach the Cloudflare API at http://127.0.0.1:{port} (the connection was refused or the "
            "host is unknown) after 1 retry. Check the network, any proxy, and the connection's API base URL "
            "(host field)."
        )

    def test_an_answer_cut_off_is_not_said_to_be_retried(self, ready_sim):
        ready_sim.inject_fault(CONNECTOR_PATH, kind="short_body", count=None)
        with pytest.raises(CloudflareAPIError, match=r"\(the answer was cut off or garbled\)\. Check") as info:
            fast_hook(max_retries=3).get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        assert len(api_requests(ready_sim)) == 1  # the body is read after urllib3's retries: never retried
        assert "retr" not in str(info.value)


class TestErrors:
    @pytest.mark.parametrize(
        ("status", "code", "needle"),
        [
            (401, 10000, "Cloudflare API error 10000 (HTTP 401): Authentication error"),
            (403, 10000, "Cloudflare API error 10000 (HTTP 403): Authentication error"),
            (403, 9109, "Cloudflare API error 9109 (HTTP 403): Unauthorized to access requested resource"),
            (400, 6003, "Cloudflare API error 6003 (HTTP 400): Invalid request headers [6111: Invalid format"),
        ],
    )
    def test_auth_errors_fail_at_once(self, ready_sim, status, code, needle):
        ready_sim.inject_fault(CONNECTOR_PATH, kind="error", status=status, code=code, count=None)
        with pytest.raises(CloudflareAuthError) as info:
            fast_hook().get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        assert needle in str(info.value)
        assert info.value.status_code == status
        assert len(api_requests(ready_sim)) == 1  # never retried

    def test_wrong_token_names_the_permission(self, ready_sim, set_connection):
        set_connection(
            password="wrong-token-value", host=ready_sim.base_url, extra={"account_id": ready_sim.account_id}
        )
        with pytest.raises(CloudflareAuthError) as info:
            fast_hook().get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        message = str(info.value)
        assert message == (
            "Cloudflare API error 10000 (HTTP 403): Authentication error - check the connection's API token; "
            'the token needs "Cloudflare Tunnel Read" (Account > Cloudflare Tunnel > Read).'
        )
        assert len(api_requests(ready_sim)) == 1

    def test_wrong_global_key_names_the_fields_to_check(self, ready_sim, set_connection):
        set_connection(
            login=ready_sim.global_key_email,
            password="0" * 37,
            host=ready_sim.base_url,
            extra={"account_id": ready_sim.account_id},
        )
        with pytest.raises(CloudflareAuthError) as info:
            fast_hook().get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        assert str(info.value).endswith(" - check the connection's email (login) and Global API Key (password).")
        assert "cloudflare_default" not in str(info.value)

    def test_global_key_sent_as_bearer_gets_a_hint(self, ready_sim, set_connection):
        set_connection(
            password=ready_sim.global_key, host=ready_sim.base_url, extra={"account_id": ready_sim.account_id}
        )
        with pytest.raises(CloudflareAuthError, match="put the account email in the connection's login") as info:
            fast_hook().get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        assert ready_sim.global_key not in str(info.value)

    def test_404_is_not_found_and_not_retried(self, ready_sim):
        with pytest.raises(CloudflareNotFoundError) as info:
            fast_hook().get_tunnel_connector(ready_sim.tunnel_id, "00000000-0000-4000-8000-000000000000")
        assert info.value.status_code == 404
        assert info.value.errors
        assert len(api_requests(ready_sim)) == 1

    def test_unknown_account_is_a_no_route_error(self, ready_sim):
        with pytest.raises(CloudflareAPIError, match="check the account id") as info:
            fast_hook().list_tunnel_connectors(ready_sim.tunnel_id, account_id="f" * 32)
        assert 7003 in info.value.codes

    def test_other_4xx_is_not_retried(self, ready_sim):
        ready_sim.inject_fault(CONNECTOR_PATH, kind="error", status=400, code=1001, message="Bad tunnel", count=None)
        with pytest.raises(CloudflareAPIError, match=r"1001 \(HTTP 400\): Bad tunnel") as info:
            fast_hook().get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        assert type(info.value) is CloudflareAPIError
        assert len(api_requests(ready_sim)) == 1

    def test_success_false_in_a_200_is_an_error(self, ready_sim):
        ready_sim.inject_fault(CONNECTOR_PATH, kind="success_false", code=1002, message="Simulated failure")
        with pytest.raises(CloudflareAPIError, match=r"Cloudflare API error 1002 \(HTTP 200\): Simulated failure"):
            fast_hook().get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)

    @pytest.mark.parametrize("kind", ["truncated_json", "non_json", "short_body"])
    def test_garbled_bodies_become_short_messages(self, ready_sim, kind):
        ready_sim.inject_fault(CONNECTOR_PATH, kind=kind, count=None)
        with pytest.raises(CloudflareAPIError) as info:
            fast_hook(max_retries=0).get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        message = str(info.value)
        assert len(message) < 300
        assert "{" not in message
        assert "<" not in message
        assert info.value.is_transient


class TestRedirects:
    def test_credentials_never_follow_a_redirect(self, ready_sim, cloudflare_simulator_factory):
        elsewhere = cloudflare_simulator_factory({"up_after": 0})
        target = f"{elsewhere.base_url}/accounts/{ready_sim.account_id}/cfd_tunnel/{ready_sim.tunnel_id}/connections"
        ready_sim.inject_fault(CONNECTIONS_PATH, kind="redirect", status=302, location=target, count=None)
        with pytest.raises(CloudflareAPIError, match="redirects are not followed") as info:
            fast_hook().list_tunnel_connectors(ready_sim.tunnel_id)
        assert f"127.0.0.1:{elsewhere.port}" in str(info.value)
        assert elsewhere.requests == []
        assert len(api_requests(ready_sim)) == 1


class TestTestConnection:
    def test_user_token(self, ready_sim):
        ok, message = fast_hook().test_connection()
        assert ok, message
        assert "user token" in message
        assert ready_sim.account_id in message
        assert [r.path for r in api_requests(ready_sim)] == [
            "/client/v4/user/tokens/verify",
            f"/client/v4/accounts/{ready_sim.account_id}/cfd_tunnel",
        ]
        assert all(r.method == "GET" for r in ready_sim.requests)

    def test_account_owned_token(self, ready_sim, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", ready_sim.connection_json("account_token"))
        ok, message = fast_hook().test_connection()
        assert ok, message
        assert "account token" in message
        assert f"/client/v4/accounts/{ready_sim.account_id}/tokens/verify" in [r.path for r in api_requests(ready_sim)]

    def test_global_api_key(self, ready_sim, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", ready_sim.connection_json("global_key"))
        ok, message = fast_hook().test_connection()
        assert ok, message
        assert "Global API Key" in message
        assert ready_sim.global_key not in message
        assert ready_sim.global_key_email not in message

    def test_wrong_token_fails_without_the_secret(self, ready_sim, set_connection):
        set_connection(
            password="s3cr3t-wrong-token", host=ready_sim.base_url, extra={"account_id": ready_sim.account_id}
        )
        ok, message = fast_hook().test_connection()
        assert not ok
        assert "s3cr3t-wrong-token" not in message
        assert "HTTP 40" in message
        assert "{" not in message

    def test_disabled_token(self, ready_sim, set_connection):
        from airflow_provider_cftunnel.testing import DISABLED_API_TOKEN

        set_connection(password=DISABLED_API_TOKEN, host=ready_sim.base_url)
        ok, message = fast_hook().test_connection()
        assert not ok
        assert "disabled" in message
        assert DISABLED_API_TOKEN not in message

    def test_unreachable(self, set_connection):
        set_connection(password="tok", host="http://127.0.0.1:9/client/v4")
        ok, message = fast_hook(max_retries=0).test_connection()
        assert not ok
        assert message.startswith(
            "Could not reach the Cloudflare API at http://127.0.0.1:9 (the connection was refused or the host is "
            "unknown). Check"
        )

    def test_messages_do_not_name_the_tested_copy(self, ready_sim, set_connection):
        # Airflow's UI tests a copy of the connection under a random id, e.g. 'nE4JrPNG'
        set_connection("nE4JrPNG", password="s3cr3t-wrong-token", host=ready_sim.base_url)
        ok, message = CloudflareHook("nE4JrPNG", max_retries=0).test_connection()
        assert not ok
        assert message == (
            "Cloudflare API error 1000 (HTTP 401): Invalid API Token - check the connection's API token; the token "
            'needs "Cloudflare Tunnel Read" (Account > Cloudflare Tunnel > Read).'
        )
        set_connection("nE4JrPNG", host=ready_sim.base_url)
        ok, message = CloudflareHook("nE4JrPNG", max_retries=0).test_connection()
        assert not ok
        assert message.startswith("The connection has no API token: put a Cloudflare API token in its password")


def test_no_secret_in_logs_or_errors(ready_sim, set_connection, caplog):
    secret = "leaky-token-value-9f8e7d"
    set_connection(password=secret, host=ready_sim.base_url, extra={"account_id": ready_sim.account_id})
    hook = fast_hook()
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(CloudflareAuthError) as info:
            hook.get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
        ok, message = hook.test_connection()
    texts = [caplog.text, str(info.value), repr(info.value), message, repr(hook), json.dumps(info.value.errors)]
    assert not ok
    assert all(secret not in text for text in texts)


def test_session_reuses_its_connection(ready_sim):
    hook = fast_hook()
    for _ in range(3):
        hook.get_tunnel_connector(ready_sim.tunnel_id, ready_sim.connector_id)
    ports = {r.headers.get("X-Client-Port") for r in api_requests(ready_sim)}
    assert len(api_requests(ready_sim)) == 3
    assert hook.get_conn() is hook.get_conn()
    assert len(ports) == 1
