from __future__ import annotations

import asyncio
import itertools

import pendulum
import pytest

from airflow_provider_cftunnel.triggers.tunnel import CloudflareTunnelConnectorTrigger, RequestBudget
from tests.support.ids import ACCOUNT_ID, CONNECTOR_ID, TUNNEL_ID

TRIGGER_PATH = "airflow_provider_cftunnel.triggers.tunnel.CloudflareTunnelConnectorTrigger"


RULE_KEYS = ("min_connections", "connector_id", "started_after", "min_colos", "stable_for")


def make_trigger(**overrides) -> CloudflareTunnelConnectorTrigger:
    """Return a trigger; the rule's keys among ``overrides`` go into its ``rule``, as the sensor writes it."""
    kwargs = {
        "tunnel_id": TUNNEL_ID,
        "account_id": ACCOUNT_ID,
        "connector_id": CONNECTOR_ID,
        "min_connections": 2,
        "cloudflare_conn_id": "cloudflare_default",
        "poll_interval": 0.2,
    }
    kwargs.update(overrides)
    kwargs["rule"] = {key: kwargs.pop(key) for key in RULE_KEYS if key in kwargs}
    return CloudflareTunnelConnectorTrigger(**kwargs)


class TestSerialize:
    def test_exact_output(self):
        assert make_trigger().serialize() == (
            TRIGGER_PATH,
            {
                "tunnel_id": TUNNEL_ID,
                "account_id": ACCOUNT_ID,
                "rule": {"connector_id": CONNECTOR_ID, "min_connections": 2},
                "ready_url": None,
                "cloudflare_conn_id": "cloudflare_default",
                "poll_interval": 0.2,
                "hook_params": {},
                "timeout_at": None,
                "last_reason": None,
            },
        )

    def test_kwargs_of_an_earlier_version_still_load(self):
        legacy = CloudflareTunnelConnectorTrigger(
            tunnel_id=TUNNEL_ID,
            account_id=ACCOUNT_ID,
            connector_id=None,
            min_connections=3,
            min_colos=2,
            started_after="2026-12-01T10:00:00+00:00",
            cloudflare_conn_id="cloudflare_default",
            poll_interval=5.0,
            hook_params={},
        )
        assert legacy.serialize()[1]["rule"] == {
            "connector_id": None,
            "min_connections": 3,
            "min_colos": 2,
            "started_after": "2026-12-01T10:00:00+00:00",
        }

    def test_round_trip_through_airflow_serde(self):
        try:
            from airflow.sdk.serde import deserialize, serialize
        except ImportError:  # Airflow 2.11
            from airflow.serialization.serde import deserialize, serialize

        path, kwargs = make_trigger(connector_id=None).serialize()
        assert path == TRIGGER_PATH
        restored = deserialize(serialize(kwargs))
        assert restored == kwargs
        assert CloudflareTunnelConnectorTrigger(**restored).serialize() == (path, kwargs)

    def test_kwargs_are_plain_data(self):
        _, kwargs = make_trigger(hook_params={"timeout": [3.0, 9.0], "max_retries": 2}).serialize()
        assert kwargs["hook_params"] == {"timeout": [3.0, 9.0], "max_retries": 2}
        plain = (str, int, float, bool)
        assert all(v is None or type(v) in plain for k, v in kwargs.items() if k not in ("hook_params", "rule"))
        assert all(v is None or type(v) in plain for v in kwargs["rule"].values())
        assert all(type(v) in (*plain, list) for v in kwargs["hook_params"].values())


class TestInvalidInput:
    @pytest.mark.parametrize(
        ("override", "needle"),
        [
            ({"account_id": "nope"}, "Invalid Cloudflare account id"),
            ({"tunnel_id": "../x"}, "Invalid tunnel_id"),
            ({"connector_id": "x"}, "Invalid connector_id"),
        ],
    )
    async def test_bad_ids_end_with_an_error_event(self, override, needle):
        events = [event async for event in make_trigger(**override).run()]
        assert len(events) == 1
        assert events[0].payload["status"] == "error"
        assert needle in events[0].payload["message"]


class TestRequestBudget:
    def test_burst_then_spacing(self):
        budget = RequestBudget(requests=100, period=10.0, burst=5)
        waits = [budget.reserve() for _ in range(10)]
        assert waits[:5] == [0.0] * 5
        # after the burst each request waits one more spacing (10 s / (100 - 5)) than the one before
        assert waits[5] == pytest.approx(budget.spacing, abs=0.01)
        assert waits[9] == pytest.approx(5 * budget.spacing, abs=0.01)

    def test_never_more_than_the_limit_in_any_window(self):
        budget = RequestBudget(requests=30, period=3.0, burst=10)
        times, clock = [], 0.0
        for _ in range(200):
            wait = budget.reserve()
            times.append(clock + wait)
        # reserve() is relative to now; without time passing, slot k starts at wait_k
        times.sort()
        for i, start in enumerate(times):
            in_window = [t for t in times[i:] if t < start + 3.0]
            assert len(in_window) <= 30

    async def test_acquire_sleeps_for_its_slot(self):
        budget = RequestBudget(requests=20, period=1.0, burst=2)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(6):
            await budget.acquire()
        elapsed = loop.time() - start
        assert elapsed >= 4 * budget.spacing * 0.9
        assert budget.granted == 6


