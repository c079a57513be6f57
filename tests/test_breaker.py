"""Every transition of the circuit breaker, on a fake clock, through `guard()`, the one way in.

Every call here is `async with breaker.guard(): await body()` (the `through` helper), exactly as
`Database.acquire` and the embedder use it, so what is tested is what production runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from shared.errors import DeadlineExceeded, InvalidInput, NotFound, RateLimited, Unavailable
from shared.resilience.breaker import BreakerPolicy, CircuitBreaker, counts_as_failure
from shared.resilience.deadline import deadline_at, deadline_expired, deadline_in
from tests.support.clock import FakeClock

T = TypeVar("T")


class Boom(Exception):
    pass


POLICY = BreakerPolicy(
    window_seconds=30, failure_rate=0.5, minimum_calls=4, open_seconds=10, half_open_calls=2
)


def make(policy: BreakerPolicy = POLICY) -> tuple[CircuitBreaker, FakeClock, list[tuple[str, str, str]]]:
    clock = FakeClock()
    changes: list[tuple[str, str, str]] = []
    breaker = CircuitBreaker(
        "database", policy, clock=clock, on_state_change=lambda *change: changes.append(change)
    )
    return breaker, clock, changes


async def through(breaker: CircuitBreaker, body: Callable[[], Awaitable[T]]) -> T:
    """One call to the dependency, guarded as production code does it."""
    async with breaker.guard():
        return await body()


async def ok() -> str:
    return "ok"


async def fail() -> None:
    raise Boom("down")


async def fail_n(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            await through(breaker, fail)


async def open_breaker(breaker: CircuitBreaker) -> None:
    await fail_n(breaker, breaker.policy.minimum_calls)
    assert breaker.state == "open"


async def test_stays_closed_below_minimum_calls():
    breaker, _, changes = make()
    await fail_n(breaker, 3)  # 100% failures, but only 3 of the 4 calls needed
    assert breaker.state == "closed"
    assert changes == []
    assert await through(breaker, ok) == "ok"  # still admitted


async def test_opens_at_the_failure_rate_threshold():
    breaker, _, changes = make()
    await through(breaker, ok)
    await through(breaker, ok)
    await fail_n(breaker, 1)
    assert breaker.state == "closed"  # 1/3 and below minimum calls
    await fail_n(breaker, 1)
    assert breaker.state == "open"  # 2/4 == 0.5 >= 0.5 with 4 calls
    assert changes == [("database", "closed", "open")]


async def test_success_can_complete_minimum_calls_and_open():
    breaker, _, _ = make()
    await fail_n(breaker, 3)
    await through(breaker, ok)  # 3/4 failures now that the minimum is reached
    assert breaker.state == "open"


async def test_stays_closed_below_the_failure_rate():
    breaker, _, _ = make()
    for _ in range(5):
        await through(breaker, ok)
    await fail_n(breaker, 4)  # 4/9 < 0.5
    assert breaker.state == "closed"
    snap = breaker.snapshot()
    assert snap["calls"] == 9 and snap["failures"] == 4
    assert snap["failure_rate"] == pytest.approx(4 / 9, abs=1e-4)


async def test_open_rejects_immediately_with_retry_after():
    breaker, clock, _ = make()
    await open_breaker(breaker)
    clock.advance(3)
    called = False

    async def spy() -> None:
        nonlocal called
        called = True

    with pytest.raises(Unavailable) as info:
        await through(breaker, spy)
    assert not called
    assert info.value.retry_after == pytest.approx(7)
    assert "database is unavailable" in info.value.message
    assert info.value.error_class == "unavailable" and info.value.retryable
    snap = breaker.snapshot()
    assert snap["state"] == "open"
    assert snap["retry_after_s"] == pytest.approx(7)
    assert snap["opened_at"] == pytest.approx(1000.0 + 0)  # opened at the fake clock's start


async def test_half_open_after_open_seconds():
    breaker, clock, changes = make()
    await open_breaker(breaker)
    clock.advance(9.999)
    assert breaker.state == "open"
    clock.advance(0.001)
    assert breaker.state == "half_open"
    assert changes[-1] == ("database", "open", "half_open")


async def test_half_open_admits_exactly_n_of_many_concurrent_calls():
    breaker, clock, _ = make()
    await open_breaker(breaker)
    clock.advance(10)
    release = asyncio.Event()
    entered = 0

    async def trial() -> str:
        nonlocal entered
        entered += 1
        await release.wait()
        return "ok"

    tasks = [asyncio.create_task(through(breaker, trial)) for _ in range(20)]
    await asyncio.sleep(0)  # every task reaches admission; the rejected ones finish right away
    await asyncio.sleep(0)
    rejected = [t for t in tasks if t.done()]
    assert entered == 2
    assert len(rejected) == 18
    for task in rejected:
        exc = task.exception()
        assert isinstance(exc, Unavailable)
        assert exc.retry_after is not None and 0 < exc.retry_after <= 10
    assert breaker.snapshot()["half_open_in_flight"] == 2
    # a late caller is rejected too while both slots are taken
    with pytest.raises(Unavailable):
        await through(breaker, ok)
    release.set()
    results = await asyncio.gather(*(t for t in tasks if t not in rejected))
    assert results == ["ok", "ok"]
    assert breaker.state == "closed"


async def test_all_trials_succeeding_closes_with_an_empty_window():
    breaker, clock, changes = make()
    await open_breaker(breaker)
    clock.advance(10)
    await through(breaker, ok)
    assert breaker.state == "half_open"  # one of two trials done
    await through(breaker, ok)
    assert breaker.state == "closed"
    assert [c[1:] for c in changes] == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    snap = breaker.snapshot()
    assert snap["calls"] == 0 and snap["failures"] == 0 and snap["opened_at"] is None
    await fail_n(breaker, 3)  # old failures are gone: three new ones are below minimum calls again
    assert breaker.state == "closed"


async def test_trial_failure_reopens():
    breaker, clock, changes = make()
    await open_breaker(breaker)
    clock.advance(10)
    await through(breaker, ok)
    await fail_n(breaker, 1)
    assert breaker.state == "open"
    assert changes[-1] == ("database", "half_open", "open")
    with pytest.raises(Unavailable) as info:
        await through(breaker, ok)
    assert info.value.retry_after == pytest.approx(10)  # a full open period from the re-opening


async def test_old_outcomes_slide_out_of_the_window():
    breaker, clock, _ = make()
    await fail_n(breaker, 3)
    clock.advance(31)  # the window is 30 s
    assert breaker.snapshot()["calls"] == 0
    await fail_n(breaker, 1)
    assert breaker.state == "closed"  # 1 call in the window, not 4
    clock.advance(15)
    await fail_n(breaker, 2)
    assert breaker.state == "closed"  # 3 in the window
    clock.advance(16)  # the first of those three is 31 s old now
    await fail_n(breaker, 1)
    assert breaker.state == "closed"
    assert breaker.snapshot()["calls"] == 3
    await fail_n(breaker, 1)
    assert breaker.state == "open"


async def test_cancellation_is_not_a_failure():
    breaker, _, _ = make()
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    for _ in range(6):
        assert breaker.state == "closed"  # (were cancellations counted, the next call would never start)
        started.clear()
        task = asyncio.create_task(through(breaker, hang))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert breaker.state == "closed"
    assert breaker.snapshot()["calls"] == 0


async def hang() -> None:
    await asyncio.Event().wait()


def expire_now() -> object:
    """A deadline already due: it fires on the loop's next iteration, without waiting on real time."""
    return deadline_at(asyncio.get_running_loop().time())


