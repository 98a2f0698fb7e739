"""The sensor's real code against the local simulator: poke outcomes, poke mode, deferral."""

from __future__ import annotations

import time
from datetime import timedelta

import pendulum
import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_provider_cftunnel.exceptions import CloudflareAPIError, CloudflareAuthError, CloudflareConfigError
from airflow_provider_cftunnel.sensors.tunnel import TRIGGER_TIMEOUT_GRACE, CloudflareTunnelConnectorSensor
from airflow_provider_cftunnel.triggers.tunnel import CloudflareTunnelConnectorTrigger


def make_sensor(sim, **kwargs) -> CloudflareTunnelConnectorSensor:
    kwargs = {"task_id": "wait", "tunnel_id": sim.tunnel_id, "poke_interval": 0.2, "timeout": 10, **kwargs}
    sensor = CloudflareTunnelConnectorSensor(**kwargs)
    # keep hook retries short so transient-error tests stay fast
    from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook

    sensor.hook = CloudflareHook(sensor.cloudflare_conn_id, max_retries=1, backoff_factor=0.01, timeout=(2, 2))
    return sensor


@pytest.fixture
def sim(cloudflare_simulator_factory, monkeypatch):
    sim = cloudflare_simulator_factory({"up_after": 3600})  # nothing registered until a test says so
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", sim.connection_json())
    return sim


class TestPoke:
    def test_404_means_not_registered_yet(self, sim, capsys):
        sensor = make_sensor(sim, connector_id=sim.connector_id)
        assert sensor.poke({}) is False
        assert sim.requests_matching("/connectors/")[0].status == 404
        assert "not ready yet" in capsys.readouterr().out  # Airflow's structlog writes task logs to stdout

    def test_ready_connector_is_returned_as_xcom(self, sim):
        sim.set_connector(live=4)
        result = make_sensor(sim, connector_id=sim.connector_id, min_connections=4).poke({})
        assert result.is_done
        assert result.xcom_value["id"] == sim.connector_id
        assert len(result.xcom_value["conns"]) == 4

    def test_pending_connections_do_not_count(self, sim):
        sim.set_connector(live=1, pending=3)
        assert make_sensor(sim, min_connections=2).poke({}) is False
        sim.set_connector(live=2, pending=2)
        assert make_sensor(sim, min_connections=2).poke({}).is_done

    def test_whole_tunnel_any_connector(self, sim):
        sim.set_connector(live=1)
        replica = sim.add_connector(live=3)
        result = make_sensor(sim, min_connections=3).poke({})
        assert result.xcom_value["id"] == replica
        assert sim.requests_matching("/connections$")

    def test_restart_gives_a_new_connector_id(self, sim):
        sim.set_connector(live=4)
        new_id = sim.restart_connector(live=4, tracking=60)
        result = make_sensor(sim, min_connections=4).poke({})
        assert result.xcom_value["id"] == new_id

    def test_transient_errors_mean_not_ready(self, sim):
        sim.set_connector(live=4)
        sim.inject_fault("/connections$", kind="server_error", status=503, count=None)
        assert make_sensor(sim).poke({}) is False
        sim.clear_faults()
        assert make_sensor(sim).poke({}).is_done

    def test_rate_limit_after_retries_means_not_ready(self, sim):
        sim.inject_fault("/connections$", kind="rate_limit", retry_after=0, count=None)
        assert make_sensor(sim).poke({}) is False

    def test_bad_credentials_fail_at_once(self, sim, set_connection):
        set_connection(password="bad-token-123456", host=sim.base_url, extra={"account_id": sim.account_id})
        with pytest.raises(CloudflareAuthError) as info:
            make_sensor(sim).poke({})
        assert "bad-token-123456" not in str(info.value)

    def test_wrong_account_fails_at_once(self, sim):
        with pytest.raises(Exception, match="check the account id"):
            make_sensor(sim, account_id="f" * 32).poke({})

    def test_malformed_id_fails_before_any_request(self, sim):
        with pytest.raises(CloudflareConfigError):
            make_sensor(sim, tunnel_id="not-a-uuid").poke({})
        assert sim.requests == []

    @pytest.mark.parametrize("value", [0, -1, 1.5, "2", True])
    def test_min_connections_must_be_a_positive_int(self, sim, value):
        with pytest.raises(ValueError, match="min_connections"):
            CloudflareTunnelConnectorSensor(task_id="x", tunnel_id=sim.tunnel_id, min_connections=value)