# -- against the simulator -------------------------------------------------------------------------------


@pytest.fixture
def sim(cloudflare_simulator_factory, monkeypatch):
    sim = cloudflare_simulator_factory({"up_after": 3600})  # not registered until a test says so
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", sim.connection_json())
    return sim


def sim_trigger(sim, **overrides) -> CloudflareTunnelConnectorTrigger:
    kwargs = {"account_id": sim.account_id, "tunnel_id": sim.tunnel_id, "connector_id": None, "min_connections": 2}
    return make_trigger(**{**kwargs, **overrides})


async def first_event(trigger, timeout: float = 20.0):
    run = trigger.run()
    try:
        return await asyncio.wait_for(run.__anext__(), timeout)
    finally:
        await run.aclose()


class TestEvents:
    async def test_success(self, sim):
        sim.set_connector(live=4)
        event = await first_event(sim_trigger(sim))
        assert event.payload["status"] == "success"
        assert event.payload["connector"]["id"] == sim.connector_id
        assert set(event.payload) == {"status", "connector"}

    async def test_auth_error_ends_at_once(self, sim, set_connection):
        set_connection(password="wrong-token-abcdef", host=sim.base_url, extra={"account_id": sim.account_id})
        event = await first_event(sim_trigger(sim))
        assert event.payload["status"] == "error"
        assert "HTTP 403" in event.payload["message"]
        assert "wrong-token-abcdef" not in str(event.payload)
        assert len(sim.requests) == 1

    async def test_not_registered_then_ready(self, sim):
        loop = asyncio.get_running_loop()
        loop.call_later(0.7, lambda: sim.set_connector(live=2))
        event = await first_event(sim_trigger(sim, connector_id=sim.connector_id))
        assert event.payload["connector"]["id"] == sim.connector_id
        assert len(sim.requests_matching("/connections$")) >= 2

    async def test_rate_limited_then_ready(self, sim):
        sim.set_connector(live=2)
        sim.inject_fault("/connections$", kind="rate_limit", retry_after=1, count=1)
        started = asyncio.get_running_loop().time()
        event = await first_event(sim_trigger(sim))
        assert event.payload["status"] == "success"
        assert asyncio.get_running_loop().time() - started >= 0.95  # Retry-After honoured
        assert [r.status for r in sim.requests_matching("/connections$")] == [429, 200]

    async def test_server_errors_keep_polling(self, sim):
        sim.set_connector(live=2)
        sim.inject_fault("/connections$", kind="server_error", status=503, body="html", count=2)
        event = await first_event(sim_trigger(sim, poll_interval=0.05))
        assert event.payload["status"] == "success"

    async def test_wrong_account_is_an_error_event(self, sim):
        event = await first_event(sim_trigger(sim, account_id="f" * 32))
        assert event.payload["status"] == "error"
        assert "7003" in event.payload["message"]

    async def test_missing_connection_is_an_error_event(self, sim):
        event = await first_event(sim_trigger(sim, cloudflare_conn_id="no_such_connection"))
        assert event.payload["status"] == "error"
        assert "no_such_connection" in event.payload["message"]

    async def test_bad_connection_settings_are_an_error_event(self, sim, set_connection):
        set_connection(password=sim.api_token, host=sim.base_url, extra={"rate_limit_requests": "lots"})
        event = await first_event(sim_trigger(sim))
        assert event.payload["status"] == "error"
        assert "rate_limit_requests must be a whole number" in event.payload["message"]

    async def test_an_unexpected_error_ends_every_waiting_trigger(self, sim, monkeypatch):
        from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook

        def broken(*args, **kwargs):
            raise RuntimeError("bug")

        monkeypatch.setattr(CloudflareHook, "list_tunnel_connectors", broken)
        events = await asyncio.gather(first_event(sim_trigger(sim)), first_event(sim_trigger(sim, min_connections=1)))
        assert [e.payload["status"] for e in events] == ["error", "error"]
        assert "Unexpected error while polling tunnel" in events[0].payload["message"]


class TestEventLoop:
    async def test_a_slow_answer_never_holds_up_the_loop(self, sim):
        sim.set_connector(live=2)
        sim.inject_fault("/connections$", kind="slow", delay=1.5, count=1)
        ticks: list[float] = []

        async def timer():
            loop = asyncio.get_running_loop()
            while True:
                ticks.append(loop.time())
                await asyncio.sleep(0.05)

        ticker = asyncio.create_task(timer())
        try:
            event = await first_event(sim_trigger(sim))
        finally:
            ticker.cancel()
        assert event.payload["status"] == "success"
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert len(ticks) > 20
        assert max(gaps) < 0.5


