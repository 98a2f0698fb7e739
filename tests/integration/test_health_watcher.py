"""The tunnel health watcher, run for real: an asset watched by ``CloudflareTunnelHealthTrigger`` in the triggerer.

The example DAG ``example_cftunnel_on_health_change`` (copied alone into a DAGs folder) watches the tunnels named
``edge-*`` of a simulated fleet of three, polling every ``POLL_INTERVAL`` seconds. Scheduler, dag-processor,
triggerer and API server run one by one on loopback (:class:`~tests.support.airflow.LocalAirflow`); the
simulator runs in this process. The test unpauses the DAG (which registers the watcher), waits for the baseline
(the second tunnel list request: the first answer has been read), then flips one tunnel down and, once the DAG
has run for that, back to healthy.

On Airflow 3.3+ the triggerer is SIGKILLed while the tunnel is down (after the first run, and after the trigger
polled again, so the stored state is written), the tunnel recovers while NO triggerer runs the watcher, and a new
triggerer takes the watcher over once the dead one's heartbeat is ``TRIGGERER_THRESHOLD`` seconds old. Only the
trigger's state in the asset state store can tell it that the tunnel was down: without it, the new trigger would
take "healthy" as its baseline and the recovery would be missed.

What it checks: exactly two asset events and two runs of the DAG, in order, each holding one event for the flipped
tunnel with the right payload (``previous_status``/``status``, ``previous_healthy``/``healthy``, ``reasons``); the
task's printed lines (its XCom and its log); nothing for the two tunnels that never changed; no third run while
nothing changes; on 3.3 the new triggerer resumed from the stored state and the store holds the tunnels' health;
every process started is gone afterwards. Figures are printed at the end.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cftunnel.testing import CloudflareSimulator
from tests.leak_guard import register_secret
from tests.support.airflow import LocalAirflow, LocalAirflowError
from tests.support.processes import Api

AIRFLOW_VERSION = tuple(int(part) for part in version("apache-airflow").split(".")[:2])

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(AIRFLOW_VERSION < (3, 0), reason="asset watchers exist from Airflow 3.0"),
]

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "example_cftunnel_on_health_change.py"
DAG_ID = "example_cftunnel_on_health_change"
TASK_ID = "react_to_health_change"
ASSET_NAME = "cftunnel_tunnel_health"
PREFIX = "edge-"
FLEET = 3
POLL_INTERVAL = 2
#: Seconds after its last heartbeat that a triggerer counts as dead and its triggers move (default 30).
TRIGGERER_THRESHOLD = 15
#: The asset state store (and so a restart that neither repeats nor misses a change) exists from 3.3.
RESTART = AIRFLOW_VERSION >= (3, 3)
#: Deadlines, in seconds.
STARTUP_DEADLINE = 180.0
WATCHER_DEADLINE = 90.0
RUN_DEADLINE = 90.0
TAKEOVER_DEADLINE = 120.0
LIST_PATH = re.compile(r"/accounts/[0-9a-f]{32}/cfd_tunnel$")
COMPARED = ("tunnel_id", "previous_status", "status", "previous_healthy", "healthy", "change")


@pytest.fixture
def simulator() -> Iterator[CloudflareSimulator]:
    """The default tunnel (not selected) and a healthy fleet ``edge-1..3``; its credentials are registered."""
    with CloudflareSimulator({"up_after": 0}) as sim:
        for secret in (sim.api_token, sim.account_token, sim.global_key):
            register_secret(secret)
        sim.add_fleet(PREFIX, FLEET)
        yield sim


@pytest.fixture
def airflow(tmp_path: Path, simulator: CloudflareSimulator) -> Iterator[LocalAirflow]:
    """A fresh AIRFLOW_HOME with the example DAG alone, its four components started; all stopped afterwards."""
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(EXAMPLE, dags / EXAMPLE.name)
    env = {
        "AIRFLOW_CONN_CLOUDFLARE_DEFAULT": simulator.connection_json(),
        "CFTUNNEL_NAME_PREFIX": PREFIX,
        "CFTUNNEL_HEALTH_POLL_INTERVAL": str(POLL_INTERVAL),
        # re-parse soon after the unpause: the watcher is registered when the unpaused DAG is parsed
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_THRESHOLD),
    }
    stack = LocalAirflow(tmp_path / "airflow", dags, env)
    try:
        stack.migrate()
        stack.start()
        yield stack
    finally:
        survivors = stack.stop()
        assert not survivors, f"processes left after stopping the Airflow components: {survivors}"


def _list_requests(sim: CloudflareSimulator, after: float = 0.0) -> list[Any]:
    """The fleet's tunnel list requests (one per poll of the watcher) made after ``after`` (``time.time()``)."""
    return [
        r
        for r in sim.requests
        if LIST_PATH.search(r.path) and r.query.get("include_prefix") == PREFIX and r.time > after
    ]


