"""React to tunnel health as it changes: an event trigger for Airflow's ``AssetWatcher`` (Airflow 3.0+).

A scheduled health check learns of an outage up to one schedule interval late and costs a DAG run each time,
even when nothing happened. Cloudflare alerts on status changes only by email or a webhook that needs a public
endpoint. This trigger runs in the triggerer, polls the health of a set of tunnels, and yields one event per
CHANGE of a tunnel's health, so a DAG scheduled on the watched asset runs when ``prod-web-*`` goes down (the
failover) and again when it recovers (the all-clear), and never while nothing changes: Airflow's docs warn that
a trigger firing on a condition that stays true runs DAGs forever.

* The rule is the health operator's (:class:`~airflow_provider_cftunnel.rules.HealthRule`), and so is the
  fetching (:func:`~airflow_provider_cftunnel.health.poll_health`). Every watcher of one triggerer with the same
  connection, account, poll interval and hook settings shares ONE poll
  (:class:`~airflow_provider_cftunnel.health_poller.HealthPoller`): on Airflow 3.3+ through the triggerer's shared
  stream (``shared_stream_key``), before 3.3 in the process. A poll reads what all of them select at the least
  cost (one list request per 1,000 tunnels) and each tunnel's ``connections`` once, where some rule needs them;
  each watcher applies its own selection, rule and state. Every request draws from the same per-credential
  request budget as the connector sensors' trigger.
* The first observation is the baseline and fires nothing. On Airflow 3.3+ the last seen health of each tunnel
  is kept in the asset's state store (``asset_state_store``, injected by the triggerer), so a triggerer restart
  or a move to another triggerer neither re-fires a known state nor loses a change that happened meanwhile.
  Its keys are scoped to the selection and the rule: watchers sharing an asset keep apart, and a watcher whose
  selection or rule changed takes a new baseline.
  Before 3.3 (or outside the triggerer) it is kept in memory, and a restarted trigger takes a new baseline.
* Transient errors (429, 5xx, no answer) are not health changes: it keeps polling, backing off. Bad
  credentials, a wrong account or a malformed argument end it with a clear error in the triggerer log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Hashable, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_cftunnel.exceptions import error_from_event, error_to_event
from airflow_provider_cftunnel.health_plan import check_max_age
from airflow_provider_cftunnel.health_poller import HealthPoller, PollResult, stream_key
from airflow_provider_cftunnel.hooks import check_hook_params

try:  # Airflow 3.0+; on 2.11 the class still imports, but AssetWatcher (and so this trigger) does not exist
    from airflow.triggers.base import BaseEventTrigger
except ImportError:  # pragma: no cover - Airflow 2.11
    BaseEventTrigger = BaseTrigger  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from airflow_provider_cftunnel.health_plan import Demand
    from airflow_provider_cftunnel.rules import HealthRule, TunnelHealth

__all__ = ["CloudflareTunnelHealthTrigger", "health_changes"]

#: The state store keeps one value per first hex digit of the tunnel id, so no value grows past its size limit,
#: under a prefix of the watcher's own selection and rule: several watchers may share an asset (and so its store),
#: and a watcher whose selection changed must not take another selection's tunnels for its own.
_STATE_KEY = "cftunnel-health-{selection}-{shard}"
_SHARDS = "0123456789abcdef"

#: What is remembered of a tunnel between polls: ``[status, healthy, name]``.
Remembered = list[Any]


def health_changes(
    previous: dict[str, Remembered], verdicts: Sequence[TunnelHealth], *, observed_at: str, account_id: str
) -> list[dict[str, Any]]:
    """
    Return the events for what changed between ``previous`` and ``verdicts``.

    A tunnel whose status or verdict changed gives one, and so does one that appeared or disappeared (deleted, or
    renamed out of the selection).

    :param previous: ``{tunnel_id: [status, healthy, name]}`` as last seen.
    :param verdicts: This poll's verdicts.
    :param observed_at: When this poll was made (ISO 8601).
    :param account_id: The account, for the events.
    :return: Plain-JSON event payloads, in the verdicts' order, then the disappeared tunnels.
    """
    events = []
    seen = set()
    for verdict in verdicts:
        seen.add(verdict.id)
        before = previous.get(verdict.id)
        if before is not None and before[0] == verdict.status and before[1] == verdict.healthy:
            continue
        events.append(
            {
                "tunnel_id": verdict.id,
                "tunnel_name": verdict.name,
                "account_id": account_id,
                "status": verdict.status,
                "previous_status": None if before is None else before[0],
                "healthy": verdict.healthy,
                "previous_healthy": None if before is None else before[1],
                "reasons": list(verdict.reasons),
                "live_connections": verdict.live_connections,
                "colos": None if verdict.colos is None else list(verdict.colos),
                "change": "appeared" if before is None else "changed",
                "observed_at": observed_at,
            }
        )
    for tunnel_id, before in previous.items():
        if tunnel_id not in seen:
            events.append(
                {
                    "tunnel_id": tunnel_id,
                    "tunnel_name": before[2],
                    "account_id": account_id,
                    "status": None,
                    "previous_status": before[0],
                    "healthy": False,
                    "previous_healthy": before[1],
                    "reasons": ["no longer listed: deleted, or renamed out of the selection"],
                    "live_connections": None,
                    "colos": None,
                    "change": "disappeared",
                    "observed_at": observed_at,
                }
            )
    return events


class CloudflareTunnelHealthTrigger(BaseEventTrigger):
    """
    Yield one event per change of a tunnel's health, for ``AssetWatcher`` (Airflow 3.0+).

    For example::

        from airflow.sdk import Asset, AssetWatcher

        web_health = Asset(
            "cftunnel-prod-web-health",
            watchers=[
                AssetWatcher(
                    name="prod_web_health",
                    trigger=CloudflareTunnelHealthTrigger(name_prefix="prod-web-", poll_interval=60),
                )
            ],
        )

    Each event's payload (in ``AssetEvent.extra["payload"]``): ``tunnel_id``, ``tunnel_name``, ``account_id``,
    ``status`` and ``previous_status`` (Cloudflare's; ``None`` when unknown), ``healthy`` and
    ``previous_healthy``, ``reasons``, ``live_connections`` and ``colos`` (``None`` unless fetched), ``change``
    (``changed``, ``appeared`` or ``disappeared``) and ``observed_at``. A change is a new status or a new verdict;
    the first observation is the baseline and fires nothing.

    Cost per ``poll_interval``, for ALL the watchers of one triggerer that share its connection, account, poll
    interval and hook settings: the cheapest reads that cover their selections (the account's list, one request
    per 1,000 tunnels; or a list per name prefix; or ids one by one when fewer), one read by id of an explicit id
    the list does not return (a scoped token hides it, or it was deleted), and one ``connections`` request per
    tunnel whose verdict needs it (never with the default rule; with ``connections_max_age``, only when the
    tunnel's status fields changed or its last read is older), all drawn from the credential's request budget.

    :param tunnel_ids: Tunnel UUIDs to watch, or ``None``.
    :param name_prefix: Watch the tunnels whose name starts with this, or ``None``; neither: every tunnel of the
        account.
    :param account_id: The account id; defaults to the connection's ``extra.account_id``.
    :param allowed_statuses: The Cloudflare statuses that count as healthy (default ``["healthy"]``).
    :param min_live_connections: Live connections a tunnel needs, summed over its connectors (default 1).
    :param min_colos: Distinct data centres its live connections must reach (default 1).
    :param cloudflare_conn_id: The Airflow connection of type ``cloudflare``.
    :param poll_interval: Seconds between polls (default 60).
    :param hook_params: ``CloudflareHook`` keyword arguments (plain data), see
        :func:`~airflow_provider_cftunnel.hooks.check_hook_params`.
    :param connections_max_age: With ``min_live_connections`` or ``min_colos`` above 1: seconds a tunnel's
        ``connections`` read is reused while its ``status``, ``conns_active_at`` and ``conns_inactive_at`` stay
        the same (default ``None``: read every poll). See docs/deployment.md for what it trades.
    """

    def __init__(
        self,
        *,
        tunnel_ids: Sequence[str] | None = None,
        name_prefix: str | None = None,
        account_id: str | None = None,
        allowed_statuses: Sequence[str] = ("healthy",),
        min_live_connections: int = 1,
        min_colos: int = 1,
        cloudflare_conn_id: str = "cloudflare_default",
        poll_interval: float = 60.0,
        hook_params: dict[str, Any] | None = None,
        connections_max_age: float | None = None,
    ) -> None:
        super().__init__()
        self.tunnel_ids = None if tunnel_ids is None else list(tunnel_ids)
        self.name_prefix = name_prefix
        self.account_id = account_id
        self.allowed_statuses = list(allowed_statuses)
        self.min_live_connections = min_live_connections
        self.min_colos = min_colos
        self.cloudflare_conn_id = cloudflare_conn_id
        self.poll_interval = poll_interval
        self.hook_params = dict(hook_params or {})
        self.connections_max_age = connections_max_age
        if not hasattr(self, "asset_state_store"):  # Airflow 2.11's BaseTrigger
            self.asset_state_store = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the trigger's class path and plain-data keyword arguments (no secret among them)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "tunnel_ids": None if self.tunnel_ids is None else list(self.tunnel_ids),
                "name_prefix": self.name_prefix,
                "account_id": self.account_id,
                "allowed_statuses": list(self.allowed_statuses),
                "min_live_connections": self.min_live_connections,
                "min_colos": self.min_colos,
                "cloudflare_conn_id": self.cloudflare_conn_id,
                "poll_interval": self.poll_interval,
                "hook_params": dict(self.hook_params),
                "connections_max_age": self.connections_max_age,
            },
        )

    def _rule(self) -> HealthRule:
        from airflow_provider_cftunnel.rules import HealthRule

        return HealthRule(tuple(self.allowed_statuses), self.min_live_connections, self.min_colos)

    def shared_stream_key(self) -> Hashable | None:
        """Return the key of the poll this watcher shares (Airflow 3.3+): per connection, account, interval, hook."""
        return stream_key(self.serialize()[1])

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """
        Yield every poll's :class:`~airflow_provider_cftunnel.health_poller.PollResult` for the watchers of one key.

        Airflow 3.3+ calls this once per key and fans the results out. What to read comes from the demands the
        watchers register with the poller, not from ``kwargs`` (one watcher's).

        :param kwargs: One watcher's serialized keyword arguments.
        """
        poller = HealthPoller.for_key(stream_key(kwargs))
        async with aclosing(poller.results()) as results:
            async for result in results:
                yield result

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """
        Yield one event per change, forever, from this process's shared poll.

        This is the path of Airflow before 3.3, or outside the triggerer; events are as :meth:`filter_shared_stream`
        yields them.
        """
        async with aclosing(self._poller().results()) as results:
            events = self.filter_shared_stream(results)
            try:
                async for event in events:
                    yield event
            finally:
                await events.aclose()  # type: ignore[attr-defined]  # an async generator

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """
        Yield one event per change of health in the shared poll's results, forever.

        The watcher registers its selection and rule with the shared poll and compares each poll's verdicts with
        the last seen health.

        :param shared_stream: The shared poll's results.
        :raises CloudflareAPIError: On bad credentials, a wrong account or a malformed argument (typed as the
            hook raises them), which end the watcher with the error in the triggerer log.
        """
        from airflow_provider_cftunnel.health import describe_unhealthy, make_demand

        check_hook_params(self.hook_params)
        demand = make_demand(self.tunnel_ids, self.name_prefix, self._rule(), check_max_age(self.connections_max_age))
        poller = self._poller()
        handle = poller.register(demand)
        try:
            previous = await self._load_state(demand)
            where = self._describe_selection(demand)
            every = f"every {float(self.poll_interval):g} s"
            if previous:
                self.log.info(
                    "Watching %s %s (%s); resuming from the stored health of %d tunnel(s)",
                    where,
                    every,
                    _describe_rule(demand),
                    len(previous),
                )
            else:
                self.log.info(
                    "Watching %s %s (%s); the first poll is the baseline", where, every, _describe_rule(demand)
                )
            failing = False
            async for result in shared_stream:
                if not isinstance(result, PollResult):
                    continue
                if result.error is not None:
                    error = error_from_event(error_to_event(result.error))  # its own copy for its own traceback
                    if not error.is_transient:
                        self.log.error("Stopping the tunnel health watcher of %s: %s", where, error)
                        raise error
                    if not failing:
                        self.log.warning("Tunnel health poll failed (%s); not a health change, retrying", error)
                    failing = True
                    continue
                if failing:
                    self.log.info("Tunnel health poll works again")
                    failing = False
                snapshot = result.snapshot
                verdicts = None if snapshot is None else snapshot.verdicts(demand)
                if snapshot is None or verdicts is None:
                    continue  # a poll planned before this watcher joined: the next one covers it
                current = {v.id: [v.status, v.healthy, v.name] for v in verdicts}
                if previous is None:
                    self.log.info("Baseline of %s: %s", where, describe_unhealthy(verdicts, limit=10))
                else:
                    for payload in health_changes(
                        previous, verdicts, observed_at=snapshot.observed_at, account_id=snapshot.account_id
                    ):
                        self.log.info(
                            "Tunnel %s (%s) went %s -> %s",
                            payload["tunnel_name"],
                            payload["tunnel_id"],
                            _state(payload["previous_status"], payload["previous_healthy"]),
                            _state(payload["status"], payload["healthy"]),
                        )
                        yield TriggerEvent(payload)
                await self._save_state(previous or {}, current)
                previous = current
        finally:
            poller.unregister(handle)

    def _poller(self) -> HealthPoller:
        """Return the poll this watcher registers with and (before 3.3) subscribes to: its key's, in this loop."""
        return HealthPoller.for_key(stream_key(self.serialize()[1]))

    def _describe_selection(self, demand: Demand) -> str:
        account = f"account {self.account_id}" if self.account_id else "the connection's account"
        if demand.tunnel_ids is not None:
            return f"{len(demand.tunnel_ids)} tunnel(s) of {account}"
        if demand.name_prefix:
            return f"the tunnels named {demand.name_prefix}* of {account}"
        return f"every tunnel of {account}"

    # -- state: the asset state store on Airflow 3.3+, else memory --

    async def _load_state(self, demand: Demand) -> dict[str, Remembered] | None:
        """
        Return the stored health per tunnel, or ``None`` for "take a baseline" (nothing stored, or no store).

        A watcher of explicit ids reads only their shards: one read, not 16, for a watcher of one tunnel (a fleet
        of 1,000 such watchers starts with 1,000 reads of the store, not 16,000).
        """
        store = self.asset_state_store
        if store is None:
            return None
        shards = _SHARDS if demand.tunnel_ids is None else sorted({i[:1] for i in demand.tunnel_ids})
        state: dict[str, Remembered] = {}
        try:
            for shard in shards:
                value = await store.aget(self._state_key(shard))
                if isinstance(value, dict):
                    state.update({k: v for k, v in value.items() if isinstance(v, list) and len(v) == 3})
        except Exception as error:  # a store we cannot read: fall back to a new baseline, and say so
            self.log.warning("Could not read the asset state store (%s); taking a new baseline", error)
            return None
        return state or None

    async def _save_state(self, previous: dict[str, Remembered], current: dict[str, Remembered]) -> None:
        """Write the shards that changed (each holds the tunnels whose id starts with its hex digit)."""
        store = self.asset_state_store
        if store is None:
            return
        changed = {tid[:1] for tid in set(previous) ^ set(current)}
        changed |= {tid[:1] for tid in current if previous.get(tid) != current[tid]}
        try:
            for shard in sorted(changed):
                value: dict[str, Any] = {tid: state for tid, state in current.items() if tid[:1] == shard}
                key = self._state_key(shard)
                if value:
                    await store.aset(key, value)
                else:
                    await store.adelete(key)
        except Exception as error:
            self.log.warning("Could not write the asset state store (%s); a restart will take a new baseline", error)

    def _state_key(self, shard: str) -> str:
        """Return the store key of one shard: scoped to what decides the events (selection and rule), not the timing."""
        _, kwargs = self.serialize()
        scope = {k: kwargs[k] for k in ("tunnel_ids", "name_prefix", "account_id", "cloudflare_conn_id")}
        scope["rule"] = [kwargs["allowed_statuses"], kwargs["min_live_connections"], kwargs["min_colos"]]
        digest = hashlib.sha256(json.dumps(scope, sort_keys=True).encode()).hexdigest()[:16]
        return _STATE_KEY.format(selection=digest, shard=shard)


def _describe_rule(demand: Demand) -> str:
    rule = demand.rule
    text = f"healthy: status {' or '.join(rule.allowed_statuses)}"
    if rule.strict:
        text += f", {rule.min_live_connections} live connection(s) in {rule.min_colos} data centre(s)"
        if demand.connections_max_age:
            text += f", connections re-read at least every {demand.connections_max_age:g} s"
    return text


def _state(status: str | None, healthy: bool | None) -> str:
    if status is None and healthy is None:
        return "(new)"
    return f"{status or 'unknown'} ({'healthy' if healthy else 'unhealthy'})"
