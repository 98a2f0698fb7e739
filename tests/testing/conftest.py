"""Fixtures for the simulator's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
import requests

from tests.testing.sim_helpers import Client, FakeClock

if TYPE_CHECKING:
    from airflow_provider_cftunnel.testing import CloudflareSimulator


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.trust_env = False
        yield http


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(session: requests.Session) -> Callable[[CloudflareSimulator], Client]:
    def make(sim: CloudflareSimulator) -> Client:
        return Client(sim, session)

    return make
