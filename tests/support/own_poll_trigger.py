"""The health watcher as it was before watchers shared a poll: each one polls on its own (the "before" figures).

:class:`OwnPollHealthTrigger` is :class:`~airflow_provider_cftunnel.triggers.health.CloudflareTunnelHealthTrigger`
with no shared stream and a private :class:`~airflow_provider_cftunnel.health_poller.HealthPoller`: the same reads,
rule, state and request budget, but one poll per watcher per interval, as each watcher made before issue 18.
``bench/watchers.py`` runs it through the real triggerer to measure what sharing saves; the triggerer imports it
by its class path, so the repository root must be on its ``PYTHONPATH``.
"""

from __future__ import annotations

from collections.abc import Hashable

from airflow_provider_cftunnel.health_poller import HealthPoller, stream_key
from airflow_provider_cftunnel.triggers.health import CloudflareTunnelHealthTrigger

__all__ = ["OwnPollHealthTrigger"]


class OwnPollHealthTrigger(CloudflareTunnelHealthTrigger):
    """A health watcher that shares nothing: one poll of its own tunnels per interval."""

    _own: HealthPoller | None = None

    def shared_stream_key(self) -> Hashable | None:
        """No shared stream: the triggerer calls :meth:`run`."""
        return None

    def _poller(self) -> HealthPoller:
        if self._own is None:  # not registered by key: no other watcher finds it
            self._own = HealthPoller(stream_key(self.serialize()[1]))
        return self._own
