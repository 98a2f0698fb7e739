"""The cluster scenario: 100 deferrable sensors over 10 tunnels on a distributed Airflow, one triggerer killed.

Run by ``tests/cluster/test_cluster.py`` (which asserts on :class:`StoryResult`) and ``scripts/cluster.py``
(``make cluster``, which prints every step). The story, on the cluster of ``tests/cluster/harness.py``
(PostgreSQL, Redis, CeleryExecutor with two workers, two triggerers) against the Cloudflare simulator:

1. The simulator serves 10 tunnels (``cluster-00`` ... ``cluster-09``) of 10 connectors each, all absent, and
   emulates Cloudflare's per-user pool (:attr:`StoryConfig.pool`); the connection's rate-limit extras give
   each triggerer its share of it (:attr:`StoryConfig.share`).
2. The DAG ``cftunnel_cluster`` (``dags/cftunnel_cluster.py``) has one ``CloudflareTunnelConnectorSensor(
   deferrable=True, poke_interval=5)`` per connector. A run is triggered; every sensor pokes once on a Celery
   worker and defers; the triggers spread over both triggerers. Beside them the asset watcher of
   ``dags/cftunnel_cluster_watch.py`` (``CloudflareTunnelHealthTrigger``) watches the same tunnels.
3. With every sensor deferred, the story measures the ``/connections`` requests for ``steady`` seconds, then
   SIGKILLs one triggerer (the one running the health watcher, else the one with the most sensors) with
   every process it had: its machine died. Airflow reassigns its triggers to the survivor once its heartbeat
   is stale (``[triggerer] triggerer_health_check_threshold``, 30 s); the story times that, and when each
   moved trigger logs its first poll outcome on the survivor, then measures the requests again.
4. The tunnels come up one after another (``stagger`` s apart); every sensor must fire, resume on a worker and
   succeed; the watcher must fire one event per tunnel (inactive -> healthy), handled by runs of
   ``cftunnel_cluster_react`` (none twice; Airflow 3.3.2 may keep the last ones of a burst for the next change).

:func:`run_story` returns the figures and the list of problems found (empty when all is well); the cluster is
stopped (and checked for leftover processes) before it returns, whatever happened.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re
import statistics
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_provider_cftunnel.testing import CloudflareSimulator
from tests.cluster.harness import Cluster, ClusterError, ClusterSpec

__all__ = ["DAG_ID", "REACT_DAG_ID", "StoryConfig", "StoryResult", "iter_log_text", "run_story"]

DAGS_FOLDER = Path(__file__).parent / "dags"
DAG_ID = "cftunnel_cluster"
REACT_DAG_ID = "cftunnel_cluster_react"
ASSET_NAME = "cftunnel-cluster-health"
SENSOR_TRIGGER = "airflow_provider_cftunnel.triggers.tunnel.CloudflareTunnelConnectorTrigger"
HEALTH_TRIGGER = "airflow_provider_cftunnel.triggers.health.CloudflareTunnelHealthTrigger"
ACCOUNT_ID = "c1a5e7e2d0b94f3e8a6b5c4d3e2f1a0b"
NAME_PREFIX = "cluster-"
#: Connectors are absent until the story brings them up (seconds after the simulator starts: a day).
HELD = 86_400.0
CONNECTIONS_PATH = re.compile(r"/cfd_tunnel/(?P<tunnel>[0-9a-f-]{36})/connections$")
CONNECTOR_PATH = re.compile(r"/cfd_tunnel/(?P<tunnel>[0-9a-f-]{36})/connectors/(?P<connector>[0-9a-f-]{36})$")
LIST_PATH = re.compile(r"/accounts/[0-9a-f]{32}/cfd_tunnel$")
UNFINISHED = {None, "scheduled", "queued", "running", "deferred", "up_for_reschedule", "restarting", "up_for_retry"}
TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)")

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    """The default ``say``: print nothing."""


@dataclass(frozen=True)
class StoryConfig:
    """
    The scenario's knobs (the defaults are what the test and ``make cluster`` run).

    :param tunnels: Tunnels.
    :param sensors_per_tunnel: Connectors per tunnel, one sensor each (at most 25).
    :param poke_interval: The sensors' ``poke_interval`` (and the watcher's poll interval), in seconds.
    :param sensor_timeout: The sensors' ``timeout``, in seconds.
    :param spec: The cluster's shape (workers, triggerers, queues).
    :param sensor_queue: The sensors' ``queue`` (``"cloudflare"`` with a dedicated triggerer), or ``None``.
    :param kill: SIGKILL one triggerer mid-wait.
    :param watch: Run the health watcher and its reacting DAG.
    :param pool: The simulator's shared pool, ``(requests, period)`` per user, or ``None`` for no limit.
        Default: 300 per 60 s, 25 % above the fleet's steady need (two triggerers x 10 tunnels every 5 s =
        240 per 60 s), as in the baseline that drew 429s; a lockout lasts the period.
    :param share: The connection's ``rate_limit_requests`` / ``rate_limit_period`` extras, or ``None`` for
        the defaults (1,200 per 300 s). Default 140 per 60 s: each triggerer spends 90 % of it (126), which
        covers its 10 tunnels every 5 s (120) and leaves the pool room for the workers' first pokes.
    :param pool_headers: What the pool's answers say about it: ``"ietf"`` (Cloudflare's ``Ratelimit`` headers,
        which the provider paces on), ``"legacy"`` (``X-RateLimit-*``) or ``"none"`` (stripped, as by a proxy:
        then only the connection's extras protect the pool).
    :param steady: Seconds measured with every triggerer, and again after the failover.
    :param stagger: Seconds between one tunnel coming up and the next.
    """

    tunnels: int = 10
    sensors_per_tunnel: int = 10
    poke_interval: float = 5.0
    sensor_timeout: float = 900.0
    spec: ClusterSpec = field(default_factory=ClusterSpec)
    sensor_queue: str | None = None
    kill: bool = True
    watch: bool = True
    pool: tuple[int, float] | None = (300, 60.0)
    share: tuple[int, float] | None = (140, 60.0)
    pool_headers: str = "ietf"
    steady: float = 15.0
    stagger: float = 2.0

    @property
    def sensors(self) -> int:
        return self.tunnels * self.sensors_per_tunnel


@dataclass
class StoryResult:
    """What the story measured (``figures``), what went wrong (``problems``) and where the logs are."""

    config: StoryConfig
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    log_files: list[Path] = field(default_factory=list)
    logs_tail: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def failure_message(self) -> str:
        """Every problem, the figures and the components' log tails."""
        return "\n".join(
            [
                f"{len(self.problems)} problem(s) in the cluster scenario:",
                *[f"  - {p}" for p in self.problems],
                f"figures: {json.dumps(self.figures, default=str)}",
                self.logs_tail,
            ]
        )


# ---- the simulated world -------------------------------------------------------------------------------


def build_scenario(config: StoryConfig) -> dict[str, Any]:
    """The simulator's scenario: one account, ``tunnels`` tunnels of ``sensors_per_tunnel`` absent connectors."""
    tunnels = []
    for t in range(config.tunnels):
        tunnel_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"cftunnel-cluster/tunnel/{t}"))
        connectors = [
            {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tunnel_id}/connector/{c}")), "up_after": HELD}
            for c in range(config.sensors_per_tunnel)
        ]
        tunnels.append({"id": tunnel_id, "name": f"{NAME_PREFIX}{t:02d}", "connectors": connectors})
    return {"accounts": [{"id": ACCOUNT_ID, "tunnels": tunnels}]}


