"""`mcp-suite bench overhead`: what the policy stack and durable audit cost per call.

Two stdio servers with the same echo tool run as subprocesses: a bare SDK `MCPServer`, and a
`SuiteServer` with the full stack (identity, scopes, rate limit, deadline, retry, durable hash-chained
audit record committed before each response). One client session each, sequential calls; the rounds
alternate bare/suite so machine noise hits both alike. Prints calls/s and the ratio.

In-process figures (one more subprocess, `inprocess`: the same two servers behind the SDK's
in-memory transport, no pipes):
- `suite_python_us_per_call`: the suite's own layers per call (identity, scopes, rate limit, audit
  records and result shaping), timed around the pipeline minus its call into the SDK and minus the
  audit's durable round trip (`_instrument`);
- `suite_extra_cpu_us_per_call`: the whole process's user CPU per call, suite minus bare
  (`getrusage`: the database's own work and the kernel's socket work are not counted; the SDK's
  validation, the tool layers and the audit writer's encoding, hashing and driver work are). Noisy on
  a shared machine; the first figure is the one the goal (≤ 100 µs) is about;
- `audit_commit_us`: the median wall time of one `AuditLog.append` (the durable commit of the
  call's record: round trip, `audit_append`, WAL flush), and from it `durable_ceiling_ratio`, the
  ratio the stdio run could reach if every suite layer cost nothing but that commit. A sequential
  client cannot share a commit with other calls, so this is the ratio's ceiling on this machine.
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

from shared.config import Settings, load


def bare_server():
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bench-bare", log_level="WARNING")

    @server.tool()
    async def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    return server


def suite_server():
    from shared.policy import RETRY, Policy, timeout
    from shared.server import SuiteServer

    app = SuiteServer("bench")

    @app.tool(Policy(scopes={"bench:read"}, read_only=True, rate="1000000/s", retry=RETRY) | timeout(5.0))
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


async def _cpu_per_call(server, calls: int) -> float:
    """Process CPU seconds per sequential echo call through the in-memory transport."""
    from mcp.client import Client

    async with Client(server) as client:
        for _ in range(50):
            result = await client.call_tool("echo", {"text": "warm"})
            if result.is_error:
                raise RuntimeError(f"echo failed: {result.content[0].text}")
        started = _user_cpu()
        for i in range(calls):
            await client.call_tool("echo", {"text": f"hello {i}"})
        return (_user_cpu() - started) / calls


def _user_cpu() -> float:
    """This process's CPU seconds in user space: Python's work, without the kernel's socket sends."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


class _Stopwatch:
    """CPU time (this thread) inside the pipeline, and the part spent below it (SDK + tool) or on the audit."""

    def __init__(self) -> None:
        self.total = self.below = 0.0
        self.calls = 0
        self.appends: list[float] = []  # wall seconds of each durable audit append


def _instrument() -> _Stopwatch:
    """Time the suite's layers from outside (this benchmark's process only; the product is untouched):
    the whole `ToolCallPipeline.__call__` of each `tools/call`, minus its call into the SDK (argument
    validation, the tool layers, the body) and minus every `AuditLog.append` (the durable round trip)."""
    from shared.audit.log import AuditLog
    from shared.pipeline import ToolCallPipeline

    watch = _Stopwatch()
    call_pipeline, append = ToolCallPipeline.__call__, AuditLog.append

    async def timed_call(self, ctx, call_next):  # noqa: ANN001, ANN202
        if ctx.method != "tools/call":
            return await call_pipeline(self, ctx, call_next)

        async def timed_next(inner):  # noqa: ANN001, ANN202
            started = time.thread_time()
            try:
                return await call_next(inner)
            finally:
                watch.below += time.thread_time() - started

        started = time.thread_time()
        try:
            return await call_pipeline(self, ctx, timed_next)
        finally:
            watch.total += time.thread_time() - started
            watch.calls += 1

    async def timed_append(self, record):  # noqa: ANN001, ANN202
        started, wall = time.thread_time(), time.perf_counter()
        try:
            return await append(self, record)
        finally:
            watch.below += time.thread_time() - started
            watch.appends.append(time.perf_counter() - wall)

    ToolCallPipeline.__call__ = timed_call  # type: ignore[method-assign]
    AuditLog.append = timed_append  # type: ignore[method-assign]
    return watch


