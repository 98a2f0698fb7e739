"""A local imitation of Cloudflare's Tunnel API, for tests, demos and benchmarks.

Standard library only, and no Airflow import: a test suite, a benchmark or a shell can use it without the
rest of the provider. Four ways in:

* ``with CloudflareSimulator(scenario=...) as sim:`` serves on ``127.0.0.1`` from a background thread;
* the pytest fixtures ``cloudflare_simulator`` and ``cloudflare_simulator_factory`` (this package's pytest
  plugin, registered as ``cftunnel_simulator``);
* ``python -m airflow_provider_cftunnel.testing --port 8787 [--scenario FILE]``;
* ``with SimulatorProcess(scenario=...) as sim:`` runs that command line in a process of its own.

See ``docs/simulator.md`` in the repository, :mod:`~airflow_provider_cftunnel.testing.scenario` for the scenario
format and :mod:`~airflow_provider_cftunnel.testing.faults` for fault injection.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_cftunnel.testing.faults import FAULT_KINDS, Fault
    from airflow_provider_cftunnel.testing.process import SimulatorProcess, SimulatorProcessError
    from airflow_provider_cftunnel.testing.request_log import Headers, RequestRecord
    from airflow_provider_cftunnel.testing.scenario import (
        default_scenario,
        fleet_tunnel_id,
        load_scenario,
        normalize_scenario,
    )
    from airflow_provider_cftunnel.testing.scenario_values import (
        DEFAULT_ACCOUNT_ID,
        DEFAULT_ACCOUNT_TOKEN,
        DEFAULT_API_TOKEN,
        DEFAULT_CONNECTOR_ID,
        DEFAULT_GLOBAL_KEY,
        DEFAULT_GLOBAL_KEY_EMAIL,
        DEFAULT_TUNNEL_ID,
        DEFAULT_TUNNEL_NAME,
        DISABLED_API_TOKEN,
        EXPIRED_API_TOKEN,
        MAX_CONNECTORS_PER_TUNNEL,
        NO_PERMISSION_API_TOKEN,
        OTHER_ACCOUNT_API_TOKEN,
        OTHER_ACCOUNT_ID,
        ScenarioError,
    )
    from airflow_provider_cftunnel.testing.server import CloudflareSimulator

# Names resolve on first use (PEP 562), so the pytest plugin can import this package at every pytest start
# without loading the HTTP server.
_WHERE = {
    "FAULT_KINDS": "faults",
    "Fault": "faults",
    "CloudflareSimulator": "server",
    "Headers": "request_log",
    "RequestRecord": "request_log",
    "SimulatorProcess": "process",
    "SimulatorProcessError": "process",
    "default_scenario": "scenario",
    "fleet_tunnel_id": "scenario",
    "load_scenario": "scenario",
    "normalize_scenario": "scenario",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_WHERE.get(name, 'scenario_values')}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_ACCOUNT_TOKEN",
    "DEFAULT_API_TOKEN",
    "DEFAULT_CONNECTOR_ID",
    "DEFAULT_GLOBAL_KEY",
    "DEFAULT_GLOBAL_KEY_EMAIL",
    "DEFAULT_TUNNEL_ID",
    "DEFAULT_TUNNEL_NAME",
    "DISABLED_API_TOKEN",
    "EXPIRED_API_TOKEN",
    "FAULT_KINDS",
    "MAX_CONNECTORS_PER_TUNNEL",
    "NO_PERMISSION_API_TOKEN",
    "OTHER_ACCOUNT_API_TOKEN",
    "OTHER_ACCOUNT_ID",
    "CloudflareSimulator",
    "Fault",
    "Headers",
    "RequestRecord",
    "ScenarioError",
    "SimulatorProcess",
    "SimulatorProcessError",
    "default_scenario",
    "fleet_tunnel_id",
    "load_scenario",
    "normalize_scenario",
]
