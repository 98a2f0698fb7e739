"""Hooks of the Cloudflare Tunnel provider: the task's ``hook_params`` and the triggerer's hook factory.

This package's ``__init__`` stays light (no ``requests``): operators and sensors check their ``hook_params``
with :func:`check_hook_params` at DAG-parse time, and import the hook itself only when they run.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_cftunnel.hooks.cloudflare import CloudflareHook

__all__ = ["HOOK_PARAMS", "check_hook_params", "hook_for_triggerer", "hook_kwargs"]

#: The keyword arguments of :class:`~airflow_provider_cftunnel.hooks.cloudflare.CloudflareHook` a task may set.
HOOK_PARAMS = ("timeout", "max_retries", "backoff_factor", "max_retry_after")


def check_hook_params(hook_params: Mapping[str, Any] | None) -> dict[str, Any]:
    """
    Check a task's ``hook_params`` and return them as plain data (safe for trigger kwargs).

    :param hook_params: Keyword arguments of ``CloudflareHook``: ``timeout`` (seconds, one number or
        ``[connect, read]``), ``max_retries`` (0 or more), ``backoff_factor`` and ``max_retry_after`` (seconds).
    :raises ValueError: On an unknown name or a value of the wrong kind, naming it.
    """
    if hook_params is None:
        return {}
    if not isinstance(hook_params, Mapping):
        raise ValueError(f"hook_params must be a dict of {', '.join(HOOK_PARAMS)}, not {type(hook_params).__name__}")
    unknown = sorted(set(hook_params) - set(HOOK_PARAMS))
    if unknown:
        raise ValueError(
            f"hook_params has unknown {', '.join(map(str, unknown))}: allowed are {', '.join(HOOK_PARAMS)}"
        )
    checked: dict[str, Any] = {}
    for name, value in hook_params.items():
        if name == "timeout" and isinstance(value, list | tuple):
            if len(value) != 2 or not all(_positive(v) for v in value):
                raise ValueError(f"hook_params timeout must be seconds > 0, or [connect, read] seconds, not {value!r}")
            checked[name] = [float(v) for v in value]
        elif name == "max_retries":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"hook_params max_retries must be a whole number of 0 or more, not {value!r}")
            checked[name] = value
        elif _positive(value, allow_zero=name == "backoff_factor"):
            checked[name] = float(value)
        else:
            raise ValueError(f"hook_params {name} must be a number of seconds > 0, not {value!r}")
    return checked


def hook_kwargs(hook_params: Mapping[str, Any] | None) -> dict[str, Any]:
    """
    ``hook_params`` checked and ready to pass to ``CloudflareHook(...)`` (a ``[connect, read]`` timeout as a tuple).

    :param hook_params: As for :func:`check_hook_params`.
    """
    kwargs = check_hook_params(hook_params)
    if isinstance(kwargs.get("timeout"), list):
        kwargs["timeout"] = tuple(kwargs["timeout"])
    return kwargs


async def hook_for_triggerer(conn_id: str, hook_params: Mapping[str, Any] | None = None) -> CloudflareHook:
    """
    Build a hook for ``conn_id`` in a trigger, reading its connection without blocking the event loop.

    The hook module (``requests``, ``urllib3``) is imported in a worker thread, once per process.

    :param conn_id: The Airflow connection.
    :param hook_params: The task's ``hook_params``; by default no retries inside (the trigger's own backoff,
        which honours ``Retry-After``, replaces them) and a 20 s read timeout.
    :raises CloudflareAPIError: When the triggerer cannot read the connection (never transient).
    :raises CloudflareConfigError: When the connection's credentials are malformed.
    :raises ValueError: When ``hook_params`` are malformed (as :func:`check_hook_params`).
    """
    from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

    from airflow_provider_cftunnel.exceptions import CloudflareAPIError
    from airflow_provider_cftunnel.hooks.credentials import CloudflareCredentials

    hooks = await asyncio.to_thread(importlib.import_module, "airflow_provider_cftunnel.hooks.cloudflare")
    try:
        conn = await get_async_connection(conn_id)
    except Exception as error:
        raise CloudflareAPIError(
            f"Could not read Airflow connection {conn_id!r} in the triggerer: {type(error).__name__}. "
            "Define it (UI, CLI, secrets backend or AIRFLOW_CONN_* in the triggerer's environment).",
            transient=False,
        ) from None
    extra = await get_async_extra_dejson(conn)  # conn.extra_dejson would block the loop on secret masking
    credentials = CloudflareCredentials.from_connection(conn, extra)
    kwargs: dict[str, Any] = {"max_retries": 0, "timeout": (10.0, 20.0), **hook_kwargs(hook_params)}
    hook: CloudflareHook = hooks.CloudflareHook.from_credentials(credentials, conn_id, **kwargs)
    return hook


def _positive(value: Any, *, allow_zero: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value >= 0 if allow_zero else value > 0
