"""Scenarios for the local Cloudflare simulator: the JSON format, its defaults and its validation.

A scenario says who may call the simulated API (tokens, Global API Keys), which accounts, tunnels and connectors
exist, how each connector's connections change over time (``at``: seconds since the simulator started), and
optionally an emulated rate limit and faults. Every key is optional: ``{}`` is the default scenario.
:func:`normalize_scenario` fills in every default and rejects unknown keys; its output is itself a valid
scenario. The format, its defaults and the timeline semantics are in docs/simulator.md ("Scenario format").
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow_provider_cftunnel.testing.scenario_tunnels import (
    READY_MODES,
    flapping_timeline,
    fleet_tunnel_id,
    fleet_tunnels,
    normalize_fleet,
    normalize_tunnel,
)
from airflow_provider_cftunnel.testing.scenario_values import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_ACCOUNT_TOKEN,
    DEFAULT_API_TOKEN,
    DEFAULT_GLOBAL_KEY,
    DEFAULT_GLOBAL_KEY_EMAIL,
    DEFAULT_TUNNEL_ID,
    DEFAULT_TUNNEL_NAME,
    DISABLED_API_TOKEN,
    EXPIRED_API_TOKEN,
    MAX_CONNECTORS_PER_TUNNEL,
    NO_PERMISSION_API_TOKEN,
    OTHER_ACCOUNT_API_TOKEN,
    OTHER_ACCOUNT_ID,
    TOKEN_STATUSES,
    ScenarioError,
    check_count,
    check_id_list,
    check_keys,
    check_number,
    check_optional_str,
    derived_hex32,
    derived_uuid,
)
from airflow_provider_cftunnel.testing.wire import ACCOUNT_ID_RE, UUID_RE

__all__ = [
    "READY_MODES",
    "default_scenario",
    "flapping_timeline",
    "fleet_tunnel_id",
    "load_scenario",
    "normalize_scenario",
]

_TOP_KEYS = frozenset(
    {
        "up_after",
        "connections",
        "replicas",
        "api_tokens",
        "global_keys",
        "user",
        "accounts",
        "rate_limit",
        "faults",
        "legacy_tunnel_connections",
        "fleets",
        "legacy_list_deleted",
    }
)
_TOKEN_KEYS = frozenset(
    {
        "token",
        "id",
        "owner",
        "account_id",
        "accounts",
        "status",
        "tunnel_read",
        "tunnels",
        "expires_on",
        "not_before",
        "user",
    }
)
_KEY_KEYS = frozenset({"email", "key", "accounts", "user"})
_ACCOUNT_KEYS = frozenset({"id", "name", "tunnels"})


def default_scenario(up_after: float = 3.0, connections: int = 4, replicas: int = 1) -> dict[str, Any]:
    """Return the default scenario as a complete (normalized) dict, ready to edit or dump as JSON.

    One account (:data:`DEFAULT_ACCOUNT_ID`), the tokens named by the ``*_API_TOKEN`` constants, one Global
    API Key, one tunnel (:data:`DEFAULT_TUNNEL_ID`) with ``replicas`` connectors (the first is
    :data:`DEFAULT_CONNECTOR_ID`) that each open ``connections`` live connections ``up_after`` seconds after
    the simulator starts, and stay up.

    :param up_after: seconds after start when the connections come up; ``0`` means ready at once.
    :param connections: connections each connector opens (``cloudflared`` opens 4 by default).
    :param replicas: connectors of the tunnel (1 to 25).
    """
    return normalize_scenario({"up_after": up_after, "connections": connections, "replicas": replicas})


def load_scenario(source: str | os.PathLike[str] | dict[str, Any] | None) -> dict[str, Any]:
    """Return the normalized scenario for ``source``.

    :param source: ``None`` (the default scenario), a dict (missing keys take defaults) or the path of a
        JSON file holding such a dict.
    :raises ScenarioError: if the file is not JSON or the scenario is invalid.
    """
    if source is None:
        return normalize_scenario({})
    if isinstance(source, dict):
        return normalize_scenario(source)
    try:
        with open(source, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"scenario file {os.fspath(source)!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"scenario file {os.fspath(source)!r} must hold a JSON object")
    return normalize_scenario(data)


def _add_fleets(raw: Any, accounts: list[dict[str, Any]]) -> None:
    if not isinstance(raw, list):
        raise ScenarioError(f"fleets must be a list, got {raw!r}")
    by_id = {account["id"]: account for account in accounts}
    seen = {tunnel["id"] for account in accounts for tunnel in account["tunnels"]}
    for index, spec in enumerate(raw):
        where = f"fleets[{index}]"
        fleet = normalize_fleet(spec, where, accounts[0]["id"] if accounts else None)
        account = by_id.get(fleet["account_id"])
        if account is None:
            raise ScenarioError(f"{where}.account_id {fleet['account_id']} is not an account of the scenario")
        for tunnel in fleet_tunnels(fleet):
            normalized = normalize_tunnel(tunnel, f"{where} tunnel {tunnel['name']}", tunnel["id"], tunnel["name"])
            if normalized["id"] in seen:
                raise ScenarioError(f"{where}: tunnel id {normalized['id']} is used twice (the same fleet twice?)")
            seen.add(normalized["id"])
            account["tunnels"].append(normalized)


def _normalize_accounts(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise ScenarioError(f"accounts must be a list, got {raw!r}")
    accounts = []
    seen_tunnels: set[str] = set()
    for a_index, account in enumerate(raw):
        where = f"accounts[{a_index}]"
        if not isinstance(account, dict):
            raise ScenarioError(f"{where} must be an object, got {account!r}")
        check_keys(account, _ACCOUNT_KEYS, where)
        account_id = account.get("id", DEFAULT_ACCOUNT_ID if a_index == 0 else derived_hex32("account", a_index))
        if not isinstance(account_id, str) or not ACCOUNT_ID_RE.match(account_id):
            raise ScenarioError(f"{where}.id must be 32 lowercase hex digits, got {account_id!r}")
        raw_tunnels = account.get("tunnels", [])
        if not isinstance(raw_tunnels, list):
            raise ScenarioError(f"{where}.tunnels must be a list, got {raw_tunnels!r}")
        tunnels = []
        for t_index, tunnel in enumerate(raw_tunnels):
            default_id = (
                DEFAULT_TUNNEL_ID if a_index == 0 and t_index == 0 else derived_uuid(account_id, "tunnel", t_index)
            )
            default_name = DEFAULT_TUNNEL_NAME if t_index == 0 else f"{DEFAULT_TUNNEL_NAME}-{t_index + 1}"
            normalized = normalize_tunnel(tunnel, f"{where}.tunnels[{t_index}]", default_id, default_name)
            if normalized["id"] in seen_tunnels:
                raise ScenarioError(f"{where}.tunnels[{t_index}].id {normalized['id']} is used twice")
            seen_tunnels.add(normalized["id"])
            tunnels.append(normalized)
        name = account.get("name", "Simulated account")
        if not isinstance(name, str):
            raise ScenarioError(f"{where}.name must be a string, got {name!r}")
        accounts.append({"id": account_id, "name": name, "tunnels": tunnels})
    ids = [a["id"] for a in accounts]
    if len(set(ids)) != len(ids):
        raise ScenarioError("accounts: account ids must be unique")
    return accounts


def _default_accounts(data: dict[str, Any]) -> list[dict[str, Any]]:
    up_after = check_number(data.get("up_after", 3.0), "up_after")
    connections = check_count(data.get("connections", 4), "connections")
    replicas = check_count(data.get("replicas", 1), "replicas", minimum=0)
    if replicas > MAX_CONNECTORS_PER_TUNNEL:
        raise ScenarioError(f"replicas must be at most {MAX_CONNECTORS_PER_TUNNEL}, got {replicas}")
    connectors = [{"up_after": up_after, "connections": connections} for _ in range(replicas)]
    return _normalize_accounts(
        [{"id": DEFAULT_ACCOUNT_ID, "tunnels": [{"id": DEFAULT_TUNNEL_ID, "connectors": connectors}]}]
    )


def _default_tokens() -> list[Any]:
    return [
        DEFAULT_API_TOKEN,
        {"token": DEFAULT_ACCOUNT_TOKEN, "owner": "account"},
        {"token": DISABLED_API_TOKEN, "status": "disabled"},
        {"token": EXPIRED_API_TOKEN, "status": "expired", "expires_on": "2020-01-01T00:00:00Z"},
        {"token": NO_PERMISSION_API_TOKEN, "tunnel_read": False},
        {"token": OTHER_ACCOUNT_API_TOKEN, "accounts": [OTHER_ACCOUNT_ID]},
    ]


def normalize_token(raw: Any, where: str, default_account_id: str | None) -> dict[str, Any]:
    """Validate one API token spec and return it with every key filled in.

    :param raw: a token string or a token spec (see the module docstring).
    :param where: names the token in error messages.
    :param default_account_id: the owner of an account-owned token that names none.
    """
    if isinstance(raw, str):
        raw = {"token": raw}
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where} must be a string or an object, got {raw!r}")
    check_keys(raw, _TOKEN_KEYS, where)
    token = raw.get("token")
    if not isinstance(token, str) or not token or any(ch.isspace() for ch in token):
        raise ScenarioError(f"{where}.token must be a non-empty string without spaces, got {token!r}")
    token_id = raw.get("id", derived_hex32("token", token))
    if not isinstance(token_id, str) or not ACCOUNT_ID_RE.match(token_id):
        raise ScenarioError(f"{where}.id must be 32 lowercase hex digits, got {token_id!r}")
    owner = raw.get("owner", "user")
    if owner not in ("user", "account"):
        raise ScenarioError(f"{where}.owner must be 'user' or 'account', got {owner!r}")
    status = raw.get("status", "active")
    if status not in TOKEN_STATUSES:
        raise ScenarioError(f"{where}.status must be one of {', '.join(TOKEN_STATUSES)}, got {status!r}")
    tunnel_read = raw.get("tunnel_read", True)
    if not isinstance(tunnel_read, bool):
        raise ScenarioError(f"{where}.tunnel_read must be a boolean, got {tunnel_read!r}")
    tunnels = raw.get("tunnels")
    if tunnels is not None:
        if not isinstance(tunnels, list) or not all(isinstance(t, str) and UUID_RE.match(t) for t in tunnels):
            raise ScenarioError(f"{where}.tunnels must be null or a list of lower-case tunnel UUIDs, got {tunnels!r}")
        tunnels = list(tunnels)
    account_id: str | None = None
    accounts: list[str] | None = None
    if owner == "account":
        if raw.get("accounts") is not None:
            raise ScenarioError(f"{where}: an account-owned token names its account in account_id")
        account_id = raw.get("account_id", default_account_id)
        if not isinstance(account_id, str) or not ACCOUNT_ID_RE.match(account_id):
            raise ScenarioError(f"{where}.account_id must be 32 lowercase hex digits, got {account_id!r}")
    else:
        if raw.get("account_id") is not None:
            raise ScenarioError(f"{where}: a user token restricts accounts with 'accounts', not account_id")
        accounts = check_id_list(raw.get("accounts"), f"{where}.accounts")
    return _rate_limit_user(
        raw,
        {
            "token": token,
            "id": token_id,
            "owner": owner,
            "account_id": account_id,
            "accounts": accounts,
            "status": status,
            "tunnel_read": tunnel_read,
            "tunnels": tunnels,
            "expires_on": check_optional_str(raw.get("expires_on"), f"{where}.expires_on"),
            "not_before": check_optional_str(raw.get("not_before"), f"{where}.not_before"),
        },
        where,
    )


def _normalize_rate_limit(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate the ``rate_limit`` object and return it with the keys that differ from their defaults.

    It holds ``requests`` per ``period`` s per user, plus, when not the default, how answers describe it
    (``headers``: ``ietf``, ``legacy`` or ``none``), another consumer's spending (``dashboard_rate``, requests
    per second), how requests are counted (``window``: ``sliding`` or ``fixed``) and what a sliding window's
    ``t`` counts to (``reset``: ``more`` or ``full``).
    """
    check_keys(raw, frozenset({"requests", "period", "headers", "dashboard_rate", "window", "reset"}), "rate_limit")
    rate_limit: dict[str, Any] = {
        "requests": check_count(raw.get("requests", 1200), "rate_limit.requests", minimum=1),
        "period": check_number(raw.get("period", 300), "rate_limit.period", minimum=0.001),
    }
    headers = raw.get("headers", "ietf")
    if headers not in ("ietf", "legacy", "none"):
        raise ScenarioError(f"rate_limit.headers must be 'ietf', 'legacy' or 'none', got {headers!r}")
    if headers != "ietf":
        rate_limit["headers"] = headers
    dashboard_rate = check_number(raw.get("dashboard_rate", 0), "rate_limit.dashboard_rate")
    if dashboard_rate:
        rate_limit["dashboard_rate"] = dashboard_rate
    window = raw.get("window", "sliding")
    if window not in ("sliding", "fixed"):
        raise ScenarioError(f"rate_limit.window must be 'sliding' or 'fixed', got {window!r}")
    if window != "sliding":
        rate_limit["window"] = window
    reset = raw.get("reset", "more")
    if reset not in ("more", "full"):
        raise ScenarioError(f"rate_limit.reset must be 'more' or 'full', got {reset!r}")
    if reset != "more":
        rate_limit["reset"] = reset
    return rate_limit


