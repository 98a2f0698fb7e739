"""The error translation: which error type an answer becomes, and what its message says."""

from __future__ import annotations

import pytest

from airflow_provider_cftunnel.errors import AUTH_ERROR_CODES, error_class, format_errors, hint
from airflow_provider_cftunnel.exceptions import (
    CloudflareAPIError,
    CloudflareAuthError,
    CloudflareNotFoundError,
    CloudflareRateLimitError,
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
        (404, [7003], CloudflareNotFoundError),
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
        (CloudflareNotFoundError, [7003], {}, " - check the account id (32 hex characters, from the dashboard URL)."),
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


def test_errors_module_stays_light():
    from tests.import_probe import modules_added

    loaded = modules_added(
        "import airflow_provider_cftunnel.errors", setup="import airflow_provider_cftunnel.exceptions"
    )
    assert [m for m in loaded if m.split(".")[0] in ("requests", "urllib3")] == []
