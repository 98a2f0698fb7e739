"""Provider registration and the connection form, read the way Airflow reads them."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points, version
from importlib.resources import files
from typing import Any

import pytest

from airflow_provider_cftunnel.get_provider_info import get_provider_info
from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI


def test_registered_under_the_airflow_entry_point():
    (entry,) = [
        e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_provider_cftunnel")
    ]
    assert entry.value == "airflow_provider_cftunnel.get_provider_info:get_provider_info"
    assert entry.load()() == get_provider_info()


def test_every_registered_module_imports():
    import importlib

    info = get_provider_info()
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for module in info[kind][0]["python-modules"]:
            assert importlib.import_module(module).__all__, module


def test_provider_info():
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-cftunnel"
    (conn_type,) = info["connection-types"]
    assert conn_type["connection-type"] == "cloudflare"
    assert conn_type["hook-class-name"] == "airflow_provider_cftunnel.hooks.cloudflare.CloudflareHook"
    assert info["triggers"][0]["python-modules"] == [
        "airflow_provider_cftunnel.triggers.tunnel",
        "airflow_provider_cftunnel.triggers.health",
    ]
    assert info["operators"][0]["python-modules"] == [
        "airflow_provider_cftunnel.operators.tunnel",
        "airflow_provider_cftunnel.operators.health",
    ]
    assert info["extra-links"] == ["airflow_provider_cftunnel.operators.tunnel.CloudflareTunnelLink"]


def airflow_schema(name: str) -> dict[str, Any]:
    """Return one of the JSON schemas the installed Airflow ships, or skip the test when it ships none."""
    resource = files("airflow").joinpath(name)
    if not resource.is_file():
        pytest.skip(f"apache-airflow {version('apache-airflow')} ships no {name}")
    return json.loads(resource.read_text())


def schema_errors(schema: dict[str, Any], instance: Any) -> list[str]:
    """Validate the way Airflow's providers manager does (the validator the schema's ``$schema`` names)."""
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def test_provider_info_is_valid_for_the_installed_airflow():
    # what the providers manager checks on discovery, with the schema of the Airflow running the tests
    assert schema_errors(airflow_schema("provider_info.schema.json"), get_provider_info()) == []


def test_provider_info_sections_are_valid_provider_yaml():
    # provider_info.schema.json admits unknown keys, so a misspelt section would be silently ignored: check
    # every section against the full provider.yaml schema too (its top-level keys, and each entry's shape)
    schema = airflow_schema("provider.yaml.schema.json")
    schema = {**schema, "required": [], "additionalProperties": False}
    assert schema_errors(schema, get_provider_info()) == []


def test_connection_form_behaviour_is_valid_for_the_installed_airflow():
    from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook

    schema = airflow_schema("customized_form_field_behaviours.schema.json")
    assert schema_errors(schema, CloudflareHook.get_ui_field_behaviour()) == []


def test_schema_check_rejects_a_broken_provider_info():
    # the checks above can fail: a misspelt section and a hook entry without its modules are both reported
    broken = {**get_provider_info(), "extra-link": ["x"], "hooks": [{"integration-name": "Cloudflare Tunnel"}]}
    schema = {**airflow_schema("provider.yaml.schema.json"), "required": [], "additionalProperties": False}
    errors = schema_errors(schema, broken)
    assert any("extra-link" in error for error in errors), errors
    assert any(error.startswith("hooks/0") and "python-modules" in error for error in errors), errors


AIRFLOW_VERSION = tuple(int(part) for part in version("apache-airflow").split(".")[:2])

FORM_PROBE = """
import json, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    from airflow.providers_manager import ProvidersManager
    pm = ProvidersManager()
    widgets = {k: v for k, v in pm.connection_form_widgets.items() if "cloudflare" in k}
    behaviour = pm.field_behaviours.get("cloudflare")
    hooks = pm.hooks
    hook = hooks.get("cloudflare")
def label(widget):
    field = widget.field
    if isinstance(field, dict):
        return field["schema"].get("title")
    return str(field.args[0]) if getattr(field, "args", None) else str(field.kwargs.get("label"))
print(json.dumps({
    "widgets": {k: {"label": label(v), "sensitive": v.is_sensitive} for k, v in widgets.items()},
    "behaviour": behaviour,
    "hook_class": hook.hook_class_name if hook else None,
    "provider_warnings": [
        str(w.message) for w in caught if "cftunnel" in str(w.message) or "Cloudflare" in str(w.message)
    ],
}))
"""


def test_connection_form_as_the_ui_reads_it(tmp_path):
    env = AirflowCLI(tmp_path, tmp_path).env()
    result = subprocess.run([sys.executable, "-c", FORM_PROBE], env=env, capture_output=True, text=True, check=True)
    form = json.loads(result.stdout.strip().splitlines()[-1])
    if not form["widgets"] and form["behaviour"] is None and AIRFLOW_VERSION < (3, 2) and AIRFLOW_VERSION >= (3, 0):
        pytest.skip("Airflow 3.0 and 3.1 build connection forms only with the FAB provider installed")
    assert form["hook_class"] == "airflow_provider_cftunnel.hooks.cloudflare.CloudflareHook"
    assert form["widgets"]["extra__cloudflare__account_id"] == {"label": "Account ID", "sensitive": False}
    relabeling = form["behaviour"]["relabeling"]
    assert relabeling == {
        "password": "API Token",
        "login": "Email (legacy Global API Key auth only)",
        "host": "API base URL",
    }
    # the token lives in the password field, which the form always masks; it must stay visible and relabelled
    assert "password" not in form["behaviour"]["hidden_fields"]
    assert set(form["behaviour"]["hidden_fields"]) == {"schema", "port"}
    assert form["provider_warnings"] == []


def test_airflow_connections_test(tmp_path, cloudflare_simulator_factory):
    sim = cloudflare_simulator_factory({"up_after": 0})
    env = {**sim.airflow_env(), "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    cli = AirflowCLI(tmp_path / "home", tmp_path, env)
    cli.migrate()
    ok = cli.run("connections", "test", "cloudflare_default")
    assert ok.returncode == 0, ok.stdout[-2000:]
    assert "Connection success!" in ok.stdout
    assert [r.path for r in sim.requests] == [
        "/client/v4/user/tokens/verify",
        f"/client/v4/accounts/{sim.account_id}/cfd_tunnel",
    ]
    assert sim.api_token not in ok.stdout

    wrong = {
        "conn_type": "cloudflare",
        "host": sim.base_url,
        "password": "wrong-token-for-cli-test",
        "extra": {"account_id": sim.account_id},
    }
    cli.extra_env["AIRFLOW_CONN_CLOUDFLARE_DEFAULT"] = json.dumps(wrong)
    failed = cli.run("connections", "test", "cloudflare_default")
    assert "Connection failed!" in failed.stdout
    assert "Invalid API Token" in failed.stdout or "HTTP 401" in failed.stdout
    assert "wrong-token-for-cli-test" not in failed.stdout
