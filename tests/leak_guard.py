"""Secret-leak guard: a pytest plugin, active for the whole suite (``pytest_plugins`` in ``tests/conftest.py``).

A provider that logs a token once has leaked it for good, so every test runs under this guard:

* **Registry.** The simulator's credentials (its API tokens and Global API Key) are registered for the whole
  session. Each test's own credentials are registered too: every ``password`` given to the ``set_connection``
  fixture, every password of an ``AIRFLOW_CONN_*`` variable present while the test runs (so ``ready_sim`` and
  ``monkeypatch.setenv(..., sim.connection_json())`` are covered), and anything a test passes to
  :func:`register_secret` (or the ``register_secret`` fixture). Values shorter than
  :data:`MIN_SECRET_LENGTH` characters are ignored: they would match ordinary text.
* **What is checked after each phase (setup, call, teardown) of every test:** the captured stdout, stderr and
  log of that phase (Airflow's task loggers write to stdout), whatever the test read back with
  ``capsys.readouterr()``, the error lines of a failure's report, and what the probes below observed. A
  registered secret found there fails the test (a passing test becomes a failure, a failing one says so too).
* **Probes** (installed for the session, they observe and never change a result): the message and ``errors``
  of every ``CloudflareAPIError`` created (caught by the test or not), the kwargs of every
  ``CloudflareTunnelConnectorTrigger`` created, the payload of every ``TriggerEvent``, what the operator's and
  the sensor's ``execute``, ``execute_complete`` and ``poke`` return (their XCom), and every
  ``CloudflareHook.test_connection`` result. A probe scans what it sees at once, against the secrets registered
  by then, and keeps only what it found.
* **Helpers** for other channels: :func:`assert_no_secret` walks strings, bytes, dicts, lists, exceptions
  (with their causes) and objects (their ``repr``) and fails naming where a secret appeared, never the
  secret itself; :func:`find_leaks` returns those findings.

Not a leak: the simulator's own data (its request log holds the credentials each request sent, its scenario
lists its tokens) and test source code. Source lines of a failure report are not checked, only its ``E``
lines; test modules that print the simulator's scenario on purpose are listed in :data:`EXEMPT_OUTPUT`.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest

__all__ = [
    "MIN_SECRET_LENGTH",
    "Leak",
    "assert_no_secret",
    "find_leaks",
    "register_secret",
    "registered_secrets",
]

#: Shorter values are not tracked: a 4-character "secret" would match ordinary words.
MIN_SECRET_LENGTH = 8

#: Tests whose captured output legitimately holds the simulator's credentials, and why. Only their captured
#: and read-back output is exempt; probes and failure reports are still checked.
EXEMPT_OUTPUT: dict[str, str] = {
    "tests/testing/test_simulator_cli.py::test_print_scenario_of_a_file": (
        "--print-scenario prints the simulator's scenario, its fake tokens included, by design"
    ),
}

_SESSION_SECRETS: set[str] = set()
_test_secrets: set[str] = set()
#: What the probes found during the current phase (they scan at once and keep no reference to what they saw).
_probe_leaks: list[Leak] = []
_active = False


@dataclass(frozen=True)
class Leak:
    """A registered secret found somewhere: ``where`` it was and a masked form of the secret."""

    where: str
    secret: str = field(repr=False)

    @property
    def masked(self) -> str:
        """The secret as it may be shown: first and last 3 characters and its length."""
        return f"{self.secret[:3]}...{self.secret[-3:]} ({len(self.secret)} chars)"

    def __str__(self) -> str:
        return f"{self.masked} in {self.where}"


def register_secret(value: Any) -> None:
    """
    Register a credential for the current test; it must then appear in no output the guard checks.

    :param value: The secret. ``None``, non-strings and values shorter than 8 characters are ignored.
    """
    if isinstance(value, str) and len(value.strip()) >= MIN_SECRET_LENGTH:
        _test_secrets.add(value.strip())


def registered_secrets() -> frozenset[str]:
    """Every secret the guard looks for now (the session's and the current test's)."""
    return frozenset(_SESSION_SECRETS | _test_secrets)


@functools.lru_cache(maxsize=4096)
def _forms(secret: str) -> frozenset[str]:
    """The secret as it could appear: raw, or percent-encoded in a URL."""
    return frozenset({secret, quote(secret, safe=""), quote(secret)})


def _scan_text(text: str, where: str, secrets: frozenset[str]) -> list[Leak]:
    return [Leak(where, s) for s in secrets if any(form in text for form in _forms(s))]


def find_leaks(obj: Any, where: str = "value", *, secrets: frozenset[str] | None = None) -> list[Leak]:
    """
    Every registered secret found in ``obj``: strings, bytes, mappings (keys and values), iterables,
    exceptions (message, args, ``errors``, notes, cause and context) and other objects (their ``repr``).

    :param obj: What to search.
    :param where: How to name it in the findings.
    :param secrets: The secrets to look for (default: :func:`registered_secrets`).
    """
    secrets = registered_secrets() if secrets is None else secrets
    if not secrets:
        return []
    found: dict[str, Leak] = {}
    seen: set[int] = set()

    def walk(value: Any, path: str, depth: int) -> None:
        if depth > 25 or id(value) in seen:
            return
        if isinstance(value, str):
            for leak in _scan_text(value, path, secrets):
                found.setdefault(leak.secret, leak)
            return
        if isinstance(value, bytes | bytearray):
            walk(bytes(value).decode("utf-8", "replace"), path, depth)
            return
        if value is None or isinstance(value, bool | int | float):
            return
        seen.add(id(value))
        if isinstance(value, BaseException):
            walk(str(value), f"{path} (message)", depth + 1)
            walk(repr(value), f"{path} (repr)", depth + 1)
            walk(list(value.args), f"{path}.args", depth + 1)
            walk(getattr(value, "errors", None), f"{path}.errors", depth + 1)
            walk(getattr(value, "__notes__", None), f"{path} (notes)", depth + 1)
            walk(value.__cause__, f"{path}.__cause__", depth + 1)
            walk(value.__context__, f"{path}.__context__", depth + 1)
            return
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(key, f"{path} (key)", depth + 1)
                walk(item, f"{path}[{key!r}]", depth + 1)
            return
        if isinstance(value, list | tuple | set | frozenset):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]", depth + 1)
            return
        payload = getattr(value, "payload", None)  # a TriggerEvent
        if payload is not None:
            walk(payload, f"{path}.payload", depth + 1)
        try:
            text = repr(value)
        except Exception:  # an object whose repr fails has nothing to show
            return
        walk(text, f"{path} (repr)", depth + 1)

    walk(obj, where, 0)
    return list(found.values())


def assert_no_secret(obj: Any, where: str = "value") -> None:
    """
    Fail if a registered secret appears in ``obj`` (see :func:`find_leaks`); the message names where, masked.

    :param obj: What to search: an XCom value, trigger kwargs, an event, a message, an exception...
    :param where: How to name it in the failure.
    """
    leaks = find_leaks(obj, where)
    if leaks:
        pytest.fail("secret leaked: " + "; ".join(str(leak) for leak in leaks), pytrace=False)


# -- registration ----------------------------------------------------------------------------------------


def _connection_password(value: str) -> str | None:
    """The password of an ``AIRFLOW_CONN_*`` value (JSON or URI form)."""
    value = value.strip()
    if value.startswith("{"):
        try:
            data = json.loads(value)
        except ValueError:
            return None
        password = data.get("password") if isinstance(data, dict) else None
        return password if isinstance(password, str) else None
    try:
        password = urlsplit(value).password
    except ValueError:
        return None
    return unquote(password) if password else None


def _register_environment() -> None:
    for name, value in list(os.environ.items()):
        if name.startswith("AIRFLOW_CONN_"):
            register_secret(_connection_password(value))


def _load_session_secrets() -> None:
    from airflow_provider_cftunnel import testing

    for name in (
        "DEFAULT_API_TOKEN",
        "DEFAULT_ACCOUNT_TOKEN",
        "DEFAULT_GLOBAL_KEY",
        "DISABLED_API_TOKEN",
        "EXPIRED_API_TOKEN",
        "NO_PERMISSION_API_TOKEN",
        "OTHER_ACCOUNT_API_TOKEN",
    ):
        value = getattr(testing, name)
        if len(value) >= MIN_SECRET_LENGTH:
            _SESSION_SECRETS.add(value)


# -- probes ----------------------------------------------------------------------------------------------


def _observe(where: str, value: Any) -> None:
    """Scan what a probe saw now (so a soak test's thousands of events are not kept alive by the guard)."""
    if _active:
        _register_environment()
        _probe_leaks.extend(find_leaks(value, where))


_patches: list[tuple[type, str, Any]] = []


def _wrap_init(cls: type, where: str, extract: Callable[[Any], Any]) -> None:
    original = cls.__dict__["__init__"]

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if _active:
            _observe(where, extract(self))

    _patches.append((cls, "__init__", original))
    cls.__init__ = __init__  # type: ignore[misc]


def _wrap_result(cls: type, name: str, where: str) -> None:
    original = cls.__dict__[name]

    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        _observe(where, getattr(result, "xcom_value", result))
        return result

    _patches.append((cls, name, original))
    setattr(cls, name, method)


def _install_probes() -> None:
    from airflow.triggers.base import TriggerEvent

    from airflow_provider_cftunnel.exceptions import CloudflareAPIError
    from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook
    from airflow_provider_cftunnel.operators.tunnel import CloudflareTunnelConnectorOperator
    from airflow_provider_cftunnel.sensors.tunnel import CloudflareTunnelConnectorSensor
    from airflow_provider_cftunnel.triggers.tunnel import CloudflareTunnelConnectorTrigger

    _wrap_init(CloudflareAPIError, "a CloudflareAPIError", lambda e: (str(e), e.errors))
    _wrap_init(TriggerEvent, "a trigger event", lambda event: event.payload)
    _wrap_init(CloudflareTunnelConnectorTrigger, "trigger kwargs", lambda trigger: trigger.serialize())
    _wrap_result(CloudflareHook, "test_connection", "test_connection's result")
    _wrap_result(CloudflareTunnelConnectorOperator, "execute", "the operator's XCom")
    for name in ("execute", "execute_complete", "poke"):
        _wrap_result(CloudflareTunnelConnectorSensor, name, f"the sensor's {name} result (XCom)")
    _wrap_result(pytest.CaptureFixture, "readouterr", "output read with capsys/capfd.readouterr()")


def _remove_probes() -> None:
    while _patches:
        cls, name, original = _patches.pop()
        setattr(cls, name, original)


# -- the plugin ------------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    global _active
    _load_session_secrets()
    _install_probes()
    _active = True


def pytest_unconfigure(config: pytest.Config) -> None:
    global _active
    _active = False
    _remove_probes()


@pytest.fixture(name="register_secret")
def register_secret_fixture() -> Callable[[Any], None]:
    """``register_secret(value)``: the guard fails this test if ``value`` appears in its output."""
    return register_secret


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _test_secrets.clear()
    _probe_leaks.clear()


_ERROR_LINE = re.compile(r"^E\s", re.MULTILINE)


def _report_error_lines(report: pytest.TestReport) -> str:
    """The ``E`` lines of a failure report (the errors, not the quoted source code)."""
    if report.longrepr is None:
        return ""
    text = str(report.longrepr)
    return "\n".join(line for line in text.splitlines() if _ERROR_LINE.match(line))


def _phase_leaks(item: pytest.Item, report: pytest.TestReport) -> list[Leak]:
    _register_environment()
    secrets = registered_secrets()
    leaks: list[Leak] = []
    output_exempt = report.nodeid in EXEMPT_OUTPUT
    if not output_exempt:
        for name, content in report.sections:
            if name.endswith(f" {report.when}"):
                leaks += find_leaks(content, name.lower(), secrets=secrets)
    leaks += find_leaks(_report_error_lines(report), f"the {report.when} failure report", secrets=secrets)
    found, _probe_leaks[:] = list(_probe_leaks), []
    leaks += [leak for leak in found if not (output_exempt and leak.where.startswith("output read"))]
    unique: dict[tuple[str, str], Leak] = {}
    for leak in leaks:
        unique.setdefault((leak.secret, leak.where), leak)
    return list(unique.values())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield
    leaks = _phase_leaks(item, report)
    if leaks:
        message = "SECRET LEAK GUARD: a registered credential appeared in test output:\n" + "\n".join(
            f"  - {leak}" for leak in leaks
        )
        if report.failed and report.longrepr is not None:
            message = f"{report.longrepr}\n\n{message}"
        report.outcome = "failed"
        report.longrepr = message
        if hasattr(report, "wasxfail"):
            del report.wasxfail
    if report.when == "teardown":
        _test_secrets.clear()
    return report
