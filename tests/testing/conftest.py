"""Fixtures for the simulator's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
import requests

from tests.support.fakes import FakeClock
from tests.testing.sim_helpers import Client

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


@pytest.fixture
def sim(cloudflare_simulator_factory, clock: FakeClock) -> CloudflareSimulator:
    """A simulator whose connector is up at once, on a fake clock the test drives."""
    return cloudflare_simulator_factory({"up_after": 0}, clock=clock)


@pytest.fixture
def client(sim: CloudflareSimulator, make_client) -> Client:
    """A client of ``sim`` with its default token."""
    return make_client(sim)
