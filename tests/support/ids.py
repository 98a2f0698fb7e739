"""Fixed ids and a token for unit tests that build requests without a simulator."""

from __future__ import annotations

__all__ = ["ACCOUNT_ID", "CONNECTOR_ID", "TOKEN", "TUNNEL_ID"]

ACCOUNT_ID = "0123456789abcdef0123456789abcdef"
TUNNEL_ID = "c1744f8b-faa1-48a4-9e5c-02ac921467fa"
CONNECTOR_ID = "1bedc50d-42b3-473c-b108-ff3d10c0d925"
TOKEN = "unit-test-token-Zq8vXk2P"
