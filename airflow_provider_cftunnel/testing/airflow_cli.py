"""Run real Airflow commands (``airflow dags test``, ``airflow connections test``...) in a private home.

Standard library only: it drives the ``airflow`` command of the current environment in a subprocess, with
its own ``AIRFLOW_HOME`` (SQLite), a chosen DAGs folder and extra environment (such as the connection from
:meth:`CloudflareSimulator.airflow_env`). The project's tests and ``make demo`` use it; so can users
testing their own DAGs against the simulator.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["AirflowCLI"]


class AirflowCLI:
    """
    An isolated Airflow installation directory and the commands to run in it.

    :param home: The ``AIRFLOW_HOME`` to use (created if missing).
    :param dags_folder: The folder the DAG files are read from.
    :param env: Extra environment for every command (connections, DAG param defaults...).
    :param airflow: The ``airflow`` executable; by default the one beside the running Python.
    """

    def __init__(
        self,
        home: str | os.PathLike[str],
        dags_folder: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        airflow: str | None = None,
    ) -> None:
        self.home = Path(home).resolve()
        self.dags_folder = Path(dags_folder).resolve()
        self.extra_env = dict(env or {})
        self.airflow = airflow or _airflow_executable()

    def env(self) -> dict[str, str]:
        """Return the environment every command runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def migrate(self) -> None:
        """Create the metadata database (``airflow db migrate``), once per home."""
        self.home.mkdir(parents=True, exist_ok=True)
        marker = self.home / ".migrated"
        if not marker.exists():
            self.run("db", "migrate", check=True)
            marker.touch()

    def run(self, *args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess[str]:
        """
        Run ``airflow ARGS...`` and capture its output (stdout and stderr together).

        :param args: The command's arguments.
        :param timeout: Seconds before the command is killed.
        :param check: Raise :class:`subprocess.CalledProcessError` on a non-zero exit.
        """
        result: subprocess.CompletedProcess[str] = subprocess.run(**self._command(args), timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, result.args, result.stdout)
        return result

    def popen(self, *args: str, new_session: bool = False) -> subprocess.Popen[str]:
        """
        Start ``airflow ARGS...`` with its output (stdout and stderr together) on a pipe, without waiting.

        :param args: The command's arguments.
        :param new_session: Start it in a session (and process group) of its own, to stop it with its children.
        """
        process: subprocess.Popen[str] = subprocess.Popen(**self._command(args), start_new_session=new_session)
        return process

    def _command(self, args: tuple[str, ...]) -> dict[str, Any]:
        """Return the :mod:`subprocess` arguments that run ``airflow ARGS...`` in this home, output captured."""
        return {
            "args": [self.airflow, *args],
            "env": self.env(),
            "cwd": self.home,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.STDOUT,
            "text": True,
        }

    def dags_test(self, dag_id: str, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """
        Run one DAG in-process with the real task runner (``airflow dags test DAG_ID``).

        :param dag_id: The DAG to run.
        :param extra: More arguments, e.g. ``"-c", json.dumps(conf)``.
        :param timeout: Seconds before the run is killed.
        """
        self.migrate()
        return self.run("dags", "test", dag_id, *extra, timeout=timeout)

    def task_logs(self, dag_id: str, run_id: str, task_id: str, pattern: str = "*.log") -> list[Path]:
        """
        Return the log files of one task in one run, sorted, where Airflow's default layout puts them.

        :param dag_id: The DAG.
        :param run_id: The run.
        :param task_id: The task (unmapped).
        :param pattern: Which files: ``*.log`` every try's log, ``*.trigger.*`` the logs its trigger wrote.
        """
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return sorted(folder.glob(pattern))

    def remove(self) -> None:
        """Delete the home directory and everything in it."""
        shutil.rmtree(self.home, ignore_errors=True)


def _airflow_executable() -> str:
    candidate = Path(sys.executable).parent / "airflow"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("airflow")
    if found is None:
        raise FileNotFoundError("No 'airflow' command found: install apache-airflow in this environment")
    return found
