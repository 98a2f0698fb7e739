"""pytest plugin (entry point ``cftunnel_simulator``): fixtures that run the local Cloudflare simulator.

* ``cloudflare_simulator``: a started :class:`~airflow_provider_cftunnel.testing.CloudflareSimulator` with
  the default scenario (connections up 3 s after start), stopped after the test. Give a test another
  scenario with ``@pytest.mark.cloudflare_scenario({...})`` (a dict, a path, or ``None``), e.g.
  ``@pytest.mark.cloudflare_scenario({"up_after": 0})`` for a tunnel that is ready at once.
* ``cloudflare_simulator_factory``: ``factory(scenario=None, **kwargs)`` starts another simulator (``kwargs``
  go to the constructor, e.g. ``clock=``); every one is stopped after the test.

This module imports nothing heavy at the top: pytest loads it in every test run of the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_cftunnel.testing.server import CloudflareSimulator

__all__ = ["cloudflare_simulator", "cloudflare_simulator_factory"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``cloudflare_scenario`` marker."""
    config.addinivalue_line(
        "markers",
        "cloudflare_scenario(scenario): the scenario (dict, path or None) of the cloudflare_simulator fixture",
    )


@pytest.fixture
def cloudflare_simulator_factory() -> Iterator[Callable[..., CloudflareSimulator]]:
    """Start simulators on demand: ``factory(scenario=None, **kwargs)``; all are stopped at teardown."""
    from airflow_provider_cftunnel.testing.server import CloudflareSimulator

    started: list[CloudflareSimulator] = []

    def factory(scenario: Any = None, **kwargs: Any) -> CloudflareSimulator:
        sim = CloudflareSimulator(scenario, **kwargs)
        sim.start()
        started.append(sim)
        return sim

    try:
        yield factory
    finally:
        for sim in reversed(started):
            sim.stop()


@pytest.fixture
def cloudflare_simulator(
    request: pytest.FixtureRequest, cloudflare_simulator_factory: Callable[..., CloudflareSimulator]
) -> CloudflareSimulator:
    """
    Start a simulator for the test and stop it after.

    It runs the default scenario, or the test's ``cloudflare_scenario`` marker.
    """
    marker = request.node.get_closest_marker("cloudflare_scenario")
    scenario = marker.args[0] if marker is not None and marker.args else None
    return cloudflare_simulator_factory(scenario)
