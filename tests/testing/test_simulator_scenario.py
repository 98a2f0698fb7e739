"""The scenario format: defaults, shorthands, files, validation, and the effective scenario."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from airflow_provider_cftunnel.testing import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_API_TOKEN,
    DEFAULT_CONNECTOR_ID,
    DEFAULT_TUNNEL_ID,
    CloudflareSimulator,
    ScenarioError,
    default_scenario,
    load_scenario,
    normalize_scenario,
)


def test_default_scenario_shape() -> None:
    scenario = default_scenario()
    assert set(scenario) == {
        "api_tokens",
        "global_keys",
        "user",
        "accounts",
        "rate_limit",
        "faults",
        "legacy_tunnel_connections",
        "legacy_list_deleted",
    }
    [account] = scenario["accounts"]
    assert account["id"] == DEFAULT_ACCOUNT_ID
    [tunnel] = account["tunnels"]
    assert tunnel["id"] == DEFAULT_TUNNEL_ID
    [connector] = tunnel["connectors"]
    assert connector["id"] == DEFAULT_CONNECTOR_ID
    assert connector["timeline"] == [{"at": 3.0, "live": 4, "pending": 0}]
    assert scenario["api_tokens"][0]["token"] == DEFAULT_API_TOKEN
    assert {t["owner"] for t in scenario["api_tokens"]} == {"user", "account"}
    assert all(re.fullmatch(r"[0-9a-f]{32}", t["id"]) for t in scenario["api_tokens"])
    assert scenario["rate_limit"] is None
    assert scenario["faults"] == []
    assert load_scenario(None) == scenario
    assert normalize_scenario({}) == scenario


def test_default_scenario_arguments() -> None:
    scenario = default_scenario(up_after=0, connections=2, replicas=3)
    connectors = scenario["accounts"][0]["tunnels"][0]["connectors"]
    assert [c["timeline"] for c in connectors] == [[{"at": 0, "live": 2, "pending": 0}]] * 3
    assert connectors[0]["id"] == DEFAULT_CONNECTOR_ID
    assert len({c["id"] for c in connectors}) == 3
    assert default_scenario(replicas=0)["accounts"][0]["tunnels"][0]["connectors"] == []


def test_partial_dicts_keep_defaults_for_the_rest() -> None:
    scenario = normalize_scenario({"up_after": 0, "rate_limit": {"requests": 10}})
    assert scenario["rate_limit"] == {"requests": 10, "period": 300}
    assert scenario["accounts"][0]["tunnels"][0]["connectors"][0]["timeline"][0]["at"] == 0
    assert scenario["api_tokens"] == default_scenario()["api_tokens"]
    only_tokens = normalize_scenario({"api_tokens": ["a", {"token": "b", "owner": "account"}]})
    assert [t["token"] for t in only_tokens["api_tokens"]] == ["a", "b"]
    assert only_tokens["api_tokens"][1]["account_id"] == DEFAULT_ACCOUNT_ID
    assert only_tokens["accounts"] == default_scenario()["accounts"]


def test_ids_default_deterministically() -> None:
    scenario = {"accounts": [{"tunnels": [{}, {"connectors": [{}, {}]}]}, {"tunnels": [{}]}]}
    first, second = normalize_scenario(scenario), normalize_scenario(scenario)
    assert first == second
    tunnels = first["accounts"][0]["tunnels"]
    assert tunnels[0]["id"] == DEFAULT_TUNNEL_ID
    assert [t["name"] for t in tunnels] == ["cfsim-tunnel", "cfsim-tunnel-2"]
    assert tunnels[1]["connectors"][0]["timeline"] == [{"at": 0, "live": 4, "pending": 0}]
    assert re.fullmatch(r"[0-9a-f]{32}", first["accounts"][1]["id"])


def test_normalizing_is_idempotent() -> None:
    scenario = normalize_scenario(
        {
            "accounts": [
                {"tunnels": [{"connectors": [{"timeline": [{"at": 1, "live": 2}, {"at": 5, "gone": True}]}]}]}
            ],
            "faults": [{"kind": "slow", "delay": 1}],
            "rate_limit": {"requests": 5, "period": 1},
        }
    )
    assert normalize_scenario(scenario) == scenario
    assert normalize_scenario(json.loads(json.dumps(scenario))) == scenario


def test_effective_scenario_reloads(tmp_path: Path) -> None:
    sim = CloudflareSimulator({"up_after": 0, "replicas": 2})
    sim.set_rate_limit(10, 60)
    sim.inject_fault(kind="rate_limit", retry_after=1, count=3)
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(sim.scenario))
    again = CloudflareSimulator(path)
    assert again.scenario == sim.scenario
    assert again.scenario["faults"] == [{"kind": "rate_limit", "retry_after": 1, "count": 3}]


def test_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"up_after": 7}))
    assert load_scenario(path)["accounts"][0]["tunnels"][0]["connectors"][0]["timeline"][0]["at"] == 7
    assert load_scenario(str(path)) == load_scenario(path)
    path.write_text("{not json")
    with pytest.raises(ScenarioError, match="not valid JSON"):
        load_scenario(path)
    path.write_text("[]")
    with pytest.raises(ScenarioError, match="JSON object"):
        load_scenario(path)
    with pytest.raises(FileNotFoundError):
        load_scenario(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ({"colour": 1}, "unknown key"),
        ({"up_after": -1}, "up_after"),
        ({"connections": 1.5}, "connections"),
        ({"replicas": 26}, "at most 25"),
        ({"accounts": [], "up_after": 1}, "shorthands"),
        ({"accounts": [{"id": "abc"}]}, "32 lowercase hex"),
        ({"accounts": [{"id": DEFAULT_ACCOUNT_ID}, {"id": DEFAULT_ACCOUNT_ID}]}, "unique"),
        ({"accounts": [{"tunnels": [{"id": "x"}]}]}, "UUID"),
        ({"accounts": [{"tunnels": [{}, {"id": DEFAULT_TUNNEL_ID}]}]}, "used twice"),
        ({"accounts": [{"tunnels": [{"name": ""}]}]}, "name"),
        ({"accounts": [{"tunnels": [{"connectors": [{}] * 26}]}]}, "at most 25"),
        ({"accounts": [{"tunnels": [{"connectors": [{"id": DEFAULT_CONNECTOR_ID}] * 2}]}]}, "unique"),
        ({"accounts": [{"tunnels": [{"connectors": [{"timeline": [{"at": 5}, {"at": 1}]}]}]}]}, "earlier"),
        ({"accounts": [{"tunnels": [{"connectors": [{"timeline": [{"at": 1, "live": -1}]}]}]}]}, "live"),
        ({"accounts": [{"tunnels": [{"connectors": [{"timeline": [{"at": 1, "gone": True, "live": 1}]}]}]}]}, "gone"),
        ({"accounts": [{"tunnels": [{"connectors": [{"timeline": [], "up_after": 1}]}]}]}, "either"),
        ({"accounts": [{"tunnels": [{"connectors": [{"colos": []}]}]}]}, "colos"),
        ({"accounts": [{"tunnels": [{"config_src": "git"}]}]}, "config_src"),
        ({"api_tokens": [""]}, "token"),
        ({"api_tokens": ["a b"]}, "without spaces"),
        ({"api_tokens": ["a", "a"]}, "unique"),
        ({"api_tokens": [{"token": "a", "status": "revoked"}]}, "status"),
        ({"api_tokens": [{"token": "a", "owner": "robot"}]}, "owner"),
        ({"api_tokens": [{"token": "a", "accounts": ["nope"]}]}, "accounts"),
        ({"api_tokens": [{"token": "a", "owner": "account", "accounts": [DEFAULT_ACCOUNT_ID]}]}, "account_id"),
        ({"api_tokens": [{"token": "a", "account_id": DEFAULT_ACCOUNT_ID}]}, "user token"),
        ({"global_keys": [{"email": "nope", "key": "k"}]}, "e-mail"),
        ({"global_keys": [{"email": "a@b", "key": DEFAULT_API_TOKEN}]}, "also be an API token"),
        ({"rate_limit": {"requests": 0}}, "requests"),
        ({"faults": [{"kind": "explode"}]}, r"faults\[0\]"),
        ({"legacy_tunnel_connections": "yes"}, "boolean"),
    ],
)
def test_invalid_scenarios(scenario: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        normalize_scenario(scenario)
