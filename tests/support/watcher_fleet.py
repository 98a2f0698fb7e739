"""A fleet of health watchers in a real Airflow: one asset per tunnel, each with its own watcher, and one DAG.

:class:`WatcherFleet` starts Airflow's four components on loopback
(:class:`~tests.support.airflow.LocalAirflow`, SQLite) with ``tests/integration/watcher_dags/cftunnel_watcher_fleet.py``
alone in the DAGs folder, watching the tunnels of a simulated fleet, and gives what a test or a benchmark
measures: the tunnel requests per poll interval (from the simulator's request log), the asset events per asset,
and the time from a tunnel's status change to the start of the run reacting to it. Used by
``tests/integration/test_watcher_fleet.py`` and ``bench/watchers.py``; it needs no pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.airflow import LocalAirflow, LocalAirflowError
from tests.support.processes import Api

if TYPE_CHECKING:
    from airflow_provider_cftunnel.testing import CloudflareSimulator

__all__ = ["DAG_ID", "OWN_POLL_TRIGGER", "TUNNEL_PATH", "WatcherFleet"]

ROOT = Path(__file__).resolve().parents[2]
#: The baseline: every watcher polls on its own (how watchers worked before they shared a poll).
OWN_POLL_TRIGGER = "tests.support.own_poll_trigger.OwnPollHealthTrigger"
DAG_FILE = ROOT / "tests" / "integration" / "watcher_dags" / "cftunnel_watcher_fleet.py"
DAG_ID = "cftunnel_watcher_fleet_reaction"
#: A tunnel read: the list, or one tunnel by id.
TUNNEL_PATH = re.compile(r"/accounts/[0-9a-f]{32}/cfd_tunnel(/[0-9a-f-]{36})?$")


class WatcherFleet:
    """
    Airflow with ``len(fleet)`` health watchers, one per tunnel, polling every ``interval`` seconds.

    :param home: A fresh directory (``AIRFLOW_HOME`` and the DAGs folder go under it).
    :param sim: The simulator holding the fleet.
    :param fleet: ``[(name, tunnel_id), ...]``: one asset and one watcher each.
    :param interval: Every watcher's ``poll_interval``.
    :param trigger: Another trigger class's dotted path (e.g. :data:`OWN_POLL_TRIGGER`), or ``None``.
    :param env: More environment for every component.
    """

    def __init__(
        self,
        home: Path,
        sim: CloudflareSimulator,
        fleet: list[tuple[str, str]],
        interval: float,
        trigger: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.sim = sim
        self.fleet = fleet
        self.interval = interval
        dags = home / "dags"
        dags.mkdir(parents=True)
        shutil.copy(DAG_FILE, dags / DAG_FILE.name)
        fleet_file = home / "fleet.json"
        fleet_file.write_text(json.dumps(fleet), encoding="utf-8")
        extra = {"CFTUNNEL_WATCHER_TRIGGER": trigger} if trigger else {}
        if trigger:  # the dag-processor and the triggerer import it from the repository
            pythonpath = [str(home / "airflow" / "pythonpath"), str(ROOT), os.environ.get("PYTHONPATH", "")]
            extra["PYTHONPATH"] = os.pathsep.join(filter(None, pythonpath))
        self.stack = LocalAirflow(
            home / "airflow",
            dags,
            {
                "AIRFLOW_CONN_CLOUDFLARE_DEFAULT": sim.connection_json(),
                "CFTUNNEL_WATCHER_FLEET": str(fleet_file),
                "CFTUNNEL_WATCHER_INTERVAL": str(interval),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                # restarted watchers of one key join their shared stream before its first poll
                "AIRFLOW__TRIGGERER__SHARED_STREAM_COHORT_GRACE_PERIOD": "2",
                "AIRFLOW__CORE__PARALLELISM": "8",
                # room for every watcher: at exactly its capacity a triggerer logs "reached the maximum" every loop
                "AIRFLOW__TRIGGERER__CAPACITY": str(max(1000, 2 * len(fleet))),
                **extra,
                **(env or {}),
            },
        )
        self.api: Api | None = None
        self.flips: list[dict[str, Any]] = []

    def start(self, timeout: float = 240.0) -> float:
        """Migrate, start the components, wait until the DAG is parsed, unpause it; return the seconds taken."""
        started = time.monotonic()
        self.stack.migrate()
        self.stack.start()
        self.api = Api(self.stack.api_url)
        self.stack.wait_until_up(self.api, (DAG_ID,), timeout)
        self.stack.set_paused(self.api, DAG_ID, False)
        return time.monotonic() - started

    def wait(self, what: str, timeout: float, done: Callable[[], Any]) -> Any:
        """Poll ``done`` every 0.5 s until it returns something true; raise with the logs on a timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self.stack.check()
            if result := done():
                return result
            if time.monotonic() > deadline:
                raise LocalAirflowError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.stack.logs()}")
            time.sleep(0.5)

    def baselines(self) -> int:
        """How many watchers have logged their baseline in the triggerer's log."""
        log = self.stack.log_dir / "triggerer.log"
        try:
            return log.read_text(errors="replace").count("Baseline of 1 tunnel(s)")
        except OSError:
            return 0

    def tunnel_requests(self, after: float = 0.0, before: float = float("inf")) -> list[Any]:
        """The simulator's tunnel reads (lists and reads by id) between two ``time.time()`` instants."""
        return [r for r in self.sim.requests if TUNNEL_PATH.search(r.path) and after < r.time <= before]

    def per_interval(self, seconds: float) -> dict[str, Any]:
        """Watch the request log for ``seconds`` from now: tunnel requests per poll interval (mean, busiest)."""
        start = time.time()
        time.sleep(seconds)
        end = time.time()
        requests = self.tunnel_requests(start, end)
        buckets = [0] * max(1, int(seconds // self.interval))
        for r in requests:
            index = int((r.time - start) // self.interval)
            if index < len(buckets):
                buckets[index] += 1
        return {
            "seconds": round(end - start, 1),
            "requests": len(requests),
            "mean_per_interval": round(len(requests) * self.interval / (end - start), 2),
            "busiest_interval": max(buckets),
            "by_id": sum(1 for r in requests if not r.path.endswith("/cfd_tunnel")),
            "statuses": sorted({r.status for r in requests}),
        }

    def runs(self) -> list[dict[str, Any]]:
        """The reacting DAG's runs (REST API), oldest first; empty while the API server is busy."""
        assert self.api is not None
        try:
            return list(self.api.get(f"/api/v2/dags/{DAG_ID}/dagRuns", order_by="id", limit=100)["dag_runs"])
        except self.api.errors:
            return []

    def flip(self, index: int, status: str, timeout: float = 120.0) -> dict[str, Any]:
        """
        Set tunnel ``index``'s status and wait for the run reacting to it to start; return the timings.

        :param index: Which tunnel of the fleet.
        :param status: Its new status.
        :param timeout: Seconds to wait for the run.
        """
        name, tunnel_id = self.fleet[index]
        before = len(self.runs())
        changed_at = time.time()
        self.sim.set_tunnel_status(tunnel_id, status)

        def started() -> dict[str, Any] | None:
            runs = self.runs()
            if len(runs) > before and runs[before].get("start_date"):
                return runs[before]
            return None

        run = self.wait(f"the run reacting to {name} going {status}", timeout, started)
        start = _epoch(run["start_date"])
        flip = {"tunnel": name, "status": status, "run_id": run["dag_run_id"], "to_run_start_s": start - changed_at}
        self.flips.append(flip)
        return flip

    def flip_many(self, indices: list[int], status: str, spacing: float, timeout: float) -> list[dict[str, Any]]:
        """
        Set the status of several tunnels, ``spacing`` seconds apart, and wait until a started run holds each
        change's asset event (Airflow may batch events that arrive together into one run); return
        :meth:`reactions`.

        :param indices: Which tunnels of the fleet.
        :param status: Their new status.
        :param spacing: Seconds between two changes (so they fall at different points of the poll interval).
        :param timeout: Seconds to wait for the runs after the last change.
        """
        for index in indices:
            self.flips.append({"tunnel": self.fleet[index][0], "status": status, "changed_at": time.time()})
            self.sim.set_tunnel_status(self.fleet[index][1], status)
            time.sleep(spacing)

        def reacted() -> list[dict[str, Any]] | None:
            reactions = self.reactions()
            return reactions if all(r["to_run_start_s"] is not None for r in reactions) else None

        return self.wait(f"the runs reacting to {len(indices)} tunnels going {status}", timeout, reacted)

    def reactions(self) -> list[dict[str, Any]]:
        """
        For every change of :meth:`flip_many`: seconds from the change to the start of the first run holding an
        asset event of that tunnel made after it (``None`` while there is none); read from Airflow's database.
        """
        uri = f"file:{self.stack.home / 'airflow.db'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=60)) as db:
            rows = db.execute(
                "SELECT a.name, r.start_date FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                "JOIN dagrun_asset_event x ON x.event_id = e.id JOIN dag_run r ON r.id = x.dag_run_id "
                "WHERE r.dag_id = ? AND r.start_date IS NOT NULL",
                (DAG_ID,),
            ).fetchall()
        started: dict[str, list[float]] = {}
        for asset, start in rows:
            started.setdefault(asset, []).append(_epoch(start))
        out = []
        for flip in self.flips:
            if "changed_at" not in flip:
                continue
            later = [t for t in started.get(f"{flip['tunnel']}-health", []) if t >= flip["changed_at"]]
            out.append({**flip, "to_run_start_s": round(min(later) - flip["changed_at"], 2) if later else None})
        return out

    def database(self) -> dict[str, Any]:
        """Asset events per asset name, and the reacting runs with their events (read once the stack stopped)."""
        with sqlite3.connect(self.stack.home / "airflow.db") as db:
            events = [
                {"id": event_id, "asset": name, "payload": json.loads(extra).get("payload")}
                for event_id, name, extra in db.execute(
                    "SELECT e.id, a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id ORDER BY e.id"
                )
            ]
            runs = [
                {
                    "run_id": run_id,
                    "run_type": run_type,
                    "state": state,
                    "events": [
                        e for (e,) in db.execute("SELECT event_id FROM dagrun_asset_event WHERE dag_run_id = ?", (pk,))
                    ],
                }
                for pk, run_id, run_type, state in db.execute(
                    "SELECT id, run_id, run_type, state FROM dag_run WHERE dag_id = ? ORDER BY id", (DAG_ID,)
                )
            ]
        return {"events": events, "runs": runs}

    def stop(self) -> list[str]:
        """Stop every process started; return what survived (nothing, expected)."""
        if self.api is not None:
            self.api.close()
            self.api = None
        return self.stack.stop()


def _epoch(value: str | datetime) -> float:
    """A database or API timestamp (UTC) as ``time.time()`` seconds."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
