"""An asyncio circuit breaker: stop calling a dependency that keeps failing, and probe it carefully.

Why our own and not a library: measured against asyncio code, pybreaker never trips around coroutines
(its state machine only sees the coroutine object being created, not the awaited outcome); purgatory
opens the circuit when a task is cancelled, so a client hanging up looks like a database outage; and
neither aiobreaker nor purgatory caps the number of trial calls in half-open, so after a pause every
queued caller stampedes the recovering dependency at once.

The model follows resilience4j:

* closed: outcomes are recorded in a time-based sliding window of `window_seconds` (kept as 30
  buckets, so an outcome leaves the window within one bucket width of `window_seconds`). Once the
  window holds at least `minimum_calls` calls and `failures / calls >= failure_rate`, the circuit opens.
* open: every call is rejected at once with `Unavailable` and a `retry_after` that says when the
  circuit will half-open. The switch to half-open happens lazily, on the first look after
  `open_seconds`, so no timer task is needed.
* half_open: exactly `half_open_calls` trial calls are let through; the rest are rejected at once.
  When all trials succeed the circuit closes with an empty window; any trial failure re-opens it.

What counts (`counts_as_failure`): an exception that says the dependency is unwell. Caller mistakes
(`InvalidInput`, `NotFound`, ...) are successful round trips, not failures. A cancellation depends on
who cancelled. A client hanging up says nothing about the dependency: the call is not recorded at all
and gives its half-open slot back. A deadline firing says the dependency did not answer in time: if
a `shared.resilience.deadline` scope around the guard has expired (the tool's deadline, the rate store's
timeout), the cancellation is judged as a `TimeoutError`, so a hung dependency opens the circuit
even though every call to it ends by cancellation. (A plain `asyncio.timeout` outside the guard is
invisible here; use `deadline_at`/`deadline_in`, or put the time limit inside the guard.)

All bookkeeping is synchronous (no await between the admission check and taking a slot), so concurrent
tasks on one event loop cannot over-admit. The breaker is not thread-safe and need not be.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from shared.errors import ToolFailure, Unavailable
from shared.resilience.deadline import deadline_expired

log = logging.getLogger(__name__)

State = Literal["closed", "open", "half_open"]

_BUCKETS = 30  # window granularity: memory stays bounded whatever the call rate
_HALF_OPEN_BUSY_RETRY_S = 1.0  # hint when all trial slots are taken; trials usually settle quickly


@dataclass(frozen=True)
class BreakerPolicy:
    """When to open, how long to stay open, and how carefully to probe afterwards."""

    window_seconds: float = 30.0
    failure_rate: float = 0.5  # open when failures/calls >= this over the window
    minimum_calls: int = 10  # ...and at least this many calls are in the window
    open_seconds: float = 15.0
    half_open_calls: int = 1  # trial calls allowed in half-open; all must succeed to close

    def __post_init__(self) -> None:
        if not (self.window_seconds > 0 and math.isfinite(self.window_seconds)):
            raise ValueError("window_seconds must be a positive number")
        if not 0 < self.failure_rate <= 1:
            raise ValueError("failure_rate must be in (0, 1]")
        if self.minimum_calls < 1:
            raise ValueError("minimum_calls must be at least 1")
        if not (self.open_seconds >= 0 and math.isfinite(self.open_seconds)):
            raise ValueError("open_seconds must be a non-negative number")
        if self.half_open_calls < 1:
            raise ValueError("half_open_calls must be at least 1")


def counts_as_failure(exc: BaseException) -> bool:
    """Whether an exception says the dependency is unwell (as opposed to the caller being wrong)."""
    if isinstance(exc, asyncio.CancelledError) or not isinstance(exc, Exception):
        return False
    if isinstance(exc, ToolFailure):
        return exc.retryable
    return True


@dataclass
class _Permit:
    generation: int
    trial: bool
    settled: bool = False


class _Guard(AbstractAsyncContextManager[None]):
    """The `async with` form: admit on entry, record the outcome on exit."""

    __slots__ = ("_breaker", "_permit")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._permit: _Permit | None = None

    async def __aenter__(self) -> None:
        self._permit = self._breaker._admit()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        permit, self._permit = self._permit, None
        if permit is None:
            return
        if exc is None:
            self._breaker._settle(permit, "success")
        elif isinstance(exc, asyncio.CancelledError):
            # Cut short by an expired deadline: the dependency was too slow. Otherwise a hang-up.
            timed_out = deadline_expired() and self._breaker._is_failure(TimeoutError("deadline expired"))
            self._breaker._settle(permit, "failure" if timed_out else "ignore")
        elif not isinstance(exc, Exception):
            self._breaker._settle(permit, "ignore")
        elif self._breaker._is_failure(exc):
            self._breaker._settle(permit, "failure")
        else:
            self._breaker._settle(permit, "success")


class CircuitBreaker:
    """One breaker per dependency: each server's database (`Database.acquire`), the search server's
    embedding model. Calls go through `guard()`, the one way in: admission and outcome in one block."""

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy = BreakerPolicy(),
        *,
        clock: Callable[[], float] = time.monotonic,
        is_failure: Callable[[BaseException], bool] = counts_as_failure,
        on_state_change: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self._clock = clock
        self._is_failure = is_failure
        self._on_state_change = on_state_change
        self._bucket_width = policy.window_seconds / _BUCKETS
        self._buckets: deque[list[int]] = deque()  # [bucket index, calls, failures], oldest first
        self._state: State = "closed"
        self._generation = 0
        self._opened_at: float | None = None
        self._trials_in_flight = 0
        self._trial_successes = 0

    # -- public surface -------------------------------------------------------------------------

    @property
    def state(self) -> State:
        if self._state == "open" and self._seconds_until_half_open() <= 0:
            self._transition("half_open")
        return self._state

    def guard(self) -> AbstractAsyncContextManager[None]:
        """`async with breaker.guard(): ...` — raises `Unavailable` when the call is not admitted."""
        return _Guard(self)

    def snapshot(self) -> dict[str, object]:
        """Facts for health checks and metrics."""
        state = self.state
        calls, failures = self._totals()
        retry_after = self._seconds_until_half_open() if state == "open" else None
        return {
            "name": self.name,
            "state": state,
            "calls": calls,
            "failures": failures,
            "failure_rate": round(failures / calls, 4) if calls else 0.0,
            "opened_at": self._opened_at,
            "retry_after_s": round(retry_after, 3) if retry_after is not None else None,
            "half_open_in_flight": self._trials_in_flight if state == "half_open" else 0,
        }

    # -- admission and outcomes -----------------------------------------------------------------

    def _admit(self) -> _Permit:
        state = self.state
        if state == "closed":
            return _Permit(self._generation, trial=False)
        if state == "half_open":
            if self._trials_in_flight + self._trial_successes < self.policy.half_open_calls:
                self._trials_in_flight += 1
                return _Permit(self._generation, trial=True)
            retry_after = min(_HALF_OPEN_BUSY_RETRY_S, self.policy.open_seconds)
            raise Unavailable(
                f"{self.name} is unavailable (recovering, trial calls in progress); "
                f"retry in {retry_after:.1f} s",
                retry_after=retry_after,
            )
        retry_after = self._seconds_until_half_open()
        raise Unavailable(
            f"{self.name} is unavailable (too many recent failures); retry in {retry_after:.1f} s",
            retry_after=retry_after,
        )

    def _settle(self, permit: _Permit, outcome: Literal["success", "failure", "ignore"]) -> None:
        if permit.settled:
            return
        permit.settled = True
        self.state  # noqa: B018 - apply a due open -> half_open switch first
        if permit.generation != self._generation:
            return  # admitted under an earlier state; that evidence is stale
        if permit.trial:
            self._trials_in_flight = max(0, self._trials_in_flight - 1)
            if outcome == "failure":
                self._transition("open")
            elif outcome == "success":
                self._trial_successes += 1
                if self._trial_successes >= self.policy.half_open_calls:
                    self._transition("closed")
            return
        if self._state != "closed" or outcome == "ignore":
            return
        self._record(failed=outcome == "failure")
        calls, failures = self._totals()
        if calls >= self.policy.minimum_calls and failures / calls >= self.policy.failure_rate:
            self._transition("open")

    # -- sliding window -------------------------------------------------------------------------

    def _bucket_index(self) -> int:
        return math.floor(self._clock() / self._bucket_width)

    def _prune(self, index: int) -> None:
        while self._buckets and self._buckets[0][0] <= index - _BUCKETS:
            self._buckets.popleft()

    def _record(self, *, failed: bool) -> None:
        index = self._bucket_index()
        self._prune(index)
        if self._buckets and self._buckets[-1][0] == index:
            bucket = self._buckets[-1]
        else:
            bucket = [index, 0, 0]
            self._buckets.append(bucket)
        bucket[1] += 1
        bucket[2] += int(failed)

    def _totals(self) -> tuple[int, int]:
        self._prune(self._bucket_index())
        return sum(b[1] for b in self._buckets), sum(b[2] for b in self._buckets)

    # -- state machine --------------------------------------------------------------------------

    def _seconds_until_half_open(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.policy.open_seconds - self._clock())

    def _transition(self, new: State) -> None:
        old = self._state
        self._state = new
        self._generation += 1
        self._trials_in_flight = 0
        self._trial_successes = 0
        if new == "open":
            self._opened_at = self._clock()
        elif new == "closed":
            self._opened_at = None
            self._buckets.clear()
        if old != new:
            if new == "open":
                log.warning("circuit %s opened (was %s)", self.name, old)
            else:
                log.info("circuit %s: %s -> %s", self.name, old, new)
            if self._on_state_change is not None:
                try:
                    self._on_state_change(self.name, old, new)
                except Exception:
                    log.exception("on_state_change callback failed for circuit %s", self.name)