class TestSharedPolling:
    async def test_thirty_triggers_make_one_request_per_interval(self, sim):
        from airflow_provider_cftunnel.triggers.tunnel import TunnelPoller

        connectors = [sim.set_connector(live=0)] + [sim.add_connector(live=0) for _ in range(9)]
        triggers = [
            sim_trigger(sim, connector_id=connectors[i % 10], min_connections=1, poll_interval=0.5) for i in range(30)
        ]
        tasks = [asyncio.create_task(first_event(t, timeout=30)) for t in triggers]
        await asyncio.sleep(2.6)  # about 5 poll intervals with every trigger waiting
        pollers = TunnelPoller.active()
        assert len(pollers) == 1
        polls = len(sim.requests_matching("/connections$"))
        assert 4 <= polls <= 7, polls  # ~1 per 0.5 s interval, not 30
        for connector in connectors:
            sim.set_connector(connector_id=connector, live=1)
        events = await asyncio.gather(*tasks)
        assert sorted(e.payload["connector"]["id"] for e in events) == sorted(connectors * 3)
        await asyncio.sleep(0)
        assert TunnelPoller.active() == {}  # the poller stops when its last trigger is done

    async def test_separate_tunnels_poll_separately(self, sim):
        other = sim.add_tunnel(name="other")
        sim.set_connector(live=2)
        sim.set_connector(tunnel_id=other, connector_id="9b2f4c1e-0000-4000-8000-000000000001", live=2)
        events = await asyncio.gather(first_event(sim_trigger(sim)), first_event(sim_trigger(sim, tunnel_id=other)))
        assert {e.payload["status"] for e in events} == {"success"}
        assert len(sim.requests_matching("/connections$")) == 2

    async def test_budget_spaces_requests_of_one_token(self, sim, set_connection):
        set_connection(
            password=sim.api_token,
            host=sim.base_url,
            extra={"account_id": sim.account_id, "rate_limit_requests": 12, "rate_limit_period": 2},
        )
        tunnels = [sim.add_tunnel(name=f"t{i}") for i in range(8)]
        tasks = [
            asyncio.create_task(first_event(sim_trigger(sim, tunnel_id=t, poll_interval=0.1), 30)) for t in tunnels
        ]
        await asyncio.sleep(2.0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        times = sorted(r.time for r in sim.requests_matching("/connections$"))
        # without the budget: 8 tunnels x 10 polls/s = ~160 requests; with it at most 12 per 2 s window
        assert 8 <= len(times) <= 13
        assert sim.rate_limited_count == 0


class TestRollingRestartAndTypedErrors:
    async def test_the_old_connector_does_not_fire_the_new_one_does(self, sim):
        old = sim.set_connector(live=4)
        await asyncio.sleep(0.05)
        trigger = sim_trigger(sim, started_after=pendulum.now("UTC").isoformat(), poll_interval=0.2)
        run = trigger.run()
        try:
            pending = asyncio.ensure_future(run.__anext__())
            await asyncio.sleep(1.0)
            assert not pending.done()  # several polls, the old connector is ignored
            new = sim.add_connector(live=4)
            event = await asyncio.wait_for(pending, 10)
        finally:
            await run.aclose()
        assert event.payload["connector"]["id"] == new != old

    async def test_error_events_carry_the_error_type_status_and_codes(self, sim, set_connection):
        from airflow_provider_cftunnel.exceptions import CloudflareAuthError, error_from_event

        set_connection(password="revoked-token-88bb", host=sim.base_url, extra={"account_id": sim.account_id})
        event = await first_event(sim_trigger(sim))
        assert event.payload["status"] == "error"
        assert event.payload["error"]["type"] == "CloudflareAuthError"
        assert event.payload["error"]["status_code"] == 403
        assert event.payload["error"]["errors"] == [{"code": 10000, "message": "Authentication error"}]
        assert "revoked-token-88bb" not in str(event.payload)
        assert isinstance(error_from_event(event.payload), CloudflareAuthError)

    async def test_hook_params_are_used_by_the_poller(self, sim):
        from airflow_provider_cftunnel.hooks import hook_for_triggerer

        hook = await hook_for_triggerer("cloudflare_default", {"timeout": [2, 3], "max_retry_after": 7})
        assert (hook.timeout, hook.max_retries, hook.max_retry_after) == ((2.0, 3.0), 0, 7.0)
        sim.set_connector(live=4)
        event = await first_event(sim_trigger(sim, hook_params={"timeout": [2, 3]}))
        assert event.payload["status"] == "success"


def test_poll_delay_backs_off_on_transient_errors_and_honours_retry_after():
    from airflow_provider_cftunnel.exceptions import CloudflareAPIError, CloudflareRateLimitError
    from airflow_provider_cftunnel.triggers.tunnel import MAX_BACKOFF, poll_delay

    assert poll_delay(5.0, 0, None) == 5.0
    assert all(5.0 <= poll_delay(5.0, 3, CloudflareAPIError("502", status_code=502)) <= 40.0 for _ in range(50))
    assert all(poll_delay(5.0, 30, None) <= MAX_BACKOFF for _ in range(50))
    assert poll_delay(5.0, 0, CloudflareRateLimitError("slow down", retry_after=120.0)) == 120.0
