"""The ASGI layers in front of the MCP transports, and the HTTP deployment settings they read.

    RequestLog (request id, one JSON line per request) → HostOriginGuard (421/403 against DNS
    rebinding) → [bearer authentication from the headers, `shared.http.auth`] → ServerGate (401 for a
    missing or bad token, before any body is read; body limit 413; a JSON-RPC error with 400 for a
    body the SDK cannot parse; 403 `insufficient_scope` for a `tools/call` the caller's scopes do not
    allow; every refused tool call audited like any other call) → the SDK transport.

The 403 needs the tool name, which only the JSON-RPC body carries, so the gate reads the (bounded)
body once, parses it once (`shared.jsonrpc_guard.check`, the SDK's own parser) and replays it to the
transport. An unauthenticated request is answered from its headers alone, so it cannot make the
server wait for a slow body; its refusal is audited as tool `-` (the tool it meant is unread).
The gate decides with the pipeline's own functions (`pipeline.refusal` for the scope check,
`pipeline.token_principal` through `auth.caller`, `pipeline.transport_of_path`) and records through
the server's one pipeline (`audit_refusal`), so the two cannot drift; an admitted caller's principal
is handed to the pipeline in `scope["state"]["principal"]`, per request. The pipeline still checks
scopes too (stdio has no gate). Slow or partial requests are cut off below the application, by the
HTTP protocol (`shared.http.limits`).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.auth.settings import AuthSettings
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth.tokens import REASONS
from shared.config import HttpSettings, load
from shared.errors import PermissionDenied, ToolFailure
from shared.http import metrics
from shared.http.auth import (
    DEFAULT_ANONYMOUS_SCOPES,
    anonymous_principal,
    caller,
    refusal_reason,
    unauthorized,
)
from shared.http.json_logs import JsonFormatter, configure_json_logging
from shared.identity import Call, Principal
from shared.jsonrpc_guard import check
from shared.pipeline import refusal, transport_of_path
from shared.server import SuiteServer

log = logging.getLogger("mcp_suite.http")
__all__ = ["HttpConfig", "HostOriginGuard", "JsonFormatter", "RequestLog", "ServerGate", "configure_json_logging"]

LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
UNREAD = "-"  # the tool of a refused request whose body was never read


class Unauthenticated(PermissionDenied):
    error_class = "unauthenticated"


class _TransportRefused(PermissionDenied):
    """Host or Origin refused (DNS-rebinding defence)."""

    error_class = "transport_refused"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class HttpConfig:
    """Deployment facts of the HTTP transports: the `serve` flags plus `HttpSettings` (`MCP_SUITE_*`).

    The variables are read by the one loader (`shared.config.load`), so a bad value stops `serve`
    with the loader's one line naming the variable, and a value means here what the loader says.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    transport: str = "http"
    mount_all: bool = False
    allow_anonymous: bool = False
    public_url: str = ""
    allowed_hosts: list[str] = field(default_factory=list)
    allowed_origins: list[str] = field(default_factory=list)
    max_body_bytes: int = 1 << 20
    json_response: bool = False
    metrics_token: str | None = None
    rate_store: str = "local"
    issuer_url: str | None = None
    anonymous_scopes: frozenset[str] = frozenset({DEFAULT_ANONYMOUS_SCOPES})
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 1000

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> HttpConfig:
        """The flags in `args` and `load(HttpSettings)`; `SettingsError` (a ValueError) on a bad value.

        On a loopback bind, unset Host/Origin lists default to the loopback names (DNS-rebinding defence).
        """
        settings = load(HttpSettings, environ)
        loopback = is_loopback(args.host)
        public = settings.public_url or f"http://{args.host}:{args.port}"
        return cls(
            host=args.host, port=args.port, transport=args.transport, mount_all=args.name == "all",
            allow_anonymous=bool(args.allow_anonymous), public_url=public.rstrip("/"),
            allowed_hosts=list(settings.allowed_hosts) or (list(LOOPBACK_HOSTS) if loopback else []),
            allowed_origins=list(settings.allowed_origins) or (list(LOOPBACK_ORIGINS) if loopback else []),
            max_body_bytes=settings.max_body_bytes, json_response=settings.json_response,
            metrics_token=settings.metrics_token, rate_store=settings.rate_store, issuer_url=settings.issuer_url,
            anonymous_scopes=settings.anonymous_scopes, header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s, max_connections=settings.max_connections,
        )


