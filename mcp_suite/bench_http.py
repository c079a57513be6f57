"""`mcp-suite bench http`: concurrent clients over streamable HTTP, bare SDK echo vs. our database tool.

Two servers run as subprocesses on loopback, both served by uvicorn with stateless streamable HTTP:
- bare: an SDK `MCPServer` whose `echo` tool returns its argument (no auth, no database);
- suite: `mcp-suite serve` (token auth, gate, policy pipeline, durable audit record per call) with a
  database read tool: the profiles server's `get_profile` when it is installed, else `get_migration`
  below (one indexed row read). Its per-caller rate limit is raised out of the way (the limiter still
  runs): the benchmark measures the stack, not the limit. (Not the README's `database_time`: its
  `zoneinfo.available_timezones()` scans the tz database, ~15 ms of CPU per call.)

`--clients` connections each send `tools/call` requests back to back for `--seconds` per server,
in three alternating segments (bare, suite, bare, ...) so machine noise hits both alike, after a
warm-up. The load generator is a minimal keep-alive HTTP/1.1 client written here because on a
2-core machine a full HTTP client library costs as much CPU per request as the servers it measures.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from shared.resilience.limits import Rate

PROTOCOL_VERSION = "2025-11-25"
SEGMENTS = 3
WARMUP_S = 2.0


@dataclass
class Tally:
    calls: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    first_error: str | None = None


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs a fixed body and reads one response at a time."""

    def __init__(self, port: int, path: str, body: bytes, token: str | None) -> None:
        auth = f"authorization: Bearer {token}\r\n" if token else ""
        self.request = (
            f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
            f"accept: application/json, text/event-stream\r\nmcp-protocol-version: {PROTOCOL_VERSION}\r\n"
            f"{auth}content-length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        else:  # chunked (an SSE response stream)
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size + 2))
            body = b"".join(p[:-2] for p in parts)
        if headers.get("connection", "").lower() == "close":
            self.writer.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _client(conn: Connection, until: float, tally: Tally) -> None:
    while time.perf_counter() < until:
        started = time.perf_counter()
        try:
            status, body = await conn.call()
            ok = status == 200 and b'"isError":false' in body
            detail = f"HTTP {status}: {body[:200]!r}"
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            ok, detail = False, type(exc).__name__
            conn.close()
            conn.writer = None
        tally.calls += 1
        tally.latencies.append(time.perf_counter() - started)
        if not ok:
            tally.errors += 1
            tally.first_error = tally.first_error or detail


async def _drive(port: int, path: str, body: bytes, token: str | None, clients: int, seconds: float) -> Tally:
    tally = Tally()
    conns = [Connection(port, path, body, token) for _ in range(clients)]
    until = time.perf_counter() + seconds
    await asyncio.gather(*(_client(c, until, tally) for c in conns))
    for conn in conns:
        conn.close()
    return tally


def _wait_http(port: int, path: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"benchmark server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("benchmark server did not become ready")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _prepare(url: str) -> tuple[str, str, dict[str, Any]]:
    """Migrate, create the bench token, pick the target tool and its arguments."""
    import asyncpg

    from shared.auth import tokens
    from shared.db.migrate import prepare_database

    await prepare_database(url)
    conn = await asyncpg.connect(url)
    try:
        principal, scopes, target, arguments = "bench", "bench:read", "bench", {"version": 1}
        if _profiles_available():
            from servers.profiles.demo import load_demo

            await load_demo(conn, count=200, seed=42)
            # a demo user reading its own profile: the owner-only rule lets it see that one
            principal, scopes, target, arguments = "demo-user-0001", "profiles:read", "profiles", {}
        secret, _ = await tokens.create_token(conn, principal=principal, scopes=scopes, expires_in=timedelta(days=1),
                                              label="bench http")
    finally:
        await conn.close()
    return secret, target, arguments


def _profiles_available() -> bool:
    try:
        from servers.profiles.tools import app
    except ImportError:
        return False
    return "get_profile" in app.policies


def _spawn(kind: str, port: int, env: dict[str, str], target: str = "") -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "mcp_suite.bench_http", kind, str(port), target], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                            if os.environ.get("MCP_SUITE_BENCH_DEBUG") else subprocess.DEVNULL)


