from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# Tests that import Airflow in this process get an AIRFLOW_HOME of the checkout's own (git-ignored), not ~/airflow:
# set before any test module imports Airflow, which reads it once. Airflow commands the tests start get their own.
os.environ.setdefault("AIRFLOW_HOME", str(Path(__file__).resolve().parents[1] / ".airflow" / "pytest"))

# The secret-leak guard runs for every test of the suite (see tests/leak_guard.py).
pytest_plugins = ["tests.leak_guard"]


@pytest.fixture
def set_connection(monkeypatch):
    """Define an Airflow connection in the environment: ``set_connection(conn_id="x", **fields)``.

    Its password is registered with the leak guard: the test fails if it appears in any output.
    """

    from tests.leak_guard import register_secret

    def _set(conn_id: str = "cloudflare_default", **fields) -> None:
        register_secret(fields.get("password"))
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "cloudflare", **fields}))

    return _set


@pytest.fixture
def ready_sim(cloudflare_simulator_factory, monkeypatch):
    """A simulator whose connector is up at once, set as connection ``cloudflare_default`` (API token).

    Its credentials are registered with the leak guard.
    """
    from tests.leak_guard import register_secret

    sim = cloudflare_simulator_factory({"up_after": 0})
    for secret in (sim.api_token, sim.account_token, sim.global_key):
        register_secret(secret)
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", sim.connection_json())
    return sim
