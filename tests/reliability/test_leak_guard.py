"""The secret-leak guard (``tests/leak_guard.py``) catches leaks, and the provider's channels hold none.

The guard itself is shown by an inner pytest session (a subprocess, so the secrets its tests print on purpose
never reach this session's output) whose tests leak through each channel the guard watches.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cftunnel.operators.tunnel import CloudflareTunnelConnectorOperator
from airflow_provider_cftunnel.testing import (
    DEFAULT_ACCOUNT_TOKEN,
    DEFAULT_API_TOKEN,
    DEFAULT_GLOBAL_KEY,
    DISABLED_API_TOKEN,
    EXPIRED_API_TOKEN,
    NO_PERMISSION_API_TOKEN,
    OTHER_ACCOUNT_API_TOKEN,
)
from airflow_provider_cftunnel.triggers.tunnel import CloudflareTunnelConnectorTrigger
from tests.leak_guard import Leak, assert_no_secret, find_leaks, registered_secrets
from tests.support.fakes import RecordingTaskInstance, fast_hook

ROOT = Path(__file__).resolve().parents[2]

# -- the helpers -----------------------------------------------------------------------------------------


def test_simulator_credentials_are_registered_for_every_test() -> None:
    secrets = registered_secrets()
    for credential in (
        DEFAULT_API_TOKEN,
        DEFAULT_ACCOUNT_TOKEN,
        DEFAULT_GLOBAL_KEY,
        DISABLED_API_TOKEN,
        EXPIRED_API_TOKEN,
        NO_PERMISSION_API_TOKEN,
        OTHER_ACCOUNT_API_TOKEN,
    ):
        assert credential in secrets


def test_set_connection_registers_the_password(set_connection) -> None:
    set_connection(password="a-password-from-set-connection")
    assert "a-password-from-set-connection" in registered_secrets()


def test_find_leaks_walks_nested_data(register_secret) -> None:
    secret = "nested-secret-0a1b2c3d"
    register_secret(secret)
    cause = ValueError(f"root cause with {secret}")
    try:
        raise RuntimeError("wrapper") from cause
    except RuntimeError as error:
        wrapped = error
    assert find_leaks({"a": [1, {"b": ("x", secret.encode())}]}, "xcom")
    assert find_leaks({secret: 1}, "keys")
    assert find_leaks(wrapped, "error")[0].where.startswith("error.__cause__")
    assert find_leaks(f"https://example.test/?token={secret}", "url")
    assert find_leaks({"clean": ["nothing", 1, None, 2.5]}, "clean") == []


def test_percent_encoded_secrets_are_found(register_secret) -> None:
    secret = "needs/encoding+é-0123"
    register_secret(secret)
    assert find_leaks("https://example.test/x?t=needs%2Fencoding%2B%C3%A9-0123", "url")


def test_short_values_are_ignored(register_secret) -> None:
    register_secret("short")
    register_secret("")
    register_secret(None)
    assert "short" not in registered_secrets()
    assert find_leaks("short", "text") == []


def test_the_failure_names_where_and_masks_the_secret(register_secret) -> None:
    secret = "masked-secret-7e6d5c4b"
    register_secret(secret)
    leak = Leak("the XCom", secret)
    assert str(leak) == "mas...c4b (22 chars) in the XCom"
    with pytest.raises(pytest.fail.Exception) as info:
        assert_no_secret({"value": secret}, "the XCom")
    assert "the XCom" in str(info.value)
    assert secret not in str(info.value)


# -- the guard in a pytest session -----------------------------------------------------------------------

INNER_TESTS = """
import json
import logging
import sys

import pytest

from airflow.triggers.base import TriggerEvent
from airflow_provider_cftunnel.exceptions import CloudflareAPIError
from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook
from airflow_provider_cftunnel.sensors.tunnel import CloudflareTunnelConnectorSensor
from airflow_provider_cftunnel.triggers.tunnel import CloudflareTunnelConnectorTrigger
from tests.leak_guard import register_secret

