"""20 deferrable sensors on one tunnel, run for real: scheduler, LocalExecutor, triggerer and API server.

The DAG ``cftunnel_fleet`` (``dags/cftunnel_fleet.py``) has one ``CloudflareTunnelConnectorSensor(deferrable=True)``
per connector of ONE simulated tunnel. The simulator runs in this process; the Airflow components reach it
over loopback. The tunnel's 20 connectors are absent until the test brings them up, ``DEFERRED_WINDOW``
seconds after it saw all 20 sensors deferred at once, so the triggerer really waits; then half of them come
up, and the other half two poll intervals later (the shared poller must keep serving the triggers left).

What it checks:

* the run succeeds, all 20 sensors end ``success`` and each returned its own connector;
* they went through the triggerer: all 20 seen ``deferred`` at once, each with our trigger class assigned to
  a triggerer, each connector's own endpoint asked exactly once (the sensor's first poke in the worker;
  a sensor poking from a worker would ask it every ``poke_interval``), the triggerer's log for the trigger;
* while they all waited, the simulator saw about ONE ``/connections`` request per poll interval for the
  tunnel (one shared poller), not one per sensor;
* every process started is gone afterwards.

By default the four components ``airflow standalone`` runs are started one by one, with the options that
keep them off public interfaces (``standalone`` starts the scheduler's and the triggerer's log servers,
which bind every interface, with no option to bind loopback). ``CFTUNNEL_IT_STANDALONE=1`` runs
``airflow standalone`` itself instead (its log servers then listen on free ports on all interfaces).
The figures are printed at the end of the test (shown even when pytest captures output).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cftunnel.testing import CloudflareSimulator, default_scenario
from tests.support.airflow import LOCAL_COMPONENTS, LocalAirflow
from tests.support.processes import Api, json_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAGS_FOLDER = Path(__file__).parent / "dags"
DAG_ID = "cftunnel_fleet"
TRIGGER_CLASSPATH = "airflow_provider_cftunnel.triggers.tunnel.CloudflareTunnelConnectorTrigger"
FLEET_SIZE = 20
POKE_INTERVAL = 5.0
SENSOR_TIMEOUT = 240
#: How long all sensors wait deferred (with no connector up) before the first half of the connectors comes up.
DEFERRED_WINDOW = 25.0
#: Deadlines, in seconds.
STARTUP_DEADLINE = 150.0
ALL_DEFERRED_DEADLINE = 180.0
FINISH_DEADLINE = 120.0
ORDERLY_STOP_GRACE = 20.0
STOP_GRACE = 15.0
CONNECTIONS_PATH = re.compile(r"/cfd_tunnel/(?P<tunnel>[0-9a-f-]{36})/connections$")
CONNECTOR_PATH = re.compile(r"/cfd_tunnel/(?P<tunnel>[0-9a-f-]{36})/connectors/(?P<connector>[0-9a-f-]{36})$")
UNFINISHED = {None, "scheduled", "queued", "running", "deferred", "up_for_reschedule", "restarting"}


@pytest.fixture
def simulator() -> Iterator[CloudflareSimulator]:
    """One tunnel with 20 connectors that stay absent until the test brings them up."""
    scenario = default_scenario(up_after=3600.0, replicas=FLEET_SIZE)
    with CloudflareSimulator(scenario) as sim:
        yield sim


@pytest.fixture
def airflow_stack(tmp_path: Path, simulator: CloudflareSimulator) -> Iterator[LocalAirflow]:
    """A fresh AIRFLOW_HOME (SQLite, LocalExecutor) and its components, stopped (all of them) afterwards."""
    connectors = [c["id"] for c in simulator.scenario["accounts"][0]["tunnels"][0]["connectors"]]
    assert len(connectors) == FLEET_SIZE
    env = {
        "AIRFLOW_CONN_CLOUDFLARE_DEFAULT": simulator.connection_json(),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "CFTUNNEL_FLEET_CONNECTORS": json.dumps(connectors),
        "CFTUNNEL_FLEET_TUNNEL_ID": str(simulator.tunnel_id),
        "CFTUNNEL_FLEET_POKE_INTERVAL": str(POKE_INTERVAL),
        "CFTUNNEL_FLEET_TIMEOUT": str(SENSOR_TIMEOUT),
    }
    standalone = os.environ.get("CFTUNNEL_IT_STANDALONE") == "1"
    stack = LocalAirflow(
        tmp_path / "airflow",
        DAGS_FOLDER,
        env,
        log_dir=tmp_path / "component-logs",
        components=("standalone",) if standalone else LOCAL_COMPONENTS,
    )
    try:
        stack.migrate()
        stack.start()
        yield stack
    finally:
        survivors = stack.stop(ORDERLY_STOP_GRACE, STOP_GRACE)
        assert not survivors, f"processes left after stopping the Airflow components: {survivors}"


def _wait_until_up(stack: LocalAirflow, api: Api) -> None:
    """Wait until the API answers, every component heartbeats and the DAG is parsed with its 20 tasks."""
    deadline = time.monotonic() + STARTUP_DEADLINE
    last = "nothing yet"
    while time.monotonic() < deadline:
        stack.check()
        errors: list[Any] = []
        try:
            health = api.get("/api/v2/monitor/health")
            states = {name: (health.get(name) or {}).get("status") for name in ("scheduler", "triggerer")}
            states["dag_processor"] = (health.get("dag_processor") or {}).get("status")
            last = f"health {states}"
            if all(state == "healthy" for state in states.values()):
                errors = api.get("/api/v2/importErrors").get("import_errors", [])
                tasks = api.get(f"/api/v2/dags/{DAG_ID}/tasks").get("tasks", []) if not errors else []
                last = f"healthy; DAG has {len(tasks)} task(s)"
                if len(tasks) == FLEET_SIZE:
                    return
        except (*api.errors, ValueError) as error:  # not up yet: connection refused, 404 for the DAG...
            last = f"{type(error).__name__}: {error}"
        assert not errors, f"the DAG folder has import errors: {errors}"
        time.sleep(1.0)
    pytest.fail(f"Airflow was not ready within {STARTUP_DEADLINE:.0f} s ({last}):\n{stack.logs()}")


def _cli(stack: LocalAirflow, *args: str) -> str:
    result = stack.cli.run(*args, timeout=120)
    assert result.returncode == 0, f"airflow {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}"
    return result.stdout


@dataclass
class Observation:
    """What polling the run saw."""

    first_deferred: dict[str, float] = field(default_factory=dict)
    all_deferred_at: float | None = None
    first_half_up_at: float | None = None
    second_half_up_at: float | None = None
    second_half_before_up: dict[str, str] = field(default_factory=dict)
    triggers: dict[str, dict[str, Any]] = field(default_factory=dict)
    final_states: dict[str, str] = field(default_factory=dict)
    run_state: str | None = None
    polls: int = 0
    api_errors: list[str] = field(default_factory=list)
    listening: list[str] = field(default_factory=list)


def _drive_run(
    stack: LocalAirflow, api: Api, sim: CloudflareSimulator, run_id: str, connectors: dict[str, str]
) -> Observation:
    """Poll the run; bring connectors up once all sensors have waited deferred; return what was seen."""
    tasks = sorted(connectors)
    first_half, second_half = tasks[: FLEET_SIZE // 2], tasks[FLEET_SIZE // 2 :]
    seen = Observation()
    deadline = time.monotonic() + ALL_DEFERRED_DEADLINE
    while True:
        stack.check()
        now = time.time()
        try:
            run = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
            rows = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", limit=100)["task_instances"]
        except api.errors as error:  # the API server is busy serving 20 task runners on 2 cores: try again
            seen.api_errors.append(f"{type(error).__name__}: {error}")
            if time.monotonic() > deadline:
                pytest.fail(f"the API kept failing: {seen.api_errors[-3:]}\n{stack.logs()}")
            time.sleep(1.0)
            continue
        seen.polls += 1
        states = {row["task_id"]: row["state"] for row in rows}
        for row in rows:
            if row["state"] == "deferred":
                seen.first_deferred.setdefault(row["task_id"], now)
                trigger = row.get("trigger") or {}
                if trigger.get("triggerer_id") is not None:
                    seen.triggers.setdefault(row["task_id"], trigger)
        failed = {task: state for task, state in states.items() if state not in UNFINISHED | {"success"}}
        assert not failed, f"tasks ended badly: {failed}\n{stack.logs()}"
        if seen.first_half_up_at is None:
            assert "success" not in states.values(), f"a sensor succeeded with no connector up: {states}"
        if seen.second_half_up_at is None:
            early = [t for t in second_half if states.get(t) == "success"]
            assert not early, f"sensors finished before their connector came up (wrong connector matched?): {early}"
        if (
            seen.all_deferred_at is None
            and len(states) == FLEET_SIZE
            and all(state == "deferred" for state in states.values())
        ):
            seen.all_deferred_at = now
            seen.listening = stack.listening()
            deadline = time.monotonic() + DEFERRED_WINDOW + 3 * POKE_INTERVAL + FINISH_DEADLINE
        if (
            seen.all_deferred_at is not None
            and seen.first_half_up_at is None
            and now - seen.all_deferred_at >= DEFERRED_WINDOW
        ):
            seen.first_half_up_at = time.time()
            for task in first_half:
                sim.set_connector(sim.tunnel_id, connectors[task], live=4)
        elif (
            seen.first_half_up_at is not None
            and seen.second_half_up_at is None
            and now - seen.first_half_up_at >= 2 * POKE_INTERVAL
        ):
            seen.second_half_before_up = {task: str(states.get(task)) for task in second_half}
            seen.second_half_up_at = time.time()
            for task in second_half:
                sim.set_connector(sim.tunnel_id, connectors[task], live=4)
        if run["state"] in ("success", "failed"):
            seen.run_state = run["state"]
            seen.final_states = states
            return seen
        if time.monotonic() > deadline:
            phase = "all sensors deferred" if seen.all_deferred_at is None else "the run to finish"
            pytest.fail(f"timed out waiting for {phase}; run {run['state']}, tasks {states}\n{stack.logs()}")
        time.sleep(1.0)


def _trigger_log_evidence(stack: LocalAirflow, run_id: str, tasks: list[str]) -> dict[str, str]:
    """What is missing, per task, from the logs that show its trigger waiting and firing in the triggerer.

    The trigger's own log (``attempt=1.log.trigger.<job>.log``) must hold its "not ready" line (written by the
    trigger, in the triggerer). The triggerer's "Trigger fired event" line lands there or, when the trigger's
    log handler is already closed (seen here), in the triggerer's own output: either will do.
    """
    fired_lines = []
    for path in [*stack.log_dir.glob("*.log"), *(stack.cli.home / "logs").rglob("*.trigger.*")]:
        fired_lines += [line for line in path.read_text(errors="replace").splitlines() if "Trigger fired event" in line]
    missing: dict[str, str] = {}
    for task in tasks:
        trigger_logs = stack.cli.task_logs(DAG_ID, run_id, task, "*.trigger.*")
        if not any("not ready" in path.read_text(errors="replace") for path in trigger_logs):
            missing[task] = f"no 'not ready' line in its trigger log ({[p.name for p in trigger_logs]})"
        elif not any(f"/{run_id}/{task}/" in line for line in fired_lines):
            missing[task] = "no 'Trigger fired event' line"
    return missing


@pytest.mark.timeout(600)
def test_fleet_of_deferrable_sensors_shares_one_poller(
    airflow_stack: LocalAirflow, simulator: CloudflareSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    stack, sim = airflow_stack, simulator
    scenario_connectors = [c["id"] for c in sim.scenario["accounts"][0]["tunnels"][0]["connectors"]]
    connectors = {f"wait_connector_{i:02d}": cid for i, cid in enumerate(scenario_connectors)}
    api = Api(stack.api_url)
    try:
        _wait_until_up(stack, api)
        up_seconds = time.monotonic() - started
        run_id = f"fleet-{uuid.uuid4().hex[:12]}"
        _cli(stack, "dags", "unpause", DAG_ID)
        sim.clear_requests()
        run_started = time.time()
        _cli(stack, "dags", "trigger", DAG_ID, "--run-id", run_id)
        seen = _drive_run(stack, api, sim, run_id, connectors)
        run_seconds = time.time() - run_started
        xcoms = {
            task: api.get(
                f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task}/xcomEntries/return_value",
                deserialize=True,
                tries=3,
            ).get("value")
            for task in connectors
        }
    finally:
        api.close()
    survivors = stack.stop(ORDERLY_STOP_GRACE, STOP_GRACE)
    assert not survivors, f"processes left after stopping the Airflow components: {survivors}"

    # The CLI's own view of the run (the database outlives the components).
    runs = json_rows(_cli(stack, "dags", "list-runs", DAG_ID, "-o", "json"), "run_id")
    cli_run = next((r for r in runs if r["run_id"] == run_id), None)
    cli_states = {
        row["task_id"]: row["state"]
        for row in json_rows(_cli(stack, "tasks", "states-for-dag-run", DAG_ID, run_id, "-o", "json"), "task_id")
    }
    missing_logs = _trigger_log_evidence(stack, run_id, list(connectors))

    # The request log of the simulator.
    requests = sim.requests
    polls = [r for r in requests if (m := CONNECTIONS_PATH.search(r.path)) and m["tunnel"] == sim.tunnel_id]
    pokes: dict[str, int] = {}
    for record in requests:
        if match := CONNECTOR_PATH.search(record.path):
            pokes[match["connector"]] = pokes.get(match["connector"], 0) + 1
    others = [r.path for r in requests if not CONNECTIONS_PATH.search(r.path) and not CONNECTOR_PATH.search(r.path)]
    poll_times = sorted(r.time for r in polls)
    gaps = [b - a for a, b in itertools.pairwise(poll_times)]
    assert seen.all_deferred_at is not None
    assert seen.first_half_up_at is not None
    window = seen.first_half_up_at - seen.all_deferred_at
    in_window = [t for t in poll_times if seen.all_deferred_at <= t < seen.first_half_up_at]
    intervals = window / POKE_INTERVAL
    per_interval = len(in_window) / intervals
    span = poll_times[-1] - poll_times[0] if poll_times else 0.0
    figures = {
        "startup_s": round(up_seconds, 1),
        "run_s": round(run_seconds, 1),
        "all_deferred_after_s": round(seen.all_deferred_at - run_started, 1),
        "window_all_deferred_s": round(window, 1),
        "poll_intervals_in_window": round(intervals, 2),
        "connections_requests_in_window": len(in_window),
        "connections_requests_per_interval": round(per_interval, 2),
        "without_sharing_would_be": round(FLEET_SIZE * intervals),
        "connections_requests_total": len(polls),
        "connections_requests_per_interval_whole_run": round(len(polls) / (span / POKE_INTERVAL + 1), 2),
        "connector_requests_total": sum(pokes.values()),
        "other_requests": len(others),
        "poll_gap_min_s": round(min(gaps), 2) if gaps else None,
        "poll_gap_median_s": round(statistics.median(gaps), 2) if gaps else None,
        "poll_gap_max_s": round(max(gaps), 2) if gaps else None,
        "api_polls": seen.polls,
        "api_poll_errors": len(seen.api_errors),
        "stop_s": round(stack.stop_seconds, 1),
        "stopped_by": stack.stop_stage,
        "needed_sigkill": stack.needed_sigkill,
        "mode": "standalone" if stack.standalone else "components",
        "listening": seen.listening,
    }
    with capsys.disabled():
        print(f"\n[cftunnel fleet] {json.dumps(figures)}", flush=True)

    # The run and every sensor succeeded, each with its own connector.
    assert seen.run_state == "success", f"run ended {seen.run_state}: {seen.final_states}"
    assert seen.final_states == dict.fromkeys(connectors, "success")
    assert cli_run is not None, f"run {run_id} missing from `airflow dags list-runs`: {runs}"
    assert cli_run["state"] == "success"
    assert cli_states == dict.fromkeys(connectors, "success")
    for task, connector_id in connectors.items():
        value = xcoms[task]
        if isinstance(value, str):
            value = json.loads(value)
        assert isinstance(value, dict), f"{task} returned {xcoms[task]!r}"
        assert value.get("id") == connector_id, f"{task} returned connector {value.get('id')}, not {connector_id}"

    # They waited in the triggerer, not in worker slots.
    assert set(seen.first_deferred) == set(connectors), "not every sensor was seen deferred"
    assert set(seen.triggers) == set(connectors), f"sensors without a trigger on a triggerer: {seen.triggers}"
    assert {t["classpath"] for t in seen.triggers.values()} == {TRIGGER_CLASSPATH}
    assert pokes == dict.fromkeys(connectors.values(), 1), (
        f"each connector's endpoint must be asked once (the first poke, before deferring): {pokes}"
    )
    assert not others, f"unexpected requests: {others[:10]}"
    assert seen.second_half_before_up == dict.fromkeys(list(connectors)[FLEET_SIZE // 2 :], "deferred")
    assert not missing_logs, f"triggerer logs missing: {missing_logs}"

    # Nothing but loopback (`airflow standalone` itself cannot keep its log servers off other interfaces).
    assert seen.listening, "no listening socket of the components found"
    public = [entry for entry in seen.listening if not entry.startswith("127.")]
    assert stack.standalone or not public, f"components listening beyond loopback: {public}"

    # ONE shared poller: about one /connections request per poll interval, not one per sensor.
    assert window >= DEFERRED_WINDOW - 1
    assert len(in_window) <= 2 * math.ceil(intervals), figures
    assert len(in_window) >= max(1, math.floor(intervals / 2)), f"the shared poller stalled: {figures}"
    assert gaps, figures
    assert statistics.median(gaps) >= 0.8 * POKE_INTERVAL, figures