def _wait(stack: LocalAirflow, what: str, timeout: float, done: Callable[[], Any]) -> Any:
    """Poll ``done`` every 0.5 s until it returns something true; fail with the components' logs on a timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            stack.check()
        except LocalAirflowError as error:
            pytest.fail(str(error))
        if result := done():
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{stack.logs()}")
        time.sleep(0.5)


def _runs(api: Api) -> list[dict[str, Any]]:
    try:
        rows = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns", order_by="id", limit=50)["dag_runs"]
    except api.errors:  # the API server is busy on 2 shared cores: ask again at the next poll
        return []
    return rows


def _wait_for_runs(stack: LocalAirflow, api: Api, count: int) -> list[dict[str, Any]]:
    """Wait until the DAG has ``count`` runs and the last one succeeded; fail at once on a failed run."""

    def done() -> list[dict[str, Any]] | None:
        runs = _runs(api)
        failed = [r["dag_run_id"] for r in runs if r["state"] == "failed"]
        if failed:
            pytest.fail(f"runs failed: {failed}\n{stack.logs()}")
        assert len(runs) <= count, f"more runs than changes: {[r['dag_run_id'] for r in runs]}"
        return runs if len(runs) == count and runs[-1]["state"] == "success" else None

    return _wait(stack, f"run {count} of {DAG_ID}", RUN_DEADLINE, done)


def _database(stack: LocalAirflow) -> dict[str, Any]:
    """What the metadata database holds once the components are stopped: events, runs, XComs, stored state."""
    with sqlite3.connect(stack.home / "airflow.db") as db:
        (asset_id,) = db.execute("SELECT id FROM asset WHERE name = ?", (ASSET_NAME,)).fetchone()
        events = [
            {"id": event_id, "extra": json.loads(extra)}
            for event_id, extra in db.execute(
                "SELECT id, extra FROM asset_event WHERE asset_id = ? ORDER BY id", (asset_id,)
            )
        ]
        runs = [
            {"id": run_id, "run_id": name, "state": state, "run_type": run_type}
            for run_id, name, state, run_type in db.execute(
                "SELECT id, run_id, state, run_type FROM dag_run WHERE dag_id = ? ORDER BY id", (DAG_ID,)
            )
        ]
        for run in runs:
            run["events"] = [
                event_id
                for (event_id,) in db.execute(
                    "SELECT event_id FROM dagrun_asset_event WHERE dag_run_id = ? ORDER BY event_id", (run["id"],)
                )
            ]
            row = db.execute(
                "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = 'return_value'",
                (DAG_ID, run["run_id"], TASK_ID),
            ).fetchone()
            run["lines"] = None if row is None else json.loads(row[0])
        store: dict[str, Any] = {}
        if RESTART:
            for key, value in db.execute("SELECT key, value FROM asset_state_store WHERE asset_id = ?", (asset_id,)):
                store[key] = json.loads(value)
    return {"events": events, "runs": runs, "store": store}


def _seconds_between(log: str, first: str, then: str) -> float | None:
    """Seconds between the first log line holding ``first`` and the next one holding ``then`` (ISO timestamps)."""
    from datetime import datetime

    start = None
    for line in log.splitlines():
        try:
            stamp = datetime.fromisoformat(line[:27])
        except ValueError:  # not a log record's first line
            continue
        if start is None and first in line:
            start = stamp
        elif start is not None and then in line:
            return round((stamp - start).total_seconds(), 2)
    return None


def _task_log(stack: LocalAirflow, run_id: str) -> str:
    return "\n".join(path.read_text(errors="replace") for path in stack.cli.task_logs(DAG_ID, run_id, TASK_ID))


@pytest.mark.timeout(480)
def test_one_run_per_health_change_across_a_triggerer_restart(
    airflow: LocalAirflow, simulator: CloudflareSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    stack, sim = airflow, simulator
    fleet = list(sim.tunnel_statuses(PREFIX))
    assert len(fleet) == FLEET
    flipped = fleet[1]
    figures: dict[str, Any] = {"airflow": version("apache-airflow"), "restart": RESTART}
    api = Api(stack.api_url)
    try:
        try:
            figures["startup_s"] = round(stack.wait_until_up(api, (DAG_ID,), STARTUP_DEADLINE), 1)
        except LocalAirflowError as error:
            pytest.fail(str(error))
        unpaused_at = time.time()
        stack.set_paused(api, DAG_ID, False)

        # The baseline: the second poll starts after the first answer was read (and stored, on 3.3).
        _wait(stack, "the watcher's baseline", WATCHER_DEADLINE, lambda: len(_list_requests(sim)) >= 2 or None)
        figures["baseline_after_unpause_s"] = round(_list_requests(sim)[1].time - unpaused_at, 1)
        assert not _runs(api), "a run before any change: the baseline fired"

        down_at = time.time()
        sim.set_tunnel_status(flipped, "down")
        first = _wait_for_runs(stack, api, 1)
        figures["down_to_run_done_s"] = round(time.time() - down_at, 1)
        # One more poll after the run: the trigger has saved the "down" state by then (it saves before sleeping).
        seen_run = time.time()
        _wait(stack, "a poll after the first run", WATCHER_DEADLINE, lambda: _list_requests(sim, seen_run) or None)

        if RESTART:
            killed_at = stack.kill("triggerer")
            up_at = time.time()
            sim.set_tunnel_status(flipped, "healthy")  # while no triggerer runs the watcher
            stack.start_one("triggerer", "triggerer-2.log")
            resumed = _wait(
                stack, "the new triggerer to poll", TAKEOVER_DEADLINE, lambda: _list_requests(sim, killed_at) or None
            )
            figures["takeover_after_kill_s"] = round(resumed[0].time - killed_at, 1)
        else:
            up_at = time.time()
            sim.set_tunnel_status(flipped, "healthy")
        runs = _wait_for_runs(stack, api, 2)
        figures["healthy_to_run_done_s"] = round(time.time() - up_at, 1)
        assert runs[0]["dag_run_id"] == first[0]["dag_run_id"]

        # Nothing changes any more: three more polls, and still two runs.
        quiet_from = time.time()
        _wait(stack, "three quiet polls", WATCHER_DEADLINE, lambda: len(_list_requests(sim, quiet_from)) >= 3 or None)
        time.sleep(2.0)  # time for a (wrong) event of the last poll to become a run
        assert len(_runs(api)) == 2, f"a run while nothing changed: {[r['dag_run_id'] for r in _runs(api)]}"
    finally:
        api.close()
    survivors = stack.stop()
    assert not survivors, f"processes left after stopping the Airflow components: {survivors}"
    figures["stop_stages"] = [group.stop_stage for group in stack.started]
    figures["polls"] = len(_list_requests(sim))
    if RESTART:  # the watcher's start on the new triggerer: connection, stored state read, then "Watching"
        log = (stack.log_dir / "triggerer-2.log").read_text(errors="replace")
        figures["resume_start_s"] = _seconds_between(log, " starting ", "Watching the tunnels")
    figures["wall_s"] = round(time.monotonic() - started, 1)
    with capsys.disabled():
        print(f"\n[cftunnel health watcher] {json.dumps(figures)}", flush=True)

    stored = _database(stack)
    events, runs_db = stored["events"], stored["runs"]

    # Exactly two asset events, both for the flipped tunnel, one per change, and one run for each.
    assert len(events) == 2, f"expected 2 asset events, got {[e['extra'] for e in events]}"
    down, up = (event["extra"]["payload"] for event in events)
    assert all(event["extra"].get("from_trigger") is True for event in events)
    name = down["tunnel_name"]
    assert name.startswith(PREFIX)
    assert {k: down[k] for k in COMPARED} == {
        "tunnel_id": flipped,
        "previous_status": "healthy",
        "status": "down",
        "previous_healthy": True,
        "healthy": False,
        "change": "changed",
    }
    assert down["account_id"] == sim.account_id
    assert down["reasons"] == ["status is down (needs healthy)"]
    assert {k: up[k] for k in COMPARED} == {
        "tunnel_id": flipped,
        "previous_status": "down",
        "status": "healthy",
        "previous_healthy": False,
        "healthy": True,
        "change": "changed",
    }
    assert up["reasons"] == []
    assert [run["state"] for run in runs_db] == ["success", "success"]
    assert [run["run_type"] for run in runs_db] == ["asset_triggered", "asset_triggered"]
    assert [run["events"] for run in runs_db] == [[events[0]["id"]], [events[1]["id"]]]

    # The task's lines: returned (XCom) and printed (its log).
    expected = [
        f"FAILOVER: tunnel {name} ({flipped}) went healthy -> down (status is down (needs healthy))",
        f"RECOVERED: tunnel {name} ({flipped}) went down -> healthy",
    ]
    assert [run["lines"] for run in runs_db] == [[expected[0]], [expected[1]]]
    for run, line in zip(runs_db, expected, strict=True):
        assert line in _task_log(stack, run["run_id"]), f"{line!r} not in the task log of {run['run_id']}"

    if RESTART:
        # The new triggerer resumed from the stored state (and took no new baseline), which holds every tunnel.
        second = (stack.log_dir / "triggerer-2.log").read_text(errors="replace")
        assert f"resuming from the stored health of {FLEET} tunnel(s)" in second, second[-3000:]
        assert "the first poll is the baseline" not in second
        remembered = {tid: state for shard in stored["store"].values() for tid, state in shard.items()}
        assert set(remembered) == set(fleet), stored["store"]
        assert remembered[flipped][:2] == ["healthy", True]
