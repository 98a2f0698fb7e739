"""The provider's errors: types, which answer becomes which, messages, and the event codec."""

from __future__ import annotations

import json
import pickle

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_cftunnel.exceptions import (
    AUTH_ERROR_CODES,
    CloudflareAccountError,
    CloudflareAPIError,
    CloudflareAuthError,
    CloudflareConfigError,
    CloudflareNotFoundError,
    CloudflareRateLimitError,
    decode_answer,
    error_class,
    error_from_event,
    error_to_event,
    format_errors,
    hint,
    means_not_ready,
)


def test_hierarchy():
    for cls in (CloudflareAuthError, CloudflareNotFoundError, CloudflareRateLimitError, CloudflareConfigError):
        assert issubclass(cls, CloudflareAPIError)
    assert issubclass(CloudflareAccountError, CloudflareNotFoundError)
    assert issubclass(CloudflareAPIError, AirflowException)
    assert issubclass(CloudflareConfigError, ValueError)


def test_carries_status_and_errors():
    error = CloudflareAuthError("x", status_code=403, errors=[{"code": 10000, "message": "Authentication error"}])
    assert error.status_code == 403
    assert error.errors == [{"code": 10000, "message": "Authentication error"}]
    assert error.codes == [10000]


def test_survives_pickling():
    error = CloudflareRateLimitError("slow down", errors=[{"code": 971, "message": "m"}], retry_after=12.0)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is CloudflareRateLimitError
    assert str(copy) == "slow down"
    assert copy.status_code == 429
    assert copy.codes == [971]
    assert copy.retry_after == 12.0


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (CloudflareNotFoundError("x", status_code=404, errors=[{"code": 1003, "message": "m"}]), True),
        (CloudflareAccountError("x", status_code=404, errors=[{"code": 7003, "message": "m"}]), False),
        (CloudflareAccountError("x", status_code=400, errors=[{"code": 7003, "message": "m"}]), False),
        (CloudflareRateLimitError("x"), True),
        (CloudflareAPIError("x", status_code=502), True),
        (CloudflareAPIError("no answer"), True),
        (CloudflareAPIError("garbled", status_code=200, transient=True), True),
        (CloudflareAPIError("bad request", status_code=400), False),
        (CloudflareAPIError("success false", status_code=200), False),
        (CloudflareAuthError("x", status_code=403), False),
        (CloudflareAuthError("x", status_code=401), False),
        (CloudflareConfigError("bad id"), False),
    ],
)
def test_means_not_ready(error, expected):
    assert means_not_ready(error) is expected


@pytest.mark.parametrize(
    "error",
    [
        CloudflareAccountError("wrong account", status_code=404, errors=[{"code": 7003, "message": "m"}]),
        CloudflareRateLimitError("slow", errors=[{"code": 971, "message": "m"}]),
        CloudflareAPIError("no answer"),
    ],
)
def test_event_codec_keeps_the_type(error):
    event = json.loads(json.dumps(error_to_event(error)))
    back = error_from_event(event)
    assert (type(back), str(back), back.status_code, back.codes, back.is_transient) == (
        type(error),
        str(error),
        error.status_code,
        error.codes,
        error.is_transient,
    )


DEFAULTS = {"uses_global_key": False, "rate_limit": (1200, 300.0), "retries": 0}


@pytest.mark.parametrize(
    ("status", "codes", "expected"),
    [
        (429, [971], CloudflareRateLimitError),
        (429, [10000], CloudflareRateLimitError),
        (401, [], CloudflareAuthError),
        (403, [9109], CloudflareAuthError),
        (400, [6003], CloudflareAuthError),
        (200, [10000], CloudflareAuthError),  # success: false with an auth code
        (503, [10000], CloudflareAPIError),  # a 5xx is never a credential problem
        (404, [1003], CloudflareNotFoundError),
        (404, [7003], CloudflareAccountError),
        (400, [7003], CloudflareAccountError),
        (400, [7000], CloudflareAccountError),
        (500, [7003], CloudflareAPIError),  # no route only when Cloudflare says the request was wrong
        (400, [1001], CloudflareAPIError),
        (502, [], CloudflareAPIError),
    ],
)
def test_error_class(status, codes, expected):
    assert error_class(status, codes) is expected


def test_every_auth_code_means_an_auth_error_below_500():
    for code in AUTH_ERROR_CODES:
        assert error_class(400, [code]) is CloudflareAuthError


