"""Cloudflare's rate-limit headers and the per-credential view of the shared pool (ratelimit.py)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from requests.structures import CaseInsensitiveDict

from airflow_provider_cftunnel.ratelimit import (
    MAX_WAIT,
    RateLimitObservation,
    ServerQuota,
    clear_quotas,
    credential_fingerprint,
    parse_rate_limit,
    quota_for,
    reserve_for,
)
from airflow_provider_cftunnel.ratelimit.budget import RequestBudget, carried_claim, claim_request
from tests.support.fakes import FakeClock

SECRET = "ratelimit-test-token-Qx7w2LmZ"


def ietf(limits: str, policies: str | None = None) -> dict[str, str]:
    headers = {"Ratelimit": limits}
    if policies is not None:
        headers["Ratelimit-Policy"] = policies
    return headers


# -- parsing ------------------------------------------------------------------------------------------------


class TestParse:
    def test_cloudflares_documented_answer(self) -> None:
        observed = parse_rate_limit(ietf('"default";r=50;t=30', '"default";q=1200;w=300'))
        assert observed == RateLimitObservation(remaining=50, reset=30.0, quota=1200, window=300.0, name="default")

    def test_the_changelogs_example_with_different_names(self) -> None:
        """Cloudflare's changelog pairs ``"default"`` with a ``"burst"`` policy: one of each is one limit."""
        observed = parse_rate_limit(ietf('"default";r=50;t=30', '"burst";q=100;w=60'))
        assert (observed.remaining, observed.reset, observed.quota, observed.window) == (50, 30.0, 100, 60.0)

    def test_lower_case_names_as_sent_over_http2(self) -> None:
        observed = parse_rate_limit({"ratelimit": '"default";r=7;t=3', "ratelimit-policy": '"default";q=20;w=6'})
        assert (observed.remaining, observed.reset, observed.quota) == (7, 3.0, 20)
        headers = CaseInsensitiveDict({"RATELIMIT": '"default";r=7;t=3'})
        assert parse_rate_limit(headers).remaining == 7

    def test_the_most_constraining_of_several_limits_governs(self) -> None:
        headers = ietf(
            '"default";r=1000;t=200, "burst";r=5;t=1, tok;t=60;r=900',
            'tok;w=60;q=1000, "default";q=1200;w=300, \'bad, "burst";q=10;w=1',
        )
        observed = parse_rate_limit(headers)
        # above its reserve: default 880 over 200 s (4.4/s), burst 4 over 1 s (4/s), tok 800 over 60 s (13/s)
        assert (observed.name, observed.remaining, observed.quota) == ("burst", 5, 10)
        drained = parse_rate_limit(ietf('"a";r=500;t=100, "b";r=2;t=50', '"a";q=1000;w=300, "b";q=20;w=60'))
        assert drained.name == "b", "at its reserve, b allows nothing until it resets"

    def test_parameters_in_any_order_unknown_ones_ignored(self) -> None:
        observed = parse_rate_limit(ietf('"x" ; pk=:cHJvamVjdDEyMw==: ; t=12 ; foo="a;b,c" ; r=3 ; flag'))
        assert (observed.name, observed.remaining, observed.reset, observed.quota) == ("x", 3, 12.0, None)

    def test_quoted_names_with_escapes_and_token_names(self) -> None:
        assert parse_rate_limit(ietf('"a\\"b";r=1;t=2')).name == 'a"b'
        assert parse_rate_limit(ietf("day;r=1;t=2")).name == "day"

    def test_a_missing_reset_is_at_worst_a_window_away(self) -> None:
        observed = parse_rate_limit(ietf('"default";r=9', '"default";q=10;w=60'))
        assert observed.reset == 60.0
        assert parse_rate_limit(ietf('"default";r=9')) is None, "no reset and no window: nothing to pace on"

    def test_legacy_headers(self) -> None:
        legacy = {"X-RateLimit-Limit": "1200", "X-RateLimit-Remaining": "37", "X-RateLimit-Reset": "42"}
        assert parse_rate_limit(legacy) == RateLimitObservation(37, 42.0, 1200, None, None)
        at = time.time() + 30
        epoch = {"x-ratelimit-remaining": "5", "x-ratelimit-reset": f"{at:.0f}"}
        assert parse_rate_limit(epoch).reset == pytest.approx(30, abs=2), "a POSIX reset time"
        draft = {"RateLimit-Limit": "100, 100;w=60", "RateLimit-Remaining": "9", "RateLimit-Reset": "5"}
        assert parse_rate_limit(draft) == RateLimitObservation(9, 5.0, 100, 60.0, None)

    def test_the_ietf_form_wins_over_the_legacy_one(self) -> None:
        both = {**ietf('"default";r=3;t=4'), "X-RateLimit-Remaining": "900", "X-RateLimit-Reset": "1"}
        assert parse_rate_limit(both).remaining == 3

    @pytest.mark.parametrize(
        "headers",
        [
            None,
            {},
            {"Content-Type": "application/json"},
            ietf(""),
            ietf("garbage"),
            ietf('"default";r=-1;t=30'),
            ietf('"default";r=ten;t=30'),
            ietf('"default";r=5;t=-2'),
            ietf('"default;r=5;t=2'),
            ietf('"default"x;r=5;t=2'),
            ietf("=;;,,"),
            ietf('"default";r=5;t=nan'),
            {"X-RateLimit-Remaining": "lots", "X-RateLimit-Reset": "10"},
            {"X-RateLimit-Remaining": "10"},
        ],
    )
    def test_absent_or_malformed_headers_say_nothing(self, headers: dict[str, str] | None) -> None:
        assert parse_rate_limit(headers) is None

    def test_a_malformed_item_does_not_spoil_the_others(self) -> None:
        observed = parse_rate_limit(ietf('"a";r=x;t=1, "b";r=4;t=8', '"b";q=bad;w=1, "c";q=9;w=9'))
        assert (observed.name, observed.remaining, observed.quota) == ("b", 4, None)

    def test_reserve(self) -> None:
        assert [reserve_for(q) for q in (1200, 30, 20, 5, 1)] == [120, 3, 2, 1, 1]
        assert reserve_for(None, largest_remaining=250) == 25, "without a policy: 10 % of the most seen left"
        assert reserve_for(None) == 1


