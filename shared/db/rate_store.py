"""Rate limits shared by every replica, kept in PostgreSQL: one GCRA row per key, one round trip.

With several `serve` processes behind a load balancer, the per-process `limits.RateLimiter` would
admit N times the declared rate. `SharedRateLimiter` keeps the same interface (`check`, `rejections`)
but decides in the database with the generic cell rate algorithm: a key's row holds its theoretical
arrival time (TAT); a call is admitted when `max(TAT, now) + T - now <= period`, where
`T = period / calls`, which allows bursts of `calls` and then one call every `T` seconds, exactly
like the in-process limiter. The decision and the new TAT are one `INSERT ... ON CONFLICT DO UPDATE
... RETURNING`, so concurrent replicas serialise on the row lock and never over-admit. Time is the
database's clock, so replicas with skewed clocks still agree.

If the store cannot answer within `timeout_s` (database down or hung, breaker open), the call falls back to
the process's own limiter: limits then hold per replica instead of globally, which is better than
refusing every call or admitting all of them. Why not Redis: the suite's one stateful dependency is
PostgreSQL, and one indexed row update (~0.1 ms) is cheap beside the audit commit every call makes.
"""

from __future__ import annotations

import logging
import random

import asyncpg

from shared.db.pool import Database
from shared.errors import RateLimited, ToolFailure
from shared.resilience.deadline import deadline_in
from shared.resilience.limits import Rate, RateLimiter

log = logging.getLogger(__name__)

_EPSILON = 1e-9

GCRA_SQL = """
INSERT INTO rate_limits AS r (key, tat, allowed, seen_at)
SELECT $1, t.now + $2, true, t.now FROM (SELECT extract(epoch FROM clock_timestamp())::float8 AS now) AS t
ON CONFLICT (key) DO UPDATE SET
    allowed = greatest(r.tat, EXCLUDED.seen_at) + $2 - EXCLUDED.seen_at <= $3 + 1e-9,
    tat = CASE WHEN greatest(r.tat, EXCLUDED.seen_at) + $2 - EXCLUDED.seen_at <= $3 + 1e-9
               THEN greatest(r.tat, EXCLUDED.seen_at) + $2 ELSE r.tat END,
    seen_at = EXCLUDED.seen_at
RETURNING allowed, tat - seen_at AS ahead
"""

PRUNE_SQL = "DELETE FROM rate_limits WHERE tat < extract(epoch FROM clock_timestamp()) - $1"


def store_key(key: tuple[str, ...]) -> str:
    """A printable, unambiguous row key (parts are length-prefixed, so no separator can collide)."""
    return "|".join(f"{len(part)}:{part}" for part in key)


class SharedRateLimiter:
    """Admit-or-reject limits decided in PostgreSQL; drop-in for `limits.RateLimiter` in the pipeline."""

    def __init__(
        self, db: Database, *, timeout_s: float = 1.0, prune_every: int = 5000, prune_after_s: float = 3600.0
    ) -> None:
        self.db = db
        self.timeout_s = timeout_s
        self.prune_every = prune_every
        self.prune_after_s = prune_after_s
        self.local = RateLimiter()
        self.rejections = 0
        self.fallbacks = 0

    def __len__(self) -> int:
        return len(self.local)

    async def check(self, key: tuple[str, ...], rate: Rate, *, label: str | None = None) -> None:
        """Take one unit for `key` now, or raise `RateLimited` at once (same contract as RateLimiter)."""
        try:
            async with deadline_in(self.timeout_s):  # a hung store counts against the database breaker
                allowed, ahead = await self._decide(key, rate)
        except (ToolFailure, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self.fallbacks += 1
            log.warning("shared rate store unavailable (%s); limiting per process", type(exc).__name__)
            before = self.local.rejections
            try:
                await self.local.check(key, rate, label=label)
            finally:
                self.rejections += self.local.rejections - before
            return
        if allowed:
            return
        self.rejections += 1
        interval = rate.per / rate.calls
        wait = max(0.0, ahead - (rate.per - interval))
        subject = label if label is not None else (key[-1] if key else "this call")
        raise RateLimited(
            f"rate limit of {rate.describe()} exceeded for {subject}; retry in {wait:.2f} s", retry_after=wait
        )

    async def _decide(self, key: tuple[str, ...], rate: Rate) -> tuple[bool, float]:
        interval = rate.per / rate.calls
        async with self.db.acquire() as conn:
            row = await conn.fetchrow(GCRA_SQL, store_key(key), interval, rate.per)
            if self.prune_every and random.randrange(self.prune_every) == 0:  # noqa: S311 - not security
                await conn.execute(PRUNE_SQL, self.prune_after_s + rate.per)
        return bool(row["allowed"]), float(row["ahead"])
