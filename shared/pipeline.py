"""The call stack of every tool call: one ordered list of small layers, each `layer(call, next)`.

In the order the code runs them, outermost first:

    identity        `identify` builds the `Call` before any layer runs; its principal is the first
                    of: a verified token, the HTTP gate's per-request one, the in-process session's,
                    the server's default (stdio)
    audit outcome   the response leaves only after the call's record is committed (refusals included)
    scopes          unknown tool / missing scope → refused, within the caller's refusal budget
    rate limit      per principal and tool (after start-up finished)
    audit intent    a tool that is not read-only: its intent is committed before the body runs
    ── the SDK validates the arguments (strings stay strings: `shared.tool.keep_strings`) ──
    error mapping   anything raised below becomes a safe `ToolFailure`, raised as `ToolFailed`
    deadline        one absolute time for the whole call, retries and backoff included
    retry           transient database errors, read-only/idempotent tools only, within the deadline
    tool            the body; each `app.db.acquire()` in it passes the database breaker, then
                    takes a pooled connection (a bounded wait): the breaker is inside each attempt

The layers from audit outcome to audit intent are `ToolCallPipeline.layers` below, an SDK server
middleware, so they wrap every `tools/call` whatever the transport (and hide from `tools/list` the
tools a caller's scopes do not allow). The SDK sits between them and the inner layers
(`shared.tool.guard_tool`), because only the SDK turns JSON arguments into the body's typed
parameters. A `Call` object travels through all of them in the open: the pipeline passes it down
explicitly, the body reads it (`current_principal()`), and a failure comes back up as an exception
(`ToolFailed`), never through a side channel.

Error mapping is the outermost inner layer so that retry sees the raw exceptions (a lost connection,
not the `unavailable` it becomes) and the deadline's own `TimeoutError` is mapped too (`timeout`).
The deadline sits outside the breaker. A hung database holds a query past the deadline; the
deadline stops it by cancelling the task, and the breaker's guard sees that cancellation with an
expired deadline around it (`shared.resilience.deadline`) and counts a failure, so hangs open the
breaker; a cancellation by the client (deadline still running) is not counted. A breaker outside the
deadline would count slow tool code that never touched the database: it guards a dependency, not a
tool. Retry sits outside the breaker too: each attempt asks it, and an open breaker's `Unavailable`
is a `ToolFailure`, which is never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp_types import CallToolResult, TextContent
from mcp_types.methods import serialize_server_result
from pydantic import ValidationError

from shared.audit.encode import storable, storable_text
from shared.errors import Cancelled, InvalidInput, PermissionDenied, ToolFailure
from shared.identity import Call, Principal, bind_call, unbind_call
from shared.tool import ToolFailed, ToolPolicy, client_message, rejection_fields

if TYPE_CHECKING:
    from shared.server import SuiteServer

log = logging.getLogger(__name__)

Next = Callable[[Call], Awaitable[Any]]
Layer = Callable[..., Awaitable[Any]]
Observer = Callable[[dict[str, Any], float | None], None]
_SIZE = json.JSONEncoder(separators=(",", ":"), default=str)  # built once: `json.dumps(**options)` builds one per call


# --- one function per fact, shared with the HTTP gate ------------------------------------------------------

def request_state(ctx: Any) -> dict[str, Any] | None:
    """The ASGI `scope["state"]` of the HTTP request behind a call (None outside HTTP)."""
    scope = getattr(getattr(ctx, "request", None), "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    return state if isinstance(state, dict) else None


def transport_of_path(path: str) -> str:
    """SSE and streamable HTTP share the ASGI layers; the path tells them apart."""
    return "sse" if ("/sse" in path or "/messages" in path) else "http"


def transport_of(ctx: Any, default: str) -> str:
    scope = getattr(getattr(ctx, "request", None), "scope", None)  # the raw ASGI scope: cheaper than `url`
    path = scope.get("path") if isinstance(scope, dict) else None
    return default if path is None else transport_of_path(path)


def token_principal(token: Any) -> Principal:
    """The principal of a verified access token (the SDK's `AccessToken`)."""
    return Principal(token.client_id, frozenset(token.scopes), "token")


def refusal(tool: str, policy: ToolPolicy | None, principal: Principal) -> ToolFailure | None:
    """The refusals that need no resource: an unknown tool, a missing scope (HTTP gate and pipeline)."""
    if policy is None:
        return InvalidInput(f"unknown tool {tool!r}")
    missing = principal.missing(policy.scopes)
    if missing:
        return PermissionDenied(f"this tool needs scope(s) {', '.join(sorted(missing))}")
    return None


def error_result(failure: ToolFailure, protocol_version: str | None) -> dict[str, Any]:
    """An `is_error` tool result shaped for the connection's protocol version."""
    result = CallToolResult(content=[TextContent(type="text", text=client_message(failure))], is_error=True)
    dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    if protocol_version:
        try:
            return serialize_server_result("tools/call", protocol_version, dumped)
        except (KeyError, ValueError):
            pass
    return dumped


def compose(layers: Iterable[Layer], terminal: Next) -> Next:
    """`layers[0](call, next=layers[1](call, next=… terminal(call)))`, built once."""
    handler = terminal
    for layer in reversed(list(layers)):
        handler = functools.partial(layer, next=handler)
    return handler


class ToolCallPipeline:
    """The outer layers of the call stack, as SDK middleware (the list is `layers`)."""

    def __init__(self, server: SuiteServer) -> None:
        self.server = server
        self.layers: tuple[Layer, ...] = (
            self.audit_outcome, self.check_scopes, self.limit_rate, self.audit_intent,
        )
        self.handle: Next = compose(self.layers, self.dispatch)

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        if ctx.method == "tools/call":
            call = self.identify(ctx, call_next)
            token = bind_call(call)
            try:
                return await self.handle(call)
            finally:
                unbind_call(token)
        if ctx.method == "tools/list":
            return self._visible_tools(ctx, await call_next(ctx))
        return await call_next(ctx)

    # --- identity ---------------------------------------------------------------------------------------

    def principal(self, ctx: Any = None, state: dict[str, Any] | None = None) -> Principal:
        token = get_access_token()
        if token is not None:
            return token_principal(token)
        if state is None:
            state = request_state(ctx)
        admitted = state.get("principal") if state is not None else None  # set by the HTTP gate, per request
        if isinstance(admitted, Principal):
            return admitted
        return self.server.session_principal.get() or self.server.default_principal

    def identify(self, ctx: Any, call_next: Any) -> Call:
        params = ctx.params or {}
        arguments = params.get("arguments")
        name = params.get("name")
        if name not in self.server.policies:  # a known name is already storable
            name = storable_text(str(name or ""), 200)
        state = request_state(ctx)
        request_id = state.get("request_id") if state is not None else None
        if not (isinstance(request_id, str) and 0 < len(request_id) <= 64):
            request_id = secrets.token_hex(16)  # (as long as a uuid4's hex, a tenth of its cost)
        return Call(
            server=self.server.name,
            tool=name,
            principal=self.principal(ctx, state),
            transport=transport_of(ctx, self.server.transport),
            request_id=request_id,
            arguments=arguments if isinstance(arguments, dict) else ({} if arguments is None else {"_": arguments}),
            started=time.perf_counter(),
            protocol_version=ctx.protocol_version,
            dispatch=functools.partial(call_next, ctx),
        )

    def _visible_tools(self, ctx: Any, listing: Any) -> Any:
        if not isinstance(listing, dict) or "tools" not in listing:
            return listing
        principal = self.principal(ctx)
        policies = self.server.policies
        allowed = [tool for tool in listing["tools"]
                   if (policy := policies.get(tool.get("name"))) is None or not principal.missing(policy.scopes)]
        return {**listing, "tools": allowed}

    # --- the layers -------------------------------------------------------------------------------------

    async def audit_outcome(self, call: Call, next: Next) -> Any:  # noqa: A002 - the layer protocol's name
        """Shape the result, commit the outcome record, and only then let the result leave."""
        try:
            result, failure = await next(call), None
        except ToolFailed as failed:
            result, failure = None, failed.failure
        except ToolFailure as refused:
            result, failure = None, refused
        if failure is None and isinstance(result, dict) and result.get("isError"):
            failure = self._describe_rejection(call)
        if failure is not None:  # one clean message, without the SDK prefix
            result = error_result(failure, call.protocol_version)
            if not call.audited:  # counted in the refusal budget's summary record instead
                self._observe(call, failure)
                return result
        size = len(_SIZE.encode(result))
        try:
            await self.server.wait_ready(self.server.settings.acquire_timeout_s)
            record = self.record(call, "result", failure, size)
            audit_started = time.perf_counter()
            await self.server.audit.append(record)
        except ToolFailure as unrecorded:
            self._observe(call, unrecorded)
            return error_result(unrecorded, call.protocol_version)
        self._notify(record, time.perf_counter() - audit_started)
        return result

    async def check_scopes(self, call: Call, next: Next) -> Any:  # noqa: A002
        refused = refusal(call.tool, self.server.policies.get(call.tool), call.principal)
        if refused is not None:
            suppressed = await self.server.refusals.admit(call.principal.id)
            if suppressed is not None:
                call.audited = False
                raise suppressed
            raise refused
        return await next(call)

    async def limit_rate(self, call: Call, next: Next) -> Any:  # noqa: A002
        server = self.server
        await server.wait_ready(server.settings.acquire_timeout_s)
        policy = server.policies[call.tool]
        if policy.rate is not None:
            await server.limiter.check((call.principal.id, policy.name), policy.rate)
        return await next(call)

    async def audit_intent(self, call: Call, next: Next) -> Any:  # noqa: A002
        """A tool that is not read-only has its intent committed before its body runs: if the audit log
        cannot write, the body never runs, so no change happens without a record. If the caller hangs
        up or cancels while the body runs, an outcome record saying so is queued before the
        cancellation goes on (the audit writer finishes it whatever happens to this task)."""
        if self.server.policies[call.tool].read_only:
            return await next(call)
        try:  # a hang-up while the intent waits for the chain's head is recorded too
            await self.server.audit.append(self.record(call, "intent", None, None))
            return await next(call)
        except asyncio.CancelledError:
            with contextlib.suppress(ToolFailure, asyncio.CancelledError):
                await self.server.audit.append(self.record(call, "result", Cancelled(), 0))
            raise

    @staticmethod
    async def dispatch(call: Call) -> Any:
        """Into the SDK: it validates the arguments and runs the guarded body (`shared.tool`)."""
        assert call.dispatch is not None
        return await call.dispatch()

    # --- records ----------------------------------------------------------------------------------------

    def _describe_rejection(self, call: Call) -> ToolFailure:
        """The SDK rejected the arguments before the body ran: say which fields, never echo values."""
        policy = self.server.policies.get(call.tool)
        if policy is not None and policy.check_arguments is not None:
            try:
                policy.check_arguments(call.arguments)
            except ValidationError as exc:
                return InvalidInput("invalid arguments: " + "; ".join(rejection_fields(exc)[:10]))
        return InvalidInput("invalid arguments")

    def record(self, call: Call, phase: str, failure: ToolFailure | None, result_bytes: int | None) -> dict[str, Any]:
        audit = self.server.audit
        args = call.arguments
        policy = self.server.policies.get(call.tool)
        redacted = frozenset(args) if policy is None else policy.redact
        if redacted and not redacted.isdisjoint(args):
            args = {k: ("[redacted]" if k in redacted else v) for k, v in args.items()}
        record = audit.record(
            server=call.server,
            tool=call.tool,
            principal=call.principal.id,
            principal_source=call.principal.source,
            transport=call.transport,
            request_id=call.request_id,
            phase=phase,
            outcome="started" if phase == "intent" else ("error" if failure else "ok"),
            error_class=failure.error_class if failure else None,
            arguments=storable(args),
            arguments_hmac=self._digest(call),  # of the full arguments
        )
        if phase != "intent":
            record["latency_ms"] = round((time.perf_counter() - call.started) * 1000, 3)
        if result_bytes is not None:
            record["result_bytes"] = result_bytes
        return record

    def _digest(self, call: Call) -> str:
        """The keyed hash of the call's full arguments, once per call (intent and outcome share it)."""
        if call.arguments_digest is None:
            call.arguments_digest = self.server.audit.digest(call.arguments)
        return call.arguments_digest

    async def audit_refusal(self, call: Call, failure: ToolFailure, **extra: Any) -> ToolFailure | None:
        """Record a call refused before the pipeline (the HTTP gate's 401/403), within the caller's
        refusal budget. Returns the `RateLimited` to answer with instead when over budget."""
        suppressed = await self.server.refusals.admit(call.principal.id)
        if suppressed is not None:
            return suppressed
        await self.server.wait_ready(self.server.settings.acquire_timeout_s)
        record = self.record(call, "result", failure, 0)
        record.update(extra)
        written = time.perf_counter()
        await self.server.audit.append(record)
        self._notify(record, time.perf_counter() - written)
        return None

    def _notify(self, record: dict[str, Any], audit_seconds: float | None) -> None:
        for observer in self.server.call_observers:
            try:
                observer(record, audit_seconds)
            except Exception:  # noqa: BLE001 - an observer must never fail a call
                log.exception("call observer failed")

    def _observe(self, call: Call, failure: ToolFailure) -> None:
        """A call refused because it could not be audited is still counted (as what the caller got)."""
        if self.server.call_observers:
            self._notify({"server": call.server, "tool": call.tool, "outcome": "error",
                          "error_class": failure.error_class, "request_id": call.request_id,
                          "latency_ms": round((time.perf_counter() - call.started) * 1000, 3),
                          "transport": call.transport, "principal": call.principal.id}, None)
