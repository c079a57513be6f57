"""Retry transient failures (a lost database link, a serialization conflict) with tenacity.

Retrying is only safe for read-only or idempotent work, and only the caller knows which it is: this
module never decides that. The whole function is re-run on each attempt, so pass the unit that must
be repeated as a whole — for a transaction, the function that opens, runs and commits it, never a
single statement inside it.

Waits use exponential backoff with full jitter (a uniform draw from [0, min(max_wait,
initial_wait * 2**(n-1))]) so that many callers failing together do not retry in lockstep. Retrying
stops after `attempts` tries or as soon as the next wait would reach the absolute `deadline`, and the
last original exception is re-raised, never a wrapper.

Not transient on purpose: `TimeoutError` (our own deadline fired; retrying would overrun it) and any
`ToolFailure` (already a decision meant for the client).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import asyncpg.exceptions as pg
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_random_exponential

from shared.errors import ToolFailure

T = TypeVar("T")

# Server-reported conditions after which the same work may succeed on a fresh try.
_TRANSIENT_PG: tuple[type[BaseException], ...] = tuple(
    cls
    for cls in (
        getattr(pg, "ConnectionDoesNotExistError", None),  # 08003, also "connection was closed mid-operation"
        getattr(pg, "ConnectionFailureError", None),  # 08006
        getattr(pg, "SerializationError", None),  # 40001
        getattr(pg, "DeadlockDetectedError", None),  # 40P01
        getattr(pg, "TooManyConnectionsError", None),  # 53300
        getattr(pg, "AdminShutdownError", None),  # 57P01
        getattr(pg, "CrashShutdownError", None),  # 57P02
        getattr(pg, "CannotConnectNowError", None),  # 57P03
    )
    if cls is not None
)

# A lost or refused TCP/Unix socket. TimeoutError is an OSError too, but deliberately not listed.
_TRANSIENT_OS: tuple[type[BaseException], ...] = (
    ConnectionRefusedError,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)

# asyncpg raises InterfaceError with exactly this text when a connection was already closed
# (Connection._check_open). Other InterfaceErrors are misuse ("pool is closed", a released
# connection) and must not be retried.
_CLOSED_CONNECTION_MESSAGE = "connection is closed"


def is_transient(exc: BaseException) -> bool:
    """Whether re-running the same (idempotent) work may succeed."""
    if isinstance(exc, ToolFailure | TimeoutError | asyncio.CancelledError):
        return False
    if isinstance(exc, _TRANSIENT_PG + _TRANSIENT_OS):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and str(exc).strip() == _CLOSED_CONNECTION_MESSAGE


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry; `attempts` counts the first try."""

    attempts: int = 3
    initial_wait: float = 0.05
    max_wait: float = 1.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not (self.initial_wait > 0 and math.isfinite(self.initial_wait)):
            raise ValueError("initial_wait must be a positive number")
        if not (self.max_wait >= self.initial_wait and math.isfinite(self.max_wait)):
            raise ValueError("max_wait must be a number no smaller than initial_wait")


class _stop_before_deadline(stop_base):
    """Stop when sleeping the upcoming wait would reach the deadline (tenacity computes the wait first)."""

    def __init__(self, deadline: float, clock: Callable[[], float]) -> None:
        self._deadline = deadline
        self._clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._clock() + retry_state.upcoming_sleep >= self._deadline


async def run_with_retry(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """Await `fn()`, re-running it on transient failures within `policy` and before `deadline`.

    `deadline` is absolute, on the same clock as `clock` (monotonic seconds). `on_retry(n, exc)` is
    called before sleeping after failed attempt `n`, for logs and metrics.
    """
    # Fast path: the first try runs without tenacity's machinery, which costs more than a cheap
    # tool call itself; only a transient failure hands the remaining attempts to tenacity.
    try:
        return await fn()
    except Exception as exc:
        if policy.attempts == 1 or not is_transient(exc):
            raise
        first_wait = random.uniform(0, min(policy.max_wait, policy.initial_wait))
        if deadline is not None and clock() + first_wait >= deadline:
            raise
        if on_retry is not None:
            on_retry(1, exc)
        await sleep(first_wait)

    # Attempts 2..N: tenacity numbers them 1..N-1, so the multiplier doubles to keep the schedule.
    stop: stop_base = stop_after_attempt(policy.attempts - 1)
    if deadline is not None:
        stop = stop | _stop_before_deadline(deadline, clock)

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            exc = state.outcome.exception()
            if exc is not None:
                on_retry(state.attempt_number + 1, exc)

    retrying = AsyncRetrying(
        sleep=sleep,
        stop=stop,
        wait=wait_random_exponential(multiplier=policy.initial_wait * 2, max=policy.max_wait),
        retry=retry_if_exception(is_transient),
        before_sleep=before_sleep,
        reraise=True,
    )

    async def attempt() -> T:
        # tenacity only awaits what it recognises as a coroutine function; a lambda or partial that
        # returns an awaitable would come back un-awaited, so always hand it a real one.
        return await fn()

    return await retrying(attempt)
