"""DAG files import the operator and sensor modules on every parse: they must stay light."""

from __future__ import annotations

from tests.import_probe import modules_added, outside_stdlib

# what the DAG processor has loaded before it parses a DAG file (airflow.sdk on 3.x, airflow.models on 2.x)
DAG_PROCESSOR = "from airflow.providers.common.compat.sdk import DAG, BaseOperator, BaseSensorOperator"
HTTP_STACK = ("requests", "urllib3")


def test_operator_and_sensor_modules_import_nothing_heavy():
    loaded = modules_added(
        """
        import airflow_provider_cftunnel.operators.tunnel
        import airflow_provider_cftunnel.operators.health
        import airflow_provider_cftunnel.sensors.tunnel
        import airflow_provider_cftunnel.get_provider_info
        import airflow_provider_cftunnel
        """,
        setup=DAG_PROCESSOR,
    )
    heavy = [
        m
        for m in loaded
        if m.split(".")[0] in {*HTTP_STACK, "pendulum", "httpx", "aiohttp", "cloudflare"}
        or m.startswith(
            (
                "airflow_provider_cftunnel.hooks.",
                "airflow_provider_cftunnel.triggers.",
                "airflow_provider_cftunnel.testing",
                "airflow.triggers",
            )
        )
    ]
    assert heavy == []
    assert "airflow_provider_cftunnel.sensors.tunnel" in loaded
    assert "airflow_provider_cftunnel.operators.health" in loaded


def test_provider_info_imports_only_the_standard_library():
    loaded = modules_added(
        "import airflow_provider_cftunnel.get_provider_info as m; m.get_provider_info()",
    )
    assert outside_stdlib(loaded) == []


def test_trigger_modules_leave_the_http_stack_to_a_thread():
    """The triggerer imports trigger classes on its event loop: those imports must not add requests."""
    loaded = modules_added(
        "import airflow_provider_cftunnel.triggers.tunnel, airflow_provider_cftunnel.triggers.health",
        setup="import airflow.triggers.base",
    )
    assert [m for m in loaded if m.split(".")[0] in HTTP_STACK] == []
    assert "airflow_provider_cftunnel.triggers.health" in loaded
