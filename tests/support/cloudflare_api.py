"""Cloudflare's API as the tests expect it: the fields of its objects, what the simulator's credentials verify as.

The expectations are written from Cloudflare's documentation, not read from the simulator, so that the tests
which share them still check the simulator against Cloudflare.
"""

from __future__ import annotations

from airflow_provider_cftunnel.testing import (
    DEFAULT_GLOBAL_KEY,
    DEFAULT_GLOBAL_KEY_EMAIL,
    DISABLED_API_TOKEN,
    EXPIRED_API_TOKEN,
)

__all__ = ["CONNECTION_KEYS", "CONNECTOR_KEYS", "GLOBAL_KEY_HEADERS", "INACTIVE_TOKEN_STATUSES", "TUNNEL_KEYS"]

#: The fields of one connection of a connector (``conns[]``) or of a tunnel.
CONNECTION_KEYS = [
    "id",
    "uuid",
    "client_id",
    "client_version",
    "colo_name",
    "is_pending_reconnect",
    "opened_at",
    "origin_ip",
]
#: The fields of a connector (``GET .../connectors/{id}``).
CONNECTOR_KEYS = ["id", "arch", "config_version", "conns", "features", "run_at", "version"]
#: The fields of a tunnel (``GET .../cfd_tunnel/{id}``).
TUNNEL_KEYS = [
    "id",
    "name",
    "status",
    "tun_type",
    "account_tag",
    "created_at",
    "deleted_at",
    "conns_active_at",
    "conns_inactive_at",
    "metadata",
    "connections",
]

#: The headers that authenticate with the default scenario's Global API Key.
GLOBAL_KEY_HEADERS = {"X-Auth-Email": DEFAULT_GLOBAL_KEY_EMAIL, "X-Auth-Key": DEFAULT_GLOBAL_KEY}

#: The status ``GET /user/tokens/verify`` reports for each of the default scenario's inactive tokens.
INACTIVE_TOKEN_STATUSES = {DISABLED_API_TOKEN: "disabled", EXPIRED_API_TOKEN: "expired"}
