"""Stand-ins for what Airflow or the clock gives the code under test, and a hook that fails fast.

None of them replaces the code under test: they stand where Airflow's task instance, the asset state store or
the wall clock would.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook

__all__ = ["FakeClock", "FakeStore", "RecordingTaskInstance", "fast_hook"]


class RecordingTaskInstance:
    """Just enough of a task instance to receive the XCom pushes of ``execute``."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        """Record one push."""
        self.pushed[key] = value


def fast_hook(**kwargs: Any) -> CloudflareHook:
    """
    Return a hook with short retries and timeouts, for tests against the local simulator.

    :param kwargs: ``CloudflareHook`` arguments; they win over the defaults (3 retries, 0.01 s backoff factor,
        2 s connect and read timeouts).
    """
    from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook  # the simulator's tests need no hook

    return CloudflareHook(**{"max_retries": 3, "backoff_factor": 0.01, "timeout": (2.0, 2.0), **kwargs})


class FakeClock:
    """
    A clock the test moves by hand (a ``clock=`` argument: the simulator's, ``ServerQuota``'s...).

    :param start: The time it shows first.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


class FakeStore:
    """A dict standing in for Airflow 3.3's asset state store (the triggerer injects the real one)."""

    def __init__(self) -> None:
        self.data: dict[str, object] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        """Return a JSON copy of the value stored under ``key``."""
        return json.loads(json.dumps(self.data.get(key, default)))

    async def aset(self, key: str, value: Any) -> None:
        """Store a JSON copy of ``value`` (never ``None``: the real store refuses it)."""
        assert value is not None
        self.data[key] = json.loads(json.dumps(value))

    async def adelete(self, key: str) -> None:
        """Forget ``key``."""
        self.data.pop(key, None)
