"""The tool decorator: a tool's whole policy declared in one place, as data.

```python
@app.tool(scopes={"profiles:read"}, read_only=True, timeout=5, rate=Rate(20, per=1), redact={"email"})
async def get_profile(profile_id: str) -> Profile: ...
```

`ToolPolicy` is what the decorator records; `guard_tool` wraps the body with the layers that belong
inside a call: deadline → retry (read-only/idempotent tools only) → error mapping. The layers that
need the caller (scopes, rate limit, audit) run in `pipeline.ToolCallPipeline`, which reads the same
policy. The wrapped function keeps the original signature, so the MCP SDK derives the input and
output schemas from its type hints.

Where the deadline sits relative to the breaker, and why. The deadline is the outermost layer here:
one absolute time for the whole call, retries and backoff included, so no retry can overrun it. The
database breaker sits deeper, in `Database.acquire` inside the body, around each use of a
connection. When a hung database holds a query past the deadline, the deadline stops it by
cancelling the task, and that cancellation passes through the breaker on its way out. A bare
`asyncio.timeout_at` there would look to the breaker exactly like a client hanging up, which it
must ignore (issue 8: 24 calls against `pg_sleep(3)` with a 0.5 s deadline left it closed with 0
calls counted, and every caller kept waiting out its deadline). So the deadline is a
`shared.resilience.deadline` scope, which the breaker can see: a cancellation that passes a guard while a
deadline around it has expired counts as a `TimeoutError`; one from the client (the deadline still
running) does not. The breaker thus opens on a hung database, later calls are refused at once with
`Unavailable` and a `retry_after` without touching it, and a half-open probe that succeeds closes it.
Moving the breaker outside the deadline instead would not do: it would also count slow tool code
that never touched the database, and the breaker guards a dependency, not a tool.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import ToolAnnotations

from shared.errors import ToolFailure, Unavailable, to_failure
from shared.identity import _current_call
from shared.resilience.deadline import deadline_at
from shared.resilience.limits import Rate
from shared.resilience.retry import RetryPolicy, is_transient, run_with_retry

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRY = RetryPolicy(attempts=3, initial_wait=0.05, max_wait=1.0)


@dataclass(frozen=True)
class ToolPolicy:
    """Everything the suite enforces around one tool, readable at a glance."""

    name: str
    scopes: frozenset[str] = frozenset()
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    timeout: float = DEFAULT_TIMEOUT_S
    rate: Rate | None = None
    retry: RetryPolicy | None = None
    redact: frozenset[str] = frozenset()
    title: str | None = None

    @classmethod
    def declare(
        cls,
        name: str,
        *,
        scopes: Iterable[str] = (),
        read_only: bool = False,
        destructive: bool = False,
        idempotent: bool = False,
        timeout: float = DEFAULT_TIMEOUT_S,
        rate: Rate | str | None = None,
        retry: bool | RetryPolicy | None = None,
        redact: Iterable[str] = (),
        title: str | None = None,
    ) -> ToolPolicy:
        if read_only and destructive:
            raise ValueError(f"tool {name}: a read-only tool cannot be destructive")
        if timeout <= 0:
            raise ValueError(f"tool {name}: timeout must be positive")
        safe_to_repeat = read_only or idempotent
        if retry is None:
            retry_policy = DEFAULT_RETRY if safe_to_repeat else None
        elif retry is True:
            retry_policy = DEFAULT_RETRY
        elif retry is False:
            retry_policy = None
        else:
            retry_policy = retry
        if retry_policy is not None and not safe_to_repeat:
            raise ValueError(f"tool {name}: only read-only or idempotent tools may be retried")
        return cls(
            name=name,
            scopes=frozenset(scopes),
            read_only=read_only,
            destructive=destructive,
            idempotent=idempotent or read_only,
            timeout=timeout,
            rate=Rate.parse(rate) if isinstance(rate, str) else rate,
            retry=retry_policy,
            redact=frozenset(redact),
            title=title,
        )

    def annotations(self) -> ToolAnnotations:
        return ToolAnnotations(
            title=self.title,
            read_only_hint=self.read_only,
            destructive_hint=self.destructive,
            idempotent_hint=self.idempotent,
            open_world_hint=False,
        )


def client_message(failure: ToolFailure) -> str:
    text = f"{failure.error_class}: {failure.message}"
    if failure.retry_after is not None and "retry" not in failure.message:
        text += f" (retry after {failure.retry_after:.2f} s)"
    return text


def failure_of(exc: BaseException) -> ToolFailure:
    """The client-safe failure for anything a tool body raised."""
    if not isinstance(exc, ToolFailure) and is_transient(exc):
        return Unavailable("the database is temporarily unavailable; retry shortly", retry_after=1.0)
    return to_failure(exc)


def guard_tool(fn: F, policy: ToolPolicy) -> F:
    """Wrap a tool body with its deadline, retries and error mapping."""
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"tool {policy.name} must be an async function (a sync body would block the loop)")

    @functools.wraps(fn)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.timeout
        try:
            async with deadline_at(deadline):  # visible to the breakers inside (see the module docstring)
                if policy.retry is None:
                    return await fn(*args, **kwargs)
                return await run_with_retry(
                    lambda: fn(*args, **kwargs), policy.retry, deadline=deadline, clock=loop.time
                )
        except (ToolError, MCPError):
            raise
        except Exception as exc:  # noqa: BLE001 - the single place tool failures become safe messages
            failure = failure_of(exc)
            call = _current_call.get()
            request_id = call.request_id if call is not None else "-"
            if failure.error_class == "internal":
                log.error("tool %s failed [request %s]", policy.name, request_id, exc_info=exc)
            if call is not None:
                call.failure = failure
            raise ToolError(client_message(failure)) from None

    return guarded  # type: ignore[return-value]
