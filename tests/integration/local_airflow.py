"""Airflow's four components on this machine, on loopback, each in a process group of its own.

:class:`LocalAirflow` runs what ``airflow standalone`` runs (api-server, scheduler with the LocalExecutor,
dag-processor, triggerer) on SQLite, but started one by one: the scheduler and the triggerer with
``--skip-serve-logs`` (``standalone`` binds their log servers on every interface), the API server on
127.0.0.1 and a free port. Each component is a :class:`~tests.integration.processes.ProcessGroup`, so one can
be killed alone (a triggerer dying) and started again, and :meth:`LocalAirflow.stop` stops every process
started (orderly, then SIGTERM, then SIGKILL) and returns what survived (nothing, expected).

Used by ``tests/integration/test_health_watcher.py`` and ``scripts/demo.py`` (``make demo``); it needs no pytest.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI
from tests.integration.processes import Api, ProcessGroup, free_port, loopback_airflow_env, tail

__all__ = ["COMPONENTS", "LocalAirflow", "LocalAirflowError"]

#: Each component's ``airflow`` arguments (``{port}``: the API server's port).
COMPONENTS = {
    "api-server": ("api-server", "--host", "127.0.0.1", "--port", "{port}"),
    "scheduler": ("scheduler", "--skip-serve-logs"),
    "dag-processor": ("dag-processor",),
    "triggerer": ("triggerer", "--skip-serve-logs"),
}
#: SQLite's default 5 s busy timeout is too short on a busy 2-core machine: a component meeting "database is
#: locked" dies (the triggerer did, here). This settings module gives every connection 60 s.
_DB_SETTINGS = 'CONNECT_ARGS = {"timeout": 60}\nASYNC_CONNECT_ARGS = {"timeout": 60}\n'


class LocalAirflowError(RuntimeError):
    """A component exited, or Airflow was not ready in time; the message ends with the components' log tails."""


class LocalAirflow:
    """
    One ``AIRFLOW_HOME`` (SQLite, LocalExecutor) and its components, all on 127.0.0.1.

    :param home: The ``AIRFLOW_HOME`` (created; ``airflow db migrate`` runs once).
    :param dags_folder: The DAGs folder.
    :param env: Extra environment for every component and command (connections, DAG settings, Airflow options;
        these win over the defaults set here).
    :param log_dir: Where each component's output goes (``<name>.log``); default ``home/component-logs``.
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        env: Mapping[str, str] | None = None,
        *,
        log_dir: Path | None = None,
    ) -> None:
        self.home = Path(home)
        self.log_dir = log_dir or self.home / "component-logs"
        self.api_port = free_port()
        settings_dir = self.home / "pythonpath"
        settings_dir.mkdir(parents=True, exist_ok=True)
        (settings_dir / "cftunnel_local_db.py").write_text(_DB_SETTINGS, encoding="utf-8")
        base = loopback_airflow_env(
            self.api_port,
            PYTHONPATH=os.pathsep.join(filter(None, [str(settings_dir), os.environ.get("PYTHONPATH")])),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS="cftunnel_local_db.CONNECT_ARGS",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC="cftunnel_local_db.ASYNC_CONNECT_ARGS",
        )
        self.cli = AirflowCLI(self.home, dags_folder, {**base, **(env or {})})
        self.groups: dict[str, ProcessGroup] = {}
        #: Every group ever started (a killed component's too), to stop them all for sure.
        self.started: list[ProcessGroup] = []
        self.survivors: list[str] = []

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.api_port}"

    def migrate(self) -> None:
        """``airflow db migrate`` (once per home)."""
        self.cli.migrate()

    def start(self, *names: str) -> None:
        """Start components (default: all four), each in a new process group."""
        for name in names or tuple(COMPONENTS):
            self.start_one(name)

    def start_one(self, name: str, log_name: str | None = None) -> ProcessGroup:
        """
        Start one component.

        :param name: A key of :data:`COMPONENTS`.
        :param log_name: Its log file's name (default ``<name>.log``), e.g. for a second triggerer.
        """
        args = [part.format(port=self.api_port) for part in COMPONENTS[name]]
        group = ProcessGroup(
            name,
            [self.cli.airflow, *args],
            env=self.cli.env(),
            cwd=self.home,
            log_path=self.log_dir / (log_name or f"{name}.log"),
        ).start()
        self.groups[name] = group
        self.started.append(group)
        return group

    def kill(self, name: str) -> float:
        """SIGKILL one component and all its children at once (a machine dying); return when (``time.time()``)."""
        return self.groups[name].kill()

    def dead(self) -> list[str]:
        """The components (the current one of each name) whose leader has exited."""
        return [name for name, group in self.groups.items() if not group.running()]

    def check(self) -> None:
        """Raise :class:`LocalAirflowError`, with the logs, if a component has exited."""
        for group in self.groups.values():
            group.track()
        if dead := self.dead():
            raise LocalAirflowError(f"Airflow components exited: {', '.join(dead)}\n{self.logs()}")

    def wait_until_up(self, api: Api, dag_ids: tuple[str, ...], timeout: float = 180.0) -> float:
        """
        Wait until every component is healthy and the DAGs are parsed without import errors; return the seconds.

        :param api: A REST client of :attr:`api_url`.
        :param dag_ids: DAGs that must be known to the API.
        :param timeout: Seconds.
        :raises LocalAirflowError: On a component exiting, an import error, or the timeout.
        """
        started = time.monotonic()
        last = "nothing yet"
        while time.monotonic() - started < timeout:
            self.check()
            try:
                health = api.get("/api/v2/monitor/health")
                states = {n: (health.get(n) or {}).get("status") for n in ("scheduler", "triggerer", "dag_processor")}
                last = f"health {states}"
                if all(state == "healthy" for state in states.values()):
                    errors = api.get("/api/v2/importErrors").get("import_errors", [])
                    if errors:
                        raise LocalAirflowError(f"the DAGs folder has import errors: {errors}")
                    known = {dag_id for dag_id in dag_ids if self._dag_known(api, dag_id)}
                    last = f"healthy; DAGs parsed: {sorted(known)}"
                    if known == set(dag_ids):
                        return time.monotonic() - started
            except (*api.errors, ValueError) as error:  # not up yet: connection refused, 503...
                last = f"{type(error).__name__}: {error}"
            time.sleep(1.0)
        raise LocalAirflowError(f"Airflow was not ready within {timeout:.0f} s ({last})\n{self.logs()}")

    @staticmethod
    def _dag_known(api: Api, dag_id: str) -> bool:
        try:
            api.get(f"/api/v2/dags/{dag_id}")
        except api.errors:
            return False
        return True

    def set_paused(self, api: Api, dag_id: str, paused: bool) -> None:
        """Pause or unpause a DAG through the REST API."""
        response = api.client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": paused})
        response.raise_for_status()

    def stop(self, grace: float = 20.0, term_grace: float = 10.0) -> list[str]:
        """
        Stop every process started: the orderly signal to every leader at once (each stops its own children),
        then SIGTERM, then SIGKILL to what is left. Safe to call twice.

        :returns: Descriptions of the processes still running afterwards (none expected).
        """
        pending = [group for group in self.started if not group.stopped]
        for group in pending:
            group.begin_stop(signal.SIGTERM)
        for group in pending:
            self.survivors += group.finish_stop(grace, term_grace)
        return self.survivors

    def logs(self, chars: int = 2500) -> str:
        """The tail of every component's output, for failure messages."""
        return "\n".join(f"--- {path.name} ---\n{tail(path, chars)}" for path in sorted(self.log_dir.glob("*.log")))

    def __enter__(self) -> LocalAirflow:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
