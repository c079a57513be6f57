"""The tool decorator (`app.tool`) and the layers of the call stack that sit around a tool body.

```python
@app.tool(READ | redact("email") | timeout(5), title="Get a profile")
async def get_profile(profile_id: str) -> Profile: ...
```

`register_tool` is the decorator behind `SuiteServer.tool`: it resolves the `shared.policy.Policy`
into a `ToolPolicy` (checked against the function: a `redact` typo raises here, at import time) and
hands the SDK the body wrapped by `guard_tool`: error mapping → deadline → retry → body (the inner
end of the call stack listed in `shared.pipeline`; the database breaker is inside the body, in each
`app.db.acquire()`). Error mapping is outermost so that retry sees the raw exceptions and the
deadline's own `TimeoutError` is mapped too. A failure leaves the wrapper in the open, as a
`ToolFailed` exception carrying the `ToolFailure`; it is an `MCPError`, which the SDK passes through
unchanged, so the pipeline catches it where it called the SDK. The wrapped function keeps the
original signature (except `str`-typed parameters, see `keep_strings`), so the MCP SDK derives the
input and output schemas from its type hints.

Where the deadline sits relative to the breaker, and why. The deadline is just inside error mapping:
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
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, ToolAnnotations
from pydantic import PlainValidator, TypeAdapter, ValidationError, WithJsonSchema

from shared.errors import ToolFailure, Unavailable, to_failure
from shared.identity import active_call
from shared.policy import DEFAULT_TIMEOUT_S, NO_RETRY, Policy
from shared.resilience.deadline import deadline_at
from shared.resilience.limits import Rate
from shared.resilience.retry import RetryPolicy, is_transient, run_with_retry

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

__all__ = ["DEFAULT_TIMEOUT_S", "ToolFailed", "ToolPolicy", "guard_tool", "register_tool"]


@dataclass(frozen=True)
class ToolPolicy:
    """Everything the suite enforces around one registered tool, resolved and checked."""

    name: str
    scopes: frozenset[str] = frozenset()
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    timeout: float = DEFAULT_TIMEOUT_S
    rate: Rate | None = None
    retry: RetryPolicy | None = None  # None: one try
    redact: frozenset[str] = frozenset()
    title: str | None = None
    check_arguments: Callable[[dict[str, Any]], None] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def resolve(cls, name: str, policy: Policy, *, title: str | None = None) -> ToolPolicy:
        """The rules of a policy, enforced once: raise ValueError naming the tool."""
        if policy.read_only and policy.destructive:
            raise ValueError(f"tool {name}: a read-only tool cannot be destructive")
        retry = None if policy.retry is None or policy.retry == NO_RETRY else policy.retry
        safe_to_repeat = policy.read_only or policy.idempotent
        if retry is not None and not safe_to_repeat:
            raise ValueError(f"tool {name}: only read-only or idempotent tools may be retried")
        return cls(name=name, scopes=policy.scopes, read_only=policy.read_only, destructive=policy.destructive,
                   idempotent=safe_to_repeat, timeout=policy.timeout or DEFAULT_TIMEOUT_S, rate=policy.rate,
                   retry=retry, redact=policy.redact, title=title)

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


class ToolFailed(MCPError, ToolError):
    """A tool's failure on its way back to the pipeline, in the open.

    An `MCPError`, because that is what the SDK passes through untouched (anything else it turns into
    an `is_error` result with only a text); the pipeline catches it around its call into the SDK and
    answers with `failure`. Its text is the client message, so a direct caller sees the same.
    """

    def __init__(self, failure: ToolFailure) -> None:
        MCPError.__init__(self, INTERNAL_ERROR, client_message(failure))
        self.failure = failure

    def __str__(self) -> str:
        return self.message


def failure_of(exc: BaseException) -> ToolFailure:
    """The client-safe failure for anything a tool body raised (the error-mapping layer)."""
    if not isinstance(exc, ToolFailure) and is_transient(exc):
        return Unavailable("the database is temporarily unavailable; retry shortly", retry_after=1.0)
    return to_failure(exc)


def guard_tool(fn: F, policy: ToolPolicy, policy_of: Callable[[], ToolPolicy] | None = None) -> F:
    """Wrap a tool body with the inner layers: error mapping → deadline → retry → body.

    `policy_of` reads the tool's policy per call from the server's live policy table, so an operator
    (or a test) replacing `app.policies[name]` changes the deadline and the retry like every other layer.

    The deadline is outside the breaker (which guards each use of a connection, in
    `Database.acquire`, inside every attempt): see the module docstring of `shared.pipeline`.
    """
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"tool {policy.name} must be an async function (a sync body would block the loop)")
    @functools.wraps(fn)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        current = policy_of() if policy_of is not None else policy
        retry = current.retry
        loop = asyncio.get_running_loop()
        deadline = loop.time() + current.timeout
        try:  # error mapping, around the deadline and retry: retry sees the raw exceptions
            async with deadline_at(deadline):  # visible to the breakers inside
                if retry is None:
                    return await fn(*args, **kwargs)
                return await run_with_retry(lambda: fn(*args, **kwargs), retry, deadline=deadline, clock=loop.time)
        except (ToolError, MCPError):
            raise
        except Exception as exc:  # noqa: BLE001 - the single place tool failures become safe messages
            failure = failure_of(exc)
            if failure.error_class == "internal":
                call = active_call()
                log.error("tool %s failed [request %s]", policy.name, call.request_id if call else "-", exc_info=exc)
            raise ToolFailed(failure) from None

    return guarded  # type: ignore[return-value]


# --- strings stay strings ---------------------------------------------------------------------------------

_SCALARS = (str, int, float, bool, type(None))


def _admits_str_only_scalars(annotation: Any) -> bool:
    """`str | None`, `Annotated[str, ...] | None`, `str | int`: a str is valid, nothing needs JSON."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = typing.get_args(annotation)
        return any(_admits_str_only_scalars(m) for m in members) and all(_is_scalar(m) for m in members)
    return annotation is str


