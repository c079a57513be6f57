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
import time
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


class AuditLog:
    """Durable, ordered, tamper-evident call records for one process.

    Group commit without a background task: the first caller to find the writer idle becomes the
    leader and commits every record queued so far in one round trip, then keeps going while more
    arrived meanwhile. An idle server thus pays no task hand-off per call, and a busy one shares
    each commit among all the calls that queued during the previous one.
    """

    def __init__(self, url: str, *, key: bytes | None = None, command_timeout: float = 5.0) -> None:
        self.url = url
        self.command_timeout = command_timeout
        self._key = key
        self._pending: list[tuple[str, asyncio.Future[int]]] = []
        self._writing = asyncio.Lock()
        self._conn: asyncpg.Connection | None = None
        self._open = False
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
        self._open = self.healthy = True

    async def close(self) -> None:
        self._open = False
        async with self._writing:  # let an in-flight batch finish
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
        self.healthy = False

    def record(self, **fields: Any) -> dict[str, Any]:
        """A record with the fields every entry carries."""
        return {"v": FORMAT_VERSION, "ts": utc_now_iso(), **fields}

    def digest(self, arguments: dict[str, Any]) -> str:
        return arguments_digest(self.key, arguments)

    async def append(self, record: dict[str, Any]) -> int:
        """Commit a record (possibly with others queued alongside); returns its sequence number."""
        if not self._open:
            raise Unavailable("the audit log is unavailable, so the call was refused", retry_after=1.0)
        if len(self._pending) >= MAX_PENDING:
            raise Unavailable("the audit log is overloaded, so the call was refused", retry_after=1.0)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((canonical(record), future))
        if not self._writing.locked():
            async with self._writing:
                while self._pending:
                    batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                    await self._commit(batch)
        return await future

    async def _commit(self, batch: list[tuple[str, asyncio.Future[int]]]) -> None:
        started = time.perf_counter()
        try:
            last_seq = await self._write([body for body, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every waiter must learn the write failed
            self.healthy = False
            log.error("audit write failed (%s); refusing the affected calls", type(exc).__name__)
            failure = Unavailable("the audit log could not record the call, so its result was withheld",
                                  retry_after=1.0)
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        self.healthy = True
        self.writes += 1
        self.last_write_ms = (time.perf_counter() - started) * 1000
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
