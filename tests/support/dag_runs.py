"""Read what ``airflow dags test`` left in an ``AIRFLOW_HOME`` (SQLite), and drive the simulator during a run."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["bring_up_after_first_poll", "task_states", "xcoms"]


def _latest_run(db: sqlite3.Connection, dag_id: str) -> str:
    (run_id,) = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)).fetchone()
    return str(run_id)


def xcoms(airflow_home: Path, dag_id: str) -> dict[tuple[str, str], object]:
    """Return the XComs of the DAG's latest run, ``{(task_id, key): value}``, as Airflow stored them."""
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        run_id = _latest_run(db, dag_id)
        rows = db.execute("SELECT task_id, key, value FROM xcom WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return {
            (task, key): json.loads(value) if isinstance(value, str | bytes) else value for task, key, value in rows
        }


def task_states(airflow_home: Path, dag_id: str) -> dict[str, str]:
    """Return ``{task_id: state}`` of the DAG's latest run."""
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        run_id = _latest_run(db, dag_id)
        rows = db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return dict(rows)


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
