"""The pytest plugin's fixtures, and the package's promise to stay light: stdlib only, no Airflow."""

from __future__ import annotations

import json
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest
import requests

from tests.import_probe import modules_added, outside_stdlib

if TYPE_CHECKING:
    from airflow_provider_cftunnel.testing import CloudflareSimulator

pytest_plugins = ["pytester"]


def test_fixture_gives_a_running_default_simulator(cloudflare_simulator: CloudflareSimulator) -> None:
    assert cloudflare_simulator.running
    headers = {"Authorization": f"Bearer {cloudflare_simulator.api_token}"}
    verify = requests.get(cloudflare_simulator.base_url + "/user/tokens/verify", headers=headers, timeout=5)
    assert verify.json()["result"]["status"] == "active"
    # the default scenario: the connector is not up yet (it comes up 3 s after start)
    sim = cloudflare_simulator
    path = f"/accounts/{sim.account_id}/cfd_tunnel/{sim.tunnel_id}/connectors/{sim.connector_id}"
    assert requests.get(sim.base_url + path, headers=headers, timeout=5).status_code == 404


@pytest.mark.cloudflare_scenario({"up_after": 0, "connections": 2})
def test_marker_chooses_the_scenario(cloudflare_simulator: CloudflareSimulator) -> None:
    sim = cloudflare_simulator
    path = f"/accounts/{sim.account_id}/cfd_tunnel/{sim.tunnel_id}/connectors/{sim.connector_id}"
    response = requests.get(sim.base_url + path, headers={"Authorization": f"Bearer {sim.api_token}"}, timeout=5)
    assert len(response.json()["result"]["conns"]) == 2


def test_factory_starts_independent_simulators(cloudflare_simulator_factory) -> None:  # type: ignore[no-untyped-def]
    first = cloudflare_simulator_factory()
    second = cloudflare_simulator_factory({"up_after": 0}, port=0)
    assert first.running
    assert second.running
    assert first.port != second.port


def test_fixtures_stop_their_simulators(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        textwrap.dedent(
            """
            import json

            def test_uses_both(cloudflare_simulator, cloudflare_simulator_factory):
                extra = cloudflare_simulator_factory({"up_after": 0})
                with open("ports.json", "w") as handle:
                    json.dump([cloudflare_simulator.port, extra.port], handle)
                assert cloudflare_simulator.running and extra.running
            """
        )
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=1)
    ports = json.loads((pytester.path / "ports.json").read_text())
    for port in ports:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/__simulator__/health", timeout=2)


def test_importing_the_package_loads_only_the_standard_library() -> None:
    new = modules_added("import airflow_provider_cftunnel.testing")
    assert outside_stdlib(new) == []
    assert not any(name == "airflow" or name.startswith("airflow.") for name in new)


PLUGIN_MODULES = [
    "airflow_provider_cftunnel",
    "airflow_provider_cftunnel.testing",
    "airflow_provider_cftunnel.testing.pytest_plugin",
]


def test_plugin_module_loads_nothing_beyond_the_standard_library() -> None:
    """pytest loads the plugin in every session of an environment with the provider: it must cost nothing."""
    # pytest has loaded itself before it loads a plugin
    new = modules_added("import airflow_provider_cftunnel.testing.pytest_plugin", setup="import pytest")
    assert [name for name in new if name.split(".")[0] not in sys.stdlib_module_names] == PLUGIN_MODULES


def test_plugin_stays_inert_until_a_fixture_is_used(pytester: pytest.Pytester) -> None:
    """In a pytest session of its own (the entry point loads the plugin), the simulator loads only on use."""
    pytester.makepyfile(
        textwrap.dedent(
            """
            import sys

            SERVER = "airflow_provider_cftunnel.testing.server"

            def test_1_loaded_but_inert(pytestconfig):
                assert pytestconfig.pluginmanager.hasplugin("cftunnel_simulator")
                assert SERVER not in sys.modules
                assert not [m for m in sys.modules if m == "airflow" or m.startswith("airflow.")]

            def test_2_a_fixture_loads_the_simulator(cloudflare_simulator):
                assert cloudflare_simulator.running
                assert SERVER in sys.modules
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
