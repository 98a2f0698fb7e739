"""Start Airflow's components on this machine, on loopback, each in a process group of its own: the one launcher.

The integration tests, the cluster harness (``tests/cluster/harness.py``), ``make demo`` and the benchmarks build
on it; it needs no pytest.

* Component builders (:func:`api_server`, :func:`scheduler`, :func:`dag_processor`, :func:`triggerer`,
  :func:`celery_worker`, :func:`standalone`): the ``airflow`` arguments of one component, kept off public
  interfaces (the scheduler's and the triggerer's log servers are not started: they bind every interface).
* :func:`airflow_env`: the environment every component of one deployment shares (loopback, free ports).
* :class:`AirflowLauncher`: components added by name, started in process groups of their own, watched
  (:meth:`~AirflowLauncher.check`), one killed alone (a machine dying) and started again, and all stopped by pid
  (the orderly signal to every leader at once, then SIGTERM, then SIGKILL to each group).
* :class:`LocalAirflow`: one ``AIRFLOW_HOME`` on SQLite with the LocalExecutor and the four components
  ``airflow standalone`` runs, started one by one.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI
from tests.support.processes import Api, ProcessGroup, free_port, tail

__all__ = [
    "LOCAL_COMPONENTS",
    "AirflowLauncher",
    "Component",
    "LauncherError",
    "LocalAirflow",
    "LocalAirflowError",
    "airflow_env",
    "api_server",
    "celery_worker",
    "dag_processor",
    "scheduler",
    "standalone",
    "triggerer",
]

#: How bad a stop went, mildest first (:attr:`ProcessGroup.stop_stage`).
_STAGES = ("", "orderly", "SIGTERM", "SIGKILL")
#: SQLite's default 5 s busy timeout is too short on a busy 2-core machine: a component meeting "database is
#: locked" dies (the triggerer did, here). This settings module gives every connection 60 s.
_DB_SETTINGS = 'CONNECT_ARGS = {"timeout": 60}\nASYNC_CONNECT_ARGS = {"timeout": 60}\n'


# ---- the components ------------------------------------------------------------------------------------------


def api_server(port: int) -> list[str]:
    """Return the api-server's arguments: on 127.0.0.1 and ``port``."""
    return ["api-server", "--host", "127.0.0.1", "--port", str(port)]


def scheduler() -> list[str]:
    """Return the scheduler's arguments, without its log server."""
    return ["scheduler", "--skip-serve-logs"]


def dag_processor() -> list[str]:
    """Return the dag-processor's arguments."""
    return ["dag-processor"]


def triggerer(queues: str | None = None) -> list[str]:
    """
    Return a triggerer's arguments, without its log server.

    :param queues: The trigger queues it runs (``--queues``); ``None``: every trigger without a queue.
    """
    return ["triggerer", "--skip-serve-logs", *(["--queues", queues] if queues else [])]


def celery_worker(hostname: str, queues: Sequence[str], concurrency: int) -> list[str]:
    """
    Return a Celery worker's arguments, without its log server.

    :param hostname: Its Celery hostname (``worker-1@cluster``).
    :param queues: The Celery queues it serves.
    :param concurrency: Its task slots.
    """
    return [
        "celery",
        "worker",
        "--celery-hostname",
        hostname,
        "--queues",
        ",".join(queues),
        "--concurrency",
        str(concurrency),
        "--skip-serve-logs",
    ]


def standalone() -> list[str]:
    """Return ``airflow standalone``'s arguments (its log servers then listen on every interface)."""
    return ["standalone"]


def airflow_env(api_port: int, **overrides: str) -> dict[str, str]:
    """
    Return the environment every Airflow component of one deployment shares.

    Loopback only, free log-server ports, the execution API on ``api_port``, no examples, every user an admin (so
    the caller reads the REST API), the venv's ``bin`` first on ``PATH``.

    :param api_port: The api-server's port.
    :param overrides: More variables, or other values (e.g. ``AIRFLOW__CORE__EXECUTOR="CeleryExecutor"``).
    """
    return {
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        # Task runners start by the dozen on 2 shared cores and the API server then answers slowly. With the 5 s
        # default a worker times out on PATCH .../run and retries it; the first call, finishing after the task
        # deferred, sets it back to running, and the scheduler then fails it (Airflow 3.3.2, seen here).
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        **overrides,
    }


# ---- the launcher --------------------------------------------------------------------------------------------


class LauncherError(RuntimeError):
    """A component exited, or Airflow was not ready in time; the message ends with the components' log tails."""