def _summary(tally: Tally, seconds: float) -> dict[str, float]:
    ordered = sorted(tally.latencies) or [0.0]
    return {"calls_per_s": tally.calls / seconds, "p50_ms": statistics.median(ordered) * 1000,
            "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000}


async def run(clients: int, seconds: float) -> dict[str, Any]:
    from shared.config import Settings
    from shared.db.embedded import resolve_database_url

    settings = Settings.from_env()
    if not settings.database_url:
        settings = Settings(home=Path(tempfile.mkdtemp(prefix="mcp-suite-bench-")))
    url = await asyncio.to_thread(resolve_database_url, settings, keep_running=False)
    token, target, arguments = await _prepare(url)
    tool = "get_profile" if target == "profiles" else "get_migration"
    env = {**os.environ, "DATABASE_URL": url, "MCP_SUITE_TOKEN_CACHE_S": "1",
           "MCP_SUITE_LOG_LEVEL": os.environ.get("MCP_SUITE_LOG_LEVEL", "WARNING")}  # access logs: see docs
    bare_port, suite_port = _free_port(), _free_port()
    procs = [_spawn("_bare", bare_port, env), _spawn("_suite", suite_port, env, target)]
    try:
        await asyncio.to_thread(_wait_http, bare_port, "/mcp-ready", procs[0])
        await asyncio.to_thread(_wait_http, suite_port, "/readyz", procs[1])
        bare_body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                "params": {"name": "echo", "arguments": {"text": "hello"}}}).encode()
        suite_body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                 "params": {"name": tool, "arguments": arguments}}).encode()
        bare_args = (bare_port, "/mcp", bare_body, None, clients)
        suite_args = (suite_port, "/mcp", suite_body, token, clients)
        warmup = min(WARMUP_S, seconds / 3)
        await _drive(*bare_args, warmup)
        await _drive(*suite_args, warmup)
        bare, suite = Tally(), Tally()
        for _ in range(SEGMENTS):
            for args, total in ((bare_args, bare), (suite_args, suite)):
                part = await _drive(*args, seconds / SEGMENTS)
                total.calls += part.calls
                total.errors += part.errors
                total.latencies += part.latencies
                total.first_error = total.first_error or part.first_error
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    b, s = _summary(bare, seconds), _summary(suite, seconds)
    ratio = s["calls_per_s"] / b["calls_per_s"] if b["calls_per_s"] else 0.0
    return {
        "clients": clients, "seconds": seconds, "suite_tool": f"{target}.{tool}",
        "bare_calls_per_s": round(b["calls_per_s"], 1), "bare_p50_ms": round(b["p50_ms"], 2),
        "bare_p99_ms": round(b["p99_ms"], 2), "bare_errors": bare.errors,
        "suite_calls_per_s": round(s["calls_per_s"], 1), "ratio": round(ratio, 3),
        "suite_p50_ms": round(s["p50_ms"], 2), "suite_p99_ms": round(s["p99_ms"], 2), "suite_errors": suite.errors,
        "suite_first_error": suite.first_error,
        "goals_met": ratio >= 0.7 and s["p99_ms"] <= 250 and suite.errors == 0,
    }


def main(args: argparse.Namespace) -> int:
    figures = asyncio.run(run(int(args.clients), float(args.seconds)))
    if not args.json:
        print(f"bare SDK echo     : {figures['bare_calls_per_s']:8.1f} calls/s  p50 {figures['bare_p50_ms']} ms"
              f"  p99 {figures['bare_p99_ms']} ms  errors {figures['bare_errors']}")
        print(f"suite {figures['suite_tool']:<12}: {figures['suite_calls_per_s']:8.1f} calls/s"
              f"  p50 {figures['suite_p50_ms']} ms  p99 {figures['suite_p99_ms']} ms  errors {figures['suite_errors']}")
        print(f"ratio             : {figures['ratio']:.3f} (goal >= 0.7, p99 <= 250 ms, 0 errors)")
    print(json.dumps(figures))
    return 0 if figures["suite_errors"] == 0 and figures["bare_errors"] == 0 else 1


def _serve_bare(port: int) -> None:
    import uvicorn
    from mcp.server.mcpserver import MCPServer
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    server = MCPServer("bench-bare", log_level="WARNING")

    @server.tool()
    async def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    json_response = os.environ.get("MCP_SUITE_JSON_RESPONSE", "0").lower() in ("1", "true", "yes")
    app = server.streamable_http_app(stateless_http=True, json_response=json_response)
    app.router.routes.append(Route("/mcp-ready", lambda _r: PlainTextResponse("ok")))
    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                  server_header=False)).run()


def _bench_app() -> Any:
    from shared.server import SuiteServer

    app = SuiteServer("bench", instructions="Benchmark target.")

    @app.tool(scopes={"bench:read"}, read_only=True, timeout=5.0, rate=Rate(1e9, per=1.0))
    async def get_migration(version: int) -> dict[str, str]:
        """One applied migration, by version (an indexed single-row read)."""
        async with app.db.acquire() as conn:
            row = await conn.fetchrow("SELECT name, applied_at::text AS at FROM schema_migrations WHERE version = $1",
                                      version)
        return {"name": row["name"], "applied_at": row["at"]} if row else {}

    return app


_BENCH_APP: Any = None


def __getattr__(name: str) -> Any:
    """`mcp_suite.bench_http:bench_app` for `serve`, built on first use only."""
    global _BENCH_APP
    if name == "bench_app":
        if _BENCH_APP is None:
            _BENCH_APP = _bench_app()
        return _BENCH_APP
    raise AttributeError(name)


def _serve_suite(port: int, target: str) -> None:
    import dataclasses

    from mcp_suite.registry import load_servers
    from shared.http.app import serve_http

    name, tool = ("servers.profiles.tools:app", "get_profile") if target == "profiles" else \
        ("mcp_suite.bench_http:bench_app", "get_migration")
    app = load_servers(name)[0]
    app.policies[tool] = dataclasses.replace(app.policies[tool], rate=Rate(1e9, per=1.0))
    serve_http(argparse.Namespace(name=name, transport="http", host="127.0.0.1", port=port, allow_anonymous=False),
               [app])


if __name__ == "__main__":
    if sys.argv[1] == "_bare":
        _serve_bare(int(sys.argv[2]))
    else:
        _serve_suite(int(sys.argv[2]), sys.argv[3])
