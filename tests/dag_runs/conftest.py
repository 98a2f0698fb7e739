"""Fixtures for the tests that run real Airflow commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_cftunnel.testing.airflow_cli import AirflowCLI


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> Path:
    """One migrated AIRFLOW_HOME for the session (migration takes a few seconds)."""
    home = tmp_path_factory.mktemp("airflow-home")
    AirflowCLI(home, home).migrate()
    return home
