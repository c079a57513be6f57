"""`mcp-suite bench overhead`: what the policy stack and durable audit cost per call.

Two stdio servers with the same echo tool run as subprocesses: a bare SDK `MCPServer`, and a
`SuiteServer` with the full stack (identity, scopes, rate limit, deadline, retry, durable hash-chained
audit record committed before each response). One client session each, sequential calls; the rounds
alternate bare/suite so machine noise hits both alike. Prints calls/s and the ratio.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

ECHO_DOC = "Return the text unchanged."


def bare_server():
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bench-bare", log_level="WARNING")

    @server.tool()
    async def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    return server


def suite_server():
    from shared.resilience.limits import Rate
    from shared.server import SuiteServer

    app = SuiteServer("bench")

    @app.tool(scopes={"bench:read"}, read_only=True, timeout=5.0, rate=Rate(1_000_000, per=1.0))
    async def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    return app


async def _measure(kind: str, calls: int, env: dict[str, str]) -> tuple[float, float]:
    """(calls per second, seconds from process start to the initialize answer)."""
    from mcp.client import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_suite.bench_overhead", kind], env=env)
    spawned = time.perf_counter()
    async with Client(params) as client:
        initialized = time.perf_counter() - spawned
        for _ in range(50):  # warm up: imports, pool, audit writer
            result = await client.call_tool("echo", {"text": "warm"})
            if result.is_error:
                raise RuntimeError(f"{kind} echo failed: {result.content[0].text}")
        started = time.perf_counter()
        for i in range(calls):
            await client.call_tool("echo", {"text": f"hello {i}"})
        return calls / (time.perf_counter() - started), initialized


async def run(calls: int, rounds: int = 3) -> dict[str, float]:
    env = {**os.environ, "MCP_SUITE_SCOPES": "bench:read", "MCP_SUITE_PRINCIPAL": "bench"}
    scratch = None if env.get("DATABASE_URL") else tempfile.mkdtemp(prefix="mcp-suite-bench-")
    if scratch:
        env["MCP_SUITE_HOME"] = scratch  # a throwaway embedded database, not the user's audit log
    bare: list[float] = []
    suite: list[float] = []
    starts: list[float] = []
    try:
        for _ in range(rounds):
            bare.append((await _measure("bare", calls, env))[0])
            rate, initialized = await _measure("suite", calls, env)
            suite.append(rate)
            starts.append(initialized)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    bare_rate, suite_rate = statistics.median(bare), statistics.median(suite)
    return {
        "calls_per_round": calls,
        "rounds": rounds,
        "bare_calls_per_s": round(bare_rate, 1),
        "suite_calls_per_s": round(suite_rate, 1),
        "ratio": round(suite_rate / bare_rate, 3),
        "bare_rounds": [round(x, 1) for x in bare],
        "suite_rounds": [round(x, 1) for x in suite],
        "suite_initialize_s": round(statistics.median(starts), 3),
    }


def main(*, calls: int = 2000, as_json: bool = False, rounds: int = 3) -> int:
    figures = asyncio.run(run(calls, rounds))
    if not as_json:
        print(f"bare SDK echo : {figures['bare_calls_per_s']:8.1f} calls/s")
        print(f"suite echo    : {figures['suite_calls_per_s']:8.1f} calls/s (full policy stack + durable audit)")
        print(f"ratio         : {figures['ratio']:.3f}")
        print(f"suite start   : {figures['suite_initialize_s']:.3f} s from spawn to initialize answer")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    import logging

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    if sys.argv[1] == "bare":
        bare_server().run("stdio")
    else:
        sys.exit(suite_server().run())
