"""Deadlines a circuit breaker can see: an expired time limit is a failure, a hang-up is not.

`asyncio.timeout` stops overdue work by cancelling the task, so the code inside sees
`CancelledError`, the same exception it sees when the client hangs up. A breaker must tell the two
apart: a client leaving says nothing about the database, while a database that has not answered by
the deadline is unwell. `deadline_at` is `asyncio.timeout_at` that also makes itself known to the
code running inside it, and `deadline_expired()` answers, while a cancellation passes through a
breaker's guard, whether one of the deadlines around it has fired:

```python
async with deadline_at(loop.time() + 0.5):     # the tool's time limit (shared/tool.py)
    async with db.acquire() as conn:            # breaker.guard() inside
        await conn.fetch("SELECT ...")          # hangs; at 0.5 s CancelledError passes the guard,
                                                # which asks deadline_expired(): yes, a failure
```

The deadlines in force travel in a context variable (a stack, innermost last), so tasks started
inside (`gather`, `TaskGroup`) see them too, and an outer deadline that fires inside an inner one
still counts. The scope itself behaves exactly like `asyncio.timeout_at`: on expiry the block ends
with `TimeoutError`, unless a cancellation from elsewhere arrived too, which then wins.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar, Token
from types import TracebackType

_in_force: ContextVar[tuple[asyncio.Timeout, ...]] = ContextVar("mcp_suite_deadlines", default=())


class Deadline:
    """`async with Deadline(when):` — `asyncio.timeout_at(when)`, visible to `deadline_expired()`."""

    __slots__ = ("_timeout", "_token")

    def __init__(self, when: float | None) -> None:
        self._timeout = asyncio.timeout_at(when)
        self._token: Token[tuple[asyncio.Timeout, ...]] | None = None

    async def __aenter__(self) -> asyncio.Timeout:
        timeout = await self._timeout.__aenter__()
        self._token = _in_force.set((*_in_force.get(), timeout))
        return timeout

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        if self._token is not None:
            _in_force.reset(self._token)
            self._token = None
        return await self._timeout.__aexit__(exc_type, exc, tb)


def deadline_at(when: float | None) -> Deadline:
    """A deadline at loop time `when` (None: no limit, but still a scope)."""
    return Deadline(when)


def deadline_in(seconds: float | None) -> Deadline:
    """A deadline `seconds` from now on the running loop's clock."""
    return Deadline(None if seconds is None else asyncio.get_running_loop().time() + seconds)


def deadline_expired() -> bool:
    """Whether a deadline around the running code has fired (its cancellation is a timeout)."""
    return any(timeout.expired() for timeout in _in_force.get())
