"""The triggerer's hook factory: its connection read without blocking the loop, and its defaults."""

from __future__ import annotations

import pytest

from airflow_provider_cftunnel.exceptions import CloudflareAPIError, CloudflareConfigError
from airflow_provider_cftunnel.hooks import hook_for_triggerer
from tests.support.ids import ACCOUNT_ID, TOKEN


async def test_defaults_make_no_retries_inside(set_connection):
    set_connection(password=TOKEN, extra={"account_id": ACCOUNT_ID})
    hook = await hook_for_triggerer("cloudflare_default")
    assert (hook.timeout, hook.max_retries, hook.cloudflare_conn_id) == ((10.0, 20.0), 0, "cloudflare_default")
    assert (hook.credentials.secret, hook.account()) == (TOKEN, ACCOUNT_ID)


async def test_hook_params_override_the_defaults(set_connection):
    set_connection("cf_other", password=TOKEN)
    hook = await hook_for_triggerer("cf_other", {"timeout": [2, 3], "max_retries": 2, "max_retry_after": 7})
    assert (hook.timeout, hook.max_retries, hook.max_retry_after) == ((2.0, 3.0), 2, 7.0)


async def test_a_missing_connection_is_a_permanent_error_naming_it():
    with pytest.raises(CloudflareAPIError, match="Could not read Airflow connection 'cf_nowhere' in the trigg") as info:
        await hook_for_triggerer("cf_nowhere")
    assert not info.value.is_transient


async def test_a_connection_without_a_token_is_a_config_error(set_connection):
    set_connection("cf_empty", login="")
    with pytest.raises(CloudflareConfigError, match="no API token"):
        await hook_for_triggerer("cf_empty")


def test_what_it_imports_on_the_loop_stays_light():
    from importlib.util import find_spec

    from tests.import_probe import modules_added

    # What a triggerer has loaded already: the Task SDK on Airflow 3, the base hook on 2.11.
    setup = "import airflow.sdk" if find_spec("airflow.sdk") else "import airflow.hooks.base"
    loaded = modules_added(
        "import airflow_provider_cftunnel.hooks, airflow_provider_cftunnel.hooks.credentials", setup=setup
    )
    assert "airflow_provider_cftunnel.hooks.credentials" in loaded
    assert [m for m in loaded if m.split(".")[0] in ("requests", "urllib3")] == []
