"""The scenario format's constants, its derived ids and the value checks every scenario key goes through."""

from __future__ import annotations

import hashlib
import math
import uuid
from typing import Any

from airflow_provider_cftunnel.testing.wire import ACCOUNT_ID_RE

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_ACCOUNT_TOKEN",
    "DEFAULT_API_TOKEN",
    "DEFAULT_ARCH",
    "DEFAULT_COLOS",
    "DEFAULT_CONNECTOR_ID",
    "DEFAULT_FEATURES",
    "DEFAULT_GLOBAL_KEY",
    "DEFAULT_GLOBAL_KEY_EMAIL",
    "DEFAULT_ORIGIN_IP",
    "DEFAULT_TUNNEL_ID",
    "DEFAULT_TUNNEL_NAME",
    "DEFAULT_VERSION",
    "DISABLED_API_TOKEN",
    "EXPIRED_API_TOKEN",
    "MAX_CONNECTORS_PER_TUNNEL",
    "NO_PERMISSION_API_TOKEN",
    "OTHER_ACCOUNT_API_TOKEN",
    "OTHER_ACCOUNT_ID",
    "TOKEN_STATUSES",
    "ScenarioError",
    "check_count",
    "check_id_list",
    "check_keys",
    "check_number",
    "check_optional_str",
    "derived_hex32",
    "derived_uuid",
]

#: The account the default scenario serves.
DEFAULT_ACCOUNT_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
#: An account the default account's tokens know nothing about (the restricted token may read only this one).
OTHER_ACCOUNT_ID = "0f0e0d0c0b0a09080706050403020100"
#: The tunnel of the default scenario.
DEFAULT_TUNNEL_ID = "5f3b1c2a-8d4e-4f6a-9b7c-0e1d2f3a4b5c"
#: The default tunnel's name.
DEFAULT_TUNNEL_NAME = "cfsim-tunnel"
#: The default tunnel's connector.
DEFAULT_CONNECTOR_ID = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d"
#: A user-owned API token allowed on every account.
DEFAULT_API_TOKEN = "cfsim-user-token-0001"
#: An account-owned API token (verifies only on ``/accounts/{its account}/tokens/verify``).
DEFAULT_ACCOUNT_TOKEN = "cfsim-account-token-0001"
#: A user token whose status is ``disabled``.
DISABLED_API_TOKEN = "cfsim-disabled-token-0001"
#: A user token whose status is ``expired``.
EXPIRED_API_TOKEN = "cfsim-expired-token-0001"
#: An active user token without "Cloudflare Tunnel Read": tunnel endpoints answer 403 code 10000.
NO_PERMISSION_API_TOKEN = "cfsim-noperm-token-0001"
#: An active user token allowed only on :data:`OTHER_ACCOUNT_ID`: the default account answers 403 code 9109.
OTHER_ACCOUNT_API_TOKEN = "cfsim-other-account-token-0001"
#: The email of the legacy Global API Key user.
DEFAULT_GLOBAL_KEY_EMAIL = "simulator@example.com"
#: The legacy Global API Key of :data:`DEFAULT_GLOBAL_KEY_EMAIL`.
DEFAULT_GLOBAL_KEY = "0123456789abcdef0123456789abcdef01234"
DEFAULT_VERSION = "2026.11.0"
DEFAULT_ARCH = "linux_amd64"
DEFAULT_COLOS = ("DFW", "IAD")
DEFAULT_ORIGIN_IP = "203.0.113.10"
DEFAULT_FEATURES = ("ha-origin", "management_logs", "serialized_headers")
#: Cloudflare allows at most 25 connectors (replicas) per tunnel.
MAX_CONNECTORS_PER_TUNNEL = 25

TOKEN_STATUSES = ("active", "disabled", "expired")
_ID_NAMESPACE = uuid.UUID("0b6f3a52-3c2e-4b1e-9a55-8f1d7c1f0c11")


class ScenarioError(ValueError):
    """A scenario that cannot be simulated; the message names the offending key."""


def derived_uuid(*parts: object) -> str:
    """Return a stable UUID derived from ``parts`` (the same parts always give the same id).

    :param parts: anything with a stable ``str()``.
    """
    return str(uuid.uuid5(_ID_NAMESPACE, "/".join(str(p) for p in parts)))


def derived_hex32(*parts: object) -> str:
    """Return a stable 32-hex-digit id derived from ``parts``.

    :param parts: anything with a stable ``str()``.
    """
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()[:32]


def check_keys(obj: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    """Raise :class:`ScenarioError` if ``obj`` has a key outside ``allowed``.

    :param obj: a scenario object.
    :param allowed: the keys it may have.
    :param where: names the object in error messages.
    """
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(unknown)}")


def check_number(value: Any, where: str, *, minimum: float = 0.0) -> float:
    """Return ``value`` if it is a finite number >= ``minimum``, else raise :class:`ScenarioError`.

    :param value: the value to check.
    :param where: names the value in error messages.
    :param minimum: the smallest allowed value (``-math.inf``: any number).
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < minimum:
        what = "a number" if minimum == -math.inf else f"a number >= {minimum:g}"
        raise ScenarioError(f"{where} must be {what}, got {value!r}")
    return value


def check_count(value: Any, where: str, *, minimum: int = 0) -> int:
    """Return ``value`` if it is an integer >= ``minimum``, else raise :class:`ScenarioError`.

    :param value: the value to check.
    :param where: names the value in error messages.
    :param minimum: the smallest allowed value.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ScenarioError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def check_optional_str(value: Any, where: str) -> str | None:
    """Return ``value`` if it is a string or ``None``, else raise :class:`ScenarioError`.

    :param value: the value to check.
    :param where: names the value in error messages.
    """
    if value is not None and not isinstance(value, str):
        raise ScenarioError(f"{where} must be a string or null, got {value!r}")
    return value


def check_id_list(value: Any, where: str) -> list[str] | None:
    """Return a copy of ``value`` if it is ``None`` or a list of 32-hex account ids, else raise :class:`ScenarioError`.

    :param value: the value to check.
    :param where: names the value in error messages.
    """
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and ACCOUNT_ID_RE.match(v) for v in value):
        raise ScenarioError(f"{where} must be null or a list of 32-hex account ids, got {value!r}")
    return list(value)