class TestPokeMode:
    def test_waits_until_ready(self, sim):
        sim.inject_fault("/connections$", kind="server_error", status=502, count=2)
        started = time.monotonic()
        sim.set_connector(live=0, pending=0)
        sensor = make_sensor(sim, min_connections=2)
        import threading

        threading.Timer(1.0, lambda: sim.set_connector(live=2)).start()
        result = sensor.execute({})
        assert result["id"] == sim.connector_id
        assert time.monotonic() - started >= 1.0
        assert len(sim.requests_matching("/connections$")) >= 3

    def test_timeout(self, sim):
        with pytest.raises(AirflowSensorTimeout):
            make_sensor(sim, timeout=0.5).execute({})

    def test_soft_fail_skips_on_timeout(self, sim):
        with pytest.raises(AirflowSkipException):
            make_sensor(sim, timeout=0.5, soft_fail=True).execute({})


class TestDeferrable:
    def test_ready_at_once_does_not_defer(self, sim):
        sim.set_connector(live=4)
        result = make_sensor(sim, deferrable=True).execute({})
        assert result["id"] == sim.connector_id

    def test_defers_to_the_trigger_with_the_sensor_timeout(self, sim):
        sensor = make_sensor(sim, deferrable=True, timeout=321, min_connections=3, poke_interval=7)
        with pytest.raises(TaskDeferred) as info:
            sensor.execute({})
        deferred = info.value
        assert isinstance(deferred.trigger, CloudflareTunnelConnectorTrigger)
        assert deferred.method_name == "execute_complete"
        # Airflow's own timeout comes later, so the trigger's timeout event (which says why) comes first
        assert deferred.timeout == timedelta(seconds=321 + 7 + TRIGGER_TIMEOUT_GRACE)
        kwargs = deferred.trigger.serialize()[1]
        assert 320 < kwargs.pop("timeout_at") - time.time() <= 321
        assert kwargs == {
            "tunnel_id": sim.tunnel_id,
            "account_id": sim.account_id,  # resolved from the connection, so the trigger needs no lookup for it
            "rule": {
                "min_connections": 3,
                "connector_id": None,
                "started_after": None,
                "min_colos": 1,
                "stable_for": 0.0,
            },
            "ready_url": None,
            "cloudflare_conn_id": "cloudflare_default",
            "poll_interval": 7.0,
            "hook_params": {},
            "last_reason": "not ready: no connector registered",
        }

    def test_bad_credentials_fail_before_deferring(self, sim, set_connection):
        set_connection(password="bad-token-123456", host=sim.base_url, extra={"account_id": sim.account_id})
        with pytest.raises(CloudflareAuthError):
            make_sensor(sim, deferrable=True).execute({})

    def test_default_comes_from_config(self, sim):
        assert make_sensor(sim).deferrable is False

    def test_execute_complete_returns_the_connector(self, sim):
        connector = {"id": sim.connector_id, "conns": [], "new_field": 1}
        assert make_sensor(sim).execute_complete({}, {"status": "success", "connector": connector}) == connector

    @pytest.mark.parametrize("event", [None, {}, {"status": "success"}, {"status": "odd"}])
    def test_execute_complete_raises_on_missing_or_unexpected_event(self, sim, event):
        with pytest.raises(AirflowException, match=f"tunnel {sim.tunnel_id}"):
            make_sensor(sim).execute_complete({}, event)

    def test_execute_complete_raises_an_old_style_error_event_as_api_error(self, sim):
        with pytest.raises(CloudflareAPIError, match="Cloudflare API error 10000"):
            make_sensor(sim).execute_complete(
                {}, {"status": "error", "message": "Cloudflare API error 10000 (HTTP 403)"}
            )


