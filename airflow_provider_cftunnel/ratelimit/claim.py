"""One request's place in a credential's quota, from its claim to its answer. Standard library only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from airflow_provider_cftunnel.ratelimit.headers import RateLimitObservation

__all__ = ["ClaimLedger", "QuotaClaim"]


class ClaimLedger(Protocol):
    """What a :class:`QuotaClaim` reports to: a :class:`~airflow_provider_cftunnel.ratelimit.quota.ServerQuota`."""

    label: str

    def _take(self, claim: QuotaClaim) -> bool: ...

    def _settle(self, claim_id: int, headers: Mapping[str, str] | None) -> RateLimitObservation | None: ...


class QuotaClaim:
    """
    Count one request as sent until :meth:`settle` reports its answer (or that there was none).

    :param quota: The quota the request was claimed from.
    :param claim_id: The claim's number in that quota.
    :param taken: Whether a request has already taken the claim.
    """

    __slots__ = ("_id", "_taken", "quota")

    def __init__(self, quota: ClaimLedger, claim_id: int, *, taken: bool) -> None:
        self.quota = quota
        self._id = claim_id
        self._taken = taken

    def take(self) -> bool:
        """
        Mark the claim as used by a request; only the first call returns ``True``.

        A claim waited for on one side (the triggerer's loop) is taken by the request it was waited for (in a
        worker thread); taking it twice would send two requests on one claim.
        """
        return self.quota._take(self)

    def settle(self, headers: Mapping[str, str] | None) -> RateLimitObservation | None:
        """
        Stop counting the request as in flight and record what its answer said.

        Safe to call more than once (only the first call counts).

        :param headers: The answer's headers (an error answer's too), or ``None`` when there was no answer.
        :return: The observation recorded, if the headers held one.
        """
        return self.quota._settle(self._id, headers)

    def __repr__(self) -> str:
        return f"<QuotaClaim {self._id} of {self.quota.label}>"
