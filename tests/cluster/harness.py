"""A distributed Airflow on one machine: what users run when they outgrow one box.

:class:`Cluster` starts, all on 127.0.0.1 and free ports:

* a throwaway PostgreSQL cluster (:class:`PostgresServer`: ``initdb`` in a temporary directory, ``pg_ctl
  start`` / ``stop``) as the metadata database and Celery's result backend (``db+postgresql``);
* Redis (:class:`RedisServer`, nothing saved to disk) as Celery's broker;
* Airflow with the ``CeleryExecutor`` (:class:`AirflowCluster`): one api-server, one scheduler, one
  dag-processor, N Celery workers and M triggerers, none serving logs (``--skip-serve-logs``). Each component
  has an ``AIRFLOW_HOME`` and a hostname of its own (``[core] hostname_callable``), as on separate machines;
  they share the DAGs folder, the database, the broker and the secrets (JWT, Fernet key).

Every process runs in a process group of its own (:class:`~tests.support.processes.ProcessGroup`); the Airflow
side is a :class:`~tests.support.airflow.AirflowLauncher`.
:meth:`Cluster.stop` stops all of them (orderly, then SIGTERM, then SIGKILL), also when starting failed, and
returns whatever still runs (nothing, expected). :meth:`AirflowCluster.kill` is a machine dying: SIGKILL to
one component and all its children at once.

Needs the PostgreSQL server binaries (``/usr/lib/postgresql/*/bin`` or ``initdb`` on PATH), ``redis-server``
and the project's ``cluster`` extra (Celery provider, psycopg2, asyncpg): :func:`missing_requirements` says
what is absent. Used by ``tests/cluster/test_cluster.py`` and ``scripts/cluster.py`` (``make cluster``).
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI
from tests.support.airflow import (
    AirflowLauncher,
    airflow_env,
    api_server,
    celery_worker,
    dag_processor,
    scheduler,
    triggerer,
)
from tests.support.processes import Api, ProcessGroup, describe_process, free_port, tail

__all__ = [
    "AirflowCluster",
    "Cluster",
    "ClusterError",
    "ClusterSpec",
    "MetadataDB",
    "PostgresServer",
    "RedisServer",
    "missing_requirements",
]

SITE_DIR = Path(__file__).parent / "site"
#: Python packages of the ``cluster`` extra, by import name.
CLUSTER_MODULES = {"airflow.providers.celery": "apache-airflow-providers-celery", "psycopg2": "psycopg2-binary"}

Say = Callable[[str], None]


class ClusterError(AssertionError):
    """Something in the cluster failed; the message carries the components' log tails."""


def _quiet(_: str) -> None:
    """The default ``say``: print nothing."""


# ---- what is needed ------------------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """The directory of PostgreSQL's server binaries (newest major version first), or ``None``."""

    def major(path: Path) -> int:
        match = re.search(r"/(\d+)/bin$", str(path))
        return int(match.group(1)) if match else 0

    for candidate in sorted((p for p in Path("/usr/lib/postgresql").glob("*/bin")), key=major, reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("initdb")
    if found and (Path(found).parent / "pg_ctl").exists():
        return Path(found).parent
    return None


def redis_server() -> str | None:
    """The ``redis-server`` executable, or ``None``."""
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.access(p, os.X_OK)), None
    )


def missing_requirements() -> tuple[list[str], list[str]]:
    """What the cluster needs and this machine lacks: ``(binaries, python_packages)``."""
    binaries = []
    if postgres_bindir() is None:
        binaries.append("PostgreSQL server (initdb, pg_ctl)")
    if redis_server() is None:
        binaries.append("redis-server")
    packages = [pkg for module, pkg in CLUSTER_MODULES.items() if not _importable(module)]
    return binaries, packages


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


# ---- PostgreSQL and Redis --------------------------------------------------------------------------------