class TestRollingRestart:
    """``started_after``: the old connector, still live during a rolling restart, does not open the gate."""

    def test_poke_waits_for_the_new_connector(self, sim):
        old = sim.set_connector(live=4)
        time.sleep(0.05)
        deploy = pendulum.now("UTC")
        sensor = make_sensor(sim, started_after=deploy.isoformat(), min_connections=2)
        assert sensor.poke({}) is False
        new = sim.add_connector(live=4)
        result = sensor.poke({})
        assert result.xcom_value["id"] == new != old

    def test_poke_accepts_a_datetime_and_min_colos(self, sim):
        sim.set_connector(live=4)
        assert make_sensor(sim, started_after=pendulum.datetime(2000, 1, 1), min_colos=2).poke({}).is_done
        assert make_sensor(sim, min_colos=3).poke({}) is False  # the simulator's connectors reach DFW and IAD

    def test_deferred_trigger_gets_started_after_and_the_rule(self, sim):
        sim.set_connector(live=4)
        sensor = make_sensor(sim, deferrable=True, started_after="2999-01-01T00:00:00Z", min_colos=2)
        with pytest.raises(TaskDeferred) as info:
            sensor.execute({})
        rule = info.value.trigger.serialize()[1]["rule"]
        assert rule["started_after"] == "2999-01-01T00:00:00+00:00"
        assert rule["min_colos"] == 2

    def test_malformed_started_after_is_a_clear_error(self, sim):
        with pytest.raises(CloudflareConfigError, match="started_after"):
            make_sensor(sim, started_after="after lunch").poke({})


class TestSameErrorInEveryMode:
    def test_a_revoked_token_raises_the_same_typed_error_after_deferral(self, sim, set_connection):
        from airflow_provider_cftunnel.exceptions import error_to_event

        set_connection(password="revoked-token-77aa", host=sim.base_url, extra={"account_id": sim.account_id})
        sensor = make_sensor(sim)
        with pytest.raises(CloudflareAuthError) as poked:
            sensor.poke({})
        with pytest.raises(CloudflareAuthError) as resumed:
            sensor.execute_complete({}, error_to_event(poked.value))
        assert str(resumed.value) == str(poked.value)
        assert resumed.value.status_code == poked.value.status_code == 403
        assert resumed.value.codes == poked.value.codes == [10000]

    def test_hook_params_reach_the_hook_and_the_trigger(self, sim):
        sensor = CloudflareTunnelConnectorSensor(
            task_id="wait", tunnel_id=sim.tunnel_id, deferrable=True, hook_params={"timeout": 4, "max_retries": 1}
        )
        assert sensor.hook.timeout == 4.0
        assert sensor.hook.max_retries == 1
        with pytest.raises(TaskDeferred) as info:
            sensor.execute({})
        assert info.value.trigger.serialize()[1]["hook_params"] == {"timeout": 4.0, "max_retries": 1}