def build_plan(config: StoryConfig, scenario: dict[str, Any]) -> dict[str, Any]:
    """``CFTUNNEL_CLUSTER_PLAN`` for the DAG files."""
    plan: dict[str, Any] = {
        "tunnels": [
            {"id": t["id"], "connectors": [c["id"] for c in t["connectors"]]}
            for t in scenario["accounts"][0]["tunnels"]
        ],
        "poke_interval": config.poke_interval,
        "timeout": config.sensor_timeout,
        "queue": config.sensor_queue,
    }
    if config.watch:
        plan["watch"] = {"name_prefix": NAME_PREFIX, "poll_interval": config.poke_interval}
    return plan


def connection_json(sim: CloudflareSimulator, config: StoryConfig) -> str:
    """The simulator's connection, with the rate-limit share as extras."""
    connection = json.loads(sim.connection_json())
    if config.share is not None:
        connection.setdefault("extra", {})
        connection["extra"]["rate_limit_requests"] = config.share[0]
        connection["extra"]["rate_limit_period"] = config.share[1]
    return json.dumps(connection)


# ---- observation -------------------------------------------------------------------------------------------


@dataclass
class Timeline:
    """When things happened (``time.time()``), and what was seen on the way."""

    started: float = 0.0
    triggered: float | None = None
    all_deferred: float | None = None
    killed: float | None = None
    reassigned: float | None = None
    released: float | None = None
    finished: float | None = None
    reacted: float | None = None
    killed_name: str | None = None
    killed_job: int | None = None
    survivor_job: int | None = None
    placement_before_kill: dict[str, int] = field(default_factory=dict)
    moved_tasks: list[str] = field(default_factory=list)
    watcher_moved: bool = False
    watcher_baseline_before_release: bool = False
    run_state: str | None = None
    final_states: dict[str, str] = field(default_factory=dict)
    job_names: dict[int, str] = field(default_factory=dict)


