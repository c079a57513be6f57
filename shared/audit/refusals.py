"""A per-principal budget for audited refusals, so refused calls cannot flood the audit log.

Refusals (an unknown tool, a missing scope, no valid token) are audited like any call, but each one is
a durable write that costs the refused caller nothing. Within `REFUSAL_RATE` per principal each is
recorded on its own; beyond it the caller gets `rate_limited` and the refusals are counted, and one
summary record per principal and `SUMMARY_EVERY_S` says how many were suppressed. A caller with no
scopes can therefore cause at most a few writes per second, whatever it sends.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from shared.errors import RateLimited
from shared.resilience.limits import Rate, RateLimiter

log = logging.getLogger(__name__)

REFUSAL_RATE = Rate(10, per=1.0)
SUMMARY_EVERY_S = 1.0


class RefusalBudget:
    """Decides which refusals are recorded one by one, and summarises the rest."""

    def __init__(self, write_summary: Callable[[str, int], Awaitable[Any]], *, rate: Rate = REFUSAL_RATE,
                 max_keys: int = 10_000) -> None:
        self.rate = rate
        self._limiter = RateLimiter(max_keys=max_keys)
        self._write_summary = write_summary
        self._suppressed: Counter[str] = Counter()
        self._flush: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def admit(self, principal: str) -> RateLimited | None:
        """None: record this refusal. Otherwise the `RateLimited` to answer with (counted, not recorded)."""
        try:
            await self._limiter.check((principal, "refusals"), self.rate, label="refused calls")
        except RateLimited as limited:
            self._suppressed[principal] += 1
            if self._flush is None:
                self._flush = asyncio.get_running_loop().call_later(SUMMARY_EVERY_S, self._summarise)
            return limited
        return None

    @property
    def pending(self) -> dict[str, int]:
        return dict(self._suppressed)

    def _summarise(self) -> None:
        self._flush = None
        counts, self._suppressed = self._suppressed, Counter()
        for principal, count in counts.items():
            task = asyncio.get_running_loop().create_task(self._write(principal, count))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _write(self, principal: str, count: int) -> None:
        try:
            await self._write_summary(principal, count)
        except Exception as exc:  # noqa: BLE001 - a lost summary is logged; the refusals stood
            log.error("could not record %d suppressed refusals of %s (%s)", count, principal, type(exc).__name__)

    async def drain(self) -> None:
        """Write any summary now (at shutdown)."""
        if self._flush is not None:
            self._flush.cancel()
            self._summarise()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
