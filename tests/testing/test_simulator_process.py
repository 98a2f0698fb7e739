"""SimulatorProcess: the simulator's command line in a process group of its own, started and stopped for sure."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from airflow_provider_cftunnel.testing import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_API_TOKEN,
    DEFAULT_CONNECTOR_ID,
    DEFAULT_TUNNEL_ID,
    SimulatorProcess,
    SimulatorProcessError,
)


def group_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_serves_with_its_token_and_stops_its_whole_group(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "simulator.log"
    with SimulatorProcess({"up_after": 0}, args=["--fleet", "web-:3"], log_path=log) as sim:
        assert sim.running
        assert sim.pid == sim.process.pid == sim.info["pid"] != os.getpid()  # type: ignore[union-attr]
        assert os.getpgid(sim.pid) == sim.pid, "a process group of its own"
        assert (sim.account_id, sim.tunnel_id, sim.connector_id) == (
            DEFAULT_ACCOUNT_ID,
            DEFAULT_TUNNEL_ID,
            DEFAULT_CONNECTOR_ID,
        )
        assert sim.api_token == DEFAULT_API_TOKEN
        assert sim.base_url == f"http://127.0.0.1:{sim.port}/client/v4"
        assert sim.port > 0
        path = f"/accounts/{sim.account_id}/cfd_tunnel/{sim.tunnel_id}/connectors/{sim.connector_id}"
        answer = requests.get(sim.base_url + path, headers={"Authorization": f"Bearer {sim.api_token}"}, timeout=5)
        assert answer.status_code == 200
        assert len(answer.json()["result"]["conns"]) == 4
        assert (
            requests.get(sim.base_url + path, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 403
        )
        assert len(sim.control("GET", "/tunnel-statuses")) == 4, "the extra --fleet argument reached the CLI"
        assert sim.control("GET", "/health")["requests"] == 2
        conn = json.loads(sim.connection_json(extra={"rate_limit_requests": 100}))
        assert conn == {
            "conn_type": "cloudflare",
            "host": sim.base_url,
            "password": DEFAULT_API_TOKEN,
            "extra": {"account_id": DEFAULT_ACCOUNT_ID, "rate_limit_requests": 100},
        }
        assert sim.airflow_env() == {"AIRFLOW_CONN_CLOUDFLARE_DEFAULT": sim.connection_json()}
        pid, base_url = sim.pid, sim.base_url
    assert not sim.running
    assert sim.stop() == 0, "SIGTERM ends it cleanly; stopping twice is harmless"
    assert group_gone(pid)
    with pytest.raises(requests.ConnectionError):
        requests.get(base_url + "/user", timeout=2)
    assert "listening on" in log.read_text(), "the log stays where it was asked to go"


def test_a_refused_control_request_names_the_simulators_error() -> None:
    with SimulatorProcess() as sim, pytest.raises(SimulatorProcessError, match=r"HTTP 400: .*sleeping"):
        sim.control("POST", "/tunnel-status", {"status": "sleeping"})


def test_a_bad_scenario_fails_with_the_exit_status_and_the_log_tail(tmp_path: Path) -> None:
    process = SimulatorProcess({"replicas": 99})
    with pytest.raises(SimulatorProcessError) as failure:
        process.start()
    message = str(failure.value)
    assert "exited with status 2 before it was ready" in message
    assert "replicas" in message, "the log's tail says what is wrong"
    assert "airflow_provider_cftunnel.testing" in message, "the command is named"
    assert not process.running
    assert group_gone(process.pid)
    assert process.log_path is not None
    assert not process.log_path.parent.exists(), "its temporary directory (scenario, ready file, log) is removed"


def test_the_block_stops_the_process_on_an_exception() -> None:
    started: list[SimulatorProcess] = []

    def fail_inside() -> None:
        with SimulatorProcess() as sim:
            started.append(sim)
            raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        fail_inside()
    assert not started[0].running
    assert group_gone(started[0].pid)


FAKE_PYTHON = """\
#!{python}
# Stands in for the interpreter: ignores SIGTERM, and writes the ready file only if asked to.
import json, os, signal, sys, time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("fake simulator started", flush=True)
if {ready}:
    path = sys.argv[sys.argv.index("--ready-file") + 1]
    with open(path + ".tmp", "w") as handle:  # atomically, as the simulator does: whole once it exists
        json.dump(dict.fromkeys({fields}, "x") | {{"port": 1, "pid": os.getpid()}}, handle)
    os.replace(path + ".tmp", path)
while True:
    time.sleep(1)
"""


def fake_python(tmp_path: Path, *, ready: bool) -> str:
    from airflow_provider_cftunnel.testing.process import _READY_FIELDS

    path = tmp_path / "fake-python"
    path.write_text(textwrap.dedent(FAKE_PYTHON.format(python=sys.executable, ready=ready, fields=_READY_FIELDS)))
    path.chmod(0o755)
    return str(path)


def test_a_process_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    process = SimulatorProcess(python=fake_python(tmp_path, ready=True), stop_timeout=0.5).start()
    pid = process.pid
    assert process.stop() == -signal.SIGKILL
    assert group_gone(pid)


def test_a_process_never_ready_is_stopped_after_the_start_timeout(tmp_path: Path) -> None:
    process = SimulatorProcess(python=fake_python(tmp_path, ready=False), start_timeout=1.0, stop_timeout=0.5)
    with pytest.raises(SimulatorProcessError, match=r"was not ready within 1 s") as failure:
        process.start()
    assert "fake simulator started" in str(failure.value)
    assert group_gone(process.pid)
