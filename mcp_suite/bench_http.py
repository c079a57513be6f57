"""`mcp-suite bench http`: concurrent clients over streamable HTTP, bare SDK echo vs. our database tool.

Two servers run as subprocesses on loopback, both served by uvicorn with stateless streamable HTTP:
- bare: an SDK `MCPServer` whose `echo` tool returns its argument (no auth, no database), one process;
- suite: `mcp-suite serve` (token auth, gate, policy pipeline, durable audit record per call) with a
  database read tool: the profiles server's `get_profile` when it is installed, else `get_migration`
  below (one indexed row read), run with each `--workers` count in turn (`1,2`: one process, then
  two on one port). Its per-caller rate limit is raised out of the way (the limiter still runs):
  the benchmark measures the stack, not the limit. (Not the README's `database_time`: its
  `zoneinfo.available_timezones()` scans the tz database, ~15 ms of CPU per call.)

`--protocol` chooses what a client speaks: `legacy` sends `initialize` (and `notifications/initialized`)
once per connection, then `2025-11-25` requests, as the Python `Client(mode="legacy")` and the
TypeScript SDK do; `sessionless` sends `2026-07-28` self-contained requests (no handshake: the
protocol version and client capabilities ride in each request's `_meta`, the method and tool name in
`Mcp-Method`/`Mcp-Name` headers), as the Python `Client(mode="auto")` does against a server that
offers that version.

`--clients` connections each send `tools/call` requests back to back for `--seconds` per server and
worker count, in three alternating segments (bare, suite, bare, ...) so machine noise hits both
alike, after a warm-up. Besides calls/s and latency, each side's server CPU time per call is read
from /proc (the serve process and its workers), where the platform has it. The load generator is a
minimal keep-alive HTTP/1.1 client of our own (`mcp_suite.bench_client`, which says why). The last
line printed is one JSON object. `MCP_SUITE_BENCH_DEBUG=1` shows the servers' stderr.
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
from datetime import timedelta
from pathlib import Path
from typing import Any

from mcp_suite.bench_client import Request, Tally, drive, process_tree
from shared.config import BenchSettings, HttpSettings, load
from shared.policy import RETRY, Policy
from shared.resilience.limits import Rate

SEGMENTS = 3
WARMUP_S = 2.0


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


def _spawn(kind: str, port: int, env: dict[str, str], target: str = "", workers: int = 1) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "mcp_suite.bench_http", kind, str(port), target, str(workers)],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=None if load(BenchSettings).debug else subprocess.DEVNULL)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _summary(tally: Tally, seconds: float) -> dict[str, Any]:
    ordered = sorted(tally.latencies) or [0.0]
    return {"calls_per_s": round(tally.calls / seconds, 1),
            "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
            "errors": tally.errors,
            "cpu_us_per_call": round(tally.cpu_s / tally.calls * 1e6, 1) if tally.calls and tally.cpu_s else None}


async def _measure(bare: Request, suite: Request, pids: tuple[list[int], list[int]], clients: int,
                   seconds: float) -> tuple[Tally, Tally]:
    """Warm both up, then alternate bare and suite segments so machine noise hits both alike."""
    warmup = min(WARMUP_S, seconds / 3)
    await drive(bare, clients, warmup)
    await drive(suite, clients, warmup)
    bare_total, suite_total = Tally(), Tally()
    for _ in range(SEGMENTS):
        bare_total.add(await drive(bare, clients, seconds / SEGMENTS, pids[0]))
        suite_total.add(await drive(suite, clients, seconds / SEGMENTS, pids[1]))
    return bare_total, suite_total


def _run_figures(workers: int, bare: Tally, suite: Tally, seconds: float) -> dict[str, Any]:
    b, s = _summary(bare, seconds), _summary(suite, seconds)
    ratio = s["calls_per_s"] / b["calls_per_s"] if b["calls_per_s"] else 0.0
    return {
        "workers": workers, "bare_calls_per_s": b["calls_per_s"], "bare_p50_ms": b["p50_ms"],
        "bare_p99_ms": b["p99_ms"], "bare_errors": b["errors"], "bare_cpu_us_per_call": b["cpu_us_per_call"],
        "suite_calls_per_s": s["calls_per_s"], "ratio": round(ratio, 3), "suite_p50_ms": s["p50_ms"],
        "suite_p99_ms": s["p99_ms"], "suite_errors": s["errors"], "suite_cpu_us_per_call": s["cpu_us_per_call"],
        "suite_first_error": suite.first_error, "bare_first_error": bare.first_error,
        "goals_met": ratio >= 0.7 and s["p99_ms"] <= 250 and s["errors"] == 0,
    }


async def run(clients: int, seconds: float, workers: list[int] | None = None,
              protocol: str = "legacy") -> dict[str, Any]:
    from shared.config import Settings
    from shared.db.embedded import resolve_database_url

    settings = Settings.from_env()
    if not settings.database_url:
        settings = Settings(home=Path(tempfile.mkdtemp(prefix="mcp-suite-bench-")))
    url = await asyncio.to_thread(resolve_database_url, settings, keep_running=False)
    token, target, arguments = await _prepare(url)
    tool = "get_profile" if target == "profiles" else "get_migration"
    # the servers' access logs off unless the user chose a level (see docs); their settings passed on
    env = {"MCP_SUITE_LOG_LEVEL": "WARNING", **os.environ, "DATABASE_URL": url, "MCP_SUITE_TOKEN_CACHE_S": "1"}
    bare_port = _free_port()
    bare_proc = _spawn("_bare", bare_port, env)
    bare = Request(bare_port, "echo", {"text": "hello"}, None, protocol)
    runs = []
    try:
        await asyncio.to_thread(_wait_http, bare_port, "/mcp-ready", bare_proc)
        for count in workers or [1]:
            suite_port = _free_port()
            suite_proc = _spawn("_suite", suite_port, env, target, count)
            try:
                await asyncio.to_thread(_wait_http, suite_port, "/readyz", suite_proc)
                suite = Request(suite_port, tool, arguments, token, protocol)
                pids = ([bare_proc.pid], process_tree(suite_proc.pid))
                bare_tally, suite_tally = await _measure(bare, suite, pids, clients, seconds)
            finally:
                _stop([suite_proc])
            runs.append(_run_figures(count, bare_tally, suite_tally, seconds))
    finally:
        _stop([bare_proc])
    return {"clients": clients, "seconds": seconds, "protocol": protocol, "suite_tool": f"{target}.{tool}",
            "cpus": os.cpu_count(), "runs": runs, "goals_met": any(r["goals_met"] for r in runs)}


def main(args: argparse.Namespace) -> int:
    figures = asyncio.run(run(int(args.clients), float(args.seconds), args.workers, args.protocol))
    if not args.json:
        print(f"{figures['clients']} clients, {figures['protocol']} protocol, suite tool {figures['suite_tool']}")
        for r in figures["runs"]:
            print(f"workers {r['workers']}: bare {r['bare_calls_per_s']:8.1f} calls/s (p99 {r['bare_p99_ms']} ms, "
                  f"{r['bare_cpu_us_per_call']} us CPU/call)  suite {r['suite_calls_per_s']:8.1f} calls/s "
                  f"(p50 {r['suite_p50_ms']} ms, p99 {r['suite_p99_ms']} ms, {r['suite_cpu_us_per_call']} us "
                  f"CPU/call, errors {r['suite_errors']})  ratio {r['ratio']:.3f}")
        print("goals: ratio >= 0.7, suite p99 <= 250 ms, 0 errors")
    print(json.dumps(figures))
    errors = sum(r["suite_errors"] + r["bare_errors"] for r in figures["runs"])
    return 0 if errors == 0 else 1


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

    app = server.streamable_http_app(stateless_http=True, json_response=load(HttpSettings).json_response)
    app.router.routes.append(Route("/mcp-ready", lambda _r: PlainTextResponse("ok")))
    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                  server_header=False)).run()


def _bench_app() -> Any:
    from shared.server import SuiteServer

    app = SuiteServer("bench", instructions="Benchmark target.")

    @app.tool(Policy(scopes={"bench:read"}, read_only=True, timeout=5.0, rate=Rate(1e9, per=1.0), retry=RETRY))
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


def _serve_suite(port: int, target: str, workers: int) -> None:
    import dataclasses

    from mcp_suite.registry import load_servers
    from shared.http.app import serve_http

    name, tool = ("servers.profiles.tools:app", "get_profile") if target == "profiles" else \
        ("mcp_suite.bench_http:bench_app", "get_migration")
    app = load_servers(name)[0]
    app.policies[tool] = dataclasses.replace(app.policies[tool], rate=Rate(1e9, per=1.0))
    serve_http(argparse.Namespace(name=name, transport="http", host="127.0.0.1", port=port, allow_anonymous=False,
                                  workers=workers), [app])


if __name__ == "__main__":
    if sys.argv[1] == "_bare":
        _serve_bare(int(sys.argv[2]))
    else:
        _serve_suite(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
