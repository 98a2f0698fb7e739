"""``test_connection`` against hosts that never answer: it must answer a person within about 10 s.

A person waits for it at a terminal (``airflow connections test``) or behind the REST API, so it uses short
timeouts and at most one retry, whatever the hook's settings for tasks. The connection is tested the way Airflow
tests it (``Connection.test_connection()``, which builds the hook from the connection type), on loopback: a port
nothing listens on, and a listener that accepts connections and never answers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from airflow_provider_cftunnel.hooks.cloudflare import (
    TEST_CONNECTION_BACKOFF_FACTOR,
    TEST_CONNECTION_MAX_RETRIES,
    TEST_CONNECTION_TIMEOUT,
    CloudflareHook,
)

ACCOUNT = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
TOKEN = "conn-test-secret-token-4b7d"
#: The longest a test may take: every attempt's timeouts plus the longest backoff (factor + jitter, doubling).
WORST_CASE = (TEST_CONNECTION_MAX_RETRIES + 1) * sum(TEST_CONNECTION_TIMEOUT) + sum(
    2 * TEST_CONNECTION_BACKOFF_FACTOR * 2**attempt for attempt in range(TEST_CONNECTION_MAX_RETRIES)
)
#: What "about 10 s" allows on a loaded machine.
BOUND = 12.0


class SilentListener:
    """Accepts TCP connections on loopback and never answers; counts them (one per attempt)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(connection)  # held open, never read from nor written to

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for connection in self.accepted:
            connection.close()
        self.server.close()


@pytest.fixture
def silent_listener() -> Iterator[SilentListener]:
    listener = SilentListener()
    try:
        yield listener
    finally:
        listener.stop()


def refused_port() -> int:
    """Return a loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_as_airflow_runs_it(set_connection, monkeypatch):
    """Airflow's own path (CLI and REST API): the connection builds a default hook and calls test_connection."""
    from airflow.models.connection import Connection

    port = refused_port()
    set_connection(password=TOKEN, host=f"http://127.0.0.1:{port}/client/v4", extra={"account_id": ACCOUNT})
    built: list[CloudflareHook] = []
    original = CloudflareHook._bounded_for_test

    def spy(self):
        built.append(self)
        return original(self)

    monkeypatch.setattr(CloudflareHook, "_bounded_for_test", spy)
    connection = Connection.get_connection_from_secrets("cloudflare_default")
    ok, message = connection.test_connection()
    assert not ok
    assert message.startswith(f"Could not reach the Cloudflare API at http://127.0.0.1:{port}"), message
    (hook,) = built  # the default hook: 5 retries and (10, 30) s timeouts for tasks, bounded for the test
    assert (hook.max_retries, hook.timeout) == (5, (10.0, 30.0))


def test_a_refused_port_answers_at_once_after_one_retry(set_connection):
    port = refused_port()
    set_connection(password=TOKEN, host=f"http://127.0.0.1:{port}/client/v4", extra={"account_id": ACCOUNT})
    hook = CloudflareHook()
    started = time.monotonic()
    ok, message = hook.test_connection()
    elapsed = time.monotonic() - started
    assert not ok
    assert elapsed < BOUND, f"{elapsed:.1f} s: {message}"
    assert message == (
        f"Could not reach the Cloudflare API at http://127.0.0.1:{port} (the connection was refused or the host is "
        "unknown) after 1 retry. Check the network, any proxy, and the connection's API base URL (host field)."
    )
    assert TOKEN not in message
    assert (hook.max_retries, hook.timeout) == (5, (10.0, 30.0))  # tasks keep the hook's own settings


def test_a_silent_listener_answers_within_the_bound(set_connection, silent_listener):
    assert WORST_CASE <= 10.5  # the constants keep the promise of "about 10 s"
    set_connection(
        password=TOKEN, host=f"http://127.0.0.1:{silent_listener.port}/client/v4", extra={"account_id": ACCOUNT}
    )
    started = time.monotonic()
    ok, message = CloudflareHook().test_connection()
    elapsed = time.monotonic() - started
    assert not ok
    assert elapsed < BOUND, f"{elapsed:.1f} s: {message}"
    assert len(silent_listener.accepted) == 1 + TEST_CONNECTION_MAX_RETRIES  # one retry, not five
    assert message == (
        f"Could not reach the Cloudflare API at http://127.0.0.1:{silent_listener.port} (no answer within the read "
        "timeout) after 1 retry. Check the network, any proxy, and the connection's API base URL (host field)."
    )
    assert TOKEN not in message


def test_a_hook_that_asks_for_less_keeps_it(set_connection, silent_listener):
    set_connection(
        password=TOKEN, host=f"http://127.0.0.1:{silent_listener.port}/client/v4", extra={"account_id": ACCOUNT}
    )
    started = time.monotonic()
    ok, message = CloudflareHook(max_retries=0, timeout=1.0).test_connection()
    elapsed = time.monotonic() - started
    assert not ok
    assert len(silent_listener.accepted) == 1
    assert elapsed < 1.0 + 2.0, f"{elapsed:.1f} s"  # its own 1 s read timeout, not the test's 3 s
    assert "no answer within the read timeout" in message
    assert "retry" not in message
