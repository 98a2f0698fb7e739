"""Properties of the pacing rule over arbitrary answer sequences, with hypothesis.

Whatever the headers say (any ``r``, any ``t``, with or without a policy, answers missing or without headers) and
whenever the process asks, one process never spends below the reserve it last saw: after an answer, it claims at
most what that answer showed above the reserve; beyond that, only probes, one at a time (the previous one
answered or given up) and at most one per ``max(1 s, window / reserve)``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_cftunnel.ratelimit import ServerQuota, reserve_for

#: A step: wait some seconds, ask for as many requests as the quota grants now, or answer the oldest request.
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=120.0)),
        st.tuples(st.just("ask"), st.integers(min_value=1, max_value=30)),
        st.tuples(
            st.just("answer"),
            st.one_of(
                st.none(),  # no answer (a timeout, a reset connection)
                st.just({"Content-Type": "application/json"}),  # an answer without rate-limit headers
                st.builds(
                    lambda r, t, q, w: {
                        "Ratelimit": f'"default";r={r};t={t}',
                        **({"Ratelimit-Policy": f'"default";q={q};w={w}'} if q else {}),
                    },
                    st.integers(min_value=0, max_value=60),
                    st.integers(min_value=0, max_value=400),
                    st.one_of(st.none(), st.integers(min_value=1, max_value=60)),
                    st.integers(min_value=1, max_value=300),
                ),
            ),
        ),
    ),
    max_size=80,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@settings(max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(STEPS)
def test_no_answer_sequence_makes_a_process_spend_below_the_reserve_it_last_saw(steps: list[Any]) -> None:
    clock = Clock()
    quota = ServerQuota(clock=clock)
    pending: list[tuple[Any, int]] = []  # (claim, its number) in the order sent; answered oldest first
    sent = 0
    latest: dict[str, Any] | None = None  # the last answer with headers: r, reserve, window, claims sent by then
    largest = 0
    last_probe_at: float | None = None
    for step in steps:
        if step[0] == "wait":
            clock.now += step[1]
        elif step[0] == "answer" and pending:
            claim, number = pending.pop(0)
            observed = claim.settle(step[1])
            if observed is not None:
                largest = max(largest, observed.remaining)
                latest = {
                    "r": observed.remaining,
                    "reserve": reserve_for(observed.quota, largest),
                    "window": observed.window or observed.reset,
                    "sent_by": number,
                }
                last_probe_at = None
        elif step[0] == "ask":
            for _ in range(step[1]):
                wait, claim = quota.try_claim()
                if claim is None:
                    assert wait > 0
                    break
                sent += 1
                if latest is not None:
                    since = sent - latest["sent_by"]  # this one included
                    above = max(0, latest["r"] - latest["reserve"])
                    if since > above:  # into the reserve: only a probe may go
                        assert not pending, "a probe goes only when the previous request was answered"
                        every = min(quota.max_wait, max(1.0, latest["window"] / latest["reserve"]))
                        if last_probe_at is not None:
                            assert clock.now - last_probe_at >= every - 1e-6
                        last_probe_at = clock.now
                pending.append((claim, sent))
