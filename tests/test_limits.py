"""Per-key rate limits: burst, reject at once with a sane retry_after, refill, independence, eviction.

aiolimiter reads the running loop's `time()`, so the tests replace it on the running loop with a fake
clock (restored by monkeypatch). Nothing here sleeps, so the loop never needs real time meanwhile.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from shared.errors import RateLimited
from shared.resilience.limits import Rate, RateLimiter
from shared.tool import client_message
from tests.support.clock import FakeClock


@pytest.fixture
async def clock(monkeypatch) -> FakeClock:
    loop = asyncio.get_running_loop()
    # Start on a whole second: fake steps such as 0.5 s then add up exactly. From an arbitrary start
    # (`loop.time()` has bits down to ~1e-10) a step can round, and a bucket that should be exactly
    # drained keeps ~1e-13 of a unit and refuses a call it should admit.
    fake = FakeClock(float(math.floor(loop.time())))
    monkeypatch.setattr(loop, "time", fake)
    return fake


async def take(limiter: RateLimiter, key: tuple[str, ...], rate: Rate, n: int) -> None:
    for _ in range(n):
        await limiter.check(key, rate)


async def test_the_limiter_refills_on_the_fake_loop_clock(clock):
    """The limiter (through aiolimiter) reads the loop's clock: 4096 s of fake time, and no real time
    at all, refill a one-per-4096-s bucket; a quarter of a second less does not. (Powers of two keep
    the drain arithmetic exact, so "exactly refilled" is not left holding 1e-13 of a unit.)"""
    limiter = RateLimiter()
    rate = Rate(calls=1, per=4096)
    key = ("alice", "export")
    await limiter.check(key, rate)
    with pytest.raises(RateLimited) as info:
        await limiter.check(key, rate)
    assert info.value.retry_after == pytest.approx(4096)
    clock.advance(4095.75)
    with pytest.raises(RateLimited) as info:
        await limiter.check(key, rate)
    assert info.value.retry_after == pytest.approx(0.25)
    assert limiter.retry_after(key, rate) == pytest.approx(0.25)
    clock.advance(0.25)
    assert limiter.retry_after(key, rate) == 0.0
    await limiter.check(key, rate)
    assert limiter.rejections == 2


async def test_burst_then_reject_with_retry_after(clock):
    limiter = RateLimiter()
    rate = Rate(calls=5, per=1.0)
    key = ("alice", "search")
    await take(limiter, key, rate, 5)  # the whole burst is admitted
    with pytest.raises(RateLimited) as info:
        await limiter.check(key, rate)
    # the bucket is full (5 units) and drains 5 per second: room for one more in 0.2 s
    assert info.value.retry_after == pytest.approx(0.2)
    assert info.value.message == "rate limit of 5 calls per 1s exceeded for search; retry in 0.20 s"
    assert info.value.error_class == "rate_limited"
    assert client_message(info.value) == f"rate_limited: {info.value.message}"  # what the client reads
    assert limiter.retry_after(key, rate) == pytest.approx(0.2)
    assert limiter.rejections == 1
    clock.advance(0.05)
    with pytest.raises(RateLimited) as info:
        await limiter.check(key, rate, label="the search tool")
    assert info.value.retry_after == pytest.approx(0.15)
    assert "exceeded for the search tool" in info.value.message
    assert limiter.rejections == 2


async def test_check_never_suspends(clock):
    """Admission and rejection both finish in one step: driving the coroutine once must end it."""
    limiter = RateLimiter()
    rate = Rate(calls=1, per=3600)
    admitted = limiter.check(("bob", "export"), rate)
    with pytest.raises(StopIteration):
        admitted.send(None)
    rejected = limiter.check(("bob", "export"), rate)
    with pytest.raises(RateLimited) as info:
        rejected.send(None)
    assert info.value.retry_after == pytest.approx(3600)


async def test_refill_after_time_passes(clock):
    limiter = RateLimiter()
    rate = Rate.parse("4/2s")  # 2 per second drain
    key = ("alice", "fetch")
    await take(limiter, key, rate, 4)
    with pytest.raises(RateLimited):
        await limiter.check(key, rate)
    clock.advance(0.5)  # one unit drained
    await limiter.check(key, rate)
    with pytest.raises(RateLimited) as info:
        await limiter.check(key, rate)
    assert info.value.retry_after == pytest.approx(0.5)
    clock.advance(2.0)  # fully drained: a full burst again
    assert limiter.retry_after(key, rate) == 0.0
    await take(limiter, key, rate, 4)
    with pytest.raises(RateLimited):
        await limiter.check(key, rate)


async def test_keys_are_independent(clock):
    limiter = RateLimiter()
    rate = Rate(calls=2)
    for key in [("alice", "search"), ("alice", "fetch"), ("bob", "search"), ("bob", "fetch")]:
        await take(limiter, key, rate, 2)
    for key in [("alice", "search"), ("alice", "fetch"), ("bob", "search"), ("bob", "fetch")]:
        with pytest.raises(RateLimited):
            await limiter.check(key, rate)
    assert limiter.rejections == 4
    await limiter.check(("carol", "search"), rate)


async def test_a_changed_rate_starts_a_fresh_bucket(clock):
    limiter = RateLimiter()
    key = ("alice", "search")
    await take(limiter, key, Rate(calls=1), 1)
    with pytest.raises(RateLimited):
        await limiter.check(key, Rate(calls=1))
    await take(limiter, key, Rate(calls=3), 3)  # configuration reloaded with a higher limit


async def test_least_recently_used_keys_are_evicted(clock):
    limiter = RateLimiter(max_keys=3)
    rate = Rate(calls=1)
    await limiter.check(("p1", "t"), rate)
    await limiter.check(("p2", "t"), rate)
    await limiter.check(("p3", "t"), rate)
    with pytest.raises(RateLimited):
        await limiter.check(("p1", "t"), rate)  # touches p1, so p2 is now the least recently used
    await limiter.check(("p4", "t"), rate)
    assert len(limiter) == 3
    await limiter.check(("p2", "t"), rate)  # evicted, so it starts with a fresh allowance
    with pytest.raises(RateLimited):
        await limiter.check(("p1", "t"), rate)  # p1 was kept
    for n in range(1000):
        await limiter.check((f"flood{n}", "t"), rate)
    assert len(limiter) == 3


@pytest.mark.parametrize(
    ("text", "calls", "per"),
    [
        ("20/s", 20, 1),
        ("100/min", 100, 60),
        ("5/10s", 5, 10),
        (" 1000 / hour ", 1000, 3600),
        ("3/2m", 3, 120),
        ("2.5/sec", 2.5, 1),
        ("10/1.5s", 10, 1.5),
        ("7/H", 7, 3600),
    ],
)
def test_rate_parse(text, calls, per):
    assert Rate.parse(text) == Rate(calls=calls, per=per)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "20",
        "20/",
        "/s",
        "abc",
        "20/x",
        "20/ms",
        "-1/s",
        "0/s",
        "0.5/s",
        "5/0s",
        "1e3/s",
        "20/s/s",
        "20 per s",
    ],
)
def test_rate_parse_rejects_bad_input(text):
    with pytest.raises(ValueError):
        Rate.parse(text)


def test_rate_validation():
    with pytest.raises(ValueError):
        Rate(calls=0)
    with pytest.raises(ValueError):
        Rate(calls=5, per=0)
    with pytest.raises(ValueError):
        Rate(calls=float("inf"))
    with pytest.raises(ValueError):
        RateLimiter(max_keys=0)
