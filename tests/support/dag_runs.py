"""Read what ``airflow dags test`` left in an ``AIRFLOW_HOME`` (SQLite), and drive the simulator during a run."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pendulum
import pytest

__all__ = [
    "AIRFLOW_3_0",
    "AIRFLOW_3_0_RESCHEDULE_BUG",
    "bring_up_after_first_poll",
    "task_rows",
    "task_states",
    "xcoms",
    "xfail_on_airflow_3_0_reschedule_bug",
]

AIRFLOW_3_0 = version("apache-airflow").startswith("3.0.")
#: Airflow 3.0's reschedule-mode bug, as the tests that can meet it describe it.
AIRFLOW_3_0_RESCHEDULE_BUG = (
    "Airflow 3.0's task SDK can hand BaseSensorOperator the first reschedule date as a string, and its "
    "reschedule-mode run_duration() then raises TypeError (datetime - str) on the second poke: Airflow's bug"
)
#: What that bug prints.
_AIRFLOW_3_0_RESCHEDULE_ERROR = "unsupported operand type(s) for -: 'datetime.datetime' and 'str'"


def _latest_run(db: sqlite3.Connection, dag_id: str) -> str:
    (run_id,) = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)).fetchone()
    return str(run_id)


def xcoms(airflow_home: Path, dag_id: str) -> dict[tuple[str, str], object]:
    """Return the XComs of the DAG's latest run, ``{(task_id, key): value}``, as Airflow stored them."""
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        return _xcoms(db, dag_id, _latest_run(db, dag_id))


def _xcoms(db: sqlite3.Connection, dag_id: str, run_id: str) -> dict[tuple[str, str], object]:
    rows = db.execute("SELECT task_id, key, value FROM xcom WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
    return {(task, key): json.loads(value) if isinstance(value, str | bytes) else value for task, key, value in rows}


def task_states(airflow_home: Path, dag_id: str) -> dict[str, str]:
    """Return ``{task_id: state}`` of the DAG's latest run."""
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        run_id = _latest_run(db, dag_id)
        rows = db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return dict(rows)


def task_rows(airflow_home: Path, dag_id: str) -> dict[str, tuple[str, float | None, object, list[float]]]:
    """Return ``{task: (state, end, XCom return_value, reschedules)}`` of the DAG's latest run.

    ``end`` and each of ``reschedules`` (the start of every try that gave its slot back) are POSIX seconds.
    Airflow 2 keys a task instance and its reschedules by (dag, run, task); Airflow 3 by the task instance's id.
    """
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        run_id = _latest_run(db, dag_id)
        returned = {task: value for (task, key), value in _xcoms(db, dag_id, run_id).items() if key == "return_value"}
        if "ti_id" in {row[1] for row in db.execute("PRAGMA table_info(task_reschedule)")}:
            starts = (
                "SELECT ti.task_id, tr.start_date FROM task_reschedule tr JOIN task_instance ti ON tr.ti_id = ti.id"
                " WHERE ti.dag_id = ? AND ti.run_id = ? ORDER BY tr.start_date"
            )
        else:
            starts = (
                "SELECT task_id, start_date FROM task_reschedule WHERE dag_id = ? AND run_id = ? ORDER BY start_date"
            )
        reschedules: dict[str, list[float]] = {}
        for task, start in db.execute(starts, (dag_id, run_id)):
            reschedules.setdefault(task, []).append(_posix(start))
        query = "SELECT task_id, state, end_date FROM task_instance WHERE dag_id = ? AND run_id = ?"
        return {
            task: (state, _posix(end) if end else None, returned.get(task), reschedules.get(task, []))
            for task, state, end in db.execute(query, (dag_id, run_id))
        }


def _posix(stored: str) -> float:
    return pendulum.parse(stored).timestamp()


def xfail_on_airflow_3_0_reschedule_bug(stdout: str) -> None:
    """Mark the test xfailed if Airflow 3.0's own reschedule-mode bug (:data:`AIRFLOW_3_0_RESCHEDULE_BUG`) ended a task.

    :param stdout: what ``airflow dags test`` printed.
    """
    if AIRFLOW_3_0 and _AIRFLOW_3_0_RESCHEDULE_ERROR in stdout:
        pytest.xfail(AIRFLOW_3_0_RESCHEDULE_BUG)


def bring_up_after_first_poll(sim: Any, delay: float) -> threading.Thread:
    """Start the connector ``delay`` seconds after the sensor's first request (Airflow's start-up varies)."""

    def run() -> None:
        deadline = time.monotonic() + 120
        while not sim.requests_matching(sim.tunnel_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(delay)
        sim.set_connector(live=4)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
