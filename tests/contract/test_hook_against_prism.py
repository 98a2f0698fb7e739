"""Contract run: the hook against Stoplight Prism serving Cloudflare's published schema (static mode).

Prism answers with the schema's examples and checks each request against the schema: path formats (account
id at most 32 characters, tunnel and connector ids UUIDs) and a credential header (Bearer token, or
X-Auth-Email with X-Auth-Key). So a call that succeeds here has the shape Cloudflare documents.

Prism comes from npm (``npm ci --prefix .ci``, which ``.ci/run`` does). Without it these tests skip with a
reason; in CI (``CI=true``) a missing Prism is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook

SCHEMA = Path(__file__).with_name("cloudflare-tunnel.openapi.json")
REPO = Path(__file__).resolve().parents[2]
ACCOUNT_ID = "699d98642c564d2e855e9661899b7252"
TUNNEL_ID = "f70ff985-a4ef-4643-bbbc-4a0ed4fc8415"
CONNECTOR_ID = "1bedc50d-42b3-473c-b108-ff3d10c0d925"

pytestmark = pytest.mark.timeout(120)


def prism_binary() -> str | None:
    for candidate in (os.environ.get("PRISM_BIN"), str(REPO / ".ci" / "node_modules" / ".bin" / "prism")):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("prism")


@pytest.fixture(scope="module")
def prism() -> str:
    binary = prism_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("Stoplight Prism is required in CI: .ci/run installs it with `npm ci --prefix .ci`")
        pytest.skip("Stoplight Prism is not installed: run `npm ci --prefix .ci` to run the contract tests")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "mock", "-h", "127.0.0.1", "-p", str(port), str(SCHEMA)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base_url}/user/tokens/verify", timeout=1)
            except urllib.error.HTTPError:
                break  # Prism is up (and, without credentials, says 401)
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Prism did not start: {process.stdout.read().decode()[-2000:]}") from None
                time.sleep(0.2)
        yield base_url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def hook(prism, set_connection) -> CloudflareHook:
    set_connection(password="prism-contract-token", host=prism, extra={"account_id": ACCOUNT_ID})
    return CloudflareHook(max_retries=0)


def test_get_tunnel_connector(hook):
    connector = hook.get_tunnel_connector(TUNNEL_ID, CONNECTOR_ID)
    assert connector.id
    assert connector.conns
    assert all(isinstance(c.is_pending_reconnect, bool) for c in connector.conns)
    assert connector.to_dict()["conns"][0].keys() >= {"colo_name", "is_pending_reconnect"}


def test_list_tunnel_connectors(hook):
    connectors = hook.list_tunnel_connectors(TUNNEL_ID)
    assert connectors
    assert all(c.id for c in connectors)


def test_get_tunnel(hook):
    tunnel = hook.get_tunnel(TUNNEL_ID)
    assert tunnel.id
    assert tunnel.status in {"inactive", "degraded", "healthy", "down"}


def test_list_tunnels_stops_on_a_short_page(hook):
    # the schema's example says total_count 2000 with 1 item per page: the hook must not ask 2000 times
    tunnels = hook.list_tunnels(is_deleted=False, name="web")
    assert len(tunnels) == 1


def test_test_connection_with_a_token(hook):
    ok, message = hook.test_connection()
    assert ok, message
    assert "prism-contract-token" not in message


def test_global_api_key_headers_satisfy_the_schema(prism, set_connection):
    set_connection(
        login="ops@example.com", password="global-key-1234567890", host=prism, extra={"account_id": ACCOUNT_ID}
    )
    connector = CloudflareHook(max_retries=0).get_tunnel_connector(TUNNEL_ID, CONNECTOR_ID)
    assert connector.id


def test_prism_enforces_credentials(prism):
    """The contract run would catch a hook that sent no credentials: Prism refuses such a request."""
    request = urllib.request.Request(f"{prism}/accounts/{ACCOUNT_ID}/cfd_tunnel/{TUNNEL_ID}/connections")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 401
    body = json.loads(info.value.read())
    assert body.get("success") is False or "errors" in body or "title" in body
