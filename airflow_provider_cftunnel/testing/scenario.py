"""Scenarios for the local Cloudflare simulator: the JSON format, its defaults and its validation.

A scenario says who may call the simulated API (tokens, Global API Keys), which accounts, tunnels and connectors
exist, how each connector's connections change over time (``at``: seconds since the simulator started), and
optionally an emulated rate limit and faults. Every key is optional: ``{}`` is the default scenario.
:func:`normalize_scenario` fills in every default and rejects unknown keys; its output is itself a valid
scenario. The format, its defaults and the timeline semantics are in docs/simulator.md ("Scenario format").
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import uuid
from typing import Any

from airflow_provider_cftunnel.testing.wire import ACCOUNT_ID_RE, UUID_RE

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_ACCOUNT_TOKEN",
    "DEFAULT_API_TOKEN",
    "DEFAULT_CONNECTOR_ID",
    "DEFAULT_GLOBAL_KEY",
    "DEFAULT_GLOBAL_KEY_EMAIL",
    "DEFAULT_TUNNEL_ID",
    "DEFAULT_TUNNEL_NAME",
    "DISABLED_API_TOKEN",
    "EXPIRED_API_TOKEN",
    "MAX_CONNECTORS_PER_TUNNEL",
    "NO_PERMISSION_API_TOKEN",
    "OTHER_ACCOUNT_API_TOKEN",
    "OTHER_ACCOUNT_ID",
    "READY_MODES",
    "ScenarioError",
    "default_scenario",
    "flapping_timeline",
    "fleet_tunnel_id",
    "load_scenario",
    "normalize_scenario",
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
_FLEET_KEYS = frozenset({"prefix", "count", "account_id", "up_after", "connections", "replicas", "statuses"})
#: The statuses a fleet can give some of its tunnels at start (the others are ``healthy``).
FLEET_STATUSES = ("down", "degraded", "inactive")
#: A fleet's ``down`` tunnels ran from this many seconds before their fleet was made...
FLEET_DOWN_RAN_FROM = 3600.0
#: ...until this many seconds before it: their connectors are gone (Cloudflare stopped tracking them).
FLEET_DOWN_SINCE = 600.0
_TUNNEL_KEYS = frozenset(
    {"id", "name", "created_at", "deleted_at", "remote_config", "config_src", "metadata", "connectors"}
)
_CONNECTOR_KEYS = frozenset(
    {
        "id",
        "version",
        "arch",
        "config_version",
        "features",
        "origin_ip",
        "colos",
        "timeline",
        "up_after",
        "connections",
        "flap",
        "ready",
    }
)
#: How a connector's cloudflared ``/ready`` relates to its timeline (``testing/cloudflared.py``).
READY_MODES = ("follow", "disagree", "never", "bogus")
_FLAP_KEYS = frozenset({"up", "down", "cycles"})


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


def _check_keys(obj: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(unknown)}")


def _number(value: Any, where: str, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < minimum:
        what = "a number" if minimum == -math.inf else f"a number >= {minimum:g}"
        raise ScenarioError(f"{where} must be {what}, got {value!r}")
    return value


def _count(value: Any, where: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ScenarioError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def _optional_str(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ScenarioError(f"{where} must be a string or null, got {value!r}")
    return value


def _id_list(value: Any, where: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and ACCOUNT_ID_RE.match(v) for v in value):
        raise ScenarioError(f"{where} must be null or a list of 32-hex account ids, got {value!r}")
    return list(value)


def normalize_timeline(value: Any, where: str) -> list[dict[str, Any]]:
    """Validate a connector timeline and return it with every key filled in.

    :param value: a list of ``{"at", "live", "pending"}`` or ``{"at", "gone": true}`` entries.
    :param where: names the timeline in error messages.
    :raises ScenarioError: on a malformed entry or entries out of order.
    """
    if not isinstance(value, list):
        raise ScenarioError(f"{where} must be a list, got {value!r}")
    entries: list[dict[str, Any]] = []
    previous = -math.inf
    for index, raw in enumerate(value):
        here = f"{where}[{index}]"
        if not isinstance(raw, dict):
            raise ScenarioError(f"{here} must be an object, got {raw!r}")
        _check_keys(raw, frozenset({"at", "live", "pending", "gone"}), here)
        # a negative time is before the simulator started: history it already has at start
        at = _number(raw.get("at", max(previous, 0.0)), f"{here}.at", minimum=-math.inf)
        if at < previous:
            raise ScenarioError(f"{here}.at ({at}) is earlier than the entry before it ({previous})")
        previous = at
        if raw.get("gone", False):
            if "live" in raw or "pending" in raw:
                raise ScenarioError(f"{here}: a gone entry has no live/pending counts")
            entries.append({"at": at, "gone": True})
        else:
            entries.append(
                {
                    "at": at,
                    "live": _count(raw.get("live", 0), f"{here}.live"),
                    "pending": _count(raw.get("pending", 0), f"{here}.pending"),
                }
            )
    return entries


def normalize_connector(raw: Any, where: str, default_id: str) -> dict[str, Any]:
    """Validate one connector spec and return it with every key filled in.

    :param raw: the connector spec (see the module docstring).
    :param where: names the connector in error messages.
    :param default_id: the id to use when the spec has none.
    """
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where} must be an object, got {raw!r}")
    _check_keys(raw, _CONNECTOR_KEYS, where)
    connector_id = raw.get("id", default_id)
    if not isinstance(connector_id, str) or not UUID_RE.match(connector_id):
        raise ScenarioError(f"{where}.id must be a lowercase UUID, got {connector_id!r}")
    if "timeline" in raw:
        if "up_after" in raw or "connections" in raw:
            raise ScenarioError(f"{where}: give either timeline or up_after/connections, not both")
        timeline = normalize_timeline(raw["timeline"], f"{where}.timeline")
        if "flap" in raw:
            raise ScenarioError(f"{where}: give either timeline or flap, not both (flap builds the timeline)")
    else:
        start = _number(raw.get("up_after", 0), f"{where}.up_after")
        live = _count(raw.get("connections", 4), f"{where}.connections")
        timeline = [{"at": start, "live": live, "pending": 0}]
        if raw.get("flap") is not None:
            flap = raw["flap"]
            if not isinstance(flap, dict):
                raise ScenarioError(f"{where}.flap must be an object with keys up, down and cycles, got {flap!r}")
            _check_keys(flap, _FLAP_KEYS, f"{where}.flap")
            timeline = flapping_timeline(
                start,
                up=_number(flap.get("up", 5), f"{where}.flap.up"),
                down=_number(flap.get("down", 5), f"{where}.flap.down"),
                cycles=_count(flap.get("cycles", 1), f"{where}.flap.cycles"),
                live=live,
            )
    colos = raw.get("colos", list(DEFAULT_COLOS))
    if not isinstance(colos, list) or not colos or not all(isinstance(c, str) for c in colos):
        raise ScenarioError(f"{where}.colos must be a non-empty list of strings, got {colos!r}")
    features = raw.get("features", list(DEFAULT_FEATURES))
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise ScenarioError(f"{where}.features must be a list of strings, got {features!r}")
    version = raw.get("version", DEFAULT_VERSION)
    arch = raw.get("arch", DEFAULT_ARCH)
    origin_ip = raw.get("origin_ip", DEFAULT_ORIGIN_IP)
    for key, val in (("version", version), ("arch", arch), ("origin_ip", origin_ip)):
        if not isinstance(val, str):
            raise ScenarioError(f"{where}.{key} must be a string, got {val!r}")
    normalized = {
        "id": connector_id,
        "version": version,
        "arch": arch,
        "config_version": _count(raw.get("config_version", 0), f"{where}.config_version"),
        "features": list(features),
        "origin_ip": origin_ip,
        "colos": list(colos),
        "timeline": timeline,
    }
    if raw.get("ready") is not None:  # cloudflared's /ready (testing/cloudflared.py); absent: follows the timeline
        normalized["ready"] = normalize_ready(raw["ready"], where)
    return normalized


def normalize_ready(raw: Any, where: str) -> dict[str, Any]:
    """Validate a connector's ``ready`` spec (its cloudflared ``/ready``) and return it with every key filled in.

    :param raw: ``{"mode": one of READY_MODES, "lag": seconds}``.
    :param where: names the connector in error messages.
    :raises ScenarioError: on a bad spec.
    """
    if not isinstance(raw, dict) or set(raw) - {"mode", "lag"}:
        raise ScenarioError(f"{where}.ready must be an object with keys mode and lag, got {raw!r}")
    mode = raw.get("mode", "follow")
    if mode not in READY_MODES:
        raise ScenarioError(f"{where}.ready.mode must be one of {', '.join(READY_MODES)}, got {mode!r}")
    lag = _number(raw.get("lag", 0), f"{where}.ready.lag", minimum=-math.inf)
    return {"mode": mode, "lag": float(lag)}


def flapping_timeline(start: float, *, up: float, down: float, cycles: int, live: int = 4) -> list[dict[str, Any]]:
    """Return a connector timeline that flaps (the scenario key ``flap``).

    It is up at ``start``, then ``cycles`` times pending for ``down`` seconds after ``up`` seconds live, then
    live for good.

    :param start: when it first connects (simulated seconds since start).
    :param up: seconds live in each cycle.
    :param down: seconds pending in each cycle.
    :param cycles: how many drops.
    :param live: live connections while up.
    """
    timeline: list[dict[str, Any]] = []
    at = start
    for _ in range(cycles):
        timeline.append({"at": at, "live": live, "pending": 0})
        timeline.append({"at": at + up, "live": 0, "pending": live})
        at += up + down
    timeline.append({"at": at, "live": live, "pending": 0})
    return timeline


def normalize_tunnel(raw: Any, where: str, default_id: str, default_name: str) -> dict[str, Any]:
    """Validate one tunnel spec and return it with every key filled in.

    :param raw: the tunnel spec (see the module docstring).
    :param where: names the tunnel in error messages.
    :param default_id: the id to use when the spec has none.
    :param default_name: the name to use when the spec has none.
    """
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where} must be an object, got {raw!r}")
    _check_keys(raw, _TUNNEL_KEYS, where)
    tunnel_id = raw.get("id", default_id)
    if not isinstance(tunnel_id, str) or not UUID_RE.match(tunnel_id):
        raise ScenarioError(f"{where}.id must be a lowercase UUID, got {tunnel_id!r}")
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise ScenarioError(f"{where}.name must be a non-empty string, got {name!r}")
    metadata = raw.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ScenarioError(f"{where}.metadata must be an object, got {metadata!r}")
    remote_config = raw.get("remote_config", False)
    if not isinstance(remote_config, bool):
        raise ScenarioError(f"{where}.remote_config must be a boolean, got {remote_config!r}")
    config_src = raw.get("config_src", "cloudflare" if remote_config else "local")
    if config_src not in ("local", "cloudflare"):
        raise ScenarioError(f"{where}.config_src must be 'local' or 'cloudflare', got {config_src!r}")
    raw_connectors = raw.get("connectors", [])
    if not isinstance(raw_connectors, list):
        raise ScenarioError(f"{where}.connectors must be a list, got {raw_connectors!r}")
    if len(raw_connectors) > MAX_CONNECTORS_PER_TUNNEL:
        raise ScenarioError(
            f"{where}.connectors: {len(raw_connectors)} connectors, Cloudflare allows at most "
            f"{MAX_CONNECTORS_PER_TUNNEL} per tunnel"
        )
    connectors = [
        normalize_connector(
            c,
            f"{where}.connectors[{i}]",
            DEFAULT_CONNECTOR_ID
            if tunnel_id == DEFAULT_TUNNEL_ID and i == 0
            else derived_uuid(tunnel_id, "connector", i),
        )
        for i, c in enumerate(raw_connectors)
    ]
    ids = [c["id"] for c in connectors]
    if len(set(ids)) != len(ids):
        raise ScenarioError(f"{where}.connectors: connector ids must be unique")
    return {
        "id": tunnel_id,
        "name": name,
        "created_at": _optional_str(raw.get("created_at"), f"{where}.created_at"),
        "deleted_at": _optional_str(raw.get("deleted_at"), f"{where}.deleted_at"),
        "remote_config": remote_config,
        "config_src": config_src,
        "metadata": copy.deepcopy(metadata),
        "connectors": connectors,
    }


def normalize_fleet(raw: Any, where: str, default_account_id: str | None) -> dict[str, Any]:
    """Validate one fleet spec and return it with every key filled in.

    :param raw: ``{"prefix", "count", "account_id"?, "up_after"?, "connections"?, "replicas"?, "statuses"?}``
        (see the module docstring).
    :param where: names the fleet in error messages.
    :param default_account_id: the account of a fleet that names none.
    :raises ScenarioError: on a missing or malformed key.
    """
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where} must be an object, got {raw!r}")
    _check_keys(raw, _FLEET_KEYS, where)
    prefix = raw.get("prefix")
    if not isinstance(prefix, str):
        raise ScenarioError(f"{where}.prefix must be a string, got {prefix!r}")
    count = _count(raw.get("count"), f"{where}.count", minimum=1)
    account_id = raw.get("account_id", default_account_id)
    if not isinstance(account_id, str) or not ACCOUNT_ID_RE.match(account_id):
        raise ScenarioError(f"{where}.account_id must be 32 lowercase hex digits, got {account_id!r}")
    replicas = _count(raw.get("replicas", 1), f"{where}.replicas", minimum=1)
    if replicas > MAX_CONNECTORS_PER_TUNNEL:
        raise ScenarioError(f"{where}.replicas must be at most {MAX_CONNECTORS_PER_TUNNEL}, got {replicas}")
    statuses = raw.get("statuses", {})
    if not isinstance(statuses, dict):
        raise ScenarioError(f"{where}.statuses must be an object, got {statuses!r}")
    _check_keys(statuses, frozenset(FLEET_STATUSES), f"{where}.statuses")
    counts = {s: _count(statuses.get(s, 0), f"{where}.statuses.{s}") for s in FLEET_STATUSES}
    if sum(counts.values()) > count:
        raise ScenarioError(f"{where}.statuses: {sum(counts.values())} tunnels, but the fleet has {count}")
    return {
        "prefix": prefix,
        "count": count,
        "account_id": account_id,
        "up_after": _number(raw.get("up_after", 0.0), f"{where}.up_after"),
        "connections": _count(raw.get("connections", 4), f"{where}.connections", minimum=1),
        "replicas": replicas,
        "statuses": counts,
    }


def fleet_tunnel_id(account_id: str, prefix: str, index: int) -> str:
    """Return the id of the ``index``-th tunnel (from 0) of the fleet ``prefix`` in ``account_id``.

    :param account_id: the fleet's account.
    :param prefix: the fleet's name prefix.
    :param index: the tunnel's position in the fleet.
    """
    return derived_uuid(account_id, "fleet", prefix, index)


def fleet_tunnels(fleet: dict[str, Any], *, base: float = 0.0) -> list[dict[str, Any]]:
    """Return the tunnel specs (to normalize) of a normalized fleet.

    Tunnel ``i`` (from 0) is named ``prefix`` + ``i + 1`` zero-padded to the width of ``count``
    (``prod-web-0001`` ... ``prod-web-1000``) and has the id :func:`fleet_tunnel_id`. Which tunnels get the
    ``statuses`` is a deterministic pseudo-random spread over the fleet (the same fleet, the same tunnels).
    Each tunnel has ``replicas`` connectors of ``connections`` connections each, and at start:

    * ``healthy``: every connection live from ``base + up_after``;
    * ``degraded``: the same, but one connection of the first connector pending (Cloudflare is still tracking it);
    * ``down``: its connectors ran from ``base - 3600`` and are gone since ``base - 600`` (so
      ``conns_active_at`` and ``conns_inactive_at`` are set, and ``/connections`` lists nothing);
    * ``inactive``: no connector ever.

    :param fleet: a fleet as :func:`normalize_fleet` returns it.
    :param base: seconds since start the fleet is made at (``0`` in a scenario).
    """
    count, prefix, account_id = fleet["count"], fleet["prefix"], fleet["account_id"]
    connections, replicas = fleet["connections"], fleet["replicas"]
    chosen = random.Random(f"{account_id}/{prefix}/{count}").sample(range(count), sum(fleet["statuses"].values()))
    status_of: dict[int, str] = {}
    for status in FLEET_STATUSES:
        wanted = fleet["statuses"][status]
        status_of.update((index, status) for index in chosen[:wanted])
        chosen = chosen[wanted:]
    up_at = base + fleet["up_after"]
    width = len(str(count))
    tunnels = []
    for index in range(count):
        status = status_of.get(index, "healthy")
        timelines: list[list[dict[str, Any]]]
        if status == "inactive":
            timelines = []
        elif status == "down":
            ran = [
                {"at": base - FLEET_DOWN_RAN_FROM, "live": connections},
                {"at": base - FLEET_DOWN_SINCE, "gone": True},
            ]
            timelines = [ran] * replicas
        else:
            timelines = [[{"at": up_at, "live": connections}]] * replicas
            if status == "degraded":
                timelines[0] = [{"at": up_at, "live": max(1, connections - 1), "pending": 1}]
        tunnels.append(
            {
                "id": fleet_tunnel_id(account_id, prefix, index),
                "name": f"{prefix}{index + 1:0{width}d}",
                "connectors": [{"timeline": [dict(e) for e in timeline]} for timeline in timelines],
            }
        )
    return tunnels


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
        _check_keys(account, _ACCOUNT_KEYS, where)
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
    up_after = _number(data.get("up_after", 3.0), "up_after")
    connections = _count(data.get("connections", 4), "connections")
    replicas = _count(data.get("replicas", 1), "replicas", minimum=0)
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
    _check_keys(raw, _TOKEN_KEYS, where)
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
        accounts = _id_list(raw.get("accounts"), f"{where}.accounts")
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
            "expires_on": _optional_str(raw.get("expires_on"), f"{where}.expires_on"),
            "not_before": _optional_str(raw.get("not_before"), f"{where}.not_before"),
        },
        where,
    )


def _normalize_rate_limit(raw: dict[str, Any]) -> dict[str, Any]:
    """The ``rate_limit`` object: ``requests`` per ``period`` s per user, plus, when not the default, how
    answers describe it (``headers``: ``ietf``, ``legacy`` or ``none``), another consumer's spending
    (``dashboard_rate``, requests per second), how requests are counted (``window``: ``sliding`` or ``fixed``)
    and what a sliding window's ``t`` counts to (``reset``: ``more`` or ``full``)."""
    _check_keys(raw, frozenset({"requests", "period", "headers", "dashboard_rate", "window", "reset"}), "rate_limit")
    rate_limit: dict[str, Any] = {
        "requests": _count(raw.get("requests", 1200), "rate_limit.requests", minimum=1),
        "period": _number(raw.get("period", 300), "rate_limit.period", minimum=0.001),
    }
    headers = raw.get("headers", "ietf")
    if headers not in ("ietf", "legacy", "none"):
        raise ScenarioError(f"rate_limit.headers must be 'ietf', 'legacy' or 'none', got {headers!r}")
    if headers != "ietf":
        rate_limit["headers"] = headers
    dashboard_rate = _number(raw.get("dashboard_rate", 0), "rate_limit.dashboard_rate")
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
    """Keep a credential's optional ``user``: whose rate-limit pool it draws from (default: the scenario's
    user, so every token and key of a scenario shares one pool, as Cloudflare counts per user)."""
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
    _check_keys(data, _TOP_KEYS, "scenario")
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
        _check_keys(raw, _KEY_KEYS, where)
        email, key = raw.get("email"), raw.get("key")
        if not isinstance(email, str) or "@" not in email:
            raise ScenarioError(f"{where}.email must be an e-mail address, got {email!r}")
        if not isinstance(key, str) or not key or any(ch.isspace() for ch in key):
            raise ScenarioError(f"{where}.key must be a non-empty string without spaces, got {key!r}")
        key_accounts = _id_list(raw.get("accounts"), f"{where}.accounts")
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
    _check_keys(raw_user, frozenset({"id", "email"}), "user")
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