async def test_a_cancellation_by_an_expired_deadline_counts_as_a_timeout():
    """The issue-8 attack in miniature: the deadline sits outside the guard, the dependency hangs."""
    breaker, _, changes = make()
    for n in range(POLICY.minimum_calls):
        with pytest.raises(TimeoutError):  # the scope still ends the way asyncio.timeout does
            async with expire_now():
                await through(breaker, hang)
        assert breaker.snapshot()["failures"] == n + 1
    assert breaker.state == "open"
    assert changes == [("database", "closed", "open")]
    assert not deadline_expired()  # the scope is gone once it has ended


async def test_a_client_cancellation_inside_a_running_deadline_is_not_counted():
    breaker, _, _ = make()
    started = asyncio.Event()

    async def hang_signalled() -> None:
        started.set()
        await hang()

    async def call_with_a_deadline() -> None:
        async with deadline_in(3600):
            await through(breaker, hang_signalled)

    for _ in range(6):
        assert breaker.state == "closed"
        started.clear()
        task = asyncio.create_task(call_with_a_deadline())
        await started.wait()  # inside the guard
        task.cancel()  # the client hangs up; the deadline has not fired
        with pytest.raises(asyncio.CancelledError):
            await task
    assert breaker.state == "closed"
    assert breaker.snapshot()["calls"] == 0