# -- pacing --------------------------------------------------------------------------------------------------


def settle(quota: ServerQuota, headers: dict[str, str] | None) -> None:
    quota.claim().settle(headers)


class TestPacing:
    def test_nothing_known_nothing_waits(self) -> None:
        quota = ServerQuota(clock=FakeClock(100.0))
        claims = [quota.try_claim() for _ in range(1)]
        assert claims[0][0] == 0.0
        claims[0][1].settle({"Content-Type": "application/json"})  # an answer without headers
        assert all(quota.try_claim()[1] is not None for _ in range(50)), "no headers: as before, no waiting"
        assert quota.latest is None

    def test_until_the_first_answer_one_request_finds_out(self) -> None:
        clock = FakeClock(100.0)
        quota = ServerQuota(clock=clock)
        wait, first = quota.try_claim()
        assert wait == 0
        assert first is not None
        wait, second = quota.try_claim()
        assert second is None
        assert 0 < wait <= 0.05
        clock.now += 6  # the first one never answered: after a while the others go anyway
        assert quota.try_claim()[1] is not None

    def test_spreads_what_is_left_above_the_reserve_over_the_time_to_reset(self) -> None:
        clock = FakeClock(100.0)
        quota = ServerQuota(clock=clock)
        settle(quota, ietf('"default";r=12;t=10', '"default";q=20;w=10'))  # reserve 2: 10 left over 10 s
        assert quota.reserve() == 2
        assert quota.delay() == pytest.approx(1.0)
        clock.now += 1.0
        _, claim = quota.try_claim()
        assert claim is not None
        assert quota.delay() == pytest.approx(9 / 9), "9 s left, 9 above the reserve with one sent"
        claim.settle(None)  # no answer: the server may still have counted it
        assert quota.delay() == pytest.approx(9 / 9)
        clock.now += 6.0
        assert quota.delay() == 0.0
        assert quota.try_claim()[1] is not None
        assert quota.delay() == pytest.approx(5 / 8), "3 s to t, but spread over half the window at least"

    def test_claims_before_the_reset_never_exceed_what_is_left_above_the_reserve(self) -> None:
        clock = FakeClock(100.0)
        quota = ServerQuota(clock=clock)
        remaining = 30
        settle(quota, ietf(f'"d";r={remaining};t=10', '"d";q=40;w=10'))  # reserve 4
        sent = 0
        while clock.now < 109.999:
            wait, claim = quota.try_claim()
            if claim is None:
                clock.now += min(wait, 109.999 - clock.now) if wait > 0 else 0.001
                continue
            sent += 1
            remaining -= 1
            claim.settle(ietf(f'"d";r={remaining};t={110 - clock.now:.3f}', '"d";q=40;w=10'))
        assert 15 <= sent <= 26  # spread over the 10 s (slowing down as t nears), the reserve of 4 untouched

    def test_at_the_reserve_one_probe_per_t_then_the_answer_decides(self) -> None:
        clock = FakeClock(100.0)
        quota = ServerQuota(clock=clock)
        settle(quota, ietf('"default";r=3;t=25', '"default";q=30;w=60'))  # the reserve: 3
        assert quota.delay() == pytest.approx(25.0)
        clock.now += 25
        assert quota.latest is not None, "t passing shows no refill: the answer stays in force"
        wait, probe = quota.try_claim()
        assert (wait, probe is not None) == (0.0, True)
        clock.now += 100
        assert quota.try_claim()[1] is None, "one probe at a time: its answer comes first"
        probe.settle(ietf('"default";r=3;t=1', '"default";q=30;w=60'))  # some came back, and went again
        assert quota.delay() == pytest.approx(20.0), "t of 1 s: still one probe per window / reserve"
        clock.now += 20
        quota.claim().settle(ietf('"default";r=20;t=1', '"default";q=30;w=60'))
        assert quota.delay() < 2.0, "17 above the reserve: spending resumes"

    def test_a_429_answer_says_wait_for_the_lockout(self) -> None:
        clock = FakeClock(100.0)
        quota = ServerQuota(clock=clock)
        settle(quota, {"Retry-After": "300", **ietf('"default";r=0;t=300', '"default";q=1200;w=300')})
        assert quota.delay() == pytest.approx(300.0)

    def test_a_reset_beyond_the_lockout_is_not_believed(self) -> None:
        quota = ServerQuota(clock=FakeClock(100.0))
        settle(quota, ietf('"default";r=0;t=86400'))
        assert quota.delay() == pytest.approx(MAX_WAIT)

    def test_bursts_only_while_the_pool_is_comfortable(self) -> None:
        clock = FakeClock(100.0)
        quota = ServerQuota(clock=clock)
        settle(quota, ietf('"default";r=1100;t=300', '"default";q=1200;w=300'))
        clock.now += 60  # idle: the bucket fills
        assert sum(quota.try_claim()[1] is not None for _ in range(20)) == 10
        low = ServerQuota(clock=clock)
        settle(low, ietf('"default";r=20;t=300', '"default";q=1200;w=300'))  # below the reserve of 120
        clock.now += 60
        assert low.try_claim()[1] is None

    def test_wait_blocks_for_what_the_quota_says_bounded(self) -> None:
        clock = FakeClock(100.0)
        quota = ServerQuota(clock=clock)
        settle(quota, ietf('"default";r=1;t=100', '"default";q=10;w=100'))
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            clock.now += seconds

        claim = quota.wait(max_wait=4.5, sleep=sleep)
        assert claim is not None
        assert sum(slept) == pytest.approx(4.5), "gives up at 4.5 s"
        assert max(slept) <= 1.0, "re-checks every second"

    def test_logs_once_per_episode_without_the_secret(self, caplog: pytest.LogCaptureFixture) -> None:
        clock = FakeClock(100.0)
        quota = quota_for(credential_fingerprint("https://api.example", None, SECRET))
        quota._clock = clock
        caplog.set_level(logging.INFO, logger="airflow_provider_cftunnel.ratelimit")
        try:
            settle(quota, ietf('"default";r=900;t=300', '"default";q=1200;w=300'))
            for _ in range(5):
                quota.try_claim()
            assert caplog.records == [], "a comfortable pool: spacing is not news"
            for remaining in (500, 400, 300):
                settle(quota, ietf(f'"default";r={remaining};t=200', '"default";q=1200;w=300'))
                for _ in range(5):
                    quota.try_claim()
            (record,) = caplog.records
            assert record.getMessage().startswith(
                "Cloudflare reports 500 requests left (more in 200 s, how many unknown); pacing"
            )
            assert quota.pacing
            assert quota.episodes == 1
            settle(quota, ietf('"default";r=1000;t=100', '"default";q=1200;w=300'))
            assert not quota.pacing, "the pool is comfortable again: the episode is over"
            settle(quota, ietf('"default";r=200;t=100', '"default";q=1200;w=300'))
            quota.try_claim()
            assert quota.episodes == 2
            assert len(caplog.records) == 2
            assert all(SECRET not in r.getMessage() for r in caplog.records)
        finally:
            clear_quotas()