class TestStableForAndReadyUrl:
    """``stable_for`` and cloudflared's ``/ready``: the same rule in poke mode and through the trigger."""

    def test_ready_url_with_connector_id_is_refused_at_construction(self, sim):
        with pytest.raises(CloudflareConfigError, match="either ready_url or connector_id"):
            CloudflareTunnelConnectorSensor(
                task_id="x", tunnel_id=sim.tunnel_id, connector_id=sim.connector_id, ready_url=sim.ready_url()
            )

    @pytest.mark.parametrize("value", [-1, "thirty", True])
    def test_bad_stable_for_is_refused_at_construction(self, sim, value):
        with pytest.raises(CloudflareConfigError, match="stable_for"):
            CloudflareTunnelConnectorSensor(task_id="x", tunnel_id=sim.tunnel_id, stable_for=value)

    def test_poke_waits_for_the_connector_ready_url_names(self, sim):
        sim.set_connector(live=4)  # the old cloudflared, live
        new = sim.add_connector(live=0, pending=0)
        sensor = make_sensor(sim, ready_url=sim.ready_url(new), min_connections=2)
        assert sensor.poke({}) is False
        assert sensor._last_reason.startswith("not ready: cloudflared at")
        sim.set_connector(connector_id=new, live=4)
        result = sensor.poke({})
        assert result.xcom_value["id"] == new

    def test_poke_with_stable_for_keeps_polling_until_it_held_that_long(self, sim):
        sim.set_connector(live=4)
        sensor = make_sensor(sim, stable_for=1.0, poke_interval=0.3)
        started = time.monotonic()
        result = sensor.poke({})
        assert result.is_done
        assert time.monotonic() - started >= 1.0
        assert len(sim.requests_matching("/connections$")) >= 4  # every poll in between held

    def test_a_flap_during_stable_for_starts_the_count_again(self, sim):
        import threading

        sim.set_connector(live=4)
        sensor = make_sensor(sim, stable_for=1.0, poke_interval=0.2)
        threading.Timer(0.5, lambda: sim.set_connector(live=0, pending=4)).start()
        threading.Timer(0.8, lambda: sim.set_connector(live=4)).start()
        started = time.monotonic()
        assert sensor.poke({}) is False  # the flap broke the run: poke returns (a reschedule would follow)
        assert 0.4 < time.monotonic() - started < 1.0
        assert sensor._clock.held_since is None
        time.sleep(0.5)  # the reschedule's wait; the connector is back meanwhile
        result = sensor.poke({})
        assert result.is_done
        assert time.monotonic() - started >= 1.8

    def test_timeout_names_the_last_reason(self, sim):
        sim.set_connector(live=4)
        sensor = make_sensor(sim, started_after="2999-01-01T00:00:00Z", timeout=0.5)
        with pytest.raises(AirflowSensorTimeout, match="none started at or after 2999-01-01T00:00:00Z; newest run_at"):
            sensor.execute({})

    def test_soft_fail_skip_names_the_last_reason(self, sim):
        with pytest.raises(AirflowSkipException, match="Last check: not ready: no connector registered"):
            make_sensor(sim, timeout=0.5, soft_fail=True).execute({})

    def test_a_ready_url_that_is_not_cloudflareds_fails_at_once(self, sim):
        sim.set_connector(live=4)
        sim.set_ready(mode="bogus")
        with pytest.raises(CloudflareConfigError, match="not cloudflared's /ready"):
            make_sensor(sim, ready_url=sim.ready_url()).execute({})

    def test_deferral_carries_the_rule_and_the_ready_url(self, sim):
        sensor = make_sensor(sim, deferrable=True, ready_url=sim.ready_url(), stable_for=timedelta(seconds=5))
        with pytest.raises(TaskDeferred) as info:
            sensor.execute({})
        kwargs = info.value.trigger.serialize()[1]
        assert kwargs["ready_url"] == sim.ready_url()
        assert kwargs["rule"]["stable_for"] == 5.0
        assert kwargs["last_reason"].startswith("not ready: cloudflared at")

    def test_execute_complete_turns_a_timeout_event_into_a_sensor_timeout_with_the_reason(self, sim):
        event = {"status": "timeout", "reason": "not ready: no connector registered"}
        with pytest.raises(AirflowSensorTimeout, match="Last check: not ready: no connector registered"):
            make_sensor(sim).execute_complete({}, event)


class TestTriggerWithReadyUrl:
    """The trigger itself, on the real event loop against the simulator."""

    @staticmethod
    def trigger(sim, **kwargs) -> CloudflareTunnelConnectorTrigger:
        rule = kwargs.pop("rule", {"min_connections": 2})
        return CloudflareTunnelConnectorTrigger(
            tunnel_id=sim.tunnel_id, account_id=sim.account_id, rule=rule, poll_interval=0.2, **kwargs
        )

    async def test_fires_on_the_connector_ready_names_after_stable_for(self, sim):
        import asyncio

        sim.set_connector(live=4)
        new = sim.add_connector(live=4)
        sim.set_ready(new, lag=0.6)  # /ready trails the API
        started = time.monotonic()
        trigger = self.trigger(sim, rule={"min_connections": 2, "stable_for": 0.5}, ready_url=sim.ready_url(new))
        event = await asyncio.wait_for(trigger.run().__anext__(), 15)
        assert event.payload["status"] == "success"
        assert event.payload["connector"]["id"] == new
        assert time.monotonic() - started >= 1.1  # /ready's lag, then stable_for

    async def test_times_out_with_the_last_reason(self, sim):
        import asyncio

        sim.set_connector(live=4)
        sim.set_ready(mode="never")
        trigger = self.trigger(sim, ready_url=sim.ready_url(), timeout_at=time.time() + 0.8)
        event = await asyncio.wait_for(trigger.run().__anext__(), 15)
        assert event.payload["status"] == "timeout"
        assert event.payload["reason"].startswith("not ready: cloudflared at")
        assert "HTTP 503" in event.payload["reason"]

    async def test_a_bogus_ready_url_ends_with_a_config_error_event(self, sim):
        import asyncio

        from airflow_provider_cftunnel.exceptions import error_from_event

        sim.set_connector(live=4)
        sim.set_ready(mode="bogus")
        event = await asyncio.wait_for(self.trigger(sim, ready_url=sim.ready_url()).run().__anext__(), 15)
        assert isinstance(error_from_event(event.payload), CloudflareConfigError)
