"""Reading cloudflared's /ready: the interpretation of each answer, and the reads against the simulator."""

from __future__ import annotations

import asyncio
import socket

import pytest

from airflow_provider_cftunnel import ready as ready_module
from airflow_provider_cftunnel.exceptions import CloudflareConfigError, error_from_event, error_to_event
from airflow_provider_cftunnel.ready import check_ready_url, interpret_ready, read_ready, read_ready_shared

CID = "1bedc50d-42b3-473c-b108-ff3d10c0d925"
URL = "http://user:pw@cloudflared:20241/ready?x=1"


class TestInterpret:
    def test_200_with_cloudflareds_json_names_the_connector(self):
        body = b'{"status": 200, "readyConnections": 4, "connectorId": "1BEDC50D-42B3-473C-B108-FF3D10C0D925"}'
        answer = interpret_ready(URL, 200, body)
        assert (answer.ready, answer.connector_id, answer.ready_connections) == (True, CID, 4)
        assert (
            answer.describe()
            == f"cloudflared at http://cloudflared:20241/ready reports connector {CID} ready (4 connection(s))"
        )

    @pytest.mark.parametrize("status", [503, 502, 500])
    def test_5xx_means_not_ready_yet(self, status):
        answer = interpret_ready(URL, status, b'{"status": 503, "readyConnections": 0, "connectorId": "x"}')
        assert not answer.ready
        assert answer.detail.startswith(f"HTTP {status}")

    @pytest.mark.parametrize(
        ("status", "body", "needle"),
        [
            (200, b"<html>It works!</html>", "HTTP 200 but not JSON"),
            (200, b'{"status": 200}', "HTTP 200 but JSON without a connectorId"),
            (404, b"404 page not found", "HTTP 404"),
            (401, b"", "HTTP 401"),
        ],
    )
    def test_an_answer_that_is_not_cloudflareds_is_a_config_error_naming_the_url(self, status, body, needle):
        with pytest.raises(CloudflareConfigError, match=needle) as info:
            interpret_ready(URL, status, body)
        message = str(info.value)
        assert "http://cloudflared:20241/ready" in message
        assert "--metrics" in message
        assert "pw" not in message
        assert "x=1" not in message
        assert not info.value.is_transient
        assert isinstance(error_from_event(error_to_event(info.value)), CloudflareConfigError)

    @pytest.mark.parametrize("value", ["cloudflared:20241/ready", "ftp://x/ready", "", 5, None, "http://[::1/ready"])
    def test_the_url_must_be_http(self, value):
        with pytest.raises(CloudflareConfigError, match="ready_url"):
            check_ready_url(value)

    @pytest.mark.parametrize("url", ["http://user:s3cret@cloudflared:20241/ready", "ftp://user:s3cret@x/ready"])
    def test_a_url_with_credentials_is_refused_without_showing_them(self, url):
        with pytest.raises(CloudflareConfigError) as info:
            check_ready_url(url)
        assert "s3cret" not in str(info.value)
        assert "user" not in str(info.value).split("carries")[0]
        assert "carries a user or password" in str(info.value)


@pytest.fixture
def sim(cloudflare_simulator_factory):
    return cloudflare_simulator_factory({"up_after": 0})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestAgainstTheSimulator:
    def test_follow_never_disagree_bogus(self, sim):
        url = sim.ready_url()
        answer = read_ready(url)
        assert (answer.ready, answer.connector_id, answer.ready_connections) == (True, sim.connector_id, 4)
        sim.set_connector(live=0, pending=4)
        assert read_ready(url).detail == "HTTP 503, 0 ready connection(s)"
        sim.set_ready(mode="disagree")
        assert read_ready(url).ready  # local metrics claim ready while the API shows none live
        sim.set_ready(mode="never")
        sim.set_connector(live=4)
        assert not read_ready(url).ready
        sim.set_ready(mode="bogus")
        with pytest.raises(CloudflareConfigError, match="not JSON"):
            read_ready(url)

    def test_lag_delays_ready(self, sim):
        new = sim.add_connector(live=4)
        sim.set_ready(new, lag=3600)
        assert read_ready(sim.ready_url(new)).detail.startswith("HTTP 503")
        sim.advance(3600)
        assert read_ready(sim.ready_url(new)).connector_id == new

    def test_unknown_connector_path_is_a_config_error(self, sim):
        with pytest.raises(CloudflareConfigError, match="HTTP 404"):
            read_ready(sim.root_url + "/cloudflared/00000000-0000-4000-8000-000000000000/ready")

    def test_refused_and_dropped_mean_not_ready(self, sim):
        refused = read_ready(f"http://127.0.0.1:{free_port()}/ready")
        assert not refused.ready
        assert "refused" in refused.detail
        sim.inject_fault("/cloudflared/", kind="drop", count=1)
        assert not read_ready(sim.ready_url()).ready

    def test_scenario_key(self, cloudflare_simulator_factory):
        sim = cloudflare_simulator_factory(
            {"accounts": [{"tunnels": [{"connectors": [{"up_after": 0, "ready": {"mode": "never"}}]}]}]}
        )
        assert not read_ready(sim.ready_url()).ready
        assert sim.scenario["accounts"][0]["tunnels"][0]["connectors"][0]["ready"] == {"mode": "never", "lag": 0.0}

    async def test_triggers_of_one_loop_share_one_read_per_interval(self, sim):
        url = sim.ready_url()
        before = ready_module.shared_reads
        answers = await asyncio.gather(*(read_ready_shared(url, 5.0) for _ in range(50)))
        assert {a.connector_id for a in answers} == {sim.connector_id}
        assert await read_ready_shared(url, 5.0) == answers[0]  # fresh enough: no new read
        assert ready_module.shared_reads - before == 1
        assert len(sim.requests_matching("/cloudflared/")) == 1
