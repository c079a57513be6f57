"""The suite over HTTP: streamable HTTP and SSE, token auth, DNS-rebinding defence, health and metrics.

`mcp-suite serve NAME --transport http|sse` serves one server at the root (`/mcp` or `/sse`);
`mcp-suite serve all` serves every server at `/NAME/mcp` (streamable HTTP) and `/NAME/sse` (SSE).
`/healthz`, `/readyz` and `/metrics` sit at the root, with the RFC 9728 protected-resource metadata
of each endpoint under `/.well-known/oauth-protected-resource/...`. The layers in front of the SDK
transports (request log, Host/Origin guard, bearer auth, per-server gate) are in `shared.http.layers`.
Each server's lifespan runs once per process, held by its streamable-HTTP session manager.

`/readyz` answers `{"status": "ready"|"not_ready"}` (200/503) to anyone, and the per-server details
(database, breaker, audit, migrations) only with the metrics token, so an unauthenticated caller
learns nothing about the internals. A server counts as ready exactly when it would serve a tool
call: started, database reachable, audit log healthy (`server_ready`), and `/readyz` is ready when
every server is and no migration is pending. With no identity provider configured, the RFC 9728
metadata names no authorization server (static tokens have none); it never names this server.

`serve` binds its port before anything else starts, so a port in use is one clear line and exit
code 1, and then logs the URL of every endpoint.

Streamable HTTP is served stateless: any replica can answer any request, so replicas need no sticky
sessions; everything that must be shared (audit chain, tokens, optional rate limits) is in PostgreSQL.
SSE is connection-bound by nature (its POSTs must reach the process holding the stream).
`--workers N` runs N processes on the one port (`shared.http.workers`); each response then says
`X-Worker: i`. SSE works there too: each worker names itself in its sessions' message path, and a
message POST that reaches another worker is relayed to the owner over a private unix socket, where
every check runs once (`shared.http.relay`).
The request id stamped by `RequestLog` is the one the audit record carries: the pipeline reads it
from `request_state(...)["request_id"]` (`shared.pipeline`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.authentication import AuthenticationError
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import shared.config as suite_settings
from shared.auth.tokens import SuiteTokenVerifier, sync_env_tokens
from shared.db.migrate import MigrationError, prepare_database
from shared.http import metrics
from shared.http import workers as http_workers
from shared.http.auth import SuiteAuthBackend
from shared.http.layers import (
    HostOriginGuard,
    HttpConfig,
    RequestLog,
    ServerGate,
    configure_json_logging,
    is_loopback,
)
from shared.http.relay import SessionRelay, WorkerPeers, private_directory
from shared.server import SuiteServer

log = logging.getLogger("mcp_suite.http")


# --- the application -----------------------------------------------------------------------------------

@dataclass
class _Mounted:
    server: SuiteServer
    http_app: Starlette  # built even when only SSE is served: its lifespan holds the server's, once
    auth: AuthSettings


async def server_ready(server: SuiteServer) -> tuple[bool, dict[str, Any]]:
    """Whether this server would serve a tool call now, and the facts behind the verdict."""
    started = server.ready.is_set()
    health = await server.db.health() if started else {"ok": False, "error": "starting"}
    ready = started and bool(health.get("ok")) and server.audit.healthy
    return ready, {"ready": ready, "started": started, "database": health, "audit_healthy": server.audit.healthy}


def _metadata_routes(m: _Mounted, issuer: str | None) -> list[BaseRoute]:
    """RFC 9728 metadata; `authorization_servers` only when an identity provider is configured."""
    scopes = sorted({scope for policy in m.server.policies.values() for scope in policy.scopes})
    name = f"mcp-suite {m.server.name}"
    if issuer:
        return list(create_protected_resource_routes(
            resource_url=m.auth.resource_server_url,  # type: ignore[arg-type]
            authorization_servers=[m.auth.issuer_url], scopes_supported=scopes or None, resource_name=name,
        ))
    metadata = {"resource": str(m.auth.resource_server_url), "bearer_methods_supported": ["header"],
                "scopes_supported": scopes, "resource_name": name}

    async def handler(_request: Request) -> Response:
        return JSONResponse(metadata, headers={"Cache-Control": "public, max-age=3600"})

    path = build_resource_metadata_url(m.auth.resource_server_url).path  # type: ignore[arg-type]
    return [Route(path or "/", handler, methods=["GET", "OPTIONS"])]


def _ops_routes(mounted: list[_Mounted], config: HttpConfig, issuer: str | None,
                app_metrics: metrics.AppMetrics) -> list[BaseRoute]:
    def has_metrics_token(request: Request) -> bool:
        if not config.metrics_token:
            return False
        presented = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(presented, f"Bearer {config.metrics_token}".encode())

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    known_migrations: list[Any] = []  # read from the files once, on the first probe (off the event loop)

    async def readyz(request: Request) -> Response:
        from shared.db.migrate import load, pending

        report: dict[str, Any] = {"servers": {}}
        ok = bool(mounted)
        for m in mounted:
            ready, report["servers"][m.server.name] = await server_ready(m.server)
            ok = ok and ready
        if ok:
            try:
                if not known_migrations:
                    known_migrations.extend(await asyncio.to_thread(load))
                async with mounted[0].server.db.acquire() as conn:
                    report["pending_migrations"] = await pending(conn, migrations=known_migrations)
            except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
                report["pending_migrations"] = f"unknown ({type(exc).__name__})"
            ok = report["pending_migrations"] == []
        status = {"status": "ready" if ok else "not_ready"}
        body = {**status, **report} if has_metrics_token(request) else status
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics_endpoint(request: Request) -> Response:
        if config.metrics_token and not has_metrics_token(request):
            return JSONResponse({"error": "invalid_token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        body, content_type = app_metrics.render()
        return Response(body, media_type=content_type)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    for m in mounted:
        routes += _metadata_routes(m, issuer)
    return routes


async def _sync_env_tokens(server: SuiteServer, text: str) -> None:
    """Register `MCP_SUITE_API_TOKENS` once the database is up and migrated (retrying until it is)."""
    while True:
        try:
            await server.wait_ready(30)
            async with server.db.acquire() as conn:
                count = await sync_env_tokens(conn, text)
            log.info("registered %d token(s) from MCP_SUITE_API_TOKENS", count, extra={"event": "env_tokens"})
            return
        except ValueError as exc:
            log.error("MCP_SUITE_API_TOKENS ignored: %s", exc)
            return
        except Exception as exc:  # noqa: BLE001 - keep trying while the database is unreachable
            log.warning("could not register environment tokens yet (%s); retrying", type(exc).__name__)
            await asyncio.sleep(2.0)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _auth_unavailable(_conn: HTTPConnection, exc: AuthenticationError) -> Response:
    metrics.refusal("-", "auth_unavailable")
    return JSONResponse({"error": "temporarily_unavailable", "error_description": str(exc)}, status_code=503,
                        headers={"Retry-After": "1"})


def build_app(servers: list[SuiteServer], config: HttpConfig, verifier: SuiteTokenVerifier, *,
              peers: WorkerPeers | None = None) -> ASGIApp:
    """The whole ASGI application for these servers (not yet started: uvicorn runs its lifespan).

    `peers` (several workers) says which worker this process is: its index is answered in an
    `X-Worker` header so a client (and the tests) can tell the workers apart, its SSE sessions get
    the message path `/messages/<index>/`, and message POSTs for a sibling's sessions are relayed.
    """
    # Host/Origin are checked once, by HostOriginGuard, for every path; the SDK's copy stays off.
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    published_issuer = config.issuer_url or verifier.issuer
    issuer = published_issuer or config.public_url  # AuthSettings needs one; published only if configured
    serve_http_transport = config.mount_all or config.transport == "http"
    serve_sse = serves_sse(config)
    message_path = "/messages/" if peers is None else peers.message_path
    mounted: list[_Mounted] = []
    server_routes: list[BaseRoute] = []
    for server in servers:
        prefix = f"/{server.name}" if config.mount_all else ""
        http_sub = server.mcp.streamable_http_app(
            streamable_http_path="/mcp", stateless_http=True, json_response=config.json_response,
            max_request_body_size=config.max_body_bytes, transport_security=security,
        )
        inner: list[BaseRoute] = list(http_sub.routes) if serve_http_transport else []
        if serve_sse:
            inner += server.mcp.sse_app(sse_path="/sse", message_path=message_path, transport_security=security,
                                        max_request_body_size=config.max_body_bytes).routes
        resource = config.public_url + prefix + ("/mcp" if serve_http_transport else "/sse")
        auth = AuthSettings(issuer_url=issuer, resource_server_url=resource, validate_token_resource=False)
        mounted.append(_Mounted(server, http_sub, auth))
        server_routes.append(Mount(prefix, app=ServerGate(server, Router(routes=inner), config, auth)))

    app_metrics = metrics.AppMetrics(servers)

    @contextlib.asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        app_metrics.install()
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(verifier.close)
            for m in mounted:
                await stack.enter_async_context(m.http_app.router.lifespan_context(m.http_app))
            env_tokens = (suite_settings.load(suite_settings.AuthSettings).api_tokens or "").strip()
            if env_tokens and servers:
                sync = asyncio.create_task(_sync_env_tokens(servers[0], env_tokens), name="env-tokens")
                stack.push_async_callback(_cancel, sync)
            log.info("serving %s", ", ".join(s.name for s in servers), extra={"event": "started"})
            yield

    ops = _ops_routes(mounted, config, published_issuer, app_metrics)
    # servers first where their prefixes cannot shadow anything (fewer route checks per call)
    routes = [*server_routes, *ops] if config.mount_all else [*ops, *server_routes]
    app: ASGIApp = Router(routes=routes, lifespan=lifespan)  # no Starlette error middleware: uvicorn answers 500
    app = AuthContextMiddleware(app)
    app = AuthenticationMiddleware(app, backend=SuiteAuthBackend(verifier), on_error=_auth_unavailable)
    server_paths = tuple(f"/{s.name}/" for s in servers) if config.mount_all else ("/mcp", "/sse", "/messages/")
    app = HostOriginGuard(app, config, server_paths)
    app = RequestLog(app)
    if peers is None:
        return app
    if not peers.relays:
        return WorkerHeader(app, peers.index)
    prefixes = [f"/{s.name}" for s in servers] if config.mount_all else [""]
    return SessionRelay(WorkerHeader(app, peers.index), peers, prefixes)


def serves_sse(config: HttpConfig) -> bool:
    """`serve all` mounts both transports; one server serves the one it was asked for."""
    return config.mount_all or config.transport == "sse"


class WorkerHeader:
    """Outermost with several workers: `X-Worker: N` on every response (an index, not a process id)."""

    def __init__(self, app: ASGIApp, worker: int) -> None:
        self.app = app
        self.header = (b"x-worker", str(worker).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, tagged)


def endpoint_urls(servers: list[SuiteServer], config: HttpConfig) -> list[tuple[str, str]]:
    """(what, URL) of every endpoint `serve` answers on, for its start-up lines."""
    urls = []
    for server in servers:
        prefix = config.public_url + (f"/{server.name}" if config.mount_all else "")
        if config.mount_all or config.transport == "http":
            urls.append((f"{server.name} streamable HTTP", f"{prefix}/mcp"))
        if config.mount_all or config.transport == "sse":
            urls.append((f"{server.name} SSE", f"{prefix}/sse"))
    urls += [(what, f"{config.public_url}{path}") for what, path in
             [("health", "/healthz"), ("readiness", "/readyz"), ("metrics", "/metrics")]]
    return urls


def serve_http(args: argparse.Namespace, servers: list[SuiteServer]) -> int:
    """`mcp-suite serve NAME|all --transport http|sse`: serve `servers` until SIGINT/SIGTERM.

    The caller (the command line) chooses the servers: the core never imports `servers/`.
    """
    import uvicorn

    from shared.config import Settings
    from shared.db.embedded import resolve_database_url
    from shared.db.rate_store import SharedRateLimiter
    from shared.http.limits import ConnectionLimits, guarded_h11

    configure_json_logging()
    if len({s.name for s in servers}) != len(servers):
        log.error("cannot start: two servers share a name")
        return 2
    try:
        config = HttpConfig.from_args(args)
    except (KeyError, ImportError, AttributeError, ValueError, OSError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    workers = int(getattr(args, "workers", 1) or 1)
    if workers < 1 or (workers > 1 and not http_workers.supported()):
        log.error("cannot start: --workers must be 1 or more, and more than 1 needs Linux (SO_REUSEPORT)")
        return 2
    try:
        sock = http_workers.bind(config.host, config.port, reuse_port=workers > 1)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s; stop the process using it or choose another --port",
                  config.host, config.port, exc.strerror or exc, extra={"event": "port_unavailable"})
        return 1
    try:
        url = resolve_database_url(Settings.from_env(), keep_running=False)
        verifier = SuiteTokenVerifier.from_env(url)
    except (KeyError, ImportError, AttributeError, ValueError, OSError) as exc:
        sock.close()
        log.error("cannot start: %s", exc)
        return 2
    try:  # once, before any worker starts: each server's start would otherwise migrate again, N × M times
        asyncio.run(prepare_database(url))
    except Exception as exc:  # noqa: BLE001 - one clear line, never a traceback
        sock.close()
        log.error("cannot start: the database could not be prepared (%s)", exc if isinstance(exc, MigrationError)
                  else type(exc).__name__)
        return 2
    for server in servers:
        server.configure(server.settings, database_url=url, migrated=True)
        server.transport = config.transport
        if config.rate_store == "postgres":
            server.limiter = SharedRateLimiter(server.db)  # type: ignore[assignment]
    if not is_loopback(config.host):
        log.warning("listening on %s: put TLS in front (a reverse proxy) and set MCP_SUITE_ALLOWED_HOSTS",
                    config.host)
    if config.allow_anonymous:
        log.warning("anonymous HTTP access is ON: callers without a token act as 'anonymous' with scopes %s "
                    "(MCP_SUITE_ANONYMOUS_SCOPES)", " ".join(sorted(config.anonymous_scopes)))
    if workers > 1 and config.rate_store != "postgres":
        log.warning("with --workers %d each worker keeps its own rate limits and /metrics counts one "
                    "worker; set MCP_SUITE_RATE_LIMIT_STORE=postgres to share the limits", workers)
    for what, endpoint in endpoint_urls(servers, config):
        log.info("%s: %s", what, endpoint, extra={"event": "endpoint", "url": endpoint})

    def serve(peers: WorkerPeers | None, listeners: list[socket.socket]) -> int:
        app = build_app(servers, config, verifier, peers=peers)
        limits = ConnectionLimits(config.header_timeout_s, config.body_timeout_s, config.max_connections)
        uv = uvicorn.Config(app, host=config.host, port=config.port, log_config=None, access_log=False,
                            lifespan="on", server_header=False, timeout_graceful_shutdown=10,
                            http=guarded_h11(limits))
        uvicorn.Server(uv).run(sockets=listeners)
        return 0

    if workers == 1:
        return serve(None, [sock])
    log.info("starting %d workers on port %d", workers, config.port, extra={"event": "workers", "workers": workers})
    try:
        with private_directory() as directory:
            def serve_worker(index: int, listener: socket.socket) -> int:
                peers = WorkerPeers(directory, workers, index, relays=serves_sse(config))
                # its unix socket, only where there are SSE sessions: messages from its siblings
                return serve(peers, [listener, peers.listen()] if peers.relays else [listener])

            return http_workers.run(workers, config.host, config.port, serve_worker)
    finally:
        sock.close()
