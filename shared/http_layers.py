"""The ASGI layers in front of the MCP transports, and the HTTP deployment settings they read.

    RequestLog (request id, one JSON line per request) → HostOriginGuard (421/403 against DNS
    rebinding) → [bearer authentication, from the SDK] → ServerGate (body limit 413; 401 for a
    missing or bad token; 403 `insufficient_scope` for a `tools/call` the token's scopes do not allow;
    every refused tool call audited like any other call) → the SDK transport.

The 403 needs the tool name, which only the JSON-RPC body carries, so the gate reads the (bounded)
body once and replays it to the transport. The pipeline still checks scopes too (stdio has no gate).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, RequireAuthMiddleware
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.auth.settings import AuthSettings
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import metrics
from shared.errors import PermissionDenied, RateLimited, ToolFailure
from shared.identity import CallInfo, Principal, current_call
from shared.limits import Rate, RateLimiter
from shared.pipeline import ToolCallPipeline, call_observers
from shared.server import SuiteServer

log = logging.getLogger("mcp_suite.http")

LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
UNAUTHENTICATED_AUDIT_RATE = Rate(20, per=1.0)  # bounds the durable writes an anonymous flood can cause


class Unauthenticated(PermissionDenied):
    error_class = "unauthenticated"


class _TransportRefused(PermissionDenied):
    """Host or Origin refused (DNS-rebinding defence)."""

    error_class = "transport_refused"


def split_list(value: str | None) -> list[str]:
    return [item for item in (value or "").replace(",", " ").split() if item]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class HttpConfig:
    """Deployment facts of the HTTP transports (flags first, then `MCP_SUITE_*` variables)."""

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

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> HttpConfig:
        env = os.environ
        loopback = is_loopback(args.host)
        public = env.get("MCP_SUITE_PUBLIC_URL") or f"http://{args.host}:{args.port}"
        return cls(
            host=args.host, port=args.port, transport=args.transport, mount_all=args.name == "all",
            allow_anonymous=bool(args.allow_anonymous), public_url=public.rstrip("/"),
            allowed_hosts=split_list(env.get("MCP_SUITE_ALLOWED_HOSTS")) or (LOOPBACK_HOSTS if loopback else []),
            allowed_origins=split_list(env.get("MCP_SUITE_ALLOWED_ORIGINS")) or (LOOPBACK_ORIGINS if loopback else []),
            max_body_bytes=int(env.get("MCP_SUITE_MAX_BODY_BYTES") or (1 << 20)),
            json_response=env.get("MCP_SUITE_JSON_RESPONSE", "0").lower() in ("1", "true", "yes"),
            metrics_token=env.get("MCP_SUITE_METRICS_TOKEN") or None,
            rate_store=(env.get("MCP_SUITE_RATE_LIMIT_STORE") or "local").lower(),
            issuer_url=env.get("MCP_SUITE_AUTH_ISSUER") or None,
        )


# --- structured logs ----------------------------------------------------------------------------------

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Why not a library: twenty lines, and no new dependency for it."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage(),
        }
        try:
            call = current_call()
            entry.update(request_id=call.request_id, server=call.server, tool=call.tool)
        except RuntimeError:  # not inside a tool call
            pass
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info and record.levelno >= logging.ERROR:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_json_logging(level: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)  # never stdout: it may carry a protocol
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("MCP_SUITE_LOG_LEVEL") or "INFO").upper())
    for noisy in ("mcp", "uvicorn.error", "httpx"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))


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
        request_id = uuid.uuid4().hex
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


def _tool_calls(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(tool name, arguments) of every `tools/call` in a JSON-RPC body (a message or a batch)."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    calls = []
    for message in parsed if isinstance(parsed, list) else [parsed]:
        if isinstance(message, dict) and message.get("method") == "tools/call":
            params = message.get("params") if isinstance(message.get("params"), dict) else {}
            arguments = params.get("arguments")
            calls.append((str(params.get("name", ""))[:200], arguments if isinstance(arguments, dict) else {}))
    return calls


class ServerGate:
    """Per-server checks that need the request body and the server's policy table."""

    def __init__(self, server: SuiteServer, app: ASGIApp, config: HttpConfig, auth: AuthSettings) -> None:
        self.server = server
        self.config = config
        self.metadata_url = str(build_resource_metadata_url(auth.resource_server_url))  # type: ignore[arg-type]
        self.require = RequireAuthMiddleware(app, [], build_resource_metadata_url(auth.resource_server_url))  # type: ignore[arg-type]
        self.app = app
        self.pipeline = ToolCallPipeline(server)
        self.anonymous_audit = RateLimiter(max_keys=1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = _state(scope)
        state["server"] = self.server.name
        body = b""
        if scope["method"] == "POST":
            read = await self._read_body(scope, receive, send)
            if read is None:
                return
            body, receive = read, _replay(read, receive)
        calls = _tool_calls(body) if body else []
        if calls:
            state["mcp_method"], state["tool"] = "tools/call", calls[0][0]
        user = scope.get("user")
        principal = None
        if isinstance(user, AuthenticatedUser):
            principal = Principal(user.access_token.client_id, frozenset(user.access_token.scopes), "token")
        if "refusal" in state:
            status, reason, message = state["refusal"]
            metrics.refusal(self.server.name, reason)
            for name, arguments in calls:
                await self._audit(scope, name, principal, arguments, _TransportRefused(message), status)
            await Response(message, status_code=status)(scope, receive, send)
            return
        presented = any(k == b"authorization" for k, _ in scope["headers"])
        if principal is None and (presented or not self.config.allow_anonymous):
            metrics.refusal(self.server.name, "unauthenticated")
            reason = "invalid, expired or revoked token" if presented else "no token"
            for name, _ in calls:
                await self._audit(scope, name, None, {}, Unauthenticated(reason), 401)
            await self.require(scope, receive, send)  # the SDK's 401 with its WWW-Authenticate challenge
            return
        if principal is not None:
            for name, arguments in calls:
                policy = self.server.policies.get(name)
                missing = principal.missing(policy.scopes) if policy is not None else set()
                if missing:
                    await self._refuse_scope(scope, receive, send, principal, name, arguments, missing)
                    return
        await self.app(scope, receive, send)

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

        A caller with no valid token gets no arguments stored and shares a small audit budget, so an
        anonymous flood cannot turn into unbounded durable writes; a failed write is logged, and the
        refusal stands either way.
        """
        if principal is None:
            try:
                await self.anonymous_audit.check(("anonymous",), UNAUTHENTICATED_AUDIT_RATE)
            except RateLimited:
                return
            principal, arguments = Principal("anonymous", frozenset(), "none"), {}
        path = scope["path"]
        call = CallInfo(server=self.server.name, tool=name, principal=principal,
                        transport="sse" if ("/sse" in path or "/messages" in path) else "http",
                        request_id=_state(scope)["request_id"])
        try:
            await self.server.wait_ready(self.server.settings.acquire_timeout_s)
            policy = self.server.policies.get(name)
            record = self.pipeline._record(call, policy, arguments, "result", failure, time.perf_counter(), 0)
            record["http_status"] = status
            written = time.perf_counter()
            await self.server.audit.append(record)
            for observer in call_observers:  # counted like every other call (metrics read the same record)
                observer(record, time.perf_counter() - written)
        except Exception as exc:  # noqa: BLE001 - the refusal stands whether or not it was recorded
            log.error("could not audit a refused call (%s)", type(exc).__name__)

    async def _refuse_scope(self, scope: Scope, receive: Receive, send: Send, principal: Principal, name: str,
                            arguments: dict[str, Any], missing: set[str]) -> None:
        needed = " ".join(sorted(missing))
        metrics.refusal(self.server.name, "insufficient_scope")
        failure = PermissionDenied(f"this tool needs scope(s) {needed}")
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
