"""The deploy gate over random rolling restarts (hypothesis): it never opens early, and never late.

Each example is one rolling restart on a simulated timeline: the old cloudflared stays live, then pending,
for random times; the new one starts, flaps (segments of 0, 1, 2 or 4 live connections) and then stays up;
the API shows the truth ``api_lag`` seconds late and the new cloudflared's ``/ready`` shows it ``ready_lag``
seconds late (negative: early). The gate polls every ``interval`` seconds from a random phase, decides each
poll with :func:`~airflow_provider_cftunnel.readiness.evaluate` (``ready_url`` and ``stable_for``), and between
polls decides again when ``stable_for`` falls due, as the trigger does. Time is a number: nothing sleeps.

Properties: the gate opens only on the new connector; only after both views agreed on every poll for
``stable_for``; and at the latest ``interval + stable_for`` after the views agree for good.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_cftunnel.models import TunnelConnector
from airflow_provider_cftunnel.readiness import CLOCK_TOLERANCE, GateVerdict, ReadinessClock, ReadinessRule, evaluate
from airflow_provider_cftunnel.ready import ReadyAnswer
from airflow_provider_cftunnel.testing.state import format_timestamp

OLD = "0f0f0f0f-0000-4000-8000-000000000001"
NEW = "1e1e1e1e-0000-4000-8000-000000000002"
URL = "http://cloudflared:20241/ready"
EPOCH = 1_796_000_000.0  # simulated second 0, as a POSIX time (for run_at)
MIN_CONNECTIONS = 2


def _connector(cid: str, run_at: float, live: int, pending: int) -> TunnelConnector:
    conns = [
        {"id": f"{cid[:8]}-{i}", "is_pending_reconnect": i >= live, "colo_name": ("DFW", "IAD")[i % 2]}
        for i in range(live + pending)
    ]
    return TunnelConnector.from_dict({"id": cid, "run_at": format_timestamp(EPOCH + run_at), "conns": conns})


@dataclass(frozen=True)
class RollingRestart:
    """The truth of one rolling restart, and what the API and ``/ready`` show of it at any time."""

    old_drops_at: float
    old_gone_after: float
    new_starts_at: float
    new_segments: tuple[tuple[float, int], ...]  # (seconds, live connections) after the start; then 4 live
    api_lag: float
    ready_lag: float

    def new_live(self, at: float) -> int | None:
        """The new connector's live connections at ``at`` (``None``: not started)."""
        if at < self.new_starts_at:
            return None
        t = self.new_starts_at
        for seconds, live in self.new_segments:
            if at < t + seconds:
                return live
            t += seconds
        return 4

    def api(self, now: float) -> list[TunnelConnector]:
        """The tunnel's connectors as the API lists them at ``now``."""
        at = now - self.api_lag
        listed = []
        if at < self.old_drops_at:
            listed.append(_connector(OLD, -3600.0, 4, 0))
        elif at < self.old_drops_at + self.old_gone_after:
            listed.append(_connector(OLD, -3600.0, 0, 4))
        live = self.new_live(at)
        if live is not None:
            listed.append(_connector(NEW, self.new_starts_at, live, 4 - live))
        return listed

    def ready(self, now: float) -> ReadyAnswer:
        """The new cloudflared's ``/ready`` at ``now`` (refused before it started)."""
        live = self.new_live(now - self.ready_lag)
        if live is None:
            return ReadyAnswer(URL, False, detail="connection refused")
        if live == 0:
            return ReadyAnswer(URL, False, ready_connections=0, detail="HTTP 503")
        return ReadyAnswer(URL, True, NEW, live)

    def agree(self, now: float) -> bool:
        """Whether both views agree at ``now``: ``/ready`` names the new connector, the API shows it ready."""
        ready = self.ready(now)
        live = next((len(c.active_connections) for c in self.api(now) if c.id == NEW), 0)
        return ready.ready and ready.connector_id == NEW and live >= MIN_CONNECTIONS

    def agree_for_good_from(self) -> float:
        """The time from which both views agree forever (they change only at shifted event times)."""
        events = [self.old_drops_at, self.old_drops_at + self.old_gone_after, self.new_starts_at]
        t = self.new_starts_at
        for seconds, _ in self.new_segments:
            t += seconds
            events.append(t)
        changes = sorted({e + lag for e in events for lag in (self.api_lag, self.ready_lag)})
        # agreement is constant between two changes: sample each stretch in its middle, not on its edges
        ends = [*changes[1:], changes[-1] + 2.0]
        since = changes[-1]
        for start, end in reversed(list(zip(changes, ends, strict=True))):
            if not self.agree((start + end) / 2):
                break
            since = start
        return since


