"""Reading Cloudflare's rate-limit headers: ``Ratelimit`` / ``Ratelimit-Policy`` and the legacy ``X-RateLimit-*``.

Absent or malformed headers are "no information" (``None``); when several limits are listed, the most
constraining one governs. Standard library only.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = ["HORIZON_FLOOR", "RESERVE_SHARE", "RateLimitObservation", "horizon", "parse_rate_limit", "reserve_for"]

#: The share of the policy's quota kept for the pool's other users (dashboard, other tools).
RESERVE_SHARE = 0.1


#: What remains above the reserve is spent over at least this share of the policy's window, however soon ``t``
#: says more quota comes (``t`` may be "until some quota is back", not "until all of it is").
HORIZON_FLOOR = 0.5

#: A ``Reset`` above this is a POSIX time (GitHub style), not a number of seconds.
_EPOCH_THRESHOLD = 1e9

_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
_TOKEN = re.compile(r"^[^\s\",;=()]+$")


@dataclass(frozen=True)
class RateLimitObservation:
    """
    What one answer said about one rate limit.

    :param remaining: Requests left in the current window (``r``).
    :param reset: Seconds until the quota resets (``t``), as received.
    :param quota: The policy's quota (``q``), or ``None`` when no policy was sent.
    :param window: The policy's window in seconds (``w``), or ``None``.
    :param name: The limit's name, or ``None`` for the legacy ``X-RateLimit-*`` headers.
    :param observed_at: The quota's clock when it was recorded (0 until then).
    """

    remaining: int
    reset: float
    quota: int | None = None
    window: float | None = None
    name: str | None = None
    observed_at: float = 0.0


def reserve_for(quota: int | None, largest_remaining: int = 0) -> int:
    """
    How many requests of a pool to leave to its other users: 10 % of the quota, at least 1.

    :param quota: The policy's quota, or ``None`` when no policy was sent.
    :param largest_remaining: Without a policy, the largest remaining count seen (a fresh window shows nearly
        the whole quota), whose 10 % is the reserve.
    """
    basis = quota if quota is not None else largest_remaining
    return max(1, math.ceil(basis * RESERVE_SHARE))


def horizon(reset: float, window: float | None) -> float:
    """
    Return the seconds over which what remains above the reserve is spent.

    That is the time to ``t``, but at least half the policy's window (a ``t`` may only promise *some* quota
    back), and at least 1 s.

    :param reset: Seconds until ``t`` (what is left of it).
    :param window: The policy's window, or ``None``.
    """
    return max(reset, (window or 0.0) * HORIZON_FLOOR, 1.0)


# -- parsing -------------------------------------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None and isinstance(headers, dict):  # a plain dict is case-sensitive; requests' is not
        lower = name.lower()
        value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == lower), None)
    return value if isinstance(value, str) else None


def _split(text: str, separator: str) -> Iterator[str]:
    """``text`` split on ``separator`` outside double quotes, each part stripped."""
    start, quoted, escaped = 0, False, False
    for index, char in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == separator:
            yield text[start:index].strip()
            start = index + 1
    yield text[start:].strip()


def _bare(text: str) -> str | None:
    """Return a structured field's bare item as text: a string unquoted, a token or number as is; ``None`` if bad."""
    if not text.startswith('"'):
        return text if _TOKEN.match(text) else None
    chars: list[str] = []
    escaped = False
    for index, char in enumerate(text[1:], 1):
        if escaped:
            chars.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return "".join(chars) if index == len(text) - 1 else None
        else:
            chars.append(char)
    return None  # no closing quote


def _items(value: str) -> list[tuple[str, dict[str, str]]]:
    """Return the members of a structured-field list: ``(name, {param: value})``; malformed members are skipped."""
    members = []
    for member in _split(value, ","):
        if not member:
            continue
        head, *raw_params = list(_split(member, ";"))
        name = _bare(head)
        if name is None:
            continue
        params: dict[str, str] = {}
        for raw in raw_params:
            key, sep, text = raw.partition("=")
            key = key.strip().lower()
            if not key:
                continue
            item = _bare(text.strip()) if sep else "?1"
            if item is not None:
                params[key] = item  # a repeated parameter: the last one wins
        members.append((name, params))
    return members