class PostgresServer:
    """
    A throwaway PostgreSQL cluster on 127.0.0.1: ``initdb`` in a new temporary directory, trust auth, no
    Unix socket, durability off (it is thrown away), started and stopped with ``pg_ctl``.

    PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` user (or ``nobody``).

    :param log_path: Where the server's output goes.
    :param database: The database to create.
    """

    def __init__(self, log_path: Path, database: str = "airflow") -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise ClusterError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.bindir = bindir
        self.log_path = log_path
        self.database = database
        self.superuser = "airflow"
        self.port = free_port()
        self.base: Path | None = None
        self.postmaster: Any = None  # psutil.Process once started
        self.run_as: str | None = None
        if os.geteuid() == 0:
            import pwd

            for name in ("postgres", "nobody"):
                with contextlib.suppress(KeyError):
                    pwd.getpwnam(name)
                    self.run_as = name
                    break

    def url(self, scheme: str = "postgresql+psycopg2") -> str:
        """The database's SQLAlchemy URL with ``scheme`` (no password: trust auth on loopback)."""
        return f"{scheme}://{self.superuser}@127.0.0.1:{self.port}/{self.database}"

    @property
    def data(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    def _run(self, *args: str, timeout: float = 60.0) -> None:
        user: dict[str, Any] = {}
        if self.run_as is not None:
            import pwd

            entry = pwd.getpwnam(self.run_as)
            user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        env = {"PATH": f"{self.bindir}{os.pathsep}{os.environ.get('PATH', '')}", "LC_ALL": "C", "LANG": "C"}
        with open(self.log_path, "ab") as out:
            # stdout is a file, never a pipe: the server started by `pg_ctl start` inherits it and outlives pg_ctl
            result = subprocess.run(
                [str(self.bindir / args[0]), *args[1:]],
                cwd=self.base,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
                start_new_session=True,
                **user,
            )
        if result.returncode != 0:
            raise ClusterError(f"PostgreSQL: `{' '.join(args[:2])}` failed ({result.returncode}):\n{self.tail()}")

    def start(self) -> None:
        """``initdb``, configure, ``pg_ctl start -w``, create the database."""
        import psutil

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.base = Path(tempfile.mkdtemp(prefix="cftunnel-pg-"))
        if self.run_as is not None:
            import pwd

            entry = pwd.getpwnam(self.run_as)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", self.superuser, "-A", "trust", "-E", "UTF8", "--no-sync")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "''",
            "max_connections": "300",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "log_min_messages": "warning",
        }
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# cftunnel test cluster\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "start")
        pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        self.postmaster = psutil.Process(pid)
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.superuser, self.database)

    def alive(self) -> list[Any]:
        """The server's processes still running (postmaster and its children)."""
        import psutil

        if self.postmaster is None:
            return []
        found = []
        with contextlib.suppress(psutil.Error):
            if self.postmaster.is_running() and self.postmaster.status() != psutil.STATUS_ZOMBIE:
                found.append(self.postmaster)
                found += self.postmaster.children(recursive=True)
        return found

    def stop(self) -> list[str]:
        """``pg_ctl stop -m fast``; SIGKILL whatever remains; delete the directory. Return the survivors."""
        import psutil

        if self.base is None:
            return []
        if self.alive():
            with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop", timeout=45)
        deadline = time.monotonic() + 5
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        for process in self.alive():
            with contextlib.suppress(psutil.Error):
                process.kill()
        time.sleep(0.5)
        survivors = [describe_process(p) for p in self.alive()]
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None
        return survivors

    def listening(self) -> list[str]:
        """``address:port`` the server listens on."""
        import psutil

        pids = {p.pid for p in self.alive()}
        return sorted(
            {
                f"{c.laddr.ip}:{c.laddr.port} (postgres)"
                for c in psutil.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN and c.pid in pids
            }
        )

    def tail(self, chars: int = 2000) -> str:
        """The end of the server's output."""
        return tail(self.log_path, chars)


