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
from airflow_provider_cftunnel.pollers import LoopPoller
from airflow_provider_cftunnel.ratelimit import (
    BUDGET_SHARE,
    MAX_BACKOFF,
    RequestBudget,
    credential_fingerprint,
    poll_delay,
    quota_for,
)
from airflow_provider_cftunnel.readiness import GateVerdict, ReadinessClock, ReadinessRule, evaluate
from airflow_provider_cftunnel.ready import ReadyAnswer, check_ready_url, read_ready_shared

if TYPE_CHECKING:
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


class TunnelPoller(LoopPoller[PollerKey]):
    """
    Polls one tunnel's ``connections`` endpoint for every trigger of one event loop that watches it.

    Created and found with :meth:`for_key`; runs while it has subscribers, then removes itself.

    :param key: ``(conn_id, account_id, tunnel_id, hook_params_json)``: triggers share a poller only when they
        would make the same request with the same hook settings.
    """

    _budgets: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, RequestBudget]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, key: PollerKey) -> None:
        super().__init__(key)
        self.intervals: list[float] = []
        self.requests = 0
        self.rounds = 0
        self.latest: PollOutcome | None = None
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0

    @classmethod
    def budget_for(cls, credentials: CloudflareCredentials) -> RequestBudget:
        """
        Return the running loop's request budget of one credential (keyed by a hash, never the secret).

        It draws on the process's :class:`~airflow_provider_cftunnel.ratelimit.ServerQuota` of that credential,
        which its hooks feed with every answer's rate-limit headers.
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
            if not self.intervals:
                self.forget()

    def _delay(self, outcome: PollOutcome) -> float:
        """Seconds until the next poll: the shortest interval asked, longer after transient errors."""
        return poll_delay(min(self.intervals), self._failures, outcome.error)


class CloudflareTunnelConnectorTrigger(BaseTrigger):
    """
    Fire when a tunnel connector is ready by the sensor's readiness rule.

    The rule is a :class:`~airflow_provider_cftunnel.readiness.ReadinessRule`, decided by
    :func:`~airflow_provider_cftunnel.readiness.evaluate` as in poke mode.

    It waits on the tunnel's shared :class:`TunnelPoller`; with ``ready_url`` it also reads cloudflared's
    ``/ready`` after each poll (in a thread, one read per interval shared by every trigger of the URL). Its
    events: ``{"status": "success", "connector": {...}}`` with Cloudflare's connector object; ``{"status":
    "timeout", "reason": "..."}`` at ``timeout_at``, naming the last reason the gate stayed shut; or an error
    event from :func:`~airflow_provider_cftunnel.exceptions.error_to_event` (so the sensor re-raises the same
    typed error) for bad credentials, a wrong account, a malformed request or a ``ready_url`` that is not
    cloudflared's. A 404, transient errors and a refused or 503 ``/ready`` only mean "not ready yet". The
    ``stable_for`` clock lives in memory: a trigger restarted on another triggerer starts it again (it may
    open later, never earlier).

    :param tunnel_id: The tunnel's UUID.
    :param account_id: The account id (32 hex characters).
    :param rule: The rule, as :meth:`~airflow_provider_cftunnel.readiness.ReadinessRule.to_dict` wrote it.
    :param ready_url: cloudflared's ``/ready`` URL, or ``None``.
    :param cloudflare_conn_id: The Airflow connection of type ``cloudflare``.
    :param poll_interval: Seconds between polls (shared by every trigger of the same tunnel).
    :param hook_params: ``CloudflareHook`` keyword arguments (plain data), see
        :func:`~airflow_provider_cftunnel.hooks.check_hook_params`.
    :param timeout_at: POSIX time at which to give up with a timeout event; ``None`` for never.
    :param last_reason: Why the gate was shut when the sensor deferred (for a timeout before the first poll).
    :param legacy: ``min_connections``, ``connector_id``, ``min_colos``, ``started_after`` of a trigger
        serialized by an earlier version (read into ``rule`` when ``rule`` is absent).
    """

    def __init__(
        self,
        *,
        tunnel_id: str,
        account_id: str,
        rule: dict[str, Any] | None = None,
        ready_url: str | None = None,
        cloudflare_conn_id: str = "cloudflare_default",
        poll_interval: float = 60.0,
        hook_params: dict[str, Any] | None = None,
        timeout_at: float | None = None,
        last_reason: str | None = None,
        **legacy: Any,
    ) -> None:
        super().__init__()
        self.tunnel_id = tunnel_id
        self.account_id = account_id
        self.rule = dict(rule if rule is not None else legacy)
        self.ready_url = ready_url
        self.cloudflare_conn_id = cloudflare_conn_id
        self.poll_interval = poll_interval
        self.hook_params = dict(hook_params or {})
        self.timeout_at = timeout_at
        self.last_reason = last_reason

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the trigger's class path and plain-data keyword arguments (no secret among them)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "tunnel_id": self.tunnel_id,
                "account_id": self.account_id,
                "rule": dict(self.rule),
                "ready_url": self.ready_url,
                "cloudflare_conn_id": self.cloudflare_conn_id,
                "poll_interval": self.poll_interval,
                "hook_params": dict(self.hook_params),
                "timeout_at": self.timeout_at,
                "last_reason": self.last_reason,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait on the tunnel's shared poller until the gate opens, an error ends the wait, or time is up."""
        try:
            key = (
                self.cloudflare_conn_id,
                validate_account_id(self.account_id),
                validate_uuid(self.tunnel_id, "tunnel_id"),
                json.dumps(check_hook_params(self.hook_params), sort_keys=True),
            )
            rule = ReadinessRule.from_dict(self.rule)
            ready_url = check_ready_url(self.ready_url) if self.ready_url else None
        except CloudflareAPIError as error:
            yield TriggerEvent(error_to_event(error))
            return
        except ValueError as error:  # hook_params
            yield TriggerEvent(error_to_event(CloudflareConfigError(str(error))))
            return
        reason = self.last_reason or "no poll yet"
        clock = ReadinessClock()
        latest: tuple[list[TunnelConnector], ReadyAnswer | None] | None = None
        verdict: GateVerdict | None = None
        outcomes: asyncio.Queue[PollOutcome] = asyncio.Queue()
        pump = asyncio.create_task(self._pump(key, outcomes), name=f"cloudflare-tunnel-gate-{self.tunnel_id}")
        try:
            while True:
                wait = None if verdict is None else verdict.due_in
                if self.timeout_at is not None:
                    left = max(0.0, self.timeout_at - time.time())
                    wait = left if wait is None else min(wait, left)
                try:
                    outcome: PollOutcome | None = await asyncio.wait_for(outcomes.get(), wait)
                except TimeoutError:
                    outcome = None
                if outcome is None and self.timeout_at is not None and time.time() >= self.timeout_at:
                    yield TriggerEvent({"status": "timeout", "reason": reason})
                    return
                if outcome is not None and outcome.error is not None:
                    if not means_not_ready(outcome.error):
                        yield TriggerEvent(error_to_event(outcome.error))
                        return
                    latest = None
                    verdict = GateVerdict.waiting(f"not ready yet: {outcome.error}")
                else:
                    if outcome is not None:  # a fresh poll; else stable_for fell due: decide on the last one
                        ready = await read_ready_shared(ready_url, self.poll_interval / 2) if ready_url else None
                        latest = (outcome.connectors, ready)
                    if latest is None:
                        continue
                    verdict = evaluate(rule, latest[0], now=time.time(), clock=clock, ready=latest[1])
                clock = verdict.clock
                if verdict.ready and verdict.connector is not None:
                    self.log.info("Tunnel %s ready: %s", self.tunnel_id, verdict.reason)
                    yield TriggerEvent({"status": "success", "connector": verdict.connector.to_dict()})
                    return
                if verdict.reason != reason:
                    self.log.info("Tunnel %s %s", self.tunnel_id, verdict.reason)
                    reason = verdict.reason
        except CloudflareConfigError as error:  # a ready_url that is not cloudflared's
            yield TriggerEvent(error_to_event(error))
        finally:
            pump.cancel()

    async def _pump(self, key: PollerKey, into: asyncio.Queue[PollOutcome]) -> None:
        """Hand each of the shared poller's outcomes to :meth:`run` (which may also wake on its own)."""
        async with aclosing(TunnelPoller.for_key(key).outcomes(self.poll_interval)) as outcomes:
            async for outcome in outcomes:
                await into.put(outcome)
