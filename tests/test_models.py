from __future__ import annotations

import copy

import pendulum
import pytest

from airflow_provider_cftunnel.models import Tunnel, TunnelConnection, TunnelConnector
from airflow_provider_cftunnel.rules import find_ready_connector

CONNECTOR = {
    "id": "1bedc50d-42b3-473c-b108-ff3d10c0d925",
    "arch": "linux_amd64",
    "config_version": 7,
    "features": ["ha-origin", "serialized_headers"],
    "run_at": "2026-11-28T10:00:00Z",
    "version": "2026.11.0",
    "conns": [
        {
            "id": "7d54c1a0-0000-4000-8000-000000000001",
            "colo_name": "fra08",
            "is_pending_reconnect": False,
            "opened_at": "2026-11-28T10:00:01.123456Z",
            "origin_ip": "198.51.100.7",
            "brand_new_field": {"nested": [1, 2]},
        },
        {"id": "7d54c1a0-0000-4000-8000-000000000002", "colo_name": "ams01", "is_pending_reconnect": True},
        {"id": "7d54c1a0-0000-4000-8000-000000000003", "colo_name": "fra08", "is_pending_reconnect": False},
        {"id": "7d54c1a0-0000-4000-8000-000000000004", "colo_name": "ams01"},
    ],
    "unknown_top_level": True,
}


def connector(live: int, pending: int = 0, connector_id: str = "c") -> TunnelConnector:
    conns = [{"is_pending_reconnect": False, "colo_name": "dfw01"}] * live + [{"is_pending_reconnect": True}] * pending
    return TunnelConnector.from_dict({"id": connector_id, "conns": conns})


class TestTunnelConnector:
    def test_fields_are_parsed(self):
        parsed = TunnelConnector.from_dict(CONNECTOR)
        assert parsed.id == CONNECTOR["id"]
        assert parsed.arch == "linux_amd64"
        assert parsed.config_version == 7
        assert parsed.features == ["ha-origin", "serialized_headers"]
        assert parsed.run_at == pendulum.datetime(2026, 11, 28, 10, 0, 0)
        assert len(parsed.conns) == 4
        assert parsed.conns[0].opened_at == pendulum.datetime(2026, 11, 28, 10, 0, 1, 123456)
        assert parsed.conns[0].colo_name == "fra08"

    def test_active_connections_are_those_not_pending_reconnect(self):
        parsed = TunnelConnector.from_dict(CONNECTOR)
        assert [c.id[-1] for c in parsed.active_connections] == ["1", "3"]
        assert parsed.colos == ["fra08"]

    def test_missing_pending_flag_is_not_counted_as_live(self):
        assert not TunnelConnection.from_dict({"id": "x"}).is_live
        assert not TunnelConnection.from_dict({"is_pending_reconnect": "false"}).is_live

    def test_to_dict_returns_what_came_in_unknown_keys_included(self):
        original = copy.deepcopy(CONNECTOR)
        parsed = TunnelConnector.from_dict(CONNECTOR)
        assert parsed.to_dict() == original
        assert parsed.conns[0].to_dict() == original["conns"][0]

    def test_to_dict_is_a_copy(self):
        parsed = TunnelConnector.from_dict(copy.deepcopy(CONNECTOR))
        out = parsed.to_dict()
        out["conns"][0]["colo_name"] = "changed"
        assert parsed.to_dict()["conns"][0]["colo_name"] == "fra08"

    def test_every_field_optional(self):
        parsed = TunnelConnector.from_dict({})
        assert parsed.id is None
        assert parsed.conns == []
        assert parsed.active_connections == []
        assert parsed.to_dict() == {}

    @pytest.mark.parametrize(
        "data",
        [
            {"conns": None},
            {"conns": "nope"},
            {"conns": [1, "x", None]},
            {"run_at": "not a date", "config_version": "7", "features": "x"},
            {"run_at": 12, "id": 5},
            {"config_version": True},
        ],
    )
    def test_unexpected_types_read_as_absent(self, data):
        parsed = TunnelConnector.from_dict(data)
        assert parsed.active_connections == []
        assert parsed.run_at is None
        assert parsed.config_version is None
        assert parsed.to_dict() == data


class TestTunnel:
    def test_nullable_timestamps_and_unknown_fields(self):
        data = {
            "id": "f70ff985-a4ef-4643-bbbc-4a0ed4fc8415",
            "name": "web",
            "status": "degraded",
            "created_at": "2026-01-02T03:04:05Z",
            "deleted_at": None,
            "conns_active_at": "2026-11-28T10:00:00Z",
            "conns_inactive_at": None,
            "tun_type": "cfd_tunnel",
            "metadata": {"team": "web"},
            "new": 1,
        }
        tunnel = Tunnel.from_dict(data)
        assert tunnel.status == "degraded"
        assert tunnel.deleted_at is None
        assert tunnel.created_at == pendulum.datetime(2026, 1, 2, 3, 4, 5)
        assert tunnel.metadata == {"team": "web"}
        assert tunnel.to_dict() == data


class TestFindReadyConnector:
    def test_none_when_below_threshold(self):
        assert find_ready_connector([connector(1, 3)], min_connections=2) is None

    def test_pending_connections_do_not_count(self):
        assert find_ready_connector([connector(0, 4)], min_connections=1) is None

    def test_any_connector_of_the_tunnel(self):
        ready = find_ready_connector(
            [connector(1, connector_id="a"), connector(2, connector_id="b")], min_connections=2
        )
        assert ready is not None
        assert ready.id == "b"

    def test_prefers_the_connector_with_most_live_connections(self):
        ready = find_ready_connector(
            [connector(2, connector_id="a"), connector(4, connector_id="b")], min_connections=1
        )
        assert ready is not None
        assert ready.id == "b"

    def test_only_the_named_connector_counts(self):
        connectors = [connector(4, connector_id="a"), connector(1, connector_id="b")]
        assert find_ready_connector(connectors, min_connections=2, connector_id="b") is None
        ready = find_ready_connector(connectors, min_connections=1, connector_id="B")
        assert ready is not None
        assert ready.id == "b"

    def test_empty_tunnel(self):
        assert find_ready_connector([], min_connections=1) is None
