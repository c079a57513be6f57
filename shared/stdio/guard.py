"""The stdio transport with a guard in front of the SDK's line reader: every line gets an answer.

The SDK's stdio reader hands a line it cannot parse to the session as an exception, and nothing
replies, so the client waits for its own timeout. Here each line is first checked by
`jsonrpc_guard.check`; a bad one is answered with its JSON-RPC error on stdout and dropped, and the
server keeps serving. Good lines reach the SDK's reader unchanged.

Replies from the guard and from the SDK share one lock, so a line is never torn by another.
Like the SDK's own `stdio_server()`, the wire is moved to private descriptors while serving and
fd 0 / fd 1 point at the null device / stderr, so a stray `print` or a child process cannot corrupt
the protocol; both are restored on exit.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server

from shared.jsonrpc_guard import check, encode


class LockedWriter:
    """The SDK's `stdout` (write, flush) and the guard's replies, one complete line at a time."""

    def __init__(self, stream: io.TextIOBase) -> None:
        self._file = anyio.wrap_file(stream)
        self._lock = anyio.Lock()

    async def write(self, text: str) -> None:
        async with self._lock:
            await self._file.write(text)

    async def flush(self) -> None:
        async with self._lock:
            await self._file.flush()

    async def reply(self, line: str) -> None:
        async with self._lock:
            await self._file.write(line + "\n")
            await self._file.flush()


class GuardedLines:
    """The lines of stdin the SDK can parse; the others are answered here and dropped."""

    def __init__(self, stream: io.TextIOBase, out: LockedWriter) -> None:
        self._lines = anyio.wrap_file(stream)
        self._out = out

    async def __aiter__(self) -> AsyncIterator[str]:
        async for line in self._lines:
            if not line.strip():
                continue
            checked = check(line)
            if checked.error is not None:
                await self._out.reply(encode(checked.error))
                continue
            yield line


@contextlib.contextmanager
def _wire(fd: int, mode: str, divert: int) -> Iterator[Any]:
    """A private duplicate of `fd` for the protocol; `fd` itself points at `divert` until exit.

    The duplicate is never closed: a worker thread may still be blocked reading it after the
    transport exits (the SDK keeps its own open for the same reason).
    """
    private = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.dup2(divert, fd)
    try:
        yield os.fdopen(private, mode, closefd=False)
    finally:
        os.dup2(private, fd)


@contextlib.asynccontextmanager
async def guarded_stdio() -> AsyncIterator[tuple[Any, Any]]:
    """`stdio_server()`'s (read, write) streams, with the guard in front of the reader."""
    with contextlib.ExitStack() as stack:
        null = os.open(os.devnull, os.O_RDONLY)
        stack.callback(os.close, null)
        raw_in = stack.enter_context(_wire(0, "rb", null))
        raw_out = stack.enter_context(_wire(1, "wb", sys.stderr.fileno()))
        text_in = io.TextIOWrapper(raw_in, encoding="utf-8", errors="replace")
        text_out = io.TextIOWrapper(raw_out, encoding="utf-8")
        out = LockedWriter(text_out)
        async with stdio_server(stdin=GuardedLines(text_in, out), stdout=out) as streams:  # type: ignore[arg-type]
            yield streams
        with contextlib.suppress(ValueError, OSError):
            text_out.flush()


def lowlevel_server(mcp: MCPServer) -> Server[Any]:
    """The low-level `Server` inside `mcp`: the suite's one use of a private attribute of the SDK.

    Why: serving over our own (guarded) streams needs the low-level `Server.run(read, write,
    options)`, and `MCPServer` keeps that server private: its public `run_stdio_async` always reads
    the real stdin (it reaches `_lowlevel_server` itself, as does the SDK's in-memory client, whose
    comment says it should become public). `tests/test_layout.py` allows this function, and nothing
    else, to read it; when the SDK exposes it, only this line changes.
    """
    return mcp._lowlevel_server


async def run_stdio(mcp: MCPServer) -> None:
    """Serve `mcp` over the guarded stdio transport until stdin closes (as `run_stdio_async` would)."""
    server = lowlevel_server(mcp)
    async with guarded_stdio() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