async def test_an_outer_deadline_counts_inside_a_longer_inner_one():
    breaker, _, _ = make(BreakerPolicy(minimum_calls=1, open_seconds=5))
    with pytest.raises(TimeoutError):
        async with expire_now(), deadline_in(3600):  # e.g. a rate-store timeout inside a tool's deadline
            await through(breaker, hang)
    assert breaker.state == "open"


async def test_tasks_started_inside_a_deadline_see_it():
    breaker, _, _ = make(BreakerPolicy(minimum_calls=2, open_seconds=5))
    inside = 0
    both_in = asyncio.Event()

    async def hang_counted() -> None:
        nonlocal inside
        inside += 1
        if inside == 2:
            both_in.set()
        await hang()

    async def expire_once_both_are_in(scope: asyncio.Timeout) -> None:
        await both_in.wait()
        scope.reschedule(asyncio.get_running_loop().time())

    with pytest.raises(TimeoutError):
        async with deadline_in(3600) as scope:
            await asyncio.gather(through(breaker, hang_counted), through(breaker, hang_counted),
                                 expire_once_both_are_in(scope))
    assert inside == 2
    assert breaker.state == "open"
    assert breaker.snapshot()["failures"] == 2


async def test_an_expired_deadline_counts_only_if_a_timeout_would():
    """The breaker's own `is_failure` decides, as for a `TimeoutError` raised inside the guard."""
    clock = FakeClock()
    breaker = CircuitBreaker("model", BreakerPolicy(minimum_calls=1), clock=clock,
                             is_failure=lambda exc: not isinstance(exc, TimeoutError))
    for _ in range(3):
        with pytest.raises(TimeoutError):
            async with expire_now():
                await through(breaker, hang)
    assert breaker.state == "closed"
    assert breaker.snapshot()["calls"] == 0  # judged neither failure nor success: not recorded


async def test_an_expired_deadline_reopens_from_half_open():
    breaker, clock, changes = make(BreakerPolicy(minimum_calls=1, open_seconds=5, half_open_calls=1))
    await open_breaker(breaker)
    clock.advance(5)
    with pytest.raises(TimeoutError):
        async with expire_now():
            await through(breaker, hang)  # the probe hangs until the deadline
    assert breaker.state == "open"
    assert [c[1:] for c in changes] == [("closed", "open"), ("open", "half_open"), ("half_open", "open")]


async def test_deadline_scope_behaves_like_asyncio_timeout():
    async with deadline_in(3600) as scope:
        assert not deadline_expired()
        assert scope.when() is not None
    assert not scope.expired()
    async with deadline_in(None):
        assert not deadline_expired()
    with pytest.raises(TimeoutError):
        async with expire_now() as scope:
            await hang()
    assert scope.expired()
    assert not deadline_expired()


async def test_cancellation_frees_a_half_open_slot():
    breaker, clock, _ = make(BreakerPolicy(minimum_calls=1, open_seconds=5, half_open_calls=1))
    await open_breaker(breaker)
    clock.advance(5)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(through(breaker, hang))
    await started.wait()
    with pytest.raises(Unavailable):
        await through(breaker, ok)  # the only slot is taken
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state == "half_open"  # not re-opened by the cancellation
    assert await through(breaker, ok) == "ok"  # the slot is free again
    assert breaker.state == "closed"


