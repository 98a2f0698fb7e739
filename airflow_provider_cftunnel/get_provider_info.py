"""What Airflow discovers about this provider (the ``apache_airflow_provider`` entry point).

Every Airflow component imports this module while discovering providers: standard library only.
"""

from __future__ import annotations

from typing import Any

#: An account id: 32 hex characters (or nothing: the connection then has no default account).
ACCOUNT_ID_PATTERN = "^([0-9a-fA-F]{32})?$"

CONNECTION_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port"],
    "relabeling": {
        "password": "API Token",
        "login": "Email (legacy Global API Key auth only)",
        "host": "API base URL",
    },
    "placeholders": {
        "password": "Cloudflare API token (or the Global API Key when Email is set)",
        "login": "Leave empty for an API token",
        "host": "https://api.cloudflare.com/client/v4",
        "account_id": "0123456789abcdef0123456789abcdef",
    },
}

CONNECTION_FIELDS: dict[str, Any] = {
    "account_id": {
        "label": "Account ID",
        "description": "Default Cloudflare account id: 32 hex characters, from the dashboard URL.",
        # 3.3's form honours minLength/maxLength (an input of exactly 32 characters); the pattern documents the rest
        "schema": {"type": ["string", "null"], "minLength": 32, "maxLength": 32, "pattern": ACCOUNT_ID_PATTERN},
    },
    "rate_limit_requests": {
        "label": "Rate limit: requests",
        "description": "Requests this token may make per period (Cloudflare: 1200 per 300 s), shared by "
        "every deferred sensor in a triggerer. Lower it when other tools use the same token.",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
    "rate_limit_period": {
        "label": "Rate limit: period (seconds)",
        "description": "The rate limit's window in seconds (Cloudflare: 300).",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata, as Airflow's providers manager reads it."""
    return {
        "package-name": "airflow-provider-cftunnel",
        "name": "Cloudflare Tunnel",
        "description": "Hook, operators, sensor and triggers for `Cloudflare Tunnel "
        "<https://developers.cloudflare.com/cloudflare-one/connections/connect-networks/>`__.",
        "integrations": [
            {
                "integration-name": "Cloudflare Tunnel",
                "external-doc-url": "https://developers.cloudflare.com/api/resources/zero_trust/subresources/tunnels/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Cloudflare Tunnel",
                "python-modules": ["airflow_provider_cftunnel.hooks.cloudflare"],
            }
        ],
        "operators": [
            {
                "integration-name": "Cloudflare Tunnel",
                "python-modules": [
                    "airflow_provider_cftunnel.operators.tunnel",
                    "airflow_provider_cftunnel.operators.health",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Cloudflare Tunnel",
                "python-modules": ["airflow_provider_cftunnel.sensors.tunnel"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Cloudflare Tunnel",
                "python-modules": [
                    "airflow_provider_cftunnel.triggers.tunnel",
                    "airflow_provider_cftunnel.triggers.health",
                ],
            }
        ],
        "connection-types": [
            {
                "connection-type": "cloudflare",
                "hook-class-name": "airflow_provider_cftunnel.hooks.cloudflare.CloudflareHook",
                "hook-name": "Cloudflare",
                "ui-field-behaviour": CONNECTION_UI_FIELD_BEHAVIOUR,
                "conn-fields": CONNECTION_FIELDS,
            }
        ],
        "extra-links": ["airflow_provider_cftunnel.operators.tunnel.CloudflareTunnelLink"],
    }
