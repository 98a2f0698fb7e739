"""The connection form refuses a malformed Account ID, read the way each Airflow line builds its form.

Airflow 3.2+ builds the form from the provider info's ``conn-fields``: the UI gets each field's JSON schema from
``HookMetaService`` (what ``GET /ui/connections/hook_meta`` answers) and 3.3's input honours ``minLength`` and
``maxLength``. Airflow 2.11 builds a WTForms form from ``get_connection_form_widgets`` and runs its validators.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import pytest

from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI

AIRFLOW_VERSION = tuple(int(part) for part in version("apache-airflow").split(".")[:2])
GOOD = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
BAD = ["a1b2c3d4", GOOD + "0", GOOD[:-1] + "g", "my-account", f" {GOOD[1:]}"]

HOOK_META_PROBE = """
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
(meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "cloudflare"]
print(json.dumps(meta.model_dump(mode="json")["extra_fields"]["account_id"]))
"""


@pytest.mark.skipif(AIRFLOW_VERSION < (3, 2), reason="conn-fields reach the form from Airflow 3.2")
def test_the_ui_gets_a_schema_that_refuses_a_malformed_account_id(tmp_path):
    import jsonschema

    env = AirflowCLI(tmp_path, tmp_path).env()
    result = subprocess.run([sys.executable, "-c", HOOK_META_PROBE], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    field = json.loads(result.stdout.strip().splitlines()[-1])
    schema = field["schema"]
    assert schema["title"] == "Account ID"
    assert (schema["minLength"], schema["maxLength"]) == (32, 32)  # what 3.3's input enforces
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(GOOD)
    assert validator.is_valid(GOOD.upper())
    assert validator.is_valid(None)  # empty: no default account
    for value in BAD:
        assert not validator.is_valid(value), value


def test_the_wtforms_form_refuses_a_malformed_account_id():
    """Airflow 2.11's form (and 3.0/3.1's with the FAB provider) runs these validators when saved."""
    pytest.importorskip("flask_appbuilder", reason="the WTForms connection form needs the FAB provider (2.x)")
    from flask import Flask
    from werkzeug.datastructures import MultiDict
    from wtforms import Form

    from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook

    class ConnectionForm(Form):
        account_id = CloudflareHook.get_connection_form_widgets()["account_id"]

    def errors(value: str) -> list[str]:
        form = ConnectionForm(formdata=MultiDict({"account_id": value}))  # as a browser posts it
        form.validate()
        return list(form.account_id.errors)

    with Flask(__name__).test_request_context():  # lazy_gettext labels need an app context
        assert errors(GOOD) == []
        assert errors("") == []
        for value in BAD:
            (message,) = errors(value)
            assert message.startswith("An account id is 32 hex characters"), message