@dataclass
class Component:
    """
    One Airflow component: its name, the CLI it runs with (its ``AIRFLOW_HOME``) and its process group.

    :param name: A short name, unique in its launcher (also its log file's stem).
    :param cli: The home and environment it runs with.
    :param args: Its ``airflow`` arguments (a builder's result).
    :param stop_signal: The orderly stop signal for its leader (``airflow standalone`` stops on SIGINT).
    """

    name: str
    cli: AirflowCLI
    args: list[str]
    stop_signal: int = signal.SIGTERM
    group: ProcessGroup | None = None
    #: Killed on purpose (:meth:`AirflowLauncher.kill`): its exit is no failure.
    killed: bool = False


class AirflowLauncher:
    """
    Airflow components, each in a process group of its own, their output in ``log_dir/<name>.log``.

    :param log_dir: Where the components' output goes.
    :param api_port: The api-server's port (default: a free one).
    """

    #: Raised by :meth:`check`; a harness may use its own type.
    error: ClassVar[type[Exception]] = LauncherError

    def __init__(self, log_dir: Path, api_port: int | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.api_port = api_port or free_port()
        self.components: dict[str, Component] = {}
        #: Every group ever started (a killed component's too), to stop them all for sure.
        self.started: list[ProcessGroup] = []
        self.survivors: list[str] = []
        #: Seconds the last :meth:`stop` took.
        self.stop_seconds = 0.0

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the api-server."""
        return f"http://127.0.0.1:{self.api_port}"

    def add(self, name: str, cli: AirflowCLI, args: Sequence[str], stop_signal: int = signal.SIGTERM) -> Component:
        """
        Add a component (not started yet).

        :param name: Its name, unique here.
        :param cli: Its home and environment.
        :param args: Its ``airflow`` arguments.
        :param stop_signal: Its orderly stop signal.
        """
        if name in self.components:
            raise ValueError(f"component {name!r} is added already: give the second one another name")
        self.components[name] = Component(name, cli, list(args), stop_signal)
        return self.components[name]

    def start(self, *names: str) -> None:
        """Start components (default: every one added), each in a new process group."""
        for name in names or tuple(self.components):
            self.start_one(name)

    def start_one(self, name: str, log_name: str | None = None) -> ProcessGroup:
        """
        Start one component (again, after :meth:`kill`).

        :param name: A component's name.
        :param log_name: Its log file's name (default ``<name>.log``), e.g. ``triggerer-2.log`` for a restart.
        """
        component = self.components[name]
        component.cli.home.mkdir(parents=True, exist_ok=True)
        component.group = ProcessGroup(
            name,
            [component.cli.airflow, *component.args],
            env=component.cli.env(),
            cwd=component.cli.home,
            log_path=self.log_dir / (log_name or f"{name}.log"),
        ).start()
        component.killed = False
        self.started.append(component.group)
        return component.group

    @property
    def groups(self) -> dict[str, ProcessGroup]:
        """The current process group of each started component, by name."""
        return {name: c.group for name, c in self.components.items() if c.group is not None}

    def kill(self, name: str) -> float:
        """SIGKILL one component and all its children at once (its machine died); return when (``time.time()``)."""
        component = self.components[name]
        if component.group is None:
            raise ValueError(f"component {name!r} was not started")
        component.killed = True
        return component.group.kill()

    def dead(self) -> list[str]:
        """The components not killed on purpose whose leader has exited, as ``name (exit N)``."""
        found = []
        for component in self.components.values():
            group = component.group
            if group is not None and group.proc is not None and not component.killed and not group.running():
                found.append(f"{component.name} (exit {group.proc.returncode})")
        return found

    def track(self) -> None:
        """Remember every descendant of every component (task runners leave the process group)."""
        for group in self.groups.values():
            group.track()

    def check(self) -> None:
        """Raise :attr:`error`, with the logs, if a component has exited (and track the descendants)."""
        self.track()
        if dead := self.dead():
            raise self.error(f"Airflow components exited: {', '.join(dead)}\n{self.logs()}")

    def stop(self, grace: float = 20.0, term_grace: float = 10.0) -> list[str]:
        """
        Stop every process started; safe to call twice.

        The orderly signal goes to every leader at once (each stops its own children: signalling every process at
        once can leave the scheduler waiting forever for LocalExecutor workers the signal interrupted), then each
        group gets SIGTERM, then SIGKILL.

        :param grace: Seconds for the orderly stop.
        :param term_grace: Seconds after SIGTERM.
        :returns: Descriptions of the processes still running afterwards (``name: pid N '...'``; none expected).
        """
        began = time.monotonic()
        pending = [group for group in self.started if not group.stopped]
        signals = {id(c.group): c.stop_signal for c in self.components.values()}
        for group in pending:
            group.begin_stop(signals.get(id(group), signal.SIGTERM))
        for group in pending:
            self.survivors += [f"{group.name}: {s}" for s in group.finish_stop(grace, term_grace)]
        if pending:
            self.stop_seconds = time.monotonic() - began
        return self.survivors

    @property
    def stop_stage(self) -> str:
        """The harshest way the last :meth:`stop` ended a group: ``orderly``, ``SIGTERM`` or ``SIGKILL``."""
        return max((group.stop_stage for group in self.started), key=_STAGES.index, default="")

    @property
    def needed_sigkill(self) -> list[str]:
        """What was still running when SIGKILL had to be sent."""
        return [entry for group in self.started for entry in group.needed_sigkill]

    def listening(self) -> list[str]:
        """``address:port (process)`` of every socket the components listen on."""
        return sorted({entry for group in self.groups.values() for entry in group.listening()})

    def log_line_seen(self, name: str, pattern: str) -> bool:
        """Return whether a component's output has a line matching the regular expression ``pattern``."""
        import re

        try:
            return re.search(pattern, (self.log_dir / f"{name}.log").read_text(errors="replace")) is not None
        except OSError:
            return False

    def logs(self, chars: int = 2500) -> str:
        """Return the tail of every component's output, for failure messages."""
        return "\n".join(f"--- {path.name} ---\n{tail(path, chars)}" for path in sorted(self.log_dir.glob("*.log")))

    def __enter__(self) -> AirflowLauncher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ---- one home on SQLite ------------------------------------------------------------------------------------


class LocalAirflowError(LauncherError):
    """A component of a :class:`LocalAirflow` exited, or it was not ready in time."""


#: The components :class:`LocalAirflow` starts by default: what ``airflow standalone`` runs.
LOCAL_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


class LocalAirflow(AirflowLauncher):
    """
    One ``AIRFLOW_HOME`` (SQLite, LocalExecutor) and its components, all on 127.0.0.1.

    :param home: The ``AIRFLOW_HOME`` (created; :meth:`migrate` runs ``airflow db migrate`` once).
    :param dags_folder: The DAGs folder.
    :param env: Extra environment for every component and command (connections, DAG settings, Airflow options;
        these win over the defaults set here).
    :param log_dir: Where each component's output goes (``<name>.log``); default ``home/component-logs``.
    :param components: The components to add: names of :data:`LOCAL_COMPONENTS`, or ``("standalone",)`` for
        ``airflow standalone`` itself.
    """

    error = LocalAirflowError

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        env: Mapping[str, str] | None = None,
        *,
        log_dir: Path | None = None,
        components: Sequence[str] = LOCAL_COMPONENTS,
    ) -> None:
        self.home = Path(home)
        super().__init__(log_dir or self.home / "component-logs")
        settings_dir = self.home / "pythonpath"
        settings_dir.mkdir(parents=True, exist_ok=True)
        (settings_dir / "cftunnel_local_db.py").write_text(_DB_SETTINGS, encoding="utf-8")
        base = airflow_env(
            self.api_port,
            PYTHONPATH=os.pathsep.join(filter(None, [str(settings_dir), os.environ.get("PYTHONPATH")])),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS="cftunnel_local_db.CONNECT_ARGS",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC="cftunnel_local_db.ASYNC_CONNECT_ARGS",
        )
        self.cli = AirflowCLI(self.home, dags_folder, {**base, **(env or {})})
        builders = {
            "api-server": lambda: api_server(self.api_port),
            "scheduler": scheduler,
            "dag-processor": dag_processor,
            "triggerer": triggerer,
            "standalone": standalone,
        }
        for name in components:
            if name not in builders:
                raise ValueError(f"unknown component {name!r}: use {', '.join(builders)}")
            # `airflow standalone` stops its components on SIGINT
            self.add(name, self.cli, builders[name](), signal.SIGINT if name == "standalone" else signal.SIGTERM)

    @property
    def standalone(self) -> bool:
        """Whether this runs ``airflow standalone`` rather than the components one by one."""
        return "standalone" in self.components

    def migrate(self) -> None:
        """Run ``airflow db migrate`` (once per home)."""
        self.cli.migrate()

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

    def __enter__(self) -> LocalAirflow:
        return self
