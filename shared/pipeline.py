"""The policy stack of every tool call, in one visible order.

    identity → scopes [refusals: per-principal budget → audit] → rate limit → audit intent (every tool
    that is not read-only) → tool (deadline → retry → breaker → pool) → audit record (durable) → response

It is an MCP SDK server middleware, so it wraps every `tools/call` whatever the transport, and it also
hides from `tools/list` the tools a caller's scopes do not allow. A refusal at any layer is still
audited. The response leaves only after the audit record has been committed; if the audit log cannot
write, the caller gets a clear `unavailable` error instead of an unrecorded result.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp_types import CallToolResult, TextContent
from mcp_types.methods import serialize_server_result
from pydantic import ValidationError

from shared.audit.encode import storable, storable_text
from shared.errors import Cancelled, InvalidInput, PermissionDenied, ToolFailure
from shared.identity import CallInfo, Principal, bind_call, unbind_call
from shared.tool import ToolPolicy, client_message

if TYPE_CHECKING:
    from shared.server import SuiteServer

log = logging.getLogger(__name__)

# The principal of an in-process or stdio session (HTTP takes it from the verified token instead).
session_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "mcp_suite_session_principal", default=None
)

# Called with each tool call's audit record (outcome as the caller saw it) and the seconds the audit
# write took (None if it failed). Metrics subscribe here; an observer must be quick and never raise.
call_observers: list[Callable[[dict[str, Any], float | None], None]] = []


def incoming_request_id(ctx: Any) -> str | None:
    """The id the HTTP layer stamped on this request (`scope["state"]["request_id"]`), so the audit
    record, the JSON logs and the `X-Request-Id` response header agree. None outside HTTP."""
    scope = getattr(getattr(ctx, "request", None), "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    value = state.get("request_id") if isinstance(state, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 64 else None


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


def transport_of(ctx: Any, default: str) -> str:
    """HTTP requests carry a Starlette request; its path tells SSE from streamable HTTP."""
    request = getattr(ctx, "request", None)
    scope = getattr(request, "scope", None)  # the raw ASGI scope: cheaper than building `request.url`
    path = scope.get("path") if isinstance(scope, dict) else None
    if path is None:
        return default
    return "sse" if ("/sse" in path or "/messages" in path) else "http"


class ToolCallPipeline:
    """SDK middleware enforcing each tool's `ToolPolicy` and writing its audit record."""

    def __init__(self, server: SuiteServer) -> None:
        self.server = server

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        if ctx.method == "tools/call":
            return await self._call_tool(ctx, call_next)
        if ctx.method == "tools/list":
            return self._visible_tools(await call_next(ctx))
        return await call_next(ctx)

    def principal(self) -> Principal:
        token = get_access_token()
        if token is not None:
            return Principal(id=token.client_id, scopes=frozenset(token.scopes), source="token")
        return session_principal.get() or self.server.default_principal

    def _visible_tools(self, listing: Any) -> Any:
        if not isinstance(listing, dict) or "tools" not in listing:
            return listing
        principal = self.principal()
        allowed = [
            tool for tool in listing["tools"]
            if (policy := self.server.policies.get(tool.get("name"))) is None or not principal.missing(policy.scopes)
        ]
        return {**listing, "tools": allowed}

    async def _call_tool(self, ctx: Any, call_next: Any) -> Any:
        params = ctx.params or {}
        name = str(params.get("name", ""))
        arguments = params.get("arguments") or {}
        policy = self.server.policies.get(name)
        started = time.perf_counter()
        call = CallInfo(
            server=self.server.name,
            tool=storable_text(name, 200),
            principal=self.principal(),
            transport=transport_of(ctx, self.server.transport),
            request_id=incoming_request_id(ctx) or uuid.uuid4().hex,
        )
        token = bind_call(call)
        try:
            refusal = self._refuse(call, policy)
            if refusal is not None:
                suppressed = await self.server.refusals.admit(call.principal.id)
                if suppressed is not None:  # counted in a summary record, not one record each
                    _observe(call, suppressed, started)
                    return error_result(suppressed, ctx.protocol_version)
                return await self._finish(ctx, call, policy, arguments, None, refusal, started)
            result, phase_failure = await self._run(ctx, call_next, call, policy, arguments, started)
            return await self._finish(ctx, call, policy, arguments, result, phase_failure or call.failure, started)
        finally:
            unbind_call(token)

    @staticmethod
    def _refuse(call: CallInfo, policy: ToolPolicy | None) -> ToolFailure | None:
        """The refusals that need no resource: an unknown tool, a missing scope."""
        if policy is None:
            return InvalidInput(f"unknown tool {call.tool!r}")
        missing = call.principal.missing(policy.scopes)
        if missing:
            return PermissionDenied(f"this tool needs scope(s) {', '.join(sorted(missing))}")
        return None

    async def _finish(self, ctx: Any, call: CallInfo, policy: ToolPolicy | None, arguments: Any, result: Any,
                      failure: ToolFailure | None, started: float) -> Any:
        """Shape the result, commit the outcome record, and only then let the result leave."""
        if failure is None and isinstance(result, dict) and result.get("isError"):
            failure = self._describe_rejection(call.tool, arguments)
            result = error_result(failure, ctx.protocol_version)
        elif failure is not None:  # one clean message, without the SDK prefix
            result = error_result(failure, ctx.protocol_version)
        size = len(json.dumps(result, separators=(",", ":"), default=str))
        try:
            await self.server.wait_ready(self.server.settings.acquire_timeout_s)
            record = self._record(call, policy, arguments, "result", failure, started, size)
            audit_started = time.perf_counter()
            await self.server.audit.append(record)
        except ToolFailure as refusal:
            _observe(call, refusal, started)
            return error_result(refusal, ctx.protocol_version)
        _notify(record, time.perf_counter() - audit_started)
        return result

    async def _run(
        self, ctx: Any, call_next: Any, call: CallInfo, policy: ToolPolicy, arguments: dict[str, Any],
        started: float,
    ) -> tuple[Any, ToolFailure | None]:
        """Rate limit, intent, then the tool. Returns (result, failure raised before the tool ran).

        A tool that is not read-only has its intent committed before its body runs: if the audit log
        cannot write, the body never runs, so no change happens without a record. If the caller hangs
        up or cancels while the body runs, an outcome record saying so is queued before the
        cancellation goes on (the audit writer finishes it whatever happens to this task).
        """
        try:
            await self.server.wait_ready(self.server.settings.acquire_timeout_s)
            if policy.rate is not None:
                await self.server.limiter.check((call.principal.id, policy.name), policy.rate)
            if policy.read_only:
                return await call_next(ctx), None
        except ToolFailure as refusal:
            return None, refusal
        intent = self._record(call, policy, arguments, "intent", None, None, None)
        try:
            try:
                await self.server.audit.append(intent)
            except ToolFailure as refusal:
                return None, refusal
            return await call_next(ctx), None
        except asyncio.CancelledError:
            cancelled = self._record(call, policy, arguments, "result", Cancelled(), started, 0)
            with contextlib.suppress(ToolFailure, asyncio.CancelledError):
                await self.server.audit.append(cancelled)
            raise

    async def audit_refusal(self, call: CallInfo, arguments: dict[str, Any], failure: ToolFailure,
                            **extra: Any) -> ToolFailure | None:
        """Record a call refused before the pipeline (the HTTP gate's 401/403), within the caller's
        refusal budget. Returns the `RateLimited` to answer with instead when over budget."""
        suppressed = await self.server.refusals.admit(call.principal.id)
        if suppressed is not None:
            return suppressed
        await self.server.wait_ready(self.server.settings.acquire_timeout_s)
        record = self._record(call, self.server.policies.get(call.tool), arguments, "result", failure,
                              time.perf_counter(), 0)
        record.update(extra)
        written = time.perf_counter()
        await self.server.audit.append(record)
        _notify(record, time.perf_counter() - written)
        return None

    def _describe_rejection(self, name: str, arguments: Any) -> ToolFailure:
        """The SDK rejected the arguments before the body ran: say which fields, never echo values."""
        tool = self.server.mcp._tool_manager.get_tool(name)
        if tool is not None and isinstance(arguments, dict):
            try:
                tool.fn_metadata.validate_arguments(arguments)
            except ValidationError as exc:
                problems = [
                    f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in exc.errors()
                ]
                return InvalidInput("invalid arguments: " + "; ".join(problems[:10]))
        return InvalidInput("invalid arguments")

    def _record(
        self,
        call: CallInfo,
        policy: ToolPolicy | None,
        arguments: Any,
        phase: str,
        failure: ToolFailure | None,
        started: float | None,
        result_bytes: int | None,
    ) -> dict[str, Any]:
        audit = self.server.audit
        args = arguments if isinstance(arguments, dict) else {"_": arguments}
        redacted = frozenset(args) if policy is None else policy.redact
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
            arguments=storable({k: ("[redacted]" if k in redacted else v) for k, v in args.items()}),
            arguments_hmac=audit.digest(args),
        )
        if started is not None:
            record["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        if result_bytes is not None:
            record["result_bytes"] = result_bytes
        return record


def _notify(record: dict[str, Any], audit_seconds: float | None) -> None:
    for observer in call_observers:
        try:
            observer(record, audit_seconds)
        except Exception:  # noqa: BLE001 - an observer must never fail a call
            log.exception("call observer failed")


def _observe(call: CallInfo, failure: ToolFailure, started: float) -> None:
    """A call refused because it could not be audited is still counted (as what the caller got)."""
    if call_observers:
        _notify({"server": call.server, "tool": call.tool, "outcome": "error", "error_class": failure.error_class,
                 "latency_ms": round((time.perf_counter() - started) * 1000, 3), "request_id": call.request_id,
                 "transport": call.transport, "principal": call.principal.id}, None)
