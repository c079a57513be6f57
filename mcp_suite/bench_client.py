"""The load generator of `mcp-suite bench http`: keep-alive HTTP/1.1 clients sending `tools/call`.

A minimal client written here because on a 2-core machine a full HTTP client library costs as much
CPU per request as the servers it measures. `Request` is what a client sends (for `legacy`, the
`initialize` handshake it opens each connection with; for `sessionless`, `2026-07-28` requests whose
`_meta` and `Mcp-Method`/`Mcp-Name` headers carry what the handshake would); `drive` runs N clients
back to back for a while and returns a `Tally` (calls, errors, latencies, and the server processes'
CPU time, read from /proc where the platform has it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LEGACY_VERSION = "2025-11-25"
SESSIONLESS_VERSION = "2026-07-28"


@dataclass
class Tally:
    calls: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    first_error: str | None = None
    cpu_s: float = 0.0

    def add(self, other: Tally) -> None:
        self.calls += other.calls
        self.errors += other.errors
        self.latencies += other.latencies
        self.first_error = self.first_error or other.first_error
        self.cpu_s += other.cpu_s


@dataclass(frozen=True)
class Request:
    """What one client sends: the tool call, and for `legacy` the handshake it opens each connection with."""

    port: int
    tool: str
    arguments: dict[str, Any]
    token: str | None
    protocol: str

    def call(self) -> bytes:
        params: dict[str, Any] = {"name": self.tool, "arguments": self.arguments}
        extra = ""
        if self.protocol == "sessionless":
            params["_meta"] = {"io.modelcontextprotocol/protocolVersion": SESSIONLESS_VERSION,
                               "io.modelcontextprotocol/clientCapabilities": {},
                               "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"}}
            extra = f"mcp-method: tools/call\r\nmcp-name: {self.tool}\r\n"
        return self._post({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}, extra)

    def handshake(self) -> list[bytes]:
        if self.protocol != "legacy":
            return []
        initialize = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                      "params": {"protocolVersion": LEGACY_VERSION, "capabilities": {},
                                 "clientInfo": {"name": "bench", "version": "1"}}}
        return [self._post(initialize), self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})]

    def _post(self, message: dict[str, Any], extra: str = "") -> bytes:
        body = json.dumps(message).encode()
        version = SESSIONLESS_VERSION if self.protocol == "sessionless" else LEGACY_VERSION
        auth = f"authorization: Bearer {self.token}\r\n" if self.token else ""
        return (
            f"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:{self.port}\r\ncontent-type: application/json\r\n"
            f"accept: application/json, text/event-stream\r\nmcp-protocol-version: {version}\r\n"
            f"{extra}{auth}content-length: {len(body)}\r\n\r\n"
        ).encode() + body


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs a fixed body and reads one response at a time."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.body = request.call()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.request.port)
            for message in self.request.handshake():
                status, body = await self._exchange(message)
                if status not in (200, 202):
                    return status, body
        return await self._exchange(self.body)

    async def _exchange(self, message: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(message)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":  # an SSE response stream
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size + 2))
            body = b"".join(p[:-2] for p in parts)
        else:
            body = b""
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


async def drive(request: Request, clients: int, seconds: float, pids: list[int] | None = None) -> Tally:
    tally = Tally()
    conns = [Connection(request) for _ in range(clients)]
    cpu_before = _cpu_seconds(pids or [])
    until = time.perf_counter() + seconds
    await asyncio.gather(*(_client(c, until, tally) for c in conns))
    tally.cpu_s = _cpu_seconds(pids or []) - cpu_before
    for conn in conns:
        conn.close()
    return tally


def process_tree(pid: int) -> list[int]:
    """The process and its children (the workers of `serve --workers N`), read from /proc."""
    found = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (0 where /proc is not there)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
