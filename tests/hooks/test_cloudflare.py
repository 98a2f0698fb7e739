from __future__ import annotations

import email.utils
import random
import time

import pytest
from urllib3.util.retry import RequestHistory

from airflow_provider_cftunnel.exceptions import CloudflareConfigError
from airflow_provider_cftunnel.hooks.cloudflare import (
    DEFAULT_API_BASE_URL,
    CloudflareHook,
    CloudflareRetry,
    parse_retry_after,
    validate_account_id,
    validate_uuid,
)
from tests.support.ids import ACCOUNT_ID, CONNECTOR_ID, TOKEN, TUNNEL_ID


class TestCredentials:
    def test_api_token_is_sent_as_bearer(self, set_connection):
        set_connection(password=TOKEN, extra={"account_id": ACCOUNT_ID})
        hook = CloudflareHook()
        assert hook.credentials.headers() == {"Authorization": f"Bearer {TOKEN}"}
        assert hook.credentials.base_url == DEFAULT_API_BASE_URL
        assert hook.account() == ACCOUNT_ID

    def test_email_in_login_means_global_api_key(self, set_connection):
        set_connection(login="ops@example.com", password="global-key-123", extra={"account_id": ACCOUNT_ID})
        headers = CloudflareHook().credentials.headers()
        assert headers == {"X-Auth-Email": "ops@example.com", "X-Auth-Key": "global-key-123"}
        assert "Authorization" not in headers

    def test_login_that_is_not_an_email_is_refused(self, set_connection):
        set_connection(login="not-an-email", password=TOKEN)
        with pytest.raises(CloudflareConfigError, match="only for the account email") as info:
            _ = CloudflareHook().credentials
        assert TOKEN not in str(info.value)

    def test_no_password_is_a_clear_error(self, set_connection):
        set_connection(extra={"account_id": ACCOUNT_ID})
        with pytest.raises(CloudflareConfigError, match=r"^The connection has no API token: put a Cloudflare API"):
            _ = CloudflareHook().credentials

    def test_credential_errors_do_not_name_the_connection_id(self, set_connection):
        # Airflow's UI tests a copy of the connection under a random id: naming it would mislead
        set_connection("nE4JrPNG", login="not-an-email", password=TOKEN, extra={"rate_limit_requests": 0})
        with pytest.raises(CloudflareConfigError) as info:
            _ = CloudflareHook("nE4JrPNG").credentials
        assert str(info.value).startswith("The connection's login field is only for the account email")
        assert "nE4JrPNG" not in str(info.value)
        set_connection("nE4JrPNG", password=TOKEN, extra={"rate_limit_requests": 0})
        with pytest.raises(CloudflareConfigError, match=r"^The connection's rate_limit_requests must be") as info:
            _ = CloudflareHook("nE4JrPNG").credentials
        assert "nE4JrPNG" not in str(info.value)

    def test_host_is_the_api_base_url(self, set_connection):
        set_connection(password=TOKEN, host="http://127.0.0.1:9/client/v4/")
        assert CloudflareHook().credentials.base_url == "http://127.0.0.1:9/client/v4"

    def test_prefixed_extra_from_older_forms_is_read(self, set_connection):
        set_connection(password=TOKEN, extra={"extra__cloudflare__account_id": ACCOUNT_ID})
        assert CloudflareHook().account() == ACCOUNT_ID

    def test_rate_limit_from_extra(self, set_connection):
        set_connection(password=TOKEN, extra={"rate_limit_requests": "600", "rate_limit_period": 60})
        credentials = CloudflareHook().credentials
        assert (credentials.rate_limit_requests, credentials.rate_limit_period) == (600, 60.0)

    @pytest.mark.parametrize(
        "extra", [{"rate_limit_requests": "many"}, {"rate_limit_requests": 0}, {"rate_limit_period": -1}]
    )
    def test_bad_rate_limit_is_a_clear_error(self, set_connection, extra):
        set_connection(password=TOKEN, extra=extra)
        with pytest.raises(CloudflareConfigError, match="rate_limit_requests must be a whole number"):
            _ = CloudflareHook().credentials

    def test_no_secret_in_repr(self, set_connection):
        set_connection(login="ops@example.com", password="global-key-123", extra={"account_id": ACCOUNT_ID})
        hook = CloudflareHook()
        for text in (repr(hook), repr(hook.credentials), repr(hook.get_conn().auth), str(hook.credentials)):
            assert "global-key-123" not in text
            assert "ops@example.com" not in text

    def test_conn_attributes(self):
        assert CloudflareHook.conn_type == "cloudflare"
        assert CloudflareHook.conn_name_attr == "cloudflare_conn_id"
        assert CloudflareHook.default_conn_name == "cloudflare_default"
        assert CloudflareHook("other").cloudflare_conn_id == "other"


