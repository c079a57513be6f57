"""Retries of transient failures: which errors, how many times, how long between, and the deadline."""

from __future__ import annotations

import asyncio
import functools
import random

import asyncpg
import asyncpg.exceptions as pg
import pytest
from mcp.server.mcpserver.exceptions import ToolError

from shared.errors import InvalidInput, Unavailable
from shared.policy import NO_RETRY, RETRY, Policy
from shared.resilience.retry import RetryPolicy, is_transient, run_with_retry
from shared.server import SuiteServer
from shared.tool import ToolPolicy, guard_tool
from tests.support.clock import FakeClock


class Flaky:
    """Fails with the given errors in order, then returns "done"; optionally takes fake time per try."""

    def __init__(self, *errors: BaseException, time: FakeClock | None = None, cost: float = 0.0) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.time = time
        self.cost = cost

    async def __call__(self) -> str:
        self.calls += 1
        if self.time is not None:
            self.time.advance(self.cost)
        if self.errors:
            raise self.errors.pop(0)
        return "done"


@pytest.mark.parametrize(
    "exc",
    [
        pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        pg.ConnectionFailureError("x"),
        pg.CannotConnectNowError("the database system is starting up"),
        pg.SerializationError("could not serialize access"),
        pg.DeadlockDetectedError("deadlock detected"),
        pg.TooManyConnectionsError("too many clients"),
        pg.AdminShutdownError("terminating connection due to administrator command"),
        pg.CrashShutdownError("x"),
        asyncpg.InterfaceError("connection is closed"),
        ConnectionRefusedError(),
        ConnectionResetError(),
        ConnectionAbortedError(),
        BrokenPipeError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError(),
        asyncio.CancelledError(),
        Unavailable("db down"),
        InvalidInput("bad"),
        ValueError("bug"),
        asyncpg.InterfaceError("pool is closed"),
        asyncpg.InterfaceError(
            "cannot call Connection.fetch(): connection has been released back to the pool"
        ),
        pg.UniqueViolationError("duplicate key"),
        pg.UndefinedTableError("no such table"),
        pg.QueryCanceledError("canceling statement due to statement timeout"),
        pg.ProtocolViolationError("x"),
        FileNotFoundError(),
    ],
    ids=lambda e: f"{type(e).__name__}",
)
def test_not_transient(exc):
    assert not is_transient(exc)


async def test_transient_errors_are_retried_up_to_attempts():
    t = FakeClock(0.0)
    errors = [ConnectionResetError(n) for n in range(5)]
    fn = Flaky(*errors)
    seen: list[tuple[int, str]] = []
    with pytest.raises(ConnectionResetError) as info:
        await run_with_retry(
            fn,
            RetryPolicy(attempts=3),
            clock=t,
            sleep=t.sleep,
            on_retry=lambda n, exc: seen.append((n, type(exc).__name__)),
        )
    assert fn.calls == 3
    assert len(t.waits) == 2
    assert seen == [(1, "ConnectionResetError"), (2, "ConnectionResetError")]
    assert info.value is errors[2]  # the last original exception, not a tenacity RetryError


async def test_success_after_transient_failures():
    t = FakeClock(0.0)
    fn = Flaky(pg.SerializationError("x"), pg.DeadlockDetectedError("y"))
    assert await run_with_retry(fn, RetryPolicy(attempts=3), clock=t, sleep=t.sleep) == "done"
    assert fn.calls == 3


async def test_the_last_original_exception_is_reraised():
    t = FakeClock(0.0)
    last = pg.DeadlockDetectedError("second")
    fn = Flaky(pg.SerializationError("first"), last)
    with pytest.raises(pg.DeadlockDetectedError) as info:
        await run_with_retry(fn, RetryPolicy(attempts=2), clock=t, sleep=t.sleep)
    assert info.value is last


@pytest.mark.parametrize("exc", [ValueError("bug"), InvalidInput("bad"), TimeoutError(), Unavailable("x")])
async def test_non_transient_is_not_retried(exc):
    t = FakeClock(0.0)
    fn = Flaky(exc)
    with pytest.raises(type(exc)) as info:
        await run_with_retry(fn, RetryPolicy(attempts=5), clock=t, sleep=t.sleep)
    assert info.value is exc
    assert fn.calls == 1
    assert t.waits == []