class Story:
    """Drives one scenario on a started cluster (see the module docstring)."""

    def __init__(
        self, cluster: Cluster, sim: CloudflareSimulator, config: StoryConfig, plan: dict[str, Any], say: Say
    ) -> None:
        self.cluster = cluster
        self.sim = sim
        self.config = config
        self.plan = plan
        self.say = say
        self.run_id = f"cluster-{uuid.uuid4().hex[:10]}"
        self.timeline = Timeline()
        self.tasks = {
            f"tunnel_{t:02d}_connector_{c:02d}": (tunnel["id"], connector)
            for t, tunnel in enumerate(plan["tunnels"])
            for c, connector in enumerate(tunnel["connectors"])
        }

    @property
    def db(self) -> Any:
        assert self.cluster.db is not None
        return self.cluster.db

    @property
    def airflow(self) -> Any:
        assert self.cluster.airflow is not None
        return self.cluster.airflow

    def fail(self, message: str) -> None:
        raise ClusterError(f"{message}\n{self.cluster.logs()}")

    def wait(self, what: str, deadline: float, check: Callable[[], bool], every: float = 1.0) -> None:
        """Call ``check`` every ``every`` s until it returns true; fail after ``deadline`` s, or if a component
        died or a sensor ended badly meanwhile."""
        end = time.monotonic() + deadline
        while True:
            self.airflow.check()
            self.airflow.track()
            self.check_no_failure()
            if check():
                return
            if time.monotonic() > end:
                self.fail(f"timed out after {deadline:.0f} s waiting for {what}; states {self.state_counts()}")
            time.sleep(every)

    def task_rows(self) -> list[dict[str, Any]]:
        return self.db.rows(
            "SELECT ti.task_id, ti.state, ti.try_number, ti.hostname, t.triggerer_id, t.queue AS trigger_queue"
            " FROM task_instance ti LEFT JOIN trigger t ON t.id = ti.trigger_id"
            " WHERE ti.dag_id = %s AND ti.run_id = %s",
            DAG_ID,
            self.run_id,
        )

    def state_counts(self) -> dict[str, int]:
        return dict(Counter(str(row["state"]) for row in self.task_rows()))

    def check_no_failure(self) -> None:
        if self.timeline.triggered is None:
            return
        bad = {r["task_id"]: r["state"] for r in self.task_rows() if r["state"] not in UNFINISHED | {"success"}}
        if bad:
            self.fail(f"sensors ended badly: {bad}")

    def watcher_trigger(self) -> dict[str, Any] | None:
        rows = self.db.rows(
            "SELECT t.id, t.triggerer_id FROM trigger t JOIN asset_watcher w ON w.trigger_id = t.id"
            " WHERE t.classpath = %s",
            HEALTH_TRIGGER,
        )
        return rows[0] if rows else None

    # -- the steps --

    def trigger_run(self) -> None:
        self.sim.clear_requests()
        if self.config.pool is not None and self.config.pool_headers == "ietf":
            self.sim.set_rate_limit(*self.config.pool)
        elif self.config.pool is not None:
            self.sim.set_rate_limit(*self.config.pool, headers=self.config.pool_headers)
        if self.config.watch:
            self.wait(
                "the health watcher to run on a triggerer",
                120,
                lambda: (w := self.watcher_trigger()) is not None and w["triggerer_id"] is not None,
            )
            self.wait(
                "the health watcher's baseline poll", 60, lambda: bool(self.sim.requests_matching(r"/cfd_tunnel$"))
            )
        self.timeline.triggered = time.time()
        result = self.airflow.cli().run("dags", "trigger", DAG_ID, "--run-id", self.run_id, timeout=120)
        if result.returncode != 0:
            self.fail(f"airflow dags trigger failed ({result.returncode}):\n{result.stdout[-3000:]}")
        self.say(
            f"triggered run {self.run_id} of {DAG_ID}: {self.config.sensors} deferrable sensors on "
            f"{self.config.tunnels} tunnels"
        )

    def wait_all_deferred(self) -> None:
        total = self.config.sensors

        def deferred_and_assigned() -> bool:
            rows = self.task_rows()
            waiting = [r for r in rows if r["state"] == "deferred" and r["triggerer_id"] is not None]
            if rows and "success" in {r["state"] for r in rows}:
                self.fail("a sensor succeeded before any connector came up")
            return len(rows) == total and len(waiting) == total

        self.wait(f"all {total} sensors deferred on a triggerer", 420, deferred_and_assigned)
        self.timeline.all_deferred = time.time()
        assert self.timeline.triggered is not None
        self.timeline.job_names = self.cluster.live_triggerers(threshold=60)
        placement = Counter(self.timeline.job_names.get(r["triggerer_id"], "?") for r in self.task_rows())
        self.say(
            f"all {total} sensors deferred after {self.timeline.all_deferred - self.timeline.triggered:.0f} s; "
            f"triggers per triggerer: {dict(sorted(placement.items()))}"
        )

    def kill_triggerer(self) -> None:
        rows = self.task_rows()
        names = self.timeline.job_names
        placement = Counter(names.get(r["triggerer_id"], "?") for r in rows)
        self.timeline.placement_before_kill = dict(placement)
        watcher = self.watcher_trigger() if self.config.watch else None
        if watcher is not None and watcher["triggerer_id"] in names:
            victim_job = int(watcher["triggerer_id"])
            self.timeline.watcher_moved = True
        else:
            victim_job = max(names, key=lambda job: placement.get(names[job], 0))
        victim = names[victim_job]
        self.timeline.killed_name, self.timeline.killed_job = victim, victim_job
        self.timeline.moved_tasks = sorted(r["task_id"] for r in rows if r["triggerer_id"] == victim_job)
        survivors = [job for job in names if job != victim_job]
        self.timeline.survivor_job = survivors[0] if survivors else None
        self.timeline.killed = self.airflow.kill(victim)
        watched = " and the health watcher" if self.timeline.watcher_moved else ""
        self.say(
            f"SIGKILL {victim} (job {victim_job}) with {len(self.timeline.moved_tasks)} sensor triggers"
            f"{watched}: its machine died"
        )

    def wait_reassigned(self) -> None:
        victim = self.timeline.killed_job
        moved = set(self.timeline.moved_tasks)

        def reassigned() -> bool:
            rows = [r for r in self.task_rows() if r["task_id"] in moved]
            sensors_moved = all(r["triggerer_id"] not in (None, victim) for r in rows if r["state"] == "deferred")
            watcher = self.watcher_trigger() if self.timeline.watcher_moved else None
            watcher_moved = watcher is None or watcher["triggerer_id"] not in (None, victim)
            return sensors_moved and watcher_moved

        self.wait(f"the triggers of {self.timeline.killed_name} to move", 180, reassigned, every=0.5)
        self.timeline.reassigned = time.time()
        assert self.timeline.killed is not None
        self.say(
            f"Airflow moved them to the surviving triggerer "
            f"{self.timeline.reassigned - self.timeline.killed:.0f} s after the SIGKILL"
        )

    def release_tunnels(self) -> None:
        self.timeline.released = time.time()
        self.say(f"bringing the {self.config.tunnels} tunnels up, one every {self.config.stagger:.0f} s")
        for index, tunnel in enumerate(self.plan["tunnels"]):
            due = self.timeline.released + index * self.config.stagger
            while time.time() < due:
                self.airflow.check()
                time.sleep(min(0.25, max(0.0, due - time.time())))
            for connector in tunnel["connectors"]:
                self.sim.set_connector(tunnel["id"], connector, live=4)

    def wait_finished(self) -> None:
        def finished() -> bool:
            runs = self.db.rows("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", DAG_ID, self.run_id)
            state = runs[0]["state"] if runs else None
            if state in ("success", "failed"):
                self.timeline.run_state = state
                return True
            return False

        self.wait(f"run {self.run_id} to finish", 300, finished)
        self.timeline.finished = time.time()
        self.timeline.final_states = {r["task_id"]: r["state"] for r in self.task_rows()}
        assert self.timeline.released is not None
        self.say(
            f"run {self.timeline.run_state} {self.timeline.finished - self.timeline.released:.0f} s after the "
            f"first tunnel came up: {self.state_counts()}"
        )

    def wait_reactions(self) -> None:
        expected = self.config.tunnels

        def handled() -> bool:
            runs = self.react_runs()
            queued = self.db.rows("SELECT 1 FROM asset_dag_run_queue WHERE target_dag_id = %s", REACT_DAG_ID)
            finished = all(r["state"] in ("success", "failed") for r in runs)
            return len(self.asset_events()) >= expected and bool(runs) and finished and not queued

        self.wait(f"{expected} health events and the runs of {REACT_DAG_ID} they queue", 180, handled)
        self.timeline.reacted = time.time()
        runs = self.react_runs()
        consumed = sum(len(r["events"]) for r in runs)
        self.say(
            f"the health watcher fired {len(self.asset_events())} events; {REACT_DAG_ID} ran {len(runs)} time(s), "
            f"consuming {consumed} of them"
        )

    def asset_events(self) -> list[dict[str, Any]]:
        return self.db.rows(
            "SELECT e.id, e.extra, e.timestamp FROM asset_event e JOIN asset a ON a.id = e.asset_id"
            " WHERE a.name = %s ORDER BY e.id",
            ASSET_NAME,
        )

    def react_runs(self) -> list[dict[str, Any]]:
        runs = self.db.rows("SELECT id, run_id, state, run_after FROM dag_run WHERE dag_id = %s", REACT_DAG_ID)
        for run in runs:
            run["events"] = [
                r["event_id"]
                for r in self.db.rows("SELECT event_id FROM dagrun_asset_event WHERE dag_run_id = %s", run["id"])
            ]
        return runs


