"""The health check's Trigger form: Airflow validates each param against its schema before a run is created
(the UI's Trigger button and ``POST /api/v2/dags/{dag_id}/dagRuns`` both answer 400 on a refusal), so a blank
tunnel id or a malformed account id never becomes a run that fails seconds later."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"

UUID_A = "c1744f8b-faa1-48a4-9e5c-02ac921467fa"
UUID_B = "0f7c5c8e-2d44-4f53-9d1b-7b9a1c2e3f40"


@pytest.fixture(scope="module")
def params():
    path = EXAMPLE_DAGS / "example_cftunnel_health_check.py"
    spec = importlib.util.spec_from_file_location("example_cftunnel_health_check_params", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag.params


def accepts(params, name: str, value: object) -> bool:
    """Whether Airflow's own param validation (what a trigger runs) takes ``value`` for ``name``."""
    from airflow.providers.common.compat.sdk import ParamValidationError

    trial = copy.deepcopy(params)
    try:
        trial[name] = value
        trial.validate()
    except ParamValidationError:
        return False
    return True


@pytest.mark.parametrize("value", [None, UUID_A, f"{UUID_A},{UUID_B}", f"{UUID_A}, {UUID_B}", UUID_A.upper()])
def test_tunnel_ids_takes_uuids_or_nothing(params, value):
    assert accepts(params, "tunnel_ids", value)


@pytest.mark.parametrize("value", ["", " ", ",", "prod-web-1", UUID_A[:-1], f"{UUID_A},oops"])
def test_tunnel_ids_refuses_a_blank_or_malformed_id(params, value):
    assert not accepts(params, "tunnel_ids", value)


@pytest.mark.parametrize(
    ("value", "ok"), [(None, True), ("a" * 32, True), ("", False), ("a" * 31, False), ("g" * 32, False)]
)
def test_account_id_is_32_hex_characters_or_nothing(params, value, ok):
    assert accepts(params, "account_id", value) is ok


def test_every_param_has_a_title_and_a_description(params):
    for name in params:
        schema = params.get_param(name).schema
        assert schema.get("title"), name
        assert params.get_param(name).description, name
