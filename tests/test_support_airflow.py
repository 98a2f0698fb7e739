"""The one Airflow launcher (tests/support/airflow.py): environment, ports, process groups and the stop by pid.

Real processes, no Airflow: each component runs a small bash script in place of ``airflow`` that records its
arguments and environment and then sleeps in a child process, obeying SIGTERM, ignoring it, exiting at once or
leaving a descendant in a session of its own.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import psutil
import pytest

from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI
from tests.support.airflow import (
    LOCAL_COMPONENTS,
    AirflowLauncher,
    LauncherError,
    LocalAirflow,
    airflow_env,
    celery_worker,
    triggerer,
)
from tests.support.processes import ProcessGroup, free_port, stop_popen_group

#: Stands in for ``airflow``: prints its pid, arguments and environment, then behaves as ``FAKE_MODE`` says.
FAKE_AIRFLOW = r"""#!/bin/bash
echo "pid $$ args $*"
env | grep -E '^(AIRFLOW|PATH=|NO_PROXY=)' | sed 's/^/env /'
case "${FAKE_MODE:-orderly}" in
  exit)
    echo "boom"; exit 3 ;;
  stubborn)
    trap '' TERM
    sleep 300 &
    echo "child $!" ;;
  escape)
    setsid sleep 300 &
    echo "child $!"
    sleep 300 &
    echo "child $!" ;;
  *)
    sleep 300 &
    child=$!
    echo "child $child"
    trap 'kill -TERM $child; wait $child; exit 0' TERM ;;