SECRET = "inner-leaked-secret-4f3e2d1c"
TUNNEL = "c1744f8b-faa1-48a4-9e5c-02ac921467fa"
ACCOUNT = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def _secret():
    register_secret(SECRET)


def test_stdout():
    print("token:", SECRET)


def test_stderr():
    sys.stderr.write(f"token: {SECRET}\\n")


def test_log():
    logging.getLogger("inner").warning("token %s", SECRET)


def test_read_back_output(capsys):
    print(SECRET)
    assert SECRET in capsys.readouterr().out  # consumed: not in the report, still seen


def test_exception_that_fails_the_test():
    raise RuntimeError(f"could not use {SECRET}")


def test_caught_cloudflare_error():
    with pytest.raises(CloudflareAPIError):
        raise CloudflareAPIError(f"Cloudflare API error 10000 (HTTP 403): bad token {SECRET}")


def test_trigger_kwargs():
    CloudflareTunnelConnectorTrigger(tunnel_id=TUNNEL, account_id=ACCOUNT, cloudflare_conn_id=SECRET)


def test_trigger_event():
    TriggerEvent({"status": "error", "message": f"bad {SECRET}"})


def test_xcom():
    sensor = CloudflareTunnelConnectorSensor(task_id="wait", tunnel_id=TUNNEL)
    sensor.execute_complete({}, {"status": "success", "connector": {"id": "x", "note": SECRET}})


def test_test_connection_message():
    class Broken(CloudflareHook):
        def get_connection(self, conn_id):
            raise RuntimeError(f"secrets backend said {SECRET}")

    ok, message = Broken("cloudflare_default").test_connection()
    assert not ok


def test_connection_from_the_environment(monkeypatch):
    password = "env-connection-pass-8a9b"
    monkeypatch.setenv("AIRFLOW_CONN_INNER", json.dumps({"conn_type": "cloudflare", "password": password}))
    print(password)


def test_short_values_are_not_secrets():
    register_secret("tok")
    print("tok")


def test_clean():
    print("nothing secret here")


def test_failing_without_a_leak():
    token = "inner-leaked-secret-4f3e2d1c"  # in the source lines the report quotes: not a leak
    assert token
    raise RuntimeError("an unrelated failure")
