"""The tool-call audit log: one durable, hash-chained record per call, written with group commit.

Rules it enforces (ops rely on them):
- a call's response leaves only after its record is committed (`append` returns after COMMIT);
- a destructive tool's intent is recorded before it runs (the pipeline calls `append` twice);
- if the audit store cannot write, the call is refused rather than run unrecorded.

Group commit: records from concurrent calls queue up while a batch is being written, and the next
batch takes them all in one round trip (`SELECT audit_append($1)`), so the per-call cost of durability
falls as load rises. The writer holds one dedicated connection so an exhausted pool never blocks audit.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from typing import Any

import asyncpg

from shared.audit_chain import FORMAT_VERSION, arguments_digest, canonical
from shared.errors import Unavailable

log = logging.getLogger(__name__)

MAX_BATCH = 512
MAX_PENDING = 10_000


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def redact(arguments: dict[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    return {k: ("[redacted]" if k in fields else v) for k, v in arguments.items()}


class AuditLog:
    """Durable, ordered, tamper-evident call records for one process."""

    def __init__(self, url: str, *, key: bytes | None = None, command_timeout: float = 5.0) -> None:
        self.url = url
        self.command_timeout = command_timeout
        self._key = key
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[int]]] = asyncio.Queue(MAX_PENDING)
        self._conn: asyncpg.Connection | None = None
        self._writer: asyncio.Task[None] | None = None
        self.healthy = False
        self.last_write_ms = 0.0
        self.writes = 0

    @property
    def key(self) -> bytes:
        if self._key is None:
            raise Unavailable("the audit log is not ready; the call was refused", retry_after=1.0)
        return self._key

    async def start(self) -> None:
        self._conn = await asyncpg.connect(self.url, command_timeout=self.command_timeout)
        if self._key is None:
            self._key = await _load_or_create_key(self._conn)
        self.healthy = True
        self._writer = asyncio.create_task(self._write_forever(), name="audit-writer")

    async def close(self) -> None:
        if self._writer is not None:
            await self._drain()
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()
        self.healthy = False

    def record(self, **fields: Any) -> dict[str, Any]:
        """A record with the fields every entry carries."""
        return {"v": FORMAT_VERSION, "ts": utc_now_iso(), **fields}

    def digest(self, arguments: dict[str, Any]) -> str:
        return arguments_digest(self.key, arguments)

    async def append(self, record: dict[str, Any]) -> int:
        """Queue a record and wait until it is committed; returns its sequence number."""
        if self._writer is None or self._writer.done():
            raise Unavailable("the audit log is unavailable, so the call was refused", retry_after=1.0)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((canonical(record), future))
        except asyncio.QueueFull:
            raise Unavailable("the audit log is overloaded, so the call was refused", retry_after=1.0) from None
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while not self._queue.empty() and self._writer is not None and not self._writer.done():
            await asyncio.sleep(0.005)

    async def _write_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            bodies = [body for body, _ in batch]
            started = loop.time()
            try:
                last_seq = await self._write(bodies)
            except Exception as exc:  # noqa: BLE001 - every waiter must learn the write failed
                self.healthy = False
                log.error("audit write failed (%s); refusing the affected calls", type(exc).__name__)
                failure = Unavailable("the audit log could not record the call, so its result was withheld",
                                      retry_after=1.0)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(failure)
                continue
            self.healthy = True
            self.writes += 1
            self.last_write_ms = (loop.time() - started) * 1000
            first = last_seq - len(batch) + 1
            for offset, (_, future) in enumerate(batch):
                if not future.done():
                    future.set_result(first + offset)

    async def _write(self, bodies: list[str]) -> int:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self.url, command_timeout=self.command_timeout)
        return await self._conn.fetchval("SELECT audit_append($1::text[])", bodies)


async def _load_or_create_key(conn: asyncpg.Connection) -> bytes:
    configured = os.environ.get("MCP_SUITE_AUDIT_KEY")
    if configured:
        return configured.encode()
    await conn.execute(
        "INSERT INTO audit_secret (id, key) VALUES (true, $1) ON CONFLICT (id) DO NOTHING", os.urandom(32)
    )
    return bytes(await conn.fetchval("SELECT key FROM audit_secret WHERE id"))
