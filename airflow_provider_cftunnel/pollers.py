"""The registry of shared pollers: one poller per key in each running event loop."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, ClassVar, Generic, Self, TypeVar

K = TypeVar("K")

__all__ = ["LoopPoller"]


class LoopPoller(Generic[K]):
    """
    Base of a poller that each running event loop holds once per key.

    Each subclass keeps its own registry, keyed weakly by the loop, so a poller never outlives its loop and
    never serves another one.

    :param key: What the poller polls for; equal keys share one poller.
    """

    _pollers: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, Any]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._pollers = weakref.WeakKeyDictionary()

    def __init__(self, key: K) -> None:
        self.key = key

    @classmethod
    def for_key(cls, key: K) -> Self:
        """Return the running loop's poller for ``key``, created on first use."""
        pollers = cls._pollers.setdefault(asyncio.get_running_loop(), {})
        poller = pollers.get(key)
        if poller is None:
            poller = pollers[key] = cls(key)
        return poller

    @classmethod
    def active(cls) -> dict[K, Self]:
        """Return the running loop's pollers (for tests and benchmarks)."""
        return dict(cls._pollers.get(asyncio.get_running_loop(), {}))

    def forget(self) -> None:
        """Drop this poller from its loop's registry, if it is still the one registered for its key."""
        try:
            pollers = self._pollers.get(asyncio.get_running_loop(), {})
        except RuntimeError:  # pragma: no cover - no running loop (interpreter shutdown)
            return
        if pollers.get(self.key) is self:
            del pollers[self.key]