@pytest.mark.parametrize("mistake", [InvalidInput("bad"), NotFound("nope"), RateLimited("slow down")])
async def test_caller_mistakes_do_not_count(mistake):
    breaker, _, _ = make()

    async def wrong() -> None:
        raise mistake

    for _ in range(8):
        with pytest.raises(type(mistake)):
            await through(breaker, wrong)
    assert breaker.state == "closed"
    snap = breaker.snapshot()
    assert snap["calls"] == 8 and snap["failures"] == 0  # a round trip that answered counts as success


async def test_caller_mistake_in_half_open_is_a_successful_trial():
    breaker, clock, _ = make(BreakerPolicy(minimum_calls=1, open_seconds=5, half_open_calls=1))
    await open_breaker(breaker)
    clock.advance(5)

    async def missing() -> None:
        raise NotFound("no such profile")

    with pytest.raises(NotFound):
        await through(breaker, missing)
    assert breaker.state == "closed"


def test_counts_as_failure():
    assert counts_as_failure(Boom())
    assert counts_as_failure(TimeoutError())
    assert counts_as_failure(ConnectionResetError())
    assert counts_as_failure(Unavailable("db down"))
    assert counts_as_failure(DeadlineExceeded("slow"))
    assert not counts_as_failure(InvalidInput("bad"))
    assert not counts_as_failure(NotFound("x"))
    assert not counts_as_failure(asyncio.CancelledError())
    assert not counts_as_failure(KeyboardInterrupt())


async def test_an_open_guard_refuses_on_entry_and_the_block_never_runs():
    breaker, clock, _ = make()
    async with breaker.guard():
        pass
    with pytest.raises(Boom):
        async with breaker.guard():
            raise Boom()
    assert breaker.snapshot()["calls"] == 2 and breaker.snapshot()["failures"] == 1
    await fail_n(breaker, 2)
    assert breaker.state == "open"  # 3 failures of 4 calls
    entered = False
    with pytest.raises(Unavailable):
        async with breaker.guard():
            entered = True
    assert not entered
    clock.advance(10)
    for _ in range(POLICY.half_open_calls):
        async with breaker.guard():
            pass
    assert breaker.state == "closed"


async def test_late_outcome_from_before_opening_is_ignored():
    breaker, clock, _ = make(BreakerPolicy(minimum_calls=2, open_seconds=5, half_open_calls=1))
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow_fail() -> None:
        started.set()
        await release.wait()
        raise Boom()

    straggler = asyncio.create_task(through(breaker, slow_fail))
    await started.wait()
    await fail_n(breaker, 2)
    assert breaker.state == "open"
    clock.advance(5)
    assert breaker.state == "half_open"
    release.set()
    with pytest.raises(Boom):
        await straggler
    assert breaker.state == "half_open"  # the straggler was not a trial call
    await through(breaker, ok)
    assert breaker.state == "closed"


async def test_a_failing_state_change_callback_does_not_break_the_breaker():
    clock = FakeClock()
    seen: list[str] = []

    def bad_callback(name: str, old: str, new: str) -> None:
        seen.append(new)
        raise RuntimeError("metrics down")

    breaker = CircuitBreaker(
        "model", BreakerPolicy(minimum_calls=1, open_seconds=5), clock=clock, on_state_change=bad_callback
    )
    await fail_n(breaker, 1)
    assert breaker.state == "open"
    clock.advance(5)
    assert await through(breaker, ok) == "ok"  # the half-open trial
    assert breaker.state == "closed"
    assert seen == ["open", "half_open", "closed"]  # every transition happened despite the callback


def test_policy_validation():
    with pytest.raises(ValueError):
        BreakerPolicy(failure_rate=0)
    with pytest.raises(ValueError):
        BreakerPolicy(failure_rate=1.5)
    with pytest.raises(ValueError):
        BreakerPolicy(minimum_calls=0)
    with pytest.raises(ValueError):
        BreakerPolicy(half_open_calls=0)
    with pytest.raises(ValueError):
        BreakerPolicy(window_seconds=0)