esac
while true; do wait; sleep 0.1; done
"""


@pytest.fixture
def fake_airflow(tmp_path: Path) -> str:
    path = tmp_path / "fake-airflow"
    path.write_text(FAKE_AIRFLOW, encoding="utf-8")
    path.chmod(0o755)
    return str(path)


def _log(launcher: AirflowLauncher, name: str, needle: str, timeout: float = 10.0) -> list[str]:
    """Lines of a component's log starting with ``needle``, once there is at least one."""
    deadline = time.monotonic() + timeout
    while True:
        path = launcher.log_dir / f"{name}.log"
        lines = path.read_text().splitlines() if path.exists() else []
        found = [line.removeprefix(needle) for line in lines if line.startswith(needle)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _children(launcher: AirflowLauncher, name: str) -> list[int]:
    return [int(pid) for pid in _log(launcher, name, "child ")]


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _launcher(tmp_path: Path, fake: str, **modes: str) -> AirflowLauncher:
    launcher = AirflowLauncher(tmp_path / "logs")
    for name, mode in modes.items():
        cli = AirflowCLI(tmp_path / "homes" / name, tmp_path / "dags", {"FAKE_MODE": mode}, airflow=fake)
        launcher.add(name, cli, ["component", name])
    return launcher


# ---- environment and ports ------------------------------------------------------------------------------------


def test_the_environment_keeps_everything_on_loopback_and_takes_overrides() -> None:
    port = free_port()
    env = airflow_env(port, AIRFLOW__CORE__EXECUTOR="CeleryExecutor", EXTRA="1")
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__API__PORT"] == str(port)
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{port}/execution/"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["EXTRA"] == "1"
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    log_ports = {
        int(env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]),
        int(env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"]),
    }
    assert len(log_ports) == 2
    assert port not in log_ports
    for free in (port, *log_ports):  # each is free on loopback
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", free))


def test_builders_keep_log_servers_off() -> None:
    assert triggerer() == ["triggerer", "--skip-serve-logs"]
    assert triggerer("cloudflare")[-2:] == ["--queues", "cloudflare"]
    worker = celery_worker("w@x", ("default", "cloudflare"), 4)
    assert worker[:2] == ["celery", "worker"]
    assert worker[worker.index("--queues") + 1] == "default,cloudflare"
    assert "--skip-serve-logs" in worker


def test_local_airflow_starts_each_component_in_its_own_group_on_loopback(tmp_path: Path, fake_airflow: str) -> None:
    local = LocalAirflow(tmp_path / "home", tmp_path / "dags", {"AIRFLOW__CORE__PARALLELISM": "3"})
    local.cli.airflow = fake_airflow
    try:
        local.start()
        args = {name: _log(local, name, f"pid {local.groups[name].pid} args ") for name in LOCAL_COMPONENTS}
        env = dict(line.split("=", 1) for line in _log(local, "scheduler", "env "))
        pgids = {os.getpgid(group.pid or 0) for group in local.groups.values()}
    finally:
        survivors = local.stop(grace=5.0, term_grace=2.0)
    assert args == {
        "api-server": [f"api-server --host 127.0.0.1 --port {local.api_port}"],
        "scheduler": ["scheduler --skip-serve-logs"],
        "dag-processor": ["dag-processor"],
        "triggerer": ["triggerer --skip-serve-logs"],
    }
    assert pgids == {group.pid for group in local.started}, "each component leads a process group of its own"
    assert env["AIRFLOW_HOME"] == str((tmp_path / "home").resolve())
    assert env["AIRFLOW__API__PORT"] == str(local.api_port)
    assert env["AIRFLOW__CORE__PARALLELISM"] == "3", "the caller's environment reaches the components"
    assert "cftunnel_local_db.CONNECT_ARGS" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"]
    assert not survivors
    assert local.stop_stage == "orderly"


def test_an_unknown_component_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown component 'webserver': use api-server"):
        LocalAirflow(tmp_path / "home", tmp_path / "dags", components=("webserver",))


# ---- watching, killing, stopping ---------------------------------------------------------------------------


def test_a_component_that_exits_fails_the_check_with_its_log(tmp_path: Path, fake_airflow: str) -> None:
    launcher = _launcher(tmp_path, fake_airflow, good="orderly", bad="exit")
    try:
        launcher.start()
        deadline = time.monotonic() + 10
        while launcher.groups["bad"].running() and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(LauncherError, match=r"components exited: bad \(exit 3\)") as failure:
            launcher.check()
        assert "boom" in str(failure.value), "the message carries the component's log"
    finally:
        assert not launcher.stop(grace=5.0, term_grace=2.0)


def test_a_killed_component_is_no_failure_and_starts_again(tmp_path: Path, fake_airflow: str) -> None:
    launcher = _launcher(tmp_path, fake_airflow, triggerer="orderly")
    try:
        launcher.start()
        first = _children(launcher, "triggerer")
        killed_at = launcher.kill("triggerer")
        assert abs(killed_at - time.time()) < 15
        assert not any(_running(pid) for pid in [launcher.groups["triggerer"].pid or 0, *first])
        launcher.check()  # killed on purpose: not a failure
        again = launcher.start_one("triggerer", "triggerer-2.log")
        assert again.running()
        assert (launcher.log_dir / "triggerer-2.log").exists()
        assert len(launcher.started) == 2
    finally:
        assert not launcher.stop(grace=5.0, term_grace=2.0)
    assert launcher.stop_stage == "orderly"


def test_stop_escalates_to_sigkill_for_a_group_that_ignores_sigterm(tmp_path: Path, fake_airflow: str) -> None:
    launcher = _launcher(tmp_path, fake_airflow, polite="orderly", stubborn="stubborn")
    launcher.start()
    children = _children(launcher, "polite") + _children(launcher, "stubborn")
    assert len(children) == 2
    began = time.monotonic()
    survivors = launcher.stop(grace=1.0, term_grace=1.0)
    assert not survivors
    assert launcher.groups["polite"].stop_stage == "orderly"
    assert launcher.groups["stubborn"].stop_stage == "SIGKILL"
    assert launcher.stop_stage == "SIGKILL"
    assert any("sleep" in entry for entry in launcher.needed_sigkill), launcher.needed_sigkill
    assert not any(_running(pid) for pid in children)
    assert time.monotonic() - began < 15
    assert launcher.stop() == [], "a second stop does nothing"


def test_stop_reaches_a_descendant_that_left_the_process_group(tmp_path: Path, fake_airflow: str) -> None:
    launcher = _launcher(tmp_path, fake_airflow, runner="escape")
    launcher.start()
    children = _children(launcher, "runner")
    deadline = time.monotonic() + 10
    while len(children) < 2 and time.monotonic() < deadline:
        children = _children(launcher, "runner")
    escaped = children[0]
    deadline = time.monotonic() + 10
    while os.getpgid(escaped) != escaped and time.monotonic() < deadline:  # setsid done
        time.sleep(0.05)
    launcher.check()  # tracks the descendants
    assert not launcher.stop(grace=1.0, term_grace=1.0)
    assert not _running(escaped), "the descendant in a session of its own was stopped too"


def test_stop_popen_group_terms_then_kills(tmp_path: Path) -> None:
    import subprocess

    polite = subprocess.Popen(["sleep", "300"], start_new_session=True)
    stubborn = subprocess.Popen(["bash", "-c", "trap '' TERM; sleep 300"], start_new_session=True)
    time.sleep(0.3)
    assert stop_popen_group(polite, grace=5.0) == "SIGTERM"
    assert polite.returncode == -signal.SIGTERM
    assert stop_popen_group(stubborn, grace=0.5) == "SIGKILL"
    assert stubborn.returncode == -signal.SIGKILL
    assert stop_popen_group(stubborn) == "exited"


def test_a_process_group_tail_and_duplicate_names(tmp_path: Path, fake_airflow: str) -> None:
    group = ProcessGroup("x", ["bash", "-c", "echo hello; exit 0"], env={}, cwd=tmp_path, log_path=tmp_path / "x.log")
    group.start()
    assert group.wait_gone(10.0)
    assert group.tail().strip() == "hello"
    launcher = _launcher(tmp_path, fake_airflow, one="orderly")
    with pytest.raises(ValueError, match="added already"):
        launcher.add("one", launcher.components["one"].cli, ["x"])
