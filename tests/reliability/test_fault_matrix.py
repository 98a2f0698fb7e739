"""The fault matrix: every fault the simulator injects, against every entry point.

The matrix is the table in ``docs/reliability.md`` (between the ``fault-matrix`` markers): this module parses it
and runs each cell, so the documentation and the behaviour cannot drift apart. See that page for what each
outcome token means.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, PokeReturnValue, TaskDeferred

from airflow_provider_cftunnel.exceptions import CloudflareAPIError
from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook
from airflow_provider_cftunnel.operators.tunnel import CloudflareTunnelConnectorOperator, CloudflareTunnelLink
from airflow_provider_cftunnel.sensors.tunnel import CloudflareTunnelConnectorSensor
from airflow_provider_cftunnel.triggers.tunnel import CloudflareTunnelConnectorTrigger
from tests.leak_guard import assert_no_secret
from tests.support.fakes import RecordingTaskInstance

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
COLUMNS = ("hook call", "operator task", "sensor poke", "sensor deferred")
#: Every fault is injected on the tunnel endpoints (the connector's, and the tunnel's connections).
FAULT_PATH = "/cfd_tunnel/"
#: How long the deferred column waits for the trigger's first event before calling it "not ready".
DEFERRED_DEADLINE = 4.0
#: How long it waits for an event the table expects (it comes much sooner; this only absorbs a busy machine).
EVENT_TIMEOUT = 15.0
#: The hook's retries in the matrix (so "fails after retries" means this many requests plus one).
MAX_RETRIES = 3
#: Tolerances of "waits N s": at least N - EARLY, at most N + LATE.
EARLY, LATE = 0.1, 1.5

_OUTCOME = re.compile(
    r"^(?P<kind>ok after retry|not ready|fails after retries|fails)"
    r"(?::\s*(?P<text>.+?))?"
    r"(?:;\s*waits\s+(?P<waits>[0-9.]+)\s*s)?"
    r"(?:\s*\[bug\s+(?P<bug>\d+)\])?$"
)


@dataclass(frozen=True)
class Outcome:
    """One cell of the table, parsed."""

    kind: str
    text: str | None = None
    waits: float | None = None
    bug: int | None = None


@dataclass(frozen=True)
class Cell:
    """A fault (row), an entry point (column) and the outcome the table demands."""

    fault: str
    spec: dict[str, Any]
    column: str
    outcome: Outcome

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.fault.lower()).strip("-")
        return f"{slug}--{self.column.replace(' ', '-')}"


def parse_outcome(text: str) -> Outcome:
    match = _OUTCOME.match(text.strip())
    if match is None:
        raise ValueError(f"not an outcome token: {text!r}")
    if match["text"] and not match["kind"].startswith("fails"):
        raise ValueError(f"only 'fails' takes a message: {text!r}")
    if match["kind"].startswith("fails") and not match["text"]:
        raise ValueError(f"'fails' needs the message it fails with: {text!r}")
    return Outcome(
        kind=match["kind"],
        text=match["text"],
        waits=float(match["waits"]) if match["waits"] else None,
        bug=int(match["bug"]) if match["bug"] else None,
    )


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def load_matrix(doc: Path = DOC) -> list[Cell]:
    """The cells of the fault matrix in ``doc``."""
    text = doc.read_text(encoding="utf-8")
    block = re.search(r"<!-- fault-matrix:start -->\n(.*?)<!-- fault-matrix:end -->", text, re.S)
    assert block, f"no fault matrix in {doc}"
    lines = [line for line in block[1].splitlines() if line.startswith("|")]
    header = _cells(lines[0])
    assert header == ["fault", "simulator spec", *COLUMNS], header
    assert set(_cells(lines[1])) == {"---"}
    cells = []
    for line in lines[2:]:
        fault, spec, *outcomes = _cells(line)
        assert len(outcomes) == len(COLUMNS), line
        fault = fault.replace("`", "")
        parsed_spec = json.loads(spec.strip("`"))
        for column, outcome in zip(COLUMNS, outcomes, strict=True):
            cells.append(Cell(fault, parsed_spec, column, parse_outcome(outcome)))
    return cells


def load_bugs(doc: Path = DOC) -> dict[int, str]:
    """The known bugs of ``doc``: number -> its bold summary."""
    section = re.search(r"^## Known bugs\n(.*?)^## ", doc.read_text(encoding="utf-8"), re.S | re.M)
    assert section, "no Known bugs section"
    return {int(n): summary for n, summary in re.findall(r"^(\d+)\. \*\*(.+?)\*\*", section[1], re.S | re.M)}


def _params() -> list[Any]:
    bugs = load_bugs()
    params = []
    for cell in load_matrix():
        marks = []
        if cell.outcome.bug is not None:
            reason = f"bug {cell.outcome.bug} (docs/reliability.md): {bugs[cell.outcome.bug]}"
            marks.append(pytest.mark.xfail(strict=True, reason=" ".join(reason.split())))
        params.append(pytest.param(cell, id=cell.id, marks=marks))
    return params


# -- running one cell -------------------------------------------------------------------------------------


@dataclass
class Observed:
    """What an entry point did: ``ok`` (with the connector), ``not ready``, or ``fails`` (with the error)."""

    kind: str
    value: Any = None
    error: BaseException | None = None


def matrix_hook() -> CloudflareHook:
    return CloudflareHook(max_retries=MAX_RETRIES, backoff_factor=0.05, timeout=(2.0, 1.0), max_retry_after=1.0)


def make_sensor(sim: Any, **kwargs: Any) -> CloudflareTunnelConnectorSensor:
    sensor = CloudflareTunnelConnectorSensor(
        task_id="wait", tunnel_id=sim.tunnel_id, poke_interval=0.2, timeout=30, **kwargs
    )
    sensor.hook = matrix_hook()
    return sensor


def run_hook(sim: Any) -> Observed:
    try:
        connector = matrix_hook().get_tunnel_connector(sim.tunnel_id, sim.connector_id)
    except CloudflareAPIError as error:
        return Observed("fails", error=error)
    return Observed("ok", value=connector.to_dict())


def run_operator(sim: Any) -> Observed:
    operator = CloudflareTunnelConnectorOperator(
        task_id="fetch", tunnel_id=sim.tunnel_id, connector_id=sim.connector_id
    )
    operator.hook = matrix_hook()
    ti = RecordingTaskInstance()
    try:
        result = operator.execute({"ti": ti})  # type: ignore[arg-type]
    except CloudflareAPIError as error:
        assert ti.pushed == {}
        return Observed("fails", error=error)
    assert_no_secret(ti.pushed, "the operator's XCom pushes")
    assert CloudflareTunnelLink().xcom_key in ti.pushed
    return Observed("ok", value=result)


def run_poke(sim: Any) -> Observed:
    try:
        result = make_sensor(sim).poke({})  # type: ignore[arg-type]
    except CloudflareAPIError as error:
        return Observed("fails", error=error)
    if result is False:
        return Observed("not ready")
    assert isinstance(result, PokeReturnValue), result
    assert result.is_done
    return Observed("ok", value=result.xcom_value)


async def _first_event(trigger: CloudflareTunnelConnectorTrigger, sim: Any, timeout: float) -> Any:
    run = trigger.run()
    try:
        return await asyncio.wait_for(run.__anext__(), timeout)
    except TimeoutError:
        return None
    finally:
        await run.aclose()
        sim.stop()  # closes the connection of a request still waiting on a slow answer, so its thread ends now


def run_deferred(sim: Any, inject: Callable[[], Any], expect_event: bool) -> Observed:
    sensor = make_sensor(sim, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})  # type: ignore[arg-type]  # nothing registered yet: defers
    classpath, kwargs = deferred.value.trigger.serialize()
    assert_no_secret(kwargs, "the trigger's kwargs")
    assert classpath.endswith(".CloudflareTunnelConnectorTrigger")
    trigger = CloudflareTunnelConnectorTrigger(**kwargs)  # as the triggerer rebuilds it
    sim.set_connector(live=4)
    sim.clear_requests()
    inject()
    event = asyncio.run(_first_event(trigger, sim, EVENT_TIMEOUT if expect_event else DEFERRED_DEADLINE))
    if event is None:
        return Observed("not ready")
    assert_no_secret(event.payload, "the trigger's event")
    try:
        result = sensor.execute_complete({}, event.payload)  # type: ignore[arg-type]
    except AirflowException as error:
        return Observed("fails", error=error)
    return Observed("ok", value=result)


@pytest.fixture
def matrix_sim(cloudflare_simulator_factory, monkeypatch, request):
    cell: Cell = request.node.callspec.params["cell"]
    sim = cloudflare_simulator_factory({"up_after": 3600 if cell.column == "sensor deferred" else 0})
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", sim.connection_json())
    return sim


@pytest.mark.parametrize("cell", _params())
def test_cell(cell: Cell, matrix_sim: Any) -> None:
    sim = matrix_sim
    faults: list[Any] = []

    def inject() -> None:
        faults.append(sim.add_fault({**cell.spec, "path": FAULT_PATH}))

    if cell.column == "sensor deferred":
        observed = run_deferred(sim, inject, expect_event=cell.outcome.kind != "not ready")
    else:
        inject()
        observed = {"hook call": run_hook, "operator task": run_operator, "sensor poke": run_poke}[cell.column](sim)
    (fault,) = faults
    records = sim.requests_matching(r"^/client/v4/")
    # what the simulator saw, for failure messages: (status, fault, seconds since the first request)
    statuses = [(r.status, r.fault, round(r.time - records[0].time, 2)) for r in records]
    assert_no_secret([observed.value, observed.error], f"the {cell.column}'s outcome")

    expected = cell.outcome
    if expected.kind == "ok after retry":
        assert observed.kind == "ok", (observed, statuses)
        assert observed.value["id"] == sim.connector_id
        assert len([c for c in observed.value["conns"] if c["is_pending_reconnect"] is False]) == 4
        assert fault.hits == fault.count, (fault.hits, statuses)
        assert records[-1].status == 200, statuses
        assert records[-1].fault is None, statuses
    elif expected.kind == "not ready":
        assert observed.kind == "not ready", (observed, statuses)
        assert fault.hits >= 1
    else:
        assert observed.kind == "fails", (observed, statuses)
        assert expected.text is not None
        assert expected.text in str(observed.error), str(observed.error)
        assert len(str(observed.error)) < 600
        if cell.column != "sensor deferred":
            assert isinstance(observed.error, CloudflareAPIError)
        requests = 1 if expected.kind == "fails" else MAX_RETRIES + 1
        assert len(records) == requests, statuses
    if expected.waits is not None:
        check_wait(records, fault.kind, expected.waits)


def check_wait(records: list[Any], kind: str, waits: float) -> None:
    """The request after the last faulty answer came ``waits`` seconds later (or not within the deadline)."""
    last = max(i for i, r in enumerate(records) if r.fault == kind)
    if last + 1 == len(records):
        assert waits > DEFERRED_DEADLINE, "no request followed the fault, yet the wait should have ended"
        return
    gap = records[last + 1].time - records[last].time
    assert gap >= waits - EARLY, f"asked again after {gap:.2f} s, before Retry-After ({waits} s)"
    assert gap <= waits + LATE, f"asked again after {gap:.2f} s, expected about {waits} s"


# -- the table itself -------------------------------------------------------------------------------------


def test_the_table_covers_every_fault_kind_and_entry_point() -> None:
    from airflow_provider_cftunnel.testing import FAULT_KINDS

    cells = load_matrix()
    assert {c.spec["kind"] for c in cells} == set(FAULT_KINDS)
    assert {(c.fault, c.column) for c in cells} == {(c.fault, col) for c in cells for col in COLUMNS}
    named = {c.fault for c in cells}
    for needle in ("429 with Retry-After", "429 without Retry-After", "HTTP date", "beyond the caller's deadline"):
        assert any(needle in name for name in named), needle
    statuses = {(c.spec.get("status"), c.spec.get("body")) for c in cells if c.spec["kind"] == "server_error"}
    assert {(s, b) for s in (500, 502, 503, 504) for b in ("json", "html")} <= statuses
    errors = {(c.spec["status"], c.spec["code"]) for c in cells if c.spec["kind"] == "error"}
    assert {(401, 10000), (403, 10000), (403, 9109), (400, 6003), (404, 1003), (404, 7003)} <= errors
    bugs = load_bugs()
    assert all(c.outcome.bug in bugs for c in cells if c.outcome.bug is not None)


@pytest.mark.parametrize(
    ("token", "outcome"),
    [
        ("ok after retry", Outcome("ok after retry")),
        ("ok after retry; waits 1 s", Outcome("ok after retry", waits=1.0)),
        ("not ready; waits 300 s", Outcome("not ready", waits=300.0)),
        ("fails: HTTP 403 (x", Outcome("fails", "HTTP 403 (x")),
        ("fails after retries: gateway", Outcome("fails after retries", "gateway")),
        ("not ready [bug 2]", Outcome("not ready", bug=2)),
    ],
)
def test_outcome_tokens(token: str, outcome: Outcome) -> None:
    assert parse_outcome(token) == outcome


@pytest.mark.parametrize("token", ["ok", "fails", "not ready: 404", "maybe", "ok after retry; waits s"])
def test_unknown_tokens_are_rejected(token: str) -> None:
    with pytest.raises(ValueError, match=r"outcome token|takes a message|needs the message"):
        parse_outcome(token)