class TestValidation:
    @pytest.mark.parametrize(
        "value",
        ["", "abc", ACCOUNT_ID + "0", ACCOUNT_ID[:-1] + "g", "../" + ACCOUNT_ID[3:], None, 12, ACCOUNT_ID + "\n"],
    )
    def test_bad_account_ids(self, value):
        with pytest.raises(CloudflareConfigError, match="Invalid Cloudflare account id"):
            validate_account_id(value)

    def test_account_id_is_lowercased(self):
        assert validate_account_id(ACCOUNT_ID.upper()) == ACCOUNT_ID

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "not-a-uuid",
            TUNNEL_ID + "/connections",
            TUNNEL_ID.replace("-", ""),
            "../" + TUNNEL_ID,
            TUNNEL_ID + "?x=1",
            None,
            TUNNEL_ID[:-1] + "z",
        ],
    )
    def test_bad_uuids(self, value):
        with pytest.raises(CloudflareConfigError, match="Invalid tunnel_id"):
            validate_uuid(value, "tunnel_id")

    def test_long_bad_value_is_shortened_in_the_message(self):
        with pytest.raises(CloudflareConfigError) as info:
            validate_uuid("x" * 500, "connector_id")
        assert len(str(info.value)) < 200

    def test_missing_account_id_names_where_to_set_it(self, set_connection):
        set_connection(password=TOKEN)
        with pytest.raises(CloudflareConfigError, match=r"account_id=\.\.\..*extra of connection 'cloudflare_default'"):
            CloudflareHook().get_tunnel_connector(TUNNEL_ID, CONNECTOR_ID)


class TestRetryAfter:
    def test_seconds(self):
        assert parse_retry_after("7") == 7

    def test_http_date(self):
        when = email.utils.formatdate(time.time() + 30, usegmt=True)
        assert 27 <= parse_retry_after(when) <= 30

    def test_capped_at_300_seconds(self):
        assert parse_retry_after("3600") == 300
        assert parse_retry_after("3600", cap=5) == 5

    def test_absent_or_bad(self):
        assert parse_retry_after(None) is None
        assert parse_retry_after("soon") is None

    def test_cap_survives_urllib3_copies(self):
        retry = CloudflareRetry(total=3, max_retry_after=12).new(total=2)
        assert retry.max_retry_after == 12
        assert retry.parse_retry_after("100") == 12


def after_errors(retry: CloudflareRetry, count: int, redirect_first: bool = False) -> CloudflareRetry:
    """``retry`` as urllib3 hands it on after ``count`` failed attempts (a 502 each)."""
    history = [RequestHistory("GET", "/x", None, 502, None) for _ in range(count)]
    if redirect_first:
        history.insert(0, RequestHistory("GET", "/x", None, 302, "/y"))
    return retry.new(history=tuple(history))


class TestBackoff:
    def test_the_first_retry_waits_the_backoff_factor(self):
        # urllib3's own formula waits nothing before the first retry: a 5xx or a bare 429 was asked again at once
        retry = CloudflareRetry(total=5, backoff_factor=0.5, backoff_jitter=0)
        assert retry.get_backoff_time() == 0
        assert [after_errors(retry, n).get_backoff_time() for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]

    def test_jitter_is_added_and_the_cap_holds(self):
        random.seed(7)
        retry = CloudflareRetry(total=9, backoff_factor=1.0, backoff_jitter=1.0, backoff_max=10)
        waits = [after_errors(retry, 1).get_backoff_time() for _ in range(200)]
        assert all(1.0 <= wait <= 2.0 for wait in waits)
        assert len(set(waits)) > 100  # jittered, not one fixed delay
        assert after_errors(retry, 8).get_backoff_time() == 10

    def test_only_errors_since_the_last_redirect_count(self):
        retry = CloudflareRetry(total=5, backoff_factor=0.5, backoff_jitter=0)
        assert after_errors(retry, 1, redirect_first=True).get_backoff_time() == 0.5
        assert retry.new(history=(RequestHistory("GET", "/x", None, 302, "/y"),)).get_backoff_time() == 0


class TestSession:
    def test_one_session_per_hook_with_user_agent(self, set_connection):
        set_connection(password=TOKEN)
        hook = CloudflareHook()
        session = hook.get_conn()
        assert session is hook.get_conn()
        assert session.headers["User-Agent"].startswith("airflow-provider-cftunnel/")

    def test_proxies_are_read_from_the_environment_once(self, set_connection, monkeypatch):
        set_connection(password=TOKEN)
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        session = CloudflareHook().get_conn()
        assert session.trust_env is False
        assert session.proxies.get("https") == "http://proxy.internal:3128"

    def test_no_proxy_is_honoured(self, set_connection, monkeypatch):
        set_connection(password=TOKEN)
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
        monkeypatch.setenv("NO_PROXY", "api.cloudflare.com")
        assert "https" not in CloudflareHook().get_conn().proxies

    def test_retry_policy(self, set_connection):
        set_connection(password=TOKEN)
        retry = CloudflareHook(max_retries=4).get_conn().get_adapter("https://x").max_retries
        assert isinstance(retry, CloudflareRetry)
        assert retry.total == 4
        assert {429, 500, 502, 503, 504, 520}.issubset(retry.status_forcelist)
        assert not {400, 401, 403, 404}.intersection(retry.status_forcelist)
        assert retry.redirect == 0
        assert retry.backoff_jitter > 0