"""

LEAKING = {
    "test_stdout": "captured stdout call",
    "test_stderr": "captured stderr call",
    "test_log": "captured",  # stdout with Airflow 3 (its logging writes there), the log section elsewhere
    "test_read_back_output": "readouterr",
    "test_exception_that_fails_the_test": "failure report",
    "test_caught_cloudflare_error": "CloudflareAPIError",
    "test_trigger_kwargs": "trigger kwargs",
    "test_trigger_event": "trigger event",
    "test_xcom": "execute_complete result (XCom)",
    "test_test_connection_message": "test_connection's result",
    "test_connection_from_the_environment": "captured stdout call",
}
CLEAN_PASS = {"test_short_values_are_not_secrets", "test_clean"}
CLEAN_FAIL = {"test_failing_without_a_leak"}


def test_the_guard_fails_every_leaking_test(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.leak_guard"]\n')
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--junitxml=report.xml", "test_inner.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (tmp_path / "report.xml").exists(), done.stderr[-2000:]
    results: dict[str, str | None] = {}
    for case in ET.parse(tmp_path / "report.xml").getroot().iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        results[case.attrib["name"]] = None if problem is None else (problem.get("message", "") + (problem.text or ""))
    assert set(results) == set(LEAKING) | CLEAN_PASS | CLEAN_FAIL
    for name, where in LEAKING.items():
        report = results[name]
        assert report is not None, f"{name} leaked and passed"
        assert "SECRET LEAK GUARD" in report, name
        assert where in report, (name, report[-500:])
        guard_part = report[report.rindex("SECRET LEAK GUARD") :]
        assert "inner-leaked-secret-4f3e2d1c" not in guard_part  # the guard masks what it found
    for name in CLEAN_PASS:
        assert results[name] is None, results[name]
    for name in CLEAN_FAIL:
        assert results[name] is not None
        assert "SECRET LEAK GUARD" not in results[name]


# -- the provider's channels, with every credential of the simulator --------------------------------------

CREDENTIALS = {
    "user token": ("password", DEFAULT_API_TOKEN),
    "account token": ("password", DEFAULT_ACCOUNT_TOKEN),
    "global key": ("global_key", DEFAULT_GLOBAL_KEY),
    "disabled token": ("password", DISABLED_API_TOKEN),
    "expired token": ("password", EXPIRED_API_TOKEN),
    "token without tunnel read": ("password", NO_PERMISSION_API_TOKEN),
    "token of another account": ("password", OTHER_ACCOUNT_API_TOKEN),
    "global key sent as a token": ("password", DEFAULT_GLOBAL_KEY),
    "unknown token": ("password", "unknown-token-3c2b1a09"),
}
WORKING = {"user token", "account token", "global key"}


@dataclass
class CredentialSim:
    """A simulator with connection ``cloudflare_default`` set to one of its credentials."""

    sim: Any
    credential: str

    @property
    def works(self) -> bool:
        return self.credential in WORKING


@pytest.fixture(params=list(CREDENTIALS))
def credential_sim(request, ready_sim, set_connection) -> CredentialSim:
    kind, secret = CREDENTIALS[request.param]
    fields: dict[str, Any] = {"password": secret, "host": ready_sim.base_url}
    if kind == "global_key":
        fields["login"] = ready_sim.global_key_email
    set_connection(extra={"account_id": ready_sim.account_id}, **fields)
    return CredentialSim(ready_sim, request.param)


def test_test_connection_message_holds_no_secret(credential_sim) -> None:
    ok, message = fast_hook(max_retries=0).test_connection()
    assert_no_secret(message, "test_connection's message")
    assert ok is credential_sim.works, message
    assert "{" not in message


def test_operator_xcom_and_errors_hold_no_secret(credential_sim) -> None:
    sim = credential_sim.sim
    operator = CloudflareTunnelConnectorOperator(
        task_id="fetch", tunnel_id=sim.tunnel_id, connector_id=sim.connector_id
    )
    operator.hook = fast_hook(max_retries=0)
    ti = RecordingTaskInstance()
    try:
        result = operator.execute({"ti": ti})  # type: ignore[arg-type]
    except Exception as error:
        outcome: Any = error
    else:
        outcome = result
    assert_no_secret(outcome, "the operator's result or error")
    assert_no_secret(ti.pushed, "the operator's XCom pushes")
    assert isinstance(outcome, dict) is credential_sim.works


async def test_trigger_kwargs_and_events_hold_no_secret(credential_sim) -> None:
    sim = credential_sim.sim
    trigger = CloudflareTunnelConnectorTrigger(tunnel_id=sim.tunnel_id, account_id=sim.account_id, poll_interval=0.2)
    assert_no_secret(trigger.serialize(), "the trigger's kwargs")
    assert_no_secret(json.dumps(trigger.serialize()[1]), "the trigger's kwargs as JSON")
    run = trigger.run()
    try:
        event = await asyncio.wait_for(run.__anext__(), 20)
    finally:
        await run.aclose()
    assert_no_secret(event, "the trigger's event")
    assert event.payload["status"] == ("success" if credential_sim.works else "error")


def test_sensor_logs_hold_no_secret(credential_sim, capsys) -> None:
    from airflow_provider_cftunnel.sensors.tunnel import CloudflareTunnelConnectorSensor

    sensor = CloudflareTunnelConnectorSensor(task_id="wait", tunnel_id=credential_sim.sim.tunnel_id)
    sensor.hook = fast_hook(max_retries=0)
    try:
        outcome: Any = sensor.poke({})  # type: ignore[arg-type]
    except Exception as error:
        outcome = error
    assert_no_secret(outcome, "the sensor's poke")
    assert_no_secret(capsys.readouterr(), "the sensor's logs")