# --- ASGI layers ---------------------------------------------------------------------------------------

def _state(scope: Scope) -> dict[str, Any]:
    return scope.setdefault("state", {})


class RequestLog:
    """Outermost: stamps the request id, returns it as `X-Request-Id`, logs one JSON line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(16)  # as long as a uuid4's hex, a tenth of its cost
        state = _state(scope)
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            metrics.http_request(state.get("server", "ops"), status)
            if log.isEnabledFor(logging.INFO):
                self._log(scope, state, request_id, status, started)

    @staticmethod
    def _log(scope: Scope, state: dict[str, Any], request_id: str, status: int, started: float) -> None:
        user = scope.get("user")
        log.info("%s %s %s", scope["method"], scope["path"], status, extra={
            "event": "http_request", "request_id": request_id, "method": scope["method"],
            "path": scope["path"][:200], "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "server": state.get("server"), "mcp_method": state.get("mcp_method"), "tool": state.get("tool"),
            "principal": user.display_name if isinstance(user, AuthenticatedUser) else None,
            "client": (scope.get("client") or ("-",))[0],
        })


def _matches(value: str, allowed: list[str]) -> bool:
    return any(value == a or (a.endswith(":*") and value.startswith(a[:-1])) for a in allowed)


class HostOriginGuard:
    """DNS-rebinding defence: an unknown Host gets 421, a foreign browser Origin gets 403.

    The Host check applies when hosts are configured (always on loopback binds). The Origin check
    always applies: a request without `Origin` (not from a browser) passes; one with an Origin not
    listed in `MCP_SUITE_ALLOWED_ORIGINS` (loopback origins on loopback binds) is refused. On a
    server's paths the refusal is left to its `ServerGate` (via `scope["state"]["refusal"]`), which
    knows the tool being called and audits the refused call; elsewhere it is answered here.
    """

    def __init__(self, app: ASGIApp, config: HttpConfig, server_paths: tuple[str, ...]) -> None:
        self.app = app
        self.config = config
        self.server_paths = server_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._check(scope)
            if refusal is not None:
                if scope["path"].startswith(self.server_paths):
                    _state(scope)["refusal"] = refusal
                else:
                    metrics.refusal("-", refusal[1])
                    await Response(refusal[2], status_code=refusal[0])(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _check(self, scope: Scope) -> tuple[int, str, str] | None:
        headers = {k: v for k, v in scope["headers"] if k in (b"host", b"origin")}
        host = headers.get(b"host", b"").decode("latin-1")
        origin = headers.get(b"origin")
        if self.config.allowed_hosts and not _matches(host, self.config.allowed_hosts):
            return 421, "bad_host", "Invalid Host header"
        if origin is not None and not _matches(origin.decode("latin-1"), self.config.allowed_origins):
            return 403, "bad_origin", "Invalid Origin header"
        return None


def _tool_call(message: Any) -> tuple[str, dict[str, Any]] | None:
    """(tool name, arguments) of a parsed JSON-RPC message if it is a `tools/call` (one message per
    request: the SDK takes no batches)."""
    if not (isinstance(message, dict) and message.get("method") == "tools/call"):
        return None
    params = message.get("params") if isinstance(message.get("params"), dict) else {}
    arguments = params.get("arguments")
    return str(params.get("name", ""))[:200], arguments if isinstance(arguments, dict) else {}


class ServerGate:
    """Per-server checks that need the caller, the request body and the server's policy table."""

    def __init__(self, server: SuiteServer, app: ASGIApp, config: HttpConfig, auth: AuthSettings) -> None:
        self.server = server
        self.config = config
        self.metadata_url = str(build_resource_metadata_url(auth.resource_server_url))  # type: ignore[arg-type]
        self.app = app
        self.anonymous = anonymous_principal(config.anonymous_scopes) if config.allow_anonymous else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = _state(scope)
        state["server"] = self.server.name
        user = scope.get("user")
        principal = caller(user)
        reason = refusal_reason(user)
        if principal is None and reason == "missing" and self.anonymous is not None:
            principal = self.anonymous
        if principal is None:  # answered from the headers alone: no body is read for a stranger
            await self._refuse_unread(scope, receive, send, reason)
            return
        tool_call: tuple[str, dict[str, Any]] | None = None
        if scope["method"] == "POST":
            body = await self._read_body(scope, receive, send)
            if body is None:
                return
            checked = check(body)
            if checked.error is not None:
                metrics.refusal(self.server.name, "bad_message")
                await JSONResponse(checked.error, status_code=400)(scope, receive, send)
                return
            receive = _replay(body, receive)
            tool_call = _tool_call(checked.parsed)
            if tool_call is not None:
                state["mcp_method"], state["tool"] = "tools/call", tool_call[0]
        if "refusal" in state:
            status, why, message = state["refusal"]
            metrics.refusal(self.server.name, why)
            if tool_call is not None:
                name, arguments = tool_call
                await self._audit(scope, name, principal, arguments, _TransportRefused(message), status)
            await Response(message, status_code=status)(scope, receive, send)
            return
        if tool_call is not None:  # the pipeline's own check (an unknown tool is left to it)
            name, arguments = tool_call
            policy = self.server.policies.get(name)
            if policy is not None and isinstance(refused := refusal(name, policy, principal), PermissionDenied):
                await self._refuse_scope(scope, receive, send, principal, name, arguments,
                                         principal.missing(policy.scopes), refused)
                return
        state["principal"] = principal  # admitted: the pipeline's identity layer reads it for this request
        await self.app(scope, receive, send)

    async def _refuse_unread(self, scope: Scope, receive: Receive, send: Send, reason: str) -> None:
        """401 (or the Host/Origin refusal) without reading the body; audited as tool `-` for POSTs."""
        state = _state(scope)
        if "refusal" in state:
            status, why, message = state["refusal"]
            metrics.refusal(self.server.name, why)
            if scope["method"] == "POST":
                await self._audit(scope, UNREAD, None, {}, _TransportRefused(message), status)
            await Response(message, status_code=status)(scope, receive, send)
            return
        metrics.refusal(self.server.name, "unauthenticated")
        if scope["method"] == "POST":
            await self._audit(scope, UNREAD, None, {}, Unauthenticated(REASONS.get(reason, reason)), 401)
        await unauthorized(reason, self.metadata_url)(scope, receive, send)

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        limit = self.config.max_body_bytes
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        too_large = declared is not None and declared.isdigit() and int(declared) > limit
        chunks: list[bytes] = []
        size = 0
        while not too_large:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            too_large = size > limit
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if too_large:
            metrics.refusal(self.server.name, "too_large")
            refusal = JSONResponse({"error": "request_too_large", "max_bytes": limit}, status_code=413)
            await refusal(scope, receive, send)
            return None
        return b"".join(chunks)

    async def _audit(self, scope: Scope, name: str, principal: Principal | None, arguments: dict[str, Any],
                     failure: ToolFailure, status: int) -> None:
        """Record a refused call like any other call (same record shape, same request id).

        A caller with no valid token gets no arguments stored and is one principal, `anonymous`, for the
        refusal budget (`shared/audit/refusals.py`), so an anonymous flood causes a few durable writes a
        second; a failed write is logged, and the refusal stands either way.
        """
        if principal is None:
            principal, arguments = Principal("anonymous", frozenset(), "none"), {}
        call = Call(server=self.server.name, tool=name, principal=principal,
                    transport=transport_of_path(scope["path"]), request_id=_state(scope)["request_id"],
                    arguments=arguments, started=time.perf_counter())
        try:  # within the caller's refusal budget (shared/audit/refusals.py), like refusals in the pipeline
            await self.server.pipeline.audit_refusal(call, failure, http_status=status)
        except Exception as exc:  # noqa: BLE001 - the refusal stands whether or not it was recorded
            log.error("could not audit a refused call (%s)", type(exc).__name__)

    async def _refuse_scope(self, scope: Scope, receive: Receive, send: Send, principal: Principal, name: str,
                            arguments: dict[str, Any], missing: set[str], failure: ToolFailure) -> None:
        needed = " ".join(sorted(missing))
        metrics.refusal(self.server.name, "insufficient_scope")
        await self._audit(scope, name, principal, arguments, failure, 403)
        challenge = (f'Bearer error="insufficient_scope", scope="{needed}", '
                     f'resource_metadata="{self.metadata_url}", error_description="tool {name} needs {needed}"')
        response = JSONResponse({"error": "insufficient_scope", "error_description": f"tool {name} needs {needed}"},
                                status_code=403, headers={"WWW-Authenticate": challenge})
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the already-read body once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
