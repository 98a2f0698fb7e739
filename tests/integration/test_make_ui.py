"""``make ui`` for real: ``scripts/ui.py`` starts the simulator and Airflow's components on loopback, prints the URL
and the login; the UI and the REST API answer with that login and list the example DAGs; Ctrl-C (SIGINT) stops
every process it started.

The script runs in a directory of the test's own (``--home``) and on a free port (``--port 0``). Before the
SIGINT, the test records every descendant of the script (the simulator, the four components, their workers and
task runners); afterwards none of them may be running.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
DAG_IDS = {"example_cftunnel_deploy_gate", "example_cftunnel_health_check", "example_cftunnel_on_health_change"}


class Script:
    """``scripts/ui.py`` in a subprocess, its output collected by a thread."""

    def __init__(self, home: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "ui.py"), "--port", "0", "--home", str(home)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if match := re.search(pattern, self.output):
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"no {pattern!r} in the output of scripts/ui.py:\n{self.output[-4000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def descendants(pid: int) -> list[tuple[int, float, str]]:
    import psutil

    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            found.append((child.pid, child.create_time(), " ".join(child.cmdline())[:120]))
        except psutil.Error:
            continue
    return found


def still_running(processes: list[tuple[int, float, str]]) -> list[str]:
    import psutil

    alive = []
    for pid, created, command in processes:
        try:
            process = psutil.Process(pid)
            if process.create_time() == created and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid}: {command}")
        except psutil.NoSuchProcess:
            continue
    return alive


def test_make_ui_serves_the_examples_and_ctrl_c_stops_everything(tmp_path):
    import httpx

    script = Script(tmp_path / "ui")
    processes: list[tuple[int, float, str]] = []
    try:
        url = script.wait_for(r"Airflow UI: +(http://127\.0\.0\.1:\d+)", timeout=600).group(1)
        user, password = script.wait_for(r"Login: +(\S+) / (\S+)", timeout=10).groups()
        with httpx.Client(base_url=url, timeout=30.0, trust_env=False) as client:
            page = client.get("/")
            assert page.status_code == 200
            assert "<title>Airflow</title>" in page.text

            refused = client.post("/auth/token", json={"username": user, "password": password + "x"})
            assert refused.status_code == 401
            assert client.get("/api/v2/dags").status_code == 401  # a login is needed
            token = client.post("/auth/token", json={"username": user, "password": password})
            assert token.status_code == 201, token.text
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

            dags = client.get("/api/v2/dags").json()["dags"]
            assert {dag["dag_id"] for dag in dags} == DAG_IDS
            assert client.get("/api/v2/importErrors").json()["import_errors"] == []

            # docs/ui.md's recipe: test the connection through the REST API, as stored (password masked)
            stored = client.get("/api/v2/connections/cloudflare_default").json()
            assert stored["password"] == "***"
            tested = client.post("/api/v2/connections/test", json=stored).json()
            assert tested["status"] is True, tested
            assert "can read tunnels" in tested["message"]

        processes = descendants(script.process.pid)
        commands = " ".join(command for _, _, command in processes)
        for part in ("airflow_provider_cftunnel.testing", "api-server", "scheduler", "dag-processor", "triggerer"):
            assert part in commands or part.replace("-", "_") in commands, (part, commands)

        script.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert script.process.wait(timeout=120) == 0, script.output[-4000:]
        script._reader.join(timeout=10)
        for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
            assert re.search(rf"^stopped {name} \(pid \d+", script.output, re.M), script.output[-3000:]
        assert "stopped the Cloudflare simulator" in script.output
        assert "still running" not in script.output
        assert still_running(processes) == []
    finally:
        script.kill()
        leftovers = still_running(processes)
        for entry in leftovers:  # never leave anything behind, even when the test failed
            os.kill(int(entry.split(":")[0]), signal.SIGKILL)
