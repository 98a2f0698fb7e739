"""Process groups for tests and scripts that run servers on this machine (Airflow, PostgreSQL, Redis...).

* :class:`ProcessGroup`: one command started in a session (process group) of its own, its descendants
  tracked, and stopped for sure: the orderly signal first, then SIGTERM, then SIGKILL to the group and to
  every descendant (task runners lead process groups of their own, so ``killpg`` alone misses them). A
  machine dying is :meth:`ProcessGroup.kill`.
* :func:`stop_popen_group`: the same orderly stop for a ``subprocess.Popen`` started with
  ``start_new_session=True`` (e.g. one whose output the caller reads through a pipe).
* :class:`Api`: a few reads of Airflow's REST API.
* :func:`free_port`, :func:`json_rows` (the JSON in a CLI command's output, whatever log lines surround it),
  :func:`tail` (the end of a log file, for failure messages), :func:`describe_process`.

Standard library and ``psutil`` (an Airflow dependency); ``httpx`` for :class:`Api`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Api", "ProcessGroup", "describe_process", "free_port", "json_rows", "stop_popen_group", "tail"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def json_rows(output: str, key: str) -> list[dict[str, Any]]:
    """The JSON list of objects holding ``key`` in a command's output, whatever log lines surround it.

    :param output: The command's output.
    :param key: A key every object of the wanted list has.
    :raises AssertionError: If there is no such list.
    """
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\[", output):
        try:
            value, _ = decoder.raw_decode(output, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, list) and value and all(isinstance(row, dict) and key in row for row in value):
            return value
    raise AssertionError(f"no JSON list of objects with {key!r} in the output:\n{output[-3000:]}")


def tail(path: Path, chars: int = 4000) -> str:
    """The last ``chars`` characters of a text file (or why it could not be read)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 4 * chars))
            return handle.read().decode(errors="replace")[-chars:]
    except OSError as error:
        return f"<{path}: {error}>"


def describe_process(process: Any) -> str:
    """``pid N 'command line'`` of a psutil process, even if it is gone meanwhile."""
    try:
        return f"pid {process.pid} {' '.join(process.cmdline())[:160]!r}"
    except Exception:
        return f"pid {process.pid}"


