"""Properties over arbitrary input, with hypothesis: typed errors only, ids checked, readiness is a count.

The hook's parsing is exercised through ``requests-mock`` on the hook's own session (no socket: the properties
are about what the hook does with an answer, not about transport, which the fault matrix covers).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests_mock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_cftunnel.exceptions import CloudflareAPIError, CloudflareConfigError
from airflow_provider_cftunnel.hooks.cloudflare import CloudflareCredentials, CloudflareHook
from airflow_provider_cftunnel.models import TunnelConnector
from airflow_provider_cftunnel.rules import find_ready_connector
from tests.leak_guard import register_secret
from tests.support.cloudflare_api import CONNECTION_KEYS, CONNECTOR_KEYS, TUNNEL_KEYS

BASE_URL = "https://api.cloudflare.test/client/v4"
SECRET = "property-token-5d2f8a1c"
ACCOUNT_ID = "0123456789abcdef0123456789abcdef"
TUNNEL_ID = "c1744f8b-faa1-48a4-9e5c-02ac921467fa"
CONNECTOR_ID = "1bedc50d-42b3-473c-b108-ff3d10c0d925"

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


def make_hook(account_id: Any = ACCOUNT_ID) -> CloudflareHook:
    register_secret(SECRET)
    credentials = CloudflareCredentials(secret=SECRET, account_id=account_id, base_url=BASE_URL)
    return CloudflareHook.from_credentials(credentials, "cloudflare_default", max_retries=0)


# -- strategies ------------------------------------------------------------------------------------------

TIMESTAMP_LIKE = st.sampled_from(
    [
        "2026-11-28T00:00:00.000000Z",
        "2026-02-30T00:00:00Z",
        "2026-11-28",
        "10:00",
        "P1D",
        "2026-W05",
        "2026-366",
        "99999-01-01T00:00:00Z",
        "0000-00-00T00:00:00Z",
        "1e400",
        "",
        " ",
        "T",
    ]
)
STRINGS = st.text(max_size=24) | TIMESTAMP_LIKE
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | STRINGS
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(STRINGS, children, max_size=4),
    max_leaves=12,
)
DELETE = object()

ENVELOPE_KEYS = ["success", "errors", "messages", "result", "result_info"]


def base_connection(i: int) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-{i:012d}",
        "uuid": f"00000000-0000-4000-8000-{i:012d}",
        "client_id": CONNECTOR_ID,
        "client_version": "2026.11.0",
        "colo_name": ["DFW", "IAD"][i % 2],
        "is_pending_reconnect": i % 3 == 2,
        "opened_at": "2026-11-28T00:00:00.000000Z",
        "origin_ip": "203.0.113.10",
    }


def base_tunnel() -> dict[str, Any]:
    return {
        "id": TUNNEL_ID,
        "account_tag": ACCOUNT_ID,
        "name": "web",
        "status": "healthy",
        "created_at": "2026-11-27T00:00:00.000000Z",
        "deleted_at": None,
        "conns_active_at": "2026-11-28T00:00:00.000000Z",
        "conns_inactive_at": None,
        "tun_type": "cfd_tunnel",
        "metadata": {},
    }


def mutate(draw: Any, obj: dict[str, Any], keys: Sequence[str], max_changes: int = 3) -> dict[str, Any]:
    """``obj`` with up to ``max_changes`` fields (known or new) set to arbitrary JSON, or deleted."""
    for _ in range(draw(st.integers(0, max_changes))):
        key = draw(st.sampled_from(keys) | STRINGS)
        value = draw(st.just(DELETE) | JSON)
        if value is DELETE:
            obj.pop(key, None)
        else:
            obj[key] = value
    return obj


@st.composite
def connectors(draw: Any) -> dict[str, Any]:
    conns: Any = [mutate(draw, base_connection(i), CONNECTION_KEYS) for i in range(draw(st.integers(0, 4)))]
    connector = {
        "id": CONNECTOR_ID,
        "arch": "linux_amd64",
        "config_version": 0,
        "conns": conns,
        "features": ["ha-origin"],
        "run_at": "2026-11-28T00:00:00.000000Z",
        "version": "2026.11.0",
    }
    return mutate(draw, connector, CONNECTOR_KEYS)


@st.composite
def answers(draw: Any, endpoint: str) -> tuple[int, Any]:
    """An HTTP status and a body: a valid envelope for ``endpoint`` with arbitrary JSON in some fields."""
    if endpoint == "connector":
        result: Any = draw(connectors())
    elif endpoint == "connections":
        result = draw(st.lists(connectors(), max_size=3) | st.none())
    else:
        result = mutate(draw, base_tunnel(), TUNNEL_KEYS)
    envelope: Any = {"success": True, "errors": [], "messages": [], "result": result}
    envelope = mutate(draw, envelope, ENVELOPE_KEYS, max_changes=2)
    if draw(st.integers(0, 9)) == 0:
        envelope = draw(JSON)  # anything at all, not even an object
    status = draw(st.sampled_from([200, 200, 200, 200, 201, 302, 400, 401, 403, 404, 409, 429, 500, 503]))
    return status, envelope


# -- arbitrary JSON: a typed error or exactly the data ---------------------------------------------------

CALLS = {
    "connector": lambda hook: hook.get_tunnel_connector(TUNNEL_ID, CONNECTOR_ID),
    "connections": lambda hook: hook.list_tunnel_connectors(TUNNEL_ID),
    "tunnel": lambda hook: hook.get_tunnel(TUNNEL_ID),
}


def _raw(value: Any) -> Any:
    return value if value is not None else []


@pytest.mark.parametrize("endpoint", list(CALLS))
@PROPERTY_SETTINGS
@given(data=st.data())
def test_any_json_in_an_envelope_gives_a_typed_error_or_the_data(endpoint: str, data: st.DataObject) -> None:
    status, body = data.draw(answers(endpoint))
    check_answer(endpoint, status, body)


@pytest.mark.parametrize(
    "body",
    [
        {"success": True, "errors": 5, "messages": [], "result": {"id": CONNECTOR_ID}},
        {"success": False, "errors": 1.5, "messages": [], "result": None},
        {"success": False, "errors": True, "result": None},
        {"success": False, "errors": [{"code": 1000, "message": "x", "error_chain": 7}], "result": None},
    ],
    ids=["errors-int-in-a-success", "errors-float", "errors-true", "error-chain-int"],
)
@pytest.mark.parametrize("status", [200, 400])
def test_errors_that_are_not_a_list_give_a_typed_error_or_the_data(status: int, body: dict[str, Any]) -> None:
    check_answer("connector", status, body)


def check_answer(endpoint: str, status: int, body: Any) -> None:
    hook = make_hook()
    sent = json.loads(json.dumps(body))  # what a client reads back
    with requests_mock.Mocker(session=hook.get_conn()) as mock:
        mock.get(requests_mock.ANY, status_code=status, json=body)
        try:
            value = CALLS[endpoint](hook)
        except CloudflareAPIError as error:
            failure: CloudflareAPIError | None = error
        else:
            failure = None
    if failure is not None:
        assert SECRET not in str(failure)
        assert len(str(failure)) < 2000
        return
    assert 200 <= status < 300
    assert isinstance(sent, dict)
    assert sent.get("success") is not False
    if endpoint == "connections":
        assert [c.to_dict() for c in value] == _raw(sent.get("result"))
        for connector in value:
            touch(connector)
        find_ready_connector(value, min_connections=1)
    else:
        assert value.to_dict() == sent.get("result")
        if endpoint == "connector":
            touch(value)
        else:
            assert repr(value)
            assert value.to_dict() is not value.raw


def touch(connector: TunnelConnector) -> None:
    """Every typed view of a connector reads without raising."""
    assert isinstance(connector.active_connections, list)
    assert all(isinstance(colo, str) for colo in connector.colos)
    assert repr(connector)
    for connection in connector.conns:
        assert connection.is_live in (True, False)
        assert isinstance(connection.to_dict(), dict)


# -- no string outside the id grammar reaches a URL ------------------------------------------------------

ACCOUNT_GRAMMAR = re.compile(r"[0-9a-fA-F]{32}")
UUID_GRAMMAR = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
VALID_ACCOUNTS = st.from_regex(ACCOUNT_GRAMMAR, fullmatch=True)
VALID_UUIDS = st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper())
# path and query characters, whitespace, a NUL, a fullwidth zero (a Unicode digit), an accented letter
NEAR_MISS_TAILS = ["\n", " ", "/", "/..", "%2F", "?x=1", "#", "\x00", "\uff10", "\u00e9"]


@st.composite
def near_misses(draw: Any, valid: st.SearchStrategy[str]) -> str:
    """A valid id with one character changed, inserted or removed, or something appended or prepended."""
    text = draw(valid)
    position = draw(st.integers(0, len(text)))
    how = draw(st.sampled_from(["replace", "insert", "delete", "append", "prepend"]))
    piece = draw(st.sampled_from(NEAR_MISS_TAILS) | st.characters())
    if how == "replace" and position < len(text):
        return text[:position] + piece + text[position + 1 :]
    if how == "insert":
        return text[:position] + piece + text[position:]
    if how == "delete" and position < len(text):
        return text[:position] + text[position + 1 :]
    return text + piece if how == "append" else piece + text


def ids(valid: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return (
        st.text(max_size=40)
        | valid
        | near_misses(valid)
        | st.sampled_from(["", "..", "../../user/tokens/verify", "%2e%2e", "a" * 33])
        | st.integers()
        | st.none()
        | st.binary(max_size=40)
    )


def valid(value: Any, grammar: re.Pattern[str]) -> bool:
    return isinstance(value, str) and value.isascii() and grammar.fullmatch(value) is not None


ENTRY_POINTS = ["get_tunnel_connector", "list_tunnel_connectors", "get_tunnel", "list_tunnels"]


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
@PROPERTY_SETTINGS
@given(data=st.data(), account_in_extra=st.booleans())
def test_no_string_outside_the_id_grammar_reaches_a_url(
    entry_point: str, data: st.DataObject, account_in_extra: bool
) -> None:
    # which ids are arbitrary (the others valid): all three valid often enough to reach a URL
    arbitrary = data.draw(st.sets(st.sampled_from(["account", "tunnel", "connector"])), label="arbitrary")
    account_id = data.draw(ids(VALID_ACCOUNTS) if "account" in arbitrary else VALID_ACCOUNTS, label="account_id")
    tunnel_id = data.draw(ids(VALID_UUIDS) if "tunnel" in arbitrary else VALID_UUIDS, label="tunnel_id")
    connector_id = data.draw(ids(VALID_UUIDS) if "connector" in arbitrary else VALID_UUIDS, label="connector_id")
    if account_in_extra:  # the connection's extra holds the account; the call gives none
        hook, account_arg = make_hook(account_id=account_id if isinstance(account_id, str) else None), None
    else:
        hook, account_arg = make_hook(account_id=None), account_id
    args = {
        "get_tunnel_connector": (tunnel_id, connector_id, account_arg),
        "list_tunnel_connectors": (tunnel_id, account_arg),
        "get_tunnel": (tunnel_id, account_arg),
        "list_tunnels": (account_arg,),
    }[entry_point]
    with requests_mock.Mocker(session=hook.get_conn()) as mock:
        mock.get(requests_mock.ANY, json={"success": True, "errors": [], "messages": [], "result": []})
        try:
            getattr(hook, entry_point)(*args)
        except CloudflareConfigError:
            assert mock.request_history == []  # refused before anything was sent
            account_ok = valid(account_id, ACCOUNT_GRAMMAR) and (account_in_extra or isinstance(account_id, str))
            uuids_ok = valid(tunnel_id, UUID_GRAMMAR) and valid(connector_id, UUID_GRAMMAR)
            assert not (account_ok and (entry_point == "list_tunnels" or uuids_ok)), "a valid id was refused"
            return
        except CloudflareAPIError:
            pass  # the answer did not fit the call (e.g. [] for one object): the request was made
    (request,) = mock.request_history
    account = account_id.lower()
    path = {
        "get_tunnel_connector": f"/accounts/{account}/cfd_tunnel/{str(tunnel_id).lower()}/connectors/"
        f"{str(connector_id).lower()}",
        "list_tunnel_connectors": f"/accounts/{account}/cfd_tunnel/{str(tunnel_id).lower()}/connections",
        "get_tunnel": f"/accounts/{account}/cfd_tunnel/{str(tunnel_id).lower()}",
        "list_tunnels": f"/accounts/{account}/cfd_tunnel",
    }[entry_point]
    assert valid(account_id, ACCOUNT_GRAMMAR)
    if entry_point != "list_tunnels":
        assert valid(tunnel_id, UUID_GRAMMAR)
    if entry_point == "get_tunnel_connector":
        assert valid(connector_id, UUID_GRAMMAR)
    assert urlsplit(request.url).path == "/client/v4" + path
    assert request.url.startswith(BASE_URL + path)


# -- readiness is a plain count --------------------------------------------------------------------------

CONNECTOR_IDS = [CONNECTOR_ID, "9b2f4c1e-0000-4000-8000-000000000001", "9b2f4c1e-0000-4000-8000-000000000002"]
MISSING = object()
FLAGS = st.sampled_from([True, False, MISSING, None, "false", "False", 0, 1, [], {}])


@st.composite
def tunnel_connectors(draw: Any) -> list[dict[str, Any]]:
    result = []
    for _ in range(draw(st.integers(0, 5))):
        conns = []
        for flag in draw(st.lists(FLAGS, max_size=8)):
            conn = {"id": draw(st.uuids()).hex, "colo_name": "DFW"}
            if flag is not MISSING:
                conn["is_pending_reconnect"] = flag
            conns.append(conn)
        connector_id = draw(st.sampled_from(CONNECTOR_IDS) | st.sampled_from(CONNECTOR_IDS).map(str.upper))
        result.append({"id": connector_id, "conns": conns})
    return result


def plain_count(connectors: list[dict[str, Any]], connector_id: str | None) -> list[int]:
    """How many connections of each watched connector have ``is_pending_reconnect`` exactly ``false``."""
    return [
        sum(1 for conn in c["conns"] if conn.get("is_pending_reconnect") is False)
        for c in connectors
        if connector_id is None or c["id"].lower() == connector_id.lower()
    ]


WATCHED = st.none() | st.sampled_from(CONNECTOR_IDS) | st.sampled_from(CONNECTOR_IDS).map(str.upper)


@settings(max_examples=300, deadline=None, database=None)
@given(
    connectors=tunnel_connectors(),
    min_connections=st.integers(1, 6),
    connector_id=WATCHED,
    shuffle=st.randoms(use_true_random=False),
)
def test_readiness_is_a_plain_count_whatever_the_interleaving(
    connectors: list[dict[str, Any]], min_connections: int, connector_id: str | None, shuffle: Any
) -> None:
    counts = plain_count(connectors, connector_id)
    expected_ready = any(count >= min_connections for count in counts)
    interleavings = [connectors]
    for _ in range(3):  # the same connections in other orders, and the connectors in another order
        other = copy.deepcopy(connectors)
        for connector in other:
            shuffle.shuffle(connector["conns"])
        shuffle.shuffle(other)
        interleavings.append(other)
    for variant in interleavings:
        ready = find_ready_connector(
            [TunnelConnector.from_dict(c) for c in variant], min_connections=min_connections, connector_id=connector_id
        )
        assert (ready is not None) is expected_ready
        if ready is not None:
            assert len(ready.active_connections) == max(counts)
            assert connector_id is None or ready.id.lower() == connector_id.lower()


@settings(max_examples=100, deadline=None, database=None)
@given(connectors=tunnel_connectors(), min_connections=st.integers(1, 6))
def test_the_sensor_pokes_the_same_answer(connectors: list[dict[str, Any]], min_connections: int) -> None:
    from airflow.providers.common.compat.sdk import PokeReturnValue

    from airflow_provider_cftunnel.sensors.tunnel import CloudflareTunnelConnectorSensor

    counts = plain_count(connectors, None)
    sensor = CloudflareTunnelConnectorSensor(task_id="wait", tunnel_id=TUNNEL_ID, min_connections=min_connections)
    sensor.hook = make_hook()
    with requests_mock.Mocker(session=sensor.hook.get_conn()) as mock:
        mock.get(
            f"{BASE_URL}/accounts/{ACCOUNT_ID}/cfd_tunnel/{TUNNEL_ID}/connections",
            json={"success": True, "errors": [], "messages": [], "result": connectors},
        )
        result = sensor.poke({})  # type: ignore[arg-type]
    if any(count >= min_connections for count in counts):
        assert isinstance(result, PokeReturnValue)
        live = [c for c in result.xcom_value["conns"] if c.get("is_pending_reconnect") is False]
        assert len(live) == max(counts)
    else:
        assert result is False
