"""Rate limits per key (usually `(principal, tool)`), built on aiolimiter's leaky bucket.

A call over the limit is rejected at once with `RateLimited` and a `retry_after`; it never waits in a
queue, because a queued call holds a connection slot and its deadline while doing nothing useful.
Each key gets an `AsyncLimiter(max_rate=calls, time_period=per)`: a burst of up to `calls`, then a
steady drain of `calls / per` per second.

Keys live in an LRU map capped at `max_keys`, so a flood of distinct principals cannot grow memory
without bound. An evicted key starts again with a full allowance; at the default cap that only
happens under a flood that the per-principal limits were never meant to stop anyway.

aiolimiter exposes `has_capacity()` but not how long until capacity returns, so `retry_after` reads
the bucket's level (`AsyncLimiter._level`, already drained by `has_capacity()`) and the public drain
rate: the time for `level + 1 - max_rate` units to drain. tests/test_limits.py pins that arithmetic.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from shared.errors import RateLimited

_UNIT_SECONDS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
}
_RATE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)")


@dataclass(frozen=True)
class Rate:
    """`calls` admitted per `per` seconds; bursts of up to `calls` are allowed."""

    calls: float
    per: float = 1.0  # seconds

    def __post_init__(self) -> None:
        # aiolimiter admits one unit per call, so a bucket smaller than 1 could never admit anything.
        if not (math.isfinite(self.calls) and self.calls >= 1):
            raise ValueError(f"a rate needs at least 1 call per period, got {self.calls!r}")
        if not (math.isfinite(self.per) and self.per > 0):
            raise ValueError(f"a rate period must be a positive number of seconds, got {self.per!r}")

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Read `"20/s"`, `"100/min"`, `"5/10s"`, `"1000/hour"`; raise ValueError on anything else."""
        match = _RATE_RE.fullmatch(text.strip().lower()) if isinstance(text, str) else None
        if match is None or match.group(3) not in _UNIT_SECONDS:
            raise ValueError(f"invalid rate {text!r}; expected e.g. '20/s', '100/min' or '5/10s'")
        calls, count, unit = match.groups()
        per = (float(count) if count is not None else 1.0) * _UNIT_SECONDS[unit]
        return cls(calls=float(calls), per=per)

    def describe(self) -> str:
        return f"{self.calls:g} calls per {self.per:g}s"


class RateLimiter:
    """Admit-or-reject rate limiting for many keys; one instance per server (one event loop)."""

    def __init__(self, *, max_keys: int = 10_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self.rejections = 0
        self._limiters: OrderedDict[tuple[str, ...], AsyncLimiter] = OrderedDict()

    def __len__(self) -> int:
        return len(self._limiters)

    async def check(self, key: tuple[str, ...], rate: Rate, *, label: str | None = None) -> None:
        """Take one unit for `key` now, or raise `RateLimited` at once.

        `label` names the limited thing in the message (default: the last part of the key, which by
        convention is the tool name).
        """
        limiter = self._limiter(key, rate)
        if not limiter.has_capacity():
            self.rejections += 1
            wait = self._wait(limiter)
            subject = label if label is not None else (key[-1] if key else "this call")
            raise RateLimited(
                f"rate limit of {rate.describe()} exceeded for {subject}; retry in {wait:.2f} s",
                retry_after=wait,
            )
        # Capacity was just confirmed and nothing ran in between, so this returns without waiting.
        await limiter.acquire()

    def retry_after(self, key: tuple[str, ...], rate: Rate) -> float:
        """Seconds until `key` may make one more call (0.0 if it may now)."""
        limiter = self._limiters.get(key)
        if limiter is None or not _same_rate(limiter, rate) or limiter.has_capacity():
            return 0.0
        return self._wait(limiter)

    def _limiter(self, key: tuple[str, ...], rate: Rate) -> AsyncLimiter:
        limiter = self._limiters.get(key)
        if limiter is None or not _same_rate(limiter, rate):
            # New key, or its configured rate changed (reload): start a fresh bucket.
            limiter = AsyncLimiter(max_rate=rate.calls, time_period=rate.per)
            self._limiters[key] = limiter
        self._limiters.move_to_end(key)
        while len(self._limiters) > self.max_keys:
            self._limiters.popitem(last=False)
        return limiter

    @staticmethod
    def _wait(limiter: AsyncLimiter) -> float:
        """Time for the (just drained) bucket to have room for one more unit."""
        level = float(limiter._level)
        drain_per_second = limiter.max_rate / limiter.time_period
        return max(0.0, (level + 1 - limiter.max_rate) / drain_per_second)


def _same_rate(limiter: AsyncLimiter, rate: Rate) -> bool:
    return limiter.max_rate == rate.calls and limiter.time_period == rate.per