class ProcessGroup:
    """
    One command in a new session (so a process group of its own), its output in a log file.

    :param name: A short name for messages (``scheduler``, ``triggerer-1``...).
    :param command: The command and its arguments.
    :param env: The complete environment.
    :param cwd: The working directory.
    :param log_path: Where stdout and stderr go.
    :param user: Run as this user (a name), e.g. PostgreSQL's server, which refuses to run as root.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.user = user
        self.proc: subprocess.Popen[bytes] | None = None
        self.pgid: int | None = None
        self.tracked: dict[int, Any] = {}
        self.stopped = False
        self.killed_at: float | None = None
        #: How the last :meth:`stop` ended it: ``orderly``, ``SIGTERM`` or ``SIGKILL``.
        self.stop_stage = ""
        #: What was still running when SIGKILL had to be sent.
        self.needed_sigkill: list[str] = []

    @property
    def pid(self) -> int | None:
        """The leader's pid (``None`` before :meth:`start`)."""
        return None if self.proc is None else self.proc.pid

    def start(self) -> ProcessGroup:
        """Start the command as the leader of a new session."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        extra: dict[str, Any] = {}
        if self.user is not None:
            import pwd

            entry = pwd.getpwnam(self.user)
            extra = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **extra,
            )
        self.pgid = self.proc.pid  # a session leader leads its process group too
        return self

    def running(self) -> bool:
        """Whether the leader still runs (reaping it if it exited)."""
        return self.proc is not None and self.proc.poll() is None

    def track(self) -> None:
        """Remember every descendant now, to stop it later even if it left the process group."""
        import psutil

        if self.proc is None:
            return
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.proc.pid)
            self.tracked.setdefault(root.pid, root)
            for child in root.children(recursive=True):
                self.tracked.setdefault(child.pid, child)

    def alive(self) -> list[Any]:
        """Processes of the group, or tracked descendants, still running (zombies count as gone: orphans
        wait for init to reap them, which some machines' init does lazily)."""
        import psutil

        found: dict[int, Any] = {}
        if self.pgid is not None:
            for process in psutil.process_iter():
                with contextlib.suppress(psutil.Error, OSError):
                    if os.getpgid(process.pid) == self.pgid:
                        found[process.pid] = process
        for process in self.tracked.values():
            with contextlib.suppress(psutil.Error):
                if process.is_running():  # also checks that the pid was not reused
                    found.setdefault(process.pid, process)
        result = []
        for process in found.values():
            with contextlib.suppress(psutil.Error):
                if process.status() != psutil.STATUS_ZOMBIE:
                    result.append(process)
        return result

    def _signal_all(self, signum: int) -> None:
        import psutil

        if self.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signum)
        for process in self.alive():
            with contextlib.suppress(psutil.Error):
                process.send_signal(signum)

    def kill(self) -> float:
        """SIGKILL the whole group and every tracked descendant at once (a machine dying); return when."""
        self.track()
        self.killed_at = time.time()
        self._signal_all(signal.SIGKILL)
        self.wait_gone(10.0)
        return self.killed_at

    def begin_stop(self, signum: int = signal.SIGTERM) -> None:
        """Send the orderly stop signal to the leader only (it stops its own children)."""
        self.track()
        if self.running():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)

    def finish_stop(self, grace: float, term_grace: float = 10.0) -> list[str]:
        """Wait up to ``grace`` s for the orderly stop, then SIGTERM the group, then SIGKILL it.

        :returns: Descriptions of the processes still running afterwards (none expected).
        """
        if self.proc is None:
            return []
        self.stopped = True
        self.stop_stage = "orderly"
        if not self.wait_gone(grace):
            self.stop_stage = "SIGTERM"
            self._signal_all(signal.SIGTERM)
            if not self.wait_gone(term_grace):
                self.stop_stage = "SIGKILL"
                self.needed_sigkill = [describe_process(p) for p in self.alive()]
                self._signal_all(signal.SIGKILL)
                self.wait_gone(10.0)
        return [describe_process(p) for p in self.alive()]

    def stop(self, grace: float = 20.0, signum: int = signal.SIGTERM) -> list[str]:
        """:meth:`begin_stop` then :meth:`finish_stop`; return the survivors' descriptions."""
        self.begin_stop(signum)
        return self.finish_stop(grace)

    def wait_gone(self, seconds: float) -> bool:
        """Wait until the leader is reaped and no process of the group runs; return whether that happened."""
        if self.proc is None:
            return True
        deadline = time.monotonic() + seconds
        while True:
            self.proc.poll()  # reap the leader as soon as it exits
            if self.proc.returncode is not None and not self.alive():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    def listening(self) -> list[str]:
        """``address:port (process)`` of every socket the group listens on."""
        import psutil

        self.track()
        found = []
        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.pid in self.tracked:
                with contextlib.suppress(psutil.Error):
                    found.append(f"{conn.laddr.ip}:{conn.laddr.port} ({self.tracked[conn.pid].name()})")
        return sorted(set(found))

    def tail(self, chars: int = 2500) -> str:
        """The end of the group's output."""
        return tail(self.log_path, chars)


def stop_popen_group(process: subprocess.Popen[Any] | None, grace: float = 10.0) -> str:
    """
    Stop a process that leads its own process group: SIGTERM to the group, then SIGKILL after ``grace`` s.

    :param process: A process started with ``start_new_session=True`` (``None``: nothing to do).
    :param grace: Seconds the group has to exit after SIGTERM.
    :returns: How it ended: ``exited`` (before any signal), ``SIGTERM`` or ``SIGKILL``.
    """
    if process is None or process.poll() is not None:
        return "exited"
    stage = "SIGTERM"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        stage = "SIGKILL"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10.0)
    return stage


class Api:
    """A few reads of Airflow's REST API (all users are admins in these private installations).

    :param base_url: ``http://127.0.0.1:PORT``.
    """

    def __init__(self, base_url: str) -> None:
        import httpx

        self.client = httpx.Client(base_url=base_url, timeout=30.0, trust_env=False)
        self.errors = (httpx.TransportError, httpx.HTTPStatusError)

    def get(self, path: str, *, tries: int = 1, **params: Any) -> Any:
        """GET ``path`` and return its JSON; retry transport and HTTP errors ``tries - 1`` times, 2 s apart."""
        for attempt in range(tries):
            try:
                response = self.client.get(path, params=params)
                response.raise_for_status()
                return response.json()
            except self.errors:
                if attempt + 1 == tries:
                    raise
                time.sleep(2.0)
        raise AssertionError("not reached")

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()