# ---- figures and checks -----------------------------------------------------------------------------------


def _max_in_window(times: list[float], width: float) -> int:
    """The most of ``times`` (sorted) in any half-open window of ``width`` seconds."""
    best = 0
    for i, start in enumerate(times):
        best = max(best, bisect.bisect_left(times, start + width) - i)
    return best


def _rate(times: list[float], start: float | None, end: float | None, interval: float) -> tuple[float, int]:
    """Requests per interval in ``[start, end)`` and the most in one ``interval``-long bucket."""
    if start is None or end is None or end - start < interval:
        return 0.0, 0
    inside = [t for t in times if start <= t < end]
    buckets = Counter(int((t - start) // interval) for t in inside)
    full = int((end - start) // interval)
    return round(len(inside) / ((end - start) / interval), 2), max((buckets[b] for b in range(full)), default=0)


def _first_outcome_on_survivor(cluster: Cluster, story: Story) -> dict[str, float]:
    """``{task: time}`` of each moved trigger's first log line on the survivor (its first poll outcome)."""
    found: dict[str, float] = {}
    survivor = story.timeline.survivor_job
    if survivor is None or cluster.airflow is None:
        return found
    name = story.timeline.job_names.get(survivor, "")
    if name not in cluster.airflow.components:
        return found
    cli = cluster.airflow.cli(name)
    for task in story.timeline.moved_tasks:
        for path in cli.task_logs(DAG_ID, story.run_id, task, f"*.trigger.{survivor}.log"):
            for line in path.read_text(errors="replace").splitlines():
                if "not ready" not in line:
                    continue
                stamp = _timestamp(line)
                if stamp is not None:
                    found[task] = min(found.get(task, stamp), stamp)
                    break
    return found


def _timestamp(line: str) -> float | None:
    with contextlib.suppress(ValueError):
        record = json.loads(line)
        if isinstance(record, dict) and isinstance(record.get("timestamp"), str):
            return datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()
    match = TIMESTAMP.search(line)
    if match:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp()
    return None


def _xcom_values(story: Story, dag_id: str, run_ids: list[str] | None = None) -> dict[tuple[str, str], Any]:
    rows = story.db.rows("SELECT run_id, task_id, value FROM xcom WHERE dag_id = %s AND key = 'return_value'", dag_id)
    values = {}
    for row in rows:
        if run_ids is not None and row["run_id"] not in run_ids:
            continue
        value = row["value"]
        for _ in range(2):  # JSON column; XCom may hold a JSON string of the value
            if isinstance(value, (str, bytes)):
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
        values[(row["run_id"], row["task_id"])] = value
    return values


def collect(story: Story, cluster: Cluster, result: StoryResult) -> None:
    """Read what the database and the simulator saw into ``result`` (the cluster still runs)."""
    config, line, sim = story.config, story.timeline, story.sim
    figures, problems = result.figures, result.problems
    interval = config.poke_interval
    rows = story.task_rows()
    history = story.db.rows(
        "SELECT task_id, try_number, state FROM task_instance_history WHERE dag_id = %s AND run_id = %s",
        DAG_ID,
        story.run_id,
    )
    # every sensor succeeded exactly once
    if line.run_state != "success":
        problems.append(f"the run ended {line.run_state}")
    states = {r["task_id"]: r["state"] for r in rows}
    if set(states) != set(story.tasks):
        problems.append(f"task instances missing or unexpected: {sorted(set(story.tasks) ^ set(states))}")
    not_success = {t: s for t, s in states.items() if s != "success"}
    if not_success:
        problems.append(f"sensors not successful: {not_success}")
    tries = Counter(int(r["try_number"]) for r in rows)
    if set(tries) != {1}:
        problems.append(f"try numbers other than 1 (a sensor ran twice): {dict(tries)}")
    if history:
        problems.append(f"earlier tries in task_instance_history (a sensor ran twice): {history[:5]}")
    xcoms = _xcom_values(story, DAG_ID, [story.run_id])
    wrong = {}
    for task, (_, connector) in story.tasks.items():
        value = xcoms.get((story.run_id, task))
        returned = value.get("id") if isinstance(value, dict) else value
        if returned != connector:
            wrong[task] = returned
    if wrong:
        problems.append(f"sensors that returned another connector than theirs: {dict(list(wrong.items())[:5])}")
    workers = Counter(str(r["hostname"]) for r in rows)
    figures["sensors"] = len(rows)
    figures["sensors_succeeded"] = sum(1 for s in states.values() if s == "success")
    figures["tasks_per_worker"] = dict(sorted(workers.items()))

    # the simulator's log
    requests = sim.requests
    polls = sorted(r.time for r in requests if CONNECTIONS_PATH.search(r.path))
    per_tunnel: dict[str, list[float]] = {}
    for record in requests:
        if match := CONNECTIONS_PATH.search(record.path):
            per_tunnel.setdefault(match["tunnel"], []).append(record.time)
    pokes = Counter(m["connector"] for r in requests if (m := CONNECTOR_PATH.search(r.path)))
    lists = [r.time for r in requests if LIST_PATH.search(r.path)]
    too_many = {429: sum(1 for r in requests if r.status == 429)}
    figures["requests_total"] = len(requests)
    figures["connections_requests"] = len(polls)
    figures["connector_requests"] = sum(pokes.values())
    figures["tunnel_list_requests"] = len(lists)
    figures["http_429"] = too_many[429]
    figures["rate_limited_count"] = sim.rate_limited_count
    if pokes != Counter({connector: 1 for _, connector in story.tasks.values()}):
        extra = {c: n for c, n in pokes.items() if n != 1}
        problems.append(f"each connector's endpoint must be asked once (the sensor's first poke): {extra}")
    if too_many[429] or sim.rate_limited_count:
        problems.append(f"{too_many[429]} answers were 429 ({sim.rate_limited_count} from the emulated pool)")

    # polls per interval: with every triggerer, then with the survivor alone
    serving = _serving_triggerers(config)
    two_end = line.killed if line.killed is not None else line.released
    rate_all, peak_all = _rate(polls, line.all_deferred, two_end, interval)
    one_start = None if line.reassigned is None else line.reassigned + interval
    rate_one, peak_one = _rate(polls, one_start, line.released, interval)
    figures["triggerers_serving_sensors"] = serving
    figures["polls_per_interval_all_triggerers"] = rate_all
    figures["polls_peak_interval_all_triggerers"] = peak_all
    if line.killed is not None:
        figures["polls_per_interval_after_failover"] = rate_one
        figures["polls_peak_interval_after_failover"] = peak_one
    figures["without_sharing_would_be"] = config.sensors
    bound = serving * config.tunnels
    wait_end = line.released or time.time()
    waiting = [t for t in polls if (line.triggered or 0) <= t < wait_end]
    _, peak_wait = _rate(waiting, line.triggered, wait_end, interval)
    figures["polls_peak_interval_whole_wait"] = peak_wait
    if peak_wait > bound:
        problems.append(
            f"{peak_wait} /connections requests in one {interval:.0f} s interval > {bound} (triggerers x tunnels)"
        )
    worst_tunnel = max(
        (_max_in_window([t for t in times if t < wait_end], interval) for times in per_tunnel.values()), default=0
    )
    figures["max_polls_of_one_tunnel_per_interval"] = worst_tunnel
    if worst_tunnel > serving:
        problems.append(
            f"one tunnel was polled {worst_tunnel} times within {interval:.0f} s: more than one poller "
            f"per triggerer ({serving})"
        )
    if line.killed is not None and line.reassigned is not None and line.released is not None:
        if peak_one > config.tunnels:
            problems.append(f"after the failover {peak_one} polls in one interval > {config.tunnels} (one triggerer)")
        expected_one = min(float(config.tunnels), _budget_rate(config, 1) * interval)
        if rate_one < 0.5 * expected_one:
            problems.append(f"after the failover the survivor polled {rate_one} times per interval: it stalled")

    # failover
    if line.killed is not None:
        figures["killed"] = line.killed_name
        figures["placement_before_kill"] = line.placement_before_kill
        figures["triggers_moved"] = len(line.moved_tasks)
        figures["watcher_moved"] = line.watcher_moved
        if line.reassigned is not None:
            figures["reassigned_after_kill_s"] = round(line.reassigned - line.killed, 1)
        first = _first_outcome_on_survivor(cluster, story)
        moved_waiting = set(line.moved_tasks)
        missing = sorted(moved_waiting - set(first))
        if missing:
            problems.append(f"moved triggers with no poll outcome logged on the survivor: {missing[:5]}")
        if first:
            delays = [stamp - line.killed for stamp in first.values()]
            figures["failover_s_max"] = round(max(delays), 1)
            figures["failover_s_median"] = round(statistics.median(delays), 1)

    # the health watcher
    if config.watch:
        events = story.asset_events()
        payloads = [(e["extra"] or {}).get("payload") or {} for e in events]
        changes = Counter(p.get("tunnel_id") for p in payloads)
        expected = {t["id"] for t in story.plan["tunnels"]}
        figures["health_events"] = len(events)
        figures["health_changes"] = sorted({f"{p.get('previous_status')}->{p.get('status')}" for p in payloads})
        if set(changes) != expected or set(changes.values()) != {1}:
            problems.append(f"health events per tunnel should be exactly one each: {dict(changes)}")
        wrong_change = [p for p in payloads if p.get("status") != "healthy" or p.get("previous_status") != "inactive"]
        if wrong_change:
            problems.append(f"unexpected health changes: {wrong_change[:3]}")
        runs = story.react_runs()
        consumed = Counter(event for run in runs for event in run["events"])
        figures["react_runs"] = len(runs)
        twice = {event: n for event, n in consumed.items() if n > 1}
        if twice:
            problems.append(f"health events consumed by more than one run of {REACT_DAG_ID}: {twice}")
        # Airflow 3.3.2 queues an asset-triggered run per (asset, DAG) with ON CONFLICT DO NOTHING and gives it the
        # events up to the queue entry's time: an event written while an entry is queued, and later than it, waits
        # for the NEXT change of the asset (apache/airflow#56050; upstream #70972 references the events instead).
        # Such events are counted, not failed; any other unconsumed event is a loss.
        last_run_after = max((r["run_after"] for r in runs), default=None)
        unconsumed = [e for e in events if e["id"] not in consumed]
        lost = [e["id"] for e in unconsumed if last_run_after is None or e["timestamp"] <= last_run_after]
        figures["health_events_unconsumed"] = len(unconsumed)
        if lost:
            problems.append(f"health events older than the last run of {REACT_DAG_ID} but never consumed: {lost}")
        failed_runs = [r["run_id"] for r in runs if r["state"] != "success"]
        if failed_runs:
            problems.append(f"{REACT_DAG_ID} runs not successful: {failed_runs}")
        recorded = Counter(
            p.get("tunnel_id")
            for value in _xcom_values(story, REACT_DAG_ID, [r["run_id"] for r in runs]).values()
            for p in (value if isinstance(value, list) else [])
            if isinstance(p, dict)
        )
        tunnel_of = {e["id"]: ((e["extra"] or {}).get("payload") or {}).get("tunnel_id") for e in events}
        if recorded != Counter(tunnel_of[event] for event in consumed if event in tunnel_of):
            problems.append(f"{REACT_DAG_ID} saw these changes (tunnel: times): {dict(recorded)}")
        if not line.watcher_baseline_before_release:
            problems.append("the health watcher had not polled before the tunnels came up")

    # times
    if line.triggered is not None:
        figures["all_deferred_after_s"] = round((line.all_deferred or line.triggered) - line.triggered, 1)
    if line.finished is not None and line.triggered is not None:
        figures["run_wall_s"] = round(line.finished - line.triggered, 1)
        if line.released is not None:
            figures["finished_after_release_s"] = round(line.finished - line.released, 1)


def _serving_triggerers(config: StoryConfig) -> int:
    """How many triggerers may run the sensors' triggers (all, unless queues route them to some)."""
    queues = config.spec.triggerer_queues
    if not config.spec.queues_enabled:
        return len(queues)
    return sum(1 for queue in queues if queue == (config.sensor_queue or "default"))


def _budget_rate(config: StoryConfig, triggerers: int) -> float:
    """Requests per second the triggerers' budgets allow (90 % of the share each), or infinity."""
    if config.share is None:
        return float("inf")
    return triggerers * int(config.share[0] * 0.9) / config.share[1]


def run_story(
    config: StoryConfig,
    root: Path | None = None,
    say: Say = _quiet,
    register_secret: Callable[[str], None] | None = None,
) -> StoryResult:
    """
    Run the scenario on a fresh cluster and return what happened. Never leaves a process behind.

    :param config: The scenario.
    :param root: A fresh directory for the cluster (default: a new temporary one).
    :param say: Called with a line per step.
    :param register_secret: Called with every secret the run uses (the test's leak guard).
    """
    result = StoryResult(config)
    root = root or Path(tempfile.mkdtemp(prefix="cftunnel-cluster-"))
    scenario = build_scenario(config)
    plan = build_plan(config, scenario)
    began = time.monotonic()
    with CloudflareSimulator(scenario) as sim:
        for secret in (sim.api_token, sim.account_token, sim.global_key):
            if register_secret and secret:
                register_secret(secret)
        pool = (
            "no rate limit" if config.pool is None else f"a shared pool of {config.pool[0]} per {config.pool[1]:.0f} s"
        )
        if config.pool is not None and config.pool_headers != "ietf":
            pool += f" (rate-limit headers: {config.pool_headers})"
        say(
            f"Cloudflare simulator on {sim.base_url}: {config.tunnels} tunnels x {config.sensors_per_tunnel} "
            f"connectors (all absent), {pool}"
        )
        env = {
            "AIRFLOW_CONN_CLOUDFLARE_DEFAULT": connection_json(sim, config),
            "CFTUNNEL_CLUSTER_PLAN": json.dumps(plan),
        }
        cluster = Cluster(root=root, dags_folder=DAGS_FOLDER, env=env, spec=config.spec, say=say)
        story = Story(cluster, sim, config, plan, say)
        dag_ids = [DAG_ID, *([REACT_DAG_ID] if config.watch else [])]
        try:
            cluster.start(dag_ids)
            for secret in cluster.secrets:
                if register_secret:
                    register_secret(secret)
            result.figures["listening"] = cluster.listening()
            public = [entry for entry in result.figures["listening"] if not entry.startswith("127.")]
            if public:
                result.problems.append(f"listening beyond loopback: {public}")
            story.trigger_run()
            story.wait_all_deferred()
            _steady(story, "every triggerer")
            if config.kill and len(config.spec.triggerer_queues) > 1:
                story.kill_triggerer()
                story.wait_reassigned()
                _steady(story, "the survivor alone", extra=config.poke_interval)
            if config.watch:
                story.timeline.watcher_baseline_before_release = bool(sim.requests_matching(r"/cfd_tunnel$"))
            story.release_tunnels()
            story.wait_finished()
            if config.watch:
                story.wait_reactions()
            collect(story, cluster, result)
        except Exception as error:  # a failed step: record it, with the logs, and still stop everything
            text = str(error) if isinstance(error, ClusterError) else f"{type(error).__name__}: {error}"
            result.problems.append(text.split("\n", 1)[0])
            result.logs_tail = text.split("\n", 1)[1] if "\n" in text else cluster.logs()
            if not isinstance(error, ClusterError):
                result.logs_tail = "".join(traceback.format_exception(error)) + result.logs_tail
            with contextlib.suppress(Exception):
                collect(story, cluster, result)
        finally:
            survivors = cluster.stop()
            result.figures["processes_left"] = survivors
            if survivors:
                result.problems.append(f"processes left after stop: {survivors}")
            result.figures["timings"] = {k: round(v, 1) for k, v in cluster.timings.items()}
            result.log_files = sorted(p for p in root.rglob("*.log") if p.is_file())
            if result.problems and not result.logs_tail:
                result.logs_tail = cluster.logs()
    result.figures["wall_s"] = round(time.monotonic() - began, 1)
    return result


def _steady(story: Story, who: str, extra: float = 0.0) -> None:
    """Let the sensors wait ``steady`` (+ ``extra``) seconds and say how many polls that cost."""
    seconds = story.config.steady + extra
    start = time.time()
    story.wait(f"{seconds:.0f} s of waiting", seconds + 60, lambda: time.time() - start >= seconds)
    polls = [r for r in story.sim.requests if CONNECTIONS_PATH.search(r.path) and start <= r.time]
    per = len(polls) / (seconds / story.config.poke_interval)
    story.say(
        f"{seconds:.0f} s with {who}: {len(polls)} /connections requests, {per:.1f} per "
        f"{story.config.poke_interval:.0f} s interval (one per sensor would be {story.config.sensors})"
    )


def iter_log_text(result: StoryResult) -> Iterator[tuple[Path, str]]:
    """Every log file of the run and its text (for the secret scan)."""
    for path in result.log_files:
        with contextlib.suppress(OSError):
            yield path, path.read_text(errors="replace")