class RedisServer:
    """
    Redis on 127.0.0.1 and a free port, in memory only (``--save '' --appendonly no``).

    :param log_path: Where its output goes.
    """

    def __init__(self, log_path: Path) -> None:
        executable = redis_server()
        if executable is None:
            raise ClusterError("redis-server not found (apt-get install redis-server)")
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="cftunnel-redis-"))
        command = [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--protected-mode", "yes", "--daemonize", "no", "--dir", str(self.workdir)]
        self.group = ProcessGroup(
            "redis", command, env={"PATH": os.environ.get("PATH", "")}, cwd=self.workdir, log_path=log_path
        )

    @property
    def url(self) -> str:
        """The broker URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, deadline: float = 20.0) -> None:
        """Start it and wait until it answers PING."""
        self.group.start()
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if not self.group.running():
                raise ClusterError(f"redis-server exited:\n{self.group.tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
            time.sleep(0.2)
        raise ClusterError(f"redis-server did not answer within {deadline:.0f} s:\n{self.group.tail()}")

    def stop(self) -> list[str]:
        """Stop it; return the survivors."""
        survivors = self.group.stop(grace=10.0) if self.group.proc is not None else []
        shutil.rmtree(self.workdir, ignore_errors=True)
        return survivors


# ---- Airflow ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterSpec:
    """
    The shape of the Airflow side.

    :param workers: Celery workers.
    :param worker_concurrency: Task slots per worker.
    :param worker_queues: The Celery queues every worker serves.
    :param triggerer_queues: One entry per triggerer: ``None`` (no ``--queues``) or the queues it runs
        (``"cloudflare"``); any entry other than ``None`` turns ``[triggerer] queues_enabled`` on.
    :param api_workers: The api-server's worker processes.
    """

    workers: int = 2
    worker_concurrency: int = 4
    worker_queues: tuple[str, ...] = ("default",)
    triggerer_queues: tuple[str | None, ...] = (None, None)
    api_workers: int = 1

    @property
    def queues_enabled(self) -> bool:
        """Whether triggers are registered with their task's queue."""
        return any(queue is not None for queue in self.triggerer_queues)


class MetadataDB:
    """Reads of Airflow's metadata database (psycopg2, autocommit: every query sees the latest state).

    :param dsn: A libpq connection string or URL (``postgresql://user@host:port/db``).
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: Any = None

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """Run one query; return its rows as dicts (reconnects once if the connection broke)."""
        import psycopg2
        import psycopg2.extras

        for attempt in (1, 2):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg2.connect(self.dsn, connect_timeout=10)
                    self._conn.autocommit = True
                with self._conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
                    cursor.execute(sql, params)
                    return [dict(row) for row in cursor.fetchall()]
            except psycopg2.OperationalError:
                self.close()
                if attempt == 2:
                    raise
                time.sleep(1.0)
        raise AssertionError("not reached")

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


class AirflowCluster(AirflowLauncher):
    """
    The Airflow components of the cluster, each with its own ``AIRFLOW_HOME`` under ``root``.

    :param root: A directory for the homes and the component logs.
    :param dags_folder: The DAGs folder all components read.
    :param env: Environment for every component (database, broker, secrets, connections...).
    :param spec: How many workers and triggerers, and their queues.
    """

    error = ClusterError

    def __init__(self, root: Path, dags_folder: Path, env: Mapping[str, str], spec: ClusterSpec) -> None:
        super().__init__(root / "component-logs")
        self.root = root
        self.spec = spec
        common = airflow_env(
            self.api_port,
            PYTHONPATH=os.pathsep.join(filter(None, [str(SITE_DIR), os.environ.get("PYTHONPATH")])),
            AIRFLOW__CORE__HOSTNAME_CALLABLE="cftunnel_cluster_site.hostname",
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__API__WORKERS=str(spec.api_workers),
            AIRFLOW__LOGGING__COLORED_CONSOLE_LOG="False",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__TRIGGERER__QUEUES_ENABLED=str(spec.queues_enabled),
            AIRFLOW__CELERY__WORKER_CONCURRENCY=str(spec.worker_concurrency),
        ) | dict(env)

        def add(name: str, args: list[str]) -> None:
            home = root / "homes" / name
            self.add(name, AirflowCLI(home, dags_folder, {**common, "CFTUNNEL_CLUSTER_HOSTNAME": name}), args)

        add("api-server", api_server(self.api_port))
        add("scheduler", scheduler())
        add("dag-processor", dag_processor())
        for n in range(1, spec.workers + 1):
            add(f"worker-{n}", celery_worker(f"worker-{n}@cluster", spec.worker_queues, spec.worker_concurrency))
        for n, queue in enumerate(spec.triggerer_queues, start=1):
            add(f"triggerer-{n}", triggerer(queue))

    @property
    def triggerers(self) -> list[str]:
        """The triggerers' names (= hostnames)."""
        return [name for name in self.components if name.startswith("triggerer-")]

    def cli(self, name: str = "scheduler") -> AirflowCLI:
        """Return the CLI of one component (its home and environment)."""
        return self.components[name].cli

    def migrate(self) -> None:
        """Run ``airflow db migrate`` once (the database is shared), with a bounded time."""
        cli = self.cli()
        cli.home.mkdir(parents=True, exist_ok=True)
        result = cli.run("db", "migrate", timeout=300)
        if result.returncode != 0:
            raise ClusterError(f"airflow db migrate failed ({result.returncode}):\n{result.stdout[-3000:]}")

    def stop(self, grace: float = 25.0, term_grace: float = 10.0) -> list[str]:
        """Stop every component (see :meth:`AirflowLauncher.stop`); return the survivors."""
        return super().stop(grace, term_grace)

    def logs(self, chars: int = 2000) -> str:
        """Return the tail of every component's output, for failure messages."""
        return super().logs(chars)


# ---- the whole ----------------------------------------------------------------------------------------------


@dataclass
class Cluster:
    """
    PostgreSQL, Redis and the Airflow components, started in that order and stopped in the reverse one.

    :param root: A fresh directory for homes and logs.
    :param dags_folder: The DAGs folder.
    :param env: Extra environment for the Airflow components (connections, DAG settings).
    :param spec: The Airflow side's shape.
    :param say: Called with a line for each step (``make cluster`` prints them).
    """

    root: Path
    dags_folder: Path
    env: Mapping[str, str] = field(default_factory=dict)
    spec: ClusterSpec = field(default_factory=ClusterSpec)
    say: Say = _quiet
    postgres: PostgresServer | None = None
    redis: RedisServer | None = None
    airflow: AirflowCluster | None = None
    db: MetadataDB | None = None
    #: Secrets the components share; none of them may appear in any output.
    secrets: list[str] = field(default_factory=list)
    survivors: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    stopped: bool = False

    def start(self, ready_dag_ids: Sequence[str] = (), deadline: float = 240.0) -> Cluster:
        """Start everything and wait until it is ready; on any failure stop what was started, then raise.

        :param ready_dag_ids: DAGs that must be parsed before the cluster counts as ready.
        :param deadline: Seconds for the Airflow components to become ready.
        """
        try:
            self._start(ready_dag_ids, deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, ready_dag_ids: Sequence[str], deadline: float) -> None:
        began = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        self.postgres = PostgresServer(self.root / "component-logs" / "postgres.log")
        self.postgres.start()
        self.say(
            f"PostgreSQL {self.postgres.bindir.parent.name} on 127.0.0.1:{self.postgres.port} (initdb in "
            f"{self.postgres.base})"
        )
        self.redis = RedisServer(self.root / "component-logs" / "redis.log")
        self.redis.start()
        self.say(f"Redis on 127.0.0.1:{self.redis.port} (broker; nothing saved to disk)")
        self.db = MetadataDB(self.postgres.url("postgresql"))
        fernet_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        jwt_secret, api_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.secrets = [fernet_key, jwt_secret, api_secret]
        env = {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url(),
            "AIRFLOW__CELERY__BROKER_URL": self.redis.url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.postgres.url("postgresql+psycopg2"),
            "AIRFLOW__CORE__FERNET_KEY": fernet_key,
            "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
            "AIRFLOW__API__SECRET_KEY": api_secret,
            **self.env,
        }
        self.airflow = AirflowCluster(self.root, self.dags_folder, env, self.spec)
        self.timings["services_s"] = time.monotonic() - began
        step = time.monotonic()
        self.airflow.migrate()
        self.timings["migrate_s"] = time.monotonic() - step
        self.say(f"airflow db migrate on PostgreSQL: {self.timings['migrate_s']:.0f} s")
        step = time.monotonic()
        self.airflow.start()
        names = ", ".join(self.airflow.components)
        self.say(f"started {names} (each its own AIRFLOW_HOME and process group; API on {self.airflow.api_url})")
        self.wait_ready(ready_dag_ids, deadline)
        self.timings["airflow_ready_s"] = time.monotonic() - step
        self.timings["startup_s"] = time.monotonic() - began

    def wait_ready(self, dag_ids: Sequence[str], deadline: float) -> None:
        """Wait until the API answers, scheduler and dag-processor are healthy, every triggerer heartbeats,
        every Celery worker is ready and the DAGs are parsed; raise :class:`ClusterError` otherwise."""
        assert self.airflow is not None
        assert self.db is not None
        api = Api(self.airflow.api_url)
        end = time.monotonic() + deadline
        last = "nothing yet"
        workers = [n for n in self.airflow.components if n.startswith("worker-")]
        try:
            while time.monotonic() < end:
                self.airflow.check()
                self.airflow.track()
                try:
                    health = api.get("/api/v2/monitor/health")
                    states = {k: (health.get(k) or {}).get("status") for k in ("scheduler", "dag_processor")}
                    triggerers = self.live_triggerers()
                    ready_workers = [n for n in workers if self.airflow.log_line_seen(n, r"@cluster ready\.")]
                    parsed = {r["dag_id"] for r in self.db.rows("SELECT dag_id FROM serialized_dag")}
                    errors = self.db.rows("SELECT filename, stacktrace FROM import_error")
                    last = (
                        f"health {states}, triggerers {sorted(triggerers.values())}, workers ready "
                        f"{ready_workers}, DAGs parsed {sorted(parsed)}"
                    )
                    if errors:
                        raise ClusterError(f"the DAGs folder has import errors: {errors}")
                    if (
                        all(s == "healthy" for s in states.values())
                        and sorted(triggerers.values()) == sorted(self.airflow.triggerers)
                        and len(ready_workers) == len(workers)
                        and set(dag_ids) <= parsed
                    ):
                        return
                except (*api.errors, ValueError) as error:  # not up yet
                    last = f"{type(error).__name__}: {error}"
                except Exception as error:  # the database not migrated yet by a component, and the like
                    if isinstance(error, ClusterError):
                        raise
                    last = f"{type(error).__name__}: {error}"
                time.sleep(1.0)
        finally:
            api.close()
        raise ClusterError(f"the cluster was not ready within {deadline:.0f} s ({last}):\n{self.airflow.logs()}")

    def live_triggerers(self, threshold: float = 30.0) -> dict[int, str]:
        """``{job id: hostname}`` of the triggerers that heartbeat within ``threshold`` seconds."""
        assert self.db is not None
        rows = self.db.rows(
            "SELECT id, hostname FROM job WHERE job_type = 'TriggererJob' AND state = 'running' AND end_date IS NULL"
            " AND latest_heartbeat > now() - make_interval(secs => %s)",
            threshold,
        )
        return {int(row["id"]): str(row["hostname"]) for row in rows}

    def listening(self) -> list[str]:
        """Every socket any process of the cluster listens on."""
        found = []
        if self.airflow is not None:
            found += self.airflow.listening()
        if self.redis is not None and self.redis.group.proc is not None:
            found += [entry.split(" ")[0] + " (redis)" for entry in self.redis.group.listening()]
        if self.postgres is not None:
            found += self.postgres.listening()
        return sorted(set(found))

    def logs(self, chars: int = 2000) -> str:
        """Log tails of every component (Airflow, Redis, PostgreSQL)."""
        if self.airflow is not None:
            return self.airflow.logs(chars)
        return "\n".join(
            f"--- {p.name} ---\n{tail(p, chars)}" for p in sorted((self.root / "component-logs").glob("*.log"))
        )

    def stop(self) -> list[str]:
        """Stop Airflow, then Redis, then PostgreSQL; return every process still running afterwards."""
        if self.stopped:
            return self.survivors
        self.stopped = True
        began = time.monotonic()
        survivors: list[str] = []
        if self.db is not None:
            self.db.close()
        if self.airflow is not None:
            survivors += self.airflow.stop()
        if self.redis is not None:
            survivors += [f"redis: {s}" for s in self.redis.stop()]
        if self.postgres is not None:
            survivors += [f"postgres: {s}" for s in self.postgres.stop()]
        survivors += self.leftovers()
        self.survivors = sorted(set(survivors))
        self.timings["stop_s"] = time.monotonic() - began
        self.say(f"stopped everything in {self.timings['stop_s']:.0f} s; processes left: {len(self.survivors)}")
        return self.survivors

    def leftovers(self) -> list[str]:
        """Processes of this cluster still running: any process group started, tracked descendants, and any
        process whose command line or environment names this cluster's directories."""
        import psutil

        found: dict[int, str] = {}
        groups = list(self.airflow.started) if self.airflow is not None else []
        if self.redis is not None:
            groups.append(self.redis.group)
        for group in groups:
            for process in group.alive():
                found[process.pid] = describe_process(process)
        if self.postgres is not None:
            for process in self.postgres.alive():
                found[process.pid] = describe_process(process)
        marker = str(self.root)
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.pid == os.getpid() or process.status() == psutil.STATUS_ZOMBIE:
                    continue
                if any(marker in part for part in process.cmdline()) or marker in process.environ().get(
                    "AIRFLOW_HOME", ""
                ):
                    found[process.pid] = describe_process(process)
        return sorted(found.values())

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