# -- sharing -----------------------------------------------------------------------------------------------


class TestSharing:
    def test_one_quota_per_credential_found_by_fingerprint(self) -> None:
        try:
            fingerprint = credential_fingerprint("https://api.cloudflare.com/client/v4", None, SECRET)
            assert SECRET not in fingerprint
            assert quota_for(fingerprint) is quota_for(
                credential_fingerprint("https://api.cloudflare.com/client/v4", None, SECRET)
            )
            other = credential_fingerprint("https://api.cloudflare.com/client/v4", "a@example.com", SECRET)
            assert quota_for(other) is not quota_for(fingerprint)
            assert SECRET not in repr(quota_for(fingerprint))
            assert SECRET not in repr(quota_for(fingerprint).claim())
        finally:
            clear_quotas()

    async def test_the_claim_acquired_on_the_loop_is_sent_once_by_the_request_in_the_thread(self) -> None:
        quota, other = ServerQuota(), ServerQuota()
        claim = await RequestBudget(100, 1.0, quota=quota).acquire()
        assert claim is not None

        def in_thread() -> tuple[object, object, object]:  # the hook's thread, as asyncio.to_thread runs it
            return carried_claim(other), claim_request(quota), claim_request(quota)

        not_other, first, second = await asyncio.to_thread(in_thread)
        assert (not_other, first) == (None, claim), "the context carries the claim to its request, once"
        assert second is not claim, "a second request of the same call waits for its own claim"
        assert quota.in_flight == 2
        claim.settle(None)
        claim.settle(None)
        assert quota.in_flight == 1

    async def test_a_claim_is_carried_only_by_its_own_task(self) -> None:
        quota = ServerQuota()
        budget = RequestBudget(100, 1.0, quota=quota)
        acquired = asyncio.Event()

        async def poller() -> None:
            await budget.acquire()
            acquired.set()
            await asyncio.sleep(0.1)

        task = asyncio.create_task(poller())
        await acquired.wait()
        assert await asyncio.to_thread(carried_claim, quota) is None, "another task's claim is not this one's"
        await task

    async def test_the_budget_waits_for_the_pool_without_blocking_the_loop(self) -> None:
        quota = ServerQuota()
        # reserve 3: 20 over half the window at least (t of 1 s may bring back only a little)
        settle(quota, ietf('"default";r=23;t=1', '"default";q=30;w=10'))
        budget = RequestBudget(1000, 1.0, burst=10, quota=quota)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick = asyncio.create_task(ticker())
        started = time.monotonic()
        for _ in range(5):
            claim = await budget.acquire()
            assert claim is not None
            claim.settle(None)
        tick.cancel()
        elapsed = time.monotonic() - started
        assert 0.6 <= elapsed <= 2.5, elapsed  # ~0.25 s apart: the budget alone would allow all 5 at once
        assert budget.quota_waited > 0.5
        assert ticks >= 20, "the loop kept running while the budget waited"

    async def test_pollers_waiting_for_the_pool_take_turns(self) -> None:
        quota = ServerQuota()
        settle(quota, ietf('"default";r=43;t=2', '"default";q=30;w=10'))  # 40 above the reserve over 2 s
        budget = RequestBudget(1000, 1.0, burst=10, quota=quota)
        grants: list[int] = []

        async def poller(number: int) -> None:
            for _ in range(4):
                claim = await budget.acquire()
                grants.append(number)
                assert claim is not None
                claim.settle(None)

        await asyncio.gather(*(poller(n) for n in range(5)))
        # first come, first served: every round of five grants serves each poller once
        assert [sorted(grants[i : i + 5]) for i in range(0, 20, 5)] == [[0, 1, 2, 3, 4]] * 4

    async def test_headers_never_make_the_budget_send_faster(self) -> None:
        quota = ServerQuota()
        settle(quota, ietf('"default";r=100000;t=1', '"default";q=100000;w=1'))  # plenty left
        budget = RequestBudget(10, 1.0, burst=5, quota=quota)
        times = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            await budget.acquire()
            times.append(time.monotonic())
        in_first_second = [t for t in times if t < times[0] + 1.0]
        assert len(in_first_second) <= 10  # the connection's ceiling holds whatever the headers say
