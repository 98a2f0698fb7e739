"""The connector, tunnel and fleet specs of a scenario: their validation, timelines and generated fleets."""

from __future__ import annotations

import copy
import math
import random
from typing import Any

from airflow_provider_cftunnel.testing.scenario_values import (
    DEFAULT_ARCH,
    DEFAULT_COLOS,
    DEFAULT_CONNECTOR_ID,
    DEFAULT_FEATURES,
    DEFAULT_ORIGIN_IP,
    DEFAULT_TUNNEL_ID,
    DEFAULT_VERSION,
    MAX_CONNECTORS_PER_TUNNEL,
    ScenarioError,
    check_count,
    check_keys,
    check_number,
    check_optional_str,
    derived_uuid,
)
from airflow_provider_cftunnel.testing.wire import ACCOUNT_ID_RE, UUID_RE

__all__ = [
    "FLEET_DOWN_RAN_FROM",
    "FLEET_DOWN_SINCE",
    "FLEET_STATUSES",
    "READY_MODES",
    "flapping_timeline",
    "fleet_tunnel_id",
    "fleet_tunnels",
    "normalize_connector",
    "normalize_fleet",
    "normalize_ready",
    "normalize_timeline",
    "normalize_tunnel",
]

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


def _spec_id(raw: Any, keys: frozenset[str], where: str, default_id: str) -> str:
    """Check that ``raw`` is an object with only ``keys`` and return its ``id`` (a lowercase UUID).

    :param raw: a connector or tunnel spec.
    :param keys: the keys it may have.
    :param where: names the spec in error messages.
    :param default_id: the id when the spec has none.
    """
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where} must be an object, got {raw!r}")
    check_keys(raw, keys, where)
    spec_id = raw.get("id", default_id)
    if not isinstance(spec_id, str) or not UUID_RE.match(spec_id):
        raise ScenarioError(f"{where}.id must be a lowercase UUID, got {spec_id!r}")
    return spec_id


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
        check_keys(raw, frozenset({"at", "live", "pending", "gone"}), here)
        # a negative time is before the simulator started: history it already has at start
        at = check_number(raw.get("at", max(previous, 0.0)), f"{here}.at", minimum=-math.inf)
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
                    "live": check_count(raw.get("live", 0), f"{here}.live"),
                    "pending": check_count(raw.get("pending", 0), f"{here}.pending"),
                }
            )
    return entries


def normalize_connector(raw: Any, where: str, default_id: str) -> dict[str, Any]:
    """Validate one connector spec and return it with every key filled in.

    :param raw: the connector spec (see :mod:`~airflow_provider_cftunnel.testing.scenario`).
    :param where: names the connector in error messages.
    :param default_id: the id to use when the spec has none.
    """
    connector_id = _spec_id(raw, _CONNECTOR_KEYS, where, default_id)
    if "timeline" in raw:
        if "up_after" in raw or "connections" in raw:
            raise ScenarioError(f"{where}: give either timeline or up_after/connections, not both")
        timeline = normalize_timeline(raw["timeline"], f"{where}.timeline")
        if "flap" in raw:
            raise ScenarioError(f"{where}: give either timeline or flap, not both (flap builds the timeline)")
    else:
        start = check_number(raw.get("up_after", 0), f"{where}.up_after")
        live = check_count(raw.get("connections", 4), f"{where}.connections")
        timeline = [{"at": start, "live": live, "pending": 0}]
        if raw.get("flap") is not None:
            flap = raw["flap"]
            if not isinstance(flap, dict):
                raise ScenarioError(f"{where}.flap must be an object with keys up, down and cycles, got {flap!r}")
            check_keys(flap, _FLAP_KEYS, f"{where}.flap")
            timeline = flapping_timeline(
                start,
                up=check_number(flap.get("up", 5), f"{where}.flap.up"),
                down=check_number(flap.get("down", 5), f"{where}.flap.down"),
                cycles=check_count(flap.get("cycles", 1), f"{where}.flap.cycles"),
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
        "config_version": check_count(raw.get("config_version", 0), f"{where}.config_version"),
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
    lag = check_number(raw.get("lag", 0), f"{where}.ready.lag", minimum=-math.inf)
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

    :param raw: the tunnel spec (see :mod:`~airflow_provider_cftunnel.testing.scenario`).
    :param where: names the tunnel in error messages.
    :param default_id: the id to use when the spec has none.
    :param default_name: the name to use when the spec has none.
    """
    tunnel_id = _spec_id(raw, _TUNNEL_KEYS, where, default_id)
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
        "created_at": check_optional_str(raw.get("created_at"), f"{where}.created_at"),
        "deleted_at": check_optional_str(raw.get("deleted_at"), f"{where}.deleted_at"),
        "remote_config": remote_config,
        "config_src": config_src,
        "metadata": copy.deepcopy(metadata),
        "connectors": connectors,
    }


def normalize_fleet(raw: Any, where: str, default_account_id: str | None) -> dict[str, Any]:
    """Validate one fleet spec and return it with every key filled in.

    :param raw: ``{"prefix", "count", "account_id"?, "up_after"?, "connections"?, "replicas"?, "statuses"?}``
        (see :mod:`~airflow_provider_cftunnel.testing.scenario`).
    :param where: names the fleet in error messages.
    :param default_account_id: the account of a fleet that names none.
    :raises ScenarioError: on a missing or malformed key.
    """
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where} must be an object, got {raw!r}")
    check_keys(raw, _FLEET_KEYS, where)
    prefix = raw.get("prefix")
    if not isinstance(prefix, str):
        raise ScenarioError(f"{where}.prefix must be a string, got {prefix!r}")
    count = check_count(raw.get("count"), f"{where}.count", minimum=1)
    account_id = raw.get("account_id", default_account_id)
    if not isinstance(account_id, str) or not ACCOUNT_ID_RE.match(account_id):
        raise ScenarioError(f"{where}.account_id must be 32 lowercase hex digits, got {account_id!r}")
    replicas = check_count(raw.get("replicas", 1), f"{where}.replicas", minimum=1)
    if replicas > MAX_CONNECTORS_PER_TUNNEL:
        raise ScenarioError(f"{where}.replicas must be at most {MAX_CONNECTORS_PER_TUNNEL}, got {replicas}")
    statuses = raw.get("statuses", {})
    if not isinstance(statuses, dict):
        raise ScenarioError(f"{where}.statuses must be an object, got {statuses!r}")
    check_keys(statuses, frozenset(FLEET_STATUSES), f"{where}.statuses")
    counts = {s: check_count(statuses.get(s, 0), f"{where}.statuses.{s}") for s in FLEET_STATUSES}
    if sum(counts.values()) > count:
        raise ScenarioError(f"{where}.statuses: {sum(counts.values())} tunnels, but the fleet has {count}")
    return {
        "prefix": prefix,
        "count": count,
        "account_id": account_id,
        "up_after": check_number(raw.get("up_after", 0.0), f"{where}.up_after"),
        "connections": check_count(raw.get("connections", 4), f"{where}.connections", minimum=1),
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