async def in_process(calls: int, rounds: int) -> dict[str, float]:
    watch = _instrument()
    bare, app = bare_server(), suite_server()
    bare_cpu: list[float] = []
    suite_cpu: list[float] = []
    layers: list[float] = []
    commits: list[float] = []
    from shared.identity import Principal

    inside = Principal("bench-inprocess", frozenset({"bench:read"}), "config")  # its records apart from the stdio runs'
    for _ in range(rounds):
        bare_cpu.append(await _cpu_per_call(bare, calls))
        watch.total = watch.below = 0.0
        watch.calls = 0
        watch.appends.clear()
        with app.acting_as(inside):
            suite_cpu.append(await _cpu_per_call(app.mcp, calls))
        layers.append((watch.total - watch.below) / watch.calls)
        commits.append(statistics.median(watch.appends))
    bare_us, suite_us = statistics.median(bare_cpu) * 1e6, statistics.median(suite_cpu) * 1e6
    return {"suite_python_us_per_call": round(statistics.median(layers) * 1e6, 1),
            "bare_cpu_us_per_call": round(bare_us, 1), "suite_cpu_us_per_call": round(suite_us, 1),
            "suite_extra_cpu_us_per_call": round(suite_us - bare_us, 1),
            "audit_commit_us": round(statistics.median(commits) * 1e6, 1)}


async def _measure_in_process(calls: int, rounds: int, env: dict[str, str]) -> dict[str, float]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcp_suite.bench_overhead", "inprocess", str(calls), str(rounds), env=env,
        stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError("the in-process measurement failed (see its log above)")
    return json.loads(out.decode().strip().splitlines()[-1])


async def run(calls: int, rounds: int = 3) -> dict[str, float]:
    env = {**os.environ, "MCP_SUITE_SCOPES": "bench:read", "MCP_SUITE_PRINCIPAL": "bench"}
    scratch = None if load(Settings).database_url else tempfile.mkdtemp(prefix="mcp-suite-bench-")
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
        cpu = await _measure_in_process(calls, rounds, env)
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
        **cpu,
        "durable_ceiling_ratio": round((1 / bare_rate) / (1 / bare_rate + cpu["audit_commit_us"] / 1e6), 3),
    }


def main(*, calls: int = 2000, as_json: bool = False, rounds: int = 3) -> int:
    figures = asyncio.run(run(calls, rounds))
    if not as_json:
        print(f"bare SDK echo : {figures['bare_calls_per_s']:8.1f} calls/s")
        print(f"suite echo    : {figures['suite_calls_per_s']:8.1f} calls/s (full policy stack + durable audit)")
        print(f"ratio         : {figures['ratio']:.3f}")
        print(f"suite start   : {figures['suite_initialize_s']:.3f} s from spawn to initialize answer")
        print(f"suite layers  : {figures['suite_python_us_per_call']:8.1f} µs per call, in-process (without the "
              "SDK, the tool and the audit's round trip)")
        print(f"suite CPU     : {figures['suite_extra_cpu_us_per_call']:8.1f} µs more user CPU per call than bare, "
              "in-process")
        print(f"audit commit  : {figures['audit_commit_us']:8.1f} µs per durable record, in-process; ratio ceiling "
              f"with it alone: {figures['durable_ceiling_ratio']:.3f}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    import logging

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    if sys.argv[1] == "bare":
        bare_server().run("stdio")
    elif sys.argv[1] == "inprocess":
        print(json.dumps(asyncio.run(in_process(int(sys.argv[2]), int(sys.argv[3])))))
    else:
        sys.exit(suite_server().run())
