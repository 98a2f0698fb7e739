"""The command line: --print-scenario, serving until SIGTERM/SIGINT, --ready-file, and errors."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from airflow_provider_cftunnel.testing import DEFAULT_API_TOKEN, DEFAULT_CONNECTOR_ID, default_scenario
from airflow_provider_cftunnel.testing.__main__ import main

LISTENING = "Cloudflare simulator listening on "


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_cftunnel.testing", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError("the simulator printed nothing in time")
    return proc.stdout.readline()


@pytest.fixture
def cli_process():  # type: ignore[no-untyped-def]
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        proc = start_cli(*args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_print_scenario_subprocess() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_cftunnel.testing", "--print-scenario"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    scenario = json.loads(done.stdout)
    assert scenario == default_scenario()
    assert DEFAULT_API_TOKEN in [t["token"] for t in scenario["api_tokens"]]
    connectors = scenario["accounts"][0]["tunnels"][0]["connectors"]
    assert connectors[0]["id"] == DEFAULT_CONNECTOR_ID


def test_print_scenario_of_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"up_after": 0, "replicas": 2, "rate_limit": {"requests": 5, "period": 10}}))
    assert main(["--scenario", str(path), "--print-scenario"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(printed["accounts"][0]["tunnels"][0]["connectors"]) == 2
    assert printed["rate_limit"] == {"requests": 5, "period": 10.0}


def test_rate_limit_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def printed(*args: str) -> object:  # in a process: the scenario printed holds its fake tokens
        command = [sys.executable, "-m", "airflow_provider_cftunnel.testing", *args, "--print-scenario"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
        return json.loads(done.stdout)["rate_limit"]

    assert printed("--rate-limit", "30/10", "--rate-limit-window", "fixed") == {
        "requests": 30,
        "period": 10.0,
        "window": "fixed",
    }
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"rate_limit": {"requests": 5, "period": 10, "dashboard_rate": 0.1}}))
    assert printed("--scenario", str(path), "--rate-limit-reset", "full") == {
        "requests": 5,
        "period": 10.0,
        "dashboard_rate": 0.1,
        "reset": "full",
    }
    with pytest.raises(SystemExit):
        main(["--rate-limit-window", "fixed", "--print-scenario"])  # no limit to shape
    assert "need --rate-limit" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--rate-limit", "many", "--print-scenario"])
    assert "REQUESTS/PERIOD" in capsys.readouterr().err


def test_invalid_scenario_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"replicas": 99}))
    assert main(["--scenario", str(path), "--print-scenario"]) == 2
    assert "replicas" in capsys.readouterr().err
    assert main(["--scenario", str(tmp_path / "missing.json")]) == 2


def test_port_in_use_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["--port", str(busy.getsockname()[1])]) == 1
    assert "cannot listen" in capsys.readouterr().err


def test_serve_and_sigterm(cli_process, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ready = tmp_path / "ready.json"
    scenario = tmp_path / "s.json"
    scenario.write_text(json.dumps({"up_after": 0}))
    proc = cli_process("--scenario", str(scenario), "--ready-file", str(ready))
    line = read_line(proc)
    assert line.startswith(LISTENING), line
    base_url = line[len(LISTENING) :].strip()
    assert base_url.startswith("http://127.0.0.1:")
    assert base_url.endswith("/client/v4")
    info = json.loads(ready.read_text())
    assert info["base_url"] == base_url
    assert info["pid"] == proc.pid
    assert info["api_token"] == DEFAULT_API_TOKEN
    assert info["connector_id"] == DEFAULT_CONNECTOR_ID
    path = f"/accounts/{info['account_id']}/cfd_tunnel/{info['tunnel_id']}/connectors/{info['connector_id']}"
    response = requests.get(base_url + path, headers={"Authorization": f"Bearer {info['api_token']}"}, timeout=5)
    assert response.status_code == 200
    assert len(response.json()["result"]["conns"]) == 4
    os.kill(info["pid"], signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    out, err = proc.communicate()
    assert out == "", "one line on stdout, nothing more"
    assert "Traceback" not in err
    with pytest.raises(requests.ConnectionError):
        requests.get(base_url + "/user", timeout=2)


def test_serve_and_sigint(cli_process) -> None:  # type: ignore[no-untyped-def]
    proc = cli_process()
    line = read_line(proc)
    base_url = line[len(LISTENING) :].strip()
    health = requests.get(base_url.replace("/client/v4", "/__simulator__/health"), timeout=5).json()
    assert health["pid"] == proc.pid
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
