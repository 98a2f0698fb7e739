"""The simulator in a process of its own: :class:`SimulatorProcess` starts its command line and stops it.

For a benchmark, a soak test or a demo that must not share its process (its memory, its GIL, its event loop)
with the simulator. The process runs ``python -m airflow_provider_cftunnel.testing`` in a process group of its
own; :meth:`SimulatorProcess.start` returns once the simulator has written its ready file, and
:meth:`SimulatorProcess.stop` (or the end of the ``with`` block, on an error too) sends SIGTERM to the group,
then SIGKILL. POSIX only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_provider_cftunnel.testing.connection import AirflowConnectionMixin, StartStopMixin

__all__ = ["SimulatorProcess", "SimulatorProcessError"]

#: The directory that holds the ``airflow_provider_cftunnel`` package: the child imports the same copy.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
#: What the ready file holds, copied to the attributes of the same names.
_READY_FIELDS = (
    "base_url",
    "control_url",
    "host",
    "port",
    "pid",
    "api_token",
    "account_token",
    "global_key_email",
    "global_key",
    "account_id",
    "tunnel_id",
    "connector_id",
)
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


class SimulatorProcessError(RuntimeError):
    """
    The simulator process did not start, or refused a control request.

    The message says why; a start failure ends with the tail of the process's log.
    """


class SimulatorProcess(StartStopMixin, AirflowConnectionMixin):
    """
    The simulator's command line in a process group of its own, as a context manager.

    ::

        with SimulatorProcess({"up_after": 0}) as sim:
            env = sim.airflow_env()          # AIRFLOW_CONN_CLOUDFLARE_DEFAULT for the simulator
            sim.control("POST", "/advance", {"seconds": 60})

    Once started, the attributes hold what the ready file says: :attr:`base_url`, :attr:`control_url`,
    :attr:`host`, :attr:`port`, :attr:`pid`, :attr:`api_token`, :attr:`account_token`,
    :attr:`global_key_email`, :attr:`global_key`, :attr:`account_id`, :attr:`tunnel_id`, :attr:`connector_id`
    (all of it in :attr:`info`); :meth:`connection_json` and :meth:`airflow_env` work as on
    :class:`~airflow_provider_cftunnel.testing.CloudflareSimulator`.

    :param scenario: ``None`` (the default scenario), a scenario dict (written to a temporary file) or the path
        of a JSON scenario file.
    :param host: the address to bind; keep it on loopback.
    :param port: the port to bind; ``0`` picks a free one.
    :param args: more command-line arguments, e.g. ``["--fleet", "prod-web-:1000"]``.
    :param env: the child's environment (default: this process's); the package's directory is put first on
        its ``PYTHONPATH``, so the child runs the same code as this process.
    :param cwd: the child's working directory (default: this process's).
    :param log_path: where the child's stdout and stderr go (truncated first); default a temporary file,
        removed by :meth:`stop`.
    :param python: the interpreter (default :data:`sys.executable`).
    :param start_timeout: seconds :meth:`start` waits for the ready file.
    :param stop_timeout: seconds :meth:`stop` waits after SIGTERM, then after SIGKILL.
    """

    def __init__(
        self,
        scenario: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        python: str | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.scenario = scenario
        self.args = list(args)
        self.env = env
        self.cwd = cwd
        self.python = python or sys.executable
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._given_log = Path(log_path) if log_path is not None else None
        self._tmp: Path | None = None
        #: the running process (``None`` before :meth:`start`).
        self.process: subprocess.Popen[bytes] | None = None
        #: the command line it runs (set by :meth:`start`).
        self.command: list[str] = []
        #: where its output goes (set by :meth:`start`).
        self.log_path: Path | None = self._given_log
        #: the ready file's JSON (empty before :meth:`start`).
        self.info: dict[str, Any] = {}
        self.host, self.port, self.pid = host, port, 0
        #: ``http://HOST:PORT/client/v4`` and ``http://HOST:PORT/__simulator__``.
        self.base_url = self.control_url = ""
        self.api_token: str | None = None
        self.account_token: str | None = None
        self.global_key_email: str | None = None
        self.global_key: str | None = None
        self.account_id: str | None = None
        self.tunnel_id: str | None = None
        self.connector_id: str | None = None

    # ---- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> SimulatorProcess:
        """Start the process and wait for its ready file.

        :returns: the object itself.
        :raises SimulatorProcessError: if the process exits first (e.g. an invalid scenario: exit status 2) or
            is not ready within ``start_timeout`` seconds; the message ends with its log's tail. Nothing is
            left running.
        :raises RuntimeError: if it was started already.
        """
        if self.process is not None:
            raise RuntimeError("the simulator process was started already")
        self._tmp = Path(tempfile.mkdtemp(prefix="cftunnel-simulator-"))
        ready = self._tmp / "ready.json"
        self.log_path = self._given_log or self._tmp / "simulator.log"
        self.command = [self.python, "-m", "airflow_provider_cftunnel.testing", "--host", self.host]
        self.command += ["--port", str(self.port), "--ready-file", str(ready)]
        if isinstance(self.scenario, Mapping):
            scenario_file = self._tmp / "scenario.json"
            scenario_file.write_text(json.dumps(self.scenario), encoding="utf-8")
            self.command += ["--scenario", str(scenario_file)]
        elif self.scenario is not None:
            self.command += ["--scenario", os.fspath(self.scenario)]
        self.command += self.args
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
                self.process = subprocess.Popen(
                    self.command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.cwd,
                    start_new_session=True,
                )
            self.pid = self.process.pid
            self._wait_until_ready(self.process, ready)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self, process: subprocess.Popen[bytes], ready: Path) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not ready.exists():  # the simulator writes it atomically: it exists, it is whole
            status = process.poll()
            if status is not None:
                raise SimulatorProcessError(self._failure(f"exited with status {status} before it was ready"))
            if time.monotonic() > deadline:
                raise SimulatorProcessError(self._failure(f"was not ready within {self.start_timeout:g} s"))
            time.sleep(0.02)
        self.info = json.loads(ready.read_text(encoding="utf-8"))
        for name in _READY_FIELDS:
            setattr(self, name, self.info[name])

    def _failure(self, what: str) -> str:
        return f"the Cloudflare simulator {what}: {' '.join(self.command)}\n--- {self.log_path} ---\n{self.log_tail()}"

    def stop(self) -> int | None:
        """
        Stop the process group: SIGTERM, then SIGKILL after ``stop_timeout`` seconds.

        Remove the temporary files. Safe to call twice, and on a process that exited by itself.

        :returns: the process's exit status (``0`` after a clean SIGTERM), or ``None`` if it never started.
        """
        process = self.process
        if process is not None and process.poll() is None:  # not reaped yet: its group id is still its own
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=self.stop_timeout)
            except ProcessLookupError:
                process.wait(timeout=self.stop_timeout)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        return None if process is None else process.returncode

    @property
    def running(self) -> bool:
        """Whether the process is running."""
        return self.process is not None and self.process.poll() is None

    def __repr__(self) -> str:
        state = f"pid {self.pid}, listening on {self.base_url}" if self.running else "not running"
        return f"<SimulatorProcess {state}>"

    # ---- talking to it --------------------------------------------------------------------------------

    def control(self, method: str, route: str, body: Any = None, *, timeout: float = 30.0) -> Any:
        """Call a control endpoint and return its JSON answer, e.g. ``control("GET", "/health")``.

        :param method: the HTTP method.
        :param route: the route after ``/__simulator__``, e.g. ``/tunnel-status``.
        :param body: the JSON body, if any.
        :param timeout: seconds.
        :raises SimulatorProcessError: if the simulator refuses the request (the message is its error).
        """
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.control_url + route, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with _NO_PROXY.open(request, timeout=timeout) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            with exc:
                detail = exc.read().decode(errors="replace")
            raise SimulatorProcessError(f"{method} {route}: HTTP {exc.code}: {detail}") from exc

    def log_tail(self, chars: int = 4000) -> str:
        """Return the last ``chars`` characters of the process's output (empty if there is none).

        :param chars: how many.
        """
        if self.log_path is None:
            return ""
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - chars))
                return log.read().decode(errors="replace")
        except OSError:
            return ""