def _is_scalar(annotation: Any) -> bool:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is Literal:
        return True
    return annotation in _SCALARS


def keep_strings(fn: Callable[..., Any], target: Callable[..., Any]) -> None:
    """Stop the SDK from parsing a JSON-looking string for a parameter that takes a string.

    The SDK pre-parses every string argument whose declared type is not exactly `str` with
    `json.loads`, so for `bio: str | None` the text `null` became None and `{"a":1}` an object
    (then refused). For such a parameter `target` gets the annotation `str` as the SDK sees it, with
    the declared type doing the validation (`PlainValidator`) and the declared schema kept
    (`WithJsonSchema`): same schema, same checks, and the caller's string arrives as sent.
    """
    hints = typing.get_type_hints(fn, include_extras=True)
    signature = inspect.signature(fn)
    params = []
    changed = False
    for param in signature.parameters.values():
        declared = hints.get(param.name, param.annotation)
        if declared is not str and _admits_str_only_scalars(declared):
            adapter: TypeAdapter[Any] = TypeAdapter(declared)
            declared = Annotated[str, PlainValidator(adapter.validate_python),
                                 WithJsonSchema(adapter.json_schema())]
            changed = True
        params.append(param.replace(annotation=declared))
    if changed:
        returns = hints.get("return", signature.return_annotation)
        target.__signature__ = signature.replace(parameters=params, return_annotation=returns)  # type: ignore[attr-defined]


def argument_checker(fn: Callable[..., Any]) -> Callable[[dict[str, Any]], None]:
    """Validate arguments as the SDK does, to say which fields it refused (values never echoed)."""
    from mcp.server.mcpserver.utilities.func_metadata import func_metadata

    metadata = func_metadata(fn)

    def check(arguments: dict[str, Any]) -> None:
        metadata.validate_arguments(arguments)

    return check


def rejection_fields(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in exc.errors()]


# --- the decorator ------------------------------------------------------------------------------------------

def register_tool(server: Any, policy: Policy, *, name: str | None, title: str | None) -> Callable[[F], F]:
    """`SuiteServer.tool`: resolve and check the policy, then add the guarded body to the SDK server."""
    if not isinstance(policy, Policy):
        raise TypeError("app.tool takes a Policy, e.g. app.tool(READ | redact('email'))")

    def register(fn: F) -> F:
        resolved = ToolPolicy.resolve(name or fn.__name__, policy, title=title)
        params = set(inspect.signature(fn).parameters)
        unknown = resolved.redact - params
        if unknown:
            raise ValueError(f"tool {resolved.name}: redact names {sorted(unknown)} that are not parameters "
                             f"(parameters: {sorted(params)})")
        if resolved.name in server.policies:
            raise ValueError(f"tool {resolved.name} is declared twice")
        guarded = guard_tool(fn, resolved, policy_of=lambda: server.policies[resolved.name])
        keep_strings(fn, guarded)
        checked = ToolPolicy(**{**resolved.__dict__, "check_arguments": argument_checker(guarded)})
        server.policies[checked.name] = checked
        server.mcp.add_tool(guarded, name=checked.name, title=title, annotations=checked.annotations())
        return fn

    return register