async def test_cancellation_is_not_retried():
    t = FakeClock(0.0)
    fn = Flaky(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await run_with_retry(fn, RetryPolicy(attempts=5), clock=t, sleep=t.sleep)
    assert fn.calls == 1


async def test_deadline_stops_retrying_early():
    t = FakeClock(0.0)
    # Each try takes 1 s of fake time and waits are at most 0.05 s: tries end near 1, 2, 3 s.
    fn = Flaky(*(ConnectionResetError() for _ in range(10)), time=t, cost=1.0)
    policy = RetryPolicy(attempts=10, initial_wait=0.01, max_wait=0.05)
    with pytest.raises(ConnectionResetError):
        await run_with_retry(fn, policy, deadline=2.5, clock=t, sleep=t.sleep)
    assert fn.calls == 3  # a third try would start after the deadline
    assert len(t.waits) == 2
    assert t.now < 3.2


async def test_no_retry_when_the_wait_would_pass_the_deadline():
    t = FakeClock(10.0)
    fn = Flaky(pg.SerializationError("x"))
    with pytest.raises(pg.SerializationError):
        await run_with_retry(fn, RetryPolicy(attempts=5), deadline=10.0, clock=t, sleep=t.sleep)
    assert fn.calls == 1
    assert t.waits == []


async def test_waits_are_full_jitter_within_exponential_bounds():
    saved = random.getstate()
    random.seed(20240611)
    t = FakeClock(0.0)
    policy = RetryPolicy(attempts=8, initial_wait=0.1, max_wait=1.0)
    fn = Flaky(*(ConnectionRefusedError() for _ in range(7)))
    try:
        assert await run_with_retry(fn, policy, clock=t, sleep=t.sleep) == "done"
    finally:
        random.setstate(saved)
    assert len(t.waits) == 7
    for n, wait in enumerate(t.waits):
        ceiling = min(policy.max_wait, policy.initial_wait * 2**n)
        assert 0 <= wait <= ceiling, (n, wait, ceiling)
    # full jitter: draws spread below the ceiling rather than sitting on it
    assert any(
        wait < 0.5 * min(policy.max_wait, policy.initial_wait * 2**n) for n, wait in enumerate(t.waits)
    )
    assert len(set(t.waits)) == len(t.waits)


async def test_a_whole_function_is_rerun():
    t = FakeClock(0.0)
    steps: list[str] = []
    failures = [pg.SerializationError("x")]

    async def transaction() -> int:
        steps.append("begin")
        steps.append("update")
        if failures:
            raise failures.pop()
        steps.append("commit")
        return len(steps)

    assert await run_with_retry(transaction, RetryPolicy(), clock=t, sleep=t.sleep) == 5
    assert steps == ["begin", "update", "begin", "update", "commit"]


async def test_lambdas_and_partials_returning_awaitables_are_awaited():
    """The tool layer passes `lambda: fn(*args)`; tenacity would not await that by itself."""
    t = FakeClock(0.0)
    fn = Flaky(ConnectionResetError())

    async def body(x: int) -> str:
        return f"{await fn()}:{x}"

    assert await run_with_retry(lambda: body(1), RetryPolicy(), clock=t, sleep=t.sleep) == "done:1"
    assert fn.calls == 2
    assert await run_with_retry(functools.partial(body, 2), RetryPolicy(), sleep=t.sleep) == "done:2"


@pytest.mark.parametrize(
    ("policy", "retried"),
    [
        (Policy(read_only=True, retry=RETRY), True),
        (Policy(idempotent=True, retry=RETRY), True),  # a write that is safe to repeat (an upsert, a set-to-value)
        (Policy(idempotent=True, destructive=True, retry=RETRY), True),  # e.g. delete by id
        (Policy(read_only=True), False),  # nothing is implied: no `retry=`, one try
        (Policy(), False),  # a plain write: repeating it could apply it twice
        (Policy(destructive=True), False),
        (Policy(idempotent=True, retry=RETRY) | Policy(retry=NO_RETRY), False),  # opted out
    ],
    ids=["read_only", "idempotent_write", "idempotent_destructive", "read_only_unsaid", "write", "destructive",
         "opted_out"],
)
async def test_which_tools_the_tool_layer_retries(policy, retried):
    """Through `guard_tool`, the layer every tool call goes through: a lost connection on the first try."""
    fn = Flaky(ConnectionResetError())

    async def body() -> str:
        return await fn()

    resolved = ToolPolicy.resolve("t", policy)  # what `app.tool(policy)` registers
    assert resolved.retry == (RETRY if retried else None)
    guarded = guard_tool(body, resolved)
    if retried:
        assert await guarded() == "done"
        assert fn.calls == 2
    else:
        with pytest.raises(ToolError, match="^unavailable:"):
            await guarded()
        assert fn.calls == 1


@pytest.mark.parametrize("policy", [Policy(retry=RETRY), Policy(destructive=True, retry=RetryPolicy(attempts=2))],
                         ids=["write", "destructive"])
def test_retries_for_a_tool_that_is_not_safe_to_repeat_are_refused_at_declaration(policy):
    app = SuiteServer("unsafe-retry")
    with pytest.raises(ValueError, match="only read-only or idempotent"):
        @app.tool(policy)
        async def write() -> None:
            return None
    assert "write" not in app.policies


def test_policy_validation():
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(initial_wait=0)
    with pytest.raises(ValueError):
        RetryPolicy(initial_wait=2.0, max_wait=1.0)
