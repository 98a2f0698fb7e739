from __future__ import annotations

import asyncio

import pytest

from airflow_provider_cftunnel.triggers.tunnel import CloudflareTunnelConnectorTrigger, RequestBudget
from tests.conftest import ACCOUNT_ID, CONNECTOR_ID, TUNNEL_ID

TRIGGER_PATH = "airflow_provider_cftunnel.triggers.tunnel.CloudflareTunnelConnectorTrigger"


def make_trigger(**overrides) -> CloudflareTunnelConnectorTrigger:
    kwargs = {
        "tunnel_id": TUNNEL_ID,
        "account_id": ACCOUNT_ID,
        "connector_id": CONNECTOR_ID,
        "min_connections": 2,
        "cloudflare_conn_id": "cloudflare_default",
        "poll_interval": 0.2,
    }
    kwargs.update(overrides)
    return CloudflareTunnelConnectorTrigger(**kwargs)


class TestSerialize:
    def test_exact_output(self):
        assert make_trigger().serialize() == (
            TRIGGER_PATH,
            {
                "tunnel_id": TUNNEL_ID,
                "account_id": ACCOUNT_ID,
                "connector_id": CONNECTOR_ID,
                "min_connections": 2,
                "cloudflare_conn_id": "cloudflare_default",
                "poll_interval": 0.2,
            },
        )

    def test_round_trip_through_airflow_serde(self):
        from airflow.sdk.serde import deserialize, serialize

        path, kwargs = make_trigger(connector_id=None).serialize()
        assert path == TRIGGER_PATH
        restored = deserialize(serialize(kwargs))
        assert restored == kwargs
        assert CloudflareTunnelConnectorTrigger(**restored).serialize() == (path, kwargs)

    def test_kwargs_are_plain_data(self):
        _, kwargs = make_trigger().serialize()
        assert all(v is None or type(v) in (str, int, float, bool) for v in kwargs.values())


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
