"""The shared (PostgreSQL) rate limiter: GCRA semantics, several limiters agreeing, and fallback."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from shared.db.pool import Database
from shared.db.rate_store import SharedRateLimiter, store_key
from shared.errors import RateLimited
from shared.resilience.limits import Rate


@pytest.fixture
async def db(database_url):
    database = Database(database_url, min_size=1, max_size=4)
    await database.open()
    yield database
    await database.close()


async def admitted(limiter: SharedRateLimiter, key: tuple[str, ...], rate: Rate, calls: int) -> int:
    count = 0
    for _ in range(calls):
        try:
            await limiter.check(key, rate)
            count += 1
        except RateLimited:
            pass
    return count


async def test_burst_then_steady_rate_with_a_retry_hint(db):
    limiter = SharedRateLimiter(db)
    key, rate = (uuid.uuid4().hex, "tool"), Rate(5, per=1.0)
    assert await admitted(limiter, key, rate, 5) == 5
    with pytest.raises(RateLimited) as refused:
        await limiter.check(key, rate)
    assert 0.0 < refused.value.retry_after <= 0.2 + 0.05
    assert "5 calls per 1s" in refused.value.message and limiter.rejections == 1
    await asyncio.sleep(refused.value.retry_after + 0.02)
    await limiter.check(key, rate)  # one more unit has drained


async def test_replicas_share_one_allowance(db, database_url):
    other_db = Database(database_url, min_size=1, max_size=4)
    await other_db.open()
    try:
        a, b = SharedRateLimiter(db), SharedRateLimiter(other_db)
        key, rate = (uuid.uuid4().hex, "tool"), Rate(10, per=60.0)
        results = await asyncio.gather(*(admitted(limiter, key, rate, 10) for limiter in (a, b, a, b)))
        assert sum(results) == 10  # 40 concurrent attempts through two pools, one shared allowance
        assert a.rejections + b.rejections == 30
    finally:
        await other_db.close()


async def test_keys_are_separate_and_unambiguous(db):
    limiter = SharedRateLimiter(db)
    rate = Rate(1, per=60.0)
    assert store_key(("a|b", "c")) != store_key(("a", "b|c"))
    await limiter.check(("x|y", "z"), rate)
    await limiter.check(("x", "y|z"), rate)


async def test_an_unreachable_store_falls_back_to_the_per_process_limit():
    broken = Database("postgresql://nobody@127.0.0.1:1/none", acquire_timeout=0.1)
    limiter = SharedRateLimiter(broken, timeout_s=0.2)
    key, rate = ("p", "t"), Rate(2, per=60.0)
    assert await admitted(limiter, key, rate, 4) == 2
    assert limiter.fallbacks == 4 and limiter.rejections == 2
