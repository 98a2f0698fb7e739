"""What a DAG run left in the metadata database, for the tests that run the example DAGs for real."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

__all__ = ["EXAMPLE_DAGS", "task_states", "xcoms"]

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


def xcoms(airflow_home: Path, dag_id: str) -> dict[tuple[str, str], object]:
    """The XComs of the DAG's latest run, read from the metadata database as Airflow stored them."""
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        (run_id,) = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        rows = db.execute("SELECT task_id, key, value FROM xcom WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return {
            (task, key): json.loads(value) if isinstance(value, str | bytes) else value for task, key, value in rows
        }


def task_states(airflow_home: Path, dag_id: str) -> dict[str, str]:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        (run_id,) = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        rows = db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return dict(rows)