@dataclass
class GateRun:
    opened_at: float | None
    verdict: GateVerdict | None
    polls: list[tuple[float, bool]]  # (time, views agreed)
    clock_started: float | None


def run_gate(world: RollingRestart, rule: ReadinessRule, interval: float, phase: float, until: float) -> GateRun:
    """Poll every ``interval`` from ``phase`` and decide as the trigger does, until the gate opens or ``until``."""
    clock = ReadinessClock()
    polls: list[tuple[float, bool]] = []
    now = phase
    while now <= until:
        connectors, ready = world.api(now), world.ready(now)
        polls.append((now, world.agree(now)))
        verdict = evaluate(rule, connectors, now=now, clock=clock, ready=ready)
        decided_at = now
        while not verdict.ready and verdict.due_in is not None and decided_at + verdict.due_in < now + interval:
            decided_at += verdict.due_in  # stable_for falls due before the next poll: decide on this poll's data
            verdict = evaluate(rule, connectors, now=decided_at, clock=verdict.clock, ready=ready)
        clock = verdict.clock
        if verdict.ready:
            return GateRun(decided_at, verdict, polls, clock.held_since)
        now += interval
    return GateRun(None, None, polls, None)


durations = st.floats(min_value=0.0, max_value=120.0, allow_nan=False)
restarts = st.builds(
    RollingRestart,
    old_drops_at=durations,
    old_gone_after=durations,
    new_starts_at=durations,
    new_segments=st.lists(
        st.tuples(st.floats(min_value=0.5, max_value=40.0), st.sampled_from([0, 1, 2, 4])), max_size=6
    ).map(tuple),
    api_lag=st.floats(min_value=0.0, max_value=30.0),
    ready_lag=st.floats(min_value=-10.0, max_value=30.0),
)


@settings(max_examples=1500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    world=restarts,
    interval=st.floats(min_value=0.5, max_value=15.0),
    phase_share=st.floats(min_value=0.0, max_value=0.999),
    stable_for=st.floats(min_value=0.0, max_value=60.0),
)
def test_the_gate_opens_on_the_new_connector_only_after_both_views_agree_and_within_the_bound(
    world: RollingRestart, interval: float, phase_share: float, stable_for: float
) -> None:
    rule = ReadinessRule(min_connections=MIN_CONNECTIONS, stable_for=stable_for)
    settled = world.agree_for_good_from()
    deadline = settled + interval + stable_for
    run = run_gate(world, rule, interval, phase_share * interval, until=deadline + interval)

    assert run.opened_at is not None, f"never opened; the views agree for good from {settled:.2f}"
    assert run.verdict is not None
    assert run.verdict.connector is not None
    # never the old connector
    assert run.verdict.connector.id == NEW
    # never early: both views agreed on every poll since the clock started, for stable_for
    assert run.clock_started is not None
    assert run.opened_at - run.clock_started + CLOCK_TOLERANCE >= stable_for
    since_clock = [agreed for at, agreed in run.polls if at >= run.clock_started]
    assert since_clock
    assert all(since_clock)
    # never late: within one poll interval + stable_for of the views agreeing for good
    assert run.opened_at <= deadline + 1e-6
