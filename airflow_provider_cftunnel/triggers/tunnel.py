"""The deferrable side of :class:`~airflow_provider_cftunnel.sensors.tunnel.CloudflareTunnelConnectorSensor`.

One triggerer runs thousands of triggers in one event loop, and every sensor that watches a tunnel draws from
one Cloudflare limit (1,200 requests per 5 minutes per user, whatever token or key) that locks every token and
key of the user out for 5 minutes when crossed.
So triggers do not poll on their own:

* Every trigger in one event loop that watches the same connection, account and tunnel subscribes to one
  :class:`TunnelPoller`, which makes ONE request per poll interval to the tunnel's ``connections`` endpoint
  (it answers for all of the tunnel's connectors) and hands the answer to every subscriber. It is
  single-flight and keyed by the running loop.
* Every poller of one credential draws from one :class:`RequestBudget` per loop, which spaces requests so the
  whole process stays under the token's limit (from the connection's ``extra``: ``rate_limit_requests`` per
  ``rate_limit_period`` seconds, default 1,200 per 300; it spends 90 % of that, leaving headroom for the token's
  other users). Polls slow down instead of drawing 429 lockouts.
* That budget is only the ceiling: the limit is really per Cloudflare *user*, shared with other triggerers,
  workers and the dashboard, which no process can count. So the budget also waits for what the credential's
  :class:`~airflow_provider_cftunnel.ratelimit.ServerQuota` says, from the ``Ratelimit`` headers of every
  answer: all pollers of a credential in a process, and all processes, pace on the server's own count. The
  budget and the rule live in :mod:`airflow_provider_cftunnel.ratelimit` (one pacing path for hook and
  triggers).

The HTTP call itself is the hook's, run with ``asyncio.to_thread`` so the loop is never blocked, with no
retries inside (the poller's own backoff, which honours ``Retry-After``, replaces them).
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_cftunnel.exceptions import (
    CloudflareAPIError,
    CloudflareConfigError,
    error_to_event,
    means_not_ready,
)
from airflow_provider_cftunnel.hooks import check_hook_params, hook_for_triggerer
from airflow_provider_cftunnel.models import TunnelConnector, validate_account_id, validate_uuid
from airflow_provider_cftunnel.ratelimit import (
    BUDGET_SHARE,
    MAX_BACKOFF,
    RequestBudget,
    credential_fingerprint,
    poll_delay,
    quota_for,
)
from airflow_provider_cftunnel.rules import (
    describe_wait,
    find_ready_connector,
    parse_started_after,
)

if TYPE_CHECKING:
    from datetime import datetime

    from airflow_provider_cftunnel.hooks.cloudflare import CloudflareCredentials, CloudflareHook

#: ``RequestBudget``, ``poll_delay`` and ``MAX_BACKOFF`` live in :mod:`airflow_provider_cftunnel.ratelimit` (the one
#: pacing path); they stay importable from here.
__all__ = ["MAX_BACKOFF", "CloudflareTunnelConnectorTrigger", "RequestBudget", "TunnelPoller", "poll_delay"]


@dataclass
class PollOutcome:
    """What one poll of a tunnel gave: its connectors, or the error that stopped the request."""

    connectors: list[TunnelConnector] = field(default_factory=list)
    error: CloudflareAPIError | None = None
    at: float = 0.0


#: ``(conn_id, account_id, tunnel_id, hook_params as sorted JSON)``
PollerKey = tuple[str, str, str, str]


class TunnelPoller:
    """
    Polls one tunnel's ``connections`` endpoint for every trigger of one event loop that watches it.

    Created and found with :meth:`for_key`; runs while it has subscribers, then removes itself.

    :param key: ``(conn_id, account_id, tunnel_id, hook_params_json)``: triggers share a poller only when they
        would make the same request with the same hook settings.
    """

    _pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[PollerKey, TunnelPoller]] = (
        weakref.WeakKeyDictionary()
    )
    _budgets: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, RequestBudget]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, key: PollerKey) -> None:
        self.key = key
        self.intervals: list[float] = []
        self.requests = 0
        self.rounds = 0
        self.latest: PollOutcome | None = None
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0

    @classmethod
    def for_key(cls, key: PollerKey) -> TunnelPoller:
        """The running loop's poller for ``key``, created on first use."""
        pollers = cls._pollers.setdefault(asyncio.get_running_loop(), {})
        poller = pollers.get(key)
        if poller is None:
            poller = pollers[key] = cls(key)
        return poller

    @classmethod
    def active(cls) -> dict[PollerKey, TunnelPoller]:
        """The running loop's pollers (for tests and benchmarks)."""
        return dict(cls._pollers.get(asyncio.get_running_loop(), {}))

    @classmethod
    def budget_for(cls, credentials: CloudflareCredentials) -> RequestBudget:
        """
        The running loop's request budget of one credential (keyed by a hash, never the secret), drawing on the
        process's :class:`~airflow_provider_cftunnel.ratelimit.ServerQuota` of that credential, which its
        hooks feed with every answer's rate-limit headers.
        """
        fingerprint = credential_fingerprint(credentials.base_url, credentials.email, credentials.secret)
        budgets = cls._budgets.setdefault(asyncio.get_running_loop(), {})
        budget = budgets.get(fingerprint)
        if budget is None:
            # a share of the limit: the token's other users (dashboard, workers, other triggerers) need some too
            budget = budgets[fingerprint] = RequestBudget(
                max(1, int(credentials.rate_limit_requests * BUDGET_SHARE)),
                credentials.rate_limit_period,
                quota=quota_for(fingerprint),
            )
        return budget

    async def outcomes(self, interval: float) -> AsyncGenerator[PollOutcome, None]:
        """
        Subscribe: yield each poll's outcome, starting with the latest one if it is fresh.

        :param interval: How often this subscriber wants an answer; the poller polls at the shortest
            interval any subscriber asked for.
        """
        self.intervals.append(interval)
        if self._task is None or self._task.done() or self._task.cancelling():
            self._task = asyncio.create_task(self._run(), name=f"cloudflare-tunnel-poller-{self.key[2]}")
        try:
            latest = self.latest
            if latest is not None and time.time() - latest.at < interval:
                seen = self.rounds
                yield latest
            else:
                seen = self.rounds
            while True:
                seen, outcome = await self._next_round(seen)
                if outcome is not None:
                    yield outcome
        finally:
            self.intervals.remove(interval)
            if not self.intervals and self._task is not None:
                self._task.cancel()  # the last subscriber left: stop polling now, not after the next sleep

    async def _next_round(self, seen: int) -> tuple[int, PollOutcome | None]:
        """Wait for a poll round after round ``seen``; return its number and outcome."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.rounds > seen)
            return self.rounds, self.latest

    async def _run(self) -> None:
        try:
            hook: CloudflareHook | None = None
            while self.intervals:
                try:
                    if hook is None:
                        hook = await hook_for_triggerer(self.key[0], json.loads(self.key[3] or "{}"))
                    await self.budget_for(hook.credentials).acquire()
                    self.requests += 1
                    connectors = await asyncio.to_thread(hook.list_tunnel_connectors, self.key[2], self.key[1])
                    outcome = PollOutcome(connectors=connectors, at=time.time())
                    self._failures = 0
                except CloudflareAPIError as error:
                    outcome = PollOutcome(error=error, at=time.time())
                    self._failures += 1 if error.is_transient else 0
                except Exception as error:  # a bug must not leave every subscriber waiting in silence
                    message = f"Unexpected error while polling tunnel {self.key[2]}: {type(error).__name__}"
                    outcome = PollOutcome(error=CloudflareAPIError(message, transient=False), at=time.time())
                async with self._changed:
                    self.latest = outcome
                    self.rounds += 1
                    self._changed.notify_all()
                if not self.intervals:
                    break
                await asyncio.sleep(self._delay(outcome))
        finally:
            pollers = self._pollers.get(asyncio.get_running_loop(), {})
            if pollers.get(self.key) is self and not self.intervals:
                del pollers[self.key]

    def _delay(self, outcome: PollOutcome) -> float:
        """Seconds until the next poll: the shortest interval asked, longer after transient errors."""
        return poll_delay(min(self.intervals), self._failures, outcome.error)


#: Deprecated alias of :func:`~airflow_provider_cftunnel.hooks.hook_for_triggerer` (removed once no caller is left).
_async_hook = hook_for_triggerer


class CloudflareTunnelConnectorTrigger(BaseTrigger):
    """
    Fires when a tunnel connector is ready: at least ``min_connections`` live connections in at least
    ``min_colos`` data centres, started at or after ``started_after`` when given (the rule of
    :func:`~airflow_provider_cftunnel.rules.find_ready_connector`, the same as the sensor's poke mode).

    Its events: ``{"status": "success", "connector": {...}}`` with Cloudflare's connector object, or an error
    event from :func:`~airflow_provider_cftunnel.exceptions.error_to_event` (the message, and the error's type,
    HTTP status and Cloudflare codes, so the sensor re-raises the same typed error) for bad credentials, a
    wrong account or a malformed request. A 404 and transient errors only mean "not ready yet". It holds no
    state but its arguments, so it can restart on any triggerer; how long it may wait is the sensor's
    ``timeout``, enforced by Airflow.

    :param tunnel_id: The tunnel's UUID.
    :param account_id: The account id (32 hex characters).
    :param connector_id: One connector's UUID, or ``None`` for any connector of the tunnel.
    :param min_connections: How many live connections make a connector ready.
    :param cloudflare_conn_id: The Airflow connection of type ``cloudflare``.
    :param poll_interval: Seconds between polls (shared by every trigger of the same tunnel).
    :param min_colos: How many distinct data centres the live connections must reach.
    :param started_after: ISO 8601 time; only a connector whose ``run_at`` is at or after it counts.
    :param hook_params: ``CloudflareHook`` keyword arguments (plain data), see
        :func:`~airflow_provider_cftunnel.hooks.check_hook_params`.
    """

    def __init__(
        self,
        *,
        tunnel_id: str,
        account_id: str,
        connector_id: str | None = None,
        min_connections: int = 1,
        cloudflare_conn_id: str = "cloudflare_default",
        poll_interval: float = 60.0,
        min_colos: int = 1,
        started_after: str | None = None,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.tunnel_id = tunnel_id
        self.account_id = account_id
        self.connector_id = connector_id
        self.min_connections = min_connections
        self.cloudflare_conn_id = cloudflare_conn_id
        self.poll_interval = poll_interval
        self.min_colos = min_colos
        self.started_after = started_after
        self.hook_params = dict(hook_params or {})

    def _describe_wait(self, connectors: list[TunnelConnector], started_after: datetime | None = None) -> str:
        """What the trigger is still waiting for, for its log."""
        return describe_wait(
            connectors,
            connector_id=self.connector_id,
            min_connections=self.min_connections,
            min_colos=self.min_colos,
            started_after=started_after,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The trigger's class path and plain-data keyword arguments (no secret among them)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "tunnel_id": self.tunnel_id,
                "account_id": self.account_id,
                "connector_id": self.connector_id,
                "min_connections": self.min_connections,
                "cloudflare_conn_id": self.cloudflare_conn_id,
                "poll_interval": self.poll_interval,
                "min_colos": self.min_colos,
                "started_after": self.started_after,
                "hook_params": dict(self.hook_params),
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait on the tunnel's shared poller until a connector is ready or an error ends the wait."""
        try:
            key = (
                self.cloudflare_conn_id,
                validate_account_id(self.account_id),
                validate_uuid(self.tunnel_id, "tunnel_id"),
                json.dumps(check_hook_params(self.hook_params), sort_keys=True),
            )
            if self.connector_id is not None:
                validate_uuid(self.connector_id, "connector_id")
            started_after = parse_started_after(self.started_after)
        except CloudflareAPIError as error:
            yield TriggerEvent(error_to_event(error))
            return
        except ValueError as error:  # hook_params
            yield TriggerEvent(error_to_event(CloudflareConfigError(str(error))))
            return
        last_state = None
        async with aclosing(TunnelPoller.for_key(key).outcomes(self.poll_interval)) as outcomes:
            async for outcome in outcomes:
                if outcome.error is not None:
                    if not means_not_ready(outcome.error):
                        yield TriggerEvent(error_to_event(outcome.error))
                        return
                    state = f"not ready: {outcome.error}"
                else:
                    ready = find_ready_connector(
                        outcome.connectors,
                        min_connections=self.min_connections,
                        connector_id=self.connector_id,
                        started_after=started_after,
                        min_colos=self.min_colos,
                    )
                    if ready is not None:
                        yield TriggerEvent({"status": "success", "connector": ready.to_dict()})
                        return
                    state = self._describe_wait(outcome.connectors, started_after)
                if state != last_state:
                    self.log.info("Tunnel %s %s", self.tunnel_id, state)
                    last_state = state
