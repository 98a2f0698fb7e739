"""DAG files import the operator and sensor modules on every parse: they must stay light."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
# what the DAG processor has loaded before it parses a DAG file (airflow.sdk on 3.x, airflow.models on 2.x)
from airflow.providers.common.compat.sdk import DAG, BaseOperator, BaseSensorOperator
before = set(sys.modules)
import airflow_provider_cftunnel.operators.tunnel
import airflow_provider_cftunnel.sensors.tunnel
import airflow_provider_cftunnel.get_provider_info
import airflow_provider_cftunnel
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_operator_and_sensor_modules_import_nothing_heavy():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    heavy = [
        m
        for m in loaded
        if m.split(".")[0] in {"requests", "urllib3", "pendulum", "httpx", "aiohttp", "cloudflare"}
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


def test_provider_info_imports_only_the_standard_library():
    probe = (
        "import sys, json; before = set(sys.modules); "
        "import airflow_provider_cftunnel.get_provider_info as m; m.get_provider_info(); "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    outside = [
        m
        for m in loaded
        if m.split(".")[0] not in sys.stdlib_module_names and not m.startswith("airflow_provider_cftunnel")
    ]
    assert outside == []


def test_trigger_module_leaves_the_http_stack_to_a_thread():
    """The triggerer imports the trigger class on its event loop: that import must not add requests."""
    probe = (
        "import sys, json; import airflow.triggers.base; "
        "before = set(sys.modules); import airflow_provider_cftunnel.triggers.tunnel; "
        "print(json.dumps(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in ('requests', 'urllib3'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