def _rate_limit_user(raw: dict[str, Any], normalized: dict[str, Any], where: str) -> dict[str, Any]:
    """Keep a credential's optional ``user`` in ``normalized`` and return ``normalized``.

    The ``user`` names whose rate-limit pool the credential draws from (default: the scenario's user, so every
    token and key of a scenario shares one pool, as Cloudflare counts per user).
    """
    user = raw.get("user")
    if user is not None:
        if not isinstance(user, str) or not user:
            raise ScenarioError(f"{where}.user must be a non-empty string naming a user, got {user!r}")
        normalized["user"] = user
    return normalized


def normalize_scenario(data: dict[str, Any]) -> dict[str, Any]:
    """Validate a scenario dict and return a new, complete one (every key filled in, shorthands expanded).

    :param data: a scenario dict; missing keys take their defaults (see the module docstring).
    :raises ScenarioError: if anything is invalid; the message names the key.
    """
    from airflow_provider_cftunnel.testing.faults import Fault  # local: only validation needs the fault model

    if not isinstance(data, dict):
        raise ScenarioError(f"a scenario must be a JSON object, got {type(data).__name__}")
    check_keys(data, _TOP_KEYS, "scenario")
    if "accounts" in data:
        if any(k in data for k in ("up_after", "connections", "replicas")):
            raise ScenarioError("up_after/connections/replicas are shorthands used only without 'accounts'")
        accounts = _normalize_accounts(data["accounts"])
    else:
        accounts = _default_accounts(data)
    _add_fleets(data.get("fleets", []), accounts)
    first_account = accounts[0]["id"] if accounts else None

    raw_tokens = data.get("api_tokens", _default_tokens())
    if not isinstance(raw_tokens, list):
        raise ScenarioError(f"api_tokens must be a list, got {raw_tokens!r}")
    tokens = [normalize_token(t, f"api_tokens[{i}]", first_account) for i, t in enumerate(raw_tokens)]
    if len({t["token"] for t in tokens}) != len(tokens):
        raise ScenarioError("api_tokens: tokens must be unique")

    raw_keys = data.get("global_keys", [{"email": DEFAULT_GLOBAL_KEY_EMAIL, "key": DEFAULT_GLOBAL_KEY}])
    if not isinstance(raw_keys, list):
        raise ScenarioError(f"global_keys must be a list, got {raw_keys!r}")
    keys: list[dict[str, Any]] = []
    for i, raw in enumerate(raw_keys):
        where = f"global_keys[{i}]"
        if not isinstance(raw, dict):
            raise ScenarioError(f"{where} must be an object, got {raw!r}")
        check_keys(raw, _KEY_KEYS, where)
        email, key = raw.get("email"), raw.get("key")
        if not isinstance(email, str) or "@" not in email:
            raise ScenarioError(f"{where}.email must be an e-mail address, got {email!r}")
        if not isinstance(key, str) or not key or any(ch.isspace() for ch in key):
            raise ScenarioError(f"{where}.key must be a non-empty string without spaces, got {key!r}")
        key_accounts = check_id_list(raw.get("accounts"), f"{where}.accounts")
        keys.append(_rate_limit_user(raw, {"email": email, "key": key, "accounts": key_accounts}, where))
    if len({k["email"].lower() for k in keys}) != len(keys):
        raise ScenarioError("global_keys: e-mail addresses must be unique")
    token_values = {t["token"] for t in tokens}
    if any(k["key"] in token_values for k in keys):
        raise ScenarioError("global_keys: a Global API Key must not also be an API token")

    user_email = keys[0]["email"] if keys else DEFAULT_GLOBAL_KEY_EMAIL
    raw_user = data.get("user", {})
    if not isinstance(raw_user, dict):
        raise ScenarioError(f"user must be an object, got {raw_user!r}")
    check_keys(raw_user, frozenset({"id", "email"}), "user")
    user = {
        "id": raw_user.get("id", derived_hex32("user", raw_user.get("email", user_email))),
        "email": raw_user.get("email", user_email),
    }
    if not isinstance(user["id"], str) or not ACCOUNT_ID_RE.match(user["id"]):
        raise ScenarioError(f"user.id must be 32 lowercase hex digits, got {user['id']!r}")

    rate_limit = data.get("rate_limit")
    if rate_limit is not None:
        if not isinstance(rate_limit, dict):
            raise ScenarioError(f"rate_limit must be null or an object, got {rate_limit!r}")
        rate_limit = _normalize_rate_limit(rate_limit)

    raw_faults = data.get("faults", [])
    if not isinstance(raw_faults, list):
        raise ScenarioError(f"faults must be a list, got {raw_faults!r}")
    faults = []
    for i, spec in enumerate(raw_faults):
        try:
            faults.append(Fault.from_dict(spec).to_spec())
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"faults[{i}]: {exc}") from exc

    legacy = data.get("legacy_tunnel_connections", False)
    if not isinstance(legacy, bool):
        raise ScenarioError(f"legacy_tunnel_connections must be a boolean, got {legacy!r}")
    legacy_list_deleted = data.get("legacy_list_deleted", False)
    if not isinstance(legacy_list_deleted, bool):
        raise ScenarioError(f"legacy_list_deleted must be a boolean, got {legacy_list_deleted!r}")
    return {
        "api_tokens": tokens,
        "global_keys": keys,
        "user": user,
        "accounts": accounts,
        "rate_limit": rate_limit,
        "faults": faults,
        "legacy_tunnel_connections": legacy,
        "legacy_list_deleted": legacy_list_deleted,
    }