def test_format_errors_folds_shortens_and_counts():
    errors = [
        {"code": 6003, "message": "Invalid request\nheaders", "error_chain": [{"code": 6111, "message": "Invalid"}]},
        {"code": True, "message": "x" * 500},
        {"message": ""},
        {"code": 1, "message": "fourth"},
    ]
    text = format_errors(400, errors)
    assert text.startswith("Cloudflare API error 6003 (HTTP 400): Invalid request headers [6111: Invalid]; ")
    assert "Cloudflare API error ? (HTTP 400): " + "x" * 197 + "...; " in text
    assert text.endswith("Cloudflare API error ? (HTTP 400): (no message); and 1 more")
    assert format_errors(502, []) == "Cloudflare API error (HTTP 502): no error details in the response"


@pytest.mark.parametrize(
    ("cls", "codes", "overrides", "expected"),
    [
        (
            CloudflareAuthError,
            [10000],
            {},
            ' - check the connection\'s API token; the token needs "Cloudflare Tunnel Read" '
            "(Account > Cloudflare Tunnel > Read).",
        ),
        (
            CloudflareAuthError,
            [10000],
            {"uses_global_key": True},
            " - check the connection's email (login) and Global API Key (password).",
        ),
        (
            CloudflareAuthError,
            [9106],
            {},
            " - no credentials reached Cloudflare; check the connection's API token (password field).",
        ),
        (CloudflareAccountError, [7003], {}, " - check the account id (32 hex characters, from the dashboard URL)."),
        (
            CloudflareNotFoundError,
            [1003],
            {},
            " - /p is not known to Cloudflare (not registered yet, or no longer tracked).",
        ),
        (
            CloudflareRateLimitError,
            [971],
            {"rate_limit": (600, 60.0), "retries": 1},
            " - rate limited after 1 retry; the connection is set to 600 requests per 60 s (extra "
            "rate_limit_requests / rate_limit_period); Cloudflare's limit is per user, shared by every token and key "
            "of the user and the dashboard.",
        ),
        (
            CloudflareRateLimitError,
            [971],
            {"rate_limit": (12000, 0.5)},
            " - rate limited; the connection is set to 12,000 requests per 0.5 s (extra "
            "rate_limit_requests / rate_limit_period); Cloudflare's limit is per user, shared by every token and key "
            "of the user and the dashboard.",
        ),
        (CloudflareAPIError, [1001], {}, ""),
    ],
)
def test_hint(cls, codes, overrides, expected):
    assert hint(cls, codes, "/p", **{**DEFAULTS, **overrides}) == expected


def test_module_stays_light():
    from tests.import_probe import modules_added

    loaded = modules_added(
        "import airflow_provider_cftunnel.exceptions", setup="import airflow.providers.common.compat.sdk"
    )
    assert [m for m in loaded if m.split(".")[0] in ("requests", "urllib3")] == []


def _decode(status, body, headers=None, **kwargs):
    options = {**DEFAULTS, **kwargs}
    return decode_answer(status, body, headers or {}, "/p", **options)


def test_decode_answer_gives_the_envelope_of_a_success():
    envelope = {"success": True, "errors": [], "messages": [], "result": {"id": "x"}}
    assert _decode(200, json.dumps(envelope).encode()) == envelope


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "message"),
    [
        (301, b"", {"Location": "https://evil.example/x"}, CloudflareAPIError, "redirect to evil.example for /p"),
        (502, b"<html>", {"Content-Type": "text/html; charset=x"}, CloudflareAPIError, "(text/html, 6 bytes)"),
        (200, b"", {}, CloudflareAPIError, "an empty response with HTTP 200 for /p"),
        (200, b'{"success": false, "errors": 5}', {}, CloudflareAPIError, "no error details"),
        (
            404,
            b'{"success": false, "errors": [{"code": 7003, "message": "no route"}]}',
            {},
            CloudflareAccountError,
            "7003 (HTTP 404): no route - check the account id",
        ),
    ],
)
def test_decode_answer_raises_the_typed_error(status, body, headers, expected, message):
    with pytest.raises(CloudflareAPIError) as info:
        _decode(status, body, headers)
    assert type(info.value) is expected
    assert message in str(info.value)
    assert info.value.status_code == status


def test_decode_answer_rate_limit_carries_retry_after_and_is_redacted():
    body = json.dumps({"success": False, "errors": [{"code": 971, "message": "token s3cret-token slow down"}]})
    with pytest.raises(CloudflareRateLimitError) as info:
        _decode(429, body.encode(), retry_after=12.0, redact=lambda text: text.replace("s3cret-token", "***"))
    assert info.value.retry_after == 12.0
    assert "s3cret-token" not in str(info.value)
    assert "token *** slow down" in str(info.value)