def _number(text: str | None) -> float | None:
    """Return a non-negative number, or ``None``."""
    if text is None or not _NUMBER.match(text.strip()):
        return None
    value = float(text)
    return value if value >= 0 and math.isfinite(value) else None


def _ietf(headers: Mapping[str, str]) -> list[RateLimitObservation]:
    limits_header = _header(headers, "Ratelimit")
    if not limits_header:
        return []
    policies: dict[str, tuple[int, float]] = {}
    policy_items = _items(_header(headers, "Ratelimit-Policy") or "")
    limit_items = _items(limits_header)
    for name, params in policy_items:
        quota, window = _number(params.get("q")), _number(params.get("w"))
        if quota is not None and quota >= 1 and window is not None and window > 0:
            policies[name] = (int(quota), window)
    limits = []
    for name, params in limit_items:
        remaining, reset = _number(params.get("r")), _number(params.get("t"))
        if remaining is not None:
            limits.append((name, int(remaining), reset))
    observations = []
    for name, remaining, reset in limits:
        policy = policies.get(name)
        if policy is None and len(policies) == 1 and len(policy_items) == len(limit_items) == 1:
            policy = next(iter(policies.values()))  # one of each: they describe the same limit, whatever names
        quota, window = policy if policy is not None else (None, None)
        if reset is None:
            reset = window  # no reset: at worst a whole window away
        if reset is not None:
            observations.append(RateLimitObservation(remaining, reset, quota, window, name))
    return observations


def _legacy(headers: Mapping[str, str]) -> list[RateLimitObservation]:
    for prefix in ("X-RateLimit-", "RateLimit-"):
        remaining_header = _header(headers, prefix + "Remaining")
        if remaining_header is None:
            continue
        remaining = _number(next(_split(remaining_header, ",")))
        reset_header = _header(headers, prefix + "Reset")
        reset = _number(next(_split(reset_header, ","))) if reset_header is not None else None
        if reset is not None and reset > _EPOCH_THRESHOLD:
            reset = max(0.0, reset - time.time())
        quota = window = None
        limit_header = _header(headers, prefix + "Limit")
        if limit_header is not None:
            members = _items(limit_header)  # "1200", or the drafts' "1200, 1200;w=300"
            number = _number(members[0][0]) if members else None
            quota = int(number) if number is not None and number >= 1 else None
            window = next((w for _, params in members if (w := _number(params.get("w")))), None)
        if reset is None:
            reset = window
        if remaining is not None and reset is not None:
            return [RateLimitObservation(int(remaining), reset, quota, window, None)]
    return []


def _constraint(observation: RateLimitObservation) -> tuple[float, float]:
    """Sort key: the lowest rate the limit allows above its reserve comes first; then the longest wait."""
    if observation.reset <= 0:
        return (math.inf, 0.0)  # resets now: constrains nothing
    headroom = max(0, observation.remaining - reserve_for(observation.quota, observation.remaining))
    return (headroom / horizon(observation.reset, observation.window), -observation.reset)


def parse_rate_limit(headers: Mapping[str, str] | None) -> RateLimitObservation | None:
    """
    Return what an answer's rate-limit headers say, or ``None`` when they say nothing usable.

    Reads ``Ratelimit`` and ``Ratelimit-Policy`` (structured-field lists: several comma-separated items with
    quoted or token names, parameters in any order, unknown parameters ignored; a limit is matched to the
    policy of the same name, or to the only policy when there is one of each), else the legacy
    ``X-RateLimit-Remaining`` / ``-Reset`` / ``-Limit`` (``Reset`` in seconds, or a POSIX time). When several
    limits are listed, the most constraining one (the lowest remaining count above its reserve relative to the
    time to its reset) is returned.

    :param headers: The answer's headers (any mapping; a plain dict is searched case-insensitively).
    """
    if not headers:
        return None
    observations = _ietf(headers) or _legacy(headers)
    if not observations:
        return None
    return min(observations, key=_constraint)


# -- the per-credential view of the pool ----------------------------------------------------------------------
