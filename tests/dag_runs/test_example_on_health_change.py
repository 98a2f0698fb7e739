"""The lines ``example_cftunnel_on_health_change`` prints per health change (its run for real:
``tests/integration/test_health_watcher.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "example_cftunnel_on_health_change.py"
TUNNEL = {"tunnel_id": "c1744f8b-faa1-48a4-9e5c-02ac921467fa", "tunnel_name": "prod-web-2", "change": "changed"}
LABEL = "tunnel prod-web-2 (c1744f8b-faa1-48a4-9e5c-02ac921467fa)"


@pytest.fixture(scope="module")
def describe_change():
    spec = importlib.util.spec_from_file_location("example_cftunnel_on_health_change", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # builds the DAG on Airflow 3, none on 2.11: either way, no request
    return module.describe_change


@pytest.mark.parametrize(
    ("payload", "line"),
    [
        pytest.param(
            {
                "previous_status": "healthy",
                "status": "down",
                "previous_healthy": True,
                "healthy": False,
                "reasons": ["status is down (needs healthy)"],
            },
            f"FAILOVER: {LABEL} went healthy -> down (status is down (needs healthy))",
            id="down",
        ),
        pytest.param(
            {"previous_status": "down", "status": "healthy", "previous_healthy": False, "healthy": True, "reasons": []},
            f"RECOVERED: {LABEL} went down -> healthy",
            id="recovered",
        ),
        pytest.param(
            {
                "previous_status": "healthy",
                "status": "degraded",
                "previous_healthy": True,
                "healthy": True,
                "reasons": [],
            },
            f"CHANGED: {LABEL} went healthy -> degraded",
            id="status-change-still-healthy",
        ),
        pytest.param(
            {
                "change": "appeared",
                "previous_status": None,
                "status": "inactive",
                "previous_healthy": None,
                "healthy": False,
                "reasons": ["status is inactive (needs healthy)"],
            },
            f"APPEARED: {LABEL} is inactive (status is inactive (needs healthy))",
            id="appeared",
        ),
        pytest.param(
            {
                "change": "disappeared",
                "previous_status": "healthy",
                "status": None,
                "previous_healthy": True,
                "healthy": False,
                "reasons": ["no longer listed: deleted, or renamed out of the selection"],
            },
            f"GONE: {LABEL} was healthy (no longer listed: deleted, or renamed out of the selection)",
            id="disappeared",
        ),
    ],
)
def test_one_line_per_change(describe_change, payload, line):
    assert describe_change({**TUNNEL, **payload}) == line
